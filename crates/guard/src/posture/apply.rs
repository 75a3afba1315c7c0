//! Applying a posture plan: each protection's own apply, in a fixed order — webchat,
//! encryption, secrets, retention — each a journaled job. The plan applied is the one
//! re-derived from the posture and the tenant (a saved plan only confirms it), and only
//! what it lists is applied. One audit entry opens the run and one closes it,
//! naming the plan digest; a failure in one protection does not hide the others.

use std::sync::Arc;

use ledger::{Details, NewEntry, Outcome};
use serde::Serialize;

use super::load::Posture;
use super::plan::PosturePlan;
use crate::{Error, Result};

/// How one protection's part went.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartResult {
    /// `webchat`, `encryption`, `secrets`, `retention` or `access_keys`.
    pub protection: &'static str,
    /// `applied`, `nothing to do` or `failed`.
    pub status: &'static str,
    /// What was done, or why it failed.
    pub detail: String,
}

/// What a run works with.
#[derive(Clone, Copy)]
pub struct With<'a> {
    /// The tenant.
    pub client: &'a cxone::Client,
    /// The ledger the run is journaled and audited in.
    pub ledger: &'a ledger::Ledger,
    /// Who runs it.
    pub actor: &'a str,
    /// The environment, for value sources named by variable.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The OpenBao/Vault server access keys may be delivered to.
    pub vault: Option<&'a crate::accesskeys::VaultConfig>,
}

/// The journal kind of a posture run.
pub const RUN_KIND: &str = "posture.apply";

/// The protections, in the order they are applied.
const PARTS: [&str; 6] = [
    "webchat",
    "encryption",
    "secrets",
    "retention",
    "access_keys",
    "data_policies",
];

/// The plan a run recorded, to resume it.
pub async fn recorded_plan(ledger: &ledger::Ledger, run: &str) -> Result<PosturePlan> {
    let job = ledger
        .job(run)
        .await
        .map_err(|e| Error::Invalid(e.to_string()))?;
    if job.kind != RUN_KIND {
        return Err(Error::Invalid(format!(
            "{run} is a {} job, not a posture run",
            job.kind
        )));
    }
    if job.status != "running" {
        return Err(Error::Invalid(format!(
            "run {run} is {}, not interrupted: nothing to resume",
            job.status
        )));
    }
    let items = ledger.job_items(run, None, 10).await?;
    let v = items
        .iter()
        .find(|i| i.key == "plan")
        .and_then(|i| i.result.clone())
        .ok_or_else(|| Error::Failed(format!("run {run} recorded no plan")))?;
    serde_json::from_value(v)
        .map_err(|e| Error::Failed(format!("run {run}: its recorded plan is unreadable: {e}")))
}

/// Applies `plan` (already checked) as a journaled run, or resumes run `resume`, and
/// returns the run's id and each protection's result. `started` hears the run id before
/// anything changes.
pub async fn apply(
    with: &With<'_>,
    posture: &Posture,
    plan: &PosturePlan,
    resume: Option<&str>,
    started: &dyn Fn(&str),
) -> Result<(String, Vec<PartResult>)> {
    let With { ledger, actor, .. } = *with;
    let run = match resume {
        Some(r) => r.to_string(),
        None => begin_run(ledger, actor, plan).await?,
    };
    started(&run);
    let items = ledger.job_items(&run, None, 20).await?;
    let mut results = Vec::new();
    for name in PARTS {
        match items.iter().find(|i| i.key == name) {
            Some(i) if i.state == "done" => {
                results.push(part(name, "applied", "in the interrupted run".into()));
                continue;
            }
            Some(_) => {}
            // A run begun before this part existed has nothing planned for it.
            None => {
                results.push(part(name, "nothing to do", String::new()));
                continue;
            }
        }
        ledger.claim(&run, name).await?;
        let r = match name {
            "webchat" => webchat_part(with, posture, plan).await,
            "encryption" => encryption_part(with, posture, plan).await,
            "secrets" => secrets_part(with, posture, plan).await,
            "access_keys" => access_keys_part(with, posture, plan).await,
            "data_policies" => data_policies_part(with, plan).await,
            _ => retention_part(with, posture, plan).await?,
        };
        let outcome = if r.status == "failed" {
            ledger::ItemOutcome::Failed {
                error: r.detail.clone(),
            }
        } else {
            ledger::ItemOutcome::Done { result: None }
        };
        ledger
            .settle(&run, name, outcome, Vec::new(), Vec::new())
            .await?;
        results.push(r);
    }
    finish_run(ledger, actor, plan, &run, &results).await?;
    Ok((run, results))
}

/// Journals a new run: its parts, the plan it applies, and its start in the audit log.
async fn begin_run(ledger: &ledger::Ledger, actor: &str, plan: &PosturePlan) -> Result<String> {
    let id = ledger::Ledger::new_job_id("posture");
    let mut items = vec!["plan".to_string()];
    items.extend(PARTS.map(String::from));
    ledger
        .create_job(ledger::NewJob {
            id: id.clone(),
            kind: RUN_KIND,
            actor: actor.to_string(),
            params: Details::new()
                .sha256("plan_sha256", &plan.digest)?
                .sha256("posture_sha256", &plan.posture_sha256)?,
            items,
            fingerprint: Some(plan.digest.clone()),
        })
        .await?;
    // The plan holds ids, versions and counts, never a value.
    let v = serde_json::to_value(plan).unwrap_or_default();
    ledger
        .record_results(&id, &[("plan".to_string(), v)])
        .await?;
    ledger
        .append(NewEntry::new(
            actor,
            "posture.apply.start",
            &id,
            Outcome::Success,
            Details::new()
                .sha256("plan_sha256", &plan.digest)?
                .sha256("posture_sha256", &plan.posture_sha256)?
                .count("changes", plan.changes() as u64),
        )?)
        .await?;
    Ok(id)
}

/// Ends the run's job, failed if any part failed, auditing each part's status.
async fn finish_run(
    ledger: &ledger::Ledger,
    actor: &str,
    plan: &PosturePlan,
    run: &str,
    results: &[PartResult],
) -> Result<()> {
    let any_failed = results.iter().any(|r| r.status == "failed");
    let mut details = Details::new().sha256("plan_sha256", &plan.digest)?;
    for r in results {
        details = details.label(r.protection, r.status);
    }
    ledger
        .finish_job(
            run,
            if any_failed {
                ledger::JobStatus::Failed
            } else {
                ledger::JobStatus::Done
            },
            NewEntry::new(
                actor,
                "posture.apply.finish",
                run,
                if any_failed {
                    Outcome::Failure
                } else {
                    Outcome::Success
                },
                details,
            )?,
        )
        .await?;
    Ok(())
}

/// Only the widgets the plan lists; the webchat job resumes by itself.
async fn webchat_part(with: &With<'_>, posture: &Posture, plan: &PosturePlan) -> PartResult {
    let With {
        client,
        ledger,
        actor,
        ..
    } = *with;
    let Some(policy) = posture
        .webchat
        .as_ref()
        .filter(|_| !plan.webchat.is_empty())
    else {
        return part("webchat", "nothing to do", String::new());
    };
    let mut sub = policy.clone();
    sub.widgets
        .retain(|id, _| plan.webchat.iter().any(|w| &w.widget == id));
    sub.digest = crate::sha256_hex(&format!("{}\n{}", policy.digest, plan.digest));
    match crate::webchat::apply(client, ledger, &sub, actor).await {
        Ok(r) if r.failed() == 0 => part(
            "webchat",
            "applied",
            format!("{} widget(s) changed (job {})", r.changed(), r.job_id),
        ),
        Ok(r) => part(
            "webchat",
            "failed",
            r.widgets
                .iter()
                .filter_map(|w| w.error.as_ref().map(|e| format!("{}: {e}", w.widget)))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(e) => part("webchat", "failed", e.to_string()),
    }
}

/// Each listed table; a table already as declared (done before an interruption) is
/// left alone, an unfinished encryption job resumes.
async fn encryption_part(with: &With<'_>, posture: &Posture, plan: &PosturePlan) -> PartResult {
    let With {
        client,
        ledger,
        actor,
        ..
    } = *with;
    let classifier = crate::encrypt::Classifier::default();
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for t in &plan.datastore {
        let Some(req) = posture
            .tables
            .iter()
            .find(|r| r.table.to_string() == t.table)
        else {
            failed.push(format!("{}: not in the posture any more", t.table));
            continue;
        };
        let outcome = async {
            let (table, indexes) = req.table.read(client).await?;
            let p = crate::encrypt::plan(&table, &indexes, req, &classifier)
                .map_err(|ps| crate::Error::Invalid(ps.join("; ")))?;
            if p.is_noop()
                && crate::encrypt::apply::unfinished(ledger, req)
                    .await?
                    .is_none()
            {
                return Ok(None);
            }
            crate::encrypt::apply(client, ledger, req, &p, &table, &classifier, actor)
                .await
                .map(Some)
        }
        .await;
        match outcome {
            Ok(Some(r)) => done.push(format!("{} (key version {})", t.table, r.key_version)),
            Ok(None) => done.push(format!("{} (already as declared)", t.table)),
            Err(e) => failed.push(format!("{}: {e}", t.table)),
        }
    }
    summarize("encryption", &done, &failed)
}

async fn secrets_part(with: &With<'_>, posture: &Posture, plan: &PosturePlan) -> PartResult {
    let With {
        client,
        ledger,
        actor,
        env,
        ..
    } = *with;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    if let Some(s) = &posture.secrets {
        for change in &plan.secrets {
            match super::rotate::rotate_one(client, ledger, s, change, &plan.created_at, actor, env)
                .await
            {
                Ok(d) => done.push(d),
                Err(e) => failed.push(format!("{}: {e}", change.secret)),
            }
        }
    }
    summarize("secrets", &done, &failed)
}

/// Each planned access key, rotated or deactivated.
async fn access_keys_part(with: &With<'_>, posture: &Posture, plan: &PosturePlan) -> PartResult {
    let applying = super::keys::Applying {
        client: with.client,
        ledger: with.ledger,
        vault: with.vault,
        actor: with.actor,
    };
    let mut done = Vec::new();
    let mut failed = Vec::new();
    if let Some(ak) = &posture.access_keys {
        for c in &plan.access_keys {
            match super::keys::apply_one(&applying, ak, c).await {
                Ok(d) => done.push(d),
                Err(e) => failed.push(format!("{}: {e}", c.key)),
            }
        }
    }
    summarize("access_keys", &done, &failed)
}

/// Each planned data policy created, exactly once (searched by name before each
/// attempt), and audited as `data_policy.created`.
async fn data_policies_part(with: &With<'_>, plan: &PosturePlan) -> PartResult {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for c in &plan.data_policies {
        let d = &c.policy;
        match crate::policies::compare::create_once(with.client, d).await {
            Ok((id, created)) => {
                if created {
                    let recorded = async {
                        let details = Details::new()
                            .sha256("name_sha256", &crate::sha256_hex(&d.name))?
                            .id("entity_type", &d.entity_type)?;
                        let entry = NewEntry::new(
                            with.actor,
                            "data_policy.created",
                            &id,
                            Outcome::Success,
                            details,
                        )?;
                        with.ledger.append(entry).await
                    };
                    if let Err(e) = recorded.await {
                        failed.push(format!("{}: created as {id} but not audited: {e}", d.name));
                        continue;
                    }
                    done.push(format!("{} created ({id})", d.name));
                } else {
                    done.push(format!("{} already there ({id})", d.name));
                }
            }
            Err(e) => failed.push(format!("{}: {e}", d.name)),
        }
    }
    summarize("data_policies", &done, &failed)
}

/// Contacts before the plan's cut-off; the anonymize job of that policy and cut-off
/// resumes by itself.
async fn retention_part(
    with: &With<'_>,
    posture: &Posture,
    plan: &PosturePlan,
) -> Result<PartResult> {
    let With {
        client,
        ledger,
        actor,
        ..
    } = *with;
    let (Some(c), Some(planned)) = (&posture.contacts, &plan.contacts) else {
        return Ok(part("retention", "nothing to do", String::new()));
    };
    if planned.pending == 0 {
        return Ok(part("retention", "nothing to do", String::new()));
    }
    let cut = time::OffsetDateTime::parse(
        &planned.cutoff,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|e| Error::Invalid(format!("the plan's cutoff: {e}")))?;
    let opts = crate::anonymize::Options {
        actor: actor.to_string(),
        ..Default::default()
    };
    let progress = Arc::new(crate::job::Progress::default());
    Ok(
        match crate::anonymize::run(
            client,
            ledger,
            &c.policy,
            &crate::anonymize::Selection::UpdatedBefore(cut),
            &opts,
            progress,
        )
        .await
        {
            Ok(r) if r.failed == 0 => part(
                "retention",
                "applied",
                format!(
                    "{} contact(s) anonymized, {} already were (job {})",
                    r.changed, r.unchanged, r.job_id
                ),
            ),
            Ok(r) => part(
                "retention",
                "failed",
                format!("{} contact(s) failed (job {})", r.failed, r.job_id),
            ),
            Err(e) => part("retention", "failed", e.to_string()),
        },
    )
}

fn part(protection: &'static str, status: &'static str, detail: String) -> PartResult {
    PartResult {
        protection,
        status,
        detail,
    }
}

fn summarize(protection: &'static str, done: &[String], failed: &[String]) -> PartResult {
    match (done.is_empty(), failed.is_empty()) {
        (true, true) => part(protection, "nothing to do", String::new()),
        (_, false) => part(
            protection,
            "failed",
            failed
                .iter()
                .chain(done.iter())
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (false, true) => part(protection, "applied", done.join("; ")),
    }
}
