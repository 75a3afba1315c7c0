//! Contacts (spec §4): paged listing in a stable order with an `etag` per contact, GET
//! with `ETag`, and merge-patch PATCH guarded by `If-Match`.

use axum::http::{StatusCode, header};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::{Ctx, json_body, query_pairs, require_if_match};
use crate::data::{ContactRecord, contact_index};
use crate::problem::{FieldError, Reply};
use crate::state::{SimState, lock};

const MAX_PAGE: usize = 1000;
const DEFAULT_PAGE: usize = 100;
/// At most this many contacts are examined for one filtered page; a page may then come
/// back short, with a token to continue (as real APIs do to bound a request's cost).
const MAX_SCAN: u32 = 50_000;

const LIMITS: &[(&str, usize)] = &[
    ("firstName", 255),
    ("lastName", 255),
    ("email", 255),
    ("phone", 50),
];
const CUSTOM_FIELD_LIMIT: usize = 255;
const CUSTOM_FIELDS_LIMIT: usize = 10_240;

fn encode_token(next: u32) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("after:{}", next - 1))
}

fn decode_token(t: &str) -> Option<u32> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    s.strip_prefix("after:")?
        .parse::<u32>()
        .ok()
        .map(|after| after + 1)
}

pub(crate) fn list(s: &SimState, ctx: &Ctx<'_>) -> Reply {
    let mut page_size = DEFAULT_PAGE;
    let mut start = 1u32;
    let mut before: Option<i64> = None;
    for (k, v) in query_pairs(ctx.uri) {
        match k.as_str() {
            "pageSize" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => page_size = n,
                _ => {
                    return Reply::bad_field(
                        "pageSize",
                        format!("{v:?} is not an integer from 1 to {MAX_PAGE}"),
                    );
                }
            },
            "pageToken" => match decode_token(&v) {
                Some(n) => start = n,
                None => return Reply::bad_field("pageToken", "not a token this API issued"),
            },
            "updatedBefore" => {
                match time::OffsetDateTime::parse(
                    &v,
                    &time::format_description::well_known::Rfc3339,
                ) {
                    Ok(t) => before = Some(t.unix_timestamp()),
                    Err(e) => {
                        return Reply::bad_field(
                            "updatedBefore",
                            format!("{v:?} is not an RFC 3339 timestamp: {e}"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    let store = lock(&s.contacts);
    let mut out = Vec::with_capacity(page_size.min(store.count as usize));
    let mut i = start.max(1);
    let mut scanned = 0u32;
    while i <= store.count && out.len() < page_size && scanned < MAX_SCAN {
        let c = store.get(i);
        if before.is_none_or(|b| c.updated_at < b) {
            let etag = c.etag(store.seed, i);
            out.push(c.to_json(i, Some(&etag)));
        }
        i += 1;
        scanned += 1;
    }
    let token = (i <= store.count).then(|| encode_token(i));
    Reply::ok(json!({"contacts": out, "pageToken": token}))
}

fn find(s: &SimState, id: &str) -> Result<u32, Reply> {
    let count = lock(&s.contacts).count;
    contact_index(id, count).ok_or_else(|| Reply::not_found(format!("no contact {id}")))
}

pub(crate) fn get(s: &SimState, id: &str) -> Reply {
    let idx = match find(s, id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let store = lock(&s.contacts);
    let c = store.get(idx);
    let etag = c.etag(store.seed, idx);
    Reply::ok(c.to_json(idx, None)).with_header(header::ETAG, etag)
}

/// Applies a merge patch (RFC 7396) to a contact record, validating every member and
/// limit. Nothing is changed on error.
fn apply_patch(c: &ContactRecord, patch: &Value, path_id: &str) -> Result<ContactRecord, Reply> {
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
            "customFields" => {
                match value {
                    Value::Null => next.custom_fields = Map::new(),
                    Value::Object(fields) => {
                        for (name, v) in fields {
                            let field = format!("customFields.{name}");
                            match v {
                            Value::Null => {
                                next.custom_fields.remove(name);
                            }
                            Value::String(x) if x.chars().count() > CUSTOM_FIELD_LIMIT => {
                                errors.push(FieldError::new(
                                    field,
                                    format!("{} characters, more than the {CUSTOM_FIELD_LIMIT} allowed", x.chars().count()),
                                ))
                            }
                            Value::String(x) => {
                                next.custom_fields.insert(name.clone(), Value::String(x.clone()));
                            }
                            _ => errors.push(FieldError::new(field, "must be a string or null")),
                        }
                        }
                    }
                    _ => errors.push(FieldError::new("customFields", "must be an object or null")),
                }
            }
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

fn same_content(a: &ContactRecord, b: &ContactRecord) -> bool {
    a.first_name == b.first_name
        && a.last_name == b.last_name
        && a.email == b.email
        && a.phone == b.phone
        && a.custom_fields == b.custom_fields
}

pub(crate) fn patch(s: &SimState, id: &str, ctx: &Ctx<'_>) -> Reply {
    let idx = match find(s, id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let race = lock(&s.race_edits).remove(id);
    if let Some(edit) = race
        && let Err(e) = edit_contact(s, id, &edit)
    {
        tracing::warn!("race edit of {id} failed: {e}");
    }
    let mut store = lock(&s.contacts);
    let current = store.get(idx);
    let etag = current.etag(store.seed, idx);
    if let Some(r) = require_if_match(ctx.headers, &etag) {
        return r;
    }
    let body = match json_body(ctx) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut next = match apply_patch(&current, &body, id) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if same_content(&current, &next) {
        return Reply::ok(current.to_json(idx, None)).with_header(header::ETAG, etag);
    }
    next.revision += 1;
    next.updated_at = time::OffsetDateTime::now_utc().unix_timestamp();
    let new_etag = next.etag(store.seed, idx);
    let out = next.to_json(idx, None);
    store.overlay[idx as usize] = Some(Box::new(next));
    drop(store);
    s.mutated("contact", id);
    Reply::ok(out).with_header(header::ETAG, new_etag)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip() {
        assert_eq!(decode_token(&encode_token(501)), Some(501));
        assert_eq!(decode_token("garbage!"), None);
    }
}
