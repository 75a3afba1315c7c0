//! Receipts of a finished subject erasure, one per person, built from the journal and
//! the audit log alone: what was found, what each step did, and the audit head that
//! vouches for it.

use std::collections::BTreeMap;

use ledger::{AuditEntry as Entry, Filter, Ledger};
use serde::Serialize;
use serde_json::Value;

use super::find::ContactHit;
use crate::{Error, Result};

/// The platform erasure of one subject, as the receipt states it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformErasure {
    /// `submitted`, or `skipped` (filed by the operator apart).
    pub status: &'static str,
    /// The platform's `requestId`, when submitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl PlatformErasure {
    /// The platform step's journaled result (`{"request_id"}` or `{"skipped": true}`).
    pub(super) fn journaled(v: &Value) -> Self {
        PlatformErasure {
            status: if v["skipped"] == true {
                "skipped"
            } else {
                "submitted"
            },
            request_id: v["request_id"].as_str().map(str::to_string),
        }
    }
}

/// The audit sequence numbers of one subject's step entries (target its pseudonym), by
/// step (`find`, `contacts`, `digital`, …).
pub(super) fn step_seqs(steps: &[Entry], pseudonym: &str) -> BTreeMap<String, Vec<i64>> {
    let mut audit: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for s in steps.iter().filter(|s| s.target == pseudonym) {
        let step = s.operation.trim_start_matches("subject.erase.").to_string();
        audit.entry(step).or_default().push(s.seq);
    }
    audit
}

/// The evidence behind the reply to one person: what was found and changed, the
/// platform request, and the audit entries that record each step. No identifier.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// The subject's reference.
    pub reference: String,
    /// The subject's keyed pseudonym, and its key.
    pub pseudonym: String,
    /// The pseudonym's key id.
    pub key_id: String,
    /// The erasure job.
    pub job_id: String,
    /// Whether any contact or guest held the subject.
    pub records_found: bool,
    /// The contacts anonymized, with the fields that held the subject.
    pub contacts: Vec<ContactHit>,
    /// The anonymize job that changed them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymize_job: Option<String>,
    /// The guests whose identity attribute was deleted.
    pub guests: Vec<String>,
    /// The platform erasure.
    pub platform: PlatformErasure,
    /// Audit sequence numbers of each step (`find`, `contacts`, `guest`, `platform`).
    pub audit: BTreeMap<String, Vec<i64>>,
    /// The audit head when the job closed: `SEQ:HASH`, for `audit verify --expect-head`.
    pub audit_head: String,
    /// On CXone's published API: the DFO records erased and the voice contacts the
    /// platform erasure covers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digital: Option<DigitalErased>,
    /// What the receipt does not vouch for, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<&'static str>,
}

/// What an erasure on CXone's published API did to one person's DFO records.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DigitalErased {
    /// The DFO customers found (their fields changed per the policy).
    pub customers: Vec<String>,
    /// Their cases.
    pub cases: Vec<String>,
    /// The messages whose content and author name were removed (reason `GDPR`).
    pub messages: Vec<String>,
    /// The fields changed, `customer ID: IDENT (OP)` or `case ID: IDENT (OP)`, from
    /// the audit log.
    pub fields: Vec<String>,
    /// The `digital.anonymize` job that made the changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digital_job: Option<String>,
    /// The completed contacts whose addresses hold the person: the platform erasure
    /// anonymizes them, asynchronously.
    pub voice_contacts: Vec<String>,
    /// The customers whose identity field (the link to the person) was deleted.
    pub links: Vec<String>,
}

/// Said on every receipt of CXone's published API.
pub const PLATFORM_NOTICE: &str = "CXone's platform erasure is asynchronous: the voice contacts listed are anonymized some time after the request (check with `cxguard subject verify`). It does not cover digital (DFO) data, which cxguard erased itself: the messages and fields listed here.";

/// What the find step journaled of one subject: its contacts and guests.
pub(super) fn journaled(v: &Value) -> (Vec<ContactHit>, Vec<String>) {
    let contacts = v["contacts"]
        .as_array()
        .map(|a| a.iter().filter_map(ContactHit::from_journal).collect())
        .unwrap_or_default();
    let guests = v["guests"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (contacts, guests)
}

/// The receipts of job `jid`, which has finished: one per subject found, each with the
/// audit entries of its steps.
pub(super) async fn build(ledger: &Ledger, jid: &str) -> Result<Vec<Receipt>> {
    let (steps, audit_head) = audited_steps(ledger, jid).await?;
    let items = ledger.job_items(jid, None, 1_000_000).await?;
    let result = |k: &str| {
        items
            .iter()
            .find(|i| i.key == k)
            .and_then(|i| i.result.clone())
            .unwrap_or_default()
    };
    let found = result("find");
    let found = found["subjects"].as_array().cloned().unwrap_or_default();
    let anonymize_job = result("contacts")["anonymize_job"]
        .as_str()
        .map(str::to_string);
    let finds: Vec<_> = steps
        .iter()
        .filter(|e| e.operation == "subject.erase.find")
        .collect();
    if finds.len() != found.len() {
        return Err(Error::Invalid(format!(
            "job {jid}: {} subject(s) journaled but {} find entries audited",
            found.len(),
            finds.len()
        )));
    }
    let receipts = found
        .iter()
        .zip(finds)
        .enumerate()
        .map(|(i, (f, e))| {
            let platform = result(&format!("platform:{i}"));
            receipt(
                jid,
                i,
                f,
                e,
                &steps,
                &platform,
                anonymize_job.as_deref(),
                &audit_head,
            )
        })
        .collect();
    Ok(receipts)
}

/// The job's step entries (between its start and finish) and the audit head at its
/// finish, `seq:hash`. Every step's entries name the job; the find entries come one per
/// subject, in the subjects' order, and carry the pseudonym (target) and its key.
pub(super) async fn audited_steps(ledger: &Ledger, jid: &str) -> Result<(Vec<Entry>, String)> {
    let one = |operation: &str| Filter {
        operation: Some(operation.into()),
        target: Some(jid.to_string()),
        ..Default::default()
    };
    let start = ledger.entries(&one("job.start")).await?;
    let finish = ledger.entries(&one("job.finish")).await?;
    let (Some(start), Some(finish)) = (start.first(), finish.last()) else {
        return Err(Error::Invalid(format!(
            "job {jid}: its job.start or job.finish audit entry is missing"
        )));
    };
    let audit_head = format!("{}:{}", finish.seq, finish.hash);
    let steps: Vec<_> = ledger
        .entries(&Filter {
            operation: Some("subject.erase.*".into()),
            after_seq: Some(start.seq),
            ..Default::default()
        })
        .await?
        .into_iter()
        .filter(|e| e.seq < finish.seq && e.details["job"] == jid)
        .collect();
    Ok((steps, audit_head))
}

/// One person's receipt: found records, the audit entries of each step, the platform
/// erasure.
#[allow(clippy::too_many_arguments)]
fn receipt(
    jid: &str,
    i: usize,
    f: &Value,
    e: &Entry,
    steps: &[Entry],
    platform: &Value,
    anonymize_job: Option<&str>,
    audit_head: &str,
) -> Receipt {
    let (contacts, guests) = journaled(f);
    let audit = step_seqs(steps, &e.target);
    Receipt {
        reference: f["reference"]
            .as_str()
            .map_or_else(|| format!("#{}", i + 1), str::to_string),
        pseudonym: e.target.clone(),
        key_id: e.details["key"].as_str().unwrap_or_default().to_string(),
        job_id: jid.to_string(),
        records_found: !contacts.is_empty() || !guests.is_empty(),
        anonymize_job: (!contacts.is_empty())
            .then(|| anonymize_job.map(str::to_string))
            .flatten(),
        contacts,
        guests,
        platform: PlatformErasure::journaled(platform),
        audit,
        audit_head: audit_head.to_string(),
        digital: None,
        notice: None,
    }
}
