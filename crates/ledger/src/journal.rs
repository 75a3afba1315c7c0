//! The job journal: a job and its items, each moving `pending → in_flight → done |
//! failed` with its attempts and last error. An item is claimed before its effect is
//! attempted and settled (with its audit entry and events) in one transaction after, so a
//! crash leaves at worst items `in_flight` that a resume claims again.

use serde_json::Value;
use sqlx::Row;

use crate::audit::NewEntry;
use crate::details;
use crate::error::Error;
use crate::error::Result;
use crate::outbox::NewEvent;
use crate::store::{begin_write, on_backend};
use crate::{Batch, Committed, ItemSettle, Ledger, NewJob, now, random_hex};

use serde::Serialize;

/// Where an item of a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Not attempted yet.
    Pending,
    /// Claimed: its effect may or may not have happened.
    InFlight,
    /// Finished.
    Done,
    /// Failed.
    Failed,
}

impl ItemState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::InFlight => "in_flight",
            ItemState::Done => "done",
            ItemState::Failed => "failed",
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Started and not finished (resumable).
    Running,
    /// Finished.
    Done,
    /// Failed.
    Failed,
    /// Its effects were undone.
    RolledBack,
}

impl JobStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
            JobStatus::RolledBack => "rolled_back",
        }
    }
}

/// How an item ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// It succeeded.
    Done {
        /// What the journal keeps of it for later runs (never a secret).
        result: Option<serde_json::Value>,
    },
    /// It failed.
    Failed {
        /// Why.
        error: String,
    },
}

/// What claiming an item found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Claimed; this is attempt number `attempt`.
    Claimed {
        /// 1 for the first attempt.
        attempt: i64,
    },
    /// Already done in an earlier run: nothing to do.
    AlreadyDone,
}

/// A job with its item counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    /// Its id.
    pub id: String,
    /// Its kind (`anonymize`, `rotate`, …).
    pub kind: String,
    /// Who started it.
    pub actor: String,
    /// Its status.
    pub status: String,
    /// When it started.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// Items not attempted yet.
    pub pending: u64,
    /// Items claimed and not settled.
    pub in_flight: u64,
    /// Items done.
    pub done: u64,
    /// Items failed.
    pub failed: u64,
    /// The parameters it was started with (typed details).
    pub params: serde_json::Value,
}

/// One item of a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobItem {
    /// Its key (a contact id, a phase).
    pub key: String,
    /// Its state.
    pub state: String,
    /// Attempts so far.
    pub attempts: i64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// What the journal keeps of its result.
    pub result: Option<serde_json::Value>,
    /// When it last changed.
    pub updated_at: String,
}

impl Ledger {
    /// A new job id: `<kind>-<UTC time>-<random>`, readable and unique.
    pub fn new_job_id(kind: &str) -> String {
        let t = time::OffsetDateTime::now_utc();
        format!(
            "{kind}-{:04}{:02}{:02}T{:02}{:02}{:02}-{}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            random_hex(3)
        )
    }

    /// Creates a job with its first items and a `job.start` audit entry.
    pub async fn create_job(&self, job: NewJob) -> Result<String> {
        details::check_identifier("job id", &job.id)?;
        let id = job.id.clone();
        self.commit(Batch {
            new_job: Some(job),
            ..Default::default()
        })
        .await?;
        Ok(id)
    }

    /// Adds items to a running job (jobs that discover their items as they go). Items
    /// already present are left as they are.
    pub async fn add_items(&self, job_id: &str, keys: &[String]) -> Result<()> {
        on_backend!(&self.pool, p => {
            let mut tx = begin_write!(self.pool, p);
            let start: i64 = sqlx::query("SELECT COALESCE(MAX(position), -1) AS m FROM job_items WHERE job_id = $1")
                .bind(job_id).fetch_one(&mut *tx).await?.try_get("m")?;
            let at = now();
            // Many rows per INSERT: one round trip per KEYS_PER_STATEMENT items.
            for (c, chunk) in keys.chunks(KEYS_PER_STATEMENT).enumerate() {
                let mut sql = String::from("INSERT INTO job_items (job_id, item_key, position, state, updated_at) VALUES ");
                for i in 0..chunk.len() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    // Each number once and in order: SQLite then binds them anonymously.
                    let b = 4 * i;
                    sql.push_str(&format!("(${}, ${}, ${}, 'pending', ${})", b + 1, b + 2, b + 3, b + 4));
                }
                sql.push_str(" ON CONFLICT DO NOTHING");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(crate::store::positional(self.pool.is_postgres(), sql)));
                for (i, k) in chunk.iter().enumerate() {
                    q = q.bind(job_id).bind(k).bind(start + 1 + (c * KEYS_PER_STATEMENT + i) as i64).bind(&at);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Marks an item in flight before its effect is attempted.
    pub async fn claim(&self, job_id: &str, key: &str) -> Result<Claim> {
        on_backend!(&self.pool, p => {
            let mut tx = begin_write!(self.pool, p);
            let row = sqlx::query("SELECT state, attempts FROM job_items WHERE job_id = $1 AND item_key = $2")
                .bind(job_id).bind(key).fetch_optional(&mut *tx).await?
                .ok_or_else(|| Error::NotFound(format!("job {job_id} has no item {key}")))?;
            let state: String = row.try_get("state")?;
            if state == "done" {
                return Ok(Claim::AlreadyDone);
            }
            let attempt = row.try_get::<i64, _>("attempts")? + 1;
            sqlx::query("UPDATE job_items SET state = 'in_flight', attempts = $1, updated_at = $2 WHERE job_id = $3 AND item_key = $4")
                .bind(attempt).bind(now()).bind(job_id).bind(key)
                .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(Claim::Claimed { attempt })
        })
    }

    /// Settles an item with its audit entries and events, in one transaction.
    pub async fn settle(
        &self,
        job_id: &str,
        key: &str,
        outcome: ItemOutcome,
        audit: Vec<NewEntry>,
        events: Vec<NewEvent>,
    ) -> Result<Committed> {
        self.commit(Batch {
            audit,
            events,
            items: vec![ItemSettle {
                job_id: job_id.to_string(),
                key: key.to_string(),
                outcome,
            }],
            ..Default::default()
        })
        .await
    }

    /// Ends a job: its status, a closing audit entry and a signed checkpoint.
    pub async fn finish_job(
        &self,
        job_id: &str,
        status: JobStatus,
        entry: NewEntry,
    ) -> Result<Committed> {
        let committed = self
            .commit(Batch {
                audit: vec![entry],
                job_status: Some((job_id.to_string(), status)),
                checkpoint: true,
                ..Default::default()
            })
            .await?;
        if status == JobStatus::Done
            && let Err(e) = self.compact_job(job_id).await
        {
            // The job is finished and recorded; its journal is only larger than it needs.
            tracing::warn!(job = job_id, error = %e, "the finished job's journal was not compacted");
        }
        Ok(committed)
    }

    /// Drops the done items of the finished job `job_id` that carry no result — each
    /// one's audit entry tells the same, and nothing resumes a finished job — keeping
    /// their number in `jobs.compacted` so its counts stay whole. Items with results
    /// (an encryption's intent, a search's findings) stay. In chunks of their own
    /// transactions, so a million-item job never holds the write lock for long; returns
    /// how many were dropped.
    pub async fn compact_job(&self, job_id: &str) -> Result<u64> {
        const CHUNK: i64 = 5_000;
        let mut total = 0;
        loop {
            let n = on_backend!(&self.pool, p => {
                let mut tx = begin_write!(self.pool, p);
                let status: Option<String> = sqlx::query("SELECT status FROM jobs WHERE id = $1")
                    .bind(job_id).fetch_optional(&mut *tx).await?
                    .map(|r| r.try_get("status")).transpose()?;
                if status.as_deref() != Some(JobStatus::Done.as_str()) {
                    return Ok(total);
                }
                let n = sqlx::query("DELETE FROM job_items WHERE job_id = $1 AND item_key IN (SELECT item_key FROM job_items WHERE job_id = $1 AND state = 'done' AND result IS NULL LIMIT $2)")
                    .bind(job_id).bind(CHUNK).execute(&mut *tx).await?.rows_affected();
                if n > 0 {
                    sqlx::query("UPDATE jobs SET compacted = compacted + $1 WHERE id = $2")
                        .bind(n as i64).bind(job_id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                n
            });
            total += n;
            if n < CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    /// Marks several items in flight at once (one transaction), returning each one's
    /// attempt number; items already done are left out.
    pub async fn claim_many(&self, job_id: &str, keys: &[String]) -> Result<Vec<(String, i64)>> {
        on_backend!(&self.pool, p => {
            let mut tx = begin_write!(self.pool, p);
            let at = now();
            let mut claimed = std::collections::HashMap::with_capacity(keys.len());
            for chunk in keys.chunks(KEYS_PER_STATEMENT) {
                let sql = format!(
                    "UPDATE job_items SET state = 'in_flight', attempts = attempts + 1, updated_at = $1 WHERE job_id = $2 AND state <> 'done' AND item_key IN ({}) RETURNING item_key, attempts",
                    placeholders(3, chunk.len())
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(crate::store::positional(self.pool.is_postgres(), sql))).bind(&at).bind(job_id);
                for k in chunk {
                    q = q.bind(k);
                }
                for r in q.fetch_all(&mut *tx).await? {
                    claimed.insert(r.try_get::<String, _>("item_key")?, r.try_get::<i64, _>("attempts")?);
                }
            }
            tx.commit().await?;
            Ok(in_order(keys, claimed))
        })
    }

    /// Of `keys`, those not done, each with the attempts made at it so far (nothing is
    /// claimed): a job that claims an item only before its effect can tell an item an
    /// interrupted run may have changed (attempts > 0) from one it never touched.
    pub async fn attempts_of(&self, job_id: &str, keys: &[String]) -> Result<Vec<(String, i64)>> {
        on_backend!(&self.pool, p => {
            let mut conn = p.acquire().await?;
            let mut found = std::collections::HashMap::with_capacity(keys.len());
            for chunk in keys.chunks(KEYS_PER_STATEMENT) {
                let sql = format!(
                    "SELECT item_key, attempts FROM job_items WHERE job_id = $1 AND state <> 'done' AND item_key IN ({})",
                    placeholders(2, chunk.len())
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(crate::store::positional(self.pool.is_postgres(), sql))).bind(job_id);
                for k in chunk {
                    q = q.bind(k);
                }
                for r in q.fetch_all(&mut *conn).await? {
                    found.insert(r.try_get::<String, _>("item_key")?, r.try_get::<i64, _>("attempts")?);
                }
            }
            Ok(in_order(keys, found))
        })
    }

    /// Records how far a job that discovers its items has got (e.g. a page token).
    pub async fn set_cursor(&self, job_id: &str, cursor: Option<&str>) -> Result<()> {
        on_backend!(&self.pool, p => {
            sqlx::query("UPDATE jobs SET cursor = $1 WHERE id = $2").bind(cursor).bind(job_id).execute(p).await?;
            Ok(())
        })
    }

    /// The cursor `set_cursor` last recorded.
    pub async fn cursor(&self, job_id: &str) -> Result<Option<String>> {
        on_backend!(&self.pool, p => {
            let r = sqlx::query("SELECT cursor FROM jobs WHERE id = $1").bind(job_id).fetch_optional(p).await?
                .ok_or_else(|| Error::NotFound(format!("no job {job_id}")))?;
            Ok(r.try_get::<Option<String>, _>("cursor")?)
        })
    }

    /// The most recent unfinished job of `kind` started with `fingerprint`, to resume.
    pub async fn running_job(&self, kind: &str, fingerprint: &str) -> Result<Option<String>> {
        on_backend!(&self.pool, p => {
            let r = sqlx::query("SELECT id FROM jobs WHERE kind = $1 AND fingerprint = $2 AND status = 'running' ORDER BY created_at DESC LIMIT 1")
                .bind(kind).bind(fingerprint).fetch_optional(p).await?;
            Ok(r.map(|r| r.try_get::<String, _>("id")).transpose()?)
        })
    }

    /// The fingerprint a job was started with.
    pub async fn job_fingerprint(&self, job_id: &str) -> Result<Option<String>> {
        on_backend!(&self.pool, p => {
            let r = sqlx::query("SELECT fingerprint FROM jobs WHERE id = $1").bind(job_id).fetch_optional(p).await?
                .ok_or_else(|| Error::NotFound(format!("no job {job_id}; `cxguard jobs list` shows the jobs")))?;
            Ok(r.try_get::<Option<String>, _>("fingerprint")?)
        })
    }

    /// Records results for items before their effect is attempted (what a job intends
    /// to write), in one transaction, so a crash right after the effect still leaves a
    /// record of it.
    pub async fn record_results(&self, job_id: &str, results: &[(String, Value)]) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        on_backend!(&self.pool, p => {
            let mut tx = begin_write!(self.pool, p);
            let at = now();
            for (key, value) in results {
                sqlx::query("UPDATE job_items SET result = $1, updated_at = $2 WHERE job_id = $3 AND item_key = $4")
                    .bind(value.to_string()).bind(&at).bind(job_id).bind(key)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// For each of `keys`, the result most recently recorded for it by a job of `kind`
    /// (done, or intended by an attempt in flight).
    pub async fn latest_results(
        &self,
        kind: &str,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, Value>> {
        let mut out = std::collections::HashMap::new();
        on_backend!(&self.pool, p => {
            let mut conn = p.acquire().await?;
            for key in keys {
                let r = sqlx::query("SELECT i.result FROM job_items i JOIN jobs j ON j.id = i.job_id WHERE i.item_key = $1 AND j.kind = $2 AND i.result IS NOT NULL ORDER BY i.updated_at DESC LIMIT 1")
                    .bind(key).bind(kind).fetch_optional(&mut *conn).await?;
                if let Some(v) = r.map(|r| r.try_get::<String, _>("result")).transpose()?.and_then(|s| serde_json::from_str(&s).ok()) {
                    out.insert(key.clone(), v);
                }
            }
            Ok::<_, Error>(())
        })?;
        Ok(out)
    }

    /// Items not yet done (pending, in flight after a crash, or failed), in order.
    pub async fn unfinished_items(
        &self,
        job_id: &str,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>> {
        on_backend!(&self.pool, p => {
            let rows = sqlx::query("SELECT position, item_key FROM job_items WHERE job_id = $1 AND state <> 'done' AND position > $2 ORDER BY position LIMIT $3")
                .bind(job_id).bind(after_position).bind(limit).fetch_all(p).await?;
            rows.iter().map(|r| Ok((r.try_get("position")?, r.try_get("item_key")?))).collect()
        })
    }

    /// The latest `limit` jobs, newest first.
    pub async fn jobs(&self, limit: i64) -> Result<Vec<JobSummary>> {
        let ids: Vec<String> = on_backend!(&self.pool, p => {
            let rows = sqlx::query("SELECT id FROM jobs ORDER BY created_at DESC, id DESC LIMIT $1").bind(limit).fetch_all(p).await?;
            rows.iter().map(|r| r.try_get::<String, _>("id")).collect::<Result<Vec<_>, _>>()?
        });
        let mut out = Vec::new();
        for id in ids {
            out.push(self.job(&id).await?);
        }
        Ok(out)
    }

    /// The latest `limit` jobs of `kind` in `status`, newest first (what a callback
    /// receiver matches a tenant's callback against).
    pub async fn jobs_of(
        &self,
        kind: &str,
        status: JobStatus,
        limit: i64,
    ) -> Result<Vec<JobSummary>> {
        let ids: Vec<String> = on_backend!(&self.pool, p => {
            let rows = sqlx::query("SELECT id FROM jobs WHERE kind = $1 AND status = $2 ORDER BY created_at DESC, id DESC LIMIT $3")
                .bind(kind).bind(status.as_str()).bind(limit).fetch_all(p).await?;
            rows.iter().map(|r| r.try_get::<String, _>("id")).collect::<Result<Vec<_>, _>>()?
        });
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.job(&id).await?);
        }
        Ok(out)
    }

    /// One job.
    pub async fn job(&self, id: &str) -> Result<JobSummary> {
        on_backend!(&self.pool, p => {
            let row = sqlx::query("SELECT id, kind, actor, params, status, created_at, updated_at FROM jobs WHERE id = $1")
                .bind(id).fetch_optional(p).await?
                .ok_or_else(|| Error::NotFound(format!("no job {id}; `cxguard jobs list` shows the jobs")))?;
            // One statement, so a compaction running meanwhile is seen whole or not at all.
            let counts = sqlx::query("SELECT state, COUNT(*) AS n FROM job_items WHERE job_id = $1 GROUP BY state UNION ALL SELECT 'compacted' AS state, compacted AS n FROM jobs WHERE id = $1").bind(id).fetch_all(p).await?;
            let mut s = JobSummary {
                id: row.try_get("id")?, kind: row.try_get("kind")?, actor: row.try_get("actor")?,
                status: row.try_get("status")?, created_at: row.try_get("created_at")?, updated_at: row.try_get("updated_at")?,
                pending: 0, in_flight: 0, done: 0, failed: 0,
                params: serde_json::from_str(&row.try_get::<String, _>("params")?).unwrap_or(Value::Null),
            };
            for c in counts {
                let n = c.try_get::<i64, _>("n")? as u64;
                match c.try_get::<String, _>("state")?.as_str() {
                    "pending" => s.pending = n,
                    "in_flight" => s.in_flight = n,
                    "done" | "compacted" => s.done += n,
                    "failed" => s.failed = n,
                    _ => {}
                }
            }
            Ok(s)
        })
    }

    /// A job's items in a state (all when `None`), in order.
    pub async fn job_items(
        &self,
        id: &str,
        state: Option<ItemState>,
        limit: i64,
    ) -> Result<Vec<JobItem>> {
        on_backend!(&self.pool, p => {
            let rows = sqlx::query("SELECT item_key, state, attempts, last_error, result, updated_at FROM job_items WHERE job_id = $1 AND ($2 = '' OR state = $3) ORDER BY position LIMIT $4")
                .bind(id).bind(state.map_or("", |s| s.as_str())).bind(state.map_or("", |s| s.as_str())).bind(limit)
                .fetch_all(p).await?;
            rows.iter().map(|r| Ok(JobItem {
                key: r.try_get("item_key")?, state: r.try_get("state")?, attempts: r.try_get("attempts")?,
                last_error: r.try_get("last_error")?,
                result: r.try_get::<Option<String>, _>("result")?.and_then(|s| serde_json::from_str(&s).ok()),
                updated_at: r.try_get("updated_at")?,
            })).collect()
        })
    }
}

/// Keys bound in one statement (SQLite allows 32,766 parameters; PostgreSQL 65,535).
const KEYS_PER_STATEMENT: usize = 200;

/// `$first, $first+1, …` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `keys` found in `values`, in the order of `keys`, each once.
fn in_order(
    keys: &[String],
    mut values: std::collections::HashMap<String, i64>,
) -> Vec<(String, i64)> {
    keys.iter()
        .filter_map(|k| values.remove(k).map(|v| (k.clone(), v)))
        .collect()
}
