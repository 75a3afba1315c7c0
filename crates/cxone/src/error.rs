//! The client's one error type, classified by the stage that failed, with one
//! `is_retryable()` that the retry loop and every caller use alike.

use std::time::Duration;

use serde::Deserialize;

/// One `{"field","message"}` entry of a problem document.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct FieldError {
    /// The member at fault, as the API names it.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 9457 problem document as the API sends it. Unknown members are kept in
/// `extra` (a recompile failure carries `dataActionStatus` and `dataAction`).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct Problem {
    /// The problem type URI (`type`).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// A short summary.
    #[serde(default)]
    pub title: Option<String>,
    /// The HTTP status the API meant.
    #[serde(default)]
    pub status: Option<u16>,
    /// What happened, for a person.
    #[serde(default)]
    pub detail: Option<String>,
    /// One entry per bad field (entries that are plain strings, as some real tenants
    /// send, are kept as messages with no field).
    #[serde(default, deserialize_with = "lenient_errors")]
    pub errors: Vec<FieldError>,
    /// Any other members, kept as sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `errors` as field errors, whatever mix of `{field, message}` objects and strings
/// the API sent (anything else is dropped rather than losing the whole document).
fn lenient_errors<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<FieldError>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    let items = match v {
        Some(serde_json::Value::Array(items)) => items,
        _ => return Ok(Vec::new()),
    };
    Ok(items
        .into_iter()
        .filter_map(|item| match item {
            serde_json::Value::String(message) => Some(FieldError {
                field: String::new(),
                message,
            }),
            other => serde_json::from_value(other).ok(),
        })
        .collect())
}

impl Problem {
    /// The summary: `title`, or the `code` of the `{"code","details","errors"}` shape
    /// real CXone routes (spec §9) answer with.
    pub fn summary(&self) -> Option<&str> {
        self.title
            .as_deref()
            .or_else(|| self.extra.get("code").and_then(|v| v.as_str()))
    }

    /// What happened: `detail`, or `details` of the §9 shape.
    pub fn explanation(&self) -> Option<&str> {
        self.detail
            .as_deref()
            .or_else(|| self.extra.get("details").and_then(|v| v.as_str()))
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.summary(), self.explanation()) {
            (Some(t), Some(d)) => write!(f, "{t}: {d}")?,
            (Some(t), None) => write!(f, "{t}")?,
            (None, Some(d)) => write!(f, "{d}")?,
            (None, None) => write!(f, "no details")?,
        }
        Ok(())
    }
}

/// Why the token endpoint refused us (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthRefusal {
    /// The OAuth error code (`invalid_client`, `invalid_grant`, …).
    pub error: String,
    /// The endpoint's explanation, if it gave one.
    pub description: Option<String>,
}

impl std::fmt::Display for OAuthRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hint = match self.error.as_str() {
            "invalid_client" => " (check the client id and secret)",
            "invalid_grant" => " (check the access key id and secret)",
            "invalid_scope" => " (the client is not allowed a requested scope)",
            _ => "",
        };
        write!(f, "{}{hint}", self.error)?;
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// The stage of a request that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Building the request (settings, arguments).
    Build,
    /// Connecting or exchanging bytes.
    Transport,
    /// Waiting for the response.
    Timeout,
    /// Reading the response (size, redirect, JSON).
    Decode,
    /// The API answered with an error status.
    Api,
    /// Rate limited, and waiting would pass the deadline.
    RateLimited,
    /// Credentials or permissions.
    Auth,
}

/// What a request to the tenant came to, when it failed. Messages name the request and
/// never carry a secret or a body's personal data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request could not be built: a bad setting or argument. Never retried.
    #[error("{0}")]
    Build(String),

    /// The connection failed or was reset, before or after the server acted.
    #[error("{method} {url}: connection failed: {detail}")]
    Transport {
        /// The HTTP method.
        method: String,
        /// The URL requested.
        url: String,
        /// What failed, with its causes (`client error (Connect): tcp connect error: …`).
        detail: String,
        /// The connection never opened, so nothing was sent.
        connect: bool,
    },

    /// No complete response within the timeout.
    #[error("{method} {url}: no response within {timeout:?}")]
    Timeout {
        /// The HTTP method.
        method: String,
        /// The URL requested.
        url: String,
        /// The timeout that passed.
        timeout: Duration,
    },

    /// The response arrived but was not what the spec promises.
    #[error("{what}: could not decode the response (request {request_id}): {message}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// The tenant's request id (`X-Request-Id`), for its support; `none` if absent.
        request_id: String,
        /// What the decoder said (a position, never the text).
        message: String,
    },

    /// The API answered with an error status and a problem document.
    #[error("{method} {path}: {status} {problem} (request {request_id})")]
    Api {
        /// The HTTP method.
        method: String,
        /// The request path, below the base URL.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The problem document the API sent (empty if none).
        problem: Box<Problem>,
        /// The tenant's request id (`X-Request-Id`), for its support; `none` if absent.
        request_id: String,
    },

    /// 429, and retrying within the deadline was not possible.
    #[error("{method} {path}: rate limited{} (request {request_id})", match retry_after { Some(d) => format!(", retry after {d:?}"), None => ", no Retry-After: backing off".to_string() })]
    RateLimited {
        /// The HTTP method.
        method: String,
        /// The request path, below the base URL.
        path: String,
        /// What `Retry-After` asked for (`None`: it was absent, as on CXone's real API).
        retry_after: Option<Duration>,
        /// The tenant's request id (`X-Request-Id`), for its support; `none` if absent.
        request_id: String,
    },

    /// The token endpoint refused the credentials.
    #[error("authentication failed at {token_url}: {refusal}")]
    Auth {
        /// The token endpoint.
        token_url: String,
        /// What it said.
        refusal: OAuthRefusal,
    },

    /// A valid token that lacks the scope an endpoint needs. Never retried.
    #[error(
        "{method} {path}: the token lacks the scope {scope:?}; grant it to the API client (request {request_id})"
    )]
    MissingScope {
        /// The HTTP method.
        method: String,
        /// The request path, below the base URL.
        path: String,
        /// The scope the API asked for (`WWW-Authenticate: … scope=`).
        scope: String,
        /// The tenant's request id (`X-Request-Id`), for its support; `none` if absent.
        request_id: String,
    },

    /// The token was refused even after one refresh.
    #[error(
        "{method} {path}: the API refused a freshly issued token: {detail} (request {request_id})"
    )]
    TokenRejected {
        /// The HTTP method.
        method: String,
        /// The request path, below the base URL.
        path: String,
        /// What the API said.
        detail: String,
        /// The tenant's request id (`X-Request-Id`), for its support; `none` if absent.
        request_id: String,
    },

    /// The server answered with a redirect. cxguard follows none: a redirect would carry
    /// a token, a credential form or a secret to wherever `Location` points.
    #[error(
        "{method} {url}: the server answered {status} redirecting to {location:?}; cxguard follows no redirect: configure the final URL itself"
    )]
    Redirect {
        /// The HTTP method.
        method: String,
        /// The URL requested.
        url: String,
        /// The 3xx status.
        status: u16,
        /// Where it pointed (not followed).
        location: String,
    },

    /// A response body larger than the configured cap.
    #[error(
        "{method} {url}: the response is larger than the {limit}-byte cap; raise it in [tenant] if this tenant legitimately sends more"
    )]
    TooLarge {
        /// The HTTP method.
        method: String,
        /// The URL requested.
        url: String,
        /// The cap in bytes.
        limit: usize,
    },

    /// The server asked to wait longer (`Retry-After`) than the request's deadline allows.
    #[error(
        "{method} {path}: the server answered {status} with Retry-After {retry_after}, longer than the {remaining:.1?} left before the deadline; giving up now instead of waiting (request {request_id})"
    )]
    RetryAfterBeyondDeadline {
        /// The HTTP method.
        method: String,
        /// The request path, below the base URL.
        path: String,
        /// The status that came with `Retry-After`.
        status: u16,
        /// The header's text, as the server sent it.
        retry_after: String,
        /// Time left before the retry deadline.
        remaining: Duration,
        /// The tenant's request id (`X-Request-Id`), for its support; `none` if absent.
        request_id: String,
    },

    /// The token lacks scopes a command needs, found before the command sent anything.
    #[error(
        "the token lacks the scope{} {}; grant {} to the API client (granted: {})",
        if missing.len() == 1 { "" } else { "s" },
        missing.join(", "),
        if missing.len() == 1 { "it" } else { "them" },
        if granted.is_empty() { "none".to_string() } else { granted.join(" ") }
    )]
    ScopesMissing {
        /// Scopes the command needs that the token does not carry.
        missing: Vec<String>,
        /// Scopes the token does carry.
        granted: Vec<String>,
    },

    /// The token endpoint failed moments ago; it is not asked again until the back-off ends.
    #[error("the token endpoint failed {ago:.1?} ago; not asking again for {retry_in:.1?}: {last}")]
    TokenBackoff {
        /// How long ago the endpoint failed.
        ago: Duration,
        /// How long until it is asked again.
        retry_in: Duration,
        /// The earlier failure.
        last: String,
        /// The earlier failure was a refusal of the credentials (not an outage).
        refused: bool,
    },

    /// The OpenID discovery document is missing, malformed or names an unusable endpoint.
    #[error("OpenID discovery at {url}: {message}")]
    Discovery {
        /// The discovery document's URL.
        url: String,
        /// What is wrong.
        message: String,
    },

    /// Retries ran out (attempts or the total deadline); `last` is the final failure.
    #[error("gave up after {attempts} attempts in {elapsed:.1?}: {last}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last failure.
        last: Box<Error>,
    },
}

/// A result whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the same request may succeed if sent again later. The retry loop decides
    /// with this, and so do callers that retry at a higher level (a job's items).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::Timeout { .. } | Error::RateLimited { .. } => true,
            Error::Api { status, .. } => matches!(status, 408 | 500 | 502 | 503 | 504),
            Error::GaveUp { last, .. } => last.is_retryable(),
            Error::Build(_)
            | Error::Decode { .. }
            | Error::Auth { .. }
            | Error::MissingScope { .. }
            | Error::ScopesMissing { .. }
            | Error::Redirect { .. }
            | Error::TooLarge { .. }
            | Error::RetryAfterBeyondDeadline { .. }
            | Error::TokenBackoff { .. }
            | Error::Discovery { .. }
            | Error::TokenRejected { .. } => false,
        }
    }

    /// Whether the retry loop sends the request again: the one place that decides.
    /// A 429 was refused before it had any effect and a connection that never opened
    /// sent nothing, so both are resent whatever the method; any other retryable
    /// failure only for a request that is safe to repeat (`idempotent`).
    pub(crate) fn worth_resending(&self, idempotent: bool) -> bool {
        match self {
            Error::RateLimited { .. } => true,
            Error::Transport { connect: true, .. } => true,
            _ => idempotent && self.is_retryable(),
        }
    }

    /// Which stage of a request failed, for exit codes and messages.
    pub fn stage(&self) -> Stage {
        match self {
            Error::Build(_) | Error::Discovery { .. } => Stage::Build,
            Error::Redirect { .. } | Error::TooLarge { .. } => Stage::Decode,
            Error::RetryAfterBeyondDeadline { .. } => Stage::RateLimited,
            Error::TokenBackoff { refused: true, .. } | Error::ScopesMissing { .. } => Stage::Auth,
            Error::TokenBackoff { refused: false, .. } => Stage::Transport,
            Error::Transport { .. } => Stage::Transport,
            Error::Timeout { .. } => Stage::Timeout,
            Error::Decode { .. } => Stage::Decode,
            Error::Api { .. } => Stage::Api,
            Error::RateLimited { .. } => Stage::RateLimited,
            Error::Auth { .. } | Error::MissingScope { .. } | Error::TokenRejected { .. } => {
                Stage::Auth
            }
            Error::GaveUp { last, .. } => last.stage(),
        }
    }

    /// What a log line may say of this error: its stage, HTTP status and request id,
    /// never the tenant's own words (a problem's `detail` may echo an identifier the
    /// request carried, such as a person's email in an erasure).
    pub fn summary(&self) -> String {
        let mut s = format!("{:?} failure", self.stage());
        if let Some(status) = self.status() {
            s.push_str(&format!(", HTTP {status}"));
        }
        if let Some(id) = self.request_id() {
            s.push_str(&format!(", request id {id}"));
        }
        s
    }

    /// The server's `X-Request-Id`, when a response arrived.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Decode { request_id, .. }
            | Error::Api { request_id, .. }
            | Error::RateLimited { request_id, .. }
            | Error::MissingScope { request_id, .. }
            | Error::RetryAfterBeyondDeadline { request_id, .. }
            | Error::TokenRejected { request_id, .. } => Some(request_id),
            Error::GaveUp { last, .. } => last.request_id(),
            _ => None,
        }
    }

    /// The HTTP status, when the API answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::RateLimited { .. } => Some(429),
            Error::RetryAfterBeyondDeadline { status, .. } | Error::Redirect { status, .. } => {
                Some(*status)
            }
            Error::MissingScope { .. } => Some(403),
            Error::TokenRejected { .. } => Some(401),
            Error::GaveUp { last, .. } => last.status(),
            _ => None,
        }
    }

    /// The problem document, when the API sent one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Api { problem, .. } => Some(problem),
            Error::GaveUp { last, .. } => last.problem(),
            _ => None,
        }
    }

    /// True when the failure is about credentials or permissions.
    pub fn is_auth(&self) -> bool {
        self.stage() == Stage::Auth
    }

    /// True when a scope is missing: no other request of the same job can succeed either,
    /// so a job stops as a whole instead of failing item after item.
    pub fn is_missing_scope(&self) -> bool {
        match self {
            Error::MissingScope { .. } | Error::ScopesMissing { .. } => true,
            Error::GaveUp { last, .. } => last.is_missing_scope(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (trust review, item 10): a failed erasure was logged with the error's
    /// text, which carries the tenant's `detail`, which may echo the identifier. What a
    /// log line says of it is the stage, status and request id only.
    #[test]
    fn a_log_summary_never_carries_the_tenants_words() {
        let e = Error::Api {
            method: "POST".into(),
            path: "/privacy/erasure".into(),
            status: 400,
            problem: Box::new(Problem {
                detail: Some("subjectIdentifier ann.lee@example.com is not known".into()),
                ..Default::default()
            }),
            request_id: "req-1".into(),
        };
        assert!(e.to_string().contains("ann.lee"), "the text does carry it");
        let s = e.summary();
        assert!(!s.contains("ann.lee"), "{s}");
        assert_eq!(s, "Api failure, HTTP 400, request id req-1");
    }

    #[test]
    fn classification() {
        let api = |status| Error::Api {
            method: "GET".into(),
            path: "/x".into(),
            status,
            problem: Box::default(),
            request_id: "r".into(),
        };
        assert!(api(503).is_retryable());
        assert!(api(500).is_retryable());
        assert!(!api(400).is_retryable());
        assert!(!api(409).is_retryable());
        let gave_up = Error::GaveUp {
            attempts: 3,
            elapsed: Duration::from_secs(1),
            last: Box::new(api(503)),
        };
        assert!(gave_up.is_retryable());
        assert_eq!(gave_up.request_id(), Some("r"));
        assert_eq!(gave_up.stage(), Stage::Api);
        let scope = Error::MissingScope {
            method: "PATCH".into(),
            path: "/p".into(),
            scope: "contact:write".into(),
            request_id: "r".into(),
        };
        assert!(!scope.is_retryable());
        assert!(scope.to_string().contains("contact:write"));
    }
}
