//! Encryption as configured: `[datastore]` (`sensitive`, `not_sensitive`, and
//! `[[datastore.tables]]` entries, in `cxguard.toml` and in a posture file) and the
//! request one table's flags and entry make together.

use serde::Deserialize;

use super::{Classifier, Compliance, KmsCallback, Request, Rotation, SyncMode, TableRef};
use crate::{Error, Result};

/// `[datastore]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoreFile {
    /// Column names always counted as sensitive.
    #[serde(default)]
    pub sensitive: Vec<String>,
    /// Column names never counted as sensitive.
    #[serde(default)]
    pub not_sensitive: Vec<String>,
    /// Tables and the columns to encrypt in each.
    #[serde(default)]
    pub tables: Vec<DatastoreTableFile>,
}

/// One `[[datastore.tables]]` entry: what `datastore encrypt DS/TABLE` takes as flags.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoreTableFile {
    /// `DS/TABLE`.
    pub table: String,
    /// Columns to encrypt.
    pub columns: Vec<String>,
    /// `GDPR`, `HIPAA` or `PCI` (default GDPR).
    pub compliance: Option<String>,
    /// Automatic key rotation every N days (default 90).
    pub rotation_days: Option<u32>,
    /// Manual key rotation instead.
    #[serde(default)]
    pub manual_rotation: bool,
    /// Mask writable indexes over the columns.
    #[serde(default)]
    pub mask_indexes: bool,
    /// The KMS callback URL (holds a capability token: keep the file private).
    pub kms_callback: Option<String>,
    /// `sync` or `async` (default sync when a callback is given).
    pub sync_mode: Option<String>,
}

impl DatastoreFile {
    /// The classifier its `sensitive` and `not_sensitive` lists make.
    pub fn classifier(&self) -> Classifier {
        Classifier {
            sensitive: self.sensitive.clone(),
            not_sensitive: self.not_sensitive.clone(),
        }
    }
}

/// The request a table's `flags` (what was given for it, as an entry) make, each one
/// not given falling back to the table's entry in `d`, then to the defaults (GDPR,
/// automatic rotation every 90 days, a SYNC callback). Checked before it is returned.
pub fn request(flags: &DatastoreTableFile, d: &DatastoreFile) -> Result<Request> {
    let table = TableRef::parse(&flags.table)?;
    let entry = d
        .tables
        .iter()
        .find(|t| t.table == flags.table)
        .cloned()
        .unwrap_or_default();
    let columns = if flags.columns.is_empty() {
        entry.columns.clone()
    } else {
        flags.columns.clone()
    };
    let columns: Vec<String> = columns
        .into_iter()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    let compliance = Compliance::parse(
        flags
            .compliance
            .as_deref()
            .or(entry.compliance.as_deref())
            .unwrap_or("GDPR"),
    )?;
    let rotation =
        if flags.manual_rotation || (flags.rotation_days.is_none() && entry.manual_rotation) {
            Rotation::Manual
        } else {
            Rotation::automatic(flags.rotation_days.or(entry.rotation_days).unwrap_or(90))?
        };
    let kms = match flags
        .kms_callback
        .as_deref()
        .or(entry.kms_callback.as_deref())
    {
        None => None,
        Some(u) => {
            // The URL holds a capability token: an error names the flag, not the value.
            let url = cxone::parse_http_url("--kms-callback", u).map_err(|_| {
                Error::Invalid(
                    "--kms-callback: not an absolute http(s) URL with a host, without credentials, query or fragment (the value is not shown: it holds a token)".into(),
                )
            })?;
            let sync = SyncMode::parse(
                flags
                    .sync_mode
                    .as_deref()
                    .or(entry.sync_mode.as_deref())
                    .unwrap_or("sync"),
            )?;
            Some(KmsCallback { url, sync })
        }
    };
    let req = Request {
        table,
        columns,
        compliance,
        rotation,
        mask_indexes: flags.mask_indexes || entry.mask_indexes,
        kms,
    };
    req.check()?;
    Ok(req)
}
