//! Applying a policy file, on the job runner: one journal item per widget. Each widget
//! is read with its ETag, planned, and put with `If-Match` only if it differs. On 412
//! (someone changed it meanwhile) it is read and planned again, so their change to what
//! the file does not manage survives, up to [`CONFLICT_RETRIES`] times. On 422 the
//! tenant's errors are listed and no further widget is touched.
//!
//! A widget changed gets one audit entry (digests before and after, counts) and one
//! `webchat.policy_deployed` event to `[webhooks.waf]` with the `configDigest` of what
//! was deployed, settled together. A widget whose PUT landed just before a crash is found
//! in its target state by the rerun (which resumes the job) and settled then.

use std::sync::Arc;

use cxone::Client;
use ledger::{
    Details, EventKind, ItemOutcome, JobStatus, Ledger, NewEntry, NewEvent, NewJob, Outcome,
};
use serde::Serialize;

use super::plan::{Changes, WidgetPlan, config_digest, plan_one};
use super::policy::Policy;
use super::{JOB_KIND, plan};
use crate::job::{Job, Progress, Resume, Step, Tally};
use crate::{Error, Result};

/// Re-reads after a 412 before giving up on a widget.
pub const CONFLICT_RETRIES: usize = 3;

/// What happened to one widget.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WidgetOutcome {
    /// The widget's id.
    pub widget: String,
    /// `changed`, `unchanged` or `failed`.
    pub outcome: &'static str,
    /// What changed (empty when unchanged).
    pub changes: Changes,
    /// The digest of the policies now deployed.
    pub config_digest: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an apply did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The job in the journal.
    pub job_id: String,
    /// Whether it resumed an unfinished job.
    pub resumed: bool,
    /// Each widget the file names.
    pub widgets: Vec<WidgetOutcome>,
}

impl Report {
    /// Widgets changed.
    pub fn changed(&self) -> usize {
        self.widgets
            .iter()
            .filter(|w| w.outcome == "changed")
            .count()
    }

    /// Widgets that failed.
    pub fn failed(&self) -> usize {
        self.widgets
            .iter()
            .filter(|w| w.outcome == "failed")
            .count()
    }
}

/// Applies `policy`: plans every widget first (a widget the tenant lacks stops it before
/// any PUT), then puts those that differ.
pub async fn apply(
    client: &Client,
    ledger: &Ledger,
    policy: &Policy,
    actor: &str,
) -> Result<Report> {
    let plans = plan(client, policy).await?;
    let progress = Arc::new(Progress::default());
    let fingerprint = crate::sha256_hex(&format!("webchat\n{}", policy.digest));
    let new = NewJob {
        id: Ledger::new_job_id("webchat"),
        kind: JOB_KIND,
        actor: actor.to_string(),
        params: Details::new()
            .ids("widgets", &policy.widgets.keys().collect::<Vec<_>>())?
            .sha256("policy_sha256", &policy.digest)?,
        items: policy.widgets.keys().cloned().collect(),
        fingerprint: Some(fingerprint),
    };
    let job = Job::open(client, ledger, new, Resume::Auto, progress).await?;
    job.found(plans.len());
    let mut outcomes = Vec::with_capacity(plans.len());
    let mut refused: Option<String> = None;
    for first in plans {
        let id = first.widget.clone();
        if let Some(why) = &refused {
            outcomes.push(WidgetOutcome {
                widget: id,
                outcome: "failed",
                changes: first.changes,
                config_digest: None,
                error: Some(format!("not attempted: {why}")),
            });
            continue;
        }
        // Claimed only before a PUT: a widget an interrupted run claimed may have been
        // changed by it; one it never claimed was not.
        let attempt = match job.attempts_of(std::slice::from_ref(&id)).await?.first() {
            Some((_, attempts)) => *attempts,
            // Settled by the interrupted run this one resumes.
            None => {
                let drifted = !first.changes.is_empty();
                outcomes.push(WidgetOutcome {
                    widget: id,
                    outcome: if drifted { "failed" } else { "unchanged" },
                    error: drifted.then(|| {
                        "changed in the tenant since the interrupted run settled it; run again"
                            .to_string()
                    }),
                    changes: first.changes,
                    config_digest: None,
                });
                continue;
            }
        };
        let (outcome, step, was_refused) = one(client, policy, &job, first, attempt).await?;
        if was_refused {
            refused = Some(format!("the tenant refused widget {}", outcome.widget));
        }
        job.settle(vec![step]).await?;
        outcomes.push(outcome);
    }
    finish(job, actor, outcomes).await
}

/// Ends the job, failed if any widget failed, auditing the totals.
async fn finish(job: Job<'_>, actor: &str, outcomes: Vec<WidgetOutcome>) -> Result<Report> {
    let t = job.totals();
    let failed = outcomes.iter().any(|o| o.outcome == "failed") || t.any_failed();
    let status = if failed {
        JobStatus::Failed
    } else {
        JobStatus::Done
    };
    let finish = NewEntry::new(
        actor,
        "job.finish",
        job.id(),
        if failed {
            Outcome::Failure
        } else {
            Outcome::Success
        },
        Details::new()
            .count("changed", t.changed)
            .count("unchanged", t.unchanged)
            .count("failed", t.failed),
    )?;
    let resumed = job.resumed();
    let r = job.finish(status, finish).await?;
    Ok(Report {
        job_id: r.job_id,
        resumed,
        widgets: outcomes,
    })
}

/// Puts one widget if it differs, re-planning after each 412. Says whether the tenant
/// refused it (which stops the job).
/// The tenant's field errors, `field: message; …`, or the error itself.
fn listed_problems(e: &cxone::Error) -> String {
    match e.problem() {
        Some(p) if !p.errors.is_empty() => p
            .errors
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => e.to_string(),
    }
}

async fn one(
    client: &Client,
    policy: &Policy,
    job: &Job<'_>,
    first: WidgetPlan,
    attempt: i64,
) -> Result<(WidgetOutcome, Step, bool)> {
    let id = first.widget.clone();
    let wanted = &policy.widgets[&id];
    let mut plan = first;
    for round in 0..=CONFLICT_RETRIES {
        if round > 0 {
            let (current, etag) = client.webchat().get(&id).await?;
            plan = plan_one(&current, etag, wanted);
        }
        let before = config_digest(&plan.current);
        if plan.changes.is_empty() {
            // Nothing to do — or an earlier, interrupted attempt already did it.
            let (o, st) = if attempt > 0 && round == 0 {
                changed(job, &id, &before, &before, &plan, true)?
            } else {
                unchanged(job, &id, before)?
            };
            return Ok((o, st, false));
        }
        job.claim(&id).await?;
        match job
            .timed(client.webchat().put(&plan.desired, &plan.etag))
            .await
        {
            Ok((deployed, _)) => {
                let after = config_digest(&deployed.settings.security_policies);
                let mut p = plan.clone();
                p.desired = deployed;
                let (o, st) = changed(job, &id, &before, &after, &p, false)?;
                return Ok((o, st, false));
            }
            Err(e) if e.status() == Some(412) => continue,
            Err(e) if e.status() == Some(404) => {
                let (o, st) = failed(
                    job,
                    &id,
                    plan.changes,
                    "the widget was deleted meanwhile (404)".into(),
                )?;
                return Ok((o, st, false));
            }
            Err(e) if matches!(e.status(), Some(400 | 409 | 422)) => {
                let listed = listed_problems(&e);
                let (o, st) = failed(
                    job,
                    &id,
                    plan.changes,
                    format!(
                        "the tenant refused it ({}): {listed}",
                        e.status().unwrap_or(0)
                    ),
                )?;
                return Ok((o, st, true));
            }
            Err(e) => return Err(Error::Api(e)),
        }
    }
    let (o, st) = failed(
        job,
        &id,
        plan.changes,
        format!(
            "it kept changing: {CONFLICT_RETRIES} re-reads after 412 were not enough; run again"
        ),
    )?;
    Ok((o, st, false))
}

fn changed(
    job: &Job<'_>,
    id: &str,
    before: &str,
    after: &str,
    plan: &WidgetPlan,
    by_earlier_attempt: bool,
) -> Result<(WidgetOutcome, Step)> {
    let sp = &plan.desired.settings.security_policies;
    let c = &plan.changes;
    let mut fields: Vec<String> = Vec::new();
    if !c.origins_added.is_empty() || !c.origins_removed.is_empty() || c.origins_reordered {
        fields.push("corsOrigins".into());
    }
    if !c.authentication.is_empty() {
        fields.push("authentication".into());
    }
    if !c.rules_added.is_empty()
        || !c.rules_removed.is_empty()
        || !c.rules_changed.is_empty()
        || c.rules_reordered
    {
        fields.push("rules".into());
    }
    let mut details = Details::new()
        .sha256("digest_before", before)?
        .sha256("digest_after", after)?
        .count("origins", sp.cors_origins.len() as u64)
        .count("rules", sp.rules.len() as u64)
        .count("origins_added", c.origins_added.len() as u64)
        .count("origins_removed", c.origins_removed.len() as u64)
        .count("rules_added", c.rules_added.len() as u64)
        .count("rules_removed", c.rules_removed.len() as u64)
        .count("rules_changed", c.rules_changed.len() as u64)
        .ids("fields", &fields)?;
    if by_earlier_attempt {
        details = details.flag("completed_by_earlier_attempt", true);
    }
    let entry = NewEntry::new(
        job.actor(),
        "webchat.policy_deploy",
        id,
        Outcome::Success,
        details,
    )?;
    let mut data = Details::new()
        .id("widget_id", id)?
        .sha256("configDigest", after)?
        .count("origins", sp.cors_origins.len() as u64)
        .count("rules", sp.rules.len() as u64)
        .flag("require_token", sp.authentication.require_token);
    if let Some(v) = plan.desired.settings.version.as_deref()
        && ledger::details::check_identifier("version", v).is_ok()
    {
        data = data.id("version", v)?;
    }
    let event = NewEvent::new(EventKind::Waf, "webchat.policy_deployed", data);
    let outcome = WidgetOutcome {
        widget: id.to_string(),
        outcome: "changed",
        changes: plan.changes.clone(),
        config_digest: Some(after.to_string()),
        error: None,
    };
    Ok((
        outcome,
        Step {
            key: id.to_string(),
            outcome: ItemOutcome::Done { result: None },
            audit: vec![entry],
            events: vec![event],
            tally: Tally::Changed { fields },
        },
    ))
}

fn unchanged(job: &Job<'_>, id: &str, digest: String) -> Result<(WidgetOutcome, Step)> {
    let entry = NewEntry::new(
        job.actor(),
        "webchat.policy_deploy",
        id,
        Outcome::Skipped,
        Details::new()
            .label("reason", "already_in_target_state")
            .sha256("digest", &digest)?,
    )?;
    Ok((
        WidgetOutcome {
            widget: id.to_string(),
            outcome: "unchanged",
            changes: Changes::default(),
            config_digest: Some(digest),
            error: None,
        },
        Step {
            key: id.to_string(),
            outcome: ItemOutcome::Done { result: None },
            audit: vec![entry],
            events: Vec::new(),
            tally: Tally::Unchanged,
        },
    ))
}

fn failed(
    job: &Job<'_>,
    id: &str,
    changes: Changes,
    error: String,
) -> Result<(WidgetOutcome, Step)> {
    let entry = NewEntry::new(
        job.actor(),
        "webchat.policy_deploy",
        id,
        Outcome::Failure,
        Details::new().label("reason", "refused_or_conflict"),
    )?;
    Ok((
        WidgetOutcome {
            widget: id.to_string(),
            outcome: "failed",
            changes,
            config_digest: None,
            error: Some(error.clone()),
        },
        Step {
            key: id.to_string(),
            outcome: ItemOutcome::Failed {
                error: error.clone(),
            },
            audit: vec![entry],
            events: Vec::new(),
            tally: Tally::Failed { error },
        },
    ))
}
