//! Web-messaging guests' attributes and attribute PATCH operations (spec §6).

use serde::{Deserialize, Serialize};

/// A guest attribute (spec §6).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    /// The attribute's name.
    pub id: String,
    /// Its value.
    pub value: String,
    /// Its type, if the tenant says.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// When it was created.
    #[serde(default)]
    pub created_timestamp: Option<i64>,
    /// When it last changed.
    #[serde(default)]
    pub updated_timestamp: Option<i64>,
}

/// One operation of an attribute PATCH.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AttributeOp {
    /// The attribute's name.
    pub id: String,
    /// The value to set (absent for a delete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `upsert` or `delete`.
    pub operation: &'static str,
}

impl AttributeOp {
    /// Set attribute `id` to `value`, creating it if missing.
    pub fn upsert(id: &str, value: &str) -> Self {
        AttributeOp {
            id: id.to_string(),
            value: Some(value.to_string()),
            operation: "upsert",
        }
    }
    /// Remove attribute `id`.
    pub fn delete(id: &str) -> Self {
        AttributeOp {
            id: id.to_string(),
            value: None,
            operation: "delete",
        }
    }
}
