//! encrypt: turn on AES-256-GCM encryption for sensitive columns of a Data Store table
//! (spec §5, tutorial 002), validated and planned before any write.
//!
//! - [`classify`]: which columns are sensitive (a built-in classifier of names and types,
//!   adjustable by configuration), for coverage.
//! - [`coverage`]: what a table's encryption is now (coverage, key rotation).
//! - [`plan`]: pure — checks a [`Request`] against the table and its indexes, reports every
//!   problem at once (each naming its column or index), and says what would change:
//!   columns, masked indexes, coverage before → after, query-degradation risk.
//! - [`apply`]: on the job runner — the PATCH body and its idempotency key are journaled
//!   before the PATCH, so a retry or a rerun after a crash sends the same key and body and
//!   the tenant applies it once; the table is read back and every column checked before
//!   the job counts as done; one audit entry and a `column_encryption.verified` event.
//!
//! - [`callback`]: checks a tenant's KMS callback against the journaled jobs.
//!
//! Not here: how the plan is printed (the CLI), the HTTP side of the KMS callback
//! receiver (`server`).

pub mod apply;
pub mod callback;
pub mod classify;
pub mod config;
pub mod coverage;
pub mod plan;

pub use apply::{Report, apply};
pub use classify::Classifier;
pub use coverage::{Coverage, KeyRotation};
pub use plan::{Plan, plan};

use crate::{Error, Result};

/// The job kind in the journal.
pub const JOB_KIND: &str = "datastore.encrypt";

/// The OAuth scopes reading a table and encrypting its columns need.
pub const SCOPES: &[&str] = &["data_management:read", "data_management:write"];

/// The only algorithm the spec allows.
pub const ALGORITHM: &str = "AES-256-GCM";

/// A table, as `DS/TABLE` on the command line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableRef {
    /// The data store's id.
    pub datastore: String,
    /// The table's id.
    pub table: String,
}

impl TableRef {
    /// `ds/table`, each part an identifier.
    pub fn parse(text: &str) -> Result<Self> {
        let (ds, t) = text.split_once('/').ok_or_else(|| {
            Error::Invalid(format!(
                "table {text:?}: expected DATASTORE/TABLE (e.g. ds-customer/tbl-customer-profiles)"
            ))
        })?;
        for (what, v) in [("data store id", ds), ("table id", t)] {
            ledger::details::check_identifier(what, v)
                .map_err(|e| Error::Invalid(format!("table {text:?}: {e}")))?;
            if v.contains('/') || v == "." || v == ".." {
                return Err(Error::Invalid(format!(
                    "table {text:?}: the {what} cannot be {v:?} or hold a slash"
                )));
            }
        }
        Ok(TableRef {
            datastore: ds.to_string(),
            table: t.to_string(),
        })
    }
}

impl TableRef {
    /// The table and its indexes, read together: what [`plan`] checks a request against.
    pub async fn read(
        &self,
        client: &cxone::Client,
    ) -> cxone::Result<(cxone::models::Table, Vec<cxone::models::Index>)> {
        tokio::try_join!(
            client.datastores().table(&self.datastore, &self.table),
            client.datastores().indexes(&self.datastore, &self.table),
        )
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.datastore, self.table)
    }
}

/// The compliance regime a column is encrypted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Compliance {
    /// EU GDPR.
    #[serde(rename = "GDPR")]
    Gdpr,
    /// US HIPAA.
    #[serde(rename = "HIPAA")]
    Hipaa,
    /// PCI DSS.
    #[serde(rename = "PCI")]
    Pci,
}

impl Compliance {
    /// `GDPR`, `HIPAA` or `PCI` (any case).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "GDPR" => Ok(Compliance::Gdpr),
            "HIPAA" => Ok(Compliance::Hipaa),
            "PCI" => Ok(Compliance::Pci),
            _ => Err(Error::Invalid(format!(
                "--compliance: {s:?} is not GDPR, HIPAA or PCI"
            ))),
        }
    }

    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Compliance::Gdpr => "GDPR",
            Compliance::Hipaa => "HIPAA",
            Compliance::Pci => "PCI",
        }
    }
}

/// How the column key rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The tenant rotates it every `days` days (1 to 365).
    Automatic {
        /// The interval.
        days: u16,
    },
    /// Only when asked.
    Manual,
}

impl Rotation {
    /// Checks `days` is from 1 to 365.
    pub fn automatic(days: u32) -> Result<Self> {
        if (1..=365).contains(&days) {
            Ok(Rotation::Automatic { days: days as u16 })
        } else {
            Err(Error::Invalid(format!(
                "--rotation-days: {days} is not from 1 to 365"
            )))
        }
    }

    /// `AUTOMATIC` or `MANUAL`.
    pub fn strategy(self) -> &'static str {
        match self {
            Rotation::Automatic { .. } => "AUTOMATIC",
            Rotation::Manual => "MANUAL",
        }
    }

    /// The interval sent: the configured days, or the tenant's default 90 for manual keys
    /// (the spec requires one; a manual key is not rotated by it).
    pub fn interval_days(self) -> u16 {
        match self {
            Rotation::Automatic { days } => days,
            Rotation::Manual => 90,
        }
    }
}

/// When the tenant calls the KMS back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Before answering; a failed callback rolls the change back (502).
    Sync,
    /// After answering.
    Async,
}

impl SyncMode {
    /// `sync` or `async`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sync" => Ok(SyncMode::Sync),
            "async" => Ok(SyncMode::Async),
            _ => Err(Error::Invalid(format!(
                "--sync-mode: {s:?} is not sync or async"
            ))),
        }
    }

    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Sync => "SYNC",
            SyncMode::Async => "ASYNC",
        }
    }
}

/// The external KMS the tenant notifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsCallback {
    /// The callback URL, used exactly as written.
    pub url: url::Url,
    /// When the tenant calls it.
    pub sync: SyncMode,
}

/// What the operator asks for: columns of one table and how to encrypt them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The table.
    pub table: TableRef,
    /// The columns to encrypt, as given (checked against the table by [`plan()`]).
    pub columns: Vec<String>,
    /// The compliance regime.
    pub compliance: Compliance,
    /// Key rotation.
    pub rotation: Rotation,
    /// Mask writable indexes that cover a column to encrypt.
    pub mask_indexes: bool,
    /// The KMS callback, if any.
    pub kms: Option<KmsCallback>,
}

impl Request {
    /// Checks what can be checked without the table: the columns list and the callback URL.
    pub fn check(&self) -> Result<()> {
        if self.columns.is_empty() {
            return Err(Error::Invalid("--columns: name at least one column".into()));
        }
        if let Some(k) = &self.kms
            && !matches!(k.url.scheme(), "https" | "http")
        {
            return Err(Error::Invalid(format!(
                "--kms-callback: {} is not an http(s) URL",
                k.url
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_refs_parse_and_refuse() {
        let t = TableRef::parse("ds-customer/tbl-1").unwrap();
        assert_eq!(t.to_string(), "ds-customer/tbl-1");
        for bad in ["nods", "/t", "ds/", "ds/../x", "ds/a b"] {
            assert!(TableRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_are_bounded() {
        assert!(Rotation::automatic(0).is_err());
        assert!(Rotation::automatic(366).is_err());
        assert_eq!(Rotation::automatic(30).unwrap().interval_days(), 30);
        assert_eq!(Compliance::parse("pci").unwrap(), Compliance::Pci);
        assert!(Compliance::parse("SOX").is_err());
        assert_eq!(SyncMode::parse("SYNC").unwrap(), SyncMode::Sync);
    }
}
