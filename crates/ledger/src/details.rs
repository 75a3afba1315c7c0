//! What audit entries and webhook events may carry. There is no free-form map: values
//! enter through typed methods that admit counts, flags, fixed labels, identifiers and
//! hashes — so writing a secret or a person's email into the ledger takes effort, not
//! a slip. Identifiers are checked: no `@`, `+`, spaces or other characters that emails,
//! phone numbers or secrets carry.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::{Error, Result};

const MAX_ID: usize = 200;

/// Checks an identifier (a resource id, a field name, a key id, an actor).
pub fn check_identifier(what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= MAX_ID
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'/' | b'#')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what}: not an identifier ({}); an identifier is 1–{MAX_ID} of A–Z a–z 0–9 . _ - : / #, and raw values never enter the ledger",
            where_wrong(s)
        )))
    }
}

/// Where an identifier goes wrong, without quoting any of it: the value may be an
/// email, a phone number or a secret put in the wrong place.
fn where_wrong(s: &str) -> String {
    if s.is_empty() {
        return "it is empty".into();
    }
    if s.len() > MAX_ID {
        return format!("it has {} bytes", s.len());
    }
    match s.chars().position(|c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '#'))
    }) {
        Some(i) => format!("character {} is not allowed", i + 1),
        None => "it is malformed".into(),
    }
}

/// Structured, non-sensitive details.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Details {
    map: BTreeMap<&'static str, Value>,
}

impl Details {
    /// The text shared by every event that differs only in `key` (`{"key","data"}`, the
    /// data without it) and the value of `key`; `None` if `key` is not an identifier.
    pub(crate) fn split_off(&self, key: &'static str) -> Option<(String, String)> {
        let own = self.map.get(key)?.as_str()?.to_string();
        let rest: serde_json::Map<String, Value> = self
            .map
            .iter()
            .filter(|(k, _)| **k != key)
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect();
        Some((json!({"key": key, "data": rest}).to_string(), own))
    }

    /// No details.
    pub fn new() -> Self {
        Details::default()
    }

    /// A count.
    pub fn count(mut self, key: &'static str, n: u64) -> Self {
        self.map.insert(key, json!(n));
        self
    }

    /// A yes/no.
    pub fn flag(mut self, key: &'static str, b: bool) -> Self {
        self.map.insert(key, json!(b));
        self
    }

    /// A label fixed in the program (a status, an algorithm name, an operator).
    pub fn label(mut self, key: &'static str, label: &'static str) -> Self {
        self.map.insert(key, json!(label));
        self
    }

    /// A list of labels fixed in the program.
    pub fn labels(mut self, key: &'static str, labels: &[&'static str]) -> Self {
        self.map.insert(key, json!(labels));
        self
    }

    /// An identifier: a resource id, a key id, a request id.
    pub fn id(mut self, key: &'static str, id: &str) -> Result<Self> {
        check_identifier(key, id)?;
        self.map.insert(key, json!(id));
        Ok(self)
    }

    /// A list of identifiers (checked to be ids, not free text).
    pub fn ids<S: AsRef<str>>(mut self, key: &'static str, ids: &[S]) -> Result<Self> {
        for id in ids {
            check_identifier(key, id.as_ref())?;
        }
        self.map.insert(
            key,
            json!(ids.iter().map(|s| s.as_ref()).collect::<Vec<_>>()),
        );
        Ok(self)
    }

    /// A map from identifiers (e.g. field names) to fixed labels (e.g. operators).
    pub fn label_map<S: AsRef<str>>(
        mut self,
        key: &'static str,
        entries: &[(S, &'static str)],
    ) -> Result<Self> {
        let mut m = serde_json::Map::new();
        for (k, v) in entries {
            check_identifier(key, k.as_ref())?;
            m.insert(k.as_ref().to_string(), json!(v));
        }
        self.map.insert(key, Value::Object(m));
        Ok(self)
    }

    /// A map from identifiers to counts (e.g. per-field totals).
    pub fn count_map<S: AsRef<str>>(
        mut self,
        key: &'static str,
        entries: &[(S, u64)],
    ) -> Result<Self> {
        let mut m = serde_json::Map::new();
        for (k, v) in entries {
            check_identifier(key, k.as_ref())?;
            m.insert(k.as_ref().to_string(), json!(v));
        }
        self.map.insert(key, Value::Object(m));
        Ok(self)
    }

    /// A SHA-256 in lowercase hex (64 characters): the hash of a value, never the value.
    pub fn sha256(mut self, key: &'static str, hex: &str) -> Result<Self> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!(
                "{key}: a SHA-256 is 64 hex characters"
            )));
        }
        self.map.insert(key, json!(hex.to_ascii_lowercase()));
        Ok(self)
    }

    /// An Ed25519 signature in base64 (64 bytes): public by nature, it proves, never hides.
    pub fn signature(mut self, key: &'static str, b64: &str) -> Result<Self> {
        use base64::Engine as _;
        let ok = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .is_ok_and(|b| b.len() == 64);
        if !ok {
            return Err(Error::Invalid(format!(
                "{key}: a signature is 64 bytes in base64"
            )));
        }
        self.map.insert(key, json!(b64));
        Ok(self)
    }

    /// An HTTP status, a duration, or another small number.
    pub fn number(mut self, key: &'static str, n: i64) -> Self {
        self.map.insert(key, json!(n));
        self
    }

    /// Whether there are no details.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The JSON object, keys sorted.
    pub fn to_value(&self) -> Value {
        Value::Object(
            self.map
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_refuse_what_personal_data_and_secrets_look_like() {
        for bad in [
            "ann@example.com",
            "+1 555 0100",
            "",
            "a b",
            "key=s3cr3t!",
            &"x".repeat(201),
        ] {
            assert!(Details::new().id("target", bad).is_err(), "{bad:?}");
        }
        for good in [
            "c-0000001",
            "sec-crm-api-key",
            "customFields.loyaltyTier",
            "job/2026#1",
        ] {
            assert!(Details::new().id("target", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn errors_do_not_repeat_long_values() {
        let e = Details::new()
            .id("k", "averyveryverylongsecretvalue@x")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secretvalue"), "{e}");
    }

    #[test]
    fn hashes_must_be_hex() {
        assert!(Details::new().sha256("h", &"a".repeat(64)).is_ok());
        assert!(Details::new().sha256("h", "plaintext").is_err());
    }
}
