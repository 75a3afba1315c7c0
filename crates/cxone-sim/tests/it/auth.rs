//! §1 Authentication, and the response conventions every endpoint shares.

use std::time::Duration;

use cxone_sim::SimConfig;
use serde_json::{Value, json};

use crate::{Env, read, token_for};

async fn token_request(
    env: &Env,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> crate::Resp {
    let mut req = env.http.post(env.url(path)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    read(req.send().await.unwrap()).await
}

#[tokio::test]
async fn client_credentials_with_basic_auth_returns_a_bearer_token() {
    let env = Env::new().await;
    let c = env.sim.credentials().clone();
    let r = token_request(
        &env,
        "/oauth/token",
        Some((&c.client_id, &c.client_secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 3600, "expires_in defaults to 3600 s");
    assert!(r.body["access_token"].as_str().unwrap().len() >= 32);
    assert!(r.body["scope"].as_str().unwrap().contains("contact:write"));
}

#[tokio::test]
async fn client_secret_post_is_accepted() {
    let env = Env::new().await;
    let c = env.sim.credentials().clone();
    let r = token_request(
        &env,
        "/oauth/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn basic_and_form_credentials_together_are_invalid_request() {
    let env = Env::new().await;
    let c = env.sim.credentials().clone();
    let r = token_request(
        &env,
        "/oauth/token",
        Some((&c.client_id, &c.client_secret)),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
        ],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "invalid_request");
}

#[tokio::test]
async fn token_aliases_behave_identically() {
    let env = Env::new().await;
    let c = env.sim.credentials().clone();
    for path in ["/oauth/token", "/api/v2/oauth/token", "/as/token.oauth2"] {
        let ok = token_request(
            &env,
            path,
            Some((&c.client_id, &c.client_secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(ok.status, 200, "{path}");
        let bad = token_request(
            &env,
            path,
            Some((&c.client_id, "wrong")),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(bad.status, 401, "{path}");
        assert_eq!(bad.body["error"], "invalid_client");
    }
}

#[tokio::test]
async fn wrong_secret_is_invalid_client_with_basic_challenge() {
    let env = Env::new().await;
    let c = env.sim.credentials().clone();
    let r = token_request(
        &env,
        "/oauth/token",
        Some((&c.client_id, "nope")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"], "invalid_client");
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    // Token-endpoint errors are RFC 6749 JSON, not problem documents.
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.body["error_description"].is_string());

    let unknown = token_request(
        &env,
        "/oauth/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
            ("client_secret", "x"),
        ],
    )
    .await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.body["error"], "invalid_client");
    assert!(
        unknown.header("www-authenticate").is_none(),
        "no Basic challenge when Basic was not used"
    );
}

#[tokio::test]
async fn other_grant_types_are_unsupported() {
    let env = Env::new().await;
    let c = env.sim.credentials().clone();
    let r = token_request(
        &env,
        "/oauth/token",
        Some((&c.client_id, &c.client_secret)),
        &[("grant_type", "authorization_code")],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn a_scope_the_client_may_not_have_is_invalid_scope() {
    let env = Env::new().await;
    let c = env.sim.credentials().clone();
    let r = token_request(
        &env,
        "/oauth/token",
        Some((&c.readonly_client_id, &c.readonly_client_secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "contact:read contact:write"),
        ],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "invalid_scope");
}

#[tokio::test]
async fn no_scope_asked_grants_every_allowed_scope() {
    let env = Env::new().await;
    let c = env.sim.credentials().clone();
    let r = token_request(
        &env,
        "/oauth/token",
        Some((&c.readonly_client_id, &c.readonly_client_secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status, 200);
    let scope = r.body["scope"].as_str().unwrap();
    assert!(
        scope.contains("contact:read") && !scope.contains("contact:write"),
        "{scope}"
    );
    let asked = token_request(
        &env,
        "/oauth/token",
        Some((&c.client_id, &c.client_secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "contact:read"),
        ],
    )
    .await;
    assert_eq!(asked.body["scope"], "contact:read");
}

#[tokio::test]
async fn access_key_password_grant_issues_a_refresh_token_that_works_once() {
    let env = Env::new().await;
    let c = env.sim.credentials().clone();
    let r = token_request(
        &env,
        "/oauth/token",
        Some((&c.app_client_id, &c.app_client_secret)),
        &[
            ("grant_type", "password"),
            ("username", &c.access_key_id),
            ("password", &c.access_key_secret),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let refresh = r.body["refresh_token"].as_str().unwrap().to_string();
    let again = token_request(
        &env,
        "/oauth/token",
        Some((&c.app_client_id, &c.app_client_secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    let token = again.body["access_token"].as_str().unwrap();
    let secrets = env
        .http
        .get(env.url("/api/v2/integration/secret"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(secrets.status(), 200);
    let reused = token_request(
        &env,
        "/oauth/token",
        Some((&c.app_client_id, &c.app_client_secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(reused.status, 400, "a refresh token is single-use");
    assert_eq!(reused.body["error"], "invalid_grant");
}

#[tokio::test]
async fn a_wrong_access_key_is_invalid_grant() {
    let env = Env::new().await;
    let c = env.sim.credentials().clone();
    let r = token_request(
        &env,
        "/oauth/token",
        Some((&c.app_client_id, &c.app_client_secret)),
        &[
            ("grant_type", "password"),
            ("username", &c.access_key_id),
            ("password", "wrong"),
        ],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "invalid_grant");
}

#[tokio::test]
async fn missing_unknown_expired_and_revoked_tokens_are_401_invalid_token() {
    let env = Env::start(SimConfig {
        contacts: 10,
        token_ttl: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let none = read(
        env.http
            .get(env.url("/api/v1/contacts"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("content-type"),
        Some("application/problem+json")
    );
    let unknown = read(
        env.http
            .get(env.url("/api/v1/contacts"))
            .bearer_auth("made-up")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unknown.status, 401);
    assert!(
        unknown
            .header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    assert_eq!(env.get("/api/v1/contacts").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = env.get("/api/v1/contacts").await;
    assert_eq!(expired.status, 401);
    assert!(
        expired
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );

    let fresh = token_for(&env.http, &env.sim, None).await;
    env.sim.control().revoke_tokens();
    let revoked = read(
        env.http
            .get(env.url("/api/v1/contacts"))
            .bearer_auth(&fresh)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(revoked.status, 401);
}

#[tokio::test]
async fn a_token_lacking_the_scope_is_403_naming_it() {
    let env = Env::new().await;
    let read_only = token_for(&env.http, &env.sim, Some("contact:read")).await;
    let r = read(
        env.http
            .patch(env.url("/api/v1/contacts/c-0000001"))
            .bearer_auth(&read_only)
            .header("if-match", "*")
            .json(&json!({"firstName": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 403);
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"contact:write\""),
        "{challenge}"
    );
}

#[tokio::test]
async fn token_ttl_is_configurable() {
    let env = Env::start(SimConfig {
        contacts: 1,
        token_ttl: Duration::from_secs(5),
        ..Default::default()
    })
    .await;
    let c = env.sim.credentials().clone();
    let r = token_request(
        &env,
        "/oauth/token",
        Some((&c.client_id, &c.client_secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.body["expires_in"], 5);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_errors_are_problem_documents() {
    let env = Env::new().await;
    for (path, status) in [
        ("/api/v1/contacts", 200),
        ("/api/v1/contacts/c-9999999", 404),
        ("/api/v9/nothing", 404),
    ] {
        let r = env.get(path).await;
        assert_eq!(r.status, status, "{path}");
        assert!(
            r.header("x-request-id").is_some_and(|v| !v.is_empty()),
            "{path}"
        );
        if status >= 400 {
            assert_eq!(r.header("content-type"), Some("application/problem+json"));
            for key in ["type", "title", "status", "detail"] {
                assert!(
                    r.body.get(key).is_some(),
                    "{path}: {key} missing in {}",
                    r.body
                );
            }
            assert_eq!(r.body["status"], Value::from(status));
        }
    }
    let c = env.sim.credentials().clone();
    let t = token_request(
        &env,
        "/oauth/token",
        Some((&c.client_id, &c.client_secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert!(t.header("x-request-id").is_some());
}
