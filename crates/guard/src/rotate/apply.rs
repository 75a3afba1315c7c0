//! Running a rotation on the job runner: the phases (`create`, `set`, `test`, `finish`
//! or `rollback`) are the job's items, each claimed before its call and settled with its
//! audit entry (and, at the end, the vault event) in one transaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use cxone::Client;
use cxone::models::{Recompiled, ReferenceUpdate, Secret, VerificationMatrix};
use cxone::secrets::Rotation;
use futures_util::StreamExt;
use ledger::{
    Details, EventKind, ItemOutcome, JobStatus, Ledger, NewEntry, NewEvent, NewJob, Outcome,
};
use secrecy::{ExposeSecret, SecretString};

use super::{Ended, JOB_KIND, Plan, Report, Request};
use crate::job::{Job, Resume, Step, Tally};
use crate::{Error, Result, sha256_hex};

struct Ctx<'a> {
    client: &'a Client,
    plan: &'a Plan,
    req: &'a Request,
    job: Job<'a>,
}

/// Runs a new rotation. Refused while another rotation of the same secret is unfinished.
pub async fn apply(client: &Client, ledger: &Ledger, plan: &Plan, req: &Request) -> Result<Report> {
    let ids: Vec<String> = plan
        .dependents
        .iter()
        .map(|d| d.data_action_id.clone())
        .collect();
    let params = Details::new()
        .id("secret_id", &plan.secret_id)?
        .sha256("previous_sha256", &plan.previous_sha256)?
        .sha256("proposed_sha256", &plan.proposed_sha256)?
        .ids("dependents", &ids)?
        .flag("rollback", plan.rollback);
    let new = NewJob {
        id: Ledger::new_job_id(JOB_KIND),
        kind: JOB_KIND,
        actor: req.actor.clone(),
        params: params.clone(),
        items: ["create", "set", "test", "finish"]
            .map(String::from)
            .to_vec(),
        fingerprint: Some(plan.secret_id.clone()),
    };
    let cx = Ctx {
        client,
        plan,
        req,
        job: Job::open(client, ledger, new, Resume::Refuse, Arc::default()).await?,
    };
    let job = cx.job.id().to_string();
    cx.job.claim("create").await?;
    cx.settle("create", true, None, "secret.rotate.create", params, None)
        .await?;
    cx.set_phase().await?;
    let ended = cx.test_and_finish().await?;
    Ok(Report {
        job_id: job,
        secret_id: plan.secret_id.clone(),
        resumed: false,
        dependents: plan.dependents.len() as u64,
        ended,
    })
}

/// Finishes, or rolls back, rotation `job`. `req` must carry the same values (checked by
/// hash against the journal).
pub async fn resume(client: &Client, ledger: &Ledger, job: &str, req: &Request) -> Result<Report> {
    let attached = Job::attach(client, ledger, job, JOB_KIND, &req.actor, Arc::default()).await?;
    let (proposed, previous) = recorded_digests(ledger, job, req).await?;
    let secret = client.secrets().get(&req.secret_id).await?;
    let dependents = client.secrets().references(&req.secret_id).await?;
    let plan = Plan {
        secret_id: secret.id.clone(),
        name: secret.name.clone(),
        version: secret.version,
        format: req.format.unwrap_or(secret.format),
        previous_sha256: previous.clone(),
        proposed_sha256: proposed.clone(),
        dependents,
        rollback: req.previous.is_some(),
    };
    let cx = Ctx {
        client,
        plan: &plan,
        req,
        job: attached,
    };
    let items = ledger.job_items(job, None, 10).await?;
    let state = |k: &str| {
        items
            .iter()
            .find(|i| i.key == k)
            .map(|i| i.state.clone())
            .unwrap_or_default()
    };
    let current = secret.value_sha256.to_ascii_lowercase();
    let ended = if current == proposed {
        cx.resume_set(secret.version, &state).await?
    } else if current == previous {
        cx.resume_unset(&state).await?
    } else {
        return Err(Error::Conflict(format!(
            "secret {} holds neither the value rotation {job} set nor the one it replaced: someone else rotated it; resolve by hand",
            req.secret_id
        )));
    };
    Ok(Report {
        job_id: job.to_string(),
        secret_id: req.secret_id.clone(),
        resumed: true,
        dependents: plan.dependents.len() as u64,
        ended,
    })
}

/// The digests rotation `job` recorded, once the request is shown to be the same one:
/// the same secret, the same new value and (if given) the same previous value.
async fn recorded_digests(ledger: &Ledger, job: &str, req: &Request) -> Result<(String, String)> {
    let summary = ledger.job(job).await?;
    let p = &summary.params;
    let text = |k: &str| p[k].as_str().unwrap_or_default().to_string();
    if text("secret_id") != req.secret_id {
        return Err(Error::Invalid(format!(
            "rotation {job} is of secret {}, not {}",
            text("secret_id"),
            req.secret_id
        )));
    }
    let proposed = text("proposed_sha256");
    let previous = text("previous_sha256");
    if sha256_hex(req.value.expose_secret()) != proposed {
        return Err(Error::Invalid(format!(
            "the new value given does not hash to the one rotation {job} started with"
        )));
    }
    if let Some(prev) = &req.previous
        && sha256_hex(prev.expose_secret()) != previous
    {
        return Err(Error::Invalid(format!(
            "the previous value given does not hash to the one rotation {job} recorded"
        )));
    }
    Ok((proposed, previous))
}

impl Ctx<'_> {
    /// Resuming where the tenant holds the new value: the phases left after `set`.
    async fn resume_set(&self, version: u64, state: &dyn Fn(&str) -> String) -> Result<Ended> {
        if state("set") != "done" {
            self.settle(
                "set",
                true,
                None,
                "secret.rotate.set",
                Details::new()
                    .count("version", version)
                    .flag("resumed", true),
                None,
            )
            .await?;
        }
        // Phases an interrupted run finished are not done twice: a rotation recorded as
        // finished is only closed, one whose dependents passed only finishes.
        if state("finish") == "done" {
            self.close(JobStatus::Done, Details::new().label("status", "rotated"))
                .await?;
            Ok(Ended::Rotated { version })
        } else if state("test") == "done" {
            self.finish().await
        } else {
            self.test_and_finish().await
        }
    }

    /// Resuming where the tenant holds the previous value: a rollback to finish, or the
    /// rotation from `create` on.
    async fn resume_unset(&self, state: &dyn Fn(&str) -> String) -> Result<Ended> {
        if !state("rollback").is_empty() {
            // The rollback's PUT landed: verify the dependents again and close.
            self.rollback(BTreeMap::new(), true).await
        } else {
            if state("create") != "done" {
                self.job.claim("create").await?;
                self.settle(
                    "create",
                    true,
                    None,
                    "secret.rotate.create",
                    Details::new().flag("resumed", true),
                    None,
                )
                .await?;
            }
            self.set_phase().await?;
            self.test_and_finish().await
        }
    }
}

impl Ctx<'_> {
    fn entry(&self, operation: &'static str, ok: bool, details: Details) -> Result<NewEntry> {
        Ok(NewEntry::new(
            &self.req.actor,
            operation,
            &self.plan.secret_id,
            if ok {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            details,
        )?)
    }

    async fn settle(
        &self,
        item: &str,
        ok: bool,
        error: Option<String>,
        operation: &'static str,
        details: Details,
        event: Option<NewEvent>,
    ) -> Result<()> {
        let outcome = match error {
            None if ok => ItemOutcome::Done { result: None },
            e => ItemOutcome::Failed {
                error: e.unwrap_or_else(|| "failed".into()),
            },
        };
        let entry = self.entry(operation, ok, details)?;
        self.job
            .settle(vec![Step {
                key: item.to_string(),
                outcome,
                audit: vec![entry],
                events: event.into_iter().collect(),
                tally: Tally::Step,
            }])
            .await
    }

    /// Ends the job with `status` and its `job.finish` entry (a success when the job is
    /// done or cleanly rolled back).
    async fn close(&self, status: JobStatus, details: Details) -> Result<()> {
        let ok = matches!(status, JobStatus::Done | JobStatus::RolledBack);
        let entry = self.entry("job.finish", ok, details)?;
        self.job.end(status, entry).await
    }

    fn vault_event(&self, status: &'static str, hash: &str, version: u64) -> Result<NewEvent> {
        Ok(NewEvent::new(
            EventKind::Vault,
            "secret_rotation",
            Details::new()
                .id("secret_id", &self.plan.secret_id)?
                .label("status", status)
                .sha256("hash_sha256", hash)?
                .count("version", version),
        ))
    }

    async fn put(
        &self,
        value: &SecretString,
        previous: &str,
        proposed: &str,
    ) -> cxone::Result<Secret> {
        self.job
            .timed(self.client.secrets().rotate(
                &self.plan.secret_id,
                &Rotation {
                    value,
                    format: self.plan.format,
                    description: None,
                    reference_update: ReferenceUpdate::Immediate,
                    matrix: VerificationMatrix {
                        previous_sha256: previous.into(),
                        proposed_sha256: proposed.into(),
                    },
                },
            ))
            .await
    }

    async fn set_phase(&self) -> Result<()> {
        self.job.claim("set").await?;
        match self
            .put(
                &self.req.value,
                &self.plan.previous_sha256,
                &self.plan.proposed_sha256,
            )
            .await
        {
            Ok(s) => {
                self.settle(
                    "set",
                    true,
                    None,
                    "secret.rotate.set",
                    Details::new().count("version", s.version),
                    None,
                )
                .await
            }
            Err(e) if e.status() == Some(409) => {
                let msg = format!(
                    "secret {} was rotated by someone else since it was read (409): nothing was changed; read it again and retry",
                    self.plan.secret_id
                );
                self.settle(
                    "set",
                    false,
                    Some(msg.clone()),
                    "secret.rotate.set",
                    Details::new()
                        .label("reason", "conflict")
                        .number("status", 409),
                    None,
                )
                .await?;
                self.close(
                    JobStatus::Failed,
                    Details::new().label("reason", "conflict"),
                )
                .await?;
                Err(Error::Conflict(msg))
            }
            Err(e) => {
                let d = Details::new()
                    .label("reason", "error")
                    .number("status", i64::from(e.status().unwrap_or(0)));
                self.settle(
                    "set",
                    false,
                    Some(e.to_string()),
                    "secret.rotate.set",
                    d,
                    None,
                )
                .await?;
                Err(e.into())
            }
        }
    }

    /// Recompiles and tests every dependent; returns those that rejected the value.
    async fn verify_dependents(&self) -> Result<BTreeMap<String, String>> {
        let results: Vec<(String, cxone::Result<Option<String>>)> = futures_util::stream::iter(
            self.plan
                .dependents
                .iter()
                .map(|d| d.data_action_id.clone()),
        )
        .map(|id| async move {
            let r = async {
                match self.client.data_actions().recompile(&id).await? {
                    Recompiled::Failed { detail, .. } => Ok(Some(detail)),
                    Recompiled::Compiled(_) => {
                        let t = self.client.data_actions().test(&id).await?;
                        Ok(if t.ok {
                            None
                        } else {
                            Some(t.detail.unwrap_or_else(|| "the test failed".into()))
                        })
                    }
                }
            }
            .await;
            (id, r)
        })
        .buffer_unordered(4)
        .collect()
        .await;
        let mut rejected = BTreeMap::new();
        for (id, r) in results {
            if let Some(why) = r? {
                rejected.insert(id, why);
            }
        }
        Ok(rejected)
    }

    async fn test_and_finish(&self) -> Result<Ended> {
        self.job.claim("test").await?;
        let rejected = self.verify_dependents().await?;
        let ids: Vec<String> = self
            .plan
            .dependents
            .iter()
            .map(|d| d.data_action_id.clone())
            .collect();
        let rejected_ids: Vec<&String> = rejected.keys().collect();
        let details = Details::new()
            .ids("tested", &ids)?
            .ids("rejected", &rejected_ids)?;
        self.settle(
            "test",
            rejected.is_empty(),
            (!rejected.is_empty()).then(|| "a dependent rejected the new value".to_string()),
            "secret.rotate.test",
            details,
            None,
        )
        .await?;
        if rejected.is_empty() {
            return self.finish().await;
        }
        if self.req.previous.is_none() {
            self.close(
                JobStatus::Failed,
                Details::new()
                    .label("status", "broken_no_rollback")
                    .ids("rejected", &rejected_ids)?,
            )
            .await?;
            return Ok(Ended::Broken { rejected });
        }
        self.rollback(rejected, false).await
    }

    /// Records the rotation done (the dependents passed) and closes the job.
    async fn finish(&self) -> Result<Ended> {
        let version = self
            .client
            .secrets()
            .get(&self.plan.secret_id)
            .await?
            .version;
        self.job.claim("finish").await?;
        let event = self.vault_event("rotated", &self.plan.proposed_sha256, version)?;
        self.settle(
            "finish",
            true,
            None,
            "secret.rotate.finish",
            Details::new().count("version", version),
            Some(event),
        )
        .await?;
        self.close(JobStatus::Done, Details::new().label("status", "rotated"))
            .await?;
        Ok(Ended::Rotated { version })
    }

    /// Puts the previous value back (unless `landed`), verifies the dependents again and
    /// closes the job as rolled back.
    async fn rollback(&self, rejected: BTreeMap<String, String>, landed: bool) -> Result<Ended> {
        let previous = self
            .req
            .previous
            .as_ref()
            .ok_or_else(|| Error::Invalid("the rollback needs the previous value".into()))?;
        self.job.add_items(&["rollback".to_string()]).await?;
        self.job.claim("rollback").await?;
        if !landed {
            self.put(
                previous,
                &self.plan.proposed_sha256,
                &self.plan.previous_sha256,
            )
            .await?;
        }
        let again = self.verify_dependents().await?;
        let version = self
            .client
            .secrets()
            .get(&self.plan.secret_id)
            .await?
            .version;
        let rejected_ids: Vec<&String> = rejected.keys().collect();
        let event = self.vault_event("rolled_back", &self.plan.previous_sha256, version)?;
        let details = Details::new()
            .ids("rejected_by", &rejected_ids)?
            .count("version", version)
            .flag("dependents_pass", again.is_empty());
        self.settle(
            "rollback",
            again.is_empty(),
            (!again.is_empty()).then(|| "dependents still fail after the rollback".to_string()),
            "secret.rotate.rollback",
            details,
            Some(event),
        )
        .await?;
        let status = if again.is_empty() {
            JobStatus::RolledBack
        } else {
            JobStatus::Failed
        };
        self.close(status, Details::new().label("status", "rolled_back"))
            .await?;
        if !again.is_empty() {
            return Err(Error::Failed(format!(
                "rolled back, but {} still fail against the previous value: {}",
                again.keys().cloned().collect::<Vec<_>>().join(", "),
                again.values().cloned().collect::<Vec<_>>().join("; ")
            )));
        }
        Ok(Ended::RolledBack { rejected, version })
    }
}
