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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cxone::models::AttributeOp;
use cxone::privacy::SubjectKind;
use ledger::{Claim, Details, Filter, JobStatus, Ledger, NewEntry, NewJob, Outcome};
use secrecy::ExposeSecret as _;
use serde::Serialize;
use serde_json::{Value, json};

use super::find::{ContactHit, find};
use super::{Matcher, Subject};
use crate::anonymize::{self, Policy, Selection};
use crate::job::{Job, Progress};
use crate::pseudonym::Kind;
use crate::{Error, Result};

/// The journal's kind of an erasure job.
pub const JOB_KIND: &str = "subject.erase";
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

/// How an erasure runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Who runs it, for the audit trail.
    pub actor: String,
    /// File the platform erasure (spec §9); `false` when the operator files it apart.
    pub platform: bool,
    /// Contacts per listing page of the search.
    pub page_size: cxone::PageSize,
    /// PATCHes in flight at once.
    pub concurrency: usize,
    /// The guests' identity attribute.
    pub attribute: String,
}

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

fn entry(actor: &str, op: &'static str, s: &Subject, job: &str, d: Details) -> Result<NewEntry> {
    s.entry(actor, op, d.id("job", job)?.id("key", &s.key_id)?)
}

/// Opens the erasure job of `subjects` (already validated and pseudonymized): the
/// unfinished job with the same subjects, policy and options, else a new one, journaled
/// before anything is read. Returns its id.
pub async fn open(
    ledger: &Ledger,
    policy: &Policy,
    subjects: &[Subject],
    o: &Options,
) -> Result<String> {
    let fp = fingerprint(policy, subjects, o);
    ledger::details::check_identifier("actor", &o.actor)?;
    let mut items = vec!["find".to_string(), "contacts".to_string()];
    items.extend((0..subjects.len()).map(|i| format!("platform:{i}")));
    // One step in the ledger: two service replicas given the same request at once open
    // one job.
    Ok(ledger
        .open_job(NewJob {
            id: Ledger::new_job_id(JOB_KIND),
            kind: JOB_KIND,
            actor: o.actor.clone(),
            params: Details::new()
                .count("subjects", subjects.len() as u64)
                .sha256("policy", &policy.digest)?
                .flag("platform_erasure", o.platform),
            items,
            fingerprint: Some(fp),
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
    policy: &Policy,
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
    policy: &Policy,
    subjects: &[Subject],
    matcher: &Matcher,
    o: &Options,
) -> Result<()> {
    let held = crate::lease::take(ledger, jid).await?;
    let r = run_leased(client, ledger, jid, policy, subjects, matcher, o).await;
    held.release().await;
    r
}

async fn run_leased(
    client: &cxone::Client,
    ledger: &Ledger,
    jid: &str,
    policy: &Policy,
    subjects: &[Subject],
    matcher: &Matcher,
    o: &Options,
) -> Result<()> {
    if ledger.job_fingerprint(jid).await?.as_deref()
        != Some(fingerprint(policy, subjects, o).as_str())
    {
        return Err(Error::Invalid(format!(
            "job {jid} was started with other subjects, policy or options; nothing was done"
        )));
    }
    let progress = Arc::new(Progress::default());
    let job = Job::attach(client, ledger, jid, JOB_KIND, &o.actor, progress).await?;
    let jid = jid.to_string();
    let state = |items: &[ledger::JobItem], k: &str| {
        items
            .iter()
            .find(|i| i.key == k)
            .map(|i| (i.state.clone(), i.result.clone()))
    };
    let items = ledger.job_items(&jid, None, 1_000_000).await?;

    // 1. find (read-only; what it found is journaled).
    let found: Vec<(Vec<ContactHit>, Vec<String>)> = match state(&items, "find") {
        Some((s, Some(r))) if s == "done" => {
            serde_json::from_value::<Vec<Value>>(r["subjects"].clone())
                .map_err(|e| Error::Invalid(format!("job {jid}: unreadable find result: {e}")))?
                .iter()
                .map(journaled)
                .collect()
        }
        _ => {
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
                    &jid,
                    Details::new()
                        .count("contacts", sf.contacts.len() as u64)
                        .count("guests", sf.guests.len() as u64),
                )?);
            }
            job.claim("find").await?;
            job.step_done("find", Some(json!({"subjects": result})), audit)
                .await?;
            f.subjects
                .into_iter()
                .map(|s| (s.contacts, s.guests))
                .collect()
        }
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
        contacts_step(client, ledger, policy, subjects, &found, &job, o).await?;
    }

    // 3. guests: the identity attribute deleted.
    let items = ledger.job_items(&jid, None, 1_000_000).await?;
    for (g, key) in guests.iter().zip(&guest_keys) {
        if matches!(state(&items, key), Some((s, _)) if s == "done") {
            continue;
        }
        if let Claim::AlreadyDone = job.claim(key).await? {
            continue;
        }
        let op = [AttributeOp::delete(&o.attribute)];
        match client.guests().patch_attributes(g, &op).await {
            Ok(_) => {}
            // Deleted since it was found: nothing of the person is left there.
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e.into()),
        }
        let mut audit = Vec::new();
        for (s, (_, gs)) in subjects.iter().zip(&found) {
            if gs.iter().any(|x| x == *g) {
                audit.push(entry(
                    &o.actor,
                    "subject.erase.guest",
                    s,
                    &jid,
                    Details::new()
                        .id("guest", g)?
                        .id("attribute", &o.attribute)?,
                )?);
            }
        }
        job.step_done(key, None, audit).await?;
    }

    // 4. the platform erasure, journaled before it is sent.
    for (i, s) in subjects.iter().enumerate() {
        let key = format!("platform:{i}");
        if matches!(state(&items, &key), Some((st, _)) if st == "done") {
            continue;
        }
        job.claim(&key).await?;
        let (result, details) = if o.platform {
            let kind = match s.kind {
                Kind::Email => SubjectKind::Email,
                Kind::Phone => SubjectKind::Phone,
            };
            let id = client
                .privacy()
                .erasure(s.normalized.expose_secret(), kind)
                .await?;
            (
                json!({"request_id": id}),
                Details::new().id("request_id", &id)?,
            )
        } else {
            (
                json!({"skipped": true}),
                Details::new().flag("skipped", true),
            )
        };
        let audit = vec![entry(&o.actor, "subject.erase.platform", s, &jid, details)?];
        job.step_done(&key, Some(result), audit).await?;
    }

    // 5. closed.
    ledger
        .finish_job(
            &jid,
            JobStatus::Done,
            NewEntry::new(
                &o.actor,
                "job.finish",
                &jid,
                Outcome::Success,
                Details::new()
                    .label("status", "erased")
                    .count("subjects", subjects.len() as u64),
            )?,
        )
        .await?;
    Ok(())
}

/// The receipts of the finished erasure job `jid`, read from its journal and the audit
/// trail alone — the same whichever process ran it, and however often it was resumed.
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
    // Every step's entries name the job; the find entries come one per subject, in
    // the subjects' order, and carry the pseudonym (target) and its key.
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
    let mut receipts = Vec::with_capacity(found.len());
    for (i, (f, e)) in found.iter().zip(finds).enumerate() {
        let (contacts, guests) = journaled(f);
        let p = result(&format!("platform:{i}"));
        let mut audit: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for s in steps.iter().filter(|s| s.target == e.target) {
            let step = s.operation.trim_start_matches("subject.erase.").to_string();
            audit.entry(step).or_default().push(s.seq);
        }
        receipts.push(Receipt {
            reference: f["reference"]
                .as_str()
                .map_or_else(|| format!("#{}", i + 1), str::to_string),
            pseudonym: e.target.clone(),
            key_id: e.details["key"].as_str().unwrap_or_default().to_string(),
            job_id: jid.to_string(),
            records_found: !contacts.is_empty() || !guests.is_empty(),
            anonymize_job: (!contacts.is_empty())
                .then(|| anonymize_job.clone())
                .flatten(),
            contacts,
            guests,
            platform: PlatformErasure {
                status: if p["skipped"] == true {
                    "skipped"
                } else {
                    "submitted"
                },
                request_id: p["request_id"].as_str().map(str::to_string),
            },
            audit,
            audit_head: audit_head.clone(),
        });
    }
    Ok(receipts)
}

/// What the find step journaled of one subject: its contacts and guests.
fn journaled(v: &Value) -> (Vec<ContactHit>, Vec<String>) {
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
