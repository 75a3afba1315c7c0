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
                .sha256("file_sha256", file_sha256)?,
        )
    }
}
