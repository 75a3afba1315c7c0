//! Normalization and the keyed pseudonym. One person must map to one pseudonym in every
//! place cxguard writes one (contact records, guest attributes), so both use this module.
//!
//! - Email: trim (and drop zero-width characters), Unicode NFC, lowercase, the domain
//!   in its ASCII (punycode) form; with gmail folding, also drop dots and `+tags` in the local
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
    /// The region a phone number without a country code is read in.
    pub region: Option<phonenumber::country::Id>,
    /// Fold Gmail addresses (dots, `+tags`, googlemail.com) into one.
    pub gmail_folding: bool,
}

/// Why an identifier could not be normalized (never quoting it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    /// The value is empty.
    #[error("empty")]
    Empty,
    /// Not an email address; says why.
    #[error("not an email address: {0}")]
    Email(&'static str),
    /// Not a phone number; says why.
    #[error("not a phone number: {0}")]
    Phone(String),
}

/// What kind of identifier a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An email address.
    Email,
    /// A phone number.
    Phone,
}

/// A region from its ISO 3166 code (`US`).
pub fn parse_region(code: &str) -> Result<phonenumber::country::Id, String> {
    code.trim()
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| format!("{code:?} is not an ISO 3166 region code such as US, GB or DE"))
}

impl Normalizer {
    /// An email address normalized: trimmed, Unicode NFC, lowercase (and Gmail folded if asked).
    pub fn email(&self, raw: &str) -> Result<String, NormalizeError> {
        // Invisible characters that copy-and-paste carries in (zero-width space, joiner,
        // byte-order mark, word joiner) are not part of anyone's address.
        let visible: String;
        let s = if raw.chars().any(is_invisible) {
            visible = raw.chars().filter(|c| !is_invisible(*c)).collect();
            visible.trim()
        } else {
            raw.trim()
        };
        if s.is_empty() {
            return Err(NormalizeError::Empty);
        }
        // One spelling per address: Unicode NFC (a composed and a decomposed "é" are the
        // same letter), then lowercase.
        let lower = if s.is_ascii() {
            s.to_ascii_lowercase()
        } else {
            use unicode_normalization::UnicodeNormalization as _;
            s.nfc().collect::<String>().to_lowercase()
        };
        let (local, domain) = lower
            .rsplit_once('@')
            .ok_or(NormalizeError::Email("no @"))?;
        if local.is_empty() {
            return Err(NormalizeError::Email("nothing before the @"));
        }
        if domain.is_empty() {
            return Err(NormalizeError::Email("nothing after the @"));
        }
        // An internationalized domain and its punycode spelling are one domain.
        let domain = if domain.is_ascii() {
            domain.to_string()
        } else {
            idna::domain_to_ascii(domain)
                .map_err(|_| NormalizeError::Email("the domain is not a valid domain name"))?
        };
        let address = format!("{local}@{domain}");
        if !email_address::EmailAddress::is_valid(&address) {
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
        Ok(address)
    }

    /// A phone number normalized to E.164.
    pub fn phone(&self, raw: &str) -> Result<String, NormalizeError> {
        // Compatibility forms (full-width digits and plus sign, ideographic spaces) are
        // the digits they look like.
        let compat: String;
        let s = if raw.is_ascii() {
            raw.trim()
        } else {
            use unicode_normalization::UnicodeNormalization as _;
            compat = raw.chars().filter(|c| !is_invisible(*c)).nfkc().collect();
            compat.trim()
        };
        if s.is_empty() {
            return Err(NormalizeError::Empty);
        }
        if !s.chars().any(|c| c.is_ascii_digit()) {
            return Err(NormalizeError::Phone("no digits".into()));
        }
        let international = s.starts_with('+');
        let region = if international { None } else { self.region };
        let mut n = phonenumber::parse(region, s).map_err(|e| {
            let why = e.to_string();
            if region.is_none() && !international {
                NormalizeError::Phone(format!(
                    "{why} (no default region is set for numbers without a +country code)"
                ))
            } else {
                NormalizeError::Phone(why)
            }
        })?;
        // phonenumber 0.3 strips the *default region's* national prefix even from a
        // number dialled with an international prefix ("011 33 1 42…" lost its "1"), so
        // such a number is read again as "+33 1 42…" without a region.
        if let Some(r) = region {
            let home = phonenumber::metadata::DATABASE
                .by_id(r.as_ref())
                .map(|m| m.country_code());
            if home != Some(n.code().value())
                && let Some(again) = reparse_after_idd(s, n.code().value())
            {
                n = again;
            }
        }
        if !is_possible(&n) {
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

/// Valid, or at least of a possible length for its country (libphonenumber's
/// `isPossibleNumber`): new number ranges and fictional 555 numbers still pass.
fn is_possible(n: &phonenumber::PhoneNumber) -> bool {
    if n.is_valid() {
        return true;
    }
    let len = n.national().to_string().len();
    phonenumber::metadata::DATABASE
        .by_code(&n.code().value())
        .into_iter()
        .flatten()
        .any(|m| {
            m.descriptors()
                .general()
                .possible_length()
                .iter()
                .any(|l| usize::from(*l) == len)
        })
}

/// `s` dialled with an international prefix (00, 011, 0011…) read as `+<country code>…`.
fn reparse_after_idd(s: &str, code: u16) -> Option<phonenumber::PhoneNumber> {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    let code = code.to_string();
    (1..=5)
        .filter(|i| *i < digits.len() && digits[*i..].starts_with(&code))
        .find_map(|i| phonenumber::parse(None, format!("+{}", &digits[i..])).ok())
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}'
    )
}

/// HMAC-SHA256(key, normalized) as 64 lowercase hex characters.
pub fn pseudonym(key: &Key, normalized: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.bytes()).expect("HMAC takes any key length");
    mac.update(normalized.as_bytes());
    ledger::hex(&mac.finalize().into_bytes())
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
