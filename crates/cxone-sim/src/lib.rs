//! cxone-sim: an emulator of the CXone API surface described in `spec/cxone-api.md`.
//!
//! It serves the real routes (OAuth, secrets and data actions, contacts, data stores,
//! guests, webchat widgets) over a seeded, deterministic tenant, with the rate limits and
//! faults a real tenant has, plus `/_control/…` routes that tests use to inject faults,
//! change limits and read what the server saw. It is written from the spec alone and never
//! depends on the `cxone` client crate, so a test of one against the other can fail.
//!
//! It is not a security boundary: the control API has no authentication, so bind it to
//! loopback (the default).

#![warn(missing_docs)]

mod control;
mod data;
mod http;
mod problem;
mod ratelimit;
mod real;
mod realdata;
mod routes;
mod state;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use control::ControlState;
pub use data::{Credentials, seeded_secret_value};

/// The largest tenant the emulator will seed.
pub const MAX_CONTACTS: u32 = 1_000_000;

/// How the emulator starts. Everything here can also be changed at run time through
/// `PUT /_control/config` except the seed and the tenant's size.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of the deterministic tenant: the same seed gives the same data and credentials.
    pub seed: u64,
    /// Number of seeded contacts (at most [`MAX_CONTACTS`]).
    pub contacts: u32,
    /// Number of seeded web-messaging guests.
    pub guests: u32,
    /// Tenant bucket in requests per second; `None` is unlimited.
    pub rate_limit: Option<u32>,
    /// Webchat bucket in requests per second; `None` is unlimited.
    pub webchat_rate_limit: Option<u32>,
    /// Share of API requests answered 500/503 before any state change.
    pub fault_rate: f64,
    /// Share of API requests whose connection is reset after the change was made.
    pub reset_rate: f64,
    /// `Retry-After` seconds carried by injected 503s; `None` sends none.
    pub fault_retry_after: Option<u64>,
    /// Latency added to every response.
    pub latency: Duration,
    /// Lifetime of issued access tokens.
    pub token_ttl: Duration,
    /// Address to bind; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Serve the token endpoint at this path only (e.g. `/auth/token`), instead of the
    /// spec's three paths, as a tenant with its own token URL does. Discovery names it.
    pub token_path: Option<String>,
    /// Multiplies the real surface's published DFO budgets (spec-real §4.1): tests make
    /// them small to meet a 429.
    pub dfo_budget_scale: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            contacts: 1_000,
            guests: 50,
            rate_limit: None,
            webchat_rate_limit: Some(10),
            fault_rate: 0.0,
            reset_rate: 0.0,
            fault_retry_after: None,
            latency: Duration::ZERO,
            token_ttl: Duration::from_secs(3600),
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            token_path: None,
            dfo_budget_scale: 1.0,
        }
    }
}

/// A setting the emulator refuses, naming the option and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting is out of range or contradicts another.
    #[error("--{option}: {reason}")]
    Invalid {
        /// The option at fault.
        option: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// The listening address could not be bound.
    #[error("could not bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl SimConfig {
    /// The tenant's and the webchat bucket's rates.
    fn validate_rates(&self) -> Result<(), ConfigError> {
        let bad = |option, reason: String| Err(ConfigError::Invalid { option, reason });
        if self.rate_limit == Some(0) {
            return bad(
                "rate-limit",
                "0 would refuse every request; omit it for no limit".into(),
            );
        }
        if self.webchat_rate_limit == Some(0) {
            return bad(
                "webchat-rate-limit",
                "0 would refuse every webchat request; omit it for no limit".into(),
            );
        }
        if let (Some(t), Some(w)) = (self.rate_limit, self.webchat_rate_limit)
            && w > t
        {
            return bad(
                "webchat-rate-limit",
                format!(
                    "{w}/s is more than the tenant's {t}/s; the webchat bucket is the smaller one"
                ),
            );
        }
        Ok(())
    }

    /// Checks every option and their combinations before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |option, reason: String| Err(ConfigError::Invalid { option, reason });
        if self.contacts > MAX_CONTACTS {
            return bad(
                "contacts",
                format!(
                    "{} is more than the {MAX_CONTACTS} the emulator holds",
                    self.contacts
                ),
            );
        }
        for (option, v) in [
            ("fault-rate", self.fault_rate),
            ("reset-rate", self.reset_rate),
        ] {
            if !(0.0..=1.0).contains(&v) || v.is_nan() {
                return bad(option, format!("{v} is not a share between 0 and 1"));
            }
        }
        if self.fault_rate + self.reset_rate > 1.0 {
            return bad(
                "reset-rate",
                format!(
                    "fault rate {} plus reset rate {} exceed 1: no request could succeed",
                    self.fault_rate, self.reset_rate
                ),
            );
        }
        self.validate_rates()?;
        if self.token_ttl < Duration::from_secs(1) {
            return bad("token-ttl", "tokens must live at least 1 second".into());
        }
        if let Some(p) = &self.token_path
            && (!p.starts_with('/')
                || p.len() < 2
                || p.starts_with("/_control")
                || p.contains(['?', '#']))
        {
            return bad(
                "token-path",
                format!("{p:?} must be an absolute path such as /auth/token, outside /_control"),
            );
        }
        if !(self.dfo_budget_scale > 0.0 && self.dfo_budget_scale <= 1000.0) {
            return bad(
                "dfo-budget-scale",
                format!(
                    "{} is not a factor above 0, at most 1000",
                    self.dfo_budget_scale
                ),
            );
        }
        if self.latency > Duration::from_secs(60) {
            return bad(
                "latency-ms",
                "more than 60 s would time out every client".into(),
            );
        }
        Ok(())
    }
}

/// Starts emulators.
pub struct Sim;

impl Sim {
    /// Validates `config`, seeds the tenant, binds and serves in the background.
    pub async fn start(config: SimConfig) -> Result<SimHandle, ConfigError> {
        config.validate()?;
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| ConfigError::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ConfigError::Bind {
            addr: config.bind,
            source,
        })?;
        let state = Arc::new(state::SimState::new(&config));
        let app = http::router(state.clone(), config.token_path.as_deref());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(SimHandle {
            addr,
            token_path: config
                .token_path
                .clone()
                .unwrap_or_else(|| "/oauth/token".into()),
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A running emulator. Dropping it stops the server.
pub struct SimHandle {
    addr: SocketAddr,
    token_path: String,
    state: Arc<state::SimState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// CXone's real surface: the issuer its discovery starts from (`{base}/cxone`).
    pub fn cxone_issuer(&self) -> String {
        format!("{}{}", self.base_url(), real::ISSUER)
    }
    /// The token endpoint (`/oauth/token`, or the configured `token_path`).
    pub fn token_url(&self) -> String {
        format!("{}{}", self.base_url(), self.token_path)
    }
    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The seeded tenant's credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.state.credentials
    }
    /// In-process access to what the control API offers over HTTP.
    pub fn control(&self) -> ControlState {
        ControlState::new(self.state.clone())
    }
    /// Stops accepting connections and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
    /// Serves until the process is interrupted (Ctrl-C) — for the stand-alone `cxguard sim`.
    pub async fn serve_until_ctrl_c(self) {
        let _ = tokio::signal::ctrl_c().await;
        self.stop().await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
