//! Every error path a caller can hit: 401, 400 naming the field, 404, 413, 415, 429,
//! 502 after exhausted retries, and unknown routes — all problem documents, none of them
//! echoing the identifier.

use std::time::{Duration, Instant};

use cxone_sim::SimConfig;
use serde_json::json;
use server::RateLimit;

use crate::{Harness, Options, problem};

#[tokio::test]
async fn no_key_or_a_wrong_key_is_401_before_anything_else() {
    let h = Harness::start(Options::default()).await;
    let path = format!("{}/v1/guests/g-000001/identity", h.url);
    let body = json!({ "identifier": "ann@example.com" });
    let no_key = h.http.post(&path).json(&body).send().await.unwrap();
    let (s, p) = problem(no_key).await;
    assert_eq!(s, 401, "{p}");
    let wrong = h
        .http
        .post(&path)
        .bearer_auth("cxg_not-a-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(wrong).await.0, 401);
    // A bad body without a key is still 401: nothing is read before authentication.
    let junk = h
        .http
        .post(&path)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(junk).await.0, 401);
    assert_eq!(h.attribute("g-000001"), None);
    assert_eq!(h.links_audited().await, 0);
}

#[tokio::test]
async fn bad_input_is_400_naming_the_field_and_never_echoing_it() {
    let h = Harness::start(Options::default()).await;
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("/v1/guests/g-000001/identity", json!({}), "identifier"),
        (
            "/v1/guests/g-000001/identity",
            json!({ "identifier": 42 }),
            "identifier",
        ),
        (
            "/v1/guests/g-000001/identity",
            json!({ "identifier": "ann.lee@" }),
            "identifier",
        ),
        (
            "/v1/guests/g-000001/identity",
            json!({ "identifier": "call me maybe", "kind": "phone" }),
            "identifier",
        ),
        (
            "/v1/guests/g-000001/identity",
            json!({ "identifier": "ann@example.com", "kind": "fax" }),
            "kind",
        ),
        (
            "/v1/guests/g-000001/identity",
            json!({ "identifier": "ann@example.com", "identifer": "x" }),
            "identifer",
        ),
        (
            "/v1/guests/g-000001/identity",
            json!({ "identifier": "ann@example.com", "bob@example.com": 1 }),
            "(unknown)",
        ),
        (
            "/v1/guests/g%20001/identity",
            json!({ "identifier": "ann@example.com" }),
            "guestId",
        ),
        (
            "/api/update-guest-attributes",
            json!({ "user_identifier": "ann@example.com" }),
            "guest_id",
        ),
        (
            "/api/update-guest-attributes",
            json!({ "guest_id": "g-000001", "user_identifier": "secret-ann@" }),
            "user_identifier",
        ),
        (
            "/api/update-guest-attributes",
            json!({ "guest_id": "../admin", "user_identifier": "ann@example.com" }),
            "guest_id",
        ),
    ];
    for (path, body, field) in cases {
        let r = h.post(path, &body).send().await.unwrap();
        let text_body = body.to_string();
        let (s, p) = problem(r).await;
        assert_eq!(s, 400, "{path} {text_body}: {p}");
        assert_eq!(p["field"], field, "{path} {text_body}: {p}");
        assert!(!p["detail"].as_str().unwrap().is_empty(), "{p}");
        assert!(!p.to_string().contains("bob@"), "{p}");
        for k in ["identifier", "user_identifier"] {
            if let Some(v) = body[k].as_str().filter(|v| v.len() > 3) {
                assert!(!p.to_string().contains(v), "echoes {v:?}: {p}");
            }
        }
    }
    // Not JSON at all, and not declared as JSON.
    let r = h
        .http
        .post(format!("{}/v1/guests/g-000001/identity", h.url))
        .bearer_auth(&h.key)
        .header("content-type", "application/json")
        .body("{\"identifier\": ")
        .send()
        .await
        .unwrap();
    let (s, p) = problem(r).await;
    assert_eq!((s, p["field"].as_str()), (400, Some("body")), "{p}");
    let r = h
        .http
        .post(format!("{}/v1/guests/g-000001/identity", h.url))
        .bearer_auth(&h.key)
        .header("content-type", "text/plain")
        .body("ann@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 415);
    assert_eq!(h.attribute("g-000001"), None, "nothing reached the tenant");
    assert_eq!(h.links_audited().await, 0);
}

#[tokio::test]
async fn an_unknown_guest_is_404() {
    let h = Harness::start(Options::default()).await;
    let r = h.link("g-999999", "ann@example.com").await;
    let (s, p) = problem(r).await;
    assert_eq!(s, 404, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("g-999999"));
    assert_eq!(h.links_audited().await, 0);
}

#[tokio::test]
async fn a_body_over_16_kib_is_413_with_or_without_a_length() {
    let h = Harness::start(Options::default()).await;
    let big = json!({ "identifier": "a".repeat(17 * 1024) });
    let r = h
        .post("/v1/guests/g-000001/identity", &big)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 413);
    // Chunked, no Content-Length: the limit still holds while reading.
    let addr = h.url.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/guests/g-000001/identity HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        h.key
    );
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    tcp.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("400\r\n{}\r\n", "a".repeat(1024));
    for _ in 0..20 {
        if tcp.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server may answer and close before the end
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    // Just under the limit is read (and refused for what it says, not its size).
    let under = json!({ "identifier": "a".repeat(15 * 1024) });
    let r = h
        .post("/v1/guests/g-000001/identity", &under)
        .send()
        .await
        .unwrap();
    let (s, p) = problem(r).await;
    assert_eq!((s, p["field"].as_str()), (400, Some("identifier")), "{p}");
}

#[tokio::test]
async fn over_the_rate_limit_is_429_with_retry_after() {
    let h = Harness::start(Options {
        rate: RateLimit {
            per_second: 1,
            burst: 3,
        },
        ..Default::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = h.link("g-000001", "ann@example.com").await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let wait: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&wait), "Retry-After {wait}");
            let (_, p) = problem(r).await;
            assert_eq!(p["retryAfter"], wait);
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(h.link("g-000001", "ann@example.com").await.status(), 200);
}

#[tokio::test]
async fn exhausted_upstream_retries_are_a_prompt_502() {
    let sim = SimConfig {
        fault_rate: 1.0,
        ..Default::default()
    };
    let h = Harness::start(Options {
        sim,
        deadline: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let r = h.link("g-000001", "ann@example.com").await;
    let (s, p) = problem(r).await;
    assert_eq!(s, 502, "{p}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        h.sim
            .control()
            .route_hits("PATCH /api/v2/interactions/guests/{id}/attributes")
            > 1,
        "retried first"
    );
    assert_eq!(h.links_audited().await, 0);
    let metrics = h.get_text("/metrics").await;
    assert!(
        metrics.contains("cxguard_identity_links_total{outcome=\"upstream_failed\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let h = Harness::start(Options::default()).await;
    let r = h.http.get(format!("{}/nope", h.url)).send().await.unwrap();
    assert_eq!(problem(r).await.0, 404);
    let r = h
        .http
        .get(format!("{}/v1/guests/g-000001/identity", h.url))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("allow"));
    assert_eq!(problem(r).await.0, 405);
    // Made-up methods are refused and counted as OTHER: no caller grows the metrics.
    let brew = reqwest::Method::from_bytes(b"BREW").unwrap();
    let r = h
        .http
        .request(brew, format!("{}/healthz", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 405);
    let metrics = h.get_text("/metrics").await;
    assert!(metrics.contains("method=\"OTHER\""), "{metrics}");
    assert!(!metrics.contains("BREW"), "{metrics}");
}
