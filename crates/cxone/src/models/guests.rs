//! Web-messaging guests' attributes and attribute PATCH operations (spec §6).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub id: String,
    pub value: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub created_timestamp: Option<i64>,
    #[serde(default)]
    pub updated_timestamp: Option<i64>,
}

/// One operation of an attribute PATCH.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AttributeOp {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub operation: &'static str,
}

impl AttributeOp {
    pub fn upsert(id: &str, value: &str) -> Self {
        AttributeOp {
            id: id.to_string(),
            value: Some(value.to_string()),
            operation: "upsert",
        }
    }
    pub fn delete(id: &str) -> Self {
        AttributeOp {
            id: id.to_string(),
            value: None,
            operation: "delete",
        }
    }
}
