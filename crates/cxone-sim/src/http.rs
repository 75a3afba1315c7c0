//! The request pipeline. Every API request passes the checks of spec §2 in its order:
//! unknown route (404) → token (401) → rate limit (429) → scope (403) → injected fault →
//! idempotency-key replay → the route's handler (unknown resource, `If-Match`, body,
//! conflict) → injected connection reset after the change was made.

// A step that answers early returns its response as the error: one per request, moved once.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::problem::Reply;
use crate::ratelimit::Take;
use crate::routes::{self, BucketKind, Ctx, IDEMPOTENCY_KEY, RouteMiss};
use crate::state::{IdempotentRecord, SimState, lock};
use crate::{control, data};

/// The spec's three token paths, or only `token_path` when one is configured.
pub(crate) fn router(state: Arc<SimState>, token_path: Option<&str>) -> Router {
    let paths: Vec<&str> = match token_path {
        Some(p) => vec![p],
        None => vec!["/oauth/token", "/api/v2/oauth/token", "/as/token.oauth2"],
    };
    let token_path = paths[0].to_string();
    let mut router = Router::new().route(
        "/.well-known/openid-configuration",
        get(move |State(s): State<Arc<SimState>>, headers: HeaderMap| {
            let token_path = token_path.clone();
            async move { routes::oauth::discovery(&s, &headers, &token_path) }
        }),
    );
    for p in paths {
        router = router.route(p, post(routes::oauth::token));
    }
    router
        .merge(crate::real::router())
        .nest("/_control", control::router())
        .fallback(api)
        .layer(middleware::from_fn_with_state(state.clone(), common))
        .with_state(state)
}

/// Adds what every response carries (`X-Request-Id`), the configured latency, and counts.
async fn common(State(s): State<Arc<SimState>>, req: Request, next: Next) -> Response {
    let n = s.counters.requests.fetch_add(1, Ordering::Relaxed);
    let id = format!("sim-{:08x}-{:06x}", data::mix(s.seed ^ n) as u32, n);
    let latency = s.runtime().latency_ms;
    if latency > 0 && !req.uri().path().starts_with("/_control") {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), v);
    }
    resp
}

async fn api(
    State(s): State<Arc<SimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match pipeline(&s, &method, &uri, &headers, &body).await {
        Ok(resp) | Err(resp) => resp,
    }
}

/// Spec §2's checks in order; each step either passes or answers.
async fn pipeline(
    s: &SimState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, Response> {
    let matched = route(method, uri)?;
    *lock(&s.route_hits).entry(matched.pattern).or_insert(0) += 1;

    // 401: a token we issued, unexpired and not revoked.
    let scopes = authenticate(s, headers).map_err(|reply| {
        s.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        reply.into_response_with(&[])
    })?;
    let rate_headers = rate_limit(s, matched.bucket)?;
    check_scopes(matched.scopes, &scopes).map_err(|r| r.into_response_with(&rate_headers))?;
    let rt = s.runtime();
    crate::state::faults::injected_fault(s, &rt)
        .map_err(|r| r.into_response_with(&rate_headers))?;
    let idem_key = idempotency_claim(s, method, uri, headers, body)
        .map_err(|r| r.into_response_with(&rate_headers))?;

    let ctx = Ctx { uri, headers, body };
    let reply = routes::handle(s, &matched.route, &ctx).await;
    if let Some(key) = &idem_key {
        idempotency_settle(s, key, &reply);
    }
    if crate::state::faults::scripted_reset(s) || (rt.reset_rate > 0.0 && s.roll() < rt.reset_rate)
    {
        s.counters.resets.fetch_add(1, Ordering::Relaxed);
        return Ok(crate::state::faults::reset_response());
    }
    Ok(reply.into_response_with(&rate_headers))
}

/// 404 for an unknown path, 405 for a known path and another method.
fn route(method: &Method, uri: &Uri) -> Result<routes::Matched, Response> {
    match routes::match_route(method, uri.path()) {
        Ok(m) => Ok(m),
        Err(RouteMiss::NotFound) => {
            Err(
                Reply::not_found(format!("no route {} {}", method, uri.path()))
                    .into_response_with(&[]),
            )
        }
        Err(RouteMiss::MethodNotAllowed(allow)) => Err(Reply::problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            format!(
                "{} does not accept {method}; it accepts {allow}",
                uri.path()
            ),
        )
        .with_header(header::ALLOW, allow)
        .into_response_with(&[])),
    }
}

/// 429 from the tenant bucket, or the webchat bucket for webchat routes; on success the
/// `RateLimit-*` headers every response carries.
fn rate_limit(s: &SimState, kind: BucketKind) -> Result<Vec<(HeaderName, String)>, Response> {
    let bucket = match kind {
        BucketKind::Tenant => &s.bucket,
        BucketKind::Webchat => &s.webchat_bucket,
    };
    let taken = lock(bucket).as_mut().map(|b| b.take(Instant::now()));
    let triple = |limit: String, remaining: String, reset: String| {
        vec![
            (HeaderName::from_static("ratelimit-limit"), limit),
            (HeaderName::from_static("ratelimit-remaining"), remaining),
            (HeaderName::from_static("ratelimit-reset"), reset),
        ]
    };
    match taken {
        Some(Take::Refused {
            limit,
            retry_after_secs,
        }) => {
            s.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            let reply = Reply::problem(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                format!(
                    "rate limit of {limit} requests/s exceeded; retry after {retry_after_secs} s"
                ),
            )
            .with_header(header::RETRY_AFTER, retry_after_secs.to_string());
            let headers = triple(limit.to_string(), "0".into(), retry_after_secs.to_string());
            Err(reply.into_response_with(&headers))
        }
        Some(Take::Granted {
            limit,
            remaining,
            reset_secs,
        }) => Ok(triple(
            limit.to_string(),
            remaining.to_string(),
            reset_secs.to_string(),
        )),
        None => Ok(Vec::new()),
    }
}

/// 403 naming every scope the route needs and the token lacks.
fn check_scopes(needed: &[&str], granted: &[String]) -> Result<(), Reply> {
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|sc| !granted.iter().any(|g| g == sc))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let needed = missing.join(" ");
    Err(Reply::problem(
        StatusCode::FORBIDDEN,
        "Insufficient scope",
        format!("this token lacks the scope {needed}"),
    )
    .with_header(
        header::WWW_AUTHENTICATE,
        format!("Bearer error=\"insufficient_scope\", scope=\"{needed}\""),
    ))
}

/// Idempotency-key replay (POST and PATCH): the key this request holds, if any, or the
/// reply to send at once (a replay, a reuse with another body, or one still in progress).
fn idempotency_claim(
    s: &SimState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Option<String>, Reply> {
    if method != Method::POST && method != Method::PATCH {
        return Ok(None);
    }
    let Some(key) = headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return Ok(None);
    };
    let mut buf = Vec::with_capacity(body.len() + 64);
    buf.extend_from_slice(method.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(uri.path().as_bytes());
    buf.push(b'\n');
    buf.extend_from_slice(body);
    let fp = data::sha256_hex(&buf);
    let mut store = lock(&s.idempotency);
    match store.get(&key) {
        Some(rec) if rec.fingerprint != fp => Err(Reply::problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Idempotency key reused",
            "this X-Idempotency-Key was first used with another request body",
        )),
        Some(rec) if rec.reply.status == StatusCode::ACCEPTED && rec.reply.body.is_null() => {
            Err(Reply::problem(
                StatusCode::CONFLICT,
                "Request in progress",
                "a request with this X-Idempotency-Key is still being processed",
            ))
        }
        Some(rec) => {
            s.counters
                .idempotent_replays
                .fetch_add(1, Ordering::Relaxed);
            let mut reply = rec.reply.clone();
            reply.headers.push((
                HeaderName::from_static("idempotent-replayed"),
                "true".into(),
            ));
            Err(reply)
        }
        None => {
            // A marker: a concurrent duplicate is told the first one is in progress.
            store.insert(
                key.clone(),
                IdempotentRecord {
                    fingerprint: fp,
                    reply: Reply::json(StatusCode::ACCEPTED, serde_json::Value::Null),
                },
            );
            Ok(Some(key))
        }
    }
}

/// Only a 2xx is replayed; after an error the same key may try again.
fn idempotency_settle(s: &SimState, key: &str, reply: &Reply) {
    let mut store = lock(&s.idempotency);
    if reply.is_success() {
        if let Some(rec) = store.get_mut(key) {
            rec.reply = reply.clone();
        }
    } else {
        store.remove(key);
    }
}

/// The granted scopes of the bearer token, or the 401 to send.
fn authenticate(s: &SimState, headers: &HeaderMap) -> Result<Vec<String>, Reply> {
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(Reply::problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "no bearer token: send Authorization: Bearer <token>",
        )
        .with_header(header::WWW_AUTHENTICATE, "Bearer"));
    };
    let invalid = |why: &str| {
        Reply::problem(StatusCode::UNAUTHORIZED, "Unauthorized", why.to_string()).with_header(
            header::WWW_AUTHENTICATE,
            format!("Bearer error=\"invalid_token\", error_description=\"{why}\""),
        )
    };
    let Some(token) = auth.strip_prefix("Bearer ").map(str::trim) else {
        return Err(invalid("the Authorization header is not a bearer token"));
    };
    let auth = lock(&s.auth);
    match auth.tokens.get(token) {
        None => {
            if s.real.knows(token) {
                s.real
                    .counters
                    .cross_surface_tokens
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(invalid("the token is unknown or revoked"))
        }
        Some(t) if t.expires_at <= Instant::now() => Err(invalid("the token expired")),
        Some(t) => Ok(t.scopes.iter().cloned().collect()),
    }
}
