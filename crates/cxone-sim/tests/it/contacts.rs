//! §4 Contacts.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::Env;

async fn patch(env: &Env, id: &str, etag: Option<&str>, body: &Value) -> crate::Resp {
    let mut h = Vec::new();
    if let Some(e) = etag {
        h.push(("if-match", e));
    }
    env.send(
        Method::PATCH,
        &format!("/api/v1/contacts/{id}"),
        &h,
        Some(body),
    )
    .await
}

#[tokio::test]
async fn page_size_must_be_1_to_1000() {
    let env = Env::new().await;
    for bad in ["0", "1001", "x", "-1"] {
        env.get(&format!("/api/v1/contacts?pageSize={bad}"))
            .await
            .assert_problem_field(400, "pageSize");
    }
    let r = env.get("/api/v1/contacts?pageSize=1000").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["contacts"].as_array().unwrap().len(), 300);
    assert_eq!(r.body["pageToken"], Value::Null, "null after the last page");
}

#[tokio::test]
async fn a_bad_page_token_is_400() {
    let env = Env::new().await;
    env.get("/api/v1/contacts?pageToken=forged")
        .await
        .assert_problem_field(400, "pageToken");
}

#[tokio::test]
async fn each_listed_contact_carries_the_etag_a_get_returns() {
    let env = Env::new().await;
    let page = env.get("/api/v1/contacts?pageSize=5").await;
    for c in page.body["contacts"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let one = env.get(&format!("/api/v1/contacts/{id}")).await;
        assert_eq!(c["etag"].as_str(), one.header("etag"), "{id}");
        for key in [
            "firstName",
            "lastName",
            "email",
            "phone",
            "customFields",
            "createdAt",
            "updatedAt",
        ] {
            assert!(c.get(key).is_some(), "{key} in {c}");
        }
    }
}

#[tokio::test]
async fn paging_is_stable_while_contacts_are_patched() {
    let env = Env::new().await;
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/api/v1/contacts?pageSize=7&pageToken={t}"),
            None => "/api/v1/contacts?pageSize=7".to_string(),
        };
        let page = env.get(&path).await;
        for c in page.body["contacts"].as_array().unwrap() {
            let id = c["id"].as_str().unwrap().to_string();
            // Patch every listed contact and one further ahead while paging.
            patch(&env, &id, c["etag"].as_str(), &json!({"firstName": null})).await;
            seen.push(id);
        }
        match page.body["pageToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(seen.len(), 300, "no contact missed");
    assert_eq!(unique.len(), 300, "no contact repeated");
}

#[tokio::test]
async fn updated_before_filters_and_must_be_rfc3339() {
    let env = Env::new().await;
    env.get("/api/v1/contacts?updatedBefore=yesterday")
        .await
        .assert_problem_field(400, "updatedBefore");
    let all = env
        .get("/api/v1/contacts?pageSize=1000&updatedBefore=2100-01-01T00:00:00Z")
        .await;
    assert_eq!(all.body["contacts"].as_array().unwrap().len(), 300);
    let cut = "2024-06-01T00:00:00Z";
    let some = env
        .get(&format!(
            "/api/v1/contacts?pageSize=1000&updatedBefore={cut}"
        ))
        .await;
    let listed = some.body["contacts"].as_array().unwrap();
    assert!(!listed.is_empty() && listed.len() < 300, "{}", listed.len());
    for c in listed {
        assert!(c["updatedAt"].as_str().unwrap() < cut);
    }
}

#[tokio::test]
async fn get_returns_an_etag_and_404_for_unknown() {
    let env = Env::new().await;
    let r = env.get("/api/v1/contacts/c-0000010").await;
    assert_eq!(r.status, 200);
    assert!(r.header("etag").unwrap().starts_with('"'));
    assert_eq!(r.body["id"], "c-0000010");
    assert_eq!(env.get("/api/v1/contacts/c-0000301").await.status, 404);
    assert_eq!(env.get("/api/v1/contacts/anything").await.status, 404);
}

#[tokio::test]
async fn merge_patch_deletes_nulls_and_keeps_absent_fields() {
    let env = Env::new().await;
    let before = env.get("/api/v1/contacts/c-0000004").await;
    let etag = before.header("etag").unwrap().to_string();
    let r = patch(
        &env,
        "c-0000004",
        Some(&etag),
        &json!({"email": null, "customFields": {"loyaltyTier": null, "note2": "hi"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["email"], Value::Null);
    assert_eq!(
        r.body["lastName"], before.body["lastName"],
        "absent fields are unchanged"
    );
    assert!(r.body["customFields"].get("loyaltyTier").is_none());
    assert_eq!(r.body["customFields"]["note2"], "hi");
    assert_eq!(
        r.body["customFields"]["preferredLanguage"],
        before.body["customFields"]["preferredLanguage"]
    );
    let new_etag = r.header("etag").unwrap();
    assert_ne!(new_etag, etag, "a change gives a new ETag");
    assert_eq!(
        env.get("/api/v1/contacts/c-0000004").await.header("etag"),
        Some(new_etag)
    );
}

#[tokio::test]
async fn contact_id_member_must_equal_the_path_and_is_not_a_field() {
    let env = Env::new().await;
    let ok = patch(
        &env,
        "c-0000005",
        Some("*"),
        &json!({"contactId": "c-0000005", "firstName": "Ann"}),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.get("contactId").is_none());
    patch(
        &env,
        "c-0000005",
        Some("*"),
        &json!({"contactId": "c-0000006", "firstName": "Bo"}),
    )
    .await
    .assert_problem_field(400, "contactId");
}

#[tokio::test]
async fn unknown_members_are_400() {
    let env = Env::new().await;
    patch(
        &env,
        "c-0000005",
        Some("*"),
        &json!({"favouriteColour": "blue"}),
    )
    .await
    .assert_problem_field(400, "favouriteColour");
    patch(&env, "c-0000005", Some("*"), &json!({"id": "c-1"}))
        .await
        .assert_problem_field(400, "id");
}

#[tokio::test]
async fn if_match_is_required_checked_and_star_accepted() {
    let env = Env::new().await;
    assert_eq!(
        patch(&env, "c-0000007", None, &json!({"firstName": "X"}))
            .await
            .status,
        428
    );
    assert_eq!(
        patch(
            &env,
            "c-0000007",
            Some("\"nope\""),
            &json!({"firstName": "X"})
        )
        .await
        .status,
        412
    );
    assert_eq!(
        patch(&env, "c-0000007", Some("*"), &json!({"firstName": "X"}))
            .await
            .status,
        200
    );
    assert_eq!(
        env.sim
            .control()
            .mutations("contact/c-0000007")
            .values()
            .sum::<u64>(),
        1
    );
}

#[tokio::test]
async fn a_patch_that_changes_nothing_keeps_the_etag_and_is_not_a_mutation() {
    let env = Env::new().await;
    let before = env.get("/api/v1/contacts/c-0000008").await;
    let etag = before.header("etag").unwrap().to_string();
    let same = json!({"lastName": before.body["lastName"]});
    let r = patch(&env, "c-0000008", Some(&etag), &same).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert!(env.sim.control().mutations("contact/").is_empty());
}

#[tokio::test]
async fn field_limits_are_enforced_naming_the_field_and_changing_nothing() {
    let env = Env::new().await;
    let before = env.sim.control().contact("c-0000009").unwrap();
    for (field, limit) in [
        ("firstName", 255),
        ("lastName", 255),
        ("email", 255),
        ("phone", 50),
    ] {
        let at_limit = "x".repeat(limit);
        let over = "x".repeat(limit + 1);
        patch(
            &env,
            "c-0000009",
            Some("*"),
            &json!({field: over, "customFields": {"extra": "Changed"}}),
        )
        .await
        .assert_problem_field(400, field);
        assert_eq!(
            env.sim.control().contact("c-0000009").unwrap(),
            before,
            "nothing changed"
        );
        assert_eq!(
            patch(&env, "c-0000010", Some("*"), &json!({field: at_limit}))
                .await
                .status,
            200,
            "{field} at its limit"
        );
    }
    patch(
        &env,
        "c-0000009",
        Some("*"),
        &json!({"customFields": {"notes": "y".repeat(256)}}),
    )
    .await
    .assert_problem_field(400, "customFields.notes");
    // Many fields each within 255, together over 10240 serialised characters.
    let big: serde_json::Map<String, Value> = (0..50)
        .map(|i| (format!("f{i}"), json!("z".repeat(250))))
        .collect();
    patch(&env, "c-0000009", Some("*"), &json!({"customFields": big}))
        .await
        .assert_problem_field(400, "customFields");
    assert_eq!(env.sim.control().contact("c-0000009").unwrap(), before);
}

#[tokio::test]
async fn a_concurrent_edit_makes_the_old_etag_fail() {
    let env = Env::new().await;
    let listed = env.get("/api/v1/contacts?pageSize=1").await;
    let etag = listed.body["contacts"][0]["etag"]
        .as_str()
        .unwrap()
        .to_string();
    env.sim
        .control()
        .edit_contact(
            "c-0000001",
            json!({"customFields": {"loyaltyTier": "gold"}}),
        )
        .unwrap();
    assert_eq!(
        patch(&env, "c-0000001", Some(&etag), &json!({"email": null}))
            .await
            .status,
        412
    );
}

#[tokio::test]
async fn a_race_edit_lands_just_before_the_next_patch() {
    let env = Env::new().await;
    let etag = env
        .get("/api/v1/contacts/c-0000011")
        .await
        .header("etag")
        .unwrap()
        .to_string();
    let r = crate::read(
        env.http
            .post(env.url("/_control/contacts/c-0000011/race-edit"))
            .json(&json!({"customFields": {"loyaltyTier": "gold"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        patch(&env, "c-0000011", Some(&etag), &json!({"email": null}))
            .await
            .status,
        412
    );
    assert_eq!(
        env.sim.control().contact("c-0000011").unwrap()["customFields"]["loyaltyTier"],
        "gold"
    );
    let missing = crate::read(
        env.http
            .post(env.url("/_control/contacts/c-9999999/race-edit"))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(missing.status, 404);
}
