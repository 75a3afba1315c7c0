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
use crate::state::{SimState, lock};

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
pub(crate) fn configure(s: &SimState, change: &Value) -> Result<Value, String> {
    let Some(obj) = change.as_object() else {
        return Err("the body is an object of settings".into());
    };
    let mut next = s.runtime();
    let share = |k: &str, v: &Value| -> Result<f64, String> {
        match v.as_f64() {
            Some(x) if (0.0..=1.0).contains(&x) => Ok(x),
            _ => Err(format!("{k}: a share between 0 and 1")),
        }
    };
    let optional_rate = |k: &str, v: &Value| -> Result<Option<u32>, String> {
        if v.is_null() {
            return Ok(None);
        }
        match v.as_u64() {
            Some(n) if n >= 1 && n <= u64::from(u32::MAX) => Ok(Some(n as u32)),
            _ => Err(format!(
                "{k}: requests per second (at least 1), or null for no limit"
            )),
        }
    };
    let mut fail_next = None;
    let mut reset_next = None;
    for (k, v) in obj {
        match k.as_str() {
            "failNext" => {
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
                fail_next = Some(out);
            }
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
            other => {
                return Err(format!(
                    "unknown setting {other:?}; known: faultRate, resetRate, faultRetryAfter, latencyMs, tokenTtlSecs, rateLimit, webchatRateLimit, failNext, resetNext"
                ));
            }
        }
    }
    if next.fault_rate + next.reset_rate > 1.0 {
        return Err("faultRate + resetRate exceed 1".into());
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
    match crate::routes::contacts::raw_contact(&s, &id) {
        Some(c) => Json(c).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no contact {id}")),
    }
}

async fn edit_contact(
    State(s): State<Arc<SimState>>,
    Path(id): Path<String>,
    Json(patch): Json<Value>,
) -> Response {
    match crate::routes::contacts::edit_contact(&s, &id, &patch) {
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
    if crate::routes::contacts::raw_contact(&s, &id).is_none() {
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

async fn guest(State(s): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    match lock(&s.guests).guests.get(&id) {
        Some(a) => Json(json!(a)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no guest {id}")),
    }
}

async fn kms_callbacks(State(s): State<Arc<SimState>>) -> Json<Value> {
    Json(json!(*lock(&s.kms_callbacks)))
}
