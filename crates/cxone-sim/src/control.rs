//! The control API under `/_control/`, for tests and demos: read what the server saw,
//! change faults and limits at run time, make a data action reject a secret, revoke
//! tokens, and edit a contact as another user would. It needs no token and is never rate
//! limited or faulted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::ratelimit::Bucket;
use crate::state::{DataAction, Secret, SimState, contacts, lock, widgets};

pub(crate) fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/state", get(state))
        .route("/mutations", get(mutations))
        .route("/config", put(config).get(get_config))
        .route("/reject-secret", post(reject_secret))
        .route("/revoke-tokens", post(revoke_tokens))
        .route("/contacts/{id}", get(contact).patch(edit_contact))
        .route("/contacts/{id}/race-edit", post(race_edit))
        .route("/guests/{id}", get(guest))
        .route("/kms-callbacks", get(kms_callbacks))
        .route("/erasures", get(erasures))
        .route("/widgets/{id}", get(widget).patch(edit_widget))
        .route("/widgets/{id}/race-edit", post(race_edit_widget))
}

fn error(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = json!({"type": "about:blank", "title": "Control API error", "status": status.as_u16(), "detail": detail.into()});
    let mut r = (status, Json(body)).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/problem+json"),
    );
    r
}

pub(crate) fn snapshot(s: &SimState) -> Value {
    let c = &s.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mutations = lock(&s.mutations);
    let mut per_kind: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (k, v) in mutations.iter() {
        let kind = k.split('/').next().unwrap_or_default().to_string();
        let e = per_kind.entry(kind).or_insert((0, 0));
        e.0 += 1;
        e.1 += v;
    }
    let mutation_summary: serde_json::Map<String, Value> = per_kind
        .into_iter()
        .map(|(k, (resources, total))| (k, json!({"resources": resources, "total": total})))
        .collect();
    drop(mutations);
    let integration = lock(&s.integration);
    let secrets: Vec<Value> = integration.secrets.values().map(|x| x.to_json()).collect();
    let actions: Vec<Value> = integration.actions.values().map(|x| x.to_json()).collect();
    drop(integration);
    let (active_tokens, refresh_tokens) = {
        let a = lock(&s.auth);
        (a.tokens.len(), a.refresh.len())
    };
    json!({
        "seed": s.seed,
        "uptimeSecs": s.started.elapsed().as_secs_f64(),
        "config": s.runtime(),
        "counts": {
            "contacts": lock(&s.contacts).count,
            "secrets": secrets.len(),
            "dataActions": actions.len(),
            "tables": 1,
            "guests": lock(&s.guests).guests.len(),
            "widgets": lock(&s.widgets).len(),
        },
        "counters": {
            "requests": load(&c.requests),
            "tokenRequests": load(&c.token_requests),
            "tokenRequestsByGrant": *lock(&s.grants),
            "tokensIssued": load(&c.tokens_issued),
            "activeTokens": active_tokens,
            "refreshTokens": refresh_tokens,
            "unauthorized": load(&c.unauthorized),
            "rateLimited": load(&c.rate_limited),
            "faults": load(&c.faults),
            "resets": load(&c.resets),
            "idempotentReplays": load(&c.idempotent_replays),
            "routes": *lock(&s.route_hits),
        },
        "mutations": mutation_summary,
        "secrets": secrets,
        "dataActions": actions,
        "keyVersion": lock(&s.datastore).key_version,
        "real": crate::real::snapshot(s),
    })
}

async fn state(State(s): State<Arc<SimState>>) -> Json<Value> {
    Json(snapshot(&s))
}

async fn mutations(
    State(s): State<Arc<SimState>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Json<Value> {
    let prefix = q.get("prefix").cloned().unwrap_or_default();
    let m: BTreeMap<String, u64> = lock(&s.mutations)
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    Json(json!(m))
}

async fn get_config(State(s): State<Arc<SimState>>) -> Json<Value> {
    Json(json!(s.runtime()))
}

async fn config(State(s): State<Arc<SimState>>, Json(change): Json<Value>) -> Response {
    match configure(&s, &change) {
        Ok(v) => Json(v).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// Applies `change` (any subset of the run-time settings) after checking all of it.
fn share(k: &str, v: &Value) -> Result<f64, String> {
    match v.as_f64() {
        Some(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("{k}: a share between 0 and 1")),
    }
}

fn optional_rate(k: &str, v: &Value) -> Result<Option<u32>, String> {
    if v.is_null() {
        return Ok(None);
    }
    match v.as_u64() {
        Some(n) if n >= 1 && n <= u64::from(u32::MAX) => Ok(Some(n as u32)),
        _ => Err(format!(
            "{k}: requests per second (at least 1), or null for no limit"
        )),
    }
}

/// `failNext`: the statuses the next requests fail with.
fn statuses(v: &Value) -> Result<Vec<u16>, String> {
    let list = v
        .as_array()
        .ok_or("failNext: a list of statuses (500, 502, 503, 504, 429)")?;
    let mut out = Vec::new();
    for s in list {
        match s.as_u64() {
            Some(n @ (429 | 500 | 502 | 503 | 504)) => out.push(n as u16),
            _ => {
                return Err(format!(
                    "failNext: {s} is not one of 429, 500, 502, 503, 504"
                ));
            }
        }
    }
    Ok(out)
}

pub(crate) fn configure(s: &SimState, change: &Value) -> Result<Value, String> {
    let Some(obj) = change.as_object() else {
        return Err("the body is an object of settings".into());
    };
    let mut next = s.runtime();
    let mut real = Vec::new();
    let mut fail_next = None;
    let mut reset_next = None;
    for (k, v) in obj {
        match k.as_str() {
            "failNext" => fail_next = Some(statuses(v)?),
            "resetNext" => {
                reset_next = Some(v.as_u64().ok_or("resetNext: how many requests to reset")? as u32)
            }
            "faultRate" => next.fault_rate = share(k, v)?,
            "resetRate" => next.reset_rate = share(k, v)?,
            "faultRetryAfter" => {
                next.fault_retry_after = if v.is_null() {
                    None
                } else {
                    Some(
                        v.as_u64()
                            .ok_or("faultRetryAfter: whole seconds, or null")?,
                    )
                }
            }
            "latencyMs" => {
                next.latency_ms = v
                    .as_u64()
                    .filter(|ms| *ms <= 60_000)
                    .ok_or("latencyMs: 0 to 60000")?
            }
            "tokenTtlSecs" => {
                next.token_ttl_secs = v
                    .as_u64()
                    .filter(|t| *t >= 1)
                    .ok_or("tokenTtlSecs: at least 1")?
            }
            "rateLimit" => next.rate_limit = optional_rate(k, v)?,
            "webchatRateLimit" => next.webchat_rate_limit = optional_rate(k, v)?,
            other if crate::real::configure(s, other, v, false)? => real.push((other, v)),
            other => {
                return Err(format!(
                    "unknown setting {other:?}; known: faultRate, resetRate, faultRetryAfter, latencyMs, tokenTtlSecs, rateLimit, webchatRateLimit, failNext, resetNext, dfoBudgetScale, dfoThrottleShare, refuseCreatedAccessKeys, erasureDelayMs, closeAllCases, policyRunMs, evidenceRedirect, evidenceUrl"
                ));
            }
        }
    }
    if next.fault_rate + next.reset_rate > 1.0 {
        return Err("faultRate + resetRate exceed 1".into());
    }
    for (k, v) in real {
        crate::real::configure(s, k, v, true)?;
    }
    if let Some(f) = fail_next {
        lock(&s.fail_next).extend(f);
    }
    if let Some(n) = reset_next {
        *lock(&s.reset_next) = n;
    }
    let old = s.runtime();
    if old.rate_limit != next.rate_limit {
        *lock(&s.bucket) = next.rate_limit.map(Bucket::new);
    }
    if old.webchat_rate_limit != next.webchat_rate_limit {
        *lock(&s.webchat_bucket) = next.webchat_rate_limit.map(Bucket::new);
    }
    *s.runtime.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
    Ok(json!(next))
}

async fn reject_secret(State(s): State<Arc<SimState>>, Json(body): Json<Value>) -> Response {
    let Some(sha) = body.get("sha256").and_then(Value::as_str) else {
        return error(
            StatusCode::BAD_REQUEST,
            "sha256: the SHA-256 hex of the value to reject is required",
        );
    };
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return error(StatusCode::BAD_REQUEST, "sha256: 64 hex characters");
    }
    let action = body.get("dataActionId").and_then(Value::as_str);
    if let Some(a) = action
        && !lock(&s.integration).actions.contains_key(a)
    {
        return error(
            StatusCode::NOT_FOUND,
            format!("dataActionId: no data action {a}"),
        );
    }
    lock(&s.integration)
        .rejections
        .insert((action.unwrap_or("*").to_string(), sha.to_ascii_lowercase()));
    Json(json!({"rejecting": {"dataActionId": action.unwrap_or("*"), "sha256": sha.to_ascii_lowercase()}})).into_response()
}

pub(crate) fn revoke(s: &SimState) -> usize {
    let mut a = lock(&s.auth);
    let n = a.tokens.len() + a.refresh.len();
    a.tokens.clear();
    a.refresh.clear();
    n
}

async fn revoke_tokens(State(s): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({"revoked": revoke(&s)}))
}

async fn contact(State(s): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    match contacts::raw_contact(&s, &id) {
        Some(c) => Json(c).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no contact {id}")),
    }
}

async fn edit_contact(
    State(s): State<Arc<SimState>>,
    Path(id): Path<String>,
    Json(patch): Json<Value>,
) -> Response {
    match contacts::edit_contact(&s, &id, &patch) {
        Ok(etag) => Json(json!({"etag": etag})).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// Another user's edit applied just before the next PATCH of this contact is checked.
async fn race_edit(
    State(s): State<Arc<SimState>>,
    Path(id): Path<String>,
    Json(patch): Json<Value>,
) -> Response {
    if contacts::raw_contact(&s, &id).is_none() {
        return error(StatusCode::NOT_FOUND, format!("no contact {id}"));
    }
    if !patch.is_object() {
        return error(
            StatusCode::BAD_REQUEST,
            "the body is a merge patch (a JSON object)",
        );
    }
    lock(&s.race_edits).insert(id.clone(), patch);
    Json(json!({"armed": id})).into_response()
}

async fn widget(State(s): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    match lock(&s.widgets).get(&id) {
        Some(w) => Json(w.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no widget {id}")),
    }
}

/// Another user's edit of a widget, now (a JSON merge patch).
async fn edit_widget(
    State(s): State<Arc<SimState>>,
    Path(id): Path<String>,
    Json(patch): Json<Value>,
) -> Response {
    match widgets::edit(&s, &id, &patch) {
        Ok(w) => Json(w).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}

/// Another user's edit of a widget applied just before its next PUT is checked.
async fn race_edit_widget(
    State(s): State<Arc<SimState>>,
    Path(id): Path<String>,
    Json(patch): Json<Value>,
) -> Response {
    if !lock(&s.widgets).contains_key(&id) {
        return error(StatusCode::NOT_FOUND, format!("no widget {id}"));
    }
    lock(&s.race_edits).insert(format!("widget:{id}"), patch);
    Json(json!({"armed": id})).into_response()
}

async fn guest(State(s): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    match lock(&s.guests).guests.get(&id) {
        Some(a) => Json(json!(a)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no guest {id}")),
    }
}

async fn erasures(State(s): State<Arc<SimState>>) -> Json<Value> {
    Json(json!(*lock(&s.erasures)))
}

async fn kms_callbacks(State(s): State<Arc<SimState>>) -> Json<Value> {
    Json(json!(*lock(&s.kms_callbacks)))
}

/// In-process access to the control API: what `/_control/…` offers over HTTP, for tests
/// that hold a [`crate::SimHandle`].
#[derive(Clone)]
pub struct ControlState {
    state: Arc<SimState>,
}

impl ControlState {
    pub(crate) fn new(state: Arc<SimState>) -> Self {
        ControlState { state }
    }

    /// Everything `GET /_control/state` reports.
    pub fn state(&self) -> Value {
        snapshot(&self.state)
    }

    /// Real changes per resource (`contact/c-0000001`, `secret/…`, `guest/…`), for the
    /// resources whose key starts with `prefix`.
    pub fn mutations(&self, prefix: &str) -> BTreeMap<String, u64> {
        lock(&self.state.mutations)
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Requests that reached one route, named as `"PATCH /api/v1/contacts/{id}"`.
    pub fn route_hits(&self, route: &str) -> u64 {
        lock(&self.state.route_hits)
            .get(route)
            .copied()
            .unwrap_or(0)
    }

    /// Token requests by grant type (`client_credentials`, `password`, `refresh_token`).
    pub fn token_requests(&self, grant: &str) -> u64 {
        lock(&self.state.grants).get(grant).copied().unwrap_or(0)
    }

    /// All token requests, whatever the grant or outcome.
    pub fn token_requests_total(&self) -> u64 {
        self.state.counters.token_requests.load(Ordering::Relaxed)
    }

    /// Applies a change to the run-time settings, as `PUT /_control/config` does.
    pub fn configure(&self, change: Value) -> Result<Value, String> {
        configure(&self.state, &change)
    }

    /// Makes data action `action` (or every action, with `None`) reject a secret value,
    /// given by its SHA-256 hex.
    pub fn reject_secret(&self, action: Option<&str>, sha256_hex: &str) {
        lock(&self.state.integration).rejections.insert((
            action.unwrap_or("*").to_string(),
            sha256_hex.to_ascii_lowercase(),
        ));
    }

    /// Revokes every issued access and refresh token.
    pub fn revoke_tokens(&self) -> usize {
        revoke(&self.state)
    }

    /// A contact as stored, with its current ETag, bypassing auth, limits and faults.
    pub fn contact(&self, id: &str) -> Option<Value> {
        contacts::raw_contact(&self.state, id)
    }

    /// Applies a merge patch to a contact as another user would, bypassing If-Match:
    /// the way a test makes a concurrent edit. Returns the new ETag.
    pub fn edit_contact(&self, id: &str, patch: Value) -> Result<String, String> {
        contacts::edit_contact(&self.state, id, &patch)
    }

    /// Makes another user edit contact `id` with `patch` just before the next PATCH of
    /// that contact is checked: that PATCH then meets a changed ETag (412).
    pub fn race_edit(&self, id: &str, patch: Value) {
        lock(&self.state.race_edits).insert(id.to_string(), patch);
    }

    /// A widget as stored, or `None` for an unknown one.
    pub fn widget(&self, id: &str) -> Option<Value> {
        lock(&self.state.widgets).get(id).cloned()
    }

    /// Another user edits widget `id` now with a JSON merge patch (its version bumps).
    pub fn edit_widget(&self, id: &str, patch: Value) -> Result<Value, String> {
        widgets::edit(&self.state, id, &patch)
    }

    /// Makes another user edit widget `id` with `patch` just before its next PUT is
    /// checked: that PUT then meets a changed ETag (412).
    pub fn race_edit_widget(&self, id: &str, patch: Value) {
        lock(&self.state.race_edits).insert(format!("widget:{id}"), patch);
    }

    /// A guest's attributes, or `None` for an unknown guest.
    pub fn guest_attributes(&self, guest: &str) -> Option<Value> {
        lock(&self.state.guests).guests.get(guest).map(|a| json!(a))
    }

    /// A secret as stored (with its hash and version) or a data action.
    pub fn secret(&self, id: &str) -> Option<Value> {
        lock(&self.state.integration)
            .secrets
            .get(id)
            .map(Secret::to_json)
    }

    /// A data action as stored (its secrets and compiled versions), or `None`.
    pub fn data_action(&self, id: &str) -> Option<Value> {
        lock(&self.state.integration)
            .actions
            .get(id)
            .map(DataAction::to_json)
    }

    /// The GDPR erasure requests received (spec §9), in order.
    pub fn erasures(&self) -> Vec<Value> {
        lock(&self.state.erasures).clone()
    }

    /// The KMS callbacks the emulator made after column encryption.
    pub fn kms_callbacks(&self) -> Vec<Value> {
        lock(&self.state.kms_callbacks).clone()
    }
}
