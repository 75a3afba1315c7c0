//! §7 Webchat widgets.

use reqwest::Method;
use serde_json::{Value, json};

use crate::Env;

async fn get_widget(env: &Env, id: &str) -> (Value, String) {
    let r = env.get(&format!("/api/v2/webchat/widgets/{id}")).await;
    assert_eq!(r.status, 200);
    (r.body.clone(), r.header("etag").unwrap().to_string())
}

async fn put(env: &Env, id: &str, etag: Option<&str>, body: &Value) -> crate::Resp {
    let mut h = Vec::new();
    if let Some(e) = etag {
        h.push(("if-match", e));
    }
    env.send(
        Method::PUT,
        &format!("/api/v2/webchat/widgets/{id}"),
        &h,
        Some(body),
    )
    .await
}

#[tokio::test]
async fn widgets_list_with_valid_policies_and_get_has_an_etag() {
    let env = Env::new().await;
    let r = env.get("/api/v2/webchat/widgets").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let (w, etag) = get_widget(&env, "wgt-support").await;
    assert!(etag.starts_with('"'));
    // A seeded widget passes the server's own validation when sent back unchanged.
    assert_eq!(put(&env, "wgt-support", Some(&etag), &w).await.status, 200);
    assert_eq!(env.get("/api/v2/webchat/widgets/nope").await.status, 404);
}

#[tokio::test]
async fn put_requires_if_match_and_refuses_a_stale_one() {
    let env = Env::new().await;
    let (mut w, etag) = get_widget(&env, "wgt-sales").await;
    w["name"] = json!("Sales chat v2");
    assert_eq!(put(&env, "wgt-sales", None, &w).await.status, 428);
    assert_eq!(put(&env, "wgt-sales", Some("\"0\""), &w).await.status, 412);
    let ok = put(&env, "wgt-sales", Some(&etag), &w).await;
    assert_eq!(ok.status, 200);
    assert_ne!(ok.header("etag").unwrap(), etag);
    assert_eq!(ok.body["settings"]["version"], "2");
    assert_eq!(
        put(&env, "wgt-sales", Some(&etag), &w).await.status,
        412,
        "the old ETag is stale now"
    );
}

#[tokio::test]
async fn invalid_policies_are_422_with_one_error_per_problem_and_nothing_stored() {
    let env = Env::new().await;
    let (w, etag) = get_widget(&env, "wgt-support").await;
    let mut bad = w.clone();
    let p = &mut bad["settings"]["securityPolicies"];
    p["corsOrigins"] = json!([
        "https://ok.example.com",
        "https://example.com/path",
        "https://*.example.com",
        "http://example.com",
        "https://user@example.com",
        "http://localhost:8080"
    ]);
    p["authentication"]["tokenExpiryMinutes"] = json!(2);
    p["rules"] = json!([
        {"id": "r1", "action": "block", "pattern": "<script>alert(1)</script>"},
        {"id": "r1", "action": "allow", "pattern": "^/ok"},
        {"id": "r3", "action": "explode", "pattern": "x"},
        {"id": "r4", "action": "log", "pattern": "%3Cimg src=x onerror=alert(1)%3E"},
        {"id": "r5", "action": "redirect", "pattern": "&#106;avascript:alert(1)"}
    ]);
    let r = put(&env, "wgt-support", Some(&etag), &bad).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    let expected = [
        "settings.securityPolicies.corsOrigins[1]",
        "settings.securityPolicies.corsOrigins[2]",
        "settings.securityPolicies.corsOrigins[3]",
        "settings.securityPolicies.corsOrigins[4]",
        "settings.securityPolicies.authentication.tokenExpiryMinutes",
        "settings.securityPolicies.rules[0].pattern",
        "settings.securityPolicies.rules[1].id",
        "settings.securityPolicies.rules[2].action",
        "settings.securityPolicies.rules[3].pattern",
        "settings.securityPolicies.rules[4].pattern",
    ];
    assert_eq!(fields, expected);
    let (after, etag_after) = get_widget(&env, "wgt-support").await;
    assert_eq!(after, w, "nothing stored");
    assert_eq!(etag_after, etag);
}

#[tokio::test]
async fn more_than_50_rules_are_refused() {
    let env = Env::new().await;
    let (mut w, etag) = get_widget(&env, "wgt-support").await;
    let rules: Vec<Value> = (0..51)
        .map(|i| json!({"id": format!("r{i}"), "action": "log", "pattern": "x"}))
        .collect();
    w["settings"]["securityPolicies"]["rules"] = json!(rules);
    put(&env, "wgt-support", Some(&etag), &w)
        .await
        .assert_problem_field(422, "settings.securityPolicies.rules");
    let fifty: Vec<Value> = (0..50)
        .map(|i| json!({"id": format!("r{i}"), "action": "log", "pattern": "x"}))
        .collect();
    w["settings"]["securityPolicies"]["rules"] = json!(fifty);
    assert_eq!(put(&env, "wgt-support", Some(&etag), &w).await.status, 200);
}
