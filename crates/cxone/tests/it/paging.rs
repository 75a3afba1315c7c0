//! Paging and the typed surfaces end to end.

use std::collections::HashSet;

use cxone::models::{AttributeOp, ReferenceUpdate, SecretFormat, VerificationMatrix};
use cxone::secrets::Rotation;
use cxone_sim::SimConfig;
use futures_util::TryStreamExt;
use serde_json::json;

use crate::{client, configure, sim, small};

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn ten_thousand_and_one_contacts_are_each_streamed_exactly_once() {
    let sim = sim(SimConfig {
        contacts: 10_001,
        ..Default::default()
    })
    .await;
    let client = client(&sim);
    let ids: Vec<String> = client
        .contacts()
        .list()
        .page_size(cxone::PageSize::new(100).unwrap())
        .stream()
        .map_ok(|c| c.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids.len(), 10_001);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 10_001);
    assert_eq!(ids.first().map(String::as_str), Some("c-0000001"));
    assert_eq!(ids.last().map(String::as_str), Some("c-0010001"));
    assert_eq!(sim.control().route_hits("GET /api/v1/contacts"), 101);
}

#[tokio::test]
async fn paging_survives_faults_and_resets() {
    let sim = sim(SimConfig {
        contacts: 2_000,
        ..Default::default()
    })
    .await;
    let client = client(&sim);
    configure(&sim, json!({"faultRate": 0.1, "resetRate": 0.1}));
    let n = client
        .contacts()
        .list()
        .page_size(cxone::PageSize::new(50).unwrap())
        .stream()
        .try_fold(0u32, |n, _| async move { Ok(n + 1) })
        .await
        .unwrap();
    assert_eq!(n, 2_000);
    assert!(client.stats().retries > 0);
}

#[tokio::test]
async fn listed_contacts_carry_etags_usable_for_patch() {
    let sim = sim(small()).await;
    let client = client(&sim);
    let first = client
        .contacts()
        .list()
        .page_size(cxone::PageSize::new(1).unwrap())
        .page(None)
        .await
        .unwrap()
        .contacts
        .remove(0);
    let patch = cxone::models::ContactPatch::new().set("phone", None);
    let out = client
        .contacts()
        .patch(&first.id, first.etag.as_deref().unwrap(), &patch)
        .await
        .unwrap();
    let cxone::contacts::Patched::Applied(out) = out else {
        panic!("no one else edited the contact")
    };
    assert_eq!(out.phone, None);
    assert_ne!(out.etag, first.etag);
}

#[tokio::test]
async fn a_rotation_that_landed_but_lost_its_answer_is_reported_done() {
    let sim = sim(small()).await;
    let client = client(&sim);
    let seed = sim.control().state()["seed"].as_u64().unwrap();
    let old = cxone_sim::seeded_secret_value(seed, "sec-crm-api-key").unwrap();
    let value: secrecy::SecretString = "key_rotated_in_test".to_string().into();
    let rotation = Rotation {
        value: &value,
        format: SecretFormat::Raw,
        description: None,
        reference_update: ReferenceUpdate::Immediate,
        matrix: VerificationMatrix {
            previous_sha256: sha256_hex(&old),
            proposed_sha256: sha256_hex("key_rotated_in_test"),
        },
    };
    configure(&sim, json!({"resetNext": 1}));
    let s = client
        .secrets()
        .rotate("sec-crm-api-key", &rotation)
        .await
        .unwrap();
    assert_eq!(s.version, 2);
    assert_eq!(sim.control().mutations("secret/").values().sum::<u64>(), 1);
    // A true concurrent rotation stays a 409.
    let err = client
        .secrets()
        .rotate(
            "sec-crm-api-key",
            &Rotation {
                matrix: VerificationMatrix {
                    previous_sha256: sha256_hex(&old),
                    proposed_sha256: sha256_hex("key_rotated_in_test"),
                },
                value: &"other".to_string().into(),
                ..rotation
            },
        )
        .await;
    assert!(err.is_err());
}

#[tokio::test]
async fn data_action_recompile_failure_is_an_answer_not_an_error() {
    let sim = sim(small()).await;
    let client = client(&sim);
    let seed = sim.control().state()["seed"].as_u64().unwrap();
    let old = cxone_sim::seeded_secret_value(seed, "sec-payments-jwt").unwrap();
    let new = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    sim.control()
        .reject_secret(Some("da-payment-status"), &sha256_hex(new));
    let value: secrecy::SecretString = new.to_string().into();
    client
        .secrets()
        .rotate(
            "sec-payments-jwt",
            &Rotation {
                value: &value,
                format: SecretFormat::Jwt,
                description: None,
                reference_update: ReferenceUpdate::Immediate,
                matrix: VerificationMatrix {
                    previous_sha256: sha256_hex(&old),
                    proposed_sha256: sha256_hex(new),
                },
            },
        )
        .await
        .unwrap();
    match client
        .data_actions()
        .recompile("da-payment-status")
        .await
        .unwrap()
    {
        cxone::models::Recompiled::Failed { action, detail } => {
            assert_eq!(action.unwrap().id, "da-payment-status");
            assert!(detail.contains("sec-payments-jwt"), "{detail}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(
        !client
            .data_actions()
            .test("da-payment-status")
            .await
            .unwrap()
            .ok
    );
}

#[tokio::test]
async fn guests_datastores_and_widgets_round_trip() {
    let sim = sim(small()).await;
    let client = client(&sim);
    let attrs = client
        .guests()
        .patch_attributes("g-000001", &[AttributeOp::upsert("hashed_user_id", "abc")])
        .await
        .unwrap();
    assert!(
        attrs
            .iter()
            .any(|a| a.id == "hashed_user_id" && a.value == "abc")
    );
    let table = client
        .datastores()
        .table("ds-customer", "tbl-customer-profiles")
        .await
        .unwrap();
    assert!(table.columns.iter().any(|c| c.encrypted));
    let req = json!({"tableId": "tbl-customer-profiles", "columnTargetMatrix": [{"name": "ssn", "type": "string",
        "encryptionConfiguration": {"enabled": true, "algorithm": "AES-256-GCM", "complianceMode": "GDPR",
        "keyRotationDirective": {"strategy": "MANUAL", "intervalDays": 30}, "indexMaskingTrigger": false,
        "decryptionPermissionVerification": true}}]});
    configure(&sim, json!({"resetNext": 1}));
    let out = client
        .datastores()
        .encrypt_columns("ds-customer", "tbl-customer-profiles", &req, "enc-1")
        .await
        .unwrap();
    assert_eq!(out.key_version, 2);
    assert_eq!(
        sim.control().mutations("table/").values().sum::<u64>(),
        1,
        "the retry was a replay"
    );
    let (w, etag) = client.webchat().get("wgt-support").await.unwrap();
    let mut w2 = w.clone();
    w2.name = "Support chat (reviewed)".into();
    let (saved, new_etag) = client.webchat().put(&w2, &etag).await.unwrap();
    assert_eq!(saved.name, "Support chat (reviewed)");
    assert_ne!(new_etag, etag);
    let stale = client.webchat().put(&w2, &etag).await.unwrap_err();
    assert_eq!(stale.status(), Some(412));
}
