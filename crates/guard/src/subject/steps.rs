//! The steps a subject erasure takes on either surface: its options, the audit entry of
//! a step, the platform erasure (spec §9, spec-real §5) and the job's close.

use cxone::privacy::SubjectKind;
use ledger::{Details, JobStatus, Ledger, NewEntry, Outcome};
use secrecy::ExposeSecret as _;
use serde_json::json;

use super::Subject;
use crate::Result;
use crate::job::Job;
use crate::pseudonym::Kind;

/// The journal's kind of an erasure job.
pub const JOB_KIND: &str = "subject.erase";

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
    /// On CXone's published API: the start of the completed contacts searched; `None`
    /// is [`super::real::DEFAULT_SINCE_DAYS`] before the search.
    pub since: Option<time::OffsetDateTime>,
}

pub(super) fn entry(
    actor: &str,
    op: &'static str,
    s: &Subject,
    job: &str,
    d: Details,
) -> Result<NewEntry> {
    s.entry(actor, op, d.id("job", job)?.id("key", &s.key_id)?)
}

/// Step 4, one subject: the platform erasure (or its skip), journaled before it is sent.
pub(super) async fn platform_step(
    client: &cxone::Client,
    job: &Job<'_>,
    s: &Subject,
    key: &str,
    o: &Options,
) -> Result<()> {
    job.claim(key).await?;
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
    let audit = vec![entry(
        &o.actor,
        "subject.erase.platform",
        s,
        job.id(),
        details,
    )?];
    job.step_done(key, Some(result), audit).await?;
    Ok(())
}

/// Step 5: the job closed as erased.
pub(super) async fn close(ledger: &Ledger, jid: &str, o: &Options, subjects: usize) -> Result<()> {
    ledger
        .finish_job(
            jid,
            JobStatus::Done,
            NewEntry::new(
                &o.actor,
                "job.finish",
                jid,
                Outcome::Success,
                Details::new()
                    .label("status", "erased")
                    .count("subjects", subjects as u64),
            )?,
        )
        .await?;
    Ok(())
}
