//! The paths that work: both link endpoints, the audit entry, the operations endpoints,
//! the OpenAPI snapshot, drain on shutdown.

use std::time::Duration;

use cxone_sim::SimConfig;
use serde_json::{Value, json};

use crate::{Harness, Options, expected, problem};

#[tokio::test]
async fn both_endpoints_link_the_same_person_to_the_same_pseudonym() {
    let h = Harness::start(Options::default()).await;
    let r = h.link("g-000001", "  Ann.Lee@Example.com ").await;
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(!rid.is_empty());
    let text = r.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body,
        json!({ "guestId": "g-000001", "attribute": "hashed_user_id", "keyId": "guest-id-test" })
    );
    assert!(!text.to_lowercase().contains("ann.lee"));
    assert_eq!(
        h.attribute("g-000001"),
        Some(expected("ann.lee@example.com"))
    );

    let r = h
        .post(
            "/api/update-guest-attributes",
            &json!({ "guest_id": "g-000002", "user_identifier": "ANN.LEE@example.com", "extra": 1 }),
        )
        .header("x-request-id", "caller-chosen-id-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "caller-chosen-id-1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "success");
    assert_eq!(body["guestId"], "g-000002");
    assert_eq!(h.attribute("g-000002"), h.attribute("g-000001"));

    // A phone, written two ways, to a third guest.
    assert_eq!(h.link("g-000003", "(212) 555-0123").await.status(), 200);
    assert_eq!(h.attribute("g-000003"), Some(expected("+1 212 555 0123")));

    // One audit entry per link: guest, key id, attribute — never the identifier.
    let entries = h
        .ledger
        .entries(&ledger::Filter {
            operation: Some(guard::identity::OPERATION.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].target, "g-000001");
    assert_eq!(entries[0].actor, "api:web-test");
    assert_eq!(entries[0].details["key"], "guest-id-test");
    assert_eq!(entries[0].details["attribute"], "hashed_user_id");
    // Every field but the time and the two chain hashes: those are digits and random hex,
    // and held "555" about one run in ten.
    let mut shown = entries.clone();
    for e in &mut shown {
        e.at.clear();
        e.hash.clear();
        e.prev_hash.clear();
    }
    let all = serde_json::to_string(&shown).unwrap().to_lowercase();
    assert!(!all.contains("ann.lee") && !all.contains("555"), "{all}");
    assert!(
        !all.contains(&expected("ann.lee@example.com")),
        "no pseudonym either"
    );
    let v = h
        .ledger
        .verify(&h.ledger.public_key().unwrap())
        .await
        .unwrap();
    assert!(v.is_intact(), "{v:?}");
}

#[tokio::test]
async fn operations_endpoints_answer() {
    let h = Harness::start(Options::default()).await;
    let get = |p: &str| h.http.get(format!("{}{p}", h.url)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(h.link("g-000001", "ann@example.com").await.status(), 200);
    assert_eq!(h.link("g-999999", "ann@example.com").await.status(), 404);
    let m = get("/metrics").await.unwrap();
    assert!(
        m.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let m = m.text().await.unwrap();
    for want in [
        r#"cxguard_http_requests_total{route="/v1/guests/{guestId}/identity",method="POST",status="200"} 1"#,
        r#"cxguard_http_requests_total{route="/v1/guests/{guestId}/identity",method="POST",status="404"} 1"#,
        r#"cxguard_http_request_duration_seconds_count{route="/v1/guests/{guestId}/identity"} 2"#,
        r#"cxguard_identity_links_total{outcome="linked"} 1"#,
        r#"cxguard_identity_links_total{outcome="unknown_guest"} 1"#,
        "cxguard_upstream_requests_total 2",
        "cxguard_upstream_retries_total 0",
        "cxguard_upstream_rate_limited_total 0",
        "cxguard_upstream_token_requests_total 1",
    ] {
        assert!(m.contains(want), "missing {want}:\n{m}");
    }
}

#[tokio::test]
async fn not_ready_while_no_upstream_token_can_be_had() {
    let h = Harness::start(Options {
        client_secret: Some("wrong-secret".into()),
        ..Default::default()
    })
    .await;
    let r = h
        .http
        .get(format!("{}/readyz", h.url))
        .send()
        .await
        .unwrap();
    let (s, p) = problem(r).await;
    assert_eq!(s, 503, "{p}");
    assert_eq!(
        h.http
            .get(format!("{}/healthz", h.url))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "alive all the same"
    );
    let (s, p) = problem(h.link("g-000001", "ann@example.com").await).await;
    assert_eq!(s, 502, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("credentials"), "{p}");
}

#[tokio::test]
async fn the_openapi_document_matches_its_snapshot() {
    let h = Harness::start(Options::default()).await;
    let doc = h.get_text("/openapi.json").await;
    let parsed: Value = serde_json::from_str(&doc).unwrap();
    assert!(parsed["openapi"].as_str().unwrap().starts_with("3.1"));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/openapi.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, format!("{doc}\n")).unwrap();
    }
    let snapshot = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        snapshot.trim_end() == doc.trim_end(),
        "/openapi.json changed; review the difference and rerun with UPDATE_SNAPSHOTS=1 to accept it:\n{doc}"
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_and_records_them() {
    let mut h = Harness::start(Options {
        sim: SimConfig {
            latency: Duration::from_millis(400),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    // Fetch a token first so the in-flight requests are only the PATCHes.
    assert_eq!(h.link("g-000001", "ann@example.com").await.status(), 200);
    let inflight: Vec<_> = (2..=6)
        .map(|i| {
            let req = h.post(
                &format!("/v1/guests/g-00000{i}/identity"),
                &json!({ "identifier": format!("person{i}@example.com") }),
            );
            tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.stop().await;
    for t in inflight {
        assert_eq!(
            t.await.unwrap().unwrap(),
            200,
            "an in-flight request was cut"
        );
    }
    assert_eq!(
        h.links_audited().await,
        6,
        "every answered link is recorded"
    );
    // And new connections are refused once drained.
    assert!(h.link_fails_to_connect().await);
}

/// A request slower than the drain time does not keep the service from stopping.
#[tokio::test]
async fn shutdown_stops_after_the_drain_time_even_with_a_request_still_running() {
    let mut h = Harness::start(Options {
        sim: SimConfig {
            latency: Duration::from_secs(8),
            ..Default::default()
        },
        deadline: Duration::from_secs(30),
        drain: Duration::from_millis(500),
        ..Default::default()
    })
    .await;
    let req = h.post(
        "/v1/guests/g-000001/identity",
        &json!({ "identifier": "ann@example.com" }),
    );
    let _slow = tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    h.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped after {:?}",
        started.elapsed()
    );
}

impl Harness {
    async fn link_fails_to_connect(&self) -> bool {
        self.http
            .post(format!("{}/v1/guests/g-000001/identity", self.url))
            .bearer_auth(&self.key)
            .json(&json!({ "identifier": "ann@example.com" }))
            .send()
            .await
            .is_err()
    }
}
