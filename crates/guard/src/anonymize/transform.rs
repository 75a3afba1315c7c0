//! What the policy does to one contact: pure functions from a contact to the patch that
//! brings it to its target state. A field already at its target is left out, so running
//! the same policy again changes nothing:
//! - erase, replace, keep: compare with the target;
//! - mask: masking a masked value gives the same value;
//! - pseudonymize: a value that already is a pseudonym (64 lowercase hex) is left alone;
//! - encrypt: FF1 is not idempotent, so the ledger remembers a hash of each ciphertext it
//!   wrote; a field still holding that ciphertext is left alone.

use std::collections::BTreeMap;

use aes::Aes256;
use cxone::models::{Contact, ContactPatch};
use fpe::ff1::{FF1, FlexibleNumeralString};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::policy::{Field, Keep, Operator, Policy};
use crate::keys::Key;
use crate::pseudonym::{self, Kind};

/// FF1 needs radix^len ≥ 1,000,000 (NIST SP 800-38G rev. 1): six decimal digits.
pub const MIN_FPE_DIGITS: usize = 6;

/// Masks the characters not in `ignore`, leaving `keep` of them visible.
pub fn mask(value: &str, keep: Keep, ch: char, ignore: &str) -> String {
    let counted = value.chars().filter(|c| !ignore.contains(*c)).count();
    let visible = |i: usize| match keep {
        Keep::First(n) => i < n,
        Keep::Last(n) => i + n >= counted,
    };
    let mut i = 0;
    value
        .chars()
        .map(|c| {
            if ignore.contains(c) {
                c
            } else {
                let out = if visible(i) { c } else { ch };
                i += 1;
                out
            }
        })
        .collect()
}

fn ff1(key: &Key) -> FF1<Aes256> {
    // A subkey for FF1, so the same key material can also serve the keyed hash.
    let mut mac = Hmac::<Sha256>::new_from_slice(key.bytes()).expect("HMAC takes any key length");
    mac.update(b"cxguard-ff1-aes256-v1");
    let sub = mac.finalize().into_bytes();
    FF1::<Aes256>::new(&sub, 10).expect("radix 10 is valid")
}

fn map_digits(
    value: &str,
    f: impl FnOnce(Vec<u16>) -> Result<Vec<u16>, String>,
) -> Result<String, String> {
    let digits: Vec<u16> = value
        .chars()
        .filter_map(|c| c.to_digit(10))
        .map(|d| d as u16)
        .collect();
    if digits.len() < MIN_FPE_DIGITS {
        return Err(format!(
            "has {} digits; format-preserving encryption needs at least {MIN_FPE_DIGITS}",
            digits.len()
        ));
    }
    let mut out = f(digits)?.into_iter();
    Ok(value
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                char::from(b'0' + out.next().unwrap_or(0) as u8)
            } else {
                c
            }
        })
        .collect())
}

/// FF1-encrypts the digits of `value` in place; everything else keeps its position.
pub fn encrypt_digits(key: &Key, tweak: &str, value: &str) -> Result<String, String> {
    let cipher = ff1(key);
    map_digits(value, |d| {
        cipher
            .encrypt(tweak.as_bytes(), &FlexibleNumeralString::from(d))
            .map(Vec::from)
            .map_err(|e| format!("FF1 failed: {e}"))
    })
}

/// The inverse of [`encrypt_digits`], for subject-access requests.
pub fn decrypt_digits(key: &Key, tweak: &str, value: &str) -> Result<String, String> {
    let cipher = ff1(key);
    map_digits(value, |d| {
        cipher
            .decrypt(tweak.as_bytes(), &FlexibleNumeralString::from(d))
            .map(Vec::from)
            .map_err(|e| format!("FF1 failed: {e}"))
    })
}

pub use crate::sha256_hex;

/// A field's current value as text (`None` when absent or null).
pub fn current(contact: &Contact, field: &Field) -> Option<String> {
    match field {
        Field::FirstName => contact.first_name.clone(),
        Field::LastName => contact.last_name.clone(),
        Field::Email => contact.email.clone(),
        Field::Phone => contact.phone.clone(),
        Field::Custom(n) => match contact.custom_fields.get(n) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        },
    }
}

/// One field the plan changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub field: String,
    pub op: &'static str,
    pub algorithm: &'static str,
    pub before: Option<String>,
    pub after: Option<String>,
    /// For pseudonymize: whether the value normalized (else its trimmed text was hashed).
    pub normalized: bool,
}

/// The patch for one contact and what it does.
#[derive(Debug, Clone, Default)]
pub struct ContactPlan {
    pub patch: ContactPatch,
    pub changes: Vec<Change>,
    /// For encrypted fields: field → SHA-256 of the ciphertext, to recognise it later.
    pub ciphertexts: BTreeMap<String, String>,
}

impl ContactPlan {
    pub fn is_noop(&self) -> bool {
        self.patch.is_empty()
    }
}

/// Computes the plan for `contact`. `encrypted` is what the ledger recorded last time this
/// contact's fields were encrypted (field → ciphertext hash). An error names the field
/// that cannot be transformed.
pub fn plan(
    policy: &Policy,
    contact: &Contact,
    encrypted: &BTreeMap<String, String>,
) -> Result<ContactPlan, String> {
    let mut out = ContactPlan::default();
    for rule in &policy.rules {
        let name = rule.field.name();
        let now = current(contact, &rule.field);
        let mut normalized = true;
        let target: Option<String> = match (&rule.op, &now) {
            // Absent fields stay absent: no operator invents data.
            (Operator::Keep, _) | (_, None) => continue,
            (Operator::Erase, Some(_)) => None,
            (Operator::Replace { value }, Some(_)) => Some(value.clone()),
            (Operator::Mask { keep, ch, ignore }, Some(v)) => Some(mask(v, *keep, *ch, ignore)),
            (Operator::Pseudonymize { key, kind }, Some(v)) => {
                if pseudonym::is_pseudonym(v) {
                    continue;
                }
                let n = &policy.normalizer;
                let norm = match kind {
                    Some(Kind::Email) => n.email(v).ok(),
                    Some(Kind::Phone) => n.phone(v).ok(),
                    None => Some(v.trim().to_string()),
                };
                normalized = norm.is_some();
                let text = norm.unwrap_or_else(|| v.trim().to_lowercase());
                Some(pseudonym::pseudonym(policy.key(key), &text))
            }
            (Operator::Encrypt { key }, Some(v)) => {
                if encrypted.get(&name).is_some_and(|h| *h == sha256_hex(v)) {
                    continue;
                }
                let c =
                    encrypt_digits(policy.key(key), &name, v).map_err(|e| format!("{name} {e}"))?;
                out.ciphertexts.insert(name.clone(), sha256_hex(&c));
                Some(c)
            }
        };
        if target == now {
            continue;
        }
        if let Some(t) = &target
            && t.chars().count() > rule.field.limit()
        {
            return Err(format!(
                "{name}: the result would exceed the field's {} characters",
                rule.field.limit()
            ));
        }
        out.patch = match &rule.field {
            Field::Custom(n) => out.patch.set_custom(n, target.as_deref()),
            _ => out.patch.set(&name, target.as_deref()),
        };
        out.changes.push(Change {
            field: name,
            op: rule.op.label(),
            algorithm: rule.op.algorithm(),
            before: now,
            after: target,
            normalized,
        });
    }
    Ok(out)
}

/// A value shown in a dry run: its shape, not its content.
pub fn redact(value: Option<&str>) -> String {
    match value {
        None => "null".into(),
        Some(v) => {
            let n = v.chars().count();
            let first = v.chars().next().unwrap_or(' ');
            if pseudonym::is_pseudonym(v) {
                format!("{}… (64 hex)", &v[..8])
            } else if n <= 2 {
                format!("{} ({n} chars)", "•".repeat(n))
            } else {
                format!("{first}{} ({n} chars)", "•".repeat(n.min(12) - 1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_keeps_ignored_characters_in_place() {
        assert_eq!(
            mask("+1 (555) 123-4567", Keep::Last(4), '*', "+-() "),
            "+* (***) ***-4567"
        );
        assert_eq!(mask("Johnson", Keep::First(1), '*', ""), "J******");
        assert_eq!(mask("ab", Keep::Last(4), '#', ""), "ab");
        assert_eq!(mask("Zoë", Keep::First(0), 'x', ""), "xxx");
        let once = mask("+44 20 7946 0958", Keep::Last(3), '*', "+ ");
        assert_eq!(
            mask(&once, Keep::Last(3), '*', "+ "),
            once,
            "masking twice changes nothing"
        );
    }

    #[test]
    fn ff1_keeps_the_shape_and_reverses() {
        let k = Key::from_bytes("fpe", vec![3; 32]).unwrap();
        let phone = "+1 (212) 555-0123";
        let c = encrypt_digits(&k, "phone", phone).unwrap();
        assert_ne!(c, phone);
        assert_eq!(c.len(), phone.len());
        assert!(
            c.chars()
                .zip(phone.chars())
                .all(|(a, b)| a.is_ascii_digit() == b.is_ascii_digit())
        );
        assert_eq!(decrypt_digits(&k, "phone", &c).unwrap(), phone);
        assert_ne!(
            encrypt_digits(&k, "customFields.x", phone).unwrap(),
            c,
            "the field is the tweak"
        );
        assert!(
            encrypt_digits(&k, "phone", "12-34")
                .unwrap_err()
                .contains("at least 6")
        );
    }

    #[test]
    fn redaction_shows_shape_only() {
        assert_eq!(redact(Some("ann@example.com")), "a••••••••••• (15 chars)");
        assert!(!redact(Some("ann@example.com")).contains("example"));
        assert_eq!(redact(None), "null");
    }
}
