//! §5 Data stores: column encryption.

use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::{Value, json};

use crate::Env;

const TABLE: &str = "/api/v2/datastores/ds-customer/tables/tbl-customer-profiles";

fn target(name: &str, masking: bool) -> Value {
    json!({"name": name, "type": "string", "encryptionConfiguration": {
        "enabled": true, "algorithm": "AES-256-GCM", "complianceMode": "GDPR",
        "keyRotationDirective": {"strategy": "AUTOMATIC", "intervalDays": 90, "nextRotationEpoch": 1800000000},
        "indexMaskingTrigger": masking, "decryptionPermissionVerification": true}})
}

fn body(targets: Vec<Value>) -> Value {
    json!({"tableId": "tbl-customer-profiles", "columnTargetMatrix": targets})
}

async fn encrypt(env: &Env, key: Option<&str>, body: &Value) -> crate::Resp {
    let mut h = Vec::new();
    if let Some(k) = key {
        h.push(("x-idempotency-key", k));
    }
    env.send(Method::PATCH, &format!("{TABLE}/columns"), &h, Some(body))
        .await
}

async fn encrypted_columns(env: &Env) -> Vec<String> {
    env.get(TABLE).await.body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["encrypted"] == json!(true))
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// A KMS endpoint on loopback that answers `status` and records what it receives.
async fn kms_receiver(status: u16) -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/kms",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(v);
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/kms"), seen)
}

#[tokio::test]
async fn a_table_and_its_indexes_and_404s_that_name_what_is_unknown() {
    let env = Env::new().await;
    let t = env.get(TABLE).await;
    assert_eq!(t.status, 200);
    assert_eq!(t.body["metadata"]["maxEncryptedFields"], 12);
    let kinds: Vec<(bool, bool)> = {
        let idx = env.get(&format!("{TABLE}/indexes")).await.body;
        let cols = t.body["columns"].as_array().unwrap().clone();
        cols.iter()
            .map(|c| {
                let name = c["name"].as_str().unwrap();
                let ro = idx.as_array().unwrap().iter().any(|i| {
                    i["readOnly"] == json!(true)
                        && i["columns"].as_array().unwrap().iter().any(|x| x == name)
                });
                (c["encrypted"] == json!(true), ro)
            })
            .collect()
    };
    assert!(kinds.iter().any(|k| k.0) && kinds.iter().any(|k| !k.0) && kinds.iter().any(|k| k.1));
    let ds = env
        .get("/api/v2/datastores/ds-nope/tables/tbl-customer-profiles")
        .await;
    assert_eq!(ds.status, 404);
    assert!(
        ds.body["detail"]
            .as_str()
            .unwrap()
            .contains("datastore ds-nope")
    );
    let tb = env
        .get("/api/v2/datastores/ds-customer/tables/tbl-nope")
        .await;
    assert_eq!(tb.status, 404);
    assert!(
        tb.body["detail"]
            .as_str()
            .unwrap()
            .contains("table tbl-nope")
    );
}

#[tokio::test]
async fn an_idempotency_key_is_required() {
    let env = Env::new().await;
    assert_eq!(
        encrypt(&env, None, &body(vec![target("ssn", false)]))
            .await
            .status,
        428
    );
}

#[tokio::test]
async fn success_encrypts_and_returns_the_kms_payload() {
    let env = Env::new().await;
    let r = encrypt(
        &env,
        Some("e1"),
        &body(vec![target("ssn", false), target("full_name", true)]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["keyVersion"], 2);
    assert_eq!(
        r.body["externalKmsPayload"]["tableId"],
        "tbl-customer-profiles"
    );
    assert_eq!(
        r.body["externalKmsPayload"]["columns"],
        json!(["ssn", "full_name"])
    );
    assert_eq!(
        r.body["externalKmsPayload"]["complianceCheck"]["algorithm"],
        "AES-256-GCM"
    );
    let enc = encrypted_columns(&env).await;
    assert!(enc.contains(&"ssn".to_string()) && enc.contains(&"full_name".to_string()));
    let idx = env.get(&format!("{TABLE}/indexes")).await.body;
    let masked = idx
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "idx_phone_name")
        .unwrap();
    assert_eq!(
        masked["masked"], true,
        "a writable index holding an encrypted column is masked"
    );
}

#[tokio::test]
async fn an_unknown_column_or_algorithm_is_400_and_nothing_changes() {
    let env = Env::new().await;
    let before = encrypted_columns(&env).await;
    encrypt(
        &env,
        Some("u1"),
        &body(vec![target("ssn", false), target("no_such", false)]),
    )
    .await
    .assert_problem_field(400, "columnTargetMatrix[1].name");
    let mut bad = target("ssn", false);
    bad["encryptionConfiguration"]["algorithm"] = json!("AES-128-CBC");
    encrypt(&env, Some("u2"), &body(vec![bad]))
        .await
        .assert_problem_field(
            400,
            "columnTargetMatrix[0].encryptionConfiguration.algorithm",
        );
    assert_eq!(encrypted_columns(&env).await, before);
}

#[tokio::test]
async fn exceeding_max_encrypted_fields_is_409_and_nothing_changes() {
    let env = Env::new().await;
    // card_number is encrypted already; twelve more would make 13 of at most 12.
    let names = [
        "ssn",
        "full_name",
        "address_line1",
        "city",
        "postal_code",
        "country",
        "iban",
        "passport_number",
        "agent_notes",
        "email",
        "phone",
    ];
    let mut targets: Vec<Value> = names.iter().map(|c| target(c, true)).collect();
    let mut dob = target("date_of_birth", true);
    dob["type"] = json!("date");
    targets.push(dob);
    let before = encrypted_columns(&env).await;
    let r = encrypt(&env, Some("m1"), &body(targets.clone())).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("maxEncryptedFields")
    );
    assert_eq!(encrypted_columns(&env).await, before);
    targets.pop();
    assert_eq!(
        encrypt(&env, Some("m2"), &body(targets)).await.status,
        200,
        "eleven more make exactly 12"
    );
    assert_eq!(encrypted_columns(&env).await.len(), 12);
}

#[tokio::test]
async fn a_column_in_a_read_only_index_is_409_and_nothing_changes() {
    let env = Env::new().await;
    let before = encrypted_columns(&env).await;
    let r = encrypt(
        &env,
        Some("r1"),
        &body(vec![target("ssn", false), target("customer_id", true)]),
    )
    .await;
    assert_eq!(r.status, 409);
    assert!(r.body["detail"].as_str().unwrap().contains("pk_customer"));
    assert_eq!(
        encrypted_columns(&env).await,
        before,
        "all or nothing: ssn is not encrypted either"
    );
}

#[tokio::test]
async fn a_column_in_a_writable_index_needs_index_masking() {
    let env = Env::new().await;
    let r = encrypt(&env, Some("w1"), &body(vec![target("email", false)])).await;
    assert_eq!(r.status, 409);
    assert!(
        r.body["detail"].as_str().unwrap().contains("idx_email"),
        "{}",
        r.body
    );
    assert!(!encrypted_columns(&env).await.contains(&"email".to_string()));
    assert_eq!(
        encrypt(&env, Some("w2"), &body(vec![target("email", true)]))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_same_key_and_body_replays_without_change_and_another_body_is_422() {
    let env = Env::new().await;
    let b = body(vec![target("ssn", false)]);
    let first = encrypt(&env, Some("same"), &b).await;
    let again = encrypt(&env, Some("same"), &b).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        env.sim.control().state()["keyVersion"],
        2,
        "the replay changed nothing"
    );
    let other = encrypt(&env, Some("same"), &body(vec![target("full_name", true)])).await;
    assert_eq!(other.status, 422);
}

#[tokio::test]
async fn async_kms_callback_receives_the_payload_after_the_answer() {
    let env = Env::new().await;
    let (url, seen) = kms_receiver(200).await;
    let mut b = body(vec![target("ssn", false)]);
    b["externalKmsSync"] = json!({"callbackUrl": url, "syncMode": "ASYNC", "retryPolicy": {"maxAttempts": 3, "backoffMs": 10}});
    let r = encrypt(&env, Some("a1"), &b).await;
    assert_eq!(r.status, 200);
    for _ in 0..50 {
        if !seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen.lock().unwrap().first(),
        Some(&r.body["externalKmsPayload"])
    );
}

#[tokio::test]
async fn a_failed_sync_callback_rolls_back_and_answers_502() {
    let env = Env::new().await;
    let (url, seen) = kms_receiver(500).await;
    let mut b = body(vec![target("ssn", false)]);
    b["externalKmsSync"] = json!({"callbackUrl": url, "syncMode": "SYNC", "retryPolicy": {"maxAttempts": 2, "backoffMs": 1}});
    let r = encrypt(&env, Some("s1"), &b).await;
    assert_eq!(r.status, 502);
    assert_eq!(seen.lock().unwrap().len(), 2, "retried per its retryPolicy");
    assert!(!encrypted_columns(&env).await.contains(&"ssn".to_string()));
    let (ok_url, _) = kms_receiver(204).await;
    b["externalKmsSync"]["callbackUrl"] = json!(ok_url);
    assert_eq!(encrypt(&env, Some("s2"), &b).await.status, 200);
    assert!(encrypted_columns(&env).await.contains(&"ssn".to_string()));
}
