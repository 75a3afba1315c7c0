//! OAuth tokens: one form POST and an in-memory cache. A token is refreshed ahead of its
//! expiry, and only one refresh is ever in flight: concurrent callers wait for it and
//! share its result. Tokens are never written to disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::{Error, OAuthRefusal, Result};
use crate::settings::{Grant, RetryPolicy};

pub(crate) struct Token {
    /// Distinguishes tokens so a 401 invalidates only the token it was sent with.
    pub id: u64,
    pub value: SecretString,
    pub refresh_at: Instant,
    pub refresh_token: Option<SecretString>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    error_description: Option<String>,
}

pub(crate) struct TokenSource {
    http: reqwest::Client,
    token_url: url::Url,
    grant: Grant,
    scopes: Option<String>,
    retry: RetryPolicy,
    current: RwLock<Option<Arc<Token>>>,
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
        token_url: url::Url,
        grant: Grant,
        scopes: Option<Vec<String>>,
        retry: RetryPolicy,
    ) -> Self {
        TokenSource {
            http,
            token_url,
            grant,
            scopes: scopes.map(|s| s.join(" ")),
            retry,
            current: RwLock::new(None),
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
        let previous = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let t = Arc::new(self.fetch(previous.as_deref()).await?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(t.clone());
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
                refresh_at: Instant::now() - Duration::from_millis(1),
                refresh_token: t.refresh_token.clone(),
            }));
        }
    }

    async fn fetch(&self, previous: Option<&Token>) -> Result<Token> {
        // With the password grant, a refresh token is tried first; if it is refused we
        // fall back to the access key.
        if let (Grant::AccessKey { .. }, Some(rt)) =
            (&self.grant, previous.and_then(|p| p.refresh_token.as_ref()))
        {
            let form = vec![
                ("grant_type", "refresh_token".to_string()),
                ("refresh_token", rt.expose_secret().to_string()),
            ];
            match self.post_with_retry(form).await {
                Ok(t) => return Ok(t),
                Err(Error::Auth { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let mut form: Vec<(&str, String)> = Vec::new();
        match &self.grant {
            Grant::ClientCredentials { .. } => {
                form.push(("grant_type", "client_credentials".into()))
            }
            Grant::AccessKey {
                access_key_id,
                access_key_secret,
                ..
            } => {
                form.push(("grant_type", "password".into()));
                form.push(("username", access_key_id.clone()));
                form.push(("password", access_key_secret.expose_secret().to_string()));
            }
        }
        if let Some(s) = &self.scopes {
            form.push(("scope", s.clone()));
        }
        self.post_with_retry(form).await
    }

    async fn post_with_retry(&self, form: Vec<(&str, String)>) -> Result<Token> {
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.post_once(&form).await;
            match result {
                Ok(t) => return Ok(t),
                Err(e) if e.is_retryable() => {
                    let delay = crate::retry::backoff(&self.retry, attempt);
                    if attempt >= self.retry.max_attempts
                        || start.elapsed() + delay > self.retry.deadline
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

    async fn post_once(&self, form: &[(&str, String)]) -> Result<Token> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (client_id, client_secret) = match &self.grant {
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
        let url = self.token_url.as_str();
        let sent = Instant::now();
        let resp = self
            .http
            .post(self.token_url.clone())
            .basic_auth(client_id, Some(client_secret.expose_secret()))
            .form(form)
            .send()
            .await
            .map_err(|e| crate::transport::classify_send_error("POST", url, e))?;
        let status = resp.status();
        let request_id = crate::transport::request_id(resp.headers());
        let body = resp
            .bytes()
            .await
            .map_err(|e| crate::transport::classify_send_error("POST", url, e))?;
        if status.is_success() {
            let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| Error::Decode {
                what: "token response".into(),
                request_id: request_id.clone(),
                message: e.to_string(),
            })?;
            let ttl = Duration::from_secs(t.expires_in.unwrap_or(3600).max(1));
            tracing::debug!(expires_in = ?ttl, "obtained an access token");
            return Ok(Token {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                value: SecretString::from(t.access_token),
                refresh_at: sent + ttl - margin(ttl),
                refresh_token: t.refresh_token.map(SecretString::from),
            });
        }
        if status.is_server_error() || status.as_u16() == 429 {
            let problem = serde_json::from_slice(&body).unwrap_or_default();
            return Err(Error::Api {
                method: "POST".into(),
                path: self.token_url.path().into(),
                status: status.as_u16(),
                problem: Box::new(problem),
                request_id,
            });
        }
        let refusal = match serde_json::from_slice::<OAuthError>(&body) {
            Ok(e) => OAuthRefusal {
                error: e.error,
                description: e.error_description,
            },
            Err(_) => OAuthRefusal {
                error: format!("HTTP {status}"),
                description: None,
            },
        };
        Err(Error::Auth {
            token_url: url.to_string(),
            refusal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_margin_scales_with_lifetime() {
        assert_eq!(margin(Duration::from_secs(3600)), Duration::from_secs(60));
        assert_eq!(margin(Duration::from_secs(2)), Duration::from_millis(200));
    }
}
