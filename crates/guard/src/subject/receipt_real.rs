//! Receipts of an erasure on CXone's published API: per person, the DFO customers,
//! cases and messages found, the fields and messages changed (from the audit log of the
//! `digital.anonymize` job the erasure ran), the voice contacts the platform erasure
//! covers, the platform request, and the audit head.

use std::collections::BTreeSet;

use ledger::{AuditEntry as Entry, Filter, Ledger};
use serde_json::Value;

use super::erase_real::Journaled;
use super::receipt::{DigitalErased, PLATFORM_NOTICE, PlatformErasure, Receipt};
use crate::{Error, Result};

/// The audit entries of the digital job's changes between the erasure's first step and
/// its end: removals by message, field changes by customer or case.
async fn changes(ledger: &Ledger, after: i64, before: i64) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for op in [
        "dfo.message.removed",
        "dfo.customer.field",
        "dfo.case.field",
        "dfo.customer.note.deleted",
    ] {
        out.extend(
            ledger
                .entries(&Filter {
                    operation: Some(op.into()),
                    after_seq: Some(after),
                    ..Default::default()
                })
                .await?
                .into_iter()
                .filter(|e| e.seq < before),
        );
    }
    Ok(out)
}

/// The receipts of the finished job `jid` (its journal `items`), one per subject.
pub(super) async fn build(
    ledger: &Ledger,
    jid: &str,
    items: &[ledger::JobItem],
) -> Result<Vec<Receipt>> {
    let (steps, audit_head) = super::receipt::audited_steps(ledger, jid).await?;
    let result = |k: &str| {
        items
            .iter()
            .find(|i| i.key == k)
            .and_then(|i| i.result.clone())
            .unwrap_or_default()
    };
    let found = result("find")["subjects"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let digital_job = result("digital")["digital_job"]
        .as_str()
        .map(str::to_string);
    let finds: Vec<&Entry> = steps
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
    let first = steps.iter().map(|e| e.seq).min().unwrap_or(0);
    let head: i64 = audit_head
        .split(':')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(i64::MAX);
    let changes = changes(ledger, first, head).await?;
    Ok(found
        .iter()
        .zip(finds)
        .enumerate()
        .map(|(i, (f, e))| Receipt {
            reference: f["reference"]
                .as_str()
                .map_or_else(|| format!("#{}", i + 1), str::to_string),
            ..receipt(
                jid,
                Journaled::from_value(f),
                e,
                &steps,
                &changes,
                &result(&format!("platform:{i}")),
                digital_job.clone(),
                &audit_head,
            )
        })
        .collect())
}

/// One person's receipt: their step entries, and the digital job's changes to their
/// records.
#[allow(clippy::too_many_arguments)]
fn receipt(
    jid: &str,
    j: Journaled,
    e: &Entry,
    steps: &[Entry],
    changes: &[Entry],
    p: &Value,
    digital_job: Option<String>,
    audit_head: &str,
) -> Receipt {
    let mut audit = super::receipt::step_seqs(steps, &e.target);
    let messages: BTreeSet<&str> = j.messages.iter().map(String::as_str).collect();
    let customers: BTreeSet<&str> = j.customers.iter().map(String::as_str).collect();
    let cases: BTreeSet<&str> = j.cases.iter().map(String::as_str).collect();
    let mut fields = Vec::new();
    for c in changes {
        let t = c.target.as_str();
        let field = |kind: &str| {
            format!(
                "{kind} {t}: {} ({})",
                c.details["field"].as_str().unwrap_or("?"),
                c.details["op"].as_str().unwrap_or("?")
            )
        };
        let step = match c.operation.as_str() {
            "dfo.message.removed" if messages.contains(t) => "messages",
            "dfo.customer.field" if customers.contains(t) => {
                fields.push(field("customer"));
                "fields"
            }
            "dfo.case.field" if cases.contains(t) => {
                fields.push(field("case"));
                "fields"
            }
            "dfo.customer.note.deleted" if customers.contains(t) => "notes",
            _ => continue,
        };
        audit.entry(step.to_string()).or_default().push(c.seq);
    }
    for v in audit.values_mut() {
        v.sort_unstable();
    }
    Receipt {
        reference: String::new(),
        pseudonym: e.target.clone(),
        key_id: e.details["key"].as_str().unwrap_or_default().to_string(),
        job_id: jid.to_string(),
        records_found: !j.customers.is_empty() || !j.cases.is_empty() || !j.voice.is_empty(),
        contacts: Vec::new(),
        anonymize_job: None,
        guests: Vec::new(),
        platform: PlatformErasure::journaled(p),
        audit,
        audit_head: audit_head.to_string(),
        digital: Some(DigitalErased {
            digital_job: (!j.cases.is_empty() || !j.customers.is_empty())
                .then_some(digital_job)
                .flatten(),
            customers: j.customers,
            cases: j.cases,
            messages: j.messages,
            fields,
            voice_contacts: j.voice,
            links: j.linked,
        }),
        notice: Some(PLATFORM_NOTICE),
    }
}
