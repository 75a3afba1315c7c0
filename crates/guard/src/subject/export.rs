//! The access request (GDPR Art. 15): a subject's contact records and guest attributes
//! as they are now, gathered after [`super::find()`], for the caller to write to a file
//! the person receives. The data goes only into that document; the audit entry records
//! who exported whom (pseudonym), how much, and the file's digest.

use ledger::NewEntry;
use serde::Serialize;

use super::{Subject, SubjectFound};
use crate::Result;

/// The audit operation of an export.
pub const OPERATION: &str = "subject.export";

/// The audit operation recorded before an export's files are written: a crash after the
/// write leaves an entry for every file on disk.
pub const INTENT: &str = "subject.export.intent";

/// Records, before the files are written, whose export (pseudonym and key) is about to
/// be written to which files (`subject.export.intent`; names only, never the data).
pub async fn record_intent(
    ledger: &ledger::Ledger,
    actor: &str,
    s: &Subject,
    file: &str,
    manifest: &str,
) -> Result<()> {
    let entry = ledger::NewEntry::new(
        actor,
        INTENT,
        &s.pseudonym,
        ledger::Outcome::Started,
        s.details()?.id("file", file)?.id("manifest", manifest)?,
    )?;
    ledger.append(entry).await?;
    Ok(())
}

/// One guest's attributes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuestRecord {
    /// The guest.
    pub guest_id: String,
    /// Its attributes as the tenant holds them.
    pub attributes: Vec<cxone::models::Attribute>,
}

/// What the tenant holds about one subject, now.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    /// The subject's reference.
    pub reference: String,
    /// When it was gathered (RFC 3339).
    pub generated_at: String,
    /// The contact records that hold the subject, in full.
    pub contacts: Vec<cxone::models::Contact>,
    /// The guests linked to the subject, with all their attributes.
    pub guests: Vec<GuestRecord>,
    /// On CXone's published API: the DFO customers that hold the subject, in full.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub customers: Vec<cxone::dfo::Customer>,
    /// Their cases.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cases: Vec<cxone::dfo::Case>,
    /// Every message of those cases, as the tenant holds it (content included).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<serde_json::Value>,
    /// The completed contacts whose addresses hold the subject.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub completed_contacts: Vec<cxone::acd::CompletedContact>,
}

/// Reads the records `found` names, as they are now (a record deleted since it was
/// found is left out).
pub async fn gather(client: &cxone::Client, found: &SubjectFound) -> Result<Export> {
    let mut contacts = Vec::with_capacity(found.contacts.len());
    for hit in &found.contacts {
        match client.contacts().get(&hit.id).await {
            Ok(mut c) => {
                c.etag = None;
                contacts.push(c);
            }
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut guests = Vec::with_capacity(found.guests.len());
    for g in &found.guests {
        match client.guests().attributes(g).await {
            Ok(attributes) => guests.push(GuestRecord {
                guest_id: g.clone(),
                attributes,
            }),
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Export {
        reference: found.reference.clone(),
        generated_at: ledger::timestamp(time::OffsetDateTime::now_utc()),
        contacts,
        guests,
        customers: Vec::new(),
        cases: Vec::new(),
        messages: Vec::new(),
        completed_contacts: Vec::new(),
    })
}

/// On CXone's published API: reads the records `found` names (customers, cases, their
/// messages with content, and the completed contacts since `since`), as they are now.
pub async fn gather_real(
    client: &cxone::Client,
    found: &super::real::SubjectFound,
    since: time::OffsetDateTime,
) -> Result<Export> {
    let dfo = client.dfo();
    let gone = |e: &cxone::Error| e.status() == Some(404);
    let mut customers = Vec::new();
    for c in &found.customers {
        match dfo.customer(&c.id).await {
            Ok(x) => customers.push(x),
            Err(e) if gone(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (mut cases, mut messages) = (Vec::new(), Vec::new());
    for id in &found.cases {
        match dfo.case(id).await {
            Ok(x) => cases.push(x),
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e.into()),
        }
        messages.extend(dfo.message_documents(id).await?);
    }
    let mut completed_contacts = Vec::new();
    if !found.voice.is_empty() {
        let fmt = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let all = client
            .acd()
            .completed(&fmt(since), &fmt(time::OffsetDateTime::now_utc()))
            .await?;
        completed_contacts = all
            .into_iter()
            .filter(|c| {
                c.contact_id
                    .is_some_and(|id| found.voice.iter().any(|v| v.id == id.to_string()))
            })
            .collect();
    }
    Ok(Export {
        reference: found.reference.clone(),
        generated_at: ledger::timestamp(time::OffsetDateTime::now_utc()),
        contacts: Vec::new(),
        guests: Vec::new(),
        customers,
        cases,
        messages,
        completed_contacts,
    })
}

impl Export {
    /// Records the export written to `file` (its digest `file_sha256`), settling its
    /// intent ([`Export::audit_entry`]).
    pub async fn record_written(
        &self,
        ledger: &ledger::Ledger,
        actor: &str,
        s: &Subject,
        file: &str,
        file_sha256: &str,
    ) -> Result<()> {
        ledger
            .append(self.audit_entry(actor, s, file, file_sha256)?)
            .await?;
        Ok(())
    }

    /// The `subject.export` entry, which settles its intent: the subject's pseudonym and
    /// key, the file's name, the counts and the SHA-256 of the file written — never the
    /// data.
    pub fn audit_entry(
        &self,
        actor: &str,
        s: &Subject,
        file: &str,
        file_sha256: &str,
    ) -> Result<NewEntry> {
        s.entry(
            actor,
            OPERATION,
            s.details()?
                .id("file", file)?
                .count("contacts", self.contacts.len() as u64)
                .count("guests", self.guests.len() as u64)
                .count("customers", self.customers.len() as u64)
                .count("cases", self.cases.len() as u64)
                .count("messages", self.messages.len() as u64)
                .count("completed_contacts", self.completed_contacts.len() as u64)
                .sha256("file_sha256", file_sha256)?,
        )
    }
}
