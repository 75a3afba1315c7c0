//! anonymize end to end: faults and resets, reruns, concurrent edits, unknown ids,
//! dry runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cxone::models::Contact;
use cxone_sim::SimConfig;
use guard::anonymize::{self, Options, Policy, Progress, Selection, transform};
use ledger::Filter;
use serde_json::{Value, json};

use crate::{client, env, ledger, receiver, sim};

pub const POLICY: &str = r#"default_region = "US"
[keys]
k = { id = "test-key-1", env = "TEST_KEY" }
[fields]
firstName = { op = "erase" }
lastName = { op = "mask", keep_first = 1 }
email = { op = "pseudonymize", key = "k" }
phone = { op = "encrypt", key = "k" }
"customFields.notes" = { op = "replace", value = "[redacted]" }
"customFields.accountNumber" = { op = "mask", keep_last = 2, ignore = "-" }
"customFields.loyaltyTier" = { op = "keep" }
"#;

fn policy() -> Policy {
    Policy::parse(POLICY, Path::new("policy.toml"), &env).unwrap()
}

fn opts() -> Options {
    Options {
        concurrency: 16,
        page_size: cxone::PageSize::new(250).unwrap(),
        actor: "test".into(),
        ..Default::default()
    }
}

fn contact(v: &Value) -> Contact {
    serde_json::from_value(v.clone()).unwrap()
}

/// What the policy should turn `original` into.
fn expected(p: &Policy, original: &Contact) -> Contact {
    let plan = transform::plan(p, original, &BTreeMap::new()).unwrap();
    let mut c = original.clone();
    let patch = plan.patch.to_json();
    for (k, v) in patch.as_object().unwrap() {
        let s = v.as_str().map(str::to_string);
        match k.as_str() {
            "firstName" => c.first_name = s,
            "lastName" => c.last_name = s,
            "email" => c.email = s,
            "phone" => c.phone = s,
            "customFields" => {
                for (ck, cv) in v.as_object().unwrap() {
                    if cv.is_null() {
                        c.custom_fields.remove(ck);
                    } else {
                        c.custom_fields.insert(ck.clone(), cv.clone());
                    }
                }
            }
            _ => unreachable!(),
        }
    }
    c
}

fn same_fields(a: &Contact, b: &Contact) -> bool {
    a.first_name == b.first_name
        && a.last_name == b.last_name
        && a.email == b.email
        && a.phone == b.phone
        && a.custom_fields == b.custom_fields
}

#[tokio::test]
async fn five_thousand_contacts_with_faults_end_exactly_as_the_policy_says() {
    let sim = sim(SimConfig {
        contacts: 5000,
        ..Default::default()
    })
    .await;
    let originals: Vec<Contact> = (1..=5000)
        .map(|i| contact(&sim.control().contact(&format!("c-{i:07}")).unwrap()))
        .collect();
    sim.control()
        .configure(json!({"faultRate": 0.05, "resetRate": 0.02}))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let l = ledger(&dir).await;
    let p = policy();
    let c = client(&sim);
    let report = anonymize::run(
        &c,
        &l,
        &p,
        &Selection::All,
        &opts(),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    assert_eq!(report.failed + report.not_found, 0, "{:?}", report.failures);
    assert_eq!(report.processed, 5000);
    assert!(report.retries > 0, "faults were met and retried");

    sim.control()
        .configure(json!({"faultRate": 0.0, "resetRate": 0.0}))
        .unwrap();
    let mutations = sim.control().mutations("contact/");
    let mut changed = 0;
    for o in &originals {
        let now = contact(&sim.control().contact(&o.id).unwrap());
        let want = expected(&p, o);
        assert!(same_fields(&now, &want), "{} ends as the policy says", o.id);
        if !same_fields(o, &want) {
            changed += 1;
            assert_eq!(
                mutations.get(&format!("contact/{}", o.id)),
                Some(&1),
                "{}: applied exactly once",
                o.id
            );
        }
        if let (Some(before), Some(after)) = (&o.phone, &now.phone) {
            assert_eq!(
                &transform::decrypt_digits(
                    p.key("k"),
                    transform::FpeVersion::V2,
                    &o.id,
                    "phone",
                    after
                )
                .unwrap(),
                before,
                "reversible"
            );
        }
    }
    assert_eq!(report.changed, changed);

    let entries = l
        .entries(&Filter {
            operation: Some("contact.anonymize".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(entries.len(), 5000, "one audit entry per contact");
    for e in entries.iter().take(50) {
        let text = e.details.to_string();
        assert!(!text.contains('@'), "no email in the audit trail: {text}");
    }
    let (url, seen) = receiver().await;
    let mut cfg = ledger::deliver::DeliveryConfig::default();
    cfg.endpoints.insert(
        ledger::EventKind::Consent,
        ledger::deliver::Endpoint {
            url: url.parse().unwrap(),
            secrets: vec![
                ledger::webhooks::WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                    .unwrap(),
            ],
        },
    );
    let (done, left) = ledger::deliver::Deliverer::new(l.clone(), cfg)
        .unwrap()
        .until_empty(Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(
        done.delivered, changed,
        "one consent event per anonymized contact"
    );
    assert_eq!(seen.lock().unwrap().len() as u64, changed);
    assert!(
        l.verify(&l.public_key().unwrap())
            .await
            .unwrap()
            .is_intact()
    );
    let job = l.job(&report.job_id).await.unwrap();
    assert_eq!((job.status.as_str(), job.done), ("done", 5000));
}

#[tokio::test]
async fn a_rerun_changes_nothing() {
    let sim = sim(SimConfig {
        contacts: 300,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let l = ledger(&dir).await;
    let (p, c) = (policy(), client(&sim));
    let first = anonymize::run(
        &c,
        &l,
        &p,
        &Selection::All,
        &opts(),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    assert!(first.changed > 290);
    let patches = sim.control().route_hits("PATCH /api/v1/contacts/{id}");
    let second = anonymize::run(
        &c,
        &l,
        &p,
        &Selection::All,
        &opts(),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    assert_ne!(second.job_id, first.job_id, "a finished job is not resumed");
    assert_eq!(
        (second.changed, second.unchanged, second.patches),
        (0, 300, 0)
    );
    assert_eq!(
        sim.control().route_hits("PATCH /api/v1/contacts/{id}"),
        patches,
        "no PATCH at all"
    );
}

#[tokio::test]
async fn a_concurrent_edit_is_re_read_and_survives() {
    let sim = sim(SimConfig {
        contacts: 50,
        ..Default::default()
    })
    .await;
    sim.control().race_edit(
        "c-0000007",
        json!({"customFields": {"loyaltyTier": "platinum"}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let l = ledger(&dir).await;
    let report = anonymize::run(
        &client(&sim),
        &l,
        &policy(),
        &Selection::All,
        &opts(),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    assert_eq!(report.failed, 0);
    let now = sim.control().contact("c-0000007").unwrap();
    assert_eq!(
        now["customFields"]["loyaltyTier"], "platinum",
        "the other edit survives"
    );
    assert_eq!(
        now["firstName"],
        Value::Null,
        "and the contact is anonymized"
    );
    assert!(
        now["email"].is_null() || guard::pseudonym::is_pseudonym(now["email"].as_str().unwrap())
    );
    assert_eq!(sim.control().mutations("edit/").len(), 1);
    // The 412 cost one GET: the client's re-read is the one the job re-plans from.
    assert_eq!(sim.control().route_hits("GET /api/v1/contacts/{id}"), 1);
}

#[tokio::test]
async fn unknown_ids_are_reported_per_id_and_do_not_stop_the_job() {
    let sim = sim(SimConfig {
        contacts: 50,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let l = ledger(&dir).await;
    let sel = Selection::from_ids_text("c-0000001\nc-9999999\nc-0000002\n", "ids.txt").unwrap();
    let report = anonymize::run(
        &client(&sim),
        &l,
        &policy(),
        &sel,
        &opts(),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    assert_eq!((report.changed, report.not_found), (2, 1));
    assert_eq!(report.failures[0].id, "c-9999999");
    assert_eq!(l.job(&report.job_id).await.unwrap().status, "failed");
    assert_eq!(sim.control().mutations("contact/").len(), 2);
}

#[tokio::test]
async fn a_dry_run_writes_nothing_and_redacts_its_examples() {
    let sim = sim(SimConfig {
        contacts: 120,
        ..Default::default()
    })
    .await;
    let plan = anonymize::dry_run(&client(&sim), &policy(), &Selection::All, &opts(), 3)
        .await
        .unwrap();
    assert_eq!(plan.examined, 120);
    assert!(plan.would_change > 110);
    assert_eq!(plan.examples.len(), 3);
    let shown = serde_json::to_string(&plan).unwrap();
    let first = contact(&sim.control().contact(&plan.examples[0].id).unwrap());
    if let Some(email) = first.email {
        assert!(!shown.contains(&email), "examples never show a value");
    }
    assert!(sim.control().mutations("").is_empty());
}

#[tokio::test]
async fn an_interrupted_job_is_resumed_by_a_rerun() {
    let sim = sim(SimConfig {
        contacts: 400,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let l = ledger(&dir).await;
    let (p, c) = (policy(), client(&sim));
    // Interrupt the first run after it has done some work.
    let run = {
        let (l, c) = (l.clone(), c.clone());
        tokio::spawn(async move {
            let p = policy();
            anonymize::run(
                &c,
                &l,
                &p,
                &Selection::All,
                &Options {
                    concurrency: 2,
                    page_size: cxone::PageSize::new(50).unwrap(),
                    ..opts()
                },
                Arc::new(Progress::default()),
            )
            .await
        })
    };
    for _ in 0..200 {
        if sim.control().mutations("contact/").len() > 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run.abort();
    let _ = run.await;
    let partial = sim.control().mutations("contact/").len();
    assert!(partial < 400, "interrupted part-way ({partial})");
    let report = anonymize::run(
        &c,
        &l,
        &p,
        &Selection::All,
        &opts(),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    assert!(report.resumed);
    assert_eq!(l.jobs(10).await.unwrap().len(), 1, "the same job, finished");
    assert!(
        sim.control()
            .mutations("contact/")
            .values()
            .all(|n| *n == 1),
        "no contact patched twice"
    );
    let entries = l
        .entries(&Filter {
            operation: Some("contact.anonymize".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let targets: std::collections::HashSet<_> = entries.iter().map(|e| e.target.clone()).collect();
    assert_eq!(targets.len(), 400);
    assert_eq!(entries.len(), 400, "one entry per contact, none twice");
}

fn readonly_client(sim: &cxone_sim::SimHandle) -> cxone::Client {
    let c = sim.credentials();
    let grant = cxone::Grant::ClientCredentials {
        client_id: c.readonly_client_id.clone(),
        client_secret: c.readonly_client_secret.clone().into(),
    };
    cxone::Client::new(cxone::Settings::new(&sim.base_url(), grant).unwrap()).unwrap()
}

/// Regression: a client without contact:write used to send a PATCH for every contact,
/// fail each, and end the job "failed" item by item.
#[tokio::test]
async fn a_missing_scope_stops_the_job_once_and_a_rerun_finishes_it() {
    let sim = sim(SimConfig {
        contacts: 400,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir).await;
    let p = policy();
    let e = anonymize::run(
        &readonly_client(&sim),
        &ledger,
        &p,
        &Selection::All,
        &opts(),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, guard::Error::Api(api) if api.is_missing_scope()),
        "{e}"
    );
    let patches = sim.control().route_hits("PATCH /api/v1/contacts/{id}");
    assert!(
        patches <= opts().concurrency as u64,
        "{patches} PATCHes were sent after the first refusal"
    );
    let failed = ledger
        .entries(&Filter {
            operation: Some("contact.anonymize".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(failed.is_empty(), "no contact is settled as failed");
    // The scope is granted: the same command resumes the job and finishes it.
    let report = anonymize::run(
        &client(&sim),
        &ledger,
        &p,
        &Selection::All,
        &opts(),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    assert!(report.resumed);
    assert_eq!(report.failed, 0);
    assert_eq!(report.processed, 400);
}

#[tokio::test]
async fn reveal_uses_the_recorded_derivation_and_is_audited() {
    let sim = sim(SimConfig {
        contacts: 30,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir).await;
    let p = policy();
    let c = client(&sim);
    let o = (1..=30)
        .map(|i| contact(&sim.control().contact(&format!("c-{i:07}")).unwrap()))
        .find(|c| c.phone.is_some())
        .unwrap();
    let o = &o;
    anonymize::run(
        &c,
        &ledger,
        &p,
        &Selection::Ids(vec![o.id.clone()]),
        &opts(),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    let phone = guard::anonymize::policy::Field::Phone;
    assert_eq!(
        guard::anonymize::reveal::recorded_derivation(&ledger, &o.id, "phone")
            .await
            .unwrap(),
        Some(transform::FpeVersion::V2)
    );
    let r = guard::anonymize::reveal::reveal(&c, &ledger, &p, &o.id, &phone, "auditor", None)
        .await
        .unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(Some(r.value.expose_secret().to_string()), o.phone);
    let entries = ledger
        .entries(&Filter {
            operation: Some("contact.reveal".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].target, o.id);
    assert_eq!(entries[0].actor, "auditor");
    let text = entries[0].details.to_string();
    assert!(
        text.contains("test-key-1") && text.contains("phone"),
        "{text}"
    );
    let digits: String = o
        .phone
        .clone()
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    assert!(!text.contains(&digits), "the value is never audited");
}
