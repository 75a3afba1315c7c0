//! What a table's encryption is now: [`Coverage`] (encrypted and sensitive columns,
//! those still in clear by name) and the [`KeyRotation`] directives its encrypted columns
//! carry. Shared by the plan, `datastore coverage` and the inventory.

use std::collections::BTreeSet;

use cxone::models::Column;
use serde::Serialize;

use super::Classifier;

/// Encryption coverage of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Coverage {
    /// Encrypted columns.
    pub encrypted: usize,
    /// All columns.
    pub total: usize,
    /// Sensitive columns that are encrypted.
    pub sensitive_encrypted: usize,
    /// Sensitive columns.
    pub sensitive_total: usize,
    /// Sensitive columns still in clear, by name.
    pub sensitive_in_clear: Vec<String>,
}

impl Coverage {
    /// The coverage of `columns`, with `also` counted as encrypted.
    pub fn of(columns: &[Column], also: &BTreeSet<&str>, classifier: &Classifier) -> Self {
        let mut c = Coverage {
            encrypted: 0,
            total: columns.len(),
            sensitive_encrypted: 0,
            sensitive_total: 0,
            sensitive_in_clear: Vec::new(),
        };
        for col in columns {
            let enc = col.encrypted || also.contains(col.name.as_str());
            let sensitive = classifier.is_sensitive(&col.name, &col.kind);
            c.encrypted += usize::from(enc);
            if sensitive {
                c.sensitive_total += 1;
                if enc {
                    c.sensitive_encrypted += 1;
                } else {
                    c.sensitive_in_clear.push(col.name.clone());
                }
            }
        }
        c
    }
}

/// A key rotation directive some encrypted columns carry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRotation {
    /// `AUTOMATIC` or `MANUAL` (as the tenant reports it).
    pub strategy: String,
    /// Days between rotations, for `AUTOMATIC`.
    pub interval_days: Option<u64>,
    /// The next rotation, RFC 3339 UTC, when scheduled.
    pub next_rotation: Option<String>,
    /// The columns with this directive.
    pub columns: Vec<String>,
}

impl KeyRotation {
    /// The distinct directives of the encrypted `columns`, each with its columns.
    pub fn of(columns: &[Column]) -> Vec<KeyRotation> {
        let mut out: Vec<KeyRotation> = Vec::new();
        for c in columns.iter().filter(|c| c.encrypted) {
            let d = c
                .encryption_configuration
                .as_ref()
                .map(|cfg| cfg["keyRotationDirective"].clone())
                .unwrap_or_default();
            let strategy = d["strategy"].as_str().unwrap_or("unknown").to_string();
            let interval_days = d["intervalDays"].as_u64();
            let next_rotation = d["nextRotationEpoch"]
                .as_i64()
                .and_then(|e| time::OffsetDateTime::from_unix_timestamp(e).ok())
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                });
            match out.iter_mut().find(|k| {
                k.strategy == strategy
                    && k.interval_days == interval_days
                    && k.next_rotation == next_rotation
            }) {
                Some(k) => k.columns.push(c.name.clone()),
                None => out.push(KeyRotation {
                    strategy,
                    interval_days,
                    next_rotation,
                    columns: vec![c.name.clone()],
                }),
            }
        }
        out
    }

    /// One line: `AUTOMATIC every 90 days, next 2027-02-27T00:00:00Z (email, phone)`.
    pub fn describe(&self) -> String {
        format!(
            "{}{}, next {} ({})",
            self.strategy,
            self.interval_days
                .map(|d| format!(" every {d} days"))
                .unwrap_or_default(),
            self.next_rotation.as_deref().unwrap_or("not scheduled"),
            self.columns.join(", ")
        )
    }
}
