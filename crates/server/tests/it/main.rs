//! The identity service against the emulator, over real HTTP: every error path a caller
//! can hit, the operations endpoints, drain on shutdown, and upstream faults under load.

mod errors;
mod faults;
mod replicas;
mod service;
mod slow;
mod subjects;

use std::sync::Arc;
use std::time::Duration;

use cxone_sim::{Sim, SimConfig, SimHandle};
use guard::identity::{DEFAULT_ATTRIBUTE, IdentifierKind, Identity};
use guard::keys::Key;
use guard::pseudonym::{Normalizer, parse_region};
use serde_json::Value;
use server::{ApiKey, Config, RateLimit, Server};

pub struct Harness {
    pub sim: SimHandle,
    pub url: String,
    pub key: String,
    pub http: reqwest::Client,
    pub ledger: ledger::Ledger,
    pub identity: Identity,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), server::Error>>>,
    _dir: tempfile::TempDir,
}

pub struct Options {
    pub sim: SimConfig,
    pub rate: RateLimit,
    pub deadline: Duration,
    pub drain: Duration,
    pub client_secret: Option<String>,
    pub limits: server::Limits,
    /// Subject erasure, when the test enables it.
    pub subjects: Option<server::SubjectsConfig>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sim: SimConfig::default(),
            rate: RateLimit {
                per_second: 10_000,
                burst: 10_000,
            },
            deadline: Duration::from_secs(10),
            drain: Duration::from_secs(10),
            client_secret: None,
            limits: server::Limits::default(),
            subjects: None,
        }
    }
}

pub fn identity() -> Identity {
    let key = Arc::new(Key::from_bytes("guest-id-test", vec![7u8; 32]).unwrap());
    let normalizer = Normalizer {
        region: Some(parse_region("US").unwrap()),
        gmail_folding: false,
    };
    Identity::new(key, normalizer, DEFAULT_ATTRIBUTE).unwrap()
}

/// The pseudonym the guest should hold for `raw`.
pub fn expected(raw: &str) -> String {
    identity()
        .pseudonym("identifier", raw, IdentifierKind::Auto)
        .unwrap()
        .1
}

impl Harness {
    pub async fn start(opts: Options) -> Harness {
        let sim = Sim::start(opts.sim).await.unwrap();
        let creds = sim.credentials();
        let grant = cxone::Grant::ClientCredentials {
            client_id: creds.client_id.clone(),
            client_secret: opts
                .client_secret
                .unwrap_or_else(|| creds.client_secret.clone())
                .into(),
        };
        let mut settings = cxone::Settings::new(&sim.base_url(), grant).unwrap();
        settings.retry.base_delay = Duration::from_millis(5);
        settings.retry.max_delay = Duration::from_millis(50);
        settings.retry.deadline = opts.deadline;
        let client = cxone::Client::new(settings).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ledger.sqlite").display());
        let ledger =
            ledger::Ledger::open(&url, ledger::KeySource::File(dir.path().join("audit.key")))
                .await
                .unwrap();
        let (key, sha256) = server::generate_api_key().unwrap();
        let config = Config {
            identity: identity(),
            client,
            ledger: ledger.clone(),
            api_keys: vec![ApiKey {
                id: "web-test".into(),
                sha256,
            }],
            kms_tokens: Vec::new(),
            rate: opts.rate,
            upstream_deadline: opts.deadline,
            drain: opts.drain,
            limits: opts.limits.clone(),
            subjects: opts.subjects,
        };
        let server = Server::bind("127.0.0.1:0", config).await.unwrap();
        let url = format!("http://{}", server.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Harness {
            sim,
            url,
            key,
            http: reqwest::Client::new(),
            ledger,
            identity: identity(),
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    pub fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .json(body)
    }

    pub async fn link(&self, guest: &str, identifier: &str) -> reqwest::Response {
        self.post(
            &format!("/v1/guests/{guest}/identity"),
            &serde_json::json!({ "identifier": identifier }),
        )
        .send()
        .await
        .unwrap()
    }

    /// The body of a GET.
    pub async fn get_text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The attribute the emulator holds for a guest.
    pub fn attribute(&self, guest: &str) -> Option<String> {
        let attrs = self.sim.control().guest_attributes(guest)?;
        attrs
            .as_array()?
            .iter()
            .find(|a| a["id"] == DEFAULT_ATTRIBUTE)
            .and_then(|a| a["value"].as_str().map(str::to_string))
    }

    /// Signals shutdown and waits for the drain to finish.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }

    pub async fn links_audited(&self) -> usize {
        let entries = self
            .ledger
            .entries(&ledger::Filter::default())
            .await
            .unwrap();
        entries
            .iter()
            .filter(|e| e.operation == guard::identity::OPERATION)
            .count()
    }
}

/// A problem document: status, content type, body.
pub async fn problem(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert_eq!(ct, "application/problem+json", "status {status}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:cxguard:problem:")
    );
    (status, body)
}
