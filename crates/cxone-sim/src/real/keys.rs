//! The access-key lifecycle on UserHub (spec-real §3): the secret only in the create's
//! answer, one key read without it, activate or deactivate by query parameter, delete.
//! Inactive and deleted keys are refused at the token endpoint (`auth.rs`).

// A check that answers early returns its response as the error: one per request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{error, gate};
use crate::data::access_key_text;
use crate::realdata::Key;
use crate::state::{SimState, lock};

/// The most keys one user may hold (the spec does not say; CXone's UI shows a few).
const MAX_KEYS_PER_USER: usize = 10;

pub(super) async fn create(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = gate(&s, &headers) {
        return r;
    }
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("body: {e}")),
        }
    };
    let mut t = lock(&s.real.tenant);
    // Without a userId, the caller's own user (the demo key's).
    let user = match v["userId"].as_str() {
        Some(u) => u.to_string(),
        None => t.keys[0].user_id.clone(),
    };
    let Some(agent) = t
        .keys
        .iter()
        .find(|k| k.user_id == user)
        .map(|k| k.agent_id)
    else {
        return error(StatusCode::NOT_FOUND, &format!("no user {user}"));
    };
    if t.keys.iter().filter(|k| k.user_id == user).count() >= MAX_KEYS_PER_USER {
        return error(
            StatusCode::CONFLICT,
            &format!("user {user} has {MAX_KEYS_PER_USER} keys already"),
        );
    }
    let n = s.random_token();
    let key = Key {
        id: access_key_text(s.seed, &format!("created-id-{n}")),
        secret: access_key_text(s.seed, &format!("created-secret-{n}")),
        user_id: user,
        agent_id: agent,
        is_active: true,
        last_used: None,
        created: true,
    };
    let mut out = key.to_json(&t.tenant_id, true);
    out["accessKeySecret"] = json!(key.secret);
    t.keys.push(key);
    drop(t);
    s.mutated("accesskey", out["accessKeyId"].as_str().unwrap_or_default());
    (StatusCode::CREATED, axum::Json(json!({"resultSet": out}))).into_response()
}

pub(super) async fn one(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = gate(&s, &headers) {
        return r;
    }
    let t = lock(&s.real.tenant);
    match t.keys.iter().find(|k| k.id == id) {
        // The schema has no accessKeyId here, and the secret is never shown again.
        Some(k) => (
            StatusCode::OK,
            axum::Json(json!({"resultSet": k.to_json(&t.tenant_id, false)})),
        )
            .into_response(),
        None => error(StatusCode::NOT_FOUND, "no such access key"),
    }
}

pub(super) async fn patch(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Err(r) = gate(&s, &headers) {
        return r;
    }
    let Some(id) = q.get("accessKeyId") else {
        return error(StatusCode::BAD_REQUEST, "accessKeyId is required");
    };
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(active) = v["isActive"].as_bool() else {
        return error(StatusCode::BAD_REQUEST, "isActive: required, true or false");
    };
    let mut t = lock(&s.real.tenant);
    match t.keys.iter_mut().find(|k| &k.id == id) {
        Some(k) => {
            k.is_active = active;
            drop(t);
            s.mutated("accesskey", id);
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "no such access key"),
    }
}

pub(super) async fn delete(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = gate(&s, &headers) {
        return r;
    }
    let mut t = lock(&s.real.tenant);
    let before = t.keys.len();
    t.keys.retain(|k| k.id != id);
    if t.keys.len() == before {
        return error(StatusCode::NOT_FOUND, "no such access key");
    }
    drop(t);
    s.mutated("accesskey", &id);
    StatusCode::NO_CONTENT.into_response()
}
