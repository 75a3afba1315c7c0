//! Erasing subjects (GDPR Art. 17): one journaled job whose order is fixed —
//!
//! 1. **find** the subjects ([`super::find()`]); what was found (contact ids and fields,
//!    guest ids — never an identifier) is journaled, so a resumed run erases what the
//!    first run found even after the contacts no longer hold the identifier;
//! 2. **contacts**: anonymize the matching contacts with the given masking policy through
//!    anonymize's own job (ETags, audit entries, consent events; a rerun resumes it);
//! 3. **guests**: delete the identity attribute of each matching guest (spec §6);
//! 4. **platform**: file CXone's erasure (spec §9) per subject — recordings and
//!    transcripts hold people no contact field does, so it is filed even when nothing
//!    was found — unless the operator files it separately;
//! 5. **receipt** per subject, from the journal and the audit trail.
//!
//! Each effect is claimed in the journal before it is made and settled with its audit
//! entry after, so a crash at any point resumes without repeating one, with a single
//! window: killed after a platform request was sent and before its answer was
//! journaled, the rerun files that subject's request again (spec §9: a repeat is
//! harmless; the receipt keeps the request id that was journaled).

use std::collections::BTreeSet;
use std::sync::Arc;

use cxone::models::AttributeOp;
use ledger::{Claim, Details, JobStatus, Ledger, NewJob};
use serde_json::{Value, json};

use super::find::{ContactHit, find};
use super::{Matcher, Subject};
use crate::anonymize::{self, Policy, Selection};
use crate::job::{Job, Progress};
use crate::{Error, Result};

use super::receipt::journaled;
pub use super::receipt::{DigitalErased, PLATFORM_NOTICE, PlatformErasure, Receipt};
pub use super::steps::{JOB_KIND, Options};
use super::steps::{close, entry, platform_step};
/// What erasing needs of the token when the operator files the platform erasure apart:
/// reading and changing contacts and guests.
pub const SCOPES_WITHOUT_PLATFORM: &[&str] = &[
    "contact:read",
    "contact:write",
    "interaction:guest:read",
    "interaction:guest:write",
];
/// What erasing needs of the token: the above, and filing the platform erasure.
pub const SCOPES: &[&str] = &[
    "contact:read",
    "contact:write",
    "interaction:guest:read",
    "interaction:guest:write",
    "privacy:erasure:write",
];

/// The policy an erasure applies: on the tutorials' routes a masking policy for the
/// contacts (`[fields]`); on CXone's published API its `[digital]` section for the DFO
/// customers and cases, every message removed with reason `GDPR`
/// ([`crate::digital::policy::for_erasure`]).
#[derive(Debug)]
pub enum ErasePolicy {
    /// The tutorials' routes.
    Contacts(Policy),
    /// CXone's published API.
    Digital(crate::digital::DigitalPolicy),
}

impl ErasePolicy {
    /// The policy file `text` read from `path` for the surface the tenant speaks.
    pub fn load(
        path: &std::path::Path,
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
        cxone: bool,
    ) -> Result<Self> {
        if cxone {
            return crate::digital::policy::for_erasure(path, text, lookup).map(Self::Digital);
        }
        Policy::parse(text, path, lookup)
            .map(Self::Contacts)
            .map_err(|problems| {
                Error::Invalid(format!(
                    "{} does not validate; nothing was changed:\n  {}",
                    path.display(),
                    problems.join("\n  ")
                ))
            })
    }

    /// What a rerun must match to resume the job of `subjects`.
    fn fingerprint(&self, subjects: &[Subject], o: &Options) -> String {
        match self {
            Self::Contacts(p) => fingerprint(p, subjects, o),
            Self::Digital(d) => super::erase_real::fingerprint(d, subjects, o),
        }
    }

    /// The keys of its pseudonymize rules: a subject's pseudonyms under them match too.
    pub fn pseudonymize_keys(&self) -> Vec<&crate::keys::Key> {
        match self {
            Self::Contacts(p) => p.pseudonymize_keys(),
            Self::Digital(d) => {
                let mut k = d.customer_fields.pseudonymize_keys();
                k.extend(d.case_fields.pseudonymize_keys());
                k
            }
        }
    }
}

/// What a rerun must match to resume a job. In the subjects' order: the journal names
/// each subject's steps by position (`platform:3`, the find result's fourth entry), so
/// the same requests in another order are another job, not a resume that would pair
/// one person's findings and platform request with another's.
fn fingerprint(policy: &Policy, subjects: &[Subject], o: &Options) -> String {
    let p: Vec<&str> = subjects.iter().map(|s| s.pseudonym.as_str()).collect();
    crate::sha256_hex(&format!(
        "{}\n{}\n{}",
        policy.digest,
        o.platform,
        p.join(",")
    ))
}

/// Opens the erasure job of `subjects` (already validated and pseudonymized): the
/// unfinished job with the same subjects, policy and options, else a new one, journaled
/// before anything is read. Returns its id.
pub async fn open(
    ledger: &Ledger,
    policy: &ErasePolicy,
    subjects: &[Subject],
    o: &Options,
) -> Result<String> {
    ledger::details::check_identifier("actor", &o.actor)?;
    let (middle, digest, api) = match policy {
        ErasePolicy::Contacts(p) => ("contacts", &p.digest, "tutorial"),
        ErasePolicy::Digital(d) => ("digital", &d.digest, "cxone"),
    };
    let mut items = vec!["find".to_string(), middle.to_string()];
    items.extend((0..subjects.len()).map(|i| format!("platform:{i}")));
    let mut params = Details::new()
        .count("subjects", subjects.len() as u64)
        .sha256("policy", digest)?
        .flag("platform_erasure", o.platform);
    if api == "cxone" {
        params = params.label("api", "cxone");
    }
    // One step in the ledger: two service replicas given the same request at once open
    // one job.
    Ok(ledger
        .open_job(NewJob {
            id: Ledger::new_job_id(JOB_KIND),
            kind: JOB_KIND,
            actor: o.actor.clone(),
            params,
            items,
            fingerprint: Some(policy.fingerprint(subjects, o)),
        })
        .await?
        .0)
}

/// Erases `subjects` (already validated and pseudonymized) in the fixed order; returns a
/// receipt per subject. A rerun with the same subjects, policy and options resumes the
/// unfinished job.
pub async fn erase(
    client: &cxone::Client,
    ledger: &Ledger,
    policy: &ErasePolicy,
    subjects: &[Subject],
    matcher: &Matcher,
    o: &Options,
) -> Result<Vec<Receipt>> {
    let jid = open(ledger, policy, subjects, o).await?;
    run(client, ledger, &jid, policy, subjects, matcher, o).await?;
    receipts(ledger, &jid).await
}

/// Runs (or resumes) the opened erasure job `jid` of `subjects` to its end, holding its
/// lease: a job another process is running is refused ([`Error::Busy`]), never run
/// twice at once.
pub async fn run(
    client: &cxone::Client,
    ledger: &Ledger,
    jid: &str,
    policy: &ErasePolicy,
    subjects: &[Subject],
    matcher: &Matcher,
    o: &Options,
) -> Result<()> {
    let held = crate::lease::take(ledger, jid).await?;
    let r = run_leased(client, ledger, jid, policy, subjects, matcher, o).await;
    held.release().await;
    r
}

/// The job checked against the request (same subjects, policy and options) and
/// attached, then run by its surface's steps.
async fn run_leased(
    client: &cxone::Client,
    ledger: &Ledger,
    jid: &str,
    policy: &ErasePolicy,
    subjects: &[Subject],
    matcher: &Matcher,
    o: &Options,
) -> Result<()> {
    if ledger.job_fingerprint(jid).await?.as_deref()
        != Some(policy.fingerprint(subjects, o).as_str())
    {
        return Err(Error::Invalid(format!(
            "job {jid} was started with other subjects, policy or options; nothing was done"
        )));
    }
    let progress = Arc::new(Progress::default());
    let job = Job::attach(client, ledger, jid, JOB_KIND, &o.actor, progress).await?;
    match policy {
        ErasePolicy::Contacts(p) => {
            run_contacts(client, ledger, &job, p, subjects, matcher, o).await
        }
        ErasePolicy::Digital(d) => {
            super::erase_real::run(client, ledger, &job, d, subjects, matcher, o).await
        }
    }
}

/// The tutorials' routes: find, the contacts, the guests, the platform erasure.
async fn run_contacts(
    client: &cxone::Client,
    ledger: &Ledger,
    job: &Job<'_>,
    policy: &Policy,
    subjects: &[Subject],
    matcher: &Matcher,
    o: &Options,
) -> Result<()> {
    let jid = job.id().to_string();
    let state = |items: &[ledger::JobItem], k: &str| {
        items
            .iter()
            .find(|i| i.key == k)
            .map(|i| (i.state.clone(), i.result.clone()))
    };
    let items = ledger.job_items(&jid, None, 1_000_000).await?;

    // 1. find (read-only; what it found is journaled).
    let found = match state(&items, "find") {
        Some((s, Some(r))) if s == "done" => {
            serde_json::from_value::<Vec<Value>>(r["subjects"].clone())
                .map_err(|e| Error::Invalid(format!("job {jid}: unreadable find result: {e}")))?
                .iter()
                .map(journaled)
                .collect()
        }
        _ => find_step(client, ledger, job, subjects, matcher, o).await?,
    };
    if found.len() != subjects.len() {
        return Err(Error::Invalid(format!(
            "job {jid} was started with other subjects; nothing more was done"
        )));
    }
    let guests: BTreeSet<&String> = found.iter().flat_map(|(_, g)| g).collect();
    let guest_keys: Vec<String> = guests.iter().map(|g| format!("guest:{g}")).collect();
    job.add_items(&guest_keys).await?;

    // 2. contacts, through anonymize's own job.
    if !matches!(state(&items, "contacts"), Some((s, _)) if s == "done") {
        contacts_step(client, ledger, policy, subjects, &found, job, o).await?;
    }

    // 3. guests: the identity attribute deleted.
    let items = ledger.job_items(&jid, None, 1_000_000).await?;
    for (g, key) in guests.iter().zip(&guest_keys) {
        if !matches!(state(&items, key), Some((s, _)) if s == "done") {
            guest_step(client, job, subjects, &found, g, key, o).await?;
        }
    }
    // 4. the platform erasure, journaled before it is sent.
    for (i, s) in subjects.iter().enumerate() {
        let key = format!("platform:{i}");
        if !matches!(state(&items, &key), Some((st, _)) if st == "done") {
            platform_step(client, job, s, &key, o).await?;
        }
    }

    // 5. closed.
    close(ledger, &jid, o, subjects.len()).await
}

/// Step 1: every subject's contacts and guests found, journaled with one audit entry per
/// subject.
async fn find_step(
    client: &cxone::Client,
    ledger: &Ledger,
    job: &Job<'_>,
    subjects: &[Subject],
    matcher: &Matcher,
    o: &Options,
) -> Result<Vec<(Vec<ContactHit>, Vec<String>)>> {
    let f = find(client, ledger, subjects, matcher, &o.attribute, o.page_size).await?;
    let result: Vec<Value> = f
        .subjects
        .iter()
        .map(|s| json!({"reference": s.reference, "contacts": s.contacts, "guests": s.guests}))
        .collect();
    let mut audit = Vec::new();
    for (s, sf) in subjects.iter().zip(&f.subjects) {
        audit.push(entry(
            &o.actor,
            "subject.erase.find",
            s,
            job.id(),
            Details::new()
                .count("contacts", sf.contacts.len() as u64)
                .count("guests", sf.guests.len() as u64),
        )?);
    }
    job.claim("find").await?;
    job.step_done("find", Some(json!({"subjects": result})), audit)
        .await?;
    Ok(f.subjects
        .into_iter()
        .map(|s| (s.contacts, s.guests))
        .collect())
}

/// Step 3, one guest: its identity attribute deleted, audited for each subject it held.
async fn guest_step(
    client: &cxone::Client,
    job: &Job<'_>,
    subjects: &[Subject],
    found: &[(Vec<ContactHit>, Vec<String>)],
    g: &str,
    key: &str,
    o: &Options,
) -> Result<()> {
    if let Claim::AlreadyDone = job.claim(key).await? {
        return Ok(());
    }
    let op = [AttributeOp::delete(&o.attribute)];
    match client.guests().patch_attributes(g, &op).await {
        Ok(_) => {}
        // Deleted since it was found: nothing of the person is left there.
        Err(e) if e.status() == Some(404) => {}
        Err(e) => return Err(e.into()),
    }
    let mut audit = Vec::new();
    for (s, (_, gs)) in subjects.iter().zip(found) {
        if gs.iter().any(|x| x == g) {
            audit.push(entry(
                &o.actor,
                "subject.erase.guest",
                s,
                job.id(),
                Details::new()
                    .id("guest", g)?
                    .id("attribute", &o.attribute)?,
            )?);
        }
    }
    job.step_done(key, None, audit).await?;
    Ok(())
}

/// Step 2: every matching contact anonymized by anonymize's own job; its id journaled.
async fn contacts_step(
    client: &cxone::Client,
    ledger: &Ledger,
    policy: &Policy,
    subjects: &[Subject],
    found: &[(Vec<ContactHit>, Vec<String>)],
    job: &Job<'_>,
    o: &Options,
) -> Result<()> {
    let ids: BTreeSet<String> = found
        .iter()
        .flat_map(|(c, _)| c.iter().map(|h| h.id.clone()))
        .collect();
    let jid = job.id().to_string();
    job.claim("contacts").await?;
    let anonymize_job = if ids.is_empty() {
        None
    } else {
        let report = anonymize::run(
            client,
            ledger,
            policy,
            &Selection::Ids(ids.into_iter().collect()),
            &anonymize::Options {
                concurrency: o.concurrency,
                page_size: o.page_size,
                actor: o.actor.clone(),
                resume: None,
                conflict_retries: 3,
            },
            Arc::new(Progress::default()),
        )
        .await?;
        if report.failed + report.not_found > 0 {
            return Err(Error::Invalid(format!(
                "{} contact(s) could not be anonymized and {} were not found (anonymize job {}); run the same command again to finish the erasure",
                report.failed, report.not_found, report.job_id
            )));
        }
        Some(report.job_id.clone())
    };
    let mut audit = Vec::new();
    for (s, (contacts, _)) in subjects.iter().zip(found) {
        let mut d = Details::new().count("contacts", contacts.len() as u64);
        if let Some(a) = &anonymize_job {
            d = d.id("anonymize_job", a)?;
        }
        audit.push(entry(&o.actor, "subject.erase.contacts", s, &jid, d)?);
    }
    job.step_done(
        "contacts",
        Some(json!({"anonymize_job": anonymize_job})),
        audit,
    )
    .await
}

/// The receipts of a finished erasure job, one per subject, in the request's order,
/// built from the journal and the audit trail alone — the same whichever process ran
/// it, and however often it was resumed.
pub async fn receipts(ledger: &Ledger, jid: &str) -> Result<Vec<Receipt>> {
    let job = ledger.job(jid).await?;
    if job.kind != JOB_KIND {
        return Err(Error::Invalid(format!(
            "job {jid} is a {} job, not a {JOB_KIND} job",
            job.kind
        )));
    }
    if job.status != JobStatus::Done.as_str() {
        return Err(Error::Invalid(format!(
            "job {jid} has not finished ({}): it has no receipts yet",
            job.status
        )));
    }
    let items = ledger.job_items(jid, None, 1_000_000).await?;
    if items.iter().any(|i| i.key == "digital") {
        return super::receipt_real::build(ledger, jid, &items).await;
    }
    super::receipt::build(ledger, jid).await
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::{Options, Subject, fingerprint};
    use crate::pseudonym::Kind;

    fn subject(p: &str) -> Subject {
        Subject {
            reference: p.into(),
            kind: Kind::Email,
            normalized: SecretString::from(format!("{p}@example.com")),
            pseudonym: p.repeat(8),
            key_id: "k".into(),
            external_ids: Vec::new(),
        }
    }

    #[test]
    fn the_same_requests_in_another_order_are_another_job() {
        let policy = crate::anonymize::Policy::parse(
            "[fields]\nfirstName = { op = \"erase\" }\n",
            std::path::Path::new("policy.toml"),
            &|_: &str| None,
        )
        .unwrap();
        let o = Options {
            actor: "test".into(),
            platform: true,
            page_size: cxone::PageSize::new(1000).unwrap(),
            concurrency: 1,
            attribute: "hashed_user_id".into(),
            since: None,
        };
        let (a, b) = (subject("aa"), subject("bb"));
        let ab = fingerprint(&policy, &[a.clone(), b.clone()], &o);
        assert_eq!(ab, fingerprint(&policy, &[a.clone(), b.clone()], &o));
        assert_ne!(ab, fingerprint(&policy, &[b, a], &o));
    }

    #[test]
    fn the_full_scopes_are_the_local_ones_and_the_platform_erasure() {
        let mut want = super::SCOPES_WITHOUT_PLATFORM.to_vec();
        want.push("privacy:erasure:write");
        assert_eq!(super::SCOPES, want.as_slice());
    }
}
