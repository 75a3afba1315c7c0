//! The real surface's issuer (spec §2): both `.well-known` documents, the token endpoint
//! (the access-key password grant with the app's HTTP Basic credentials, and refresh),
//! the access-key token route of UserHub (§2.5), and the keys its JWTs are signed with.
//!
//! The JWTs are signed with Ed25519 (`EdDSA`, published at `/auth/jwks` as an OKP key)
//! where CXone uses RS256: the spec is silent on what a client must do with the
//! signature, and the emulator carries no RSA implementation.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use serde_json::{Value, json};

use super::{API, ISSUER, USERHUB, base};
use crate::state::real::Issued;
use crate::state::{SimState, lock};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
/// Refresh tokens live this long (the vendor sample's 7200 s).
const REFRESH_TTL: u64 = 7200;

pub(super) fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/.well-known/openid-configuration", get(openid))
        .route("/.well-known/cxone-configuration", get(configuration))
        .route("/auth/jwks", get(jwks))
        .route("/auth/token", post(token))
}

/// The UserHub access-key token route (§2.5).
pub(super) async fn access_key_token(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.real
        .counters
        .token_requests
        .fetch_add(1, Ordering::Relaxed);
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (Some(id), Some(secret)) = (v["accessKeyId"].as_str(), v["accessKeySecret"].as_str())
    else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body is {\"accessKeyId\", \"accessKeySecret\"}",
        );
    };
    match check_key(&s, id, secret) {
        Ok(()) => issue(&s, &headers, "access-key", id),
        Err(r) => r,
    }
}

async fn openid(headers: HeaderMap) -> Response {
    let issuer = format!("{}{ISSUER}", base(&headers));
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth/authorize"),
        "token_endpoint": format!("{issuer}/auth/token"),
        "end_session_endpoint": format!("{issuer}/auth/authorize/logout"),
        "userinfo_endpoint": format!("{issuer}/auth/userinfo"),
        "jwks_uri": format!("{issuer}/auth/jwks"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA"],
        "scopes_supported": ["openid"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "code_challenge_methods_supported": ["S256"],
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn configuration(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let tenant_id = lock(&s.real.tenant).tenant_id.clone();
    match q.get("tenantId") {
        Some(t) if *t == tenant_id => {}
        Some(_) => return super::error(StatusCode::NOT_FOUND, "unknown tenant"),
        None => return super::error(StatusCode::BAD_REQUEST, "tenantId is required"),
    }
    let b = base(&headers);
    let body = json!({
        "private": false,
        "ui_endpoint": format!("{b}{USERHUB}"),
        "auth_endpoint": format!("{b}{USERHUB}"),
        "api_endpoint": format!("{b}{API}"),
        "domain": "niceincontact.com",
        "uhDomain": "nice-incontact.com",
        "area": "na1",
        "cluster": "B32",
        "acdDomain": "nice-incontact.com",
        "tenantId": tenant_id,
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn jwks(State(s): State<Arc<SimState>>) -> Response {
    let x = B64.encode(s.real.key.verifying_key().to_bytes());
    let body = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA", "use": "sig", "kid": "sim-1"}]});
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r = (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The app's client credentials: HTTP Basic, or the form's fields (not both).
fn client(headers: &HeaderMap, form: &[(String, String)]) -> Option<(String, String)> {
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        return Some((id.to_string(), secret.to_string()));
    }
    Some((
        field("client_id")?,
        field("client_secret").unwrap_or_default(),
    ))
}

/// A known, active key with this secret; a grant records its use.
fn check_key(s: &SimState, id: &str, secret: &str) -> Result<(), Response> {
    let refuse_created = lock(&s.real.settings).refuse_created_keys;
    let mut t = lock(&s.real.tenant);
    match t.keys.iter_mut().find(|k| k.id == id) {
        Some(k) if k.created && refuse_created => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "this access key is refused (set by the control API)",
        )),
        Some(k) if k.secret == secret && k.is_active => {
            k.last_used = Some(time::OffsetDateTime::now_utc().unix_timestamp());
            Ok(())
        }
        Some(k) if k.secret == secret => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the access key is inactive",
        )),
        _ => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown access key or wrong secret",
        )),
    }
}

async fn token(State(s): State<Arc<SimState>>, headers: HeaderMap, body: Bytes) -> Response {
    s.real
        .counters
        .token_requests
        .fetch_add(1, Ordering::Relaxed);
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let c = &s.credentials;
    match client(&headers, &form) {
        Some((id, secret)) if id == c.cxone_client_id && secret == c.cxone_client_secret => {}
        _ => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unknown client or wrong secret",
            );
        }
    }
    match field("grant_type").as_deref() {
        Some("password") => {
            let (user, pass) = (
                field("username").unwrap_or_default(),
                field("password").unwrap_or_default(),
            );
            match check_key(&s, &user, &pass) {
                Ok(()) => issue(&s, &headers, &c.cxone_client_id, &user),
                Err(r) => r,
            }
        }
        Some("refresh_token") => {
            let rt = field("refresh_token").unwrap_or_default();
            let found = lock(&s.real.refresh).remove(&rt);
            match found {
                Some((cid, key)) if cid == c.cxone_client_id => {
                    issue(&s, &headers, &c.cxone_client_id, &key)
                }
                _ => oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "unknown, used or expired refresh token",
                ),
            }
        }
        Some(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "supported: password (an access key), refresh_token",
        ),
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        ),
    }
}

/// A signed JWT of `claims`.
fn jwt(s: &SimState, claims: &Value) -> String {
    let head = B64.encode(br#"{"alg":"EdDSA","typ":"JWT","kid":"sim-1"}"#);
    let body = B64.encode(claims.to_string().as_bytes());
    let signing_input = format!("{head}.{body}");
    let sig = B64.encode(s.real.key.sign(signing_input.as_bytes()).to_bytes());
    format!("{signing_input}.{sig}")
}

/// The §2.2 token response for `access_key`: access, id and refresh tokens.
fn issue(s: &SimState, headers: &HeaderMap, client_id: &str, access_key: &str) -> Response {
    let ttl = s.runtime().token_ttl_secs;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (tenant_id, user) = {
        let t = lock(&s.real.tenant);
        let user = t
            .keys
            .iter()
            .find(|k| k.id == access_key)
            .map(|k| k.user_id.clone())
            .unwrap_or_default();
        (t.tenant_id.clone(), user)
    };
    let iss = format!("{}{ISSUER}", base(headers));
    let nonce = s.random_token();
    let common = json!({
        "iss": iss, "aud": client_id, "tenantId": tenant_id, "tenant": "cxguard-sim",
        "icBUId": 4_600_123, "icClusterId": "B32", "iat": now, "exp": now + ttl as i64,
    });
    let mut access = common.clone();
    access["sub"] = json!(format!("user:{user}"));
    access["role"] = json!({"legacyId": "Administrator", "id": "role-admin"});
    access["jti"] = json!(nonce);
    let mut id = common;
    id["sub"] = json!(format!("user:{user}"));
    id["userId"] = json!(user);
    id["area"] = json!("na1");
    let access_token = jwt(s, &access);
    let refresh_token = jwt(
        s,
        &json!({"iss": iss, "aud": client_id, "id": s.random_token(), "iat": now, "exp": now + REFRESH_TTL as i64}),
    );
    lock(&s.real.tokens).insert(
        access_token.clone(),
        Issued {
            expires_at: Instant::now() + Duration::from_secs(ttl),
        },
    );
    lock(&s.real.refresh).insert(
        refresh_token.clone(),
        (client_id.to_string(), access_key.to_string()),
    );
    s.real
        .counters
        .tokens_issued
        .fetch_add(1, Ordering::Relaxed);
    let mut r = (
        StatusCode::OK,
        axum::Json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "refresh_token": refresh_token,
            "id_token": jwt(s, &id),
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        })),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
