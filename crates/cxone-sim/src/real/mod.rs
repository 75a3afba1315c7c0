//! CXone's published API (`spec/cxone-real.md`), served beside the tutorial surface on
//! the same port under three prefixes that stand for its three hosts:
//!
//! - `/cxone` — the global issuer: both `.well-known` documents, `/auth/token`,
//!   `/auth/jwks` (§2);
//! - `/cxone-api` — the tenant's `api_endpoint`: DFO (`/dfo/3.0`), data policies, ACD
//!   (`/inContactAPI/services/vNN.0`) (§4, §6, §7);
//! - `/cxone-uh` — UserHub: access keys and the access-key token route (§2.5, §3).
//!
//! Its tokens are its own: a tutorial token is refused here and a real one on the
//! tutorial routes, and each such attempt is counted. DFO reads are throttled to the
//! published budgets (scaled by `dfoBudgetScale`) with a 429 and no `Retry-After`
//! (§4.1, §10), and a share of them can be refused the same way on purpose
//! (`dfoThrottleShare`).

// A check that answers early returns its response as the error: one per request.
#![allow(clippy::result_large_err)]

mod api;
mod auth;
mod dfo_writes;
mod keys;
mod policies;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::state::{SimState, lock};

/// The issuer's path below the emulator's base URL.
pub(crate) const ISSUER: &str = "/cxone";
/// `api_endpoint`'s path.
pub(crate) const API: &str = "/cxone-api";
/// The UserHub host's path.
pub(crate) const USERHUB: &str = "/cxone-uh";

/// The published DFO "get contact" budget per hour per tenant (§4.1).
pub(crate) const DFO_GETS_PER_HOUR: f64 = 120_000.0;

/// The routes of the three hosts.
pub(crate) fn router() -> Router<Arc<SimState>> {
    Router::new()
        .nest(ISSUER, auth::router())
        .nest(API, api::router())
        .nest(USERHUB, api::userhub_router())
        .route(
            &format!("{}/{{file}}", policies::EVIDENCE),
            axum::routing::get(policies::evidence_file),
        )
}

/// `http://{Host}`: the base the documents name, as the tutorial discovery does.
pub(crate) fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// A DFO-style error body (`ApiErrorCollection`, §4.2).
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"errors": [{"message": message}]})),
    )
        .into_response()
}

/// What every API and UserHub request passes: a token of this surface, unexpired, and
/// the injected faults the tutorial surface also has (scripted first, then random).
pub(crate) fn gate(s: &SimState, headers: &HeaderMap) -> Result<(), Response> {
    let r = &s.real;
    r.counters.requests.fetch_add(1, Ordering::Relaxed);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let valid = lock(&r.tokens)
        .get(token)
        .is_some_and(|t| t.expires_at > Instant::now());
    if !valid {
        r.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        if !token.is_empty() && lock(&s.auth).tokens.contains_key(token) {
            r.counters
                .cross_surface_tokens
                .fetch_add(1, Ordering::Relaxed);
        }
        return Err((
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "missing, expired or unknown token"})),
        )
            .into_response());
    }
    crate::state::faults::injected_fault(s, &s.runtime())
        .map_err(|reply| reply.into_response_with(&[]))
}

/// The published "update contact" budget per hour per tenant (§4.1).
pub(crate) const DFO_WRITES_PER_HOUR: f64 = 1_000_000.0;
/// One case's burst, and its refill per minute (§4.1).
pub(crate) const DFO_CASE_BURST: f64 = 250.0;
pub(crate) const DFO_CASE_PER_MINUTE: f64 = 17.0;

/// A DFO write to `case` (if it names one): within the tenant's update bucket (the
/// hourly budget, refilling continuously, one second's worth deep) and the case's own
/// bucket, both scaled by `dfoBudgetScale`; else 429 without `Retry-After`.
pub(crate) fn dfo_write(s: &SimState, case: Option<&str>) -> Result<(), Response> {
    let r = &s.real;
    r.counters.dfo_writes.fetch_add(1, Ordering::Relaxed);
    let scale = lock(&r.settings).dfo_budget_scale;
    // The hourly budget as a bucket that refills continuously and holds one second's
    // worth (spec-real §4.1 publishes the rate, not the burst: a strict reading).
    let over_tenant = {
        let rate = DFO_WRITES_PER_HOUR * scale / 3600.0;
        let capacity = rate.max(1.0);
        let mut w = lock(&r.dfo_writes);
        let (level, last) = &mut *w;
        *level = (level.min(capacity) + last.elapsed().as_secs_f64() * rate).min(capacity);
        *last = Instant::now();
        if *level >= 1.0 {
            *level -= 1.0;
            false
        } else {
            true
        }
    };
    let over_case = case.is_some_and(|c| {
        let burst = (DFO_CASE_BURST * scale).max(1.0);
        let rate = DFO_CASE_PER_MINUTE * scale / 60.0;
        let mut m = lock(&r.dfo_cases);
        let (level, last) = m.entry(c.to_string()).or_insert((burst, Instant::now()));
        *level = (*level + last.elapsed().as_secs_f64() * rate).min(burst);
        *last = Instant::now();
        if *level >= 1.0 {
            *level -= 1.0;
            false
        } else {
            true
        }
    });
    if over_tenant || over_case {
        r.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        return Err(error(
            StatusCode::TOO_MANY_REQUESTS,
            if over_case {
                "Update specific contact limit exceeded"
            } else {
                "Update contact limit exceeded for the tenant"
            },
        ));
    }
    Ok(())
}

/// A DFO read: within the hour's budget, and not among the share refused on purpose;
/// else 429 without `Retry-After`.
pub(crate) fn dfo_read(s: &SimState) -> Result<(), Response> {
    let r = &s.real;
    r.counters.dfo_reads.fetch_add(1, Ordering::Relaxed);
    let settings = lock(&r.settings).clone();
    let refused = settings.dfo_throttle_share > 0.0 && s.roll() < settings.dfo_throttle_share;
    let over = {
        let mut w = lock(&r.dfo_window);
        if w.0.elapsed() >= Duration::from_secs(3600) {
            *w = (Instant::now(), 0);
        }
        w.1 += 1;
        w.1 as f64 > (DFO_GETS_PER_HOUR * settings.dfo_budget_scale).max(1.0)
    };
    if refused || over {
        r.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        return Err(error(
            StatusCode::TOO_MANY_REQUESTS,
            "Get contact limit exceeded for the tenant",
        ));
    }
    Ok(())
}

/// When a completed contact started, in Unix seconds.
pub(crate) fn started_at(c: &Value) -> Option<i64> {
    let d = c["contactStartDate"].as_str()?;
    time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// The control API's view of the real surface.
pub(crate) fn snapshot(s: &SimState) -> Value {
    let r = &s.real;
    let c = &r.counters;
    let t = lock(&r.tenant);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut cases_by_status = std::collections::BTreeMap::<String, u64>::new();
    for c in &t.cases {
        *cases_by_status
            .entry(c["status"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    let recent = t
        .completed
        .iter()
        .filter(|c| started_at(c).is_some_and(|d| now - d <= 30 * 86_400))
        .count();
    json!({
        "tenantId": t.tenant_id,
        "counts": {
            "accessKeys": t.keys.len(),
            "activeAccessKeys": t.keys.iter().filter(|k| k.is_active).count(),
            "customers": t.customers.len(),
            "cases": t.cases.len(),
            "casesByStatus": cases_by_status,
            "customerFieldDefinitions": t.field_definitions.as_array().map_or(0, Vec::len),
            "completedContacts": t.completed.len(),
            "completedContactsLast30Days": recent,
            "policies": t.policies.len(),
            "policyRuns": t.instances.len(),
        },
        "settings": *lock(&r.settings),
        "requests": c.requests.load(Ordering::Relaxed),
        "tokenRequests": c.token_requests.load(Ordering::Relaxed),
        "tokensIssued": c.tokens_issued.load(Ordering::Relaxed),
        "rateLimited": c.rate_limited.load(Ordering::Relaxed),
        "unauthorized": c.unauthorized.load(Ordering::Relaxed),
        "crossSurfaceTokens": c.cross_surface_tokens.load(Ordering::Relaxed),
        "dfoReads": c.dfo_reads.load(Ordering::Relaxed),
        "dfoWrites": c.dfo_writes.load(Ordering::Relaxed),
        "dfo": dfo_snapshot(&t),
        "fieldDefinitions": t.field_definitions,
        "policies": t.policies.iter().map(|p| json!({
            "policyId": p["policyId"], "policyName": p["policyName"],
            "retentionValueInDays": p["retentionValueInDays"],
        })).collect::<Vec<_>>(),
        "completed": t.completed.iter().map(|c| json!({
            "contactId": c["contactId"], "fromAddress": c["fromAddress"], "toAddress": c["toAddress"],
        })).collect::<Vec<_>>(),
    })
}

/// The cases (id, status, when it changed, message count) and every removal recorded,
/// for tests that check exactly what a job changed.
fn dfo_snapshot(t: &crate::realdata::Tenant) -> Value {
    let cases: Vec<Value> = t
        .cases
        .iter()
        .map(|c| {
            let messages = crate::realdata::messages_in(c["id"].as_str().unwrap_or_default());
            json!({
                "id": c["id"], "status": c["status"], "statusUpdatedAt": c["statusUpdatedAt"],
                "customer": c["endUser"]["id"], "messages": messages,
                "customFields": c["customFields"],
            })
        })
        .collect();
    let fields: serde_json::Map<String, Value> = t
        .customers
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_string(),
                c["customFields"].clone(),
            )
        })
        .collect();
    let notes: serde_json::Map<String, Value> = t
        .notes
        .iter()
        .map(|(c, n)| (c.clone(), json!(n.len())))
        .collect();
    json!({"cases": cases, "removals": t.removed, "customerFields": fields, "notes": notes})
}

/// Checks `dfoBudgetScale` / `dfoThrottleShare` of a control change, and applies it when
/// `apply`; `Ok(false)` for a key that is not the real surface's.
pub(crate) fn configure(s: &SimState, key: &str, v: &Value, apply: bool) -> Result<bool, String> {
    let mut current = lock(&s.real.settings);
    let mut settings = current.clone();
    match key {
        "dfoBudgetScale" => {
            settings.dfo_budget_scale = v
                .as_f64()
                .filter(|x| *x > 0.0 && *x <= 1000.0)
                .ok_or("dfoBudgetScale: a factor above 0, at most 1000")?;
        }
        "dfoThrottleShare" => {
            settings.dfo_throttle_share = v
                .as_f64()
                .filter(|x| (0.0..=1.0).contains(x))
                .ok_or("dfoThrottleShare: a share between 0 and 1")?;
        }
        "closeAllCases" => {
            // A benchmark's tenant: every case closed, so a retention cut-off covers all.
            if v != &Value::Bool(true) {
                return Err("closeAllCases: true".into());
            }
            if apply {
                for c in lock(&s.real.tenant).cases.iter_mut() {
                    c["status"] = json!("closed");
                }
            }
            return Ok(true);
        }
        "policyRunMs" => {
            settings.policy_run_ms = v
                .as_u64()
                .filter(|x| *x <= 3_600_000)
                .ok_or("policyRunMs: milliseconds, at most an hour")?;
        }
        "evidenceRedirect" => {
            settings.evidence_redirect = v.as_bool().ok_or("evidenceRedirect: true or false")?;
        }
        "evidenceUrl" => {
            settings.evidence_url = match v {
                Value::Null => None,
                Value::String(u) => Some(u.clone()),
                _ => return Err("evidenceUrl: a URL, or null".into()),
            };
        }
        "erasureDelayMs" => {
            settings.erasure_delay_ms = v
                .as_u64()
                .filter(|x| *x <= 3_600_000)
                .ok_or("erasureDelayMs: milliseconds, at most an hour")?;
        }
        "refuseCreatedAccessKeys" => {
            settings.refuse_created_keys = v
                .as_bool()
                .ok_or("refuseCreatedAccessKeys: true or false")?;
        }
        _ => return Ok(false),
    }
    if apply {
        *current = settings;
    }
    Ok(true)
}
