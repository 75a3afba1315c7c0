//! Errors as callers see them: RFC 9457 problem documents (`application/problem+json`)
//! that say what is wrong and, for bad input, which field. What a caller reads is chosen
//! here; what the log gets is chosen by the handler (never an identifier, never a key).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of problem documents (RFC 9457).
pub const CONTENT_TYPE: &str = "application/problem+json";

/// One wrong field of a request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as named in the request (`identifier`, `guest_id`, `guestId`…).
    pub field: String,
    /// What is wrong with it. Never the value itself.
    pub message: String,
}

/// An RFC 9457 problem document.
// `title`, `status` and `detail` are the RFC's own members and carry no doc comment on
// purpose: utoipa would publish one as a description in `/openapi.json`, which a snapshot
// test pins.
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// A URN naming the kind of problem, e.g. `urn:cxguard:problem:invalid-field`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The first wrong field, for bad input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every wrong field, for bad input.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds to wait before retrying (also in the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem with `status`; `slug` names its type.
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("urn:cxguard:problem:{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// 400: these fields are wrong.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        let mut p = Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-field",
            "A field of the request is invalid",
            detail,
        );
        p.field = errors.first().map(|e| e.field.clone());
        p.errors = errors;
        p
    }

    /// A 400 naming one bad field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Problem::invalid(vec![FieldError {
            field: field.to_string(),
            message: message.into(),
        }])
    }

    /// A 401 with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(detail: &str) -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            detail,
        )
    }

    /// A 429 with `Retry-After`.
    pub fn rate_limited(wait: Duration) -> Self {
        Problem::too_many(
            wait,
            "Too many requests for this API key",
            "this API key is over its rate limit; retry after the time in Retry-After",
        )
    }

    /// 429 with `Retry-After` rounded up to whole seconds (at least 1).
    pub fn too_many(wait: Duration, title: &str, detail: &str) -> Self {
        let mut p = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", title, detail);
        p.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        p
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry = self.retry_after;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut r = (status, body).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(s) = retry {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// A problem for a bare error response (an unknown route, a wrong method, a body over
/// the limit cut off by a layer) so every error a caller sees has the same shape.
pub fn for_status(status: StatusCode) -> Problem {
    match status {
        StatusCode::NOT_FOUND => Problem::new(
            status,
            "not-found",
            "No such resource",
            "no route matches this path; see /openapi.json",
        ),
        StatusCode::METHOD_NOT_ALLOWED => Problem::new(
            status,
            "method-not-allowed",
            "Method not allowed",
            "this path does not accept this method; see /openapi.json",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => unsupported_media_type(),
        s => Problem::new(
            s,
            "error",
            s.canonical_reason().unwrap_or("Error"),
            s.canonical_reason().unwrap_or("error").to_lowercase(),
        ),
    }
}

/// A 413: the body is over the limit.
pub fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "Request body too large",
        format!("the body is over the limit of {} bytes", crate::BODY_LIMIT),
    )
}

/// A 415: the body is not JSON.
pub fn unsupported_media_type() -> Problem {
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "Unsupported media type",
        "send the body as JSON with Content-Type: application/json",
    )
}
