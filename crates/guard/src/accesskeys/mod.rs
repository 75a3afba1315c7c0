//! Access keys on CXone's published API (spec-real §3): what the tenant holds, with
//! findings, and their rotation — create, deliver, verify, deactivate, delete — as one
//! journaled, resumable job (`rotate.rs`), delivering the new secret to a file,
//! OpenBao/Vault or a command (`deliver.rs`) the moment it exists.

pub mod deliver;
mod retire;
pub mod rotate;
mod vault;

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Serialize;

pub use deliver::Target;
pub use rotate::{JOB_KIND, Report, Request, audit_id, finish_due, rotate};

/// An OpenBao or Vault server (`[vault]`).
#[derive(Clone)]
pub struct VaultConfig {
    /// `https://vault.internal:8200` (plain http only to loopback).
    pub address: url::Url,
    /// The token.
    pub token: SecretString,
    /// `X-Vault-Namespace`, if any.
    pub namespace: Option<String>,
    /// CA certificates (PEM) to trust beside the built-in roots (`[vault] ca_file`).
    pub ca_pem: Option<Vec<u8>>,
}

impl VaultConfig {
    /// Checks what can be checked without a request: the CA file holds certificates.
    pub fn check(&self) -> crate::Result<()> {
        vault::client(self).map(|_| ())
    }
}

impl std::fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultConfig")
            .field("address", &self.address.as_str())
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// What a delivery replaced, to put back if the new key is rolled back.
pub enum Replaced {
    /// Nothing was there, or nothing can be put back (a command).
    Nothing,
    /// The file's previous content is kept beside it (`.previous`).
    File(PathBuf),
    /// The secret's data before, and the version the delivery wrote.
    Vault(SecretString, u64),
}

/// One key as `accesskeys list` shows it, with its findings.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyRow {
    /// The key's id.
    pub id: String,
    /// Its user.
    pub user_id: Option<String>,
    /// Its user's ACD agent id.
    pub agent_id: Option<i64>,
    /// Whether it can sign in.
    pub active: bool,
    /// When it last signed in.
    pub last_used: Option<String>,
    /// Days since cxguard created it (from the ledger), `None` when unknown.
    pub age_days: Option<i64>,
    /// What needs a person: inactive, never used, unused, too old, age unknown.
    pub findings: Vec<String>,
}

/// The thresholds of the findings.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// A key unused this many days is a finding.
    pub unused_days: i64,
    /// A key older than this many days (or of unknown age) is a finding.
    pub max_age_days: i64,
}

/// When cxguard created each key it rotated in, from the ledger's audit entries.
pub async fn created_at(ledger: &ledger::Ledger) -> crate::Result<Vec<(String, String)>> {
    let entries = ledger
        .entries(&ledger::Filter {
            operation: Some("accesskey.created".into()),
            ..Default::default()
        })
        .await?;
    Ok(entries.into_iter().map(|e| (e.target, e.at)).collect())
}

/// What cxguard's ledger knows of the tenant's keys: when it created each, and which
/// keys a rotation under way is replacing.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// `(audit id, when)` of each key cxguard created, oldest first.
    pub created: Vec<(String, String)>,
    /// Key id → the running rotation job replacing it.
    pub rotating: std::collections::BTreeMap<String, String>,
}

impl History {
    /// Days since cxguard created `id`, `None` when it did not.
    pub fn age_days(&self, id: &str, now: time::OffsetDateTime) -> Option<i64> {
        let audit = audit_id(id);
        self.created
            .iter()
            .rev()
            .find(|(c, _)| *c == audit)
            .and_then(|(_, at)| {
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|at| (now - at).whole_days())
    }
}

/// The ledger's [`History`].
pub async fn history(ledger: &ledger::Ledger) -> crate::Result<History> {
    let mut rotating = std::collections::BTreeMap::new();
    for j in ledger
        .jobs_of(JOB_KIND, ledger::JobStatus::Running, 1000)
        .await?
    {
        let items = ledger.job_items(&j.id, None, 10).await?;
        if let Some(key) = items
            .iter()
            .find(|i| i.key == "deliver")
            .and_then(|i| i.result.as_ref())
            .and_then(|r| r["key"].as_str())
        {
            rotating.insert(key.to_string(), j.id.clone());
        }
    }
    Ok(History {
        created: created_at(ledger).await?,
        rotating,
    })
}

/// Whether `key` needs no rotation any more: it is gone or inactive, and no rotation of
/// it is under way (one under way is joined instead).
pub async fn already_rotated(
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    key: &str,
) -> crate::Result<bool> {
    let active = match client.access_keys().get(key).await {
        Ok(k) => k.is_active.unwrap_or(false),
        Err(e) if e.status() == Some(404) => false,
        Err(e) => return Err(e.into()),
    };
    Ok(!active && !history(ledger).await?.rotating.contains_key(key))
}

/// Deactivates `key` (an unused one), audited once as `accesskey.deactivated` with
/// `reason`: a rerun after a crash neither repeats the entry nor misses it.
pub async fn deactivate(
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    key: &str,
    actor: &str,
    reason: &str,
) -> crate::Result<()> {
    let audited = ledger
        .entries(&ledger::Filter {
            operation: Some("accesskey.deactivated".into()),
            target: Some(audit_id(key)),
            ..Default::default()
        })
        .await?;
    if !audited.is_empty() {
        return Ok(());
    }
    match client.access_keys().set_active(key, false).await {
        Ok(()) => {}
        Err(e) if e.status() == Some(404) => {}
        Err(e) => return Err(e.into()),
    }
    let why = if reason.starts_with("never") {
        "never_used"
    } else {
        "unused"
    };
    ledger
        .append(rotate::entry(
            actor,
            "accesskey.deactivated",
            key,
            ledger::Outcome::Success,
            ledger::Details::new().label("reason", why),
        )?)
        .await?;
    Ok(())
}

/// Each key with its age (when cxguard created it) and findings, as of `now`.
pub fn rows(
    keys: &[cxone::accesskeys::AccessKey],
    history: &History,
    t: Thresholds,
    now: time::OffsetDateTime,
) -> Vec<KeyRow> {
    let parse = |d: &str| {
        time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc3339).ok()
    };
    keys.iter()
        .map(|k| {
            let id = k.access_key_id.clone().unwrap_or_default();
            let active = k.is_active.unwrap_or(false);
            let age_days = history.age_days(&id, now);
            let used = k.last_used_date.as_deref().and_then(parse);
            let mut findings = Vec::new();
            if !active {
                findings.push("inactive".to_string());
            }
            match used {
                None => findings.push("never used".into()),
                Some(u) if (now - u).whole_days() >= t.unused_days => {
                    findings.push(format!("unused for {} days", (now - u).whole_days()))
                }
                Some(_) => {}
            }
            match age_days {
                None => findings.push("age unknown (not created by cxguard)".into()),
                Some(a) if a > t.max_age_days => findings.push(format!("{a} days old")),
                Some(_) => {}
            }
            KeyRow {
                id,
                user_id: k.user_id.clone(),
                agent_id: k.agent_id,
                active,
                last_used: k.last_used_date.clone(),
                age_days,
                findings,
            }
        })
        .collect()
}
