//! Finding subjects on CXone's published API: DFO customers whose identities or custom
//! fields hold a subject (raw, or as the identity pseudonym), their cases and the
//! messages in them (spec-real §4), and the completed ACD contacts whose `fromAddress` or
//! `toAddress` holds them (§7), each listing read once however many subjects there are.
//!
//! A customer's identities cannot be changed through the API (§4.3c): a customer found
//! by identity stays findable after an erasure, which is how a later `subject verify`
//! reaches their cases again.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{How, Matcher, Subject};
use crate::Result;

/// How far back completed contacts are searched unless told otherwise.
pub const DEFAULT_SINCE_DAYS: i64 = 730;

/// A DFO customer that holds a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerHit {
    /// The customer's id.
    pub id: String,
    /// What holds the subject: `identity`, or `field:IDENT`, each raw or pseudonym.
    pub holds: BTreeMap<String, How>,
}

/// A message of a subject's case, and what is left of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageHit {
    /// The case.
    pub case: String,
    /// The message.
    pub id: String,
    /// Its content is still there.
    pub content: bool,
    /// Its author's name is still there.
    pub author_name: bool,
}

impl MessageHit {
    /// Whether anything of the message is left to remove.
    pub fn remains(&self) -> bool {
        self.content || self.author_name
    }
}

/// A completed contact that holds a subject in its addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceHit {
    /// The ACD contact id.
    pub id: String,
    /// `fromAddress`, `toAddress`, or both.
    pub fields: Vec<&'static str>,
}

/// What was found of one subject on CXone's published API.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectFound {
    /// The subject's reference (never its identifier).
    pub reference: String,
    /// The id of the key the pseudonym is made with.
    pub key_id: String,
    /// The DFO customers that hold the subject.
    pub customers: Vec<CustomerHit>,
    /// Their cases, and the cases the subject wrote in.
    pub cases: Vec<String>,
    /// Every message of those cases.
    pub messages: Vec<MessageHit>,
    /// The completed contacts whose addresses hold the subject.
    pub voice: Vec<VoiceHit>,
}

impl SubjectFound {
    /// Whether any record holds the subject.
    pub fn any(&self) -> bool {
        !self.customers.is_empty() || !self.cases.is_empty() || !self.voice.is_empty()
    }
}

/// What a search found, and what it read.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Found {
    /// Per subject, in the order given.
    pub subjects: Vec<SubjectFound>,
    /// DFO customers read.
    pub customers_scanned: u64,
    /// DFO cases read.
    pub cases_scanned: u64,
    /// Completed contacts read.
    pub completed_scanned: u64,
    /// The start of the completed contacts' window (RFC 3339).
    pub since: String,
}

/// Searches CXone's published API for `subjects`: every customer once, every case once,
/// the messages of the matched cases, the completed contacts since `since`. Read-only.
pub async fn find(
    client: &cxone::Client,
    subjects: &[Subject],
    matcher: &Matcher,
    since: time::OffsetDateTime,
) -> Result<Found> {
    let mut out: Vec<SubjectFound> = subjects
        .iter()
        .map(|s| SubjectFound {
            reference: s.reference.clone(),
            key_id: s.key_id.clone(),
            ..Default::default()
        })
        .collect();
    let dfo = client.dfo();
    let customers = dfo.customers().await?;
    let owner = match_customers(&customers, matcher, &mut out);
    let cases = dfo.cases(&cxone::dfo::CaseFilter::default()).await?;
    for case in &cases {
        let (Some(id), Some(who)) = (
            case.id.as_ref(),
            case.end_user
                .as_ref()
                .and_then(|u| u.id.as_ref())
                .and_then(|c| owner.get(c)),
        ) else {
            continue;
        };
        for &i in who {
            out[i].cases.push(id.clone());
        }
    }
    for s in out.iter_mut() {
        for case in &s.cases {
            for m in dfo.messages(case).await? {
                let Some(id) = m.id else { continue };
                s.messages.push(MessageHit {
                    case: case.clone(),
                    id,
                    content: m.content_removed.is_none(),
                    author_name: m.author_name_removed.is_none(),
                });
            }
        }
    }
    let since_text = rfc3339(since);
    let completed = client
        .acd()
        .completed(&since_text, &rfc3339(time::OffsetDateTime::now_utc()))
        .await?;
    match_completed(&completed, matcher, &mut out);
    Ok(Found {
        subjects: out,
        customers_scanned: customers.len() as u64,
        cases_scanned: cases.len() as u64,
        completed_scanned: completed.len() as u64,
        since: since_text,
    })
}

/// The customers that hold each subject, by identity or custom field; returns which
/// subjects each matched customer holds.
fn match_customers(
    customers: &[cxone::dfo::Customer],
    matcher: &Matcher,
    out: &mut [SubjectFound],
) -> BTreeMap<String, BTreeSet<usize>> {
    let mut owner: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for c in customers {
        let mut by_subject: BTreeMap<usize, BTreeMap<String, How>> = BTreeMap::new();
        for id in &c.identities {
            if let Some((i, how)) = id
                .id_on_external_platform
                .as_deref()
                .and_then(|a| matcher.identity(a))
            {
                by_subject
                    .entry(i)
                    .or_default()
                    .insert("identity".into(), how);
            }
        }
        for f in &c.custom_fields {
            if let Some((i, how)) = f.value.as_deref().and_then(|v| matcher.address(v)) {
                by_subject
                    .entry(i)
                    .or_default()
                    .insert(format!("field:{}", f.ident), how);
            }
        }
        for (i, holds) in by_subject {
            owner.entry(c.id.clone()).or_default().insert(i);
            out[i].customers.push(CustomerHit {
                id: c.id.clone(),
                holds,
            });
        }
    }
    owner
}

/// The completed contacts whose addresses hold each subject (raw: an anonymized
/// address no longer does).
fn match_completed(
    completed: &[cxone::acd::CompletedContact],
    matcher: &Matcher,
    out: &mut [SubjectFound],
) {
    for c in completed {
        let Some(id) = c.contact_id else { continue };
        let mut by_subject: BTreeMap<usize, Vec<&'static str>> = BTreeMap::new();
        for (field, value) in [
            ("fromAddress", &c.from_address),
            ("toAddress", &c.to_address),
        ] {
            if let Some((i, How::Raw)) = value.as_deref().and_then(|v| matcher.address(v)) {
                by_subject.entry(i).or_default().push(field);
            }
        }
        for (i, fields) in by_subject {
            out[i].voice.push(VoiceHit {
                id: id.to_string(),
                fields,
            });
        }
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Found {
    /// One `subject.find` audit entry per subject: its pseudonym and key, and counts.
    pub fn audit_entries(
        &self,
        actor: &str,
        operation: &'static str,
        subjects: &[Subject],
    ) -> Result<Vec<ledger::NewEntry>> {
        self.subjects
            .iter()
            .zip(subjects)
            .map(|(f, s)| {
                s.entry(
                    actor,
                    operation,
                    s.details()?
                        .count("customers", f.customers.len() as u64)
                        .count("cases", f.cases.len() as u64)
                        .count("messages", f.messages.len() as u64)
                        .count("voice_contacts", f.voice.len() as u64),
                )
            })
            .collect()
    }

    /// Records the search: [`Found::audit_entries`] as `subject.find`, in one
    /// transaction.
    pub async fn record(
        &self,
        ledger: &ledger::Ledger,
        actor: &str,
        subjects: &[Subject],
    ) -> Result<()> {
        ledger
            .commit(ledger::Batch {
                audit: self.audit_entries(actor, super::find::OPERATION, subjects)?,
                ..Default::default()
            })
            .await?;
        Ok(())
    }
}
