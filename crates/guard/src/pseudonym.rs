//! Normalization and the keyed pseudonym. One person must map to one pseudonym in every
//! place cxguard writes one (contact records, guest attributes), so both use this module.
//!
//! - Email: trim, lowercase; with gmail folding, also drop dots and `+tags` in the local
//!   part of gmail.com / googlemail.com addresses (and fold googlemail.com to gmail.com).
//! - Phone: parsed with libphonenumber into E.164, with a default region for national
//!   numbers.
//! - Pseudonym: HMAC-SHA256 with a secret key over the normalized value, lowercase hex.
//!   A keyed hash, unlike a salted one, cannot be reversed by hashing every phone number.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::keys::Key;

/// How identifiers are normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Normalizer {
    pub region: Option<phonenumber::country::Id>,
    pub gmail_folding: bool,
}

/// Why an identifier could not be normalized (never quoting it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("empty")]
    Empty,
    #[error("not an email address: {0}")]
    Email(&'static str),
    #[error("not a phone number: {0}")]
    Phone(String),
}

/// What kind of identifier a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Email,
    Phone,
}

pub fn parse_region(code: &str) -> Result<phonenumber::country::Id, String> {
    code.trim()
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| format!("{code:?} is not an ISO 3166 region code such as US, GB or DE"))
}

impl Normalizer {
    pub fn email(&self, raw: &str) -> Result<String, NormalizeError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(NormalizeError::Empty);
        }
        let lower = s.to_lowercase();
        let (local, domain) = lower
            .rsplit_once('@')
            .ok_or(NormalizeError::Email("no @"))?;
        if local.is_empty() {
            return Err(NormalizeError::Email("nothing before the @"));
        }
        if !email_address::EmailAddress::is_valid(&lower) {
            return Err(NormalizeError::Email("not RFC 5322 syntax"));
        }
        if !domain.contains('.') {
            return Err(NormalizeError::Email("the domain has no dot"));
        }
        if self.gmail_folding && (domain == "gmail.com" || domain == "googlemail.com") {
            let base = local.split('+').next().unwrap_or(local).replace('.', "");
            if base.is_empty() {
                return Err(NormalizeError::Email("nothing before the + tag"));
            }
            return Ok(format!("{base}@gmail.com"));
        }
        Ok(lower)
    }

    pub fn phone(&self, raw: &str) -> Result<String, NormalizeError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(NormalizeError::Empty);
        }
        if !s.chars().any(|c| c.is_ascii_digit()) {
            return Err(NormalizeError::Phone("no digits".into()));
        }
        let n = phonenumber::parse(self.region, s).map_err(|e| {
            let why = e.to_string();
            if self.region.is_none() && !s.starts_with('+') {
                NormalizeError::Phone(format!(
                    "{why} (no default region is set for numbers without a +country code)"
                ))
            } else {
                NormalizeError::Phone(why)
            }
        })?;
        if !phonenumber::is_viable(n.national().to_string()) && !n.is_valid() {
            return Err(NormalizeError::Phone(
                "too short or too long for a phone number".into(),
            ));
        }
        Ok(n.format().mode(phonenumber::Mode::E164).to_string())
    }

    /// Email if it has an `@`, else phone.
    pub fn auto(&self, raw: &str) -> Result<(Kind, String), NormalizeError> {
        if raw.contains('@') {
            self.email(raw).map(|v| (Kind::Email, v))
        } else {
            self.phone(raw).map(|v| (Kind::Phone, v))
        }
    }
}

/// HMAC-SHA256(key, normalized) as 64 lowercase hex characters.
pub fn pseudonym(key: &Key, normalized: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.bytes()).expect("HMAC takes any key length");
    mac.update(normalized.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `value` looks like a pseudonym this module made (64 lowercase hex): such a
/// value is already pseudonymized and is not hashed again.
pub fn is_pseudonym(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> Normalizer {
        Normalizer {
            region: Some(parse_region("US").unwrap()),
            gmail_folding: false,
        }
    }

    #[test]
    fn emails_trim_and_lowercase() {
        assert_eq!(
            us().email("  Ann.Lee@Example.COM ").unwrap(),
            "ann.lee@example.com"
        );
        assert_eq!(us().email("a+tag@gmail.com").unwrap(), "a+tag@gmail.com");
        let g = Normalizer {
            gmail_folding: true,
            ..us()
        };
        assert_eq!(
            g.email("A.n.N+promo@GoogleMail.com").unwrap(),
            "ann@gmail.com"
        );
        assert_eq!(
            g.email("a.nn+x@example.com").unwrap(),
            "a.nn+x@example.com",
            "only gmail folds"
        );
        for bad in [
            "",
            "   ",
            "no-at-sign",
            "@example.com",
            "a@localhost",
            "a b@example.com",
        ] {
            assert!(us().email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn phones_become_e164() {
        for (raw, want) in [
            ("+1 (212) 555-0123", "+12125550123"),
            ("(212) 555-0123", "+12125550123"),
            ("212.555.0123", "+12125550123"),
            ("+44 20 7946 0958", "+442079460958"),
            ("+49 30 90182012", "+493090182012"),
        ] {
            assert_eq!(us().phone(raw).unwrap(), want, "{raw}");
        }
        assert!(us().phone("call me").is_err());
        assert!(
            Normalizer::default()
                .phone("(212) 555-0123")
                .unwrap_err()
                .to_string()
                .contains("default region")
        );
    }

    #[test]
    fn pseudonyms_are_keyed_and_stable() {
        let k1 = Key::from_bytes("k1", vec![1; 32]).unwrap();
        let k2 = Key::from_bytes("k2", vec![2; 32]).unwrap();
        let a = pseudonym(&k1, &us().email(" ANN@example.com").unwrap());
        let b = pseudonym(&k1, &us().email("ann@EXAMPLE.com ").unwrap());
        assert_eq!(a, b);
        assert!(is_pseudonym(&a));
        assert_ne!(
            a,
            pseudonym(&k2, "ann@example.com"),
            "another key, another pseudonym"
        );
        assert!(!is_pseudonym("ann@example.com"));
    }
}
