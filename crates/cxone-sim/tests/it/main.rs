//! The emulator against the spec, one test per rule of `spec/cxone-api.md` §1–7. Tests
//! speak plain HTTP (reqwest), not the cxone client, so they read the spec on their own.

mod auth;
mod contacts;
mod datastores;
mod guests;
mod limits;
mod secrets;
mod webchat;

use cxone_sim::{Sim, SimConfig, SimHandle};
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A running emulator with an all-scopes token.
pub struct Env {
    pub sim: SimHandle,
    pub http: reqwest::Client,
    pub token: String,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem document naming `field` in `errors`.
    pub fn assert_problem_field(&self, status: u16, field: &str) {
        assert_eq!(self.status, status, "{:?}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let fields: Vec<&str> = self.body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(
            fields.contains(&field),
            "expected an error naming {field}, got {fields:?}: {}",
            self.body
        );
    }
}

pub async fn read(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
    }
}

impl Env {
    pub async fn start(config: SimConfig) -> Env {
        let sim = Sim::start(config).await.expect("sim starts");
        let http = reqwest::Client::new();
        let token = token_for(&http, &sim, None).await;
        Env { sim, http, token }
    }

    pub async fn new() -> Env {
        Env::start(SimConfig {
            contacts: 300,
            ..Default::default()
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Resp {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        read(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(reqwest::Method::GET, path, &[], None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(reqwest::Method::POST, path, &[], Some(body))
            .await
    }

    pub async fn control(&self, path: &str) -> Value {
        read(
            self.http
                .get(self.url(&format!("/_control{path}")))
                .send()
                .await
                .unwrap(),
        )
        .await
        .body
    }
}

/// A token with `scope` (all allowed scopes when `None`).
pub async fn token_for(http: &reqwest::Client, sim: &SimHandle, scope: Option<&str>) -> String {
    let c = sim.credentials();
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let r = http
        .post(sim.token_url())
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
