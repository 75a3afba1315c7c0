//! Around every request: a request id (the caller's `X-Request-Id` if it is a plain
//! token, else a new one) echoed in the response, metrics by route, one structured log
//! line, and bare error responses (unknown route, wrong method, a body cut off by the
//! limit layer) turned into problem documents.
//!
//! The log line holds the route template, never the raw path or body, and the caller's
//! key id, never the key: what it shows cannot identify a person.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use crate::AppState;
use crate::metrics::{RequestLabels, RouteLabels};
use crate::problem;

/// The header that carries a request's id, in both directions.
pub const REQUEST_ID: &str = "x-request-id";

/// Filled by the `Caller` extractor so the log line can name the key id.
#[derive(Clone, Default)]
pub struct CallerSlot(Arc<OnceLock<Arc<str>>>);

impl CallerSlot {
    pub fn set(&self, id: Arc<str>) {
        let _ = self.0.set(id);
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);
static PREFIX: OnceLock<u32> = OnceLock::new();

fn new_request_id() -> String {
    let prefix = *PREFIX.get_or_init(|| {
        let mut b = [0u8; 4];
        let _ = getrandom::fill(&mut b);
        u32::from_le_bytes(b)
    });
    format!("{prefix:08x}-{:012x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    // Labels come from a closed set, so no caller can grow the metrics without bound.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m,
        _ => "OTHER",
    }
    .to_string();
    let slot = CallerSlot::default();
    req.extensions_mut().insert(slot.clone());
    // Every event logged while handling the request carries its id.
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(req).instrument(span).await;

    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(problem::CONTENT_TYPE.as_bytes()));
    if (status.is_client_error() || status.is_server_error()) && !is_problem {
        let mut p = problem::for_status(status).into_response();
        for name in [header::ALLOW, header::RETRY_AFTER] {
            if let Some(v) = response.headers().get(&name) {
                p.headers_mut().insert(name, v.clone());
            }
        }
        response = p;
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    let elapsed = started.elapsed();
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method: method.clone(),
            status: status.as_u16(),
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(elapsed.as_secs_f64());
    let caller = slot.0.get().map(|c| &**c).unwrap_or("-");
    if status.is_server_error() {
        tracing::warn!(target: "cxguard::access", request_id = %id, method = %method, route = %route, status = status.as_u16(), latency_ms = elapsed.as_secs_f64() * 1e3, key = caller, "request");
    } else {
        tracing::info!(target: "cxguard::access", request_id = %id, method = %method, route = %route, status = status.as_u16(), latency_ms = elapsed.as_secs_f64() * 1e3, key = caller, "request");
    }
    response
}
