//! OAuth tokens: one form POST and an in-memory cache. A token is refreshed ahead of its
//! expiry, and only one refresh is ever in flight: concurrent callers wait for it and
//! share its result. Tokens are never written to disk.
//!
//! The token endpoint is the configured `token_url`, used exactly as written, or the
//! `token_endpoint` of the issuer's OpenID discovery document (RFC 8414). What the
//! endpoint answers is bounded: a lifetime is capped at [`MAX_TOKEN_LIFETIME`], a body at
//! `max_body`, a failure is remembered for [`FAILURE_BACKOFF`] so that health checks
//! cannot make cxguard hammer the endpoint, and no redirect is followed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{Error, OAuthRefusal, Result};
use crate::settings::{Grant, MAX_TOKEN_LIFETIME, Settings};

/// How long a failed token request is remembered before the endpoint is asked again.
pub(crate) const FAILURE_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct Token {
    /// Distinguishes tokens so a 401 invalidates only the token it was sent with.
    pub id: u64,
    pub value: SecretString,
    pub refresh_at: Instant,
    pub refresh_token: Option<SecretString>,
    /// The scopes the token endpoint says it granted (`scope`), if it said.
    pub scope: Option<String>,
    /// What the token says of its tenant (the id token's claims, else the access
    /// token's): CXone's discovery needs the `tenantId`.
    pub claims: Option<crate::tenant::Claims>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    /// Kept as JSON so that any number (negative, fractional, beyond u64) is handled
    /// rather than refused by the decoder.
    expires_in: Option<serde_json::Value>,
    refresh_token: Option<SecretString>,
    scope: Option<String>,
    id_token: Option<SecretString>,
}

/// The lifetime a token response claims, within `1 s ..= MAX_TOKEN_LIFETIME`.
fn lifetime(expires_in: Option<&serde_json::Value>) -> Duration {
    let secs = match expires_in {
        None => 3600.0,
        Some(v) => v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse::<f64>().ok()))
            .unwrap_or(3600.0),
    };
    let max = MAX_TOKEN_LIFETIME.as_secs_f64();
    let secs = if secs.is_nan() {
        3600.0
    } else {
        secs.clamp(1.0, max)
    };
    Duration::from_secs_f64(secs)
}

#[derive(Deserialize)]
struct Discovery {
    issuer: Option<String>,
    token_endpoint: Option<String>,
}

/// A failure remembered for [`FAILURE_BACKOFF`].
struct Failure {
    at: Instant,
    message: String,
    refused: bool,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    error_description: Option<String>,
}

pub(crate) struct TokenSource {
    http: reqwest::Client,
    /// Named in a transport error when one carried the request.
    proxies: crate::wire::Proxies,
    settings: Settings,
    scopes: Option<String>,
    /// The token endpoint, once known (at once, or after discovery).
    endpoint: tokio::sync::OnceCell<url::Url>,
    current: RwLock<Option<Arc<Token>>>,
    failure: std::sync::Mutex<Option<Failure>>,
    refreshing: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    pub requests: AtomicU64,
}

/// Refresh this long before expiry: a tenth of the lifetime, at most a minute.
fn margin(ttl: Duration) -> Duration {
    (ttl / 10).min(Duration::from_secs(60))
}

impl TokenSource {
    pub(crate) fn new(
        http: reqwest::Client,
        settings: Settings,
        proxies: crate::wire::Proxies,
    ) -> Self {
        let endpoint = match settings.issuer {
            None => tokio::sync::OnceCell::new_with(Some(settings.token_url.clone())),
            Some(_) => tokio::sync::OnceCell::new(),
        };
        TokenSource {
            http,
            proxies,
            scopes: settings.scopes.as_ref().map(|s| s.join(" ")),
            settings,
            endpoint,
            current: RwLock::new(None),
            failure: std::sync::Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
            requests: AtomicU64::new(0),
        }
    }

    fn cached(&self) -> Option<Arc<Token>> {
        let t = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        (Instant::now() < t.refresh_at).then_some(t)
    }

    /// A token valid for a while yet, fetching one if needed.
    pub(crate) async fn token(&self) -> Result<Arc<Token>> {
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        if let Some(f) = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let ago = f.at.elapsed();
            if ago < FAILURE_BACKOFF {
                return Err(Error::TokenBackoff {
                    ago,
                    retry_in: FAILURE_BACKOFF - ago,
                    last: f.message.clone(),
                    refused: f.refused,
                });
            }
        }
        let previous = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let t = match self.fetch(previous.as_deref()).await {
            Ok(t) => Arc::new(t),
            Err(e) => {
                *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(Failure {
                    at: Instant::now(),
                    message: e.to_string(),
                    refused: e.is_auth(),
                });
                return Err(e);
            }
        };
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(t.clone());
        Ok(t)
    }

    /// The scopes the current token was granted, as the token endpoint listed them.
    pub(crate) fn granted(&self) -> Option<Vec<String>> {
        let cur = self.current.read().unwrap_or_else(|e| e.into_inner());
        let scope = cur.as_ref()?.scope.as_ref()?;
        Some(scope.split_whitespace().map(str::to_string).collect())
    }

    /// The token endpoint: as configured, or from the issuer's discovery document.
    async fn endpoint(&self) -> Result<&url::Url> {
        self.endpoint
            .get_or_try_init(|| async {
                let issuer = self
                    .settings
                    .issuer
                    .as_ref()
                    .ok_or_else(|| Error::Build("no token URL and no issuer".into()))?;
                self.discover(issuer).await
            })
            .await
    }

    /// Reads `{issuer}/.well-known/openid-configuration` and checks that it speaks for
    /// this issuer (RFC 8414 §3.3) and names an acceptable token endpoint.
    async fn discover(&self, issuer: &url::Url) -> Result<url::Url> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.as_str().trim_end_matches('/')
        );
        let bad = |message: String| Error::Discovery {
            url: url.clone(),
            message,
        };
        let req = self
            .http
            .get(&url)
            .timeout(self.settings.request_timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        let (status, _, body) = crate::wire::receive(
            req,
            "GET",
            &url,
            self.settings.request_timeout,
            self.settings.max_body,
            &self.proxies,
        )
        .await?;
        if !status.is_success() {
            return Err(bad(format!("answered {status}")));
        }
        let doc: Discovery = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("not a discovery document: {e}")))?;
        let said = doc.issuer.unwrap_or_default();
        if said.trim_end_matches('/') != issuer.as_str().trim_end_matches('/') {
            return Err(bad(format!(
                "the document names issuer {said:?}, not {:?}; refusing a document that speaks for another issuer",
                issuer.as_str()
            )));
        }
        let endpoint = doc
            .token_endpoint
            .ok_or_else(|| bad("no token_endpoint".into()))?;
        let endpoint = crate::settings::parse_http_url("token_endpoint", &endpoint)
            .map_err(|e| bad(e.to_string()))?;
        crate::settings::check_transport_security(
            "token_endpoint",
            &endpoint,
            self.settings.allow_insecure_http,
        )
        .map_err(|e| bad(e.to_string()))?;
        tracing::debug!(token_endpoint = %endpoint, "discovered the token endpoint");
        Ok(endpoint)
    }

    /// The tenant behind the current token (spec §2.6): its `tenantId` claim, then the
    /// issuer's `cxone-configuration` for it. Without a bearer token, as NICE's SDK calls
    /// it; the body bounded, no redirect followed.
    pub(crate) async fn discover_tenant(&self) -> Result<crate::tenant::Tenant> {
        let token = self.token().await?;
        let issuer = self
            .settings
            .issuer
            .as_ref()
            .ok_or_else(|| Error::Build("issuer: needed to discover the tenant".into()))?;
        let tenant_id = crate::tenant::tenant_id(token.claims.as_ref(), issuer)?;
        let url = crate::tenant::configuration_url(issuer, &tenant_id)?;
        let req = self
            .http
            .get(url.clone())
            .timeout(self.settings.request_timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        let (status, _, body) = crate::wire::receive(
            req,
            "GET",
            url.as_str(),
            self.settings.request_timeout,
            self.settings.max_body,
            &self.proxies,
        )
        .await?;
        if !status.is_success() {
            return Err(Error::Discovery {
                url: url.to_string(),
                message: format!("answered {status}"),
            });
        }
        let t = crate::tenant::from_document(
            &url,
            &body,
            tenant_id,
            token.claims.as_ref(),
            &self.settings.surface,
            self.settings.allow_insecure_http,
        )?;
        tracing::debug!(tenant = %t.tenant_id, api = %t.api, "discovered the tenant");
        Ok(t)
    }

    /// Forgets token `id` after the API refused it, unless a newer one replaced it.
    pub(crate) fn invalidate(&self, id: u64) {
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_some_and(|t| t.id == id)
            && let Some(t) = cur.take()
        {
            // Keep the refresh token: it may still be good even if the access token is not.
            *cur = Some(Arc::new(Token {
                id: t.id,
                value: t.value.clone(),
                refresh_at: Instant::now(),
                refresh_token: t.refresh_token.clone(),
                scope: t.scope.clone(),
                claims: t.claims.clone(),
            }));
        }
    }

    async fn fetch(&self, previous: Option<&Token>) -> Result<Token> {
        // With the password grant, a refresh token is tried first; if it is refused we
        // fall back to the access key.
        if let (Grant::AccessKey { .. }, Some(rt)) = (
            &self.settings.grant,
            previous.and_then(|p| p.refresh_token.as_ref()),
        ) {
            let form = vec![
                ("grant_type", Zeroizing::new("refresh_token".to_string())),
                (
                    "refresh_token",
                    Zeroizing::new(rt.expose_secret().to_string()),
                ),
            ];
            match self.post_with_retry(form).await {
                Ok(t) => return Ok(t),
                Err(Error::Auth { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        // The form's strings are wiped from memory when dropped.
        let mut form: Vec<(&str, Zeroizing<String>)> = Vec::new();
        match &self.settings.grant {
            Grant::ClientCredentials { .. } => {
                form.push(("grant_type", Zeroizing::new("client_credentials".into())))
            }
            Grant::AccessKey {
                access_key_id,
                access_key_secret,
                ..
            } => {
                form.push(("grant_type", Zeroizing::new("password".into())));
                form.push(("username", Zeroizing::new(access_key_id.clone())));
                form.push((
                    "password",
                    Zeroizing::new(access_key_secret.expose_secret().to_string()),
                ));
            }
        }
        if let Some(s) = &self.scopes {
            form.push(("scope", Zeroizing::new(s.clone())));
        }
        self.post_with_retry(form).await
    }

    async fn post_with_retry(&self, form: Vec<(&str, Zeroizing<String>)>) -> Result<Token> {
        let start = Instant::now();
        let retry = &self.settings.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.post_once(&form).await;
            match result {
                Ok(t) => return Ok(t),
                Err(e) if e.is_retryable() => {
                    let delay = crate::retry::backoff(retry, attempt);
                    if attempt >= retry.max_attempts
                        || delay > retry.deadline.saturating_sub(start.elapsed())
                    {
                        return Err(Error::GaveUp {
                            attempts: attempt,
                            elapsed: start.elapsed(),
                            last: Box::new(e),
                        });
                    }
                    tracing::debug!(attempt, ?delay, error = %e, "token request failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn post_once(&self, form: &[(&str, Zeroizing<String>)]) -> Result<Token> {
        let endpoint = self.endpoint().await?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (client_id, client_secret) = match &self.settings.grant {
            Grant::ClientCredentials {
                client_id,
                client_secret,
            } => (client_id, client_secret),
            Grant::AccessKey {
                client_id,
                client_secret,
                ..
            } => (client_id, client_secret),
        };
        let url = endpoint.as_str();
        let sent = Instant::now();
        let body = form
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>();
        let req = self
            .http
            .post(endpoint.clone())
            .timeout(self.settings.request_timeout)
            .basic_auth(client_id, Some(client_secret.expose_secret()))
            .form(&body);
        let received = crate::wire::receive(
            req,
            "POST",
            url,
            self.settings.request_timeout,
            self.settings.max_body,
            &self.proxies,
        )
        .await;
        drop(body);
        let (status, headers, body) = received?;
        let request_id = crate::transport::request_id(&headers);
        // The body holds the token: its buffer is wiped when dropped.
        let body = Zeroizing::new(body);
        if status.is_success() {
            return self.token_from(&body, sent, request_id);
        }
        Err(refused(status, &body, endpoint, request_id))
    }

    /// A token from a 2xx body, due for refresh a margin before it expires.
    fn token_from(&self, body: &[u8], sent: Instant, request_id: String) -> Result<Token> {
        let t: TokenResponse = serde_json::from_slice(body).map_err(|e| Error::Decode {
            what: "token response".into(),
            request_id,
            message: e.to_string(),
        })?;
        let ttl = lifetime(t.expires_in.as_ref());
        tracing::debug!(expires_in = ?ttl, "obtained an access token");
        // `sent` is now or earlier and `ttl` at most a day: this cannot overflow, but
        // a clock that could still gets "refresh at once", never a panic.
        let refresh_at = sent.checked_add(ttl - margin(ttl)).unwrap_or(sent);
        let claims = t
            .id_token
            .as_ref()
            .and_then(|j| crate::tenant::Claims::of(j.expose_secret()))
            .or_else(|| crate::tenant::Claims::of(t.access_token.expose_secret()));
        Ok(Token {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            value: t.access_token,
            refresh_at,
            refresh_token: t.refresh_token,
            scope: t.scope,
            claims,
        })
    }
}

/// A token endpoint's refusal: a 5xx or 429 is an API error (retryable), anything else
/// an OAuth refusal naming its `error`.
fn refused(
    status: reqwest::StatusCode,
    body: &[u8],
    endpoint: &url::Url,
    request_id: String,
) -> Error {
    if status.is_server_error() || status.as_u16() == 429 {
        let problem = serde_json::from_slice(body).unwrap_or_default();
        return Error::Api {
            method: "POST".into(),
            path: endpoint.path().into(),
            status: status.as_u16(),
            problem: Box::new(problem),
            request_id,
        };
    }
    let refusal = match serde_json::from_slice::<OAuthError>(body) {
        Ok(e) => OAuthRefusal {
            error: e.error,
            description: e.error_description,
        },
        Err(_) => OAuthRefusal {
            error: format!("HTTP {status}"),
            description: None,
        },
    };
    Error::Auth {
        token_url: endpoint.as_str().to_string(),
        refusal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_are_bounded_whatever_the_number() {
        let v = |j: &str| serde_json::from_str::<serde_json::Value>(j).unwrap();
        assert_eq!(lifetime(None), Duration::from_secs(3600));
        assert_eq!(lifetime(Some(&v("120"))), Duration::from_secs(120));
        for huge in ["18446744073709551615", "1e300", "99999999999999999999999"] {
            assert_eq!(lifetime(Some(&v(huge))), MAX_TOKEN_LIFETIME, "{huge}");
        }
        for tiny in ["0", "-5", "-1e300"] {
            assert_eq!(lifetime(Some(&v(tiny))), Duration::from_secs(1), "{tiny}");
        }
        assert_eq!(lifetime(Some(&v("\"90\""))), Duration::from_secs(90));
        assert_eq!(lifetime(Some(&v("null"))), Duration::from_secs(3600));
    }

    #[test]
    fn refresh_margin_scales_with_lifetime() {
        assert_eq!(margin(Duration::from_secs(3600)), Duration::from_secs(60));
        assert_eq!(margin(Duration::from_secs(2)), Duration::from_millis(200));
    }
}
