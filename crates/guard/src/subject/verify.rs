//! `subject verify`: after an erasure, search again for the receipt's person and list
//! what still holds them — on CXone's published API, completed contacts whose addresses
//! the (asynchronous) platform erasure has not yet anonymized, messages not removed,
//! customer fields that still hold the identifier; on the tutorials' routes, contacts
//! that still hold it raw and guests still linked. Optionally polled until nothing is
//! left or the time is up; each verification audited as `subject.verified` with counts.
//!
//! A DFO customer's identities cannot be changed through the API (spec-real §4.3c):
//! they are listed as such, not counted as remaining, since no erasure could clear them.

use std::time::Duration;

use ledger::Ledger;
use serde::Serialize;

use super::real::{MessageHit, VoiceHit};
use super::{How, Matcher, Subject};
use crate::Result;

/// The audit operation of a verification.
pub const OPERATION: &str = "subject.verified";

/// What still holds one person.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Remaining {
    /// The subject's reference.
    pub reference: String,
    /// Completed contacts whose addresses still hold the identifier.
    pub voice: Vec<VoiceHit>,
    /// Messages whose content or author name is still there.
    pub messages: Vec<MessageHit>,
    /// Custom fields that still hold the identifier, `customer ID: IDENT`.
    pub fields: Vec<String>,
    /// Contacts (tutorials' routes) that still hold the identifier raw.
    pub contacts: Vec<String>,
    /// Guests (tutorials' routes) still linked to the person.
    pub guests: Vec<String>,
    /// DFO customers found by an identity, which the API cannot change (not counted).
    pub identities: Vec<String>,
}

impl Remaining {
    /// How many records still hold the person.
    pub fn count(&self) -> u64 {
        (self.voice.len()
            + self.messages.len()
            + self.fields.len()
            + self.contacts.len()
            + self.guests.len()) as u64
    }
}

/// A verification's outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    /// Per subject.
    pub subjects: Vec<Remaining>,
    /// Searches made (1 without waiting).
    pub searches: u32,
    /// Seconds spent.
    pub seconds: f64,
    /// Records still holding anyone, after the last search.
    pub remaining: u64,
}

/// How to search.
#[derive(Debug, Clone)]
pub struct Options {
    /// Who runs it, for the audit trail.
    pub actor: String,
    /// The identity attribute (guests, or DFO customers' field).
    pub attribute: String,
    /// Contacts per page (tutorials' routes).
    pub page_size: cxone::PageSize,
    /// The start of the completed contacts searched (CXone's published API).
    pub since: time::OffsetDateTime,
    /// Keep searching until nothing remains or this much time has passed.
    pub wait: Option<Duration>,
    /// Between two searches.
    pub poll: Duration,
}

/// One search: what still holds each subject.
pub async fn remaining(
    client: &cxone::Client,
    ledger: &Ledger,
    subjects: &[Subject],
    matcher: &Matcher,
    o: &Options,
) -> Result<Vec<Remaining>> {
    if client.settings().is_cxone() {
        let f = super::real::find(client, subjects, matcher, o.since).await?;
        return Ok(f
            .subjects
            .into_iter()
            .map(|s| {
                let mut r = Remaining {
                    reference: s.reference,
                    voice: s.voice,
                    messages: s.messages.into_iter().filter(MessageHit::remains).collect(),
                    ..Default::default()
                };
                for c in s.customers {
                    for (what, how) in &c.holds {
                        match what.strip_prefix("field:") {
                            Some(ident) if *how == How::Raw => {
                                r.fields.push(format!("customer {}: {ident}", c.id));
                            }
                            None => r.identities.push(c.id.clone()),
                            Some(_) => {}
                        }
                    }
                }
                r
            })
            .collect());
    }
    let f = super::find(client, ledger, subjects, matcher, &o.attribute, o.page_size).await?;
    Ok(f.subjects
        .into_iter()
        .map(|s| Remaining {
            reference: s.reference,
            contacts: s
                .contacts
                .into_iter()
                .filter(|c| c.fields.values().any(|h| *h == How::Raw))
                .map(|c| c.id)
                .collect(),
            guests: s.guests,
            ..Default::default()
        })
        .collect())
}

/// Searches (again and again with `wait`) until nothing holds any subject or the time
/// is up; audits the last search, one `subject.verified` entry per subject.
pub async fn verify(
    client: &cxone::Client,
    ledger: &Ledger,
    subjects: &[Subject],
    matcher: &Matcher,
    o: &Options,
) -> Result<Verified> {
    let start = std::time::Instant::now();
    let mut searches = 0u32;
    let found = loop {
        let found = remaining(client, ledger, subjects, matcher, o).await?;
        searches += 1;
        let left: u64 = found.iter().map(Remaining::count).sum();
        match o.wait {
            Some(w) if left > 0 && start.elapsed() + o.poll <= w => {
                tokio::time::sleep(o.poll).await;
            }
            _ => break found,
        }
    };
    let mut audit = Vec::new();
    for (s, r) in subjects.iter().zip(&found) {
        audit.push(
            s.entry(
                &o.actor,
                OPERATION,
                s.details()?
                    .count("remaining", r.count())
                    .count("voice_contacts", r.voice.len() as u64)
                    .count("messages", r.messages.len() as u64)
                    .count("fields", r.fields.len() as u64)
                    .count("contacts", r.contacts.len() as u64)
                    .count("guests", r.guests.len() as u64)
                    .count("searches", u64::from(searches)),
            )?,
        );
    }
    ledger
        .commit(ledger::Batch {
            audit,
            ..Default::default()
        })
        .await?;
    let remaining = found.iter().map(Remaining::count).sum();
    Ok(Verified {
        subjects: found,
        searches,
        seconds: start.elapsed().as_secs_f64(),
        remaining,
    })
}
