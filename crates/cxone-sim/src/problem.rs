//! Replies of the emulator: a status, extra headers and a JSON body, with builders for
//! RFC 9457 problem documents (`application/problem+json`).

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One handler's answer, before the pipeline adds the common headers.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Value,
    pub problem: bool,
}

impl Reply {
    pub(crate) fn ok(body: Value) -> Self {
        Reply::json(StatusCode::OK, body)
    }

    pub(crate) fn json(status: StatusCode, body: Value) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body,
            problem: false,
        }
    }

    pub(crate) fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// A problem document with no field errors.
    pub(crate) fn problem(status: StatusCode, title: &str, detail: impl Into<String>) -> Self {
        Reply::problem_with(status, title, detail, Vec::new())
    }

    /// A problem document naming the fields at fault.
    pub(crate) fn problem_with(
        status: StatusCode,
        title: &str,
        detail: impl Into<String>,
        errors: Vec<FieldError>,
    ) -> Self {
        let slug: String = title
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let mut body = json!({
            "type": format!("https://cxone-sim.invalid/problems/{slug}"),
            "title": title,
            "status": status.as_u16(),
            "detail": detail.into(),
        });
        if !errors.is_empty() {
            body["errors"] = Value::Array(
                errors
                    .into_iter()
                    .map(|e| json!({"field": e.field, "message": e.message}))
                    .collect(),
            );
        }
        Reply {
            status,
            headers: Vec::new(),
            body,
            problem: true,
        }
    }

    /// A problem listing every field at fault, its detail joining them.
    pub(crate) fn invalid(status: StatusCode, title: &str, errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Reply::problem_with(status, title, detail, errors)
    }

    /// 400 naming one field.
    pub(crate) fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        Reply::problem_with(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            format!("{field}: {message}"),
            vec![FieldError { field, message }],
        )
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Reply::problem(StatusCode::NOT_FOUND, "Not found", what)
    }

    pub(crate) fn is_success(&self) -> bool {
        self.status.is_success()
    }

    pub(crate) fn into_response_with(self, extra: &[(HeaderName, String)]) -> Response {
        let content_type = if self.problem {
            "application/problem+json"
        } else {
            "application/json"
        };
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        for (name, value) in self.headers.iter().chain(extra) {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.append(name.clone(), v);
            }
        }
        resp
    }
}

#[derive(Debug, Clone)]
pub(crate) struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}
