//! Steps 5 and 6 of a rotation: the old key deactivated after the grace, deleted after
//! `delete_after`, and the job ended with its `accesskey.rotated` event.

use ledger::{Claim, Details, EventKind, JobStatus, NewEvent, Outcome};
use serde_json::json;

use super::deliver::Target;
use super::rotate::{Report, Run, audit_id, entry};
use crate::Result;
use crate::job::{Step, Tally};

impl Run<'_> {
    /// Steps 5 and 6, each when it is due; the job ends when both are done.
    pub(super) async fn retire(&self, new_key: String) -> Result<Report> {
        let (_, v) = self.item("verify").await?;
        let parse = |t: &str| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        };
        let now = time::OffsetDateTime::now_utc();
        let deactivate_at = v["deactivateAt"].as_str().and_then(parse).unwrap_or(now);
        let delete_at = self.req.delete_after.map(|d| deactivate_at + d);
        let shown = |t: Option<time::OffsetDateTime>| t.map(ledger::timestamp);
        if now < deactivate_at {
            return Ok(self.report(
                "waiting",
                Some(new_key),
                shown(Some(deactivate_at)),
                shown(delete_at),
            ));
        }
        let (deactivated, _) = self.item("deactivate").await?;
        if !deactivated {
            self.deactivate_old(&new_key).await?;
        }
        if let Some(at) = delete_at
            && now < at
        {
            return Ok(self.report(
                "waiting",
                Some(new_key),
                shown(Some(deactivate_at)),
                shown(delete_at),
            ));
        }
        self.delete_old(&new_key, delete_at.is_some()).await?;
        Ok(self.report(
            "rotated",
            Some(new_key),
            shown(Some(deactivate_at)),
            shown(delete_at),
        ))
    }

    async fn deactivate_old(&self, new_key: &str) -> Result<()> {
        if let Claim::AlreadyDone = self.job.claim("deactivate").await? {
            return Ok(());
        }
        match self
            .client
            .access_keys()
            .set_active(&self.req.key_id, false)
            .await
        {
            Ok(()) => {}
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e.into()),
        }
        if let Target::File(p) = &self.req.target {
            let _ = std::fs::remove_file(format!("{}.previous", p.display()));
        }
        self.job
            .step_done(
                "deactivate",
                None,
                vec![entry(
                    &self.req.actor,
                    "accesskey.deactivated",
                    &self.req.key_id,
                    Outcome::Success,
                    Details::new().id("replaced_by", &audit_id(new_key))?,
                )?],
            )
            .await?;
        crate::failpoint("accesskey.deactivated");
        Ok(())
    }

    async fn delete_old(&self, new_key: &str, delete: bool) -> Result<()> {
        if let Claim::AlreadyDone = self.job.claim("delete").await? {
            return Ok(());
        }
        let mut audit = Vec::new();
        if delete {
            match self.client.access_keys().delete(&self.req.key_id).await {
                Ok(()) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e.into()),
            }
            audit.push(entry(
                &self.req.actor,
                "accesskey.deleted",
                &self.req.key_id,
                Outcome::Success,
                Details::new(),
            )?);
        }
        let details = Details::new()
            .id("old_key", &audit_id(&self.req.key_id))?
            .id("new_key", &audit_id(new_key))?
            .label("target_kind", self.req.target.kind());
        self.job
            .settle(vec![Step {
                key: "delete".into(),
                outcome: ledger::ItemOutcome::Done {
                    result: Some(json!({"deleted": delete})),
                },
                audit,
                events: vec![NewEvent::new(
                    EventKind::Vault,
                    "accesskey.rotated",
                    details,
                )],
                tally: Tally::Step,
            }])
            .await?;
        self.end(JobStatus::Done, Outcome::Success, "rotated").await
    }

    pub(super) async fn end(
        &self,
        status: JobStatus,
        outcome: Outcome,
        what: &'static str,
    ) -> Result<()> {
        self.job
            .end(
                status,
                entry(
                    &self.req.actor,
                    "job.finish",
                    self.job.id(),
                    outcome,
                    Details::new()
                        .label("status", what)
                        .id("key", &audit_id(&self.req.key_id))?,
                )?,
            )
            .await
    }
}
