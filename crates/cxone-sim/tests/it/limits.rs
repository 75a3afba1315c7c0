//! §2 Rate limits, faults, idempotency keys, and the order of checks.

use cxone_sim::SimConfig;
use reqwest::Method;
use serde_json::json;

use crate::{Env, read, token_for};

#[tokio::test]
async fn over_the_tenant_limit_is_429_with_integer_retry_after_and_a_problem() {
    let env = Env::start(SimConfig {
        contacts: 10,
        rate_limit: Some(5),
        webchat_rate_limit: Some(5),
        ..Default::default()
    })
    .await;
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..8 {
        let r = env.get("/api/v2/integration/secret").await;
        statuses.push(r.status);
        if r.status == 429 {
            refused = Some(r);
        }
    }
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    let r = refused.expect("a 429 after the burst");
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
}

#[tokio::test]
async fn successful_responses_carry_ratelimit_headers() {
    let env = Env::start(SimConfig {
        contacts: 10,
        rate_limit: Some(50),
        webchat_rate_limit: Some(5),
        ..Default::default()
    })
    .await;
    let a = env.get("/api/v2/integration/secret").await;
    let b = env.get("/api/v2/integration/secret").await;
    assert_eq!(a.header("ratelimit-limit"), Some("50"));
    let ra: u64 = a.header("ratelimit-remaining").unwrap().parse().unwrap();
    let rb: u64 = b.header("ratelimit-remaining").unwrap().parse().unwrap();
    assert!(rb < ra, "remaining goes down: {ra} then {rb}");
    assert!(a.header("ratelimit-reset").unwrap().parse::<u64>().is_ok());
}

#[tokio::test]
async fn webchat_has_its_own_smaller_bucket() {
    let env = Env::start(SimConfig {
        contacts: 10,
        rate_limit: Some(100),
        webchat_rate_limit: Some(3),
        ..Default::default()
    })
    .await;
    let mut webchat = Vec::new();
    for _ in 0..5 {
        webchat.push(env.get("/api/v2/webchat/widgets").await.status);
    }
    assert_eq!(webchat, vec![200, 200, 200, 429, 429]);
    assert_eq!(
        env.get("/api/v2/integration/secret").await.status,
        200,
        "the tenant bucket is untouched"
    );
    let w = env.get("/api/v2/integration/secret").await;
    assert_eq!(w.header("ratelimit-limit"), Some("100"));
}

#[tokio::test]
async fn injected_faults_are_500_or_503_and_change_nothing() {
    let env = Env::new().await;
    env.sim
        .control()
        .configure(json!({"faultRate": 1.0}))
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let r = env
            .send(
                Method::PATCH,
                "/api/v1/contacts/c-0000001",
                &[("if-match", "*")],
                Some(&json!({"firstName": "Changed"})),
            )
            .await;
        seen.insert(r.status);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
    assert!(seen.iter().all(|s| *s == 500 || *s == 503), "{seen:?}");
    assert_eq!(seen.len(), 2, "both 500 and 503 occur: {seen:?}");
    assert_ne!(
        env.sim.control().contact("c-0000001").unwrap()["firstName"],
        "Changed"
    );
    assert!(env.sim.control().mutations("contact/").is_empty());
}

#[tokio::test]
async fn injected_503_can_carry_retry_after() {
    let env = Env::new().await;
    env.sim
        .control()
        .configure(json!({"faultRate": 1.0, "faultRetryAfter": 2}))
        .unwrap();
    for _ in 0..20 {
        let r = env.get("/api/v2/integration/secret").await;
        if r.status == 503 {
            assert_eq!(r.header("retry-after"), Some("2"));
            return;
        }
    }
    panic!("no 503 in 20 faults");
}

#[tokio::test]
async fn a_reset_happens_after_the_change_was_made() {
    let env = Env::new().await;
    env.sim
        .control()
        .configure(json!({"resetRate": 1.0}))
        .unwrap();
    let result = env
        .http
        .patch(env.url("/api/v1/contacts/c-0000002"))
        .bearer_auth(&env.token)
        .header("if-match", "*")
        .json(&json!({"lastName": "AfterReset"}))
        .send()
        .await;
    let failed = match result {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed, "the client must see a broken connection");
    assert_eq!(
        env.sim.control().contact("c-0000002").unwrap()["lastName"],
        "AfterReset"
    );
    assert_eq!(
        env.sim
            .control()
            .mutations("contact/c-0000002")
            .values()
            .sum::<u64>(),
        1
    );
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let env = Env::new().await;
    let first = env
        .send(
            Method::POST,
            "/api/v2/interactions/guests",
            &[("x-idempotency-key", "k1")],
            Some(&json!({})),
        )
        .await;
    assert_eq!(first.status, 201);
    let again = env
        .send(
            Method::POST,
            "/api/v2/interactions/guests",
            &[("x-idempotency-key", "k1")],
            Some(&json!({})),
        )
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body, "the same guest, not a second one");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = env
        .send(
            Method::POST,
            "/api/v2/interactions/guests",
            &[("x-idempotency-key", "k1")],
            Some(&json!({"x": 1})),
        )
        .await;
    assert_eq!(other.status, 422);
    assert_eq!(env.sim.control().mutations("guest/g-new").len(), 1);
}

#[tokio::test]
async fn idempotency_keys_are_honoured_on_patch_too() {
    let env = Env::new().await;
    let h = [("x-idempotency-key", "p1"), ("if-match", "*")];
    let a = env
        .send(
            Method::PATCH,
            "/api/v1/contacts/c-0000003",
            &h,
            Some(&json!({"firstName": "A"})),
        )
        .await;
    let b = env
        .send(
            Method::PATCH,
            "/api/v1/contacts/c-0000003",
            &h,
            Some(&json!({"firstName": "A"})),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    assert_eq!(a.header("etag"), b.header("etag"));
}

/// Spec §2's order: route → token → rate limit → scope → fault → replay → resource →
/// If-Match → body → conflict. Each pair below breaks two rules at once and expects the
/// earlier one to win.
#[tokio::test]
async fn checks_run_in_the_specified_order() {
    let env = Env::start(SimConfig {
        contacts: 10,
        rate_limit: Some(2),
        webchat_rate_limit: Some(2),
        ..Default::default()
    })
    .await;
    // unknown route (404) before missing token (401)
    let r = read(
        env.http
            .get(env.url("/api/v1/nowhere"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 404);
    // token (401) before rate limit (429): exhaust the bucket first
    env.get("/api/v2/integration/secret").await;
    env.get("/api/v2/integration/secret").await;
    let r = read(
        env.http
            .get(env.url("/api/v2/integration/secret"))
            .bearer_auth("bogus")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
    // rate limit (429) before scope (403)
    let narrow = token_for(&env.http, &env.sim, Some("contact:read")).await;
    let r = read(
        env.http
            .get(env.url("/api/v2/integration/secret"))
            .bearer_auth(&narrow)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 429);
    env.sim
        .control()
        .configure(json!({"rateLimit": null}))
        .unwrap();
    // scope (403) before fault
    env.sim
        .control()
        .configure(json!({"faultRate": 1.0}))
        .unwrap();
    let r = read(
        env.http
            .get(env.url("/api/v2/integration/secret"))
            .bearer_auth(&narrow)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 403);
    // fault before idempotency replay
    env.sim
        .control()
        .configure(json!({"faultRate": 0.0}))
        .unwrap();
    let h = [("x-idempotency-key", "order-1")];
    assert_eq!(
        env.send(
            Method::POST,
            "/api/v2/interactions/guests",
            &h,
            Some(&json!({}))
        )
        .await
        .status,
        201
    );
    env.sim
        .control()
        .configure(json!({"faultRate": 1.0}))
        .unwrap();
    let r = env
        .send(
            Method::POST,
            "/api/v2/interactions/guests",
            &h,
            Some(&json!({})),
        )
        .await;
    assert!(r.status == 500 || r.status == 503);
    env.sim
        .control()
        .configure(json!({"faultRate": 0.0}))
        .unwrap();
    // replay before unknown resource: a key used on an existing guest, then the same key
    // on a missing guest with another path → 422 (key reuse), not 404
    let h2 = [("x-idempotency-key", "order-2")];
    let ops = json!([{"id": "a", "value": "1", "operation": "upsert"}]);
    assert_eq!(
        env.send(
            Method::PATCH,
            "/api/v2/interactions/guests/g-000001/attributes",
            &h2,
            Some(&ops)
        )
        .await
        .status,
        200
    );
    let r = env
        .send(
            Method::PATCH,
            "/api/v2/interactions/guests/g-nobody/attributes",
            &h2,
            Some(&ops),
        )
        .await;
    assert_eq!(r.status, 422);
    // unknown resource (404) before If-Match (428)
    let r = env
        .send(
            Method::PATCH,
            "/api/v1/contacts/c-0000999",
            &[],
            Some(&json!({"firstName": "x"})),
        )
        .await;
    assert_eq!(r.status, 404);
    // If-Match (428) before body (400)
    let r = env
        .send(
            Method::PATCH,
            "/api/v1/contacts/c-0000001",
            &[],
            Some(&json!({"bogus": 1})),
        )
        .await;
    assert_eq!(r.status, 428);
    // If-Match (412) before body (400)
    let r = env
        .send(
            Method::PATCH,
            "/api/v1/contacts/c-0000001",
            &[("if-match", "\"stale\"")],
            Some(&json!({"bogus": 1})),
        )
        .await;
    assert_eq!(r.status, 412);
    // body (400) before conflict (409): a bad format with a stale previous hash
    let r = env
        .send(
            Method::PUT,
            "/api/v2/integration/secret/sec-crm-api-key",
            &[],
            Some(&json!({"value": "", "format": "raw", "verificationMatrix": {"previous_sha256": "0".repeat(64), "proposed_sha256": "0".repeat(64)}})),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn unsupported_media_type_is_415() {
    let env = Env::new().await;
    let r = read(
        env.http
            .patch(env.url("/api/v1/contacts/c-0000001"))
            .bearer_auth(&env.token)
            .header("if-match", "*")
            .header("content-type", "text/plain")
            .body("firstName=x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 415);
}

#[tokio::test]
async fn scripted_faults_and_resets_hit_the_next_requests_in_order() {
    let env = Env::new().await;
    env.sim
        .control()
        .configure(json!({"failNext": [503, 500]}))
        .unwrap();
    assert_eq!(env.get("/api/v2/integration/secret").await.status, 503);
    assert_eq!(env.get("/api/v2/integration/secret").await.status, 500);
    assert_eq!(env.get("/api/v2/integration/secret").await.status, 200);
    env.sim
        .control()
        .configure(json!({"resetNext": 1}))
        .unwrap();
    let broken = env
        .http
        .get(env.url("/api/v2/integration/secret"))
        .bearer_auth(&env.token)
        .send()
        .await;
    assert!(match broken {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    });
    assert_eq!(env.get("/api/v2/integration/secret").await.status, 200);
    assert!(
        env.sim
            .control()
            .configure(json!({"failNext": [404]}))
            .is_err(),
        "only transient statuses"
    );
    assert!(
        env.sim
            .control()
            .configure(json!({"faultRate": 2}))
            .is_err()
    );
    assert!(env.sim.control().configure(json!({"nonsense": 1})).is_err());
}

#[tokio::test]
async fn the_control_api_reports_state_over_http() {
    let env = Env::new().await;
    env.get("/api/v2/integration/secret").await;
    let state = env.control("/state").await;
    assert_eq!(state["counts"]["contacts"], 300);
    assert_eq!(
        state["counters"]["routes"]["GET /api/v2/integration/secret"],
        1
    );
    let r = crate::read(
        env.http
            .put(env.url("/_control/config"))
            .json(&json!({"latencyMs": 5, "rateLimit": 1000}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["latencyMs"], 5);
    let bad = crate::read(
        env.http
            .put(env.url("/_control/config"))
            .json(&json!({"resetRate": -1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status, 400);
    let revoked = crate::read(
        env.http
            .post(env.url("/_control/revoke-tokens"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(revoked.body["revoked"], 1);
    assert_eq!(env.get("/api/v2/integration/secret").await.status, 401);
}
