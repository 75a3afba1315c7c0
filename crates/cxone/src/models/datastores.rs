//! Data Store tables, columns, indexes and column encryption (spec §5).

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    pub id: String,
    pub datastore_id: String,
    pub name: String,
    pub columns: Vec<Column>,
    #[serde(default)]
    pub metadata: TableMetadata,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TableMetadata {
    #[serde(default)]
    pub max_encrypted_fields: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub encrypted: bool,
    #[serde(default)]
    pub encryption_configuration: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub name: String,
    pub columns: Vec<String>,
    pub read_only: bool,
    #[serde(default)]
    pub masked: bool,
}

/// The answer to a column-encryption request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionResult {
    pub table: Table,
    pub key_version: u64,
    pub external_kms_payload: Value,
}
