//! The endpoints. Each validates first (auth, rate limit, body, fields), then computes the
//! pseudonym, then makes the one upstream call, then records the audit entry, and only
//! then answers 200: a 200 means the guest holds the attribute and the ledger says so.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use guard::identity::{IdentifierKind, LinkError, check_guest_id};
use serde_json::{Map, Value};

use crate::AppState;
use crate::observe::CallerSlot;
use crate::problem::{self, Problem};
use crate::schema::{
    CompatRequest, CompatResponse, IdentityRequest, Kind, LinkErrors, LinkResponse, Status,
};

/// The caller, authenticated and within its rate limit.
pub struct Caller(pub Arc<str>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let id = state.keys.check(
            parts
                .headers
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        )?;
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            slot.set(id.clone());
        }
        Ok(Caller(id))
    }
}

pub(crate) fn json_object(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Map<String, Value>, Problem> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if !(essence.eq_ignore_ascii_case("application/json")
        || (essence.starts_with("application/") && essence.ends_with("+json")))
    {
        return Err(problem::unsupported_media_type());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Problem::field("body", "must be a JSON object")),
        // serde_json's syntax errors give a position, never the text.
        Err(e) => Err(Problem::field("body", format!("is not valid JSON: {e}"))),
    }
}

fn string_field<'a>(
    m: &'a Map<String, Value>,
    name: &str,
    errors: &mut Vec<problem::FieldError>,
) -> Option<&'a str> {
    let err = |message: &str| problem::FieldError {
        field: name.to_string(),
        message: message.to_string(),
    };
    match m.get(name) {
        None | Some(Value::Null) => {
            errors.push(err("is required"));
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.push(err("must be a string"));
            None
        }
    }
}

fn invalid(e: guard::identity::Invalid) -> Problem {
    Problem::field(e.field, e.message)
}

/// Link a guest to a returning person.
///
/// Normalizes the identifier (emails: trim, Unicode NFC, lowercase; phones: E.164 with
/// the configured default region), computes HMAC-SHA256 with the identity key, and
/// upserts it as the guest's attribute. Idempotent: the same person linked again to the
/// same guest changes nothing.
#[utoipa::path(
    post,
    path = "/v1/guests/{guestId}/identity",
    tag = "identity",
    params(("guestId" = String, Path, description = "The web-messaging guest", pattern = "^[A-Za-z0-9._-]{1,128}$", min_length = 1, max_length = 128)),
    request_body(content = IdentityRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The guest holds the pseudonym", body = LinkResponse),
        LinkErrors,
    ),
    security(("apiKey" = []))
)]
pub async fn link_identity(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(guest_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<LinkResponse>, Problem> {
    let m = json_object(&headers, &body)?;
    let mut errors = Vec::new();
    if let Err(e) = check_guest_id(&guest_id) {
        errors.push(problem::FieldError {
            field: "guestId".into(),
            message: e.message,
        });
    }
    let identifier = string_field(&m, "identifier", &mut errors);
    let kind = match m.get("kind") {
        None | Some(Value::Null) => Some(Kind::Auto),
        Some(Value::String(s)) => match IdentifierKind::parse(s) {
            Ok(k) => Some(Kind::from(k)),
            Err(_) => {
                errors.push(problem::FieldError {
                    field: "kind".into(),
                    message: "must be one of email, phone, auto".into(),
                });
                None
            }
        },
        Some(_) => {
            errors.push(problem::FieldError {
                field: "kind".into(),
                message: "must be a string: email, phone or auto".into(),
            });
            None
        }
    };
    for k in m.keys() {
        if k != "identifier" && k != "kind" {
            errors.push(problem::FieldError {
                // Named back only if it is a plain word: a key can carry an address too.
                field: if k.len() <= 40 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    k.clone()
                } else {
                    "(unknown)".to_string()
                },
                message: "is not a field of this request (identifier, kind)".into(),
            });
        }
    }
    let (Some(identifier), Some(kind), true) = (identifier, kind, errors.is_empty()) else {
        state.metrics.link("invalid");
        return Err(Problem::invalid(errors));
    };
    let body = IdentityRequest {
        identifier: identifier.to_string(),
        kind: Some(kind),
    };
    let linked = link(
        &state,
        &caller,
        &guest_id,
        "identifier",
        &body.identifier,
        body.kind.unwrap_or(Kind::Auto).into(),
    )
    .await?;
    Ok(Json(linked))
}

/// Link a guest (the tutorial's route, for existing callers).
///
/// The same as `POST /v1/guests/{guestId}/identity` with `kind = auto`, taking the
/// tutorial's body. Fields other than `guest_id` and `user_identifier` are ignored, as
/// the tutorial did.
#[utoipa::path(
    post,
    path = "/api/update-guest-attributes",
    tag = "identity",
    request_body(content = CompatRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The guest holds the pseudonym", body = CompatResponse),
        LinkErrors,
    ),
    security(("apiKey" = []))
)]
pub async fn compat_link(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CompatResponse>, Problem> {
    let m = json_object(&headers, &body)?;
    let mut errors = Vec::new();
    let guest_id = string_field(&m, "guest_id", &mut errors);
    if let Some(g) = guest_id
        && let Err(e) = check_guest_id(g)
    {
        errors.push(problem::FieldError {
            field: "guest_id".into(),
            message: e.message,
        });
    }
    let identifier = string_field(&m, "user_identifier", &mut errors);
    let (Some(guest_id), Some(identifier), true) = (guest_id, identifier, errors.is_empty()) else {
        state.metrics.link("invalid");
        return Err(Problem::invalid(errors));
    };
    let body = CompatRequest {
        guest_id: guest_id.to_string(),
        user_identifier: identifier.to_string(),
    };
    let l = link(
        &state,
        &caller,
        &body.guest_id,
        "user_identifier",
        &body.user_identifier,
        IdentifierKind::Auto,
    )
    .await?;
    Ok(Json(CompatResponse {
        status: "success".into(),
        guest_id: l.guest_id,
        attribute: l.attribute,
        key_id: l.key_id,
    }))
}

async fn link(
    state: &AppState,
    caller: &str,
    guest_id: &str,
    field: &'static str,
    identifier: &str,
    kind: IdentifierKind,
) -> Result<LinkResponse, Problem> {
    // Both handlers checked the guest id already; `apply` checks it again before the URL.
    let (kind, pseudonym) = match state.identity.pseudonym(field, identifier, kind) {
        Ok(p) => p,
        Err(e) => {
            state.metrics.link("invalid");
            return Err(invalid(e));
        }
    };
    // The PATCH and its audit entry run as a task of their own: if the caller hangs up
    // or the deadline below fires, a PATCH that lands is still recorded.
    let task = {
        let state = state.clone();
        let guest = guest_id.to_string();
        let actor = format!("api:{caller}");
        tokio::spawn(async move {
            let r = guard::identity::link(
                &state.identity,
                &state.client,
                &state.audit,
                &guest,
                kind,
                &pseudonym,
                &actor,
            )
            .await?;
            Ok::<_, LinkError>((r.linked, r.audit.map(|_| ())))
        })
    };
    let (linked, recorded) = match tokio::time::timeout(state.upstream_deadline, task).await {
        Ok(Ok(Ok(done))) => done,
        Ok(Ok(Err(e))) => return Err(link_refused(state, guest_id, e)),
        Ok(Err(join)) => {
            state.metrics.link("upstream_failed");
            tracing::error!(guest = guest_id, error = %join, "the link task failed");
            return Err(upstream_failed(
                "the link task failed; see the service log".into(),
            ));
        }
        Err(_) => {
            let deadline = state.upstream_deadline;
            state.metrics.link("upstream_failed");
            tracing::warn!(
                guest = guest_id,
                deadline_ms = deadline.as_millis() as u64,
                "upstream deadline passed; the link goes on and is recorded if it lands"
            );
            return Err(upstream_failed(format!(
                "no answer from the tenant within {:.1?}",
                deadline
            )));
        }
    };
    if recorded.is_err() {
        state.metrics.link("audit_failed");
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit-unavailable",
            "The link could not be recorded",
            "the guest was linked but the audit ledger is unavailable; retry (linking is idempotent)",
        );
        p.retry_after = Some(1);
        return Err(p);
    }
    state.metrics.link("linked");
    Ok(LinkResponse {
        guest_id: linked.guest_id,
        attribute: linked.attribute,
        key_id: linked.key_id,
    })
}

/// The problem a failed link answers with, counted by its kind.
fn link_refused(state: &AppState, guest_id: &str, e: LinkError) -> Problem {
    match e {
        LinkError::UnknownGuest(_) => {
            state.metrics.link("unknown_guest");
            Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-guest",
                "No such guest",
                format!("the tenant has no guest {guest_id}"),
            )
        }
        LinkError::UnknownCustomer(_) => {
            state.metrics.link("unknown_guest");
            Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-guest",
                "No such guest",
                format!("the tenant has no DFO customer {guest_id}"),
            )
        }
        LinkError::Invalid(e) => {
            state.metrics.link("invalid");
            invalid(e)
        }
        e => {
            state.metrics.link("upstream_failed");
            // The kind and status only: the tenant's words may echo the identifier.
            let summary = match &e {
                LinkError::Api(api) => api.summary(),
                other => other.to_string(),
            };
            tracing::warn!(guest = guest_id, error = %summary, "upstream failed");
            upstream_failed(match &e {
                LinkError::Api(api) if api.stage() == cxone::Stage::Auth => {
                    "the tenant refused cxguard's credentials".to_string()
                }
                no_field @ LinkError::NoField(_) => no_field.to_string(),
                _ => "the tenant failed and retries ran out".to_string(),
            })
        }
    }
}

fn upstream_failed(detail: String) -> Problem {
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "upstream-failed",
        "The CXone tenant failed",
        detail,
    )
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

/// Readiness: an upstream token can be obtained (cached tokens make this cheap) and the
/// audit ledger answers, so a load balancer stops sending links that could not be
/// recorded.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Status),
        (status = 503, description = "No upstream token can be obtained, or the ledger does not answer", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    if let Err(e) = state.ledger.ping().await {
        tracing::warn!(error = %e, "not ready: the ledger does not answer");
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            "the audit ledger does not answer; see the service log",
        );
        p.retry_after = Some(5);
        return p.into_response();
    }
    match tokio::time::timeout(Duration::from_secs(5), state.client.authenticate()).await {
        Ok(Ok(())) => Json(Status {
            status: "ready".into(),
        })
        .into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready");
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "Not ready",
                "no upstream token can be obtained; see the service log",
            );
            p.retry_after = Some(5);
            p.into_response()
        }
        Err(_) => {
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "Not ready",
                "the token endpoint did not answer within 5 s",
            );
            p.retry_after = Some(5);
            p.into_response()
        }
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics in the OpenMetrics text format", body = String, content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}
