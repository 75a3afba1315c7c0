//! Erasing subjects on CXone's published API, as one journaled `subject.erase` job whose
//! order is fixed:
//!
//! 1. **find** the subjects' DFO customers, cases and messages and their completed
//!    contacts ([`super::real::find`]); what was found is journaled (ids only), so a
//!    resumed run erases what the first run found;
//! 2. **digital**: every message of their cases loses its content and author name with
//!    reason `GDPR`, and the policy's `[digital]` field and notes rules apply to their
//!    customers and cases — through `digital anonymize`'s own job (paced, audited per
//!    message and field; a message already removed is skipped, so a resume repeats no
//!    removal);
//! 3. **link**: the identity field (`[identity] attribute`) deleted from the customers
//!    it linked to the person (as the tutorials' erasure deletes the guest attribute);
//! 4. **platform**: CXone's erasure (spec-real §5) per subject, for the voice side; it
//!    is asynchronous and does not cover DFO data, which step 2 erased;
//! 5. the job closed; receipts are built from the journal and the audit log.

use std::collections::BTreeSet;
use std::sync::Arc;

use ledger::{Details, Ledger};
use serde_json::{Value, json};

use super::steps::{Options, close, entry, platform_step};
use super::{Matcher, Subject};
use crate::digital::{DigitalPolicy, Selection};
use crate::job::{Job, Progress};
use crate::{Error, Result};

/// What the find step journaled of one subject (ids only).
#[derive(Debug, Clone, Default)]
pub(super) struct Journaled {
    pub customers: Vec<String>,
    pub cases: Vec<String>,
    pub messages: Vec<String>,
    pub voice: Vec<String>,
    /// The customers whose identity field (`[identity] attribute`) holds the person's
    /// pseudonym: the link deleted.
    pub linked: Vec<String>,
}

impl Journaled {
    pub(super) fn from_value(v: &Value) -> Self {
        let ids = |k: &str| -> Vec<String> {
            v[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Journaled {
            customers: ids("customers"),
            cases: ids("cases"),
            messages: ids("messages"),
            voice: ids("voice"),
            linked: ids("linked"),
        }
    }
}

pub(super) fn fingerprint(policy: &DigitalPolicy, subjects: &[Subject], o: &Options) -> String {
    use secrecy::ExposeSecret as _;
    // The external ids change what is found: another set is another job (by digest).
    let p: Vec<String> = subjects
        .iter()
        .map(|s| {
            let mut ext: Vec<&str> = s.external_ids.iter().map(|e| e.expose_secret()).collect();
            ext.sort_unstable();
            if ext.is_empty() {
                s.pseudonym.clone()
            } else {
                format!("{}+{}", s.pseudonym, crate::sha256_hex(&ext.join("\n")))
            }
        })
        .collect();
    crate::sha256_hex(&format!(
        "cxone\n{}\n{}\n{}",
        policy.digest,
        o.platform,
        p.join(",")
    ))
}

/// Runs (or resumes) the erasure `job`, checked and attached by `erase::run` under its
/// lease.
pub(super) async fn run(
    client: &cxone::Client,
    ledger: &Ledger,
    job: &Job<'_>,
    policy: &DigitalPolicy,
    subjects: &[Subject],
    matcher: &Matcher,
    o: &Options,
) -> Result<()> {
    let jid = job.id();
    let items = ledger.job_items(jid, None, 1_000_000).await?;
    let state = |k: &str| {
        items
            .iter()
            .find(|i| i.key == k)
            .map(|i| (i.state.clone(), i.result.clone()))
    };
    let done = |k: &str| matches!(state(k), Some((s, _)) if s == "done");

    // 1. find (read-only; what it found is journaled).
    let found: Vec<Journaled> = match state("find") {
        Some((s, Some(r))) if s == "done" => r["subjects"]
            .as_array()
            .map(|a| a.iter().map(Journaled::from_value).collect())
            .unwrap_or_default(),
        _ => find_step(client, job, subjects, matcher, o).await?,
    };
    if found.len() != subjects.len() {
        return Err(Error::Invalid(format!(
            "job {jid} was started with other subjects; nothing more was done"
        )));
    }
    crate::failpoint("subject.found");

    // 2. digital, through digital anonymize's own job.
    if !done("digital") {
        digital_step(client, ledger, job, policy, subjects, &found, o).await?;
    }
    crate::failpoint("subject.digital");

    // 3. the identity links: the pseudonym field deleted from the linked customers.
    let linked: BTreeSet<&String> = found.iter().flat_map(|j| &j.linked).collect();
    let keys: Vec<String> = linked.iter().map(|c| format!("link:{c}")).collect();
    job.add_items(&keys).await?;
    for (c, key) in linked.iter().zip(&keys) {
        if !done(key) {
            link_step(client, job, subjects, &found, c, key, o).await?;
        }
    }

    // 4. the platform erasure per subject, journaled before it is sent.
    for (i, s) in subjects.iter().enumerate() {
        let key = format!("platform:{i}");
        if !done(&key) {
            platform_step(client, job, s, &key, o).await?;
        }
    }
    close(ledger, jid, o, subjects.len()).await
}

/// Step 1: every subject's records found and journaled (ids only), one audit entry
/// each.
async fn find_step(
    client: &cxone::Client,
    job: &Job<'_>,
    subjects: &[Subject],
    matcher: &Matcher,
    o: &Options,
) -> Result<Vec<Journaled>> {
    let since = o.since.unwrap_or_else(|| {
        time::OffsetDateTime::now_utc() - time::Duration::days(super::real::DEFAULT_SINCE_DAYS)
    });
    let f = super::real::find(client, subjects, matcher, since).await?;
    let journaled: Vec<Journaled> = f
        .subjects
        .iter()
        .map(|s| Journaled {
            customers: s.customers.iter().map(|c| c.id.clone()).collect(),
            cases: s.cases.clone(),
            messages: s.messages.iter().map(|m| m.id.clone()).collect(),
            voice: s.voice.iter().map(|v| v.id.clone()).collect(),
            linked: s
                .customers
                .iter()
                .filter(|c| c.holds.contains_key(&format!("field:{}", o.attribute)))
                .map(|c| c.id.clone())
                .collect(),
        })
        .collect();
    let result: Vec<Value> = f
        .subjects
        .iter()
        .zip(&journaled)
        .map(|(s, j)| {
            json!({"reference": s.reference, "customers": j.customers, "cases": j.cases,
                   "messages": j.messages, "voice": j.voice, "linked": j.linked})
        })
        .collect();
    let mut audit = Vec::new();
    for (s, j) in subjects.iter().zip(&journaled) {
        audit.push(entry(
            &o.actor,
            "subject.erase.find",
            s,
            job.id(),
            Details::new()
                .count("customers", j.customers.len() as u64)
                .count("cases", j.cases.len() as u64)
                .count("messages", j.messages.len() as u64)
                .count("voice_contacts", j.voice.len() as u64),
        )?);
    }
    job.claim("find").await?;
    job.step_done("find", Some(json!({"subjects": result})), audit)
        .await?;
    Ok(journaled)
}

/// Step 2: the subjects' messages removed and fields changed by one `digital.anonymize`
/// job; its id journaled, one audit entry per subject.
async fn digital_step(
    client: &cxone::Client,
    ledger: &Ledger,
    job: &Job<'_>,
    policy: &DigitalPolicy,
    subjects: &[Subject],
    found: &[Journaled],
    o: &Options,
) -> Result<()> {
    let cases: BTreeSet<String> = found.iter().flat_map(|j| j.cases.clone()).collect();
    let customers: BTreeSet<String> = found.iter().flat_map(|j| j.customers.clone()).collect();
    job.claim("digital").await?;
    let digital_job = if cases.is_empty() && customers.is_empty() {
        None
    } else {
        let report = crate::digital::anonymize(
            client,
            ledger,
            policy,
            &Selection::Subject {
                cases: cases.into_iter().collect(),
                customers: customers.into_iter().collect(),
            },
            &o.actor,
            Arc::new(Progress::default()),
        )
        .await?;
        if report.failed + report.not_found > 0 {
            return Err(Error::Invalid(format!(
                "{} case(s) or customer(s) could not be erased and {} were not found (digital job {}); run the same command again to finish the erasure",
                report.failed, report.not_found, report.job_id
            )));
        }
        Some(report.job_id)
    };
    let mut audit = Vec::new();
    for (s, j) in subjects.iter().zip(found) {
        let mut d = Details::new()
            .count("messages", j.messages.len() as u64)
            .count("cases", j.cases.len() as u64)
            .count("customers", j.customers.len() as u64)
            .label("reason", "GDPR");
        if let Some(dj) = &digital_job {
            d = d.id("digital_job", dj)?;
        }
        audit.push(entry(&o.actor, "subject.erase.digital", s, job.id(), d)?);
    }
    job.step_done("digital", Some(json!({"digital_job": digital_job})), audit)
        .await
}

/// Step 3, one customer: its identity field deleted, audited for each subject it held.
async fn link_step(
    client: &cxone::Client,
    job: &Job<'_>,
    subjects: &[Subject],
    found: &[Journaled],
    customer: &str,
    key: &str,
    o: &Options,
) -> Result<()> {
    if let ledger::Claim::AlreadyDone = job.claim(key).await? {
        return Ok(());
    }
    match client
        .dfo()
        .delete_customer_field(customer, &o.attribute)
        .await
    {
        Ok(()) => {}
        // Gone since it was found: no link of anyone is left there.
        Err(e) if e.status() == Some(404) => {}
        Err(e) => return Err(e.into()),
    }
    let mut audit = Vec::new();
    for (s, j) in subjects.iter().zip(found) {
        if j.linked.iter().any(|c| c == customer) {
            audit.push(entry(
                &o.actor,
                "subject.erase.link",
                s,
                job.id(),
                Details::new()
                    .id("customer", customer)?
                    .id("attribute", &o.attribute)?,
            )?);
        }
    }
    job.step_done(key, None, audit).await
}
