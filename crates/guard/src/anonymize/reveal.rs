//! reveal: decrypts one field a policy encrypted (FF1), for a subject-access request,
//! with the derivation the journal recorded for it, and audits that it was done: who,
//! which contact, which field, which key and derivation; never the value.

use cxone::Client;
use ledger::{Details, Ledger, NewEntry, Outcome};
use secrecy::SecretString;

use super::JOB_KIND;
use super::policy::{Field, Operator, Policy};
use super::settle::Earlier;
use super::transform::{self, FpeVersion};
use crate::{Error, Result};

/// The audit operation of a reveal.
pub const OPERATION: &str = "contact.reveal";

/// What was revealed, and how.
#[derive(Debug)]
pub struct Revealed {
    /// The cleartext. Never logged or audited.
    pub value: SecretString,
    /// The id of the key that decrypted it.
    pub key_id: String,
    /// The FF1 derivation it was encrypted with.
    pub derivation: FpeVersion,
}

/// The FF1 derivation the journal recorded for `field` of contact `id`: `None` when no
/// job of this ledger encrypted it.
pub async fn recorded_derivation(
    ledger: &Ledger,
    id: &str,
    field: &str,
) -> Result<Option<FpeVersion>> {
    let known = ledger.latest_results(JOB_KIND, &[id.to_string()]).await?;
    let earlier = Earlier::from_record(known.get(id));
    earlier
        .fpe
        .get(field)
        .map(|v| FpeVersion::parse(v).map_err(Error::Invalid))
        .transpose()
}

/// The key that encrypts `field` under `policy` (pure: checked before any call). Only a
/// field the policy encrypts can be revealed.
pub fn encryption_key<'p>(policy: &'p Policy, field: &Field) -> Result<&'p crate::keys::Key> {
    let name = field.name();
    let rule = policy
        .rules
        .iter()
        .find(|r| r.field == *field)
        .ok_or_else(|| Error::Invalid(format!("the policy has no rule for {name}")))?;
    match &rule.op {
        Operator::Encrypt { key } => Ok(policy.key(key)),
        other => Err(Error::Invalid(format!(
            "the policy {}s {name}; only encrypted fields can be revealed",
            other.label()
        ))),
    }
}

/// Reads contact `id`, decrypts `field` and appends the audit entry before returning the
/// value. `derivation` overrides what the journal recorded (for data encrypted by
/// another ledger); with neither, the current derivation is assumed.
pub async fn reveal(
    client: &Client,
    ledger: &Ledger,
    policy: &Policy,
    id: &str,
    field: &Field,
    actor: &str,
    derivation: Option<FpeVersion>,
) -> Result<Revealed> {
    ledger::details::check_identifier("actor", actor)?;
    ledger::details::check_identifier("contact id", id)?;
    let name = field.name();
    let key = encryption_key(policy, field)?;
    let derivation = match derivation {
        Some(d) => d,
        None => recorded_derivation(ledger, id, &name)
            .await?
            .unwrap_or(FpeVersion::CURRENT),
    };
    let contact = client.contacts().get(id).await?;
    let value = transform::current(&contact, field)
        .ok_or_else(|| Error::Invalid(format!("contact {id} has no {name}")))?;
    let clear = transform::decrypt_digits(key, derivation, id, &name, &value)
        .map_err(|e| Error::Invalid(format!("{name} {e}")))?;
    ledger
        .append(NewEntry::new(
            actor,
            OPERATION,
            id,
            Outcome::Success,
            Details::new()
                .id("field", &name)?
                .id("key_id", key.id())?
                .label("fpe_derivation", derivation.label()),
        )?)
        .await?;
    Ok(Revealed {
        value: SecretString::from(clear),
        key_id: key.id().to_string(),
        derivation,
    })
}
