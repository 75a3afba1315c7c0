//! Tokens: one fetch shared by concurrent callers, refresh ahead of expiry, replay after
//! a 401, scope errors, and both grants.

use std::time::{Duration, Instant};

use cxone::{Error, Grant, Settings};
use cxone_sim::SimConfig;

use crate::{client, settings, sim, small};

#[tokio::test]
async fn a_hundred_concurrent_calls_make_one_token_request() {
    let sim = sim(small()).await;
    let client = client(&sim);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move { c.secrets().list().await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(sim.control().token_requests_total(), 1);
    assert_eq!(client.stats().token_requests, 1);
    assert_eq!(
        sim.control().route_hits("GET /api/v2/integration/secret"),
        100
    );
}

#[tokio::test]
async fn a_token_expiring_mid_run_is_refreshed_exactly_once_and_never_refused() {
    let sim = sim(SimConfig {
        token_ttl: Duration::from_secs(2),
        ..small()
    })
    .await;
    let client = client(&sim);
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed() < Duration::from_millis(2600) {
        let mut batch = Vec::new();
        for _ in 0..8 {
            let c = client.clone();
            batch.push(tokio::spawn(async move { c.secrets().list().await }));
        }
        for t in batch {
            t.await.unwrap().unwrap();
            calls += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(calls > 100);
    assert_eq!(
        sim.control().token_requests_total(),
        2,
        "the first token and one refresh ahead of expiry"
    );
    assert_eq!(
        sim.control().state()["counters"]["unauthorized"],
        0,
        "the refresh came before the server refused"
    );
}

#[tokio::test]
async fn a_401_gets_a_new_token_and_the_request_is_replayed() {
    let sim = sim(small()).await;
    let client = client(&sim);
    client.secrets().list().await.unwrap();
    sim.control().revoke_tokens();
    let secrets = client.secrets().list().await.unwrap();
    assert!(!secrets.is_empty());
    assert_eq!(sim.control().token_requests_total(), 2);
    assert_eq!(sim.control().state()["counters"]["unauthorized"], 1);
    // The first call, the refused one, and its replay.
    assert_eq!(
        sim.control().route_hits("GET /api/v2/integration/secret"),
        3
    );
}

#[tokio::test]
async fn a_403_names_the_missing_scope_and_is_not_retried() {
    let sim = sim(small()).await;
    let mut s = settings(&sim);
    s.scopes = Some(vec!["contact:read".into()]);
    let client = cxone::Client::new(s).unwrap();
    let c = client.contacts().get("c-0000001").await.unwrap();
    let patch = cxone::models::ContactPatch::new().set("firstName", None);
    let err = client
        .contacts()
        .patch("c-0000001", c.etag.as_deref().unwrap(), &patch)
        .await
        .unwrap_err();
    match &err {
        Error::MissingScope { scope, .. } => assert_eq!(scope, "contact:write"),
        other => panic!("expected MissingScope, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("contact:write"), "{err}");
    assert!(err.request_id().is_some());
    assert_eq!(sim.control().route_hits("PATCH /api/v1/contacts/{id}"), 1);
}

#[tokio::test]
async fn wrong_credentials_are_an_auth_error_naming_the_problem() {
    let sim = sim(small()).await;
    let grant = Grant::ClientCredentials {
        client_id: "cxguard-demo".into(),
        client_secret: "not-the-secret-Xq7".to_string().into(),
    };
    let client = cxone::Client::new(Settings::new(&sim.base_url(), grant).unwrap()).unwrap();
    let err = client.secrets().list().await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("invalid_client"), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(
        sim.control().token_requests_total(),
        1,
        "a refused credential is not retried"
    );
    assert!(
        !format!("{err:?}").contains("Xq7"),
        "the secret never appears in errors"
    );
}

#[tokio::test]
async fn the_access_key_grant_uses_its_refresh_token_before_the_key() {
    let sim = sim(SimConfig {
        token_ttl: Duration::from_secs(1),
        ..small()
    })
    .await;
    let c = sim.credentials().clone();
    let grant = Grant::AccessKey {
        access_key_id: c.access_key_id.clone(),
        access_key_secret: c.access_key_secret.clone().into(),
        client_id: c.app_client_id.clone(),
        client_secret: c.app_client_secret.clone().into(),
    };
    let client = cxone::Client::new(Settings::new(&sim.base_url(), grant).unwrap()).unwrap();
    client.secrets().list().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.secrets().list().await.unwrap();
    assert_eq!(sim.control().token_requests("password"), 1);
    assert_eq!(sim.control().token_requests("refresh_token"), 1);
    // With every token revoked, the refresh token fails and the access key is used again.
    sim.control().revoke_tokens();
    client.secrets().list().await.unwrap();
    assert_eq!(sim.control().token_requests("password"), 2);
}

#[tokio::test]
async fn token_endpoint_outages_are_retried() {
    let sim = sim(small()).await;
    // The token endpoint is not faulted by the emulator; an unreachable one is.
    let mut s = settings(&sim);
    s = s.token_url("http://127.0.0.1:9/oauth/token").unwrap();
    s.retry.max_attempts = 3;
    let client = cxone::Client::new(s).unwrap();
    let err = client.authenticate().await.unwrap_err();
    assert!(matches!(err, Error::GaveUp { attempts: 3, .. }), "{err:?}");
}
