//! CXone's real surface (spec-real §2–§7): discovery, the access-key grant, each of the
//! five paging styles against the emulator, 429 without `Retry-After`, and tokens kept
//! to their own surface.

use std::time::Duration;

use cxone::{Client, CxoneEndpoints, Grant, RetryPolicy, Settings};
use cxone_sim::SimHandle;

use super::{configure, sim, small};

pub fn real_settings(sim: &SimHandle) -> Settings {
    let c = sim.credentials();
    let grant = Grant::AccessKey {
        access_key_id: c.cxone_access_key_id.clone(),
        access_key_secret: c.cxone_access_key_secret.clone().into(),
        client_id: c.cxone_client_id.clone(),
        client_secret: c.cxone_client_secret.clone().into(),
    };
    let mut s = Settings::cxone(&sim.cxone_issuer(), grant, CxoneEndpoints::default()).unwrap();
    s.retry = RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        deadline: Duration::from_secs(20),
    };
    s
}

fn real(sim: &SimHandle) -> Client {
    Client::new(real_settings(sim)).unwrap()
}

fn counts(sim: &SimHandle) -> serde_json::Value {
    sim.control().state()["real"].clone()
}

#[tokio::test]
async fn discovery_finds_the_tenant_from_the_token_and_the_configuration() {
    let sim = sim(small()).await;
    let c = real(&sim);
    let t = c.tenant().await.unwrap();
    assert_eq!(t.tenant_id, counts(&sim)["tenantId"].as_str().unwrap());
    assert_eq!(t.area.as_deref(), Some("na1"));
    assert_eq!(t.cluster.as_deref(), Some("B32"));
    assert_eq!(t.api.as_str(), format!("{}/cxone-api/", sim.base_url()));
    assert!(
        t.acd
            .as_str()
            .ends_with("/cxone-api/inContactAPI/services/v30.0/")
    );
    // One token, whatever the number of calls.
    c.tenant().await.unwrap();
    assert_eq!(counts(&sim)["tokenRequests"], 1);
}

#[tokio::test]
async fn a_wrong_access_key_is_refused_naming_invalid_grant() {
    let sim = sim(small()).await;
    let mut s = real_settings(&sim);
    if let Grant::AccessKey {
        access_key_secret, ..
    } = &mut s.grant
    {
        *access_key_secret = "not-the-secret=".to_string().into();
    }
    let e = Client::new(s).unwrap().tenant().await.unwrap_err();
    assert_eq!(e.stage(), cxone::Stage::Auth, "{e}");
    assert!(e.to_string().contains("invalid_grant"), "{e}");
}

#[tokio::test]
async fn every_paging_style_reaches_the_last_page() {
    let sim = sim(small()).await;
    let c = real(&sim);
    let n = counts(&sim)["counts"].clone();
    // UserHub: _links.next (pages of 5 over 8 keys).
    let keys = c.access_keys().list(None).await.unwrap();
    assert_eq!(keys.len() as u64, n["accessKeys"].as_u64().unwrap());
    assert!(keys.iter().all(|k| k.access_key_id.is_some()));
    // DFO customers: page/size with _links.next (60 over pages of 100 → one page).
    let customers = c.dfo().customers().await.unwrap();
    assert_eq!(customers.len() as u64, n["customers"].as_u64().unwrap());
    // DFO cases: scrollToken with the filters repeated (150 over pages of 25).
    let all = c.dfo().cases(&Default::default()).await.unwrap();
    assert_eq!(all.len() as u64, n["cases"].as_u64().unwrap());
    let open = c
        .dfo()
        .cases(&cxone::dfo::CaseFilter {
            statuses: vec![cxone::dfo::CaseStatus::Open],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        open.len() as u64,
        n["casesByStatus"]["open"].as_u64().unwrap()
    );
    // Policies: skip/top in the body; runs: lastEvaluatedKey (pages of 3 over 7).
    assert_eq!(
        c.policies().list().await.unwrap().len() as u64,
        n["policies"].as_u64().unwrap()
    );
    let runs = c.policies().instances().await.unwrap();
    assert_eq!(runs.len() as u64, n["policyRuns"].as_u64().unwrap());
    assert!(
        runs.iter()
            .any(|r| r.status == Some(cxone::policies::InstanceStatus::PendingApproval))
    );
    // ACD: skip/top and _links.next; a range with nothing is a 204, an empty result.
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let month = c
        .acd()
        .completed(&fmt(now - time::Duration::days(30)), &fmt(now))
        .await
        .unwrap();
    assert_eq!(
        month.len() as u64,
        n["completedContactsLast30Days"].as_u64().unwrap()
    );
    // An empty result of each cursor: no case of an unknown customer, no key of an
    // unknown user.
    let no_cases = c
        .dfo()
        .cases(&cxone::dfo::CaseFilter {
            customer_id: Some("cust-nobody".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(no_cases.is_empty());
    assert!(
        c.access_keys()
            .list(Some("no-such-user"))
            .await
            .unwrap()
            .is_empty()
    );
    let none = c
        .acd()
        .completed(
            &fmt(now - time::Duration::days(3000)),
            &fmt(now - time::Duration::days(2900)),
        )
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn throttled_dfo_reads_without_retry_after_are_retried_and_counted() {
    let sim = sim(small()).await;
    configure(&sim, serde_json::json!({"dfoThrottleShare": 0.33}));
    let c = real(&sim);
    let cases = c.dfo().cases(&Default::default()).await.unwrap();
    assert_eq!(cases.len(), 150);
    let refused = counts(&sim)["rateLimited"].as_u64().unwrap();
    assert_eq!(c.stats().rate_limited, refused);
}

#[tokio::test]
async fn the_published_budget_runs_out_with_a_429_and_no_retry_after() {
    let mut config = small();
    // 120,000/h scaled to 2 reads in the hour.
    config.dfo_budget_scale = 2.0 / 120_000.0;
    let sim = sim(config).await;
    let mut s = real_settings(&sim);
    s.retry.max_attempts = 2;
    let c = Client::new(s).unwrap();
    c.dfo().customer_fields().await.unwrap();
    c.dfo().customer_fields().await.unwrap();
    let e = c.dfo().customer_fields().await.unwrap_err();
    assert_eq!(e.status(), Some(429), "{e}");
    assert!(e.to_string().contains("no Retry-After"), "{e}");
}

#[tokio::test]
async fn a_token_of_one_surface_is_refused_on_the_other_and_counted() {
    let sim = sim(small()).await;
    let tutorial = super::client(&sim);
    let cx = real(&sim);
    // Each on its own surface: no crossing.
    tutorial.secrets().list().await.unwrap();
    cx.dfo().customer_fields().await.unwrap();
    assert_eq!(counts(&sim)["crossSurfaceTokens"], 0);
    // A real token on a tutorial route, and a tutorial token on a real one: 401 each.
    let http = reqwest::Client::new();
    let real_token = {
        let c = sim.credentials();
        let r: serde_json::Value = http
            .post(format!("{}/auth/token", sim.cxone_issuer()))
            .basic_auth(&c.cxone_client_id, Some(&c.cxone_client_secret))
            .form(&[
                ("grant_type", "password"),
                ("username", c.cxone_access_key_id.as_str()),
                ("password", c.cxone_access_key_secret.as_str()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["access_token"].as_str().unwrap().to_string()
    };
    let tutorial_token = {
        let c = sim.credentials();
        let r: serde_json::Value = http
            .post(sim.token_url())
            .basic_auth(&c.client_id, Some(&c.client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["access_token"].as_str().unwrap().to_string()
    };
    let on_tutorial = http
        .get(format!("{}/api/v2/integration/secret", sim.base_url()))
        .bearer_auth(&real_token)
        .send()
        .await
        .unwrap();
    assert_eq!(on_tutorial.status(), 401);
    let on_real = http
        .get(format!(
            "{}/cxone-api/dfo/3.0/customers/custom-field-definitions",
            sim.base_url()
        ))
        .bearer_auth(&tutorial_token)
        .send()
        .await
        .unwrap();
    assert_eq!(on_real.status(), 401);
    assert_eq!(counts(&sim)["crossSurfaceTokens"], 2);
}

#[test]
fn a_plain_http_issuer_off_loopback_is_refused() {
    let e = cxone::Settings::cxone(
        "http://cxone.example",
        Grant::AccessKey {
            access_key_id: "a".into(),
            access_key_secret: "b".to_string().into(),
            client_id: "c".into(),
            client_secret: "d".to_string().into(),
        },
        CxoneEndpoints::default(),
    )
    .and_then(|s| s.validate())
    .unwrap_err();
    assert_eq!(e.stage(), cxone::Stage::Build);
    assert!(e.to_string().contains("issuer"), "{e}");
}

#[tokio::test]
async fn a_case_has_its_messages_and_the_privacy_erasure_goes_to_api_endpoint() {
    let sim = sim(small()).await;
    let c = real(&sim);
    let cases = c.dfo().cases(&Default::default()).await.unwrap();
    let first = cases[0].id.clone().unwrap();
    let messages = c.dfo().messages(&first).await.unwrap();
    assert!(messages.len() >= 2);
    assert!(messages.iter().all(|m| m.content_removed.is_none()));

    // A DFO customer's address appears in completed contacts; after the platform
    // erasure (on the real surface's api_endpoint) it no longer does.
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let range = (fmt(now - time::Duration::days(100)), fmt(now));
    let before = c.acd().completed(&range.0, &range.1).await.unwrap();
    let email = "digital.person000@example.net";
    let hits = |rows: &[cxone::acd::CompletedContact]| {
        rows.iter()
            .filter(|r| r.from_address.as_deref() == Some(email))
            .count()
    };
    assert!(hits(&before) > 0);
    let id = c
        .privacy()
        .erasure(email, cxone::privacy::SubjectKind::Email)
        .await
        .unwrap();
    assert!(!id.is_empty());
    let mut after = before.clone();
    for _ in 0..50 {
        after = c.acd().completed(&range.0, &range.1).await.unwrap();
        if hits(&after) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hits(&after), 0);
    assert_eq!(after.len(), before.len());
}

/// A tenant of empty pages, whose access-key page names a next page on another host:
/// a hand-written server, since the emulator's tenant is never empty.
async fn empty_tenant() -> (String, tokio::task::JoinHandle<()>) {
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use base64::Engine as _;
    use serde_json::json;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let b = base.clone();
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"tenantId": "t-1"}).to_string());
    let token = format!("e30.{payload}.c2ln");
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get({
                let b = b.clone();
                move || async move { Json(json!({"issuer": b, "token_endpoint": format!("{b}/auth/token")})) }
            }),
        )
        .route(
            "/auth/token",
            post(move || async move {
                Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600}))
            }),
        )
        .route(
            "/.well-known/cxone-configuration",
            get({
                let b = b.clone();
                move || async move {
                    Json(json!({"api_endpoint": format!("{b}/api"), "auth_endpoint": format!("{b}/uh"), "tenantId": "t-1"}))
                }
            }),
        )
        .route(
            "/api/dfo/3.0/customers",
            get(|| async { Json(json!({"hits": 0, "data": []})) }),
        )
        .route(
            "/api/data-policies/v1/policies/search",
            post(|| async { Json(json!({"records": [], "totalCount": 0})) }),
        )
        .route(
            "/api/data-policies/v1/policies/policy-instances/search",
            post(|| async { Json(json!({"records": []})) }),
        )
        .route(
            "/uh/access-key-management/v1/access-keys",
            get(|| async {
                Json(json!({"accessKeys": [{"accessKeyId": "k1", "isActive": true}],
                            "_links": {"next": "http://collector.example/access-keys?page=2"}}))
            }),
        );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, task)
}

#[tokio::test]
async fn empty_results_of_the_other_styles_and_a_next_link_to_another_host() {
    let (base, task) = empty_tenant().await;
    let grant = Grant::AccessKey {
        access_key_id: "id".into(),
        access_key_secret: "secret".to_string().into(),
        client_id: "app".into(),
        client_secret: "s".to_string().into(),
    };
    let c = Client::new(Settings::cxone(&base, grant, CxoneEndpoints::default()).unwrap()).unwrap();
    assert!(c.dfo().customers().await.unwrap().is_empty());
    assert!(c.policies().list().await.unwrap().is_empty());
    assert!(c.policies().instances().await.unwrap().is_empty());
    let e = c.access_keys().list(None).await.unwrap_err().to_string();
    assert!(
        e.contains("collector.example") && e.contains("refusing to send the token elsewhere"),
        "{e}"
    );
    task.abort();
}

#[tokio::test]
async fn a_message_s_content_and_author_are_removed_once_and_a_customer_field_deleted() {
    let sim = sim(small()).await;
    let c = real(&sim);
    let case = c.dfo().cases(&Default::default()).await.unwrap()[0]
        .id
        .clone()
        .unwrap();
    let first = c.dfo().messages(&case).await.unwrap()[0]
        .id
        .clone()
        .unwrap();
    c.dfo()
        .remove_content(case_of(&first), &first, "GDPR")
        .await
        .unwrap();
    c.dfo()
        .remove_author_name(case_of(&first), &first, "GDPR")
        .await
        .unwrap();
    let after = c.dfo().messages(&case).await.unwrap();
    let m = after
        .iter()
        .find(|m| m.id.as_deref() == Some(first.as_str()))
        .unwrap();
    let removed_at = m.content_removed.as_ref().unwrap().removed_at.clone();
    assert_eq!(
        m.content_removed.as_ref().unwrap().reason.as_deref(),
        Some("GDPR")
    );
    assert!(m.author_name_removed.is_some());
    // A repeat is accepted and keeps the first time.
    c.dfo()
        .remove_content(case_of(&first), &first, "GDPR")
        .await
        .unwrap();
    let again = c.dfo().messages(&case).await.unwrap();
    let m = again
        .iter()
        .find(|m| m.id.as_deref() == Some(first.as_str()))
        .unwrap();
    assert_eq!(m.content_removed.as_ref().unwrap().removed_at, removed_at);
    // Other messages untouched; an unknown one is 404; a bad reason 400.
    assert!(
        again
            .iter()
            .filter(|m| m.id.as_deref() != Some(first.as_str()))
            .all(|m| m.content_removed.is_none())
    );
    assert_eq!(
        c.dfo()
            .remove_content(case_of("1-m9"), "1-m9", "GDPR")
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    assert_eq!(
        c.dfo()
            .remove_content(case_of(&first), &first, "because")
            .await
            .unwrap_err()
            .status(),
        Some(400)
    );
    // A customer's custom field deleted.
    let customers = c.dfo().customers().await.unwrap();
    let with = customers
        .iter()
        .find(|c| !c.custom_fields.is_empty())
        .unwrap();
    c.dfo()
        .delete_customer_field(&with.id, "loyalty_number")
        .await
        .unwrap();
    let now = c.dfo().customers().await.unwrap();
    assert!(
        now.iter()
            .find(|x| x.id == with.id)
            .unwrap()
            .custom_fields
            .is_empty()
    );
}

#[tokio::test]
async fn one_case_s_writes_run_out_of_its_burst_with_a_429_and_others_do_not() {
    let mut config = small();
    // One case's burst of 250 scaled to 2.
    config.dfo_budget_scale = 2.0 / 250.0;
    let sim = sim(config).await;
    let mut s = real_settings(&sim);
    s.retry.max_attempts = 2;
    let c = Client::new(s).unwrap();
    let cases = c.dfo().cases(&Default::default()).await.unwrap();
    let (a, b) = (cases[0].id.clone().unwrap(), cases[1].id.clone().unwrap());
    c.dfo()
        .remove_content(case_of(&format!("{a}-m0")), &format!("{a}-m0"), "GDPR")
        .await
        .unwrap();
    c.dfo()
        .remove_author_name(case_of(&format!("{a}-m0")), &format!("{a}-m0"), "GDPR")
        .await
        .unwrap();
    let e = c
        .dfo()
        .remove_content(case_of(&format!("{a}-m1")), &format!("{a}-m1"), "GDPR")
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(429), "{e}");
    // The tenant's bucket, scaled as well (2.2 writes a second, one second deep), has
    // refilled after a second: only the case's own budget is spent.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    c.dfo()
        .remove_content(case_of(&format!("{b}-m0")), &format!("{b}-m0"), "GDPR")
        .await
        .unwrap();
}

/// The case of a message id (`{case}-m{i}`, as the emulator numbers them).
fn case_of(message: &str) -> &str {
    message.rsplit_once("-m").map_or(message, |(c, _)| c)
}
