//! Who runs a job: a lease in the ledger's jobs table, so that processes sharing one
//! ledger (service replicas behind a load balancer, a cron run beside an operator's)
//! never run one job at once. The lease is taken with a conditional update, renewed
//! while the job runs, and released at its end; a process that dies stops renewing it,
//! and after [`TTL`] another may take the job over — at once, when the holder was a
//! process of this host that no longer exists (a rerun after a crash or SIGKILL).

use std::sync::OnceLock;
use std::time::Duration;

use ledger::Ledger;

use crate::{Error, Result};

/// How long a lease lasts unless renewed; it is renewed every third of this.
pub const TTL: Duration = Duration::from_secs(30);

fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().replace(':', "-"))
            .ok()
            .filter(|h| !h.is_empty() && h.len() <= 64)
            .unwrap_or_else(|| "host".into())
    })
}

/// A new lease holder's name: host, process id and a random part, one per run of a job
/// (two runs in one process, such as two service instances in a test, are two holders).
fn new_holder() -> String {
    let mut r = [0u8; 6];
    let _ = getrandom::fill(&mut r);
    format!("{}:{}:{}", host(), std::process::id(), ledger::hex(&r))
}

/// Whether `holder` names a process of this host that no longer exists (where that can
/// be told: Linux's /proc). A reused pid reads as alive: the safe side.
fn gone(holder: &str) -> bool {
    let mut parts = holder.rsplitn(3, ':');
    let (_, pid, h) = (parts.next(), parts.next(), parts.next());
    let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    h == Some(host())
        && pid != std::process::id()
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A lease held on a running job; renewed in the background until [`Held::release`].
#[derive(Debug)]
pub struct Held {
    ledger: Ledger,
    job: String,
    holder: String,
    renewing: tokio::task::JoinHandle<()>,
}

/// Takes the lease on running job `job` for this process, or refuses with
/// [`Error::Busy`] naming who holds it and until when.
pub async fn take(ledger: &Ledger, job: &str) -> Result<Held> {
    let holder = new_holder();
    let mut taken = ledger.take_lease(job, &holder, TTL).await?;
    if !taken
        && let Some((owner, _)) = ledger.lease(job).await?
        && gone(&owner)
    {
        tracing::info!(job, previous = %owner, "taking over the lease of a process that no longer exists");
        taken = ledger.take_lease_from(job, &owner, &holder, TTL).await?;
    }
    if !taken {
        let status = ledger.job(job).await?.status;
        if status != "running" {
            return Err(Error::Busy(format!(
                "job {job} is {status}, not running: another process finished it"
            )));
        }
        let until = match ledger.lease(job).await? {
            Some((owner, until_ms)) => format!(
                " (held by {owner} until {})",
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(until_ms) * 1_000_000)
                    .map(ledger::timestamp)
                    .unwrap_or_default()
            ),
            None => String::new(),
        };
        return Err(Error::Busy(format!(
            "job {job} is being run by another process{until}; a job is run by one process at a time"
        )));
    }
    let (l, j, h) = (ledger.clone(), job.to_string(), holder.clone());
    let renewing = tokio::spawn(async move {
        loop {
            tokio::time::sleep(TTL / 3).await;
            match l.take_lease(&j, &h, TTL).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(job = %j, "the job's lease was lost (the job ended, or another process took it over)");
                    return;
                }
                Err(e) => tracing::warn!(job = %j, error = %e, "could not renew the job's lease"),
            }
        }
    });
    Ok(Held {
        ledger: ledger.clone(),
        job: job.to_string(),
        holder,
        renewing,
    })
}

impl Held {
    /// Stops renewing and gives the lease up.
    pub async fn release(self) {
        self.renewing.abort();
        if let Err(e) = self.ledger.release_lease(&self.job, &self.holder).await {
            tracing::debug!(job = %self.job, error = %e, "could not release the job's lease; it expires by itself");
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewing.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_of_this_host_whose_process_is_gone_is_gone() {
        let me = new_holder();
        assert!(!gone(&me), "this process is alive");
        assert!(gone(&format!("{}:{}:abc", host(), u32::MAX - 7)));
        assert!(
            !gone(&format!("other-host:{}:abc", u32::MAX - 7)),
            "another host"
        );
        assert!(!gone("nonsense"));
        assert!(!gone(&format!("{}:1:abc", host())), "pid 1 lives");
    }
}
