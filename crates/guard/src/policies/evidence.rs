//! A data-policy run's evidence report (spec-real §6.7): fetched from the presigned URL
//! the tenant hands out — https only (plain http only to a loopback address), no
//! redirect followed, no credential sent, at most [`MAX_BYTES`] — written mode 0600
//! without overwriting, and recorded in the audit log with its SHA-256 and size, so the
//! file an auditor is handed can be checked against the ledger.

use std::path::{Path, PathBuf};

use ledger::{Details, Ledger, NewEntry, Outcome};
use serde::Serialize;

use crate::{Error, Result};

/// The audit operation of a downloaded report.
pub const OPERATION: &str = "data_policy.evidence";
/// The largest report fetched.
pub const MAX_BYTES: usize = 64 << 20;

/// A report written.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// The policy.
    pub policy_id: String,
    /// The run.
    pub run_id: String,
    /// Where it was written.
    pub path: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// The audit entry that records it.
    pub audit_seq: i64,
}

/// Refuses a URL that is not https, unless it is plain http to a loopback address.
pub fn check_url(u: &str) -> Result<url::Url> {
    let url = url::Url::parse(u)
        .map_err(|e| Error::Invalid(format!("the evidence URL is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        s => Err(Error::Invalid(format!(
            "the evidence URL is {s}://{}: only https is fetched (plain http only to a loopback address); nothing was written",
            url.host_str().unwrap_or("?")
        ))),
    }
}

/// Fetches the body of `url` with no redirect and no credential, at most
/// [`MAX_BYTES`].
async fn fetch(url: url::Url) -> Result<Vec<u8>> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| Error::Failed(format!("cannot build the HTTP client: {e}")))?;
    let host = url.host_str().unwrap_or("?").to_string();
    let mut resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| Error::Unavailable(format!("evidence report at {host}: {e}")))?;
    let status = resp.status();
    if status.is_redirection() {
        return Err(Error::Invalid(format!(
            "the evidence URL at {host} answered a redirect ({status}); redirects are not followed; nothing was written"
        )));
    }
    if !status.is_success() {
        return Err(Error::Unavailable(format!(
            "the evidence URL at {host} answered {status}; nothing was written"
        )));
    }
    let too_large = || {
        Error::Invalid(format!(
            "the evidence report at {host} is larger than {MAX_BYTES} bytes; nothing was written"
        ))
    };
    if resp.content_length().is_some_and(|n| n > MAX_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Error::Unavailable(format!("evidence report at {host}: {e}")))?
    {
        if body.len() + chunk.len() > MAX_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The file a run's report is written to in `dir`.
pub fn file_name(run: &str) -> String {
    let safe: String = run
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("evidence-{safe}.csv")
}

/// Downloads run `run`'s evidence report into `dir` and records it. The run's policy is
/// found in the runs listing; a file already there is never overwritten.
pub async fn download(
    client: &cxone::Client,
    ledger: &Ledger,
    actor: &str,
    run: &str,
    dir: &Path,
) -> Result<Evidence> {
    let path = dir.join(file_name(run));
    if path.exists() {
        return Err(Error::Invalid(format!(
            "{} exists; evidence is never overwritten (move it, or choose another --out)",
            path.display()
        )));
    }
    let instances = client.policies().instances().await?;
    let policy = instances
        .iter()
        .find(|i| i.policy_instance_id.as_deref() == Some(run))
        .and_then(|i| i.policy_id.clone())
        .ok_or_else(|| Error::Invalid(format!("no policy run {run} in the tenant")))?;
    let url = check_url(&client.policies().evidence_url(&policy, run).await?)?;
    let body = fetch(url).await?;
    write_new(&path, &body)?;
    let sha256 = crate::sha256_hex_bytes(&body);
    let seq = ledger
        .append(NewEntry::new(
            actor,
            OPERATION,
            run,
            Outcome::Success,
            Details::new()
                .id("policy", &policy)?
                .sha256("sha256", &sha256)?
                .count("bytes", body.len() as u64),
        )?)
        .await?
        .seq;
    Ok(Evidence {
        policy_id: policy,
        run_id: run.to_string(),
        path,
        sha256,
        bytes: body.len() as u64,
        audit_seq: seq,
    })
}

/// An evidence report the audit log records.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    /// The run.
    pub run_id: String,
    /// Its policy.
    pub policy_id: String,
    /// The report's SHA-256, to check a file against.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// When it was downloaded.
    pub at: String,
    /// The audit entry's sequence number.
    pub seq: i64,
}

/// Every evidence report the ledger records, oldest first.
pub async fn recorded(ledger: &Ledger) -> Result<Vec<Recorded>> {
    let entries = ledger
        .entries(&ledger::Filter {
            operation: Some(OPERATION.into()),
            ..Default::default()
        })
        .await?;
    Ok(entries
        .into_iter()
        .map(|e| Recorded {
            policy_id: e.details["policy"].as_str().unwrap_or_default().to_string(),
            sha256: e.details["sha256"].as_str().unwrap_or_default().to_string(),
            bytes: e.details["bytes"].as_u64().unwrap_or(0),
            run_id: e.target,
            at: e.at,
            seq: e.seq,
        })
        .collect())
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Error::Failed(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn only_https_or_loopback_http_is_fetched() {
        assert!(check_url("https://s3.example.com/r.csv?sig=1").is_ok());
        assert!(check_url("http://127.0.0.1:9/r.csv").is_ok());
        assert!(check_url("http://[::1]:9/r.csv").is_ok());
        for bad in [
            "http://198.51.100.7/r.csv",
            "ftp://x/r",
            "file:///etc/passwd",
            "nonsense",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
