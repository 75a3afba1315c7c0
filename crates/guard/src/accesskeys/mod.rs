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

/// Each key with its age (when cxguard created it) and findings, as of `now`.
pub fn rows(
    keys: &[cxone::accesskeys::AccessKey],
    created: &[(String, String)],
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
            let age_days = created
                .iter()
                .rev()
                .find(|(c, _)| *c == audit_id(&id))
                .and_then(|(_, at)| parse(at))
                .map(|at| (now - at).whole_days());
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
