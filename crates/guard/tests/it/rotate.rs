//! rotate end to end: the happy path, a rejection rolled back, a concurrent rotation, and
//! twenty rotations under faults.

use std::time::Duration;

use cxone_sim::SimConfig;
use guard::rotate::{self, Ended, Request};
use secrecy::SecretString;
use serde_json::json;

use crate::{client, ledger, receiver, sim};

const SECRET: &str = "sec-crm-api-key";

fn sha(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn seeded(sim: &cxone_sim::SimHandle) -> String {
    cxone_sim::seeded_secret_value(sim.control().state()["seed"].as_u64().unwrap(), SECRET).unwrap()
}

fn request(value: &str, previous: Option<&str>) -> Request {
    Request {
        secret_id: SECRET.into(),
        value: SecretString::from(value.to_string()),
        format: None,
        previous: previous.map(|p| SecretString::from(p.to_string())),
        no_rollback: previous.is_none(),
        actor: "test".into(),
    }
}

fn dependents_pass(sim: &cxone_sim::SimHandle, version: u64) {
    for a in ["da-crm-lookup", "da-crm-case", "da-crm-loyalty"] {
        let d = sim.control().data_action(a).unwrap();
        assert_eq!(d["status"], "compiled", "{a}: {d}");
        assert_eq!(
            d["compiledSecretVersions"][SECRET], version,
            "{a} compiled against version {version}"
        );
    }
}

async fn deliver_vault(l: &ledger::Ledger) -> u64 {
    let (url, _) = receiver().await;
    let mut cfg = ledger::deliver::DeliveryConfig::default();
    cfg.endpoints.insert(
        ledger::EventKind::Vault,
        ledger::deliver::Endpoint {
            url: url.parse().unwrap(),
            secrets: vec![
                ledger::webhooks::WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                    .unwrap(),
            ],
        },
    );
    ledger::deliver::Deliverer::new(l.clone(), cfg)
        .unwrap()
        .until_empty(Duration::from_secs(10))
        .await
        .unwrap()
        .0
        .delivered
}

#[tokio::test]
async fn a_rotation_bumps_the_version_compiles_every_dependent_and_tells_the_vault() {
    let sim = sim(SimConfig {
        contacts: 1,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let l = ledger(&dir).await;
    let c = client(&sim);
    let old = seeded(&sim);
    let req = request("key_rotated_happy_path_value", Some(&old));
    let plan = rotate::plan(&c, &req).await.unwrap();
    assert_eq!(plan.dependents.len(), 3);
    let report = rotate::apply(&c, &l, &plan, &req).await.unwrap();
    assert_eq!(report.ended, Ended::Rotated { version: 2 });
    assert_eq!(
        sim.control().secret(SECRET).unwrap()["valueSha256"],
        sha("key_rotated_happy_path_value")
    );
    dependents_pass(&sim, 2);
    for a in ["da-crm-lookup", "da-crm-case", "da-crm-loyalty"] {
        assert!(c.data_actions().test(a).await.unwrap().ok);
    }
    assert_eq!(deliver_vault(&l).await, 1);
    assert!(
        l.verify(&l.public_key().unwrap())
            .await
            .unwrap()
            .is_intact()
    );
    let ops: Vec<String> = l
        .entries(&ledger::Filter {
            operation: Some("secret.rotate.*".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.operation)
        .collect();
    assert_eq!(
        ops,
        vec![
            "secret.rotate.create",
            "secret.rotate.set",
            "secret.rotate.test",
            "secret.rotate.finish"
        ]
    );
}

#[tokio::test]
async fn a_dependent_rejecting_the_value_rolls_back() {
    let sim = sim(SimConfig {
        contacts: 1,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let l = ledger(&dir).await;
    let c = client(&sim);
    let old = seeded(&sim);
    sim.control()
        .reject_secret(Some("da-crm-case"), &sha("key_the_crm_refuses"));
    let req = request("key_the_crm_refuses", Some(&old));
    let plan = rotate::plan(&c, &req).await.unwrap();
    let report = rotate::apply(&c, &l, &plan, &req).await.unwrap();
    match &report.ended {
        Ended::RolledBack { rejected, version } => {
            assert_eq!(rejected.keys().collect::<Vec<_>>(), vec!["da-crm-case"]);
            assert_eq!(*version, 3);
            dependents_pass(&sim, 3);
        }
        other => panic!("expected a rollback, got {other:?}"),
    }
    assert_eq!(
        sim.control().secret(SECRET).unwrap()["valueSha256"],
        sha(&old),
        "back at the old hash"
    );
    assert_eq!(l.job(&report.job_id).await.unwrap().status, "rolled_back");
    assert_eq!(
        deliver_vault(&l).await,
        1,
        "the vault hears of the rollback"
    );
}

#[tokio::test]
async fn a_concurrent_rotation_stops_with_no_changes() {
    let sim = sim(SimConfig {
        contacts: 1,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let l = ledger(&dir).await;
    let c = client(&sim);
    let old = seeded(&sim);
    let req = request("key_ours", Some(&old));
    let plan = rotate::plan(&c, &req).await.unwrap();
    // Someone else rotates between our read and our PUT.
    let theirs = request("key_theirs", Some(&old));
    let their_plan = rotate::plan(&c, &theirs).await.unwrap();
    let other_ledger_dir = tempfile::tempdir().unwrap();
    rotate::apply(&c, &ledger(&other_ledger_dir).await, &their_plan, &theirs)
        .await
        .unwrap();
    let before = sim.control().mutations("secret/");
    let err = rotate::apply(&c, &l, &plan, &req)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rotated by someone else") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(sim.control().mutations("secret/"), before, "no change");
    assert_eq!(
        sim.control().secret(SECRET).unwrap()["valueSha256"],
        sha("key_theirs")
    );
    let job = &l.jobs(1).await.unwrap()[0];
    assert_eq!(job.status, "failed");
}

#[tokio::test]
async fn twenty_rotations_under_faults_end_finished_or_rolled_back() {
    let sim = sim(SimConfig {
        contacts: 1,
        ..Default::default()
    })
    .await;
    sim.control()
        .configure(json!({"faultRate": 0.05, "resetRate": 0.05}))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let l = ledger(&dir).await;
    let c = client(&sim);
    let mut current = seeded(&sim);
    let (mut rotated, mut rolled_back) = (0, 0);
    for i in 0..20 {
        let value = format!("key_fault_round_{i}");
        if i % 4 == 3 {
            sim.control()
                .reject_secret(Some("da-crm-lookup"), &sha(&value));
        }
        let req = request(&value, Some(&current));
        let plan = rotate::plan(&c, &req).await.unwrap();
        let mut result = rotate::apply(&c, &l, &plan, &req).await;
        // A transient failure leaves the job resumable: resume until it ends.
        for _ in 0..5 {
            let Err(e) = &result else { break };
            let job = l.jobs(1).await.unwrap()[0].clone();
            assert_eq!(job.status, "running", "a failed run stays resumable: {e}");
            result = rotate::resume(&c, &l, &job.id, &req).await;
        }
        match result.unwrap().ended {
            Ended::Rotated { version } => {
                rotated += 1;
                current = value;
                dependents_pass(&sim, version);
            }
            Ended::RolledBack { version, .. } => {
                rolled_back += 1;
                dependents_pass(&sim, version);
            }
            Ended::Broken { .. } => panic!("a rollback path was given"),
        }
        assert_eq!(
            sim.control().secret(SECRET).unwrap()["valueSha256"],
            sha(&current),
            "round {i}: never half-done"
        );
    }
    assert_eq!((rotated, rolled_back), (15, 5));
    assert!(
        l.verify(&l.public_key().unwrap())
            .await
            .unwrap()
            .is_intact()
    );
}

#[tokio::test]
async fn bad_values_are_refused_before_any_change() {
    let sim = sim(SimConfig {
        contacts: 1,
        ..Default::default()
    })
    .await;
    let c = client(&sim);
    let old = seeded(&sim);
    let cases: Vec<(Request, &str)> = vec![
        (request("", Some(&old)), "empty"),
        (request(&"x".repeat(4097), Some(&old)), "4097 characters"),
        (request(&old, Some(&old)), "identical"),
        (
            request("key_new", Some("not the current value")),
            "previous value does not match",
        ),
        (
            Request {
                no_rollback: false,
                ..request("key_new", None)
            },
            "no rollback path",
        ),
        (
            Request {
                secret_id: "sec-nope".into(),
                ..request("key_new", Some(&old))
            },
            "unknown secret id",
        ),
        (
            Request {
                secret_id: "sec-payments-jwt".into(),
                ..request("a.b", None)
            },
            "three non-empty",
        ),
        (
            Request {
                secret_id: "sec-erp-basic".into(),
                ..request("abc", None)
            },
            "multiple of 4",
        ),
    ];
    for (req, want) in cases {
        let e = rotate::plan(&c, &req).await.unwrap_err().to_string();
        assert!(e.contains(want), "want {want:?}, got {e}");
    }
    assert!(sim.control().mutations("").is_empty());
}
