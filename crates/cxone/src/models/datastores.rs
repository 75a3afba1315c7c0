//! Data Store tables, columns, indexes and column encryption (spec §5).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Data Store table (spec §5).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    /// Its id.
    pub id: String,
    /// The data store it belongs to.
    pub datastore_id: String,
    /// Its name.
    pub name: String,
    /// Its columns.
    pub columns: Vec<Column>,
    /// Limits the tenant reports for it.
    #[serde(default)]
    pub metadata: TableMetadata,
}

/// A table's limits.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TableMetadata {
    /// How many columns may be encrypted at most.
    #[serde(default)]
    pub max_encrypted_fields: Option<u32>,
}

/// A table column.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type (`type` in the API).
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether its values are encrypted.
    pub encrypted: bool,
    /// How, when encrypted (algorithm, key rotation, compliance).
    #[serde(default)]
    pub encryption_configuration: Option<Value>,
}

/// A table index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Its name.
    pub name: String,
    /// Its columns.
    pub columns: Vec<String>,
    /// Whether the index is read-only.
    pub read_only: bool,
    /// Whether the index is masked (it then tolerates encrypted columns).
    #[serde(default)]
    pub masked: bool,
}

/// The answer to a column-encryption request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionResult {
    /// The table.
    pub table: Table,
    /// The encryption key's version.
    pub key_version: u64,
    /// What the tenant sent to the external KMS, if any.
    pub external_kms_payload: Value,
}
