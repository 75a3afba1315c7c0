//! `POST /oauth/token` (and its aliases): client credentials, the access-key password
//! grant, and refresh tokens. Errors follow RFC 6749 §5.2, not problem documents.

// A step that answers early returns its response as the error: one per request, moved once.
#![allow(clippy::result_large_err)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use crate::data::{ALL_SCOPES, READ_SCOPES};
use crate::state::{SimState, TokenInfo, lock};

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /.well-known/openid-configuration` (RFC 8414): the issuer is the base URL the
/// caller reached (from `Host`), and the token endpoint is the one this emulator serves.
pub(crate) fn discovery(_s: &SimState, headers: &HeaderMap, token_path: &str) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let issuer = format!("http://{host}");
    let body = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}{token_path}"),
        "grant_types_supported": ["client_credentials", "password", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ALL_SCOPES,
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// The scopes a client may hold, or `None` for an unknown client or a wrong secret.
fn client_scopes(s: &SimState, id: &str, secret: &str) -> Option<&'static [&'static str]> {
    let c = &s.credentials;
    if id == c.client_id && secret == c.client_secret {
        Some(ALL_SCOPES)
    } else if id == c.readonly_client_id && secret == c.readonly_client_secret {
        Some(READ_SCOPES)
    } else if id == c.app_client_id && secret == c.app_client_secret {
        // The app only authenticates the password grant; the user's key grants scopes.
        Some(ALL_SCOPES)
    } else {
        None
    }
}

fn basic(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let enc = v.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(enc.trim())
        .map_err(|_| ());
    Some(decoded.and_then(|d| {
        let s = String::from_utf8(d).map_err(|_| ())?;
        let (id, secret) = s.split_once(':').ok_or(())?;
        let dec = |x: &str| {
            url::form_urlencoded::parse(format!("x={x}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok((dec(id), dec(secret)))
    }))
}

pub(crate) async fn token(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.counters.token_requests.fetch_add(1, Ordering::Relaxed);
    match token_steps(&s, &headers, &body) {
        Ok(resp) | Err(resp) => resp,
    }
}

/// The form's fields, by name.
struct Form(Vec<(String, String)>);

impl Form {
    fn field(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

fn bad_request(error: &str, description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, error, description)
}

/// Form → grant type → client → scopes by grant → a token (and a refresh token).
fn token_steps(s: &SimState, headers: &HeaderMap, body: &[u8]) -> Result<Response, Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(bad_request(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let form = Form(url::form_urlencoded::parse(body).into_owned().collect());
    let grant = form.field("grant_type").unwrap_or_default();
    *lock(&s.grants)
        .entry(if grant.is_empty() {
            "(none)".into()
        } else {
            grant.clone()
        })
        .or_insert(0) += 1;
    let (creds, used_basic) = client_credentials(headers, &form)?;
    if grant.is_empty() {
        return Err(bad_request("invalid_request", "grant_type is required"));
    }
    if !matches!(
        grant.as_str(),
        "client_credentials" | "password" | "refresh_token"
    ) {
        return Err(bad_request(
            "unsupported_grant_type",
            "supported: client_credentials, password, refresh_token",
        ));
    }
    let invalid_client = || invalid_client(used_basic);
    let (client_id, client_secret) = creds.ok_or_else(invalid_client)?;
    let allowed = client_scopes(s, &client_id, &client_secret).ok_or_else(invalid_client)?;
    let (granted, refresh_for) = match grant.as_str() {
        "client_credentials" => (client_grant(s, &client_id, allowed, &form)?, None),
        "password" => password_grant(s, &client_id, &form)?,
        _ => refresh_grant(s, &client_id, &form)?,
    };
    Ok(issue(s, client_id, granted, refresh_for))
}

/// The client's id and secret from HTTP Basic or the form (not both), and whether Basic
/// was used.
#[allow(clippy::type_complexity)]
fn client_credentials(
    headers: &HeaderMap,
    form: &Form,
) -> Result<(Option<(String, String)>, bool), Response> {
    let basic = basic(headers);
    let post_id = form.field("client_id");
    let post_secret = form.field("client_secret");
    let used_basic = basic.is_some();
    if used_basic && (post_id.is_some() || post_secret.is_some()) {
        return Err(bad_request(
            "invalid_request",
            "use HTTP Basic or client_id/client_secret form fields, not both",
        ));
    }
    let creds = match basic {
        Some(Ok(pair)) => Some(pair),
        Some(Err(())) => {
            return Err(bad_request(
                "invalid_request",
                "malformed Basic credentials",
            ));
        }
        None => post_id.map(|id| (id, post_secret.unwrap_or_default())),
    };
    Ok((creds, used_basic))
}

fn invalid_client(used_basic: bool) -> Response {
    let mut r = oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "unknown client or wrong secret",
    );
    if used_basic {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"cxone\""),
        );
    }
    r
}

fn requested_scopes(form: &Form) -> Option<Vec<String>> {
    form.field("scope")
        .map(|sc| sc.split_whitespace().map(str::to_string).collect())
}

fn client_grant(
    s: &SimState,
    client_id: &str,
    allowed: &[&str],
    form: &Form,
) -> Result<Vec<String>, Response> {
    if client_id == s.credentials.app_client_id {
        return Err(bad_request(
            "unauthorized_client",
            "this app client may only use the password grant with an access key",
        ));
    }
    scopes_for(allowed, requested_scopes(form)).map_err(|bad| invalid_scope(&bad))
}

fn password_grant(
    s: &SimState,
    client_id: &str,
    form: &Form,
) -> Result<(Vec<String>, Option<String>), Response> {
    let c = &s.credentials;
    if client_id != c.app_client_id {
        return Err(bad_request(
            "unauthorized_client",
            "the password grant needs the registered app's client credentials",
        ));
    }
    let (user, pass) = (
        form.field("username").unwrap_or_default(),
        form.field("password").unwrap_or_default(),
    );
    if user != c.access_key_id || pass != c.access_key_secret {
        return Err(bad_request(
            "invalid_grant",
            "unknown access key or wrong secret",
        ));
    }
    let granted =
        scopes_for(ALL_SCOPES, requested_scopes(form)).map_err(|bad| invalid_scope(&bad))?;
    Ok((granted, Some(user)))
}

fn refresh_grant(
    s: &SimState,
    client_id: &str,
    form: &Form,
) -> Result<(Vec<String>, Option<String>), Response> {
    let Some(rt) = form.field("refresh_token") else {
        return Err(bad_request("invalid_request", "refresh_token is required"));
    };
    let found = lock(&s.auth).refresh.remove(&rt);
    match found {
        Some((cid, user, scopes)) if cid == client_id => Ok((scopes, Some(user))),
        _ => Err(bad_request(
            "invalid_grant",
            "unknown, used or revoked refresh token",
        )),
    }
}

/// Records and returns a fresh access token, with a refresh token for a user grant.
fn issue(
    s: &SimState,
    client_id: String,
    granted: Vec<String>,
    refresh_for: Option<String>,
) -> Response {
    let ttl = s.runtime().token_ttl_secs;
    let access = s.random_token();
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": granted.join(" "),
    });
    {
        let mut auth = lock(&s.auth);
        auth.tokens.insert(
            access,
            TokenInfo {
                scopes: granted.iter().cloned().collect::<HashSet<_>>(),
                expires_at: Instant::now() + Duration::from_secs(ttl),
            },
        );
        if let Some(user) = refresh_for {
            let rt = s.random_token();
            auth.refresh.insert(rt.clone(), (client_id, user, granted));
            body["refresh_token"] = json!(rt);
        }
    }
    s.counters.tokens_issued.fetch_add(1, Ordering::Relaxed);
    let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The scopes to grant, or the requested scope the client may not have.
fn scopes_for(allowed: &[&str], requested: Option<Vec<String>>) -> Result<Vec<String>, String> {
    match requested {
        Some(req) if !req.is_empty() => match req.iter().find(|r| !allowed.contains(&r.as_str())) {
            Some(bad) => Err(bad.clone()),
            None => Ok(req),
        },
        _ => Ok(allowed.iter().map(|s| s.to_string()).collect()),
    }
}

fn invalid_scope(bad: &str) -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_scope",
        &format!("this client may not request the scope {bad}"),
    )
}
