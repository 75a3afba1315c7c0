//! Finding subjects: one streaming pass over the contacts (a page in memory at a time,
//! one lookup per field however many subjects), then the guests.
//!
//! Spec §6 has no route that lists guests, so the guests searched are those this ledger
//! linked (`guest.link` entries): each is read once and its identity attribute compared
//! with every subject's pseudonym. A guest linked by another tool is not found; the
//! output says how many guests were checked.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt as _;
use ledger::{Filter, Ledger, NewEntry};
use serde::Serialize;

use super::{How, Matcher, Subject};
use crate::Result;

/// The audit operation of a search.
pub const OPERATION: &str = "subject.find";

/// A contact that holds a subject, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactHit {
    /// The contact.
    pub id: String,
    /// Its fields that hold the subject: `email` or `phone`, each raw or pseudonym.
    pub fields: BTreeMap<&'static str, How>,
}

impl ContactHit {
    /// A hit as journaled (`{"id", "fields": {"email": "raw"}}`); `None` if unreadable.
    pub fn from_journal(v: &serde_json::Value) -> Option<Self> {
        let id = v["id"].as_str()?.to_string();
        let mut fields = BTreeMap::new();
        for (f, how) in v["fields"].as_object()? {
            let f: &'static str = match f.as_str() {
                "email" => "email",
                "phone" => "phone",
                _ => return None,
            };
            let how = match how.as_str()? {
                "raw" => How::Raw,
                "pseudonym" => How::Pseudonym,
                _ => return None,
            };
            fields.insert(f, how);
        }
        Some(ContactHit { id, fields })
    }
}

/// What was found of one subject.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectFound {
    /// The subject's reference (never its identifier).
    pub reference: String,
    /// The id of the key the pseudonym is made with.
    pub key_id: String,
    /// The contacts that hold the subject.
    pub contacts: Vec<ContactHit>,
    /// The guests whose identity attribute holds the subject's pseudonym.
    pub guests: Vec<String>,
}

/// What a search found, and what it looked at.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Found {
    /// Per subject, in the order given.
    pub subjects: Vec<SubjectFound>,
    /// Contacts read.
    pub contacts_scanned: u64,
    /// Contact pages read (one listing request each).
    pub pages: u64,
    /// Guests read (those this ledger linked).
    pub guests_checked: u64,
}

/// Searches the tenant for `subjects`: every contact once, then the guests this ledger
/// linked, their `attribute` compared with each pseudonym. Read-only.
pub async fn find(
    client: &cxone::Client,
    ledger: &Ledger,
    subjects: &[Subject],
    matcher: &Matcher,
    attribute: &str,
    page_size: cxone::contacts::PageSize,
) -> Result<Found> {
    let mut out: Vec<SubjectFound> = subjects
        .iter()
        .map(|s| SubjectFound {
            reference: s.reference.clone(),
            key_id: s.key_id.clone(),
            contacts: Vec::new(),
            guests: Vec::new(),
        })
        .collect();
    let (mut scanned, mut pages) = (0u64, 0u64);
    let mut listing = Box::pin(client.contacts().list().page_size(page_size).pages());
    while let Some(page) = listing.next().await {
        let page = page?;
        pages += 1;
        for c in &page.contacts {
            scanned += 1;
            let mut by_subject: BTreeMap<usize, BTreeMap<&'static str, How>> = BTreeMap::new();
            for (i, field, how) in matcher.hits(c) {
                by_subject.entry(i).or_default().insert(field, how);
            }
            for (i, fields) in by_subject {
                out[i].contacts.push(ContactHit {
                    id: c.id.clone(),
                    fields,
                });
            }
        }
    }
    let by_pseudonym: BTreeMap<&str, usize> = subjects
        .iter()
        .enumerate()
        .map(|(i, s)| (s.pseudonym.as_str(), i))
        .collect();
    let linked = linked_guests(ledger).await?;
    let mut checked = 0u64;
    for guest in &linked {
        checked += 1;
        let attrs = match client.guests().attributes(guest).await {
            Ok(a) => a,
            // Deleted since it was linked: nothing of anyone there.
            Err(e) if e.status() == Some(404) => continue,
            Err(e) => return Err(e.into()),
        };
        for a in attrs.iter().filter(|a| a.id == attribute) {
            if let Some(&i) = by_pseudonym.get(a.value.as_str()) {
                out[i].guests.push(guest.clone());
            }
        }
    }
    Ok(Found {
        subjects: out,
        contacts_scanned: scanned,
        pages,
        guests_checked: checked,
    })
}

/// The guests this ledger ever linked, each once.
async fn linked_guests(ledger: &Ledger) -> Result<BTreeSet<String>> {
    let entries = ledger
        .entries(&Filter {
            operation: Some(crate::identity::OPERATION.to_string()),
            ..Default::default()
        })
        .await?;
    Ok(entries.into_iter().map(|e| e.target).collect())
}

impl Found {
    /// One `subject.find` audit entry per subject: its pseudonym and key, and counts —
    /// never the identifier.
    pub fn audit_entries(&self, actor: &str, subjects: &[Subject]) -> Result<Vec<NewEntry>> {
        self.subjects
            .iter()
            .zip(subjects)
            .map(|(f, s)| {
                s.entry(
                    actor,
                    OPERATION,
                    s.details()?
                        .count("contacts", f.contacts.len() as u64)
                        .count("guests", f.guests.len() as u64)
                        .count("contacts_scanned", self.contacts_scanned),
                )
            })
            .collect()
    }

    /// Records the search: [`Found::audit_entries`], in one transaction.
    pub async fn record(
        &self,
        ledger: &ledger::Ledger,
        actor: &str,
        subjects: &[Subject],
    ) -> Result<()> {
        ledger
            .commit(ledger::Batch {
                audit: self.audit_entries(actor, subjects)?,
                ..Default::default()
            })
            .await?;
        Ok(())
    }
}
