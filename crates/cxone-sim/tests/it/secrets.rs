//! §3 Integration secrets and Data Actions.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{Env, sha256_hex};

const SECRET: &str = "sec-crm-api-key";

fn seeded(env: &Env, id: &str) -> String {
    let seed = env.sim.control().state()["seed"].as_u64().unwrap();
    cxone_sim::seeded_secret_value(seed, id).unwrap()
}

fn rotation(prev: &str, value: &str, format: &str) -> Value {
    json!({
        "value": value, "format": format, "description": "rotated in a test",
        "referenceUpdateDirective": "immediate",
        "verificationMatrix": {"previous_sha256": sha256_hex(prev), "proposed_sha256": sha256_hex(value)},
    })
}

async fn put(env: &Env, id: &str, body: &Value) -> crate::Resp {
    env.send(
        Method::PUT,
        &format!("/api/v2/integration/secret/{id}"),
        &[],
        Some(body),
    )
    .await
}

#[tokio::test]
async fn secrets_list_without_their_values() {
    let env = Env::new().await;
    let r = env.get("/api/v2/integration/secret").await;
    assert_eq!(r.status, 200);
    let items = r.body["items"].as_array().unwrap();
    assert!(items.len() >= 4);
    let formats: Vec<&str> = items
        .iter()
        .map(|s| s["format"].as_str().unwrap())
        .collect();
    for f in ["raw", "jwt", "base64"] {
        assert!(formats.contains(&f), "a secret of each format: {formats:?}");
    }
    for s in items {
        for key in [
            "id",
            "name",
            "format",
            "description",
            "version",
            "valueSha256",
            "updatedAt",
        ] {
            assert!(s.get(key).is_some(), "{key} in {s}");
        }
        assert!(s.get("value").is_none(), "the value is never returned");
    }
}

#[tokio::test]
async fn a_secret_by_id_and_404_for_unknown() {
    let env = Env::new().await;
    let r = env
        .get(&format!("/api/v2/integration/secret/{SECRET}"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["valueSha256"], sha256_hex(&seeded(&env, SECRET)));
    assert_eq!(env.get("/api/v2/integration/secret/nope").await.status, 404);
}

#[tokio::test]
async fn references_list_the_dependent_data_actions() {
    let env = Env::new().await;
    let r = env
        .get(&format!("/api/v2/integration/secret/{SECRET}/references"))
        .await;
    assert_eq!(r.status, 200);
    let ids: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["dataActionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "one secret has three dependents: {ids:?}");
    assert!(r.body["items"][0]["name"].is_string());
    assert_eq!(
        env.get("/api/v2/integration/secret/nope/references")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_data_action_has_its_compiled_secret_versions() {
    let env = Env::new().await;
    let r = env
        .get("/api/v2/integration/dataaction/da-crm-lookup")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "compiled");
    assert_eq!(r.body["secretIds"], json!([SECRET]));
    assert_eq!(r.body["compiledSecretVersions"][SECRET], 1);
    assert_eq!(
        env.get("/api/v2/integration/dataaction/nope").await.status,
        404
    );
}

#[tokio::test]
async fn rotation_bumps_the_version_and_makes_dependents_stale() {
    let env = Env::new().await;
    let old = seeded(&env, SECRET);
    let r = put(&env, SECRET, &rotation(&old, "key_new_value_1", "raw")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["valueSha256"], sha256_hex("key_new_value_1"));
    for a in ["da-crm-lookup", "da-crm-case", "da-crm-loyalty"] {
        assert_eq!(
            env.get(&format!("/api/v2/integration/dataaction/{a}"))
                .await
                .body["status"],
            "stale",
            "{a}"
        );
    }
    assert_eq!(
        env.get("/api/v2/integration/dataaction/da-payment-status")
            .await
            .body["status"],
        "compiled"
    );
}

#[tokio::test]
async fn deferred_rotation_leaves_dependents_compiled() {
    let env = Env::new().await;
    let old = seeded(&env, SECRET);
    let mut body = rotation(&old, "key_deferred", "raw");
    body["referenceUpdateDirective"] = json!("deferred");
    assert_eq!(put(&env, SECRET, &body).await.status, 200);
    assert_eq!(
        env.get("/api/v2/integration/dataaction/da-crm-lookup")
            .await
            .body["status"],
        "compiled"
    );
}

#[tokio::test]
async fn a_stale_previous_hash_is_409_and_changes_nothing() {
    let env = Env::new().await;
    let r = put(
        &env,
        SECRET,
        &rotation("not the stored value", "key_x", "raw"),
    )
    .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        env.get(&format!("/api/v2/integration/secret/{SECRET}"))
            .await
            .body["version"],
        1
    );
    assert!(env.sim.control().mutations("secret/").is_empty());
}

#[tokio::test]
async fn a_value_over_4096_characters_is_400_naming_value() {
    let env = Env::new().await;
    let old = seeded(&env, SECRET);
    let long = "a".repeat(4097);
    put(&env, SECRET, &rotation(&old, &long, "raw"))
        .await
        .assert_problem_field(400, "value");
    let ok = "a".repeat(4096);
    assert_eq!(
        put(&env, SECRET, &rotation(&old, &ok, "raw")).await.status,
        200
    );
}

#[tokio::test]
async fn format_must_be_known_and_the_value_well_formed() {
    let env = Env::new().await;
    let old = seeded(&env, "sec-payments-jwt");
    put(&env, "sec-payments-jwt", &rotation(&old, "abc", "pem"))
        .await
        .assert_problem_field(400, "format");
    for bad_jwt in [
        "a.b",
        "a..c",
        "x.y.z",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        "eyJhbGciOiJIUzI1NiJ9.e30.s!g",
    ] {
        put(&env, "sec-payments-jwt", &rotation(&old, bad_jwt, "jwt"))
            .await
            .assert_problem_field(400, "value");
    }
    let good_jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    assert_eq!(
        put(&env, "sec-payments-jwt", &rotation(&old, good_jwt, "jwt"))
            .await
            .status,
        200
    );

    let old = seeded(&env, "sec-erp-basic");
    for bad_b64 in ["abc", "ab$=", "YWJj\n"] {
        put(&env, "sec-erp-basic", &rotation(&old, bad_b64, "base64"))
            .await
            .assert_problem_field(400, "value");
    }
    assert_eq!(
        put(&env, "sec-erp-basic", &rotation(&old, "YWJjZA==", "base64"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn proposed_hash_must_match_the_value() {
    let env = Env::new().await;
    let old = seeded(&env, SECRET);
    let mut body = rotation(&old, "key_y", "raw");
    body["verificationMatrix"]["proposed_sha256"] = json!(sha256_hex("something else"));
    put(&env, SECRET, &body)
        .await
        .assert_problem_field(400, "verificationMatrix.proposed_sha256");
}

#[tokio::test]
async fn recompile_compiles_against_current_versions_and_test_passes() {
    let env = Env::new().await;
    let old = seeded(&env, SECRET);
    put(&env, SECRET, &rotation(&old, "key_v2", "raw")).await;
    let stale_test = env
        .post(
            "/api/v2/integration/dataaction/da-crm-lookup/test",
            &json!({}),
        )
        .await;
    assert_eq!(
        stale_test.status, 422,
        "a stale action tests against an old version"
    );
    let r = env
        .post(
            "/api/v2/integration/dataaction/da-crm-lookup/recompile",
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "compiled");
    assert_eq!(r.body["compiledSecretVersions"][SECRET], 2);
    let t = env
        .post(
            "/api/v2/integration/dataaction/da-crm-lookup/test",
            &json!({}),
        )
        .await;
    assert_eq!(t.status, 200);
    assert_eq!(t.body, json!({"ok": true}));
}

#[tokio::test]
async fn a_rejected_value_fails_recompile_and_test_until_an_accepted_value_is_compiled() {
    let env = Env::new().await;
    let old = seeded(&env, SECRET);
    env.sim
        .control()
        .reject_secret(Some("da-crm-case"), &sha256_hex("key_bad"));
    put(&env, SECRET, &rotation(&old, "key_bad", "raw")).await;
    let r = env
        .post(
            "/api/v2/integration/dataaction/da-crm-case/recompile",
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["dataActionStatus"], "failed");
    assert_eq!(r.body["dataAction"]["id"], "da-crm-case");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let t = env
        .post(
            "/api/v2/integration/dataaction/da-crm-case/test",
            &json!({}),
        )
        .await;
    assert_eq!(t.status, 422);
    assert_eq!(t.body["ok"], false);
    assert!(t.body["detail"].is_string());
    // Other dependents accept the value.
    assert_eq!(
        env.post(
            "/api/v2/integration/dataaction/da-crm-lookup/recompile",
            &json!({})
        )
        .await
        .status,
        200
    );
    // Rolling back to the old value and recompiling heals the action.
    put(&env, SECRET, &rotation("key_bad", &old, "raw")).await;
    assert_eq!(
        env.post(
            "/api/v2/integration/dataaction/da-crm-case/test",
            &json!({})
        )
        .await
        .status,
        422,
        "still failing before recompile"
    );
    assert_eq!(
        env.post(
            "/api/v2/integration/dataaction/da-crm-case/recompile",
            &json!({})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        env.post(
            "/api/v2/integration/dataaction/da-crm-case/test",
            &json!({})
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn reject_secret_over_the_control_api() {
    let env = Env::new().await;
    let r = crate::read(
        env.http
            .post(env.url("/_control/reject-secret"))
            .json(&json!({"dataActionId": "da-erp-order", "sha256": sha256_hex("YmFk")}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let old = seeded(&env, "sec-erp-basic");
    put(&env, "sec-erp-basic", &rotation(&old, "YmFk", "base64")).await;
    assert_eq!(
        env.post(
            "/api/v2/integration/dataaction/da-erp-order/recompile",
            &json!({})
        )
        .await
        .status,
        422
    );
}
