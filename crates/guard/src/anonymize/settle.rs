//! Settling contacts: what each outcome records (its journal outcome, its
//! `contact.anonymize` audit entry, its consent event) as a [`Step`] for the job
//! runner, and what the journal keeps of encrypted fields so a rerun or `reveal` finds
//! every ciphertext and the FF1 derivation it was written with.

use std::collections::BTreeMap;

use ledger::{Details, EventKind, ItemOutcome, NewEntry, NewEvent, Outcome};
use serde_json::json;

use super::policy::{Operator, Policy};
use super::transform::{self, ContactPlan};
use crate::Result;
use crate::job::{Job, Step, Tally};

/// What settling one contact records.
pub(super) enum Settled {
    Changed {
        id: String,
        plan: ContactPlan,
    },
    Landed {
        id: String,
    },
    Unchanged {
        id: String,
    },
    NotFound {
        id: String,
    },
    Failed {
        id: String,
        error: String,
        status: Option<u16>,
    },
    /// Not attempted, or refused for a missing scope: the job stops as a whole and this
    /// contact stays unfinished, so a rerun once the scope is granted picks it up.
    Stopped {
        id: String,
    },
}

impl Settled {
    fn id(&self) -> &str {
        match self {
            Settled::Changed { id, .. }
            | Settled::Landed { id }
            | Settled::Unchanged { id }
            | Settled::NotFound { id }
            | Settled::Stopped { id }
            | Settled::Failed { id, .. } => id,
        }
    }
}

/// The fields the policy covers, for events about contacts whose exact changes an
/// earlier, interrupted attempt made.
fn covered(policy: &Policy) -> (Vec<String>, Vec<(String, &'static str)>) {
    let rules = policy.rules.iter().filter(|r| r.op != Operator::Keep);
    let names: Vec<String> = rules.clone().map(|r| r.field.name()).collect();
    let algos = rules.map(|r| (r.field.name(), r.op.algorithm())).collect();
    (names, algos)
}

/// Settles a batch in one transaction on `job`. Stopped contacts are left unfinished.
pub(super) async fn settle(job: &Job<'_>, policy: &Policy, batch: Vec<Settled>) -> Result<()> {
    let key_ids = policy.key_ids();
    let mut steps = Vec::with_capacity(batch.len());
    for s in batch {
        if let Some(step) = step(job.actor(), policy, s, &key_ids)? {
            steps.push(step);
        }
    }
    job.settle(steps).await
}

/// What settling `s` records; `None` for a contact left for a rerun.
fn step(actor: &str, policy: &Policy, s: Settled, key_ids: &[String]) -> Result<Option<Step>> {
    let id = s.id().to_string();
    let id = id.as_str();
    let (outcome, entry, event) = match &s {
        Settled::Stopped { .. } => return Ok(None),
        Settled::Changed { plan, .. } => changed(actor, id, plan, key_ids)?,
        Settled::Landed { .. } => {
            let (fields, algos) = covered(policy);
            let entry = NewEntry::new(
                actor,
                "contact.anonymize",
                id,
                Outcome::Success,
                Details::new()
                    .ids("fields", &fields)?
                    .ids("key_ids", key_ids)?
                    .flag("completed_by_earlier_attempt", true),
            )?;
            (
                ItemOutcome::Done { result: None },
                entry,
                Some(consent_event(id, &fields, &algos)?),
            )
        }
        Settled::Unchanged { .. } => {
            let entry = NewEntry::new(
                actor,
                "contact.anonymize",
                id,
                Outcome::Skipped,
                Details::new().label("reason", "already_in_target_state"),
            )?;
            (ItemOutcome::Done { result: None }, entry, None)
        }
        Settled::NotFound { .. } => {
            let entry = NewEntry::new(
                actor,
                "contact.anonymize",
                id,
                Outcome::Failure,
                Details::new()
                    .label("reason", "not_found")
                    .number("status", 404),
            )?;
            (
                ItemOutcome::Failed {
                    error: "no such contact (404)".into(),
                },
                entry,
                None,
            )
        }
        Settled::Failed { error, status, .. } => {
            let mut d = Details::new().label("reason", "error");
            if let Some(st) = status {
                d = d.number("status", i64::from(*st));
            }
            let entry = NewEntry::new(actor, "contact.anonymize", id, Outcome::Failure, d)?;
            (
                ItemOutcome::Failed {
                    error: error.clone(),
                },
                entry,
                None,
            )
        }
    };
    let Some(tally) = tally(s) else {
        return Ok(None);
    };
    Ok(Some(Step {
        key: id.to_string(),
        outcome,
        audit: vec![entry],
        events: event.into_iter().collect(),
        tally,
    }))
}

/// What a settled contact adds to the run's totals (`None`: it was stopped, not settled).
fn tally(s: Settled) -> Option<Tally> {
    Some(match s {
        Settled::Changed { plan, .. } => Tally::Changed {
            fields: plan.changes.into_iter().map(|c| c.field).collect(),
        },
        Settled::Landed { .. } => Tally::Changed { fields: Vec::new() },
        Settled::Unchanged { .. } => Tally::Unchanged,
        Settled::NotFound { .. } => Tally::NotFound { what: "contact" },
        Settled::Failed { error, .. } => Tally::Failed { error },
        Settled::Stopped { .. } => return None,
    })
}

/// A contact the PATCH changed: its audit entry (fields, operators, keys) and consent
/// event. The ciphertexts were recorded (merged with earlier ones) as the intent before
/// the PATCH; settling keeps that record.
fn changed(
    actor: &str,
    id: &str,
    plan: &ContactPlan,
    key_ids: &[String],
) -> Result<(ItemOutcome, NewEntry, Option<NewEvent>)> {
    let fields: Vec<String> = plan.changes.iter().map(|c| c.field.clone()).collect();
    let ops: Vec<(String, &'static str)> = plan
        .changes
        .iter()
        .map(|c| (c.field.clone(), c.op))
        .collect();
    let algos: Vec<(String, &'static str)> = plan
        .changes
        .iter()
        .map(|c| (c.field.clone(), c.algorithm))
        .collect();
    let unnormalized = plan.changes.iter().filter(|c| !c.normalized).count() as u64;
    let mut details = Details::new()
        .ids("fields", &fields)?
        .label_map("operators", &ops)?
        .ids("key_ids", key_ids)?
        .count("unnormalized", unnormalized);
    if !plan.ciphertexts.is_empty() {
        details = details.label("fpe_derivation", transform::FpeVersion::CURRENT.label());
    }
    let entry = NewEntry::new(actor, "contact.anonymize", id, Outcome::Success, details)?;
    let event = consent_event(id, &fields, &algos)?;
    // The ciphertexts were recorded (merged with earlier ones) as the
    // intent before the PATCH; settling keeps that record.
    Ok((ItemOutcome::Done { result: None }, entry, Some(event)))
}

/// What the journal recorded of a contact's encrypted fields: each ciphertext's hash,
/// and the FF1 derivation each was written with (absent before v2: v1).
#[derive(Debug, Clone, Default)]
pub(crate) struct Earlier {
    pub ciphertexts: BTreeMap<String, String>,
    pub fpe: BTreeMap<String, String>,
}

impl Earlier {
    pub(crate) fn from_record(record: Option<&serde_json::Value>) -> Self {
        let Some(v) = record else {
            return Earlier::default();
        };
        let ciphertexts: BTreeMap<String, String> =
            serde_json::from_value(v["ciphertexts"].clone()).unwrap_or_default();
        let recorded: BTreeMap<String, String> =
            serde_json::from_value(v["fpe"].clone()).unwrap_or_default();
        let fpe = ciphertexts
            .keys()
            .map(|f| {
                let version = recorded
                    .get(f)
                    .cloned()
                    .unwrap_or_else(|| transform::FpeVersion::V1.as_str().to_string());
                (f.clone(), version)
            })
            .collect();
        Earlier { ciphertexts, fpe }
    }
}

/// What to record before a PATCH that writes ciphertexts: every field's ciphertext hash
/// and FF1 derivation, earlier ones included, so any later run recognises all of them
/// and `reveal` decrypts each with the derivation it was written with.
pub(super) fn intent(earlier: &Earlier, plan: &ContactPlan) -> Option<serde_json::Value> {
    if plan.ciphertexts.is_empty() {
        return None;
    }
    let mut all = earlier.ciphertexts.clone();
    all.extend(plan.ciphertexts.clone());
    let mut fpe = earlier.fpe.clone();
    for f in plan.ciphertexts.keys() {
        fpe.insert(
            f.clone(),
            transform::FpeVersion::CURRENT.as_str().to_string(),
        );
    }
    Some(json!({"ciphertexts": all, "fpe": fpe}))
}

/// The tutorial's `contact.anonymized` event: contact id, status, fields and algorithm,
/// never a value.
pub(super) fn consent_event(
    id: &str,
    fields: &[String],
    algorithms: &[(String, &'static str)],
) -> Result<NewEvent> {
    Ok(NewEvent::new(
        EventKind::Consent,
        "contact.anonymized",
        Details::new()
            .id("contact_id", id)?
            .label("status", "success")
            .ids("fields", fields)?
            .label_map("algorithm", algorithms)?,
    )
    .with_subject("contact_id"))
}
