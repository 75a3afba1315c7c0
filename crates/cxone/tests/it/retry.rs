//! Retry and pacing: what is retried, how long it waits, and what is never retried.

use std::time::{Duration, Instant};

use cxone::Error;
use cxone::models::ContactPatch;
use cxone_sim::SimConfig;
use serde_json::json;

use crate::{client, configure, settings, sim, small};

#[tokio::test]
async fn a_429_waits_at_least_retry_after_then_succeeds() {
    let sim = sim(SimConfig {
        rate_limit: Some(1),
        webchat_rate_limit: Some(1),
        ..small()
    })
    .await;
    let client = client(&sim);
    client.authenticate().await.unwrap();
    // Another caller drains the bucket, so our first request meets a 429.
    let other = reqwest::Client::new();
    let c = sim.credentials();
    let tok: serde_json::Value = other
        .post(sim.token_url())
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = other
        .get(format!("{}/api/v2/integration/secret", sim.base_url()))
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let start = Instant::now();
    client.secrets().list().await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        start.elapsed()
    );
    assert_eq!(client.stats().rate_limited, 1);
    assert_eq!(sim.control().state()["counters"]["rateLimited"], 1);
}

#[tokio::test]
async fn a_503_with_retry_after_waits_exactly_that() {
    let sim = sim(small()).await;
    let client = client(&sim);
    client.authenticate().await.unwrap();
    configure(&sim, json!({"failNext": [503], "faultRetryAfter": 1}));
    let start = Instant::now();
    client.secrets().list().await.unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_millis(3000),
        "{waited:?}"
    );
}

#[tokio::test]
async fn server_errors_on_idempotent_requests_are_retried() {
    let sim = sim(small()).await;
    let client = client(&sim);
    configure(&sim, json!({"failNext": [500, 503, 502, 504]}));
    client.contacts().get("c-0000001").await.unwrap();
    assert_eq!(sim.control().route_hits("GET /api/v1/contacts/{id}"), 5);
    assert_eq!(client.stats().retries, 4);
}

#[tokio::test]
async fn a_reset_after_a_patch_landed_is_retried_and_applied_once() {
    let sim = sim(small()).await;
    let client = client(&sim);
    let c = client.contacts().get("c-0000002").await.unwrap();
    configure(&sim, json!({"resetNext": 1}));
    let patch = ContactPatch::new()
        .set("email", None)
        .set_custom("loyaltyTier", Some("gone"));
    let out = client
        .contacts()
        .patch("c-0000002", c.etag.as_deref().unwrap(), &patch)
        .await
        .unwrap();
    let cxone::contacts::Patched::Applied(out) = out else {
        panic!("the replay's 412 is our own landed PATCH, not a conflict")
    };
    assert_eq!(out.email, None);
    assert_eq!(out.custom_fields["loyaltyTier"], "gone");
    assert_eq!(
        sim.control()
            .mutations("contact/c-0000002")
            .values()
            .sum::<u64>(),
        1,
        "applied exactly once"
    );
    assert_eq!(
        sim.control().route_hits("PATCH /api/v1/contacts/{id}"),
        2,
        "the lost answer was retried"
    );
}

#[tokio::test]
async fn a_412_for_someone_elses_change_is_returned() {
    let sim = sim(small()).await;
    let client = client(&sim);
    let c = client.contacts().get("c-0000003").await.unwrap();
    sim.control()
        .edit_contact("c-0000003", json!({"lastName": "Edited"}))
        .unwrap();
    let patch = ContactPatch::new().set("email", None);
    let out = client
        .contacts()
        .patch("c-0000003", c.etag.as_deref().unwrap(), &patch)
        .await
        .unwrap();
    // The 412 comes back as a conflict carrying the contact as it is now, to re-plan from.
    let cxone::contacts::Patched::Conflict(now) = out else {
        panic!("someone else's change is a conflict")
    };
    assert_eq!(now.last_name.as_deref(), Some("Edited"));
    assert_ne!(now.etag, c.etag);
    assert!(sim.control().mutations("contact/").is_empty());
    assert_eq!(sim.control().route_hits("GET /api/v1/contacts/{id}"), 2);
}

#[tokio::test]
async fn a_post_without_an_idempotency_key_is_never_retried() {
    let sim = sim(small()).await;
    let client = client(&sim);
    client.authenticate().await.unwrap();
    configure(&sim, json!({"failNext": [503]}));
    let err = client.guests().create(None).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(
        sim.control().route_hits("POST /api/v2/interactions/guests"),
        1
    );
    // A reset after the server acted: also not retried, so no second guest.
    configure(&sim, json!({"resetNext": 1}));
    assert!(client.guests().create(None).await.is_err());
    assert_eq!(
        sim.control().route_hits("POST /api/v2/interactions/guests"),
        2
    );
    assert_eq!(sim.control().mutations("guest/g-new").len(), 1);
}

#[tokio::test]
async fn a_post_with_an_idempotency_key_is_retried_and_acts_once() {
    let sim = sim(small()).await;
    let client = client(&sim);
    configure(&sim, json!({"resetNext": 1}));
    let id = client
        .guests()
        .create(Some("create-guest-1"))
        .await
        .unwrap();
    assert!(id.starts_with("g-"));
    assert_eq!(
        sim.control().route_hits("POST /api/v2/interactions/guests"),
        2
    );
    assert_eq!(
        sim.control().mutations("guest/g-new").len(),
        1,
        "one guest, not two"
    );
    assert_eq!(sim.control().state()["counters"]["idempotentReplays"], 1);
}

#[tokio::test]
async fn retries_stop_at_max_attempts_with_the_last_error() {
    let sim = sim(small()).await;
    let mut s = settings(&sim);
    s.retry.max_attempts = 3;
    let client = cxone::Client::new(s).unwrap();
    client.authenticate().await.unwrap();
    configure(&sim, json!({"faultRate": 1.0}));
    let err = client.secrets().list().await.unwrap_err();
    match &err {
        Error::GaveUp { attempts, last, .. } => {
            assert_eq!(*attempts, 3);
            assert!(matches!(last.status(), Some(500 | 503)));
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert!(err.is_retryable(), "a later run may succeed");
    assert!(err.request_id().is_some_and(|r| r.starts_with("sim-")));
    assert_eq!(
        sim.control().route_hits("GET /api/v2/integration/secret"),
        3
    );
}

#[tokio::test]
async fn retries_stop_at_the_deadline() {
    let sim = sim(small()).await;
    let mut s = settings(&sim);
    s.retry.max_attempts = 100;
    s.retry.base_delay = Duration::from_millis(200);
    s.retry.max_delay = Duration::from_millis(200);
    s.retry.deadline = Duration::from_millis(500);
    let client = cxone::Client::new(s).unwrap();
    client.authenticate().await.unwrap();
    configure(&sim, json!({"faultRate": 1.0}));
    let start = Instant::now();
    let err = client.secrets().list().await.unwrap_err();
    assert!(matches!(err, Error::GaveUp { .. }));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn pacing_keeps_refusals_rare_at_the_servers_rate() {
    let sim = sim(SimConfig {
        rate_limit: Some(100),
        webchat_rate_limit: Some(10),
        ..small()
    })
    .await;
    let client = client(&sim);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                c.contacts().get("c-0000001").await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let refused = sim.control().state()["counters"]["rateLimited"]
        .as_u64()
        .unwrap();
    assert!(
        refused <= 8,
        "400 requests at 16-way concurrency against 100/s: {refused} refusals (≤ 2%)"
    );
}

#[tokio::test]
async fn a_client_side_cap_limits_the_rate() {
    let sim = sim(small()).await;
    let mut s = settings(&sim);
    s.max_rate = Some(20);
    let client = cxone::Client::new(s).unwrap();
    client.authenticate().await.unwrap();
    let start = Instant::now();
    for _ in 0..30 {
        client.contacts().get("c-0000001").await.unwrap();
    }
    // 20 of burst, then 10 more at 20/s: at least about half a second.
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried_even_for_a_post() {
    // Nothing listens on port 9: the connection is refused before anything was sent.
    let grant = cxone::Grant::ClientCredentials {
        client_id: "x".into(),
        client_secret: "y".to_string().into(),
    };
    let mut s = cxone::Settings::new("http://127.0.0.1:9", grant).unwrap();
    s.retry.max_attempts = 2;
    s.retry.base_delay = Duration::from_millis(1);
    let client = cxone::Client::new(s).unwrap();
    let err = client.guests().create(None).await.unwrap_err();
    assert!(matches!(err, Error::GaveUp { attempts: 2, .. }), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
}

/// Regression: one webchat call (its own 10/s bucket) used to pace every later request
/// of the client at 10/s, contacts included.
#[tokio::test]
async fn webchat_pacing_does_not_slow_other_surfaces() {
    let sim = sim(SimConfig {
        rate_limit: Some(1000),
        webchat_rate_limit: Some(2),
        ..small()
    })
    .await;
    let client = client(&sim);
    client.webchat().list().await.unwrap();
    client.webchat().list().await.unwrap();
    let start = Instant::now();
    for _ in 0..40 {
        client.contacts().get("c-0000001").await.unwrap();
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "contacts ran at the tenant's rate: {:?}",
        start.elapsed()
    );
    // Webchat itself is still paced at its own 2/s instead of meeting 429s.
    client.webchat().list().await.unwrap();
    assert_eq!(sim.control().state()["counters"]["rateLimited"], 0);
}
