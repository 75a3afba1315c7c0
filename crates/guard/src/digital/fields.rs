//! `[digital.customer_fields]` and `[digital.case_fields]`: DFO customers' and cases'
//! custom fields changed by anonymize's operators (spec-real §4.3e–f, §4.4c–d) — pseudonymized, masked or replaced with one `PUT` of
//! the changed fields, erased with a `DELETE` each. A value already in its target state
//! (a pseudonym, a mask that masks nothing more, an absent field) sends nothing.

use ledger::{Details, EventKind, ItemOutcome, NewEntry, NewEvent, Outcome};
use serde_json::json;

use super::{DigitalPolicy, Part, Run};
use crate::anonymize::policy::Field;
use crate::job::{Step, Tally};
use crate::{Error, Result};

/// The most rounds of reading and deleting one customer's notes.
const NOTE_ROUNDS: usize = 50;

/// Refuses, before any change, a rule whose ident the tenant's custom-field definitions
/// (of customers, of cases) do not know, naming its line.
pub(super) async fn check_idents(client: &cxone::Client, policy: &DigitalPolicy) -> Result<()> {
    let mut unknown = Vec::new();
    for (section, rules) in [
        ("customer_fields", &policy.customer_fields.rules),
        ("case_fields", &policy.case_fields.rules),
    ] {
        if rules.is_empty() {
            continue;
        }
        let defined = if section == "customer_fields" {
            client.dfo().customer_fields().await?
        } else {
            client.dfo().case_fields().await?
        };
        let names: Vec<&str> = defined.iter().map(|d| d.ident.as_str()).collect();
        for r in rules.iter() {
            if let Field::Custom(ident) = &r.field
                && !names.contains(&ident.as_str())
            {
                unknown.push(format!(
                    "{}:{}: digital.{section}.{ident}: the tenant defines no such field (its fields: {})",
                    policy.shown,
                    r.line,
                    names.join(", ")
                ));
            }
        }
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{} does not validate against the tenant; nothing was changed:\n  {}",
            policy.shown,
            unknown.join("\n  ")
        )))
    }
}

/// What a rule set makes of a record's custom fields.
#[derive(Default)]
struct FieldChanges {
    /// Fields written with a new value (one `PUT`).
    set: Vec<cxone::dfo::CustomField>,
    /// Fields deleted.
    erase: Vec<String>,
    /// Each changed field and its operator, for the audit log.
    changed: Vec<(String, &'static str)>,
}

/// The changes `policy` asks of `have`; a value already in its target state, or absent,
/// asks none.
fn changes(policy: &crate::anonymize::Policy, have: &[cxone::dfo::CustomField]) -> FieldChanges {
    let mut out = FieldChanges::default();
    for rule in &policy.rules {
        let Field::Custom(ident) = &rule.field else {
            continue;
        };
        let Some(now) = have
            .iter()
            .find(|f| f.ident == *ident)
            .and_then(|f| f.value.clone())
        else {
            continue;
        };
        let Some(t) = crate::anonymize::transform::value_target(policy, &rule.op, &now) else {
            continue;
        };
        match t.value {
            None => out.erase.push(ident.clone()),
            Some(v) if v != now => out.set.push(cxone::dfo::CustomField {
                ident: ident.clone(),
                value: Some(v),
            }),
            Some(_) => continue,
        }
        out.changed.push((ident.clone(), rule.op.label()));
    }
    out
}

impl Run<'_> {
    /// One customer: read, each field's target computed, the changed ones written, and
    /// its step (an audit entry per field, never a value, and one consent event).
    pub(super) async fn customer(&self, key: String, id: String) -> Result<Step> {
        let dfo = self.client.dfo();
        let customer = match dfo.customer(&id).await {
            Ok(c) => c,
            Err(e) if e.status() == Some(404) => {
                return Ok(Step {
                    outcome: ItemOutcome::Failed {
                        error: "no such customer (404)".into(),
                    },
                    key,
                    audit: Vec::new(),
                    events: Vec::new(),
                    tally: Tally::NotFound { what: "customer" },
                });
            }
            Err(e) => return Ok(self.failed(key, &e)),
        };
        let FieldChanges {
            set,
            erase,
            changed,
        } = changes(&self.policy.customer_fields, &customer.custom_fields);
        if !set.is_empty()
            && let Err(e) = self.job.timed(dfo.set_customer_fields(&id, &set)).await
        {
            return Ok(self.failed(key, &e));
        }
        for ident in &erase {
            match self.job.timed(dfo.delete_customer_field(&id, ident)).await {
                Ok(()) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Ok(self.failed(key, &e)),
            }
        }
        let notes = if self.policy.delete_notes {
            match self.delete_notes(&id).await {
                Ok(n) => n,
                Err(e) => return Ok(self.failed(key, &e)),
            }
        } else {
            Vec::new()
        };
        crate::failpoint("digital.customer");
        self.customer_step(key, &id, changed, notes)
    }

    /// Deletes every note of customer `id`, reading them again until none is left (the
    /// notes listing pages; each round deletes what one page shows), at most
    /// [`NOTE_ROUNDS`] rounds. The deleted notes' ids.
    async fn delete_notes(&self, id: &str) -> std::result::Result<Vec<String>, cxone::Error> {
        let dfo = self.client.dfo();
        let mut deleted = Vec::new();
        for _ in 0..NOTE_ROUNDS {
            let ids = dfo.note_ids(id).await?;
            if ids.is_empty() {
                return Ok(deleted);
            }
            for n in ids {
                match self.job.timed(dfo.delete_note(id, &n)).await {
                    Ok(()) => deleted.push(n),
                    Err(e) if e.status() == Some(404) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(deleted)
    }

    /// Case `key`'s own custom fields, as `[digital.case_fields]` asks; an API error is
    /// returned as the inner error (the case's failure).
    pub(super) async fn case_fields(
        &self,
        key: &str,
        part: &mut Part,
    ) -> Result<std::result::Result<(), cxone::Error>> {
        let dfo = self.client.dfo();
        let case = match dfo.case(key).await {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let c = changes(&self.policy.case_fields, &case.custom_fields);
        if !c.set.is_empty()
            && let Err(e) = self.job.timed(dfo.set_case_fields(key, &c.set)).await
        {
            return Ok(Err(e));
        }
        for ident in &c.erase {
            match self.job.timed(dfo.delete_case_field(key, ident)).await {
                Ok(()) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        for (ident, op) in c.changed {
            part.audit.push(NewEntry::new(
                self.job.actor(),
                "dfo.case.field",
                key,
                Outcome::Success,
                Details::new().id("field", &ident)?.label("op", op),
            )?);
            part.count += 1;
            part.fields.push(format!("customFields.{ident}"));
        }
        Ok(Ok(()))
    }

    fn customer_step(
        &self,
        key: String,
        id: &str,
        changed: Vec<(String, &'static str)>,
        notes: Vec<String>,
    ) -> Result<Step> {
        let mut audit = Vec::new();
        for n in &notes {
            audit.push(NewEntry::new(
                self.job.actor(),
                "dfo.customer.note.deleted",
                id,
                Outcome::Success,
                Details::new().id("note", n)?,
            )?);
        }
        for (ident, op) in &changed {
            audit.push(NewEntry::new(
                self.job.actor(),
                "dfo.customer.field",
                id,
                Outcome::Success,
                Details::new().id("field", ident)?.label("op", op),
            )?);
        }
        let events = if changed.is_empty() && notes.is_empty() {
            Vec::new()
        } else {
            vec![NewEvent::new(
                EventKind::Consent,
                "customer.anonymized",
                Details::new()
                    .id("customer", id)?
                    .count("fields", changed.len() as u64)
                    .count("notes", notes.len() as u64)
                    .id("job", self.job.id())?,
            )]
        };
        let mut fields: Vec<String> = changed
            .iter()
            .map(|(f, _)| format!("customFields.{f}"))
            .collect();
        if !notes.is_empty() {
            fields.push("notes".into());
        }
        let tally = if fields.is_empty() {
            Tally::Unchanged
        } else {
            Tally::Changed { fields }
        };
        Ok(Step {
            outcome: ItemOutcome::Done {
                result: Some(json!({"fields": changed.len(), "notes": notes.len()})),
            },
            key,
            audit,
            events,
            tally,
        })
    }
}
