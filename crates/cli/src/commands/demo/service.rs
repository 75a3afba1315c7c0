//! The demo's in-process `cxguard serve`: one service for the identity step (guests
//! linked over HTTP) and the encryption step (the tenant's SYNC KMS callback).

use serde_json::json;

use crate::exit::{CliError, Exit};

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IdentityDemo {
    pub(super) url: String,
    pub(super) linked: Vec<String>,
    pub(super) same_pseudonym: bool,
    pub(super) invalid_status: u16,
    pub(super) invalid_field: String,
    pub(super) unauthenticated_status: u16,
}

/// `cxguard serve`'s service, in-process on a free loopback port, with a throwaway
/// identity key, API key and KMS callback token (none is shown).
pub(super) struct Service {
    pub(super) url: String,
    api_key: String,
    kms_token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), server::Error>>,
}

fn failed(m: String) -> CliError {
    CliError::new(Exit::Failed, m)
}

impl Service {
    pub(super) async fn start(
        client: &cxone::Client,
        ledger: &ledger::Ledger,
    ) -> Result<Service, CliError> {
        let mut bytes = vec![0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| failed(format!("no randomness: {e}")))?;
        let key = guard::keys::Key::from_bytes("demo-guest-id", bytes).map_err(failed)?;
        let identity = guard::identity::Identity::new(
            std::sync::Arc::new(key),
            guard::pseudonym::Normalizer {
                region: guard::pseudonym::parse_region("US").ok(),
                gmail_folding: false,
            },
            guard::identity::DEFAULT_ATTRIBUTE,
        )
        .map_err(failed)?;
        let (api_key, sha256) = server::generate_api_key().map_err(failed)?;
        let (kms_token, kms_sha256) = server::generate_kms_token().map_err(failed)?;
        let service = server::Server::bind(
            "127.0.0.1:0",
            server::Config {
                identity,
                client: client.clone(),
                ledger: ledger.clone(),
                api_keys: vec![server::ApiKey {
                    id: "demo-backend".into(),
                    sha256,
                }],
                kms_tokens: vec![server::ApiKey {
                    id: "demo-tenant".into(),
                    sha256: kms_sha256,
                }],
                rate: server::RateLimit::default(),
                upstream_deadline: std::time::Duration::from_secs(10),
                drain: std::time::Duration::from_secs(5),
                limits: server::Limits::default(),
                subjects: None,
            },
        )
        .await
        .map_err(|e| failed(e.to_string()))?;
        let url = format!("http://{}", service.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(service.run(async move {
            let _ = stopped.await;
        }));
        Ok(Service {
            url,
            api_key,
            kms_token,
            stop,
            task,
        })
    }

    /// The callback URL to give the tenant (it holds the token: never printed).
    pub(super) fn kms_callback(&self) -> String {
        format!("{}/v1/kms/callback/{}", self.url, self.kms_token)
    }

    /// Drains and stops it.
    pub(super) async fn stop(self) -> Result<(), CliError> {
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(|e| failed(e.to_string()))
    }
}

/// Links three guests over HTTP as a web-messaging backend would, and shows two
/// refusals.
pub(super) async fn identity_step(
    service: &Service,
    sim: &cxone_sim::SimHandle,
) -> Result<IdentityDemo, CliError> {
    let url = service.url.clone();
    let api_key = &service.api_key;
    let http = reqwest::Client::new();
    let post = |guest: &str, body: serde_json::Value, key: Option<&str>| {
        let mut r = http
            .post(format!("{url}/v1/guests/{guest}/identity"))
            .json(&body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    let http_err = |e: reqwest::Error| failed(format!("the demo request failed: {e}"));
    let mut linked = Vec::new();
    for (guest, identifier) in [
        ("g-000001", "Ann.Lee@Example.com"),
        ("g-000002", "  ann.lee@example.COM "),
        ("g-000003", "(212) 555-0147"),
    ] {
        let r = post(guest, json!({ "identifier": identifier }), Some(api_key))
            .await
            .map_err(http_err)?;
        if r.status() != 200 {
            return Err(failed(format!("linking {guest} answered {}", r.status())));
        }
        linked.push(guest.to_string());
    }
    let invalid = post(
        "g-000004",
        json!({ "identifier": "ann.lee@" }),
        Some(api_key),
    )
    .await
    .map_err(http_err)?;
    let invalid_status = invalid.status().as_u16();
    let invalid_body: serde_json::Value = invalid.json().await.map_err(http_err)?;
    let unauthenticated = post("g-000004", json!({ "identifier": "ann@example.com" }), None)
        .await
        .map_err(http_err)?
        .status()
        .as_u16();
    let value = |g: &str| {
        sim.control().guest_attributes(g).and_then(|a| {
            a.as_array()?
                .iter()
                .find(|x| x["id"] == guard::identity::DEFAULT_ATTRIBUTE)
                .map(|x| x["value"].clone())
        })
    };
    let same_pseudonym = value("g-000001").is_some() && value("g-000001") == value("g-000002");
    Ok(IdentityDemo {
        url,
        linked,
        same_pseudonym,
        invalid_status,
        invalid_field: invalid_body["field"].as_str().unwrap_or("").to_string(),
        unauthenticated_status: unauthenticated,
    })
}
