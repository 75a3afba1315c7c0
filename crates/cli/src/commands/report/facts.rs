//! The report's facts, gathered read-only from the tenant and the ledger. One schema
//! (`docs/schemas/report.json`): `--format json` writes it, the HTML is rendered from it.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub generated_at: String,
    pub version: &'static str,
    pub tenant: String,
    pub period: Period,
    pub audit: Audit,
    pub summary: Vec<Card>,
    pub secrets: Secrets,
    pub contacts: Contacts,
    pub datastores: Vec<TableCoverage>,
    pub webchat: Vec<Widget>,
    pub identity: Identity,
    pub delivery: Delivery,
}

#[derive(Debug, Serialize)]
pub struct Period {
    pub since: String,
    pub until: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    pub intact: bool,
    pub entries: u64,
    pub checkpoints: u64,
    pub head_seq: i64,
    pub head_hash: Option<String>,
    pub key_id: String,
    /// Why it is not intact.
    pub broken: Option<String>,
    /// What an auditor reruns later to check nothing before this head changed.
    pub verify_command: String,
}

/// One protection at a glance.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Card {
    pub protection: &'static str,
    /// `ok`, `drift`, `findings` or `never run`.
    pub status: &'static str,
    pub metric: &'static str,
    pub value: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Secrets {
    pub max_age_days: u32,
    pub items: Vec<SecretAge>,
    pub rotations: Vec<Rotation>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretAge {
    pub id: String,
    pub name: String,
    pub age_days: i64,
    pub max_age_days: u32,
    pub overdue: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    pub at: String,
    pub secret: String,
    /// `rotated` or `rolled back`.
    pub result: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contacts {
    /// Contacts anonymized per day (UTC) in the period.
    pub per_day: BTreeMap<String, u64>,
    pub jobs: Vec<Job>,
    /// Contacts past retention not yet anonymized, when a posture declares retention.
    pub past_retention: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub status: String,
    pub started: String,
    pub done: u64,
    pub failed: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableCoverage {
    pub table: String,
    pub sensitive_encrypted: usize,
    pub sensitive_in_clear: usize,
    pub other: usize,
    pub in_clear: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Widget {
    pub id: String,
    pub name: String,
    pub origins: Vec<String>,
    pub rules: Vec<Rule>,
    pub require_token: bool,
    pub token_expiry_minutes: u32,
    /// The `configDigest` cxguard last deployed, if it did.
    pub last_digest: Option<String>,
    /// Whether it differs from the posture; `None` when no posture declares it.
    pub drift: Option<bool>,
    pub findings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Rule {
    pub id: String,
    pub action: String,
    pub pattern: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// Guest links per day (UTC) in the period.
    pub per_day: BTreeMap<String, u64>,
    /// Links by outcome.
    pub outcomes: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub delivered: u64,
    pub pending: u64,
    pub dead: u64,
    pub skipped: u64,
    pub pending_by_kind: BTreeMap<String, u64>,
}
