//! Contact edits at the bottom layer: a validated merge patch (RFC 7396) of a stored
//! contact, and the stored contact itself. The PATCH route, the control API and the
//! in-process [`crate::ControlState`] all change contacts through here.

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::{SimState, lock};
use crate::data::{ContactRecord, contact_index};
use crate::problem::{FieldError, Reply};

const LIMITS: &[(&str, usize)] = &[
    ("firstName", 255),
    ("lastName", 255),
    ("email", 255),
    ("phone", 50),
];
const CUSTOM_FIELD_LIMIT: usize = 255;
const CUSTOM_FIELDS_LIMIT: usize = 10_240;

/// Applies a merge patch (RFC 7396) to a contact record, validating every member and
/// limit. Nothing is changed on error.
pub(crate) fn apply_patch(
    c: &ContactRecord,
    patch: &Value,
    path_id: &str,
) -> Result<ContactRecord, Reply> {
    let Some(obj) = patch.as_object() else {
        return Err(Reply::bad_field("body", "a contact patch is a JSON object"));
    };
    let mut next = c.clone();
    let mut errors = Vec::new();
    for (key, value) in obj {
        match key.as_str() {
            "contactId" => {
                if value.as_str() != Some(path_id) {
                    errors.push(FieldError::new(
                        "contactId",
                        format!("must equal the contact id in the path ({path_id})"),
                    ));
                }
            }
            "firstName" | "lastName" | "email" | "phone" => {
                let limit = LIMITS
                    .iter()
                    .find(|(f, _)| f == key)
                    .map(|(_, l)| *l)
                    .unwrap_or(255);
                let slot = match key.as_str() {
                    "firstName" => &mut next.first_name,
                    "lastName" => &mut next.last_name,
                    "email" => &mut next.email,
                    _ => &mut next.phone,
                };
                match value {
                    Value::Null => *slot = None,
                    Value::String(v) if v.chars().count() > limit => errors.push(FieldError::new(
                        key.clone(),
                        format!(
                            "{} characters, more than the {limit} allowed",
                            v.chars().count()
                        ),
                    )),
                    Value::String(v) => *slot = Some(v.clone()),
                    _ => errors.push(FieldError::new(key.clone(), "must be a string or null")),
                }
            }
            "customFields" => patch_custom_fields(&mut next.custom_fields, value, &mut errors),
            "id" | "createdAt" | "updatedAt" | "etag" => {
                errors.push(FieldError::new(key.clone(), "is read-only"));
            }
            other => errors.push(FieldError::new(other, "is not a contact field")),
        }
    }
    if errors.is_empty() {
        let serialized = Value::Object(next.custom_fields.clone())
            .to_string()
            .chars()
            .count();
        if serialized > CUSTOM_FIELDS_LIMIT {
            errors.push(FieldError::new(
                "customFields",
                format!("serialises to {serialized} characters, more than the {CUSTOM_FIELDS_LIMIT} allowed"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(next)
    } else {
        Err(Reply::invalid(
            StatusCode::BAD_REQUEST,
            "Invalid contact patch",
            errors,
        ))
    }
}

/// `customFields` of a patch: null clears them all, a null field removes one, a string
/// sets one within its limit.
fn patch_custom_fields(
    fields: &mut Map<String, Value>,
    value: &Value,
    errors: &mut Vec<FieldError>,
) {
    let patch = match value {
        Value::Null => {
            *fields = Map::new();
            return;
        }
        Value::Object(patch) => patch,
        _ => {
            errors.push(FieldError::new("customFields", "must be an object or null"));
            return;
        }
    };
    for (name, v) in patch {
        let field = format!("customFields.{name}");
        match v {
            Value::Null => {
                fields.remove(name);
            }
            Value::String(x) if x.chars().count() > CUSTOM_FIELD_LIMIT => {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "{} characters, more than the {CUSTOM_FIELD_LIMIT} allowed",
                        x.chars().count()
                    ),
                ))
            }
            Value::String(x) => {
                fields.insert(name.clone(), Value::String(x.clone()));
            }
            _ => errors.push(FieldError::new(field, "must be a string or null")),
        }
    }
}

/// The stored contact with its `etag` member, for the control API.
pub(crate) fn raw_contact(s: &SimState, id: &str) -> Option<Value> {
    let store = lock(&s.contacts);
    let idx = contact_index(id, store.count)?;
    let c = store.get(idx);
    let etag = c.etag(store.seed, idx);
    Some(c.to_json(idx, Some(&etag)))
}

/// Another user's edit: a merge patch with no precondition, for concurrency tests. It is
/// counted apart from API mutations (`edit/…`).
pub(crate) fn edit_contact(s: &SimState, id: &str, patch: &Value) -> Result<String, String> {
    let mut store = lock(&s.contacts);
    let idx = contact_index(id, store.count).ok_or_else(|| format!("no contact {id}"))?;
    let current = store.get(idx);
    let mut next = apply_patch(&current, patch, id).map_err(|r| r.body["detail"].to_string())?;
    next.revision += 1;
    next.updated_at = time::OffsetDateTime::now_utc().unix_timestamp();
    let etag = next.etag(store.seed, idx);
    store.overlay[idx as usize] = Some(Box::new(next));
    drop(store);
    s.mutated("edit", id);
    Ok(etag)
}
