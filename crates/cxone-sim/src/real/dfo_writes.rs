//! DFO's erasure routes (spec-real §4.3f, §4.5d–e): a message's content and its author's
//! name removed (2xx, the first `removedAt` kept), a customer's custom field deleted.
//! What removed content looks like is inferred (§10): an empty text, no attachments, and
//! no author identity once the name is removed.

// A check that answers early returns its response as the error: one per request.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{dfo_write, error, gate};
use crate::data::rfc3339;
use crate::state::{SimState, lock};

/// Applies recorded removals to a message as served.
pub(super) fn apply_removals(m: &mut Value, removed: Option<&Value>) {
    let Some(r) = removed else { return };
    if let Some(c) = r.get("contentRemoved") {
        m["messageContent"]["payload"]["text"] = json!("");
        m["attachments"] = json!([]);
        m["contentRemoved"] = c.clone();
    }
    if let Some(a) = r.get("authorNameRemoved") {
        m["authorEndUserIdentity"] = Value::Null;
        m["authorNameRemoved"] = a.clone();
    }
}

/// Whether message `id` (`{case}-m{i}`) exists.
fn message_exists(cases: &[Value], id: &str) -> bool {
    let Some((case, i)) = id.rsplit_once("-m") else {
        return false;
    };
    let Ok(i) = i.parse::<u64>() else {
        return false;
    };
    i < crate::realdata::messages_in(case) && cases.iter().any(|c| c["id"] == case)
}

fn remove(s: &SimState, headers: &HeaderMap, id: &str, body: &[u8], field: &str) -> Response {
    if let Err(r) = gate(s, headers) {
        return r;
    }
    let v: Value = serde_json::from_slice(body).unwrap_or(json!({}));
    let reason = v["reason"].as_str().unwrap_or("other");
    if !matches!(reason, "GDPR" | "TTL" | "other") {
        return error(StatusCode::BAD_REQUEST, "reason: GDPR, TTL or other");
    }
    if let Err(r) = dfo_write(s, id.rsplit_once("-m").map(|(case, _)| case)) {
        return r;
    }
    let mut t = lock(&s.real.tenant);
    if !message_exists(&t.cases, id) {
        return error(StatusCode::NOT_FOUND, &format!("no message {id}"));
    }
    let now = rfc3339(time::OffsetDateTime::now_utc());
    let entry = t.removed.entry(id.to_string()).or_insert_with(|| json!({}));
    // The first removal's time is kept; a repeat is accepted.
    if entry.get(field).is_none() {
        entry[field] = json!({"reason": reason, "removedAt": now});
    }
    drop(t);
    s.mutated("message", id);
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn content_removal(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    remove(&s, &headers, &id, &body, "contentRemoved")
}

pub(super) async fn author_name_removal(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    remove(&s, &headers, &id, &body, "authorNameRemoved")
}

/// `PUT /contacts/{n}/custom-fields` (§4.4c): upserts the listed case fields
/// (`order_number` is the one defined); metered against the case's own budget.
pub(super) async fn set_case_fields(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = gate(&s, &headers) {
        return r;
    }
    let Ok(Value::Array(fields)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body is an array of {ident, value}",
        );
    };
    if fields
        .iter()
        .any(|f| f["ident"] != "order_number" || !f["value"].is_string())
    {
        return error(
            StatusCode::BAD_REQUEST,
            "unknown case custom field, or a value that is not text",
        );
    }
    if let Err(r) = dfo_write(&s, Some(&id)) {
        return r;
    }
    let mut t = lock(&s.real.tenant);
    let Some(c) = t.cases.iter_mut().find(|c| c["id"] == id.as_str()) else {
        return error(StatusCode::NOT_FOUND, &format!("no case {id}"));
    };
    upsert(&mut c["customFields"], fields);
    drop(t);
    s.mutated("case", &id);
    StatusCode::NO_CONTENT.into_response()
}

/// `DELETE /contacts/{n}/custom-fields/{ident}` (§4.4d).
pub(super) async fn delete_case_field(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path((id, ident)): Path<(String, String)>,
) -> Response {
    if let Err(r) = gate(&s, &headers).and_then(|()| dfo_write(&s, Some(&id))) {
        return r;
    }
    let mut t = lock(&s.real.tenant);
    let Some(c) = t.cases.iter_mut().find(|c| c["id"] == id.as_str()) else {
        return error(StatusCode::NOT_FOUND, &format!("no case {id}"));
    };
    if let Some(fields) = c["customFields"].as_array_mut() {
        fields.retain(|f| f["ident"] != ident.as_str());
    }
    drop(t);
    s.mutated("case", &id);
    StatusCode::NO_CONTENT.into_response()
}

/// `DELETE /customers/{id}/notes/{noteId}` (§4.3h).
pub(super) async fn delete_note(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path((id, note)): Path<(String, String)>,
) -> Response {
    if let Err(r) = gate(&s, &headers).and_then(|()| dfo_write(&s, None)) {
        return r;
    }
    let mut t = lock(&s.real.tenant);
    let Some(notes) = t.notes.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, &format!("no note {note} of {id}"));
    };
    let before = notes.len();
    notes.retain(|n| n["id"] != note.as_str());
    if notes.len() == before {
        return error(StatusCode::NOT_FOUND, &format!("no note {note} of {id}"));
    }
    drop(t);
    s.mutated("customer", &id);
    StatusCode::NO_CONTENT.into_response()
}

/// Sets each of `fields` in the `customFields` array `have`, adding the missing ones.
fn upsert(have: &mut Value, fields: Vec<Value>) {
    if !have.is_array() {
        *have = json!([]);
    }
    if let Some(have) = have.as_array_mut() {
        for f in fields {
            match have.iter_mut().find(|h| h["ident"] == f["ident"]) {
                Some(h) => h["value"] = f["value"].clone(),
                None => have.push(json!({"ident": f["ident"], "value": f["value"]})),
            }
        }
    }
}

/// `PUT /customers/custom-field-definitions` (§4.3i): creates the definition, or
/// updates the one with the same `ident`; `ident`, `label` and `type` (`text`, `email`,
/// `list`) are required.
pub(super) async fn put_field_definition(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = gate(&s, &headers) {
        return r;
    }
    let Ok(mut d @ Value::Object(_)) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is a definition object");
    };
    let ident = d["ident"].as_str().unwrap_or("").to_string();
    if ident.is_empty() || !d["label"].is_string() {
        return error(StatusCode::BAD_REQUEST, "ident and label are required");
    }
    if !matches!(d["type"].as_str(), Some("text" | "email" | "list")) {
        return error(StatusCode::BAD_REQUEST, "type: text, email or list");
    }
    if let Err(r) = dfo_write(&s, None) {
        return r;
    }
    for flag in [
        "isRequired",
        "isEditable",
        "isVisibleInRightPanel",
        "isVisibleInCustomerCard",
    ] {
        if !d[flag].is_boolean() {
            d[flag] = json!(false);
        }
    }
    let mut t = lock(&s.real.tenant);
    if let Some(defs) = t.field_definitions.as_array_mut() {
        match defs.iter_mut().find(|x| x["ident"] == ident.as_str()) {
            Some(x) => *x = d,
            None => defs.push(d),
        }
    }
    drop(t);
    s.mutated("customer-field-definition", &ident);
    StatusCode::NO_CONTENT.into_response()
}

/// `PUT /customers/{id}/custom-fields` (§4.3e): upserts the listed idents; an ident the
/// definitions do not know, or an entry without a text value, is a 400 and nothing is
/// changed.
pub(super) async fn set_customer_fields(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = gate(&s, &headers) {
        return r;
    }
    let Ok(Value::Array(fields)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body is an array of {ident, value}",
        );
    };
    if let Err(r) = dfo_write(&s, None) {
        return r;
    }
    let mut t = lock(&s.real.tenant);
    let known = |ident: &str| {
        t.field_definitions
            .as_array()
            .is_some_and(|d| d.iter().any(|f| f["ident"] == ident))
    };
    for f in &fields {
        let (Some(ident), Some(_)) = (f["ident"].as_str(), f["value"].as_str()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "each field is {ident, value} (text)",
            );
        };
        if !known(ident) {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("unknown custom field {ident}"),
            );
        }
    }
    let Some(c) = t.customers.iter_mut().find(|c| c["id"] == id.as_str()) else {
        return error(StatusCode::NOT_FOUND, &format!("no customer {id}"));
    };
    upsert(&mut c["customFields"], fields);
    drop(t);
    s.mutated("customer", &id);
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn delete_customer_field(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path((id, ident)): Path<(String, String)>,
) -> Response {
    if let Err(r) = gate(&s, &headers).and_then(|()| dfo_write(&s, None)) {
        return r;
    }
    let mut t = lock(&s.real.tenant);
    let Some(c) = t.customers.iter_mut().find(|c| c["id"] == id.as_str()) else {
        return error(StatusCode::NOT_FOUND, &format!("no customer {id}"));
    };
    if let Some(fields) = c["customFields"].as_array_mut() {
        fields.retain(|f| f["ident"] != ident.as_str());
    }
    drop(t);
    s.mutated("customer", &id);
    StatusCode::NO_CONTENT.into_response()
}
