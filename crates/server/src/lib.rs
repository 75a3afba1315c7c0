//! server: cxguard's HTTP service. It serves the identity protection (link a
//! web-messaging guest to a keyed pseudonym of their email or phone), subject erasure
//! for a privacy portal (`/v1/subjects/erasure`), the KMS callback receiver of column
//! encryption (`/v1/kms/callback/{token}`), and the operations
//! endpoints around them: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
//!
//! Status codes are chosen here and only here; the protection itself lives in
//! `guard::identity`, the audit trail in `ledger`. Not here: configuration files (the
//! CLI reads them and builds a [`Config`]), logging setup (the CLI installs it).

#![warn(missing_docs)]
// A Problem is built once per refused request and answered at once: boxing it would
// only add an allocation to every error path.
#![allow(clippy::result_large_err)]

mod auth;
mod guards;
mod kms;
mod listen;
pub mod metrics;
mod observe;
pub mod openapi;
pub mod problem;
mod routes;
pub mod schema;
mod subjects;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use guard::identity::Identity;
use ledger::appender::Appender;
use tower_http::limit::RequestBodyLimitLayer;

pub use auth::{ApiKey, KEY_PREFIX, RateLimit, generate as generate_api_key};
pub use kms::{TOKEN_PREFIX as KMS_TOKEN_PREFIX, generate as generate_kms_token};
pub use listen::Limits;
pub use observe::REQUEST_ID;
pub use subjects::SubjectsConfig;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Everything the service needs besides its listener.
pub struct Config {
    /// The identity protection, with its key.
    pub identity: Identity,
    /// The tenant client.
    pub client: cxone::Client,
    /// The audit ledger.
    pub ledger: ledger::Ledger,
    /// The API keys callers present.
    pub api_keys: Vec<ApiKey>,
    /// The KMS callback tokens (`[kms] callback_tokens`): id and SHA-256 of each.
    pub kms_tokens: Vec<ApiKey>,
    /// Each key's rate limit.
    pub rate: RateLimit,
    /// The longest a caller waits for the tenant, retries included; then 502.
    pub upstream_deadline: Duration,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub drain: Duration,
    /// Connection and request limits against slow or greedy clients.
    pub limits: Limits,
    /// Subject erasure (`/v1/subjects/erasure`), when configured.
    pub subjects: Option<SubjectsConfig>,
}

/// What every handler shares: one `Arc`, so the clone axum makes per request (and per
/// extractor) is one atomic increment, not one per field (that was 3.7% of `serve`'s
/// CPU).
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub(crate) struct Shared {
    identity: Arc<Identity>,
    client: cxone::Client,
    keys: Arc<auth::Keys>,
    kms: Arc<kms::Tokens>,
    /// One KMS callback checked and recorded at a time.
    kms_receiver: Arc<guard::encrypt::callback::Receiver>,
    audit: Appender,
    ledger: ledger::Ledger,
    metrics: Arc<metrics::Metrics>,
    upstream_deadline: Duration,
    /// The erasure queue, when subject erasure is configured.
    subjects: Option<Arc<subjects::Subjects>>,
}

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration does not validate; nothing was started.
    #[error("{0}")]
    Config(String),
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("the server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// A bound, not yet serving, service.
pub struct Server {
    listener: tokio::net::TcpListener,
    lanes: listen::Lanes,
    release: listen::Release,
    router: Router,
    audit_closed: ledger::appender::Closed,
    drain: Duration,
    limits: Limits,
}

impl Server {
    /// Validates `config` and binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: &str, config: Config) -> Result<Self, Error> {
        let keys = auth::Keys::new(&config.api_keys, config.rate).map_err(Error::Config)?;
        let kms = kms::Tokens::new(&config.kms_tokens).map_err(Error::Config)?;
        config.limits.validate().map_err(Error::Config)?;
        if config.upstream_deadline.is_zero() {
            return Err(Error::Config(
                "upstream_deadline_secs: must be more than 0".into(),
            ));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                addr: addr.to_string(),
                source,
            })?;
        config.identity.warm_up();
        let (lanes, release) = listen::Lanes::build().map_err(Error::Serve)?;
        let (audit, audit_closed) =
            ledger::appender::Appender::spawn_on(lanes.first(), config.ledger.clone(), 256);
        let identity = Arc::new(config.identity);
        let metrics = metrics::Metrics::new(config.client.clone());
        let subjects = config.subjects.map(|s| {
            subjects::Subjects::start(
                s,
                identity.clone(),
                config.client.clone(),
                config.ledger.clone(),
                metrics.clone(),
            )
        });
        let state = AppState(Arc::new(Shared {
            identity,
            metrics,
            subjects,
            client: config.client,
            keys: Arc::new(keys),
            kms: Arc::new(kms),
            kms_receiver: Arc::default(),
            audit,
            ledger: config.ledger,
            upstream_deadline: config.upstream_deadline,
        }));
        Ok(Server {
            listener,
            lanes,
            release,
            router: router(state, &config.limits),
            audit_closed,
            drain: config.drain,
            limits: config.limits,
        })
    }

    /// The address it listens on (the port, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests
    /// finish (up to the drain time), and commits the audit entries it holds.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let drain = self.drain;
        let serve = listen::serve(
            self.listener,
            self.lanes,
            self.router,
            self.limits,
            async move {
                shutdown.await;
                let _ = tx.send(());
            },
        );
        let mut serve = tokio::spawn(serve);
        let drained = tokio::select! {
            r = &mut serve => Some(r),
            _ = async {
                let _ = rx.await;
                tokio::time::sleep(drain).await;
            } => None,
        };
        let result = match drained {
            Some(r) => r.map_err(|e| Error::Serve(std::io::Error::other(e)))?,
            None => {
                tracing::warn!(
                    drain_secs = drain.as_secs(),
                    "in-flight requests did not finish within the drain time"
                );
                serve.abort();
                Ok(())
            }
        };
        // The writer ends when every handler holding it has returned: at once after a
        // clean drain. After a drain timeout, handlers still running may hold it, so it
        // gets one more drain period, not forever.
        if tokio::time::timeout(drain, self.audit_closed.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "stopped with requests still running; their audit entries may be missing"
            );
        }
        self.release.release();
        result.map_err(Error::Serve)
    }
}

fn router(state: AppState, limits: &Limits) -> Router {
    let per_address = axum::middleware::from_fn_with_state(
        guards::PerAddress::new(limits.ops_rate_per_ip),
        guards::per_address,
    );
    Router::new()
        .route("/v1/guests/{guestId}/identity", post(routes::link_identity))
        .route("/api/update-guest-attributes", post(routes::compat_link))
        .route("/v1/kms/callback/{token}", post(kms::callback))
        .route("/v1/subjects/erasure", post(subjects::erase_subject))
        .route("/v1/subjects/erasure/{job}", get(subjects::erasure_status))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz).layer(per_address.clone()))
        .route("/metrics", get(routes::metrics).layer(per_address))
        .route("/openapi.json", get(openapi::openapi))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            guards::deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state)
}
