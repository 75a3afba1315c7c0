//! One request, sent until it succeeds or must not be sent again.
//!
//! Every attempt waits for the pacer, carries a current token, and is classified:
//! - 2xx: done.
//! - 401 `invalid_token`: the token is dropped, a new one fetched, and the request replayed
//!   once (the server refused it before acting).
//! - 403 `insufficient_scope`: an error naming the scope; never retried.
//! - 429: wait exactly `Retry-After`, then retry — whatever the method, since the server
//!   refuses before acting (spec §2's check order). Without `Retry-After` (CXone's real
//!   surface sends none), back off exponentially with full jitter.
//! - 500/502/503/504, reset, timeout: retried only when the request is idempotent (spec
//!   §2: GET, PUT, PATCH with `If-Match`, POST/PATCH with `X-Idempotency-Key`, and the
//!   operations idempotent by nature). A 503 with `Retry-After` waits exactly that; others
//!   back off with full jitter. A connection that could not even be opened is retried for
//!   every method, since nothing was sent.
//! - any other status: an `Api` error with the problem document.
//!
//! Retrying stops after `max_attempts` or when the next wait would cross the deadline.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;

use crate::Inner;
use crate::error::{Error, Problem, Result};

/// One API call, described before it is sent.
pub(crate) struct Call {
    pub method: Method,
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    /// Wiped when the call is dropped: a body may carry a secret (a rotation).
    pub body: Option<zeroize::Zeroizing<Vec<u8>>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub idempotent: bool,
    /// The response may be as large as a contact page (`Settings::max_page_body`).
    pub large: bool,
    /// Which base the segments join below.
    pub base: Base,
    /// A URL a page named (`_links.next`), used as written when it is on the base's
    /// origin; the segments and query are then not used.
    pub next: Option<url::Url>,
    /// Paced as this surface instead of its own path's (a DFO message write counts
    /// against its case's budget).
    pub paced_as: Option<String>,
}

/// Where a call's segments join: the configured base (the tutorial surface), or one of
/// the real surface's discovered hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base {
    /// `Settings::base_url`.
    Tenant,
    /// `api_endpoint` (privacy, data policies).
    Api,
    /// `{api_endpoint}/dfo/3.0/`.
    Dfo,
    /// `{api_endpoint}/inContactAPI/services/{version}/`.
    Acd,
    /// The UserHub host (access keys).
    UserHub,
}

impl Call {
    pub(crate) fn new(method: Method, segments: &[&str]) -> Self {
        let idempotent = matches!(
            method,
            Method::GET | Method::PUT | Method::HEAD | Method::DELETE
        );
        Call {
            method,
            segments: segments.iter().map(|s| s.to_string()).collect(),
            query: Vec::new(),
            body: None,
            headers: Vec::new(),
            idempotent,
            large: false,
            base: Base::Tenant,
            next: None,
            paced_as: None,
        }
    }

    /// Paced as `surface` (`Dfo/contacts/{case}`) rather than by its own path.
    pub(crate) fn paced_as(mut self, surface: String) -> Self {
        self.paced_as = Some(surface);
        self
    }

    /// Joins the segments below a real-surface host instead of `base_url`.
    pub(crate) fn on(mut self, base: Base) -> Self {
        self.base = base;
        self
    }

    /// Marks a POST that only reads (a search): safe to send again.
    pub(crate) fn reading(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Sends to a page's `next` link instead, as written (checked against the base's
    /// origin when sent).
    pub(crate) fn at(mut self, next: url::Url) -> Self {
        self.next = Some(next);
        self
    }

    /// Allows the larger body cap of a contact page.
    pub(crate) fn large_response(mut self) -> Self {
        self.large = true;
        self
    }

    pub(crate) fn query(mut self, k: &str, v: impl Into<String>) -> Self {
        self.query.push((k.to_string(), v.into()));
        self
    }

    pub(crate) fn json<T: serde::Serialize>(mut self, body: &T) -> Result<Self> {
        self.body = Some(zeroize::Zeroizing::new(serde_json::to_vec(body).map_err(
            |e| Error::Build(format!("cannot encode the request body: {e}")),
        )?));
        Ok(self)
    }

    pub(crate) fn header(mut self, name: &'static str, value: &str) -> Result<Self> {
        let v = HeaderValue::from_str(value)
            .map_err(|_| Error::Build(format!("{name}: {value:?} is not a valid header value")))?;
        self.headers.push((HeaderName::from_static(name), v));
        Ok(self)
    }

    /// `If-Match` makes a PATCH safe to retry: a replay after the change landed gets 412,
    /// never a second change.
    pub(crate) fn if_match(self, etag: &str) -> Result<Self> {
        let mut c = self.header("if-match", etag)?;
        c.idempotent = true;
        Ok(c)
    }

    /// An idempotency key makes a POST or PATCH safe to retry (spec §2).
    pub(crate) fn idempotency_key(self, key: &str) -> Result<Self> {
        let mut c = self.header("x-idempotency-key", key)?;
        c.idempotent = true;
        Ok(c)
    }

    /// For operations the spec calls idempotent by nature.
    pub(crate) fn idempotent_by_nature(mut self) -> Self {
        self.idempotent = true;
        self
    }

    fn path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }
}

/// A successful response.
pub(crate) struct Reply {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub request_id: String,
}

impl Reply {
    pub(crate) fn decode<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Decode {
            what: what.to_string(),
            request_id: self.request_id.clone(),
            message: e.to_string(),
        })
    }

    pub(crate) fn etag(&self) -> Option<String> {
        self.headers
            .get(reqwest::header::ETAG)?
            .to_str()
            .ok()
            .map(str::to_string)
    }
}

pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string()
}

/// `Retry-After` as a wait and the header's text. Seconds too many for any clock read as
/// `Duration::MAX` (so they exceed every deadline); a date in the past is no wait.
fn retry_after(headers: &HeaderMap) -> Option<(Duration, String)> {
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let text: String = raw.chars().take(40).collect();
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        let wait = raw
            .parse::<u64>()
            .map(Duration::from_secs)
            .unwrap_or(Duration::MAX);
        return Some((wait, text));
    }
    let when =
        time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc2822).ok()?;
    let delta = when - time::OffsetDateTime::now_utc();
    Some((Duration::try_from(delta).unwrap_or(Duration::ZERO), text))
}

/// Refuses path segments a URL would silently drop or resolve (`.`, `..`, empty): an id
/// like that would address another resource than the one named.
pub(crate) fn check_segments(segments: &[String]) -> Result<()> {
    for s in segments {
        if s.is_empty() || s == "." || s == ".." {
            return Err(Error::Build(format!(
                "an id cannot be {s:?}: it would address another resource once placed in the URL path"
            )));
        }
    }
    Ok(())
}

/// The `scope="…"` of a `WWW-Authenticate: Bearer error="insufficient_scope"`.
fn needed_scope(headers: &HeaderMap) -> Option<String> {
    let v = headers
        .get(reqwest::header::WWW_AUTHENTICATE)?
        .to_str()
        .ok()?;
    let start = v.find("scope=\"")? + 7;
    let end = v[start..].find('"')? + start;
    Some(v[start..end].to_string())
}

/// The `Authorization` header of a request, marked sensitive (kept out of debug output).
fn bearer(token: &str) -> Result<HeaderValue> {
    let text = zeroize::Zeroizing::new(format!("Bearer {token}"));
    let mut v = HeaderValue::from_str(&text).map_err(|_| {
        Error::Build("the token endpoint issued a token that cannot be sent in a header".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// What one attempt led to.
enum Next {
    Done(Reply),
    Fail(Error),
    /// Retry after this wait (`None`: back off); the wait comes with the `Retry-After`
    /// text it was read from.
    Retry(Error, Option<(Duration, String)>),
    /// Replay at once with a fresh token.
    Reauth(Error),
}

/// A call's resolved destination.
struct Target {
    url: url::Url,
    uri: http::Uri,
    surface: String,
    method: String,
    path: String,
}

impl Inner {
    pub(crate) async fn execute(&self, call: Call) -> Result<Reply> {
        check_segments(&call.segments)?;
        let target = self.target(&call).await?;
        let policy = &self.settings.retry;
        let start = Instant::now();
        let mut attempt = 0u32;
        let mut reauthed = false;
        loop {
            attempt += 1;
            let (err, wait) = match self.attempt(&call, &target).await {
                Next::Done(r) => return Ok(r),
                Next::Fail(e) => return Err(e),
                Next::Reauth(e) if reauthed => return Err(crate::retry::token_rejected(e)),
                Next::Reauth(_) => {
                    reauthed = true;
                    attempt -= 1;
                    tracing::debug!(method = %target.method, path = %target.path, "token refused; fetching a new one and replaying");
                    continue;
                }
                Next::Retry(e, wait) => (e, wait),
            };
            let delay = crate::retry::delay(
                policy,
                &target.method,
                &target.path,
                start,
                attempt,
                err,
                wait,
            )?;
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
    }

    /// Where a call goes: its URL (the base URL as written, plus encoded segments), the
    /// pacing surface and the names used in errors.
    async fn target(&self, call: &Call) -> Result<Target> {
        let base = self.base_of(call.base).await?;
        let url = match &call.next {
            Some(next) => {
                if next.origin() != base.origin() || next.scheme() != base.scheme() {
                    return Err(Error::Decode {
                        what: "a page's next link".into(),
                        request_id: "none".into(),
                        message: format!(
                            "it names {}, not the host of {base}; refusing to send the token elsewhere",
                            next.origin().ascii_serialization()
                        ),
                    });
                }
                next.clone()
            }
            None => {
                let mut url = base.clone();
                url.path_segments_mut()
                    .map_err(|_| Error::Build("base_url cannot have path segments".into()))?
                    .pop_if_empty()
                    .extend(call.segments.iter());
                if !call.query.is_empty() {
                    url.query_pairs_mut().extend_pairs(call.query.iter());
                }
                url
            }
        };
        let uri = crate::wire::uri_of(&url)?;
        let mut surface = call
            .segments
            .iter()
            .take(3)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("/");
        if call.base != Base::Tenant {
            surface = format!("{:?}/{surface}", call.base);
        }
        if let Some(p) = &call.paced_as {
            surface.clone_from(p);
        }
        Ok(Target {
            url,
            uri,
            surface,
            method: call.method.as_str().to_string(),
            path: call.path(),
        })
    }

    /// The URL a base names: the configured one, or the tenant's discovered host.
    async fn base_of(&self, base: Base) -> Result<url::Url> {
        if base == Base::Tenant {
            return Ok(self.settings.base_url.clone());
        }
        let t = self
            .tenant
            .get_or_try_init(|| self.auth.discover_tenant())
            .await?;
        Ok(match base {
            Base::Tenant => self.settings.base_url.clone(),
            Base::Api => t.api.clone(),
            Base::Dfo => t.dfo.clone(),
            Base::Acd => t.acd.clone(),
            Base::UserHub => t.userhub.clone(),
        })
    }

    /// One paced, authenticated send and the verdict on its answer.
    async fn attempt(&self, call: &Call, t: &Target) -> Next {
        self.pacer.acquire(&t.surface, t.method != "GET").await;
        let token = match self.auth.token().await {
            Ok(t) => t,
            Err(e) => {
                self.pacer.done(&t.surface, None);
                return Next::Fail(e);
            }
        };
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let auth = match bearer(token.value.expose_secret()) {
            Ok(h) => h,
            Err(e) => {
                self.pacer.done(&t.surface, None);
                return Next::Fail(e);
            }
        };
        let mut headers = HeaderMap::with_capacity(call.headers.len() + 2);
        headers.insert(reqwest::header::AUTHORIZATION, auth);
        for (k, v) in &call.headers {
            headers.append(k.clone(), v.clone());
        }
        if call.body.is_some() {
            headers.insert(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let outcome = self
            .wire
            .send(crate::wire::Outgoing {
                method: &call.method,
                url: &t.url,
                uri: &t.uri,
                headers,
                body: call.body.as_ref().map(|b| Bytes::copy_from_slice(b)),
                timeout: self.settings.request_timeout,
                cap: if call.large {
                    self.settings.max_page_body
                } else {
                    self.settings.max_body
                },
            })
            .await;
        match outcome {
            Ok((status, headers, body)) => {
                self.pacer.done(&t.surface, Some(&headers));
                self.judge(
                    status,
                    headers,
                    Bytes::from(body),
                    call,
                    &t.method,
                    &t.path,
                    &t.surface,
                    token.id,
                )
            }
            Err(e) => {
                self.pacer.done(&t.surface, None);
                if e.worth_resending(call.idempotent) {
                    Next::Retry(e, None)
                } else {
                    Next::Fail(e)
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn judge(
        &self,
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        call: &Call,
        method: &str,
        path: &str,
        surface: &str,
        token_id: u64,
    ) -> Next {
        let request_id = request_id(&headers);
        if status.is_success() {
            return Next::Done(Reply {
                headers,
                body,
                request_id,
            });
        }
        let problem: Problem = serde_json::from_slice(&body).unwrap_or_default();
        let api = |problem: Problem| Error::Api {
            method: method.to_string(),
            path: path.to_string(),
            status: status.as_u16(),
            problem: Box::new(problem),
            request_id: request_id.clone(),
        };
        match status.as_u16() {
            401 => {
                self.auth.invalidate(token_id);
                Next::Reauth(api(problem))
            }
            403 => match needed_scope(&headers) {
                Some(scope) => Next::Fail(Error::MissingScope {
                    method: method.to_string(),
                    path: path.to_string(),
                    scope,
                    request_id,
                }),
                None => Next::Fail(api(problem)),
            },
            429 => {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                self.pacer.refused(surface);
                // CXone's real surface sends no reliable Retry-After (spec §2.6, §4.1):
                // without one, back off exponentially with full jitter.
                let wait = retry_after(&headers);
                Next::Retry(
                    Error::RateLimited {
                        method: method.to_string(),
                        path: path.to_string(),
                        retry_after: wait.as_ref().map(|w| w.0),
                        request_id,
                    },
                    wait,
                )
            }
            _ => {
                let err = api(problem);
                if !err.worth_resending(call.idempotent) {
                    return Next::Fail(err);
                }
                let wait = if status == StatusCode::SERVICE_UNAVAILABLE {
                    retry_after(&headers)
                } else {
                    None
                };
                Next::Retry(err, wait)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_retry_after_and_scope() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some((Duration::from_secs(3), "3".into())));
        h.insert(
            "retry-after",
            HeaderValue::from_static("99999999999999999999999999"),
        );
        assert_eq!(retry_after(&h).unwrap().0, Duration::MAX);
        h.insert(
            "www-authenticate",
            HeaderValue::from_static(
                "Bearer error=\"insufficient_scope\", scope=\"contact:write\"",
            ),
        );
        assert_eq!(needed_scope(&h).as_deref(), Some("contact:write"));
    }

    #[test]
    fn dot_segments_are_refused() {
        for bad in [".", "..", ""] {
            let e = check_segments(&["api".into(), bad.into()]).unwrap_err();
            assert!(e.to_string().contains("cannot be"), "{e}");
        }
        check_segments(&["api".into(), "c-1".into(), "...".into()]).unwrap();
    }

    #[test]
    fn idempotency_by_method_and_header() {
        assert!(Call::new(Method::GET, &["a"]).idempotent);
        assert!(!Call::new(Method::POST, &["a"]).idempotent);
        assert!(!Call::new(Method::PATCH, &["a"]).idempotent);
        assert!(
            Call::new(Method::PATCH, &["a"])
                .if_match("\"x\"")
                .unwrap()
                .idempotent
        );
        assert!(
            Call::new(Method::POST, &["a"])
                .idempotency_key("k")
                .unwrap()
                .idempotent
        );
    }
}
