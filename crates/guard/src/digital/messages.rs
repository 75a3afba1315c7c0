//! A case's messages: each removal the policy asks for and the message does not
//! already show (`contentRemoved`, `authorNameRemoved`) sent, and audited.

use ledger::{Details, NewEntry, Outcome};

use super::{Messages, Part, Run};
use crate::Result;

impl Run<'_> {
    /// Reads case `key`'s messages and sends the removals still due; an API error is
    /// returned as the inner error (the case's failure), a ledger error as the outer.
    pub(super) async fn remove_messages(
        &self,
        key: &str,
        rule: Messages,
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
