//! A case's messages: each removal the policy asks for and the message does not
//! already show (`contentRemoved`, `authorNameRemoved`) sent, and audited.

use ledger::{Details, NewEntry, Outcome};

use super::{Messages, Part, Run};
use crate::Result;

impl Run<'_> {
    /// Reads case `key`'s messages and sends the removals still due; an API error is
    /// returned as the inner error (the case's failure), a ledger error as the outer.
    ///
    /// On a later `attempt` of the case (the process died, or the case failed, after
    /// some removals were sent and before they were settled), a part already removed
    /// with this rule's reason was sent by the earlier attempt: it is audited now,
    /// marked `recovered`, so the audit log holds every removal this job made.
    pub(super) async fn remove_messages(
        &self,
        key: &str,
        rule: Messages,
        attempt: i64,
        part: &mut Part,
    ) -> Result<std::result::Result<(), cxone::Error>> {
        let dfo = self.client.dfo();
        let messages = match dfo.messages(key).await {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        let reason = rule.reason.as_str();
        for m in &messages {
            let Some(id) = m.id.as_deref() else { continue };
            let wanted = [
                ("content", rule.content && m.content_removed.is_none()),
                (
                    "author_name",
                    rule.author_name && m.author_name_removed.is_none(),
                ),
            ];
            if attempt > 1 {
                let ours = |r: &Option<cxone::dfo::Removed>| {
                    r.as_ref()
                        .is_some_and(|r| r.reason.as_deref() == Some(reason))
                };
                for (what, asked, done) in [
                    ("content", rule.content, &m.content_removed),
                    ("author_name", rule.author_name, &m.author_name_removed),
                ] {
                    if asked && ours(done) {
                        part.audit.push(NewEntry::new(
                            self.job.actor(),
                            "dfo.message.removed",
                            id,
                            Outcome::Success,
                            Details::new()
                                .id("case", key)?
                                .label("part", what)
                                .label("reason", reason)
                                .flag("recovered", true),
                        )?);
                    }
                }
            }
            for (what, _) in wanted.iter().filter(|(_, w)| *w) {
                let sent = if *what == "content" {
                    self.job.timed(dfo.remove_content(key, id, reason)).await
                } else {
                    self.job
                        .timed(dfo.remove_author_name(key, id, reason))
                        .await
                };
                if let Err(e) = sent {
                    return Ok(Err(e));
                }
                crate::failpoint("digital.removed");
                part.count += 1;
                part.audit.push(NewEntry::new(
                    self.job.actor(),
                    "dfo.message.removed",
                    id,
                    Outcome::Success,
                    Details::new()
                        .id("case", key)?
                        .label("part", what)
                        .label("reason", reason),
                )?);
                if !part.fields.iter().any(|f| f == what) {
                    part.fields.push(what.to_string());
                }
            }
        }
        Ok(Ok(()))
    }
}
