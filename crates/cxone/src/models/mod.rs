//! The API's resources as the spec defines them, one type per document. Unknown members
//! are ignored on input, so a newer API does not break an older client.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// ---------------------------------------------------------------- secrets (§3)

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    pub id: String,
    pub name: String,
    pub format: SecretFormat,
    #[serde(default)]
    pub description: Option<String>,
    pub version: u64,
    pub value_sha256: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SecretFormat {
    Raw,
    Jwt,
    Base64,
}

impl std::fmt::Display for SecretFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecretFormat::Raw => "raw",
            SecretFormat::Jwt => "jwt",
            SecretFormat::Base64 => "base64",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    pub data_action_id: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReferenceUpdate {
    Immediate,
    Deferred,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerificationMatrix {
    pub previous_sha256: String,
    pub proposed_sha256: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DataActionStatus {
    Compiled,
    Stale,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DataAction {
    pub id: String,
    pub name: String,
    pub secret_ids: Vec<String>,
    pub status: DataActionStatus,
    #[serde(default)]
    pub compiled_secret_versions: BTreeMap<String, u64>,
}

/// What a recompile led to: compiled, or rejected by the action's test call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recompiled {
    Compiled(DataAction),
    Failed {
        action: Option<DataAction>,
        detail: String,
    },
}

/// What a data action's test said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub ok: bool,
    pub detail: Option<String>,
}

// ---------------------------------------------------------------- contacts (§4)

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub custom_fields: Map<String, Value>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    /// The ETag, as listed with each contact (spec §4) or read from a GET's header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(Option::<Map<String, Value>>::deserialize(d)?.unwrap_or_default())
}

/// One page of a contact listing.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactPage {
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub page_token: Option<String>,
}

/// A merge patch (RFC 7396) of a contact: a field set to `None` is deleted, a field not
/// set is left alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactPatch {
    fields: Map<String, Value>,
    custom: Map<String, Value>,
}

impl ContactPatch {
    pub fn new() -> Self {
        ContactPatch::default()
    }

    /// Sets a top-level field (`firstName`, `lastName`, `email`, `phone`).
    pub fn set(mut self, field: &str, value: Option<&str>) -> Self {
        self.fields.insert(
            field.to_string(),
            value.map_or(Value::Null, |v| Value::String(v.to_string())),
        );
        self
    }

    /// Sets one custom field.
    pub fn set_custom(mut self, name: &str, value: Option<&str>) -> Self {
        self.custom.insert(
            name.to_string(),
            value.map_or(Value::Null, |v| Value::String(v.to_string())),
        );
        self
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.custom.is_empty()
    }

    /// The names of the fields this patch touches (`customFields.x` for custom ones).
    pub fn field_names(&self) -> Vec<String> {
        self.fields
            .keys()
            .cloned()
            .chain(self.custom.keys().map(|k| format!("customFields.{k}")))
            .collect()
    }

    /// True when `contact` already holds every value this patch sets.
    pub fn is_satisfied_by(&self, contact: &Contact) -> bool {
        let top = self.fields.iter().all(|(k, want)| {
            let have = match k.as_str() {
                "firstName" => &contact.first_name,
                "lastName" => &contact.last_name,
                "email" => &contact.email,
                "phone" => &contact.phone,
                _ => return false,
            };
            match want {
                Value::Null => have.is_none(),
                Value::String(w) => have.as_deref() == Some(w.as_str()),
                _ => false,
            }
        });
        top && self.custom.iter().all(|(k, want)| {
            let have = contact.custom_fields.get(k).unwrap_or(&Value::Null);
            have == want
        })
    }

    pub fn to_json(&self) -> Value {
        let mut m = self.fields.clone();
        if !self.custom.is_empty() {
            m.insert("customFields".into(), Value::Object(self.custom.clone()));
        }
        Value::Object(m)
    }
}

// ---------------------------------------------------------------- data stores (§5)

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

// ---------------------------------------------------------------- guests (§6)

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

// ---------------------------------------------------------------- webchat (§7)

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Widget {
    pub id: String,
    pub name: String,
    pub settings: WidgetSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WidgetSettings {
    pub security_policies: SecurityPolicies,
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecurityPolicies {
    pub cors_origins: Vec<String>,
    pub authentication: WidgetAuthentication,
    pub rules: Vec<WidgetRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WidgetAuthentication {
    pub require_token: bool,
    pub token_expiry_minutes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WidgetRule {
    pub id: String,
    pub action: String,
    pub pattern: String,
}

#[derive(Deserialize)]
pub(crate) struct Items<T> {
    pub items: Vec<T>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_patch_is_a_merge_patch() {
        let p = ContactPatch::new()
            .set("email", Some("x"))
            .set("phone", None)
            .set_custom("tier", None);
        assert_eq!(
            p.to_json(),
            serde_json::json!({"email": "x", "phone": null, "customFields": {"tier": null}})
        );
        assert_eq!(p.field_names(), vec!["email", "phone", "customFields.tier"]);
    }
}
