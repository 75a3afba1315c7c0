//! Identity: link a web-messaging guest to a returning person by a keyed pseudonym of
//! their email or phone, stored as a guest attribute (tutorial 003, done properly).
//!
//! validate (pure: the guest id, the identifier's normalization) → the pseudonym (HMAC
//! with the identity key, the same function `anonymize` uses, so one person has one
//! pseudonym in contact records and guest attributes alike) → apply (an idempotent
//! attribute upsert) → one audit entry naming the guest, the key id and the attribute.
//!
//! The identifier itself never leaves this module: not in errors, not in the audit entry,
//! not in what is returned. The HTTP service (`server`) and the CLI (`guests link`,
//! `guests backfill`) both call [`Identity::link`].

pub mod backfill;

use std::sync::Arc;

use cxone::models::AttributeOp;
use ledger::audit::{NewEntry, Outcome};
use ledger::details::Details;
use serde::Serialize;

use crate::keys::Key;
use crate::pseudonym::{self, Kind, NormalizeError, Normalizer};

/// The attribute a pseudonym is stored in unless configured otherwise (the tutorial's).
pub const DEFAULT_ATTRIBUTE: &str = "hashed_user_id";
/// The audit operation of one link.
pub const OPERATION: &str = "guest.link";
/// The longest guest id.
pub const MAX_GUEST_ID: usize = 128;
/// Longer identifiers are refused before parsing: no email or phone number is this long.
pub const MAX_IDENTIFIER_CHARS: usize = 320;

/// What the caller says the identifier is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierKind {
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// An email if it contains `@`, else a phone number.
    Auto,
}

impl IdentifierKind {
    /// A kind from `email`, `phone` or `auto`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "email" => Ok(IdentifierKind::Email),
            "phone" => Ok(IdentifierKind::Phone),
            "auto" => Ok(IdentifierKind::Auto),
            _ => Err("not a kind: email, phone or auto".to_string()),
        }
    }
}

/// A field of the input that is wrong, and why (the message never quotes the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// The OAuth scopes linking uses (the attribute upsert).
pub const SCOPES: &[&str] = &["interaction:guest:write"];

/// Why a link did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The input does not validate; nothing was sent.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The tenant has no such guest.
    #[error("guest {0} does not exist in the tenant")]
    UnknownGuest(String),
    /// On CXone's published API: the tenant has no such DFO customer.
    #[error("DFO customer {0} does not exist in the tenant")]
    UnknownCustomer(String),
    /// On CXone's published API: the customers' custom field that holds the pseudonym
    /// has no definition.
    #[error(
        "the DFO customer custom field {0:?} has no definition in the tenant: create it with `cxguard digital setup`"
    )]
    NoField(String),
    /// The tenant failed or refused (retries included).
    #[error(transparent)]
    Api(cxone::Error),
}

/// What a link did: never the identifier, never the pseudonym.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Linked {
    /// The guest.
    pub guest_id: String,
    /// The attribute that holds the pseudonym.
    pub attribute: String,
    /// The id of the key the pseudonym was made with.
    pub key_id: String,
    /// What the identifier was.
    #[serde(skip)]
    pub kind: Kind,
}

impl Linked {
    /// The audit entry of this link.
    pub fn audit_entry(&self, actor: &str) -> ledger::Result<NewEntry> {
        let kind = match self.kind {
            Kind::Email => "email",
            Kind::Phone => "phone",
        };
        NewEntry::new(
            actor,
            OPERATION,
            &self.guest_id,
            Outcome::Success,
            Details::new()
                .id("key", &self.key_id)?
                .id("attribute", &self.attribute)?
                .label("kind", kind),
        )
    }
}

/// The identity protection, configured: key, normalization rules, attribute.
#[derive(Debug, Clone)]
pub struct Identity {
    key: Arc<Key>,
    normalizer: Normalizer,
    attribute: String,
}

/// Checks a guest id before it goes into a URL: 1–128 of `A–Z a–z 0–9 . _ -`.
pub fn check_guest_id(id: &str) -> Result<(), Invalid> {
    let ok = !id.is_empty()
        && id.len() <= MAX_GUEST_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if id == "." || id == ".." {
        // A URL drops or resolves these segments: the request would address another resource.
        Err(Invalid {
            field: "guestId",
            message: "cannot be \".\" or \"..\"".into(),
        })
    } else if ok {
        Ok(())
    } else if id.is_empty() {
        Err(Invalid {
            field: "guestId",
            message: "is empty".into(),
        })
    } else {
        Err(Invalid {
            field: "guestId",
            message: format!("is not a guest id (1–{MAX_GUEST_ID} of A–Z a–z 0–9 . _ -)"),
        })
    }
}

impl Identity {
    /// Checks the attribute id (a plain identifier) and keeps the key.
    pub fn new(key: Arc<Key>, normalizer: Normalizer, attribute: &str) -> Result<Self, String> {
        let ok = !attribute.is_empty()
            && attribute.len() <= 64
            && attribute
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            return Err(format!(
                "attribute {:?} is not an attribute id (1–64 of A–Z a–z 0–9 _ - .)",
                attribute.chars().take(16).collect::<String>()
            ));
        }
        Ok(Identity {
            key,
            normalizer,
            attribute: attribute.to_string(),
        })
    }

    /// The id of the identity key.
    pub fn key_id(&self) -> &str {
        self.key.id()
    }

    /// The name of the guest attribute that holds the pseudonym.
    pub fn attribute(&self) -> &str {
        &self.attribute
    }

    /// Loads the phone metadata and compiles its patterns, so the first caller does not
    /// pay for it.
    pub fn warm_up(&self) {
        let _ = self.normalizer.phone("+1 212 555 0123");
        let _ = self.normalizer.email("warm@example.com");
    }

    /// Normalizes `raw` as `kind` says (pure). `field` names the input in the error.
    pub fn normalize(
        &self,
        field: &'static str,
        raw: &str,
        kind: IdentifierKind,
    ) -> Result<(Kind, String), Invalid> {
        let invalid = |message: String| Invalid { field, message };
        if raw.chars().count() > MAX_IDENTIFIER_CHARS {
            return Err(invalid(format!(
                "is longer than {MAX_IDENTIFIER_CHARS} characters"
            )));
        }
        let n = &self.normalizer;
        let r = match kind {
            IdentifierKind::Email => n.email(raw).map(|v| (Kind::Email, v)),
            IdentifierKind::Phone => n.phone(raw).map(|v| (Kind::Phone, v)),
            IdentifierKind::Auto => n.auto(raw),
        };
        r.map_err(|e| {
            invalid(match e {
                NormalizeError::Empty => "is empty".into(),
                other => format!("is {other}"),
            })
        })
    }

    /// How identifiers are normalized.
    pub fn normalizer(&self) -> Normalizer {
        self.normalizer
    }

    /// The pseudonym of an identifier already normalized (pure).
    pub fn pseudonym_of(&self, normalized: &str) -> String {
        pseudonym::pseudonym(&self.key, normalized)
    }

    /// The pseudonym of `raw` (pure): the value the attribute will hold.
    pub fn pseudonym(
        &self,
        field: &'static str,
        raw: &str,
        kind: IdentifierKind,
    ) -> Result<(Kind, String), Invalid> {
        let (k, normalized) = self.normalize(field, raw, kind)?;
        Ok((k, pseudonym::pseudonym(&self.key, &normalized)))
    }

    /// Validates, then upserts the pseudonym on the guest. Idempotent: linking the same
    /// person to the same guest again changes nothing. The caller records the audit
    /// entry ([`Linked::audit_entry`]), so a service can commit many in one transaction.
    pub async fn link(
        &self,
        client: &cxone::Client,
        guest_id: &str,
        identifier_field: &'static str,
        raw: &str,
        kind: IdentifierKind,
    ) -> Result<Linked, LinkError> {
        check_guest_id(guest_id)?;
        let (kind, value) = self.pseudonym(identifier_field, raw, kind)?;
        self.apply(client, guest_id, kind, &value).await
    }

    /// The effect alone, for a pseudonym computed by [`Identity::pseudonym`]: on the
    /// tutorials' routes a guest attribute upsert (§6); on CXone's published API the
    /// guest is a DFO customer and the pseudonym its custom field named by the
    /// attribute (spec-real §4.3e), written with the other fields left as they are.
    pub async fn apply(
        &self,
        client: &cxone::Client,
        guest_id: &str,
        kind: Kind,
        value: &str,
    ) -> Result<Linked, LinkError> {
        check_guest_id(guest_id)?;
        let linked = Linked {
            guest_id: guest_id.to_string(),
            attribute: self.attribute.clone(),
            key_id: self.key.id().to_string(),
            kind,
        };
        if client.settings().is_cxone() {
            let field = [cxone::dfo::CustomField {
                ident: self.attribute.clone(),
                value: Some(value.to_string()),
            }];
            return match client.dfo().set_customer_fields(guest_id, &field).await {
                Ok(()) => Ok(linked),
                Err(e) if e.status() == Some(404) => {
                    Err(LinkError::UnknownCustomer(guest_id.into()))
                }
                Err(e) if matches!(e.status(), Some(400 | 422)) => {
                    Err(LinkError::NoField(self.attribute.clone()))
                }
                Err(e) => Err(LinkError::Api(e)),
            };
        }
        let op = [AttributeOp::upsert(&self.attribute, value)];
        match client.guests().patch_attributes(guest_id, &op).await {
            Ok(_) => Ok(linked),
            Err(e) if e.status() == Some(404) => Err(LinkError::UnknownGuest(guest_id.into())),
            Err(e) => Err(LinkError::Api(e)),
        }
    }
}

/// A link made, and whether its audit entry was recorded: a link that landed in the
/// tenant is reported even when the ledger failed (the caller says so; the link is not
/// undone).
#[derive(Debug)]
pub struct Recorded {
    /// What the link did.
    pub linked: Linked,
    /// The audit entry's sequence number, or why it could not be appended.
    pub audit: ledger::Result<i64>,
}

/// Links `guest_id` to `pseudonym` (of `kind`, from [`Identity::pseudonym`]) and audits
/// it as `actor`, through `audit`: the one path every face takes (`serve`'s identity
/// routes, `guests link`, the demo), so the effect and its record are decided once.
pub async fn link<A: crate::audit::AuditSink>(
    identity: &Identity,
    client: &cxone::Client,
    audit: &A,
    guest_id: &str,
    kind: Kind,
    pseudonym: &str,
    actor: &str,
) -> Result<Recorded, LinkError> {
    let linked = identity.apply(client, guest_id, kind, pseudonym).await?;
    let audit = match linked.audit_entry(actor) {
        Ok(entry) => audit.append(entry).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &audit {
        tracing::error!(guest = %guest_id, error = %e, "the link was made but not recorded");
    }
    Ok(Recorded { linked, audit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_guest_ids_are_refused() {
        for bad in [".", ".."] {
            assert!(check_guest_id(bad).is_err(), "{bad}");
        }
        check_guest_id("g.1").unwrap();
    }

    fn identity() -> Identity {
        let key = Arc::new(Key::from_bytes("id-2026", vec![9; 32]).unwrap());
        Identity::new(key, Normalizer::default(), DEFAULT_ATTRIBUTE).unwrap()
    }

    #[test]
    fn guest_ids_are_plain_tokens() {
        assert!(check_guest_id("g-000001").is_ok());
        assert!(check_guest_id("6f1c2a9e-3b7d-4c1e-9a55-0c2b7f9d1e44").is_ok());
        for bad in ["", "a/b", "../x", "g 1", "g%2F", &"x".repeat(129)] {
            let e = check_guest_id(bad).unwrap_err();
            assert_eq!(e.field, "guestId", "{bad:?}");
        }
    }

    #[test]
    fn attribute_ids_are_checked() {
        let key = Arc::new(Key::from_bytes("k", vec![1; 32]).unwrap());
        assert!(Identity::new(key.clone(), Normalizer::default(), "a b").is_err());
        assert!(Identity::new(key, Normalizer::default(), "").is_err());
    }

    #[test]
    fn errors_never_quote_the_identifier() {
        let id = identity();
        for raw in ["ann.lee@", "not an email at all", "+1 555"] {
            let e = id
                .normalize("identifier", raw, IdentifierKind::Auto)
                .unwrap_err();
            assert!(!e.to_string().contains(raw), "{e}");
        }
        let long = format!("{}@example.com", "a".repeat(400));
        let e = id
            .normalize("identifier", &long, IdentifierKind::Email)
            .unwrap_err();
        assert!(e.message.contains("longer than"), "{e}");
    }

    #[test]
    fn the_audit_entry_names_guest_key_and_attribute_only() {
        let id = identity();
        let linked = Linked {
            guest_id: "g-000001".into(),
            attribute: id.attribute().into(),
            key_id: id.key_id().into(),
            kind: Kind::Email,
        };
        let e = linked.audit_entry("api:web-1").unwrap();
        assert_eq!(e.operation, OPERATION);
        assert_eq!(e.target, "g-000001");
        let d = e.details.to_value().to_string();
        assert!(
            d.contains("id-2026") && d.contains(DEFAULT_ATTRIBUTE),
            "{d}"
        );
    }
}
