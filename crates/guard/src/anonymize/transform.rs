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

use super::policy::{Field, Keep, MIN_FPE_DIGITS, Operator, Policy};
use crate::keys::Key;
use crate::pseudonym::{self, Kind};

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

/// How the FF1 key and tweak come from a policy key. Recorded with every encryption (in
/// the journal and the audit entry), so data written under an older derivation stays
/// revealable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FpeVersion {
    /// Before November 2026: key = HMAC-SHA256(key, "cxguard-ff1-aes256-v1"), tweak = the
    /// field name. Its key is a pseudonym of that label under the same key, so it is
    /// kept for revealing old data only.
    V1,
    /// Key = HKDF-SHA256(key, info "cxguard/ff1-aes256/v2"); tweak = contact id and field
    /// name, so equal values in different contacts encrypt differently.
    V2,
}

/// The HKDF `info` of the FF1 subkey.
pub const FF1_INFO: &str = "cxguard/ff1-aes256/v2";

impl FpeVersion {
    /// What new encryptions use.
    pub const CURRENT: FpeVersion = FpeVersion::V2;

    /// The name recorded in the journal (`v1`, `v2`).
    pub fn as_str(self) -> &'static str {
        match self {
            FpeVersion::V1 => "v1",
            FpeVersion::V2 => "v2",
        }
    }

    /// The label audit entries carry.
    pub fn label(self) -> &'static str {
        match self {
            FpeVersion::V1 => "ff1-hmac-v1",
            FpeVersion::V2 => "ff1-hkdf-v2",
        }
    }

    /// A derivation from its recorded name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "v1" => Ok(FpeVersion::V1),
            "v2" => Ok(FpeVersion::V2),
            other => Err(format!("unknown FF1 derivation {other:?}: v1 or v2")),
        }
    }

    fn tweak(self, contact_id: &str, field: &str) -> Vec<u8> {
        match self {
            FpeVersion::V1 => field.as_bytes().to_vec(),
            // The unit separator appears in no id or field name: the pair is unambiguous.
            FpeVersion::V2 => format!("{contact_id}\u{1f}{field}").into_bytes(),
        }
    }
}

fn ff1(key: &Key, version: FpeVersion) -> FF1<Aes256> {
    let sub = match version {
        FpeVersion::V1 => {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(key.bytes()).expect("HMAC takes any key length");
            mac.update(b"cxguard-ff1-aes256-v1");
            zeroize::Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()))
        }
        FpeVersion::V2 => key.subkey(FF1_INFO),
    };
    FF1::<Aes256>::new(sub.as_slice(), 10).expect("radix 10 is valid")
}

/// Characters a digit string may carry besides digits (phone punctuation); they keep
/// their place. Anything else (a letter) would stay in clear, so it is refused.
pub const DIGIT_PUNCTUATION: &str = "+-(). /";

fn map_digits(
    value: &str,
    f: impl FnOnce(Vec<u16>) -> Result<Vec<u16>, String>,
) -> Result<String, String> {
    if let Some(i) = value
        .chars()
        .position(|c| !c.is_ascii_digit() && !DIGIT_PUNCTUATION.contains(c))
    {
        return Err(format!(
            "is not a digit string (character {} is neither a digit nor phone punctuation); only digits can be encrypted, and nothing is left in clear",
            i + 1
        ));
    }
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

/// FF1-encrypts the digits of `value` in place with the [`FpeVersion::CURRENT`]
/// derivation; punctuation keeps its position.
pub fn encrypt_digits(
    key: &Key,
    contact_id: &str,
    field: &str,
    value: &str,
) -> Result<String, String> {
    let version = FpeVersion::CURRENT;
    let cipher = ff1(key, version);
    let tweak = version.tweak(contact_id, field);
    map_digits(value, |d| {
        cipher
            .encrypt(&tweak, &FlexibleNumeralString::from(d))
            .map(Vec::from)
            .map_err(|e| format!("FF1 failed: {e}"))
    })
}

/// The inverse of [`encrypt_digits`] under the derivation `version` the value was
/// written with, for subject-access requests.
pub fn decrypt_digits(
    key: &Key,
    version: FpeVersion,
    contact_id: &str,
    field: &str,
    value: &str,
) -> Result<String, String> {
    let cipher = ff1(key, version);
    let tweak = version.tweak(contact_id, field);
    map_digits(value, |d| {
        cipher
            .decrypt(&tweak, &FlexibleNumeralString::from(d))
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
    /// The field.
    pub field: String,
    /// The operator.
    pub op: &'static str,
    /// The algorithm, for the consent event (`hmac-sha256`, `ff1-aes256`, …).
    pub algorithm: &'static str,
    /// The value now (kept in memory only, for the dry run's redacted example).
    pub before: Option<String>,
    /// The value it gets.
    pub after: Option<String>,
    /// For pseudonymize: whether the value normalized (else its trimmed text was hashed).
    pub normalized: bool,
}

/// The patch for one contact and what it does.
#[derive(Debug, Clone, Default)]
pub struct ContactPlan {
    /// The merge patch to send.
    pub patch: ContactPatch,
    /// What changes, field by field.
    pub changes: Vec<Change>,
    /// For encrypted fields: field → SHA-256 of the ciphertext, to recognise it later.
    pub ciphertexts: BTreeMap<String, String>,
}

impl ContactPlan {
    /// Whether nothing would change.
    pub fn is_noop(&self) -> bool {
        self.patch.is_empty()
    }
}

/// What an operator makes of one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The new value; `None` erases it.
    pub value: Option<String>,
    /// Whether a pseudonymized value was normalized as its kind asks (an address that
    /// does not parse is hashed as typed, lower-cased).
    pub normalized: bool,
}

/// What `op` makes of the present value `v`, for every operator but `encrypt` (which
/// needs the record's id and the ledger): `None` leaves it as it is (`keep`, `encrypt`,
/// or a value that is already a pseudonym).
pub fn value_target(policy: &Policy, op: &Operator, v: &str) -> Option<Target> {
    let plain = |value: Option<String>| {
        Some(Target {
            value,
            normalized: true,
        })
    };
    match op {
        Operator::Keep | Operator::Encrypt { .. } => None,
        Operator::Erase => plain(None),
        Operator::Replace { value } => plain(Some(value.clone())),
        Operator::Mask { keep, ch, ignore } => plain(Some(mask(v, *keep, *ch, ignore))),
        Operator::Pseudonymize { key, kind } => {
            if pseudonym::is_pseudonym(v) {
                return None;
            }
            let n = &policy.normalizer;
            let norm = match kind {
                Some(Kind::Email) => n.email(v).ok(),
                Some(Kind::Phone) => n.phone(v).ok(),
                None => Some(v.trim().to_string()),
            };
            let normalized = norm.is_some();
            let text = norm.unwrap_or_else(|| v.trim().to_lowercase());
            Some(Target {
                value: Some(pseudonym::pseudonym(policy.key(key), &text)),
                normalized,
            })
        }
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
            (Operator::Encrypt { key }, Some(v)) => {
                if encrypted.get(&name).is_some_and(|h| *h == sha256_hex(v)) {
                    continue;
                }
                let c = encrypt_digits(policy.key(key), &contact.id, &name, v)
                    .map_err(|e| format!("{name} {e}"))?;
                out.ciphertexts.insert(name.clone(), sha256_hex(&c));
                Some(c)
            }
            (op, Some(v)) => match value_target(policy, op, v) {
                None => continue,
                Some(t) => {
                    normalized = t.normalized;
                    t.value
                }
            },
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
        let c = encrypt_digits(&k, "c-1", "phone", phone).unwrap();
        assert_ne!(c, phone);
        assert_eq!(c.len(), phone.len());
        assert!(
            c.chars()
                .zip(phone.chars())
                .all(|(a, b)| a.is_ascii_digit() == b.is_ascii_digit())
        );
        assert_eq!(
            decrypt_digits(&k, FpeVersion::V2, "c-1", "phone", &c).unwrap(),
            phone
        );
        assert_ne!(
            encrypt_digits(&k, "c-1", "customFields.x", phone).unwrap(),
            c,
            "the field is in the tweak"
        );
        assert_ne!(
            encrypt_digits(&k, "c-2", "phone", phone).unwrap(),
            c,
            "so is the contact: equal phones no longer encrypt equally"
        );
        assert!(
            encrypt_digits(&k, "c-1", "phone", "12-34")
                .unwrap_err()
                .contains("at least 6")
        );
        let e = encrypt_digits(&k, "c-1", "phone", "call 5551234567").unwrap_err();
        assert!(e.contains("not a digit string"), "{e}");
        assert!(!e.contains("555"), "the value is never quoted: {e}");
    }

    /// Regression: with one key both pseudonymizing and encrypting, the old FF1 subkey
    /// was the pseudonym of its own label, so a field holding that label got the FF1 key
    /// written into it, in hex.
    #[test]
    fn no_pseudonym_is_the_ff1_key() {
        let k = Key::from_bytes("shared", vec![9; 32]).unwrap();
        let hex_of = |b: &[u8]| ledger::hex(b);
        let v1 = {
            let mut mac = Hmac::<Sha256>::new_from_slice(k.bytes()).unwrap();
            mac.update(b"cxguard-ff1-aes256-v1");
            mac.finalize().into_bytes()
        };
        // The defect, shown: v1's key is a pseudonym anyone could ask cxguard to write.
        assert_eq!(
            pseudonym::pseudonym(&k, "cxguard-ff1-aes256-v1"),
            hex_of(&v1)
        );
        let v2 = k.subkey(FF1_INFO);
        for label in [FF1_INFO, "cxguard-ff1-aes256-v1", "", "v2"] {
            assert_ne!(pseudonym::pseudonym(&k, label), hex_of(v2.as_slice()));
        }
        assert_ne!(v2.as_slice(), v1.as_slice());
    }

    #[test]
    fn data_written_with_v1_stays_revealable() {
        let k = Key::from_bytes("fpe", vec![3; 32]).unwrap();
        let old = {
            let cipher = ff1(&k, FpeVersion::V1);
            map_digits("2125550123", |d| {
                cipher
                    .encrypt(b"phone", &FlexibleNumeralString::from(d))
                    .map(Vec::from)
                    .map_err(|e| e.to_string())
            })
            .unwrap()
        };
        assert_eq!(
            decrypt_digits(&k, FpeVersion::V1, "ignored", "phone", &old).unwrap(),
            "2125550123"
        );
    }

    #[test]
    fn redaction_shows_shape_only() {
        assert_eq!(redact(Some("ann@example.com")), "a••••••••••• (15 chars)");
        assert!(!redact(Some("ann@example.com")).contains("example"));
        assert_eq!(redact(None), "null");
    }
}
