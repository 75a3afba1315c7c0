//! Rotating one access key as a journaled, resumable job (AWS Secrets Manager's create,
//! set, test, finish; Vault's check-and-set):
//!
//! 1. the intent, with the user's keys as they were, is journaled;
//! 2. a key is created for the same user: its answer is the only moment the secret
//!    exists;
//! 3. it is delivered to the target at once, read back, and journaled as delivered (its
//!    SHA-256, never the secret);
//! 4. a token is obtained with it (verified); a refusal deletes it, puts back what the
//!    delivery replaced, and leaves the old key active (rolled back);
//! 5. after the grace, the old key is deactivated; 6. after `delete_after`, deleted.
//!
//! **The crash window** is between 2 and 3: a key created but never delivered has a
//! secret nobody holds. On resume, every key of the user that was not there at the
//! intent and was not delivered is deactivated and deleted, and a new one is created.
//! A job whose grace has not passed stays running; a later run, or `finish_due`,
//! completes it.

use std::sync::Arc;
use std::time::Duration;

use ledger::{Details, JobStatus, Ledger, NewEntry, NewJob, Outcome};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Value, json};

use super::VaultConfig;
use super::deliver::{self, Target};
use crate::job::{Job, Progress};
use crate::{Error, Result};

/// The journal kind of a rotation.
pub const JOB_KIND: &str = "accesskey.rotate";
const ITEMS: [&str; 5] = ["create", "deliver", "verify", "deactivate", "delete"];

/// What to rotate and where the new key goes.
#[derive(Debug, Clone)]
pub struct Request {
    /// The key to replace.
    pub key_id: String,
    /// Where the new key is delivered.
    pub target: Target,
    /// How long the old key stays active after the new one is verified.
    pub grace: Duration,
    /// When (after deactivation) the old key is deleted; `None`: never.
    pub delete_after: Option<Duration>,
    /// Who rotates it.
    pub actor: String,
}

/// How a rotation stands.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The job.
    pub job_id: String,
    /// The key replaced.
    pub old_key: String,
    /// The key that replaces it.
    pub new_key: Option<String>,
    /// Where it was delivered.
    pub target: String,
    /// `rotated`, `waiting` (grace or deletion not due yet) or `rolled back`.
    pub status: &'static str,
    /// When the old key is (or was) deactivated.
    pub deactivate_at: Option<String>,
    /// When the old key is (or was) deleted.
    pub delete_at: Option<String>,
    /// Whether an interrupted run was resumed.
    pub resumed: bool,
}

pub(super) fn entry(
    actor: &str,
    op: &'static str,
    key: &str,
    outcome: Outcome,
    d: Details,
) -> Result<NewEntry> {
    Ok(NewEntry::new(actor, op, &audit_id(key), outcome, d)?)
}

/// An access-key id as the audit log holds it: its base64 in the URL-safe alphabet,
/// unpadded (`+` → `-`, `/` → `_`), since the ledger's identifiers exclude `+` and `=`
/// (a phone number must never pass for one). A job's own id is left as it is.
pub fn audit_id(id: &str) -> String {
    if id.contains(['+', '=']) || (id.contains('/') && !id.contains(':')) {
        id.trim_end_matches('=').replace('+', "-").replace('/', "_")
    } else {
        id.to_string()
    }
}

/// Opens (or joins, after a crash) the rotation job of `req.key_id` and runs it under its
/// lease: a rotation another process runs is refused ([`Error::Busy`]).
pub async fn rotate(
    client: &cxone::Client,
    ledger: &Ledger,
    vault: Option<&VaultConfig>,
    req: &Request,
) -> Result<Report> {
    ledger::details::check_identifier("actor", &req.actor)?;
    let params = Details::new()
        .id("key", &audit_id(&req.key_id))?
        .label("target_kind", req.target.kind())
        .sha256("target_sha256", &crate::sha256_hex(&req.target.label()))?
        .count("grace_secs", req.grace.as_secs())
        .count(
            "delete_after_secs",
            req.delete_after.map_or(0, |d| d.as_secs()),
        );
    let (jid, _) = ledger
        .open_job(NewJob {
            id: Ledger::new_job_id("accesskey"),
            kind: JOB_KIND,
            actor: req.actor.clone(),
            params,
            items: ITEMS.map(String::from).to_vec(),
            fingerprint: Some(crate::sha256_hex(&format!("accesskey\n{}", req.key_id))),
        })
        .await?;
    let summary = ledger.job(&jid).await?;
    if summary.params["target_sha256"].as_str()
        != Some(crate::sha256_hex(&req.target.label()).as_str())
    {
        return Err(Error::Invalid(format!(
            "job {jid} is rotating key {} to another target; finish it (accesskeys finish) before delivering elsewhere",
            req.key_id
        )));
    }
    // The target itself is journaled (not audited): `finish_due` resumes with it.
    let targets = ledger.job_items(&jid, None, 10).await?;
    if targets
        .iter()
        .all(|i| i.key != "deliver" || i.result.is_none())
    {
        ledger
            .record_results(
                &jid,
                &[(
                    "deliver".to_string(),
                    json!({"target": req.target.label(), "key": req.key_id}),
                )],
            )
            .await?;
    }
    let held = crate::lease::take(ledger, &jid).await?;
    let job = Job::attach(
        client,
        ledger,
        &jid,
        JOB_KIND,
        &req.actor,
        Arc::new(Progress::default()),
    )
    .await;
    let r = match job {
        Ok(job) => {
            Run {
                client,
                ledger,
                vault,
                req,
                job,
            }
            .steps()
            .await
        }
        Err(e) => Err(e),
    };
    held.release().await;
    r
}

/// Completes every rotation whose grace (or deletion) has come, as `accesskeys finish`
/// from cron does.
pub async fn finish_due(
    client: &cxone::Client,
    ledger: &Ledger,
    vault: Option<&VaultConfig>,
    actor: &str,
) -> Result<Vec<Report>> {
    let mut out = Vec::new();
    for j in ledger.jobs_of(JOB_KIND, JobStatus::Running, 1000).await? {
        let p = &j.params;
        let items = ledger.job_items(&j.id, None, 10).await?;
        let target = items
            .iter()
            .find(|i| i.key == "deliver")
            .and_then(|i| i.result.as_ref())
            .cloned()
            .unwrap_or_default();
        let req = Request {
            key_id: target["key"]
                .as_str()
                .or(p["key"].as_str())
                .unwrap_or_default()
                .to_string(),
            target: Target::parse(target["target"].as_str().unwrap_or_default())?,
            grace: Duration::from_secs(p["grace_secs"].as_u64().unwrap_or(0)),
            delete_after: p["delete_after_secs"]
                .as_u64()
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            actor: actor.to_string(),
        };
        out.push(rotate(client, ledger, vault, &req).await?);
    }
    Ok(out)
}

pub(super) struct Run<'a> {
    pub(super) client: &'a cxone::Client,
    pub(super) ledger: &'a Ledger,
    pub(super) vault: Option<&'a VaultConfig>,
    pub(super) req: &'a Request,
    pub(super) job: Job<'a>,
}

impl Run<'_> {
    /// The result journaled for `item`, and whether it is done.
    pub(super) async fn item(&self, item: &str) -> Result<(bool, Value)> {
        let items = self.ledger.job_items(self.job.id(), None, 10).await?;
        let i = items.into_iter().find(|i| i.key == item);
        Ok(match i {
            Some(i) => (i.state == "done", i.result.unwrap_or(Value::Null)),
            None => (false, Value::Null),
        })
    }

    pub(super) fn report(
        &self,
        status: &'static str,
        new_key: Option<String>,
        deactivate_at: Option<String>,
        delete_at: Option<String>,
    ) -> Report {
        Report {
            job_id: self.job.id().to_string(),
            old_key: self.req.key_id.clone(),
            new_key,
            target: self.req.target.label(),
            status,
            deactivate_at,
            delete_at,
            resumed: self.job.resumed(),
        }
    }

    async fn steps(self) -> Result<Report> {
        let (delivered, d) = self.item("deliver").await?;
        let (new_key, secret) = if delivered {
            (d["newKeyId"].as_str().unwrap_or_default().to_string(), None)
        } else {
            let (id, secret, replaced) = self.create_and_deliver().await?;
            if let Err(e) = self.verify(&id, &secret).await {
                return self.roll_back(&id, replaced, e).await;
            }
            (id, Some(secret))
        };
        if secret.is_none() {
            let (verified, _) = self.item("verify").await?;
            if !verified {
                self.resume_verify(&new_key).await?;
            }
        }
        self.retire(new_key).await
    }
}

impl Run<'_> {
    /// Steps 1–3, cleaning up after a crash inside the window first.
    async fn create_and_deliver(&self) -> Result<(String, SecretString, super::Replaced)> {
        let old = self
            .client
            .access_keys()
            .get(&self.req.key_id)
            .await
            .map_err(|e| match e.status() {
                Some(404) => Error::Invalid(format!(
                    "--key: the tenant has no access key {}",
                    self.req.key_id
                )),
                _ => e.into(),
            })?;
        let user = old.user_id.clone();
        let before = self.intent(user.as_deref()).await?;
        crate::failpoint("accesskey.intent");
        self.remove_undelivered(user.as_deref(), &before).await?;
        self.job.claim("create").await?;
        let tenant = self.client.tenant().await?.tenant_id.clone();
        let new = self
            .client
            .access_keys()
            .create(user.as_deref(), Some(&tenant))
            .await?;
        crate::failpoint("accesskey.created");
        self.job
            .step_done(
                "create",
                Some(json!({"before": before, "userId": user, "newKeyId": new.access_key_id})),
                vec![entry(
                    &self.req.actor,
                    "accesskey.created",
                    &new.access_key_id,
                    Outcome::Success,
                    Details::new()
                        .id("replaces", &audit_id(&self.req.key_id))?
                        .id("job", self.job.id())?,
                )?],
            )
            .await?;
        let replaced = match deliver::deliver(
            &self.req.target,
            self.vault,
            &new.access_key_id,
            &new.access_key_secret,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                self.delete_key(&new.access_key_id, "not_delivered").await?;
                self.end(JobStatus::Failed, Outcome::Failure, "delivery failed")
                    .await?;
                return Err(e);
            }
        };
        crate::failpoint("accesskey.delivered");
        let sha = crate::sha256_hex(new.access_key_secret.expose_secret());
        self.job
            .step_done(
                "deliver",
                Some(json!({"newKeyId": new.access_key_id, "secretSha256": sha, "target": self.req.target.label(), "key": self.req.key_id})),
                vec![entry(&self.req.actor, "accesskey.delivered", &new.access_key_id, Outcome::Success,
                    Details::new().label("target_kind", self.req.target.kind()).sha256("secret_sha256", &sha)?)?],
            )
            .await?;
        Ok((new.access_key_id, new.access_key_secret, replaced))
    }

    /// Step 1: the user's keys as they were at the intent, journaled once.
    async fn intent(&self, user: Option<&str>) -> Result<Vec<String>> {
        let (_, intent) = self.item("create").await?;
        Ok(match intent["before"].as_array() {
            Some(b) => b
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            None => {
                let ids = self.user_keys(user).await?;
                let record = json!({"before": ids, "userId": user});
                self.ledger
                    .record_results(self.job.id(), &[("create".to_string(), record)])
                    .await?;
                ids
            }
        })
    }

    /// The ids of `user`'s keys now.
    async fn user_keys(&self, user: Option<&str>) -> Result<Vec<String>> {
        Ok(self
            .client
            .access_keys()
            .list(user)
            .await?
            .into_iter()
            .filter_map(|k| k.access_key_id)
            .collect())
    }

    /// After a crash between create and delivery: every key of the user that was not
    /// there at the intent is one this job created and nobody holds; it goes.
    async fn remove_undelivered(&self, user: Option<&str>, before: &[String]) -> Result<()> {
        for id in self.user_keys(user).await? {
            if !before.contains(&id) {
                self.delete_key(&id, "not_delivered").await?;
            }
        }
        Ok(())
    }

    /// Deactivates and deletes a key this job created, auditing why.
    async fn delete_key(&self, id: &str, reason: &'static str) -> Result<()> {
        let keys = self.client.access_keys();
        for r in [keys.set_active(id, false).await, keys.delete(id).await] {
            match r {
                Ok(()) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.ledger
            .append(entry(
                &self.req.actor,
                "accesskey.rolled_back",
                id,
                Outcome::Success,
                Details::new()
                    .label("reason", reason)
                    .id("job", self.job.id())?,
            )?)
            .await?;
        Ok(())
    }

    /// Step 4: a token with the new key, through the same issuer and app.
    async fn verify(&self, id: &str, secret: &SecretString) -> Result<()> {
        let mut settings = self.client.settings().clone();
        match &mut settings.grant {
            cxone::Grant::AccessKey {
                access_key_id,
                access_key_secret,
                ..
            } => {
                *access_key_id = id.to_string();
                *access_key_secret = secret.clone();
            }
            cxone::Grant::ClientCredentials { .. } => {
                return Err(Error::Invalid(
                    "verifying an access key needs the access-key grant (api = \"cxone\")".into(),
                ));
            }
        }
        cxone::Client::new(settings)?.authenticate().await?;
        let deactivate_at = ledger::timestamp(time::OffsetDateTime::now_utc() + self.req.grace);
        self.job
            .step_done(
                "verify",
                Some(json!({"deactivateAt": deactivate_at})),
                vec![entry(
                    &self.req.actor,
                    "accesskey.verified",
                    id,
                    Outcome::Success,
                    Details::new(),
                )?],
            )
            .await?;
        crate::failpoint("accesskey.verified");
        Ok(())
    }

    /// Verification after a crash: the secret is read back from a file or Vault; a
    /// command's copy cannot be read, so the key's own token is not retried.
    async fn resume_verify(&self, id: &str) -> Result<()> {
        let secret = match &self.req.target {
            Target::File(p) => {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(p).map_err(|e| {
                    Error::Failed(format!(
                        "{}: cannot read the delivered key back: {e}",
                        p.display()
                    ))
                })?)
                .unwrap_or(Value::Null);
                v["accessKeySecret"]
                    .as_str()
                    .map(|s| SecretString::from(s.to_string()))
            }
            _ => None,
        };
        match secret {
            Some(s) => self.verify(id, &s).await,
            None => {
                let deactivate_at =
                    ledger::timestamp(time::OffsetDateTime::now_utc() + self.req.grace);
                self.job
                    .step_done(
                        "verify",
                        Some(json!({"deactivateAt": deactivate_at, "afterResume": true})),
                        Vec::new(),
                    )
                    .await
            }
        }
    }

    async fn roll_back(
        &self,
        new_key: &str,
        replaced: super::Replaced,
        why: Error,
    ) -> Result<Report> {
        self.delete_key(new_key, "verification_failed").await?;
        deliver::restore(&self.req.target, self.vault, replaced).await?;
        self.end(JobStatus::Failed, Outcome::Failure, "rolled back")
            .await?;
        Err(Error::Failed(format!(
            "the new key {new_key} was refused when verified ({}); it was deleted, the target put back, and {} stays active",
            why.summary(),
            self.req.key_id
        )))
    }
}
