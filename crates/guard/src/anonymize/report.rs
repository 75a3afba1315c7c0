//! What an anonymize run reports: the job runner's common [`job::Report`] under the
//! names `cxguard contacts anonymize --output json` has always printed (contacts and
//! PATCHes rather than items and calls).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::job::{self, Failure, Latency};

/// What a run did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The job's id in the journal.
    pub job_id: String,
    /// Whether this run resumed an unfinished job.
    pub resumed: bool,
    /// Contacts this run settled.
    pub processed: u64,
    /// Contacts changed (now, or by an earlier attempt whose answer was lost).
    pub changed: u64,
    /// Already in their target state.
    pub unchanged: u64,
    /// Contacts that failed.
    pub failed: u64,
    /// Contacts the tenant does not have.
    pub not_found: u64,
    /// Field → contacts where it changed.
    pub fields: BTreeMap<String, u64>,
    /// Wall-clock time of this run.
    pub seconds: f64,
    /// Contacts settled per second.
    pub contacts_per_s: f64,
    /// PATCHes sent.
    pub patches: u64,
    /// PATCHes per second.
    pub patches_per_s: f64,
    /// PATCH latency.
    pub latency: Latency,
    /// 429 responses during this run.
    pub http_429: u64,
    /// Retried requests during this run.
    pub retries: u64,
    /// API requests during this run (every attempt counts).
    pub requests: u64,
    /// The failed contacts (the first 1000).
    pub failures: Vec<Failure>,
}

impl From<job::Report> for Report {
    fn from(r: job::Report) -> Self {
        Report {
            job_id: r.job_id,
            resumed: r.resumed,
            processed: r.processed,
            changed: r.changed,
            unchanged: r.unchanged,
            failed: r.failed,
            not_found: r.not_found,
            fields: r.fields,
            seconds: r.seconds,
            contacts_per_s: r.items_per_s,
            patches: r.calls,
            patches_per_s: r.calls_per_s,
            latency: r.latency,
            http_429: r.http_429,
            retries: r.retries,
            requests: r.requests,
            failures: r.failures,
        }
    }
}
