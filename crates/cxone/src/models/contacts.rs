//! Contacts, their pages and merge patches (spec §4).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A contact record (spec §4).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// The contact's id.
    pub id: String,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
    /// Phone number.
    #[serde(default)]
    pub phone: Option<String>,
    /// Custom fields by name (a `null` value is kept as `None`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub custom_fields: Map<String, Value>,
    /// When it was created (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
    /// When it last changed (RFC 3339).
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
    /// The contacts of this page.
    pub contacts: Vec<Contact>,
    /// The token of the next page; `None` after the last.
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
    /// An empty patch.
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

    /// Whether the patch changes nothing.
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

    /// The patch as the JSON merge-patch document sent.
    pub fn to_json(&self) -> Value {
        let mut m = self.fields.clone();
        if !self.custom.is_empty() {
            m.insert("customFields".into(), Value::Object(self.custom.clone()));
        }
        Value::Object(m)
    }
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
