//! Opening a job once and running it in one process at a time: [`Ledger::open_job`]
//! finds the running job of a fingerprint or creates it in one transaction, and a lease
//! in the jobs table (`lease_owner`, `lease_until`) is taken with a conditional update,
//! renewed while the job runs, released at its end, and free once it expires.

use sqlx::Row;

use crate::encoding::now_ms;
use crate::error::Result;
use crate::store::on_backend;
use crate::{Batch, Ledger, NewJob, details};

impl Ledger {
    /// The running job of `job`'s kind and fingerprint, else `job` created: `(id, true)`
    /// when it was created. One atomic step, so two processes (two service replicas on
    /// one PostgreSQL ledger) opening the same job at once open one.
    pub async fn open_job(&self, job: NewJob) -> Result<(String, bool)> {
        details::check_identifier("job id", &job.id)?;
        let id = job.id.clone();
        let c = self
            .commit(Batch {
                new_job: Some(job),
                unless_running: true,
                ..Default::default()
            })
            .await?;
        Ok(match c.existing_job {
            Some(existing) => (existing, false),
            None => (id, true),
        })
    }

    /// Takes the lease on running job `job_id` for `owner` until `ttl` from now: `true`
    /// when it is free (never taken, released, or expired: its holder died) or already
    /// `owner`'s. One conditional UPDATE, so of two processes at most one runs a job.
    pub async fn take_lease(
        &self,
        job_id: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        let now = now_ms();
        let until = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2));
        on_backend!(&self.pool, p => {
            let n = sqlx::query("UPDATE jobs SET lease_owner = $1, lease_until = $2 WHERE id = $3 AND status = 'running' AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $4)")
                .bind(owner).bind(until).bind(job_id).bind(now)
                .execute(p).await?.rows_affected();
            Ok(n == 1)
        })
    }

    /// Takes the lease on running job `job_id` over from `from` (a holder known to be
    /// gone, such as a process of this host that no longer exists), whatever its expiry:
    /// `true` when `from` still held it and `owner` now does.
    pub async fn take_lease_from(
        &self,
        job_id: &str,
        from: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        let until = now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2));
        on_backend!(&self.pool, p => {
            let n = sqlx::query("UPDATE jobs SET lease_owner = $1, lease_until = $2 WHERE id = $3 AND status = 'running' AND lease_owner = $4")
                .bind(owner).bind(until).bind(job_id).bind(from)
                .execute(p).await?.rows_affected();
            Ok(n == 1)
        })
    }

    /// Who holds the lease on `job_id` and until when (ms since 1970), if anyone does.
    pub async fn lease(&self, job_id: &str) -> Result<Option<(String, i64)>> {
        on_backend!(&self.pool, p => {
            let r = sqlx::query("SELECT lease_owner, lease_until FROM jobs WHERE id = $1")
                .bind(job_id).fetch_optional(p).await?;
            Ok(match r {
                Some(r) => match (r.try_get::<Option<String>, _>("lease_owner")?, r.try_get::<Option<i64>, _>("lease_until")?) {
                    (Some(o), Some(u)) => Some((o, u)),
                    _ => None,
                },
                None => None,
            })
        })
    }

    /// Gives up `owner`'s lease on `job_id` (nothing if another holds it).
    pub async fn release_lease(&self, job_id: &str, owner: &str) -> Result<()> {
        on_backend!(&self.pool, p => {
            sqlx::query("UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
                .bind(job_id).bind(owner).execute(p).await?;
            Ok(())
        })
    }
}
