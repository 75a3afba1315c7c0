//! The protections against the emulator, with a real ledger and a webhook receiver.

mod anonymize;
mod encrypt;
mod identity;
mod props;
mod rotate;
mod webchat;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use cxone_sim::{Sim, SimConfig, SimHandle};

pub async fn sim(config: SimConfig) -> SimHandle {
    Sim::start(config).await.expect("sim starts")
}

pub fn client(sim: &SimHandle) -> cxone::Client {
    cxone::Client::new(settings(sim)).unwrap()
}

/// The settings [`client`] uses: the emulator's credentials, short backoffs.
pub fn settings(sim: &SimHandle) -> cxone::Settings {
    let c = sim.credentials();
    let grant = cxone::Grant::ClientCredentials {
        client_id: c.client_id.clone(),
        client_secret: c.client_secret.clone().into(),
    };
    let mut s = cxone::Settings::new(&sim.base_url(), grant).unwrap();
    s.retry.base_delay = std::time::Duration::from_millis(5);
    s.retry.max_delay = std::time::Duration::from_millis(50);
    s
}

pub async fn ledger(dir: &tempfile::TempDir) -> ledger::Ledger {
    let url = format!("sqlite://{}", dir.path().join("ledger.sqlite").display());
    ledger::Ledger::open(&url, ledger::KeySource::File(dir.path().join("audit.key")))
        .await
        .unwrap()
}

pub const KEY_B64: fn() -> String = || base64::engine::general_purpose::STANDARD.encode([42u8; 32]);

pub fn env(k: &str) -> Option<String> {
    (k == "TEST_KEY").then(KEY_B64)
}

/// A webhook receiver on loopback that accepts everything and counts ids.
pub async fn receiver() -> (String, Arc<Mutex<BTreeMap<String, u32>>>) {
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let seen = s2.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                *seen.lock().unwrap().entry(id).or_insert(0) += 1;
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}
