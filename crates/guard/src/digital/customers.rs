//! `[digital.customer_fields]`: a DFO customer's custom fields changed by anonymize's
//! operators (spec-real §4.3e–f) — pseudonymized, masked or replaced with one `PUT` of
//! the changed fields, erased with a `DELETE` each. A value already in its target state
//! (a pseudonym, a mask that masks nothing more, an absent field) sends nothing.

use ledger::{Details, EventKind, ItemOutcome, NewEntry, NewEvent, Outcome};
use serde_json::json;

use super::{DigitalPolicy, Run};
use crate::anonymize::policy::Field;
use crate::job::{Step, Tally};
use crate::{Error, Result};

/// Refuses, before any change, a rule whose ident the tenant's customer custom-field
/// definitions do not know, naming its line.
pub(super) async fn check_idents(client: &cxone::Client, policy: &DigitalPolicy) -> Result<()> {
    let rules = &policy.customer_fields.rules;
    if rules.is_empty() {
        return Ok(());
    }
    let defined = client.dfo().customer_fields().await?;
    let unknown: Vec<String> = rules
        .iter()
        .filter_map(|r| match &r.field {
            Field::Custom(ident) if !defined.iter().any(|d| d.ident == *ident) => Some(format!(
                "{}:{}: digital.customer_fields.{ident}: the tenant has no customer custom field {ident} (its fields: {})",
                policy.shown,
                r.line,
                defined
                    .iter()
                    .map(|d| d.ident.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => None,
        })
        .collect();
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
        let policy = &self.policy.customer_fields;
        let mut set = Vec::new();
        let mut erase = Vec::new();
        let mut changed = Vec::new();
        for rule in &policy.rules {
            let Field::Custom(ident) = &rule.field else {
                continue;
            };
            let Some(now) = customer
                .custom_fields
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
                None => erase.push(ident.clone()),
                Some(v) if v != now => set.push(cxone::dfo::CustomField {
                    ident: ident.clone(),
                    value: Some(v),
                }),
                Some(_) => continue,
            }
            changed.push((ident.clone(), rule.op.label()));
        }
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
        crate::failpoint("digital.customer");
        self.customer_step(key, &id, changed)
    }

    fn customer_step(
        &self,
        key: String,
        id: &str,
        changed: Vec<(String, &'static str)>,
    ) -> Result<Step> {
        let mut audit = Vec::new();
        for (ident, op) in &changed {
            audit.push(NewEntry::new(
                self.job.actor(),
                "dfo.customer.field",
                id,
                Outcome::Success,
                Details::new().id("field", ident)?.label("op", op),
            )?);
        }
        let events = if changed.is_empty() {
            Vec::new()
        } else {
            vec![NewEvent::new(
                EventKind::Consent,
                "customer.anonymized",
                Details::new()
                    .id("customer", id)?
                    .count("fields", changed.len() as u64)
                    .id("job", self.job.id())?,
            )]
        };
        let tally = if changed.is_empty() {
            Tally::Unchanged
        } else {
            Tally::Changed {
                fields: changed
                    .iter()
                    .map(|(f, _)| format!("customFields.{f}"))
                    .collect(),
            }
        };
        Ok(Step {
            outcome: ItemOutcome::Done {
                result: Some(json!({"fields": changed.len()})),
            },
            key,
            audit,
            events,
            tally,
        })
    }
}
