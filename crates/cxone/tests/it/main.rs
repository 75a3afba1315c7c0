//! The client against the emulator. Each test asserts on what the server saw (the
//! control API), not only on what the client returned.

mod auth;
mod hostile;
mod paging;
mod privacy;
mod props;
mod real;
mod retry;

use std::time::Duration;

use cxone::{Client, Grant, RetryPolicy, Settings};
use cxone_sim::{Sim, SimConfig, SimHandle};

pub async fn sim(config: SimConfig) -> SimHandle {
    Sim::start(config).await.expect("sim starts")
}

pub fn small() -> SimConfig {
    SimConfig {
        contacts: 50,
        ..Default::default()
    }
}

/// Settings for the all-scopes client, with quick retries for tests.
pub fn settings(sim: &SimHandle) -> Settings {
    let c = sim.credentials();
    let grant = Grant::ClientCredentials {
        client_id: c.client_id.clone(),
        client_secret: c.client_secret.clone().into(),
    };
    let mut s = Settings::new(&sim.base_url(), grant).unwrap();
    s.retry = RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        deadline: Duration::from_secs(20),
    };
    s
}

pub fn client(sim: &SimHandle) -> Client {
    Client::new(settings(sim)).unwrap()
}

pub fn configure(sim: &SimHandle, change: serde_json::Value) {
    sim.control().configure(change).expect("control config");
}
