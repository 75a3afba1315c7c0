//! cxone: a client of the CXone API surface in `spec/cxone-api.md`.
//!
//! One [`Client`] holds the connection pool, the token cache and the pacer; it is cheap
//! to clone and safe to share. Each API surface has its own module and accessor:
//! `client.contacts().list().page_size(PageSize::DEFAULT_BULK).stream()`. Every request is paced by the
//! server's `RateLimit-*` headers, authenticated with a cached token, and retried when
//! (and only when) the spec says it is safe — see `transport.rs`.
//!
//! It never depends on the emulator (`cxone-sim`): the two are independent readings of
//! one spec, so a test of one against the other can fail.

#![warn(missing_docs)]

mod auth;
mod error;
pub mod models;
mod pacing;
mod paging;
mod retry;
mod settings;
mod tenant;
mod transport;
mod wire;

pub mod accesskeys;
pub mod acd;
pub mod contacts;
pub mod datastores;
pub mod dfo;
pub mod guests;
pub mod policies;
pub mod privacy;
pub mod secrets;
pub mod webchat;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use contacts::PageSize;
pub use error::{Error, FieldError, OAuthRefusal, Problem, Result, Stage};
pub use settings::{
    CxoneEndpoints, DEFAULT_ACD_VERSION, DEFAULT_ISSUER, DEFAULT_MAX_BODY, DEFAULT_MAX_PAGE_BODY,
    DFO_READS_PER_HOUR, Grant, MAX_DISCOVERED_URL, MAX_TOKEN_LIFETIME, RetryPolicy, Settings,
    Surface, check_transport_security, is_loopback, parse_base_url, parse_http_url,
};
pub use tenant::{Claims, Tenant};
pub use wire::{lanes, set_lane};

/// Counters of what the client did, for reports and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// API requests sent (every attempt counts).
    pub requests: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// 429 responses received.
    pub rate_limited: u64,
    /// Requests to the token endpoint.
    pub token_requests: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
}

struct Inner {
    /// API calls.
    wire: wire::Wire,
    settings: Settings,
    auth: auth::TokenSource,
    pacer: pacing::Pacer,
    stats: Counters,
    /// CXone's discovered tenant (the real surface), once known.
    tenant: tokio::sync::OnceCell<Tenant>,
}

/// A client of one CXone tenant: authenticated, paced to the tenant's rate limits, retrying
/// what is safe to retry, and refusing redirects and oversized bodies. Cheap to clone (one
/// shared connection pool, token cache and pacer).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.settings.base_url.as_str())
            .finish()
    }
}

impl Client {
    /// Validates `settings` and builds the client. No request is sent until the first call.
    pub fn new(settings: Settings) -> Result<Self> {
        settings.validate()?;
        let http = reqwest::Client::builder()
            // A redirect would carry a token or a credential form to another host.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(settings.max_idle_per_host)
            .user_agent(concat!("cxguard-cxone/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Build(format!("cannot build the HTTP client: {e}")))?;
        let proxies = wire::Proxies::from_env();
        let wire = wire::Wire::new(&settings, &http, &proxies)?;
        // The token and discovery requests, a few per hour, go through reqwest.
        let auth = auth::TokenSource::new(http, settings.clone(), proxies);
        let pacer = pacing::Pacer::new(settings.max_rate, settings.dfo_budget());
        Ok(Client {
            inner: Arc::new(Inner {
                wire,
                settings,
                auth,
                pacer,
                stats: Counters::default(),
                tenant: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Obtains a token now (or reuses the cached one): a cheap way to check credentials.
    pub async fn authenticate(&self) -> Result<()> {
        self.inner.auth.token().await.map(|_| ())
    }

    /// The scopes the current token holds: as the token endpoint listed them, else those
    /// asked for (RFC 6749 §5.1); `None` when neither says. Call after [`authenticate`].
    ///
    /// [`authenticate`]: Client::authenticate
    pub fn granted_scopes(&self) -> Option<Vec<String>> {
        self.inner
            .auth
            .granted()
            .or_else(|| self.inner.settings.scopes.clone())
    }

    /// Obtains a token and checks that it was granted every scope in `needed`, before
    /// a command sends anything else. When the token endpoint does not list what it
    /// granted, the scopes asked for are taken as granted (RFC 6749 §5.1); when nothing
    /// was asked for and nothing is listed, nothing can be checked and each request's
    /// 403 speaks instead.
    pub async fn require_scopes(&self, needed: &[&str]) -> Result<()> {
        self.authenticate().await?;
        let granted = match self.inner.auth.granted() {
            Some(g) => g,
            None => match &self.inner.settings.scopes {
                Some(asked) => asked.clone(),
                None => return Ok(()),
            },
        };
        let missing: Vec<String> = needed
            .iter()
            .filter(|n| !granted.iter().any(|g| g == *n))
            .map(|n| n.to_string())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::ScopesMissing { missing, granted })
        }
    }

    /// Counters since the client was built: requests, retries, 429s, token requests.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.stats;
        Stats {
            requests: c.requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            token_requests: self.inner.auth.requests.load(Ordering::Relaxed),
        }
    }

    /// CXone's tenant, discovered once (spec §2.6, the real surface): a token, its
    /// `tenantId`, then `cxone-configuration`. On the tutorial surface, an error.
    pub async fn tenant(&self) -> Result<&Tenant> {
        if !self.inner.settings.is_cxone() {
            return Err(Error::Build(
                "the tutorial surface has no tenant discovery; set [tenant] api = \"cxone\"".into(),
            ));
        }
        self.inner
            .tenant
            .get_or_try_init(|| self.inner.auth.discover_tenant())
            .await
    }

    /// Access keys, on UserHub (real surface, spec §3).
    pub fn access_keys(&self) -> accesskeys::AccessKeys<'_> {
        accesskeys::AccessKeys { client: self }
    }
    /// Digital First Omnichannel: customers, cases, custom fields (real surface, spec §4).
    pub fn dfo(&self) -> dfo::Dfo<'_> {
        dfo::Dfo { client: self }
    }
    /// Data policies and their runs (real surface, spec §6).
    pub fn policies(&self) -> policies::Policies<'_> {
        policies::Policies { client: self }
    }
    /// ACD reporting: completed contacts (real surface, spec §7).
    pub fn acd(&self) -> acd::Acd<'_> {
        acd::Acd { client: self }
    }

    /// Integration secrets (spec §3).
    pub fn secrets(&self) -> secrets::Secrets<'_> {
        secrets::Secrets { client: self }
    }
    /// Data Actions: recompile and test (spec §3).
    pub fn data_actions(&self) -> secrets::DataActions<'_> {
        secrets::DataActions { client: self }
    }
    /// Contacts (spec §4).
    pub fn contacts(&self) -> contacts::Contacts<'_> {
        contacts::Contacts { client: self }
    }
    /// Data Store tables and column encryption (spec §5).
    pub fn datastores(&self) -> datastores::Datastores<'_> {
        datastores::Datastores { client: self }
    }
    /// Web-messaging guests and their attributes (spec §6).
    pub fn guests(&self) -> guests::Guests<'_> {
        guests::Guests { client: self }
    }
    /// CXone's GDPR erasure requests (spec §9).
    pub fn privacy(&self) -> privacy::Privacy<'_> {
        privacy::Privacy { client: self }
    }
    /// Webchat widgets and their security policies (spec §7).
    pub fn webchat(&self) -> webchat::Webchat<'_> {
        webchat::Webchat { client: self }
    }

    pub(crate) async fn execute(&self, call: transport::Call) -> Result<transport::Reply> {
        self.inner.execute(call).await
    }
}
