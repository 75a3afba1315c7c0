//! §6 Web-messaging guests.

use reqwest::Method;
use serde_json::{Value, json};

use crate::Env;

async fn patch(env: &Env, guest: &str, ops: &Value) -> crate::Resp {
    env.send(
        Method::PATCH,
        &format!("/api/v2/interactions/guests/{guest}/attributes"),
        &[],
        Some(ops),
    )
    .await
}

#[tokio::test]
async fn creating_a_guest_is_201_with_its_id() {
    let env = Env::new().await;
    let r = env.post("/api/v2/interactions/guests", &json!({})).await;
    assert_eq!(r.status, 201);
    let id = r.body["id"].as_str().unwrap();
    let attrs = env
        .get(&format!("/api/v2/interactions/guests/{id}/attributes"))
        .await;
    assert_eq!(attrs.status, 200);
    assert_eq!(attrs.body, json!([]));
}

#[tokio::test]
async fn attributes_of_an_unknown_guest_are_404() {
    let env = Env::new().await;
    assert_eq!(
        env.get("/api/v2/interactions/guests/g-nobody/attributes")
            .await
            .status,
        404
    );
    let ops = json!([{"id": "a", "value": "b", "operation": "upsert"}]);
    assert_eq!(patch(&env, "g-nobody", &ops).await.status, 404);
}

#[tokio::test]
async fn upsert_and_delete_attributes_with_timestamps() {
    let env = Env::new().await;
    let r = patch(
        &env,
        "g-000001",
        &json!([{"id": "hashed_user_id", "value": "abc", "operation": "upsert"}]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let a = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "hashed_user_id")
        .unwrap()
        .clone();
    assert_eq!(a["type"], "string");
    assert!(
        a["createdTimestamp"].as_i64().unwrap() > 1_600_000_000_000,
        "milliseconds"
    );
    let d = patch(
        &env,
        "g-000001",
        &json!([{"id": "hashed_user_id", "operation": "delete"}]),
    )
    .await;
    assert!(
        d.body
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != "hashed_user_id")
    );
}

#[tokio::test]
async fn an_identical_upsert_changes_nothing_not_even_the_timestamp() {
    let env = Env::new().await;
    let ops = json!([{"id": "hashed_user_id", "value": "v1", "operation": "upsert"}]);
    let first = patch(&env, "g-000002", &ops).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = patch(&env, "g-000002", &ops).await;
    assert_eq!(first.body, second.body);
    assert_eq!(
        env.sim
            .control()
            .mutations("guest/g-000002")
            .values()
            .sum::<u64>(),
        1
    );
}

#[tokio::test]
async fn invalid_operations_are_400_and_nothing_is_applied() {
    let env = Env::new().await;
    let good = json!({"id": "ok_attr", "value": "1", "operation": "upsert"});
    let cases = [
        (
            json!([good, {"id": "bad id!", "value": "x", "operation": "upsert"}]),
            "[1].id",
        ),
        (
            json!([good, {"id": "x".repeat(65), "value": "x", "operation": "upsert"}]),
            "[1].id",
        ),
        (
            json!([good, {"id": "v", "value": "x".repeat(1025), "operation": "upsert"}]),
            "[1].value",
        ),
        (json!([good, {"id": "v", "value": "x"}]), "[1].operation"),
        (
            json!([good, {"id": "v", "value": "x", "operation": "merge"}]),
            "[1].operation",
        ),
        (
            Value::Array(
                (0..51)
                    .map(|i| json!({"id": format!("a{i}"), "value": "v", "operation": "upsert"}))
                    .collect(),
            ),
            "body",
        ),
    ];
    for (ops, field) in cases {
        patch(&env, "g-000003", &ops)
            .await
            .assert_problem_field(400, field);
    }
    let attrs = env
        .get("/api/v2/interactions/guests/g-000003/attributes")
        .await
        .body;
    assert!(
        attrs
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != "ok_attr"),
        "all or nothing"
    );
    let fifty = Value::Array(
        (0..50)
            .map(|i| json!({"id": format!("a{i}"), "value": "v", "operation": "upsert"}))
            .collect(),
    );
    assert_eq!(
        patch(&env, "g-000003", &fifty).await.status,
        200,
        "50 operations are allowed"
    );
}
