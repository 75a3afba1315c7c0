//! Column encryption against the emulator: a connection dropped after the PATCH applied,
//! a process that gave up and a rerun, and a refused change.

use cxone_sim::SimConfig;
use guard::encrypt::{self, Classifier, Compliance, Request, Rotation, TableRef};

const DS: &str = "ds-customer";
const TABLE: &str = "tbl-customer-profiles";

fn request(columns: &[&str]) -> Request {
    Request {
        table: TableRef::parse(&format!("{DS}/{TABLE}")).unwrap(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        compliance: Compliance::Gdpr,
        rotation: Rotation::automatic(30).unwrap(),
        mask_indexes: false,
        kms: None,
    }
}

async fn plan_for(client: &cxone::Client, req: &Request) -> (cxone::models::Table, encrypt::Plan) {
    let table = client.datastores().table(DS, TABLE).await.unwrap();
    let indexes = client.datastores().indexes(DS, TABLE).await.unwrap();
    let plan = encrypt::plan(&table, &indexes, req, &Classifier::default()).unwrap();
    (table, plan)
}

async fn setup() -> (
    cxone_sim::SimHandle,
    cxone::Client,
    tempfile::TempDir,
    ledger::Ledger,
) {
    let sim = crate::sim(SimConfig::default()).await;
    let client = crate::client(&sim);
    let dir = tempfile::tempdir().unwrap();
    let ledger = crate::ledger(&dir).await;
    (sim, client, dir, ledger)
}

async fn run(
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    req: &Request,
    plan: &encrypt::Plan,
    table: &cxone::models::Table,
) -> guard::Result<encrypt::Report> {
    encrypt::apply(
        client,
        ledger,
        req,
        plan,
        table,
        &Classifier::default(),
        "it",
    )
    .await
}

async fn audit_count(ledger: &ledger::Ledger, outcome: &str) -> usize {
    ledger
        .entries(&ledger::Filter {
            operation: Some("datastore.encrypt".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .filter(|e| e.outcome == outcome)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_after_the_patch_applied_still_ends_done_once() {
    let (sim, client, _dir, ledger) = setup().await;
    let req = request(&["ssn", "iban"]);
    let (table, plan) = plan_for(&client, &req).await;
    assert_eq!(plan.columns, ["ssn", "iban"]);

    // The next request, the PATCH, is applied and then its connection is reset: the
    // client resends it with the same idempotency key and gets the first answer.
    sim.control()
        .configure(serde_json::json!({"resetNext": 1}))
        .unwrap();
    let report = run(&client, &ledger, &req, &plan, &table).await.unwrap();
    assert_eq!(report.key_version, 2);
    let state = sim.control().state();
    assert_eq!(state["keyVersion"], 2, "one key-version bump");
    assert_eq!(state["counters"]["resets"], 1);
    assert!(state["counters"]["idempotentReplays"].as_u64().unwrap() >= 1);
    assert_eq!(sim.control().mutations("table/").values().sum::<u64>(), 1);
    assert_eq!(audit_count(&ledger, "success").await, 1);

    // A rerun has nothing to do.
    let (_, again) = plan_for(&client, &req).await;
    assert!(again.is_noop());
    assert_eq!(again.skipped, ["ssn", "iban"]);
    assert!(
        encrypt::apply::unfinished(&ledger, &req)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_gave_up_after_the_patch_applied_is_finished_by_a_rerun() {
    let (sim, client, _dir, ledger) = setup().await;
    let req = request(&["passport_number"]);
    let (table, plan) = plan_for(&client, &req).await;

    // Every attempt is reset after it applied: the client gives up, the job stays open.
    sim.control()
        .configure(serde_json::json!({"resetNext": 100}))
        .unwrap();
    let err = run(&client, &ledger, &req, &plan, &table)
        .await
        .unwrap_err();
    assert!(matches!(err, guard::Error::Api(_)), "{err}");
    assert!(
        encrypt::apply::unfinished(&ledger, &req)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(audit_count(&ledger, "success").await, 0);
    sim.control()
        .configure(serde_json::json!({"resetNext": 0}))
        .unwrap();

    // The rerun plans nothing (the column is encrypted) but finds the open job, sends the
    // journaled key and body again, and closes it.
    let (table, again) = plan_for(&client, &req).await;
    assert!(again.is_noop());
    let report = run(&client, &ledger, &req, &again, &table).await.unwrap();
    assert!(report.resumed);
    assert_eq!(report.columns, ["passport_number"]);
    assert_eq!(sim.control().state()["keyVersion"], 2, "applied once");
    assert_eq!(sim.control().mutations("table/").values().sum::<u64>(), 1);
    assert_eq!(audit_count(&ledger, "success").await, 1);
    assert!(
        encrypt::apply::unfinished(&ledger, &req)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_change_lists_the_tenants_errors_and_records_nothing_done() {
    let (sim, client, _dir, ledger) = setup().await;
    // Plan against the table as it was, then let someone else encrypt a column first
    // with another configuration: the tenant refuses the stale plan.
    let req = request(&["email"]);
    let table = client.datastores().table(DS, TABLE).await.unwrap();
    let mut indexes = client.datastores().indexes(DS, TABLE).await.unwrap();
    indexes.retain(|i| i.name != "idx_email");
    let plan = encrypt::plan(&table, &indexes, &req, &Classifier::default()).unwrap();
    let err = run(&client, &ledger, &req, &plan, &table)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, guard::Error::Conflict(_)), "{msg}");
    assert!(msg.contains("idx_email"), "{msg}");
    assert_eq!(sim.control().state()["keyVersion"], 1);
    assert_eq!(audit_count(&ledger, "success").await, 0);
    assert_eq!(audit_count(&ledger, "failure").await, 1);
    assert!(
        encrypt::apply::unfinished(&ledger, &req)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_kms_callback_rolls_back_and_names_the_callback() {
    let (sim, client, _dir, ledger) = setup().await;
    // Nothing listens there: every callback attempt fails, so the tenant rolls back (502).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut req = request(&["ssn"]);
    req.kms = Some(encrypt::KmsCallback {
        url: url::Url::parse(&format!(
            "http://127.0.0.1:{port}/v1/kms/callback/secret-token"
        ))
        .unwrap(),
        sync: encrypt::SyncMode::Sync,
    });
    let (table, plan) = plan_for(&client, &req).await;
    let err = run(&client, &ledger, &req, &plan, &table)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, guard::Error::Failed(_)), "{msg}");
    assert!(
        msg.contains("KMS callback at 127.0.0.1") && msg.contains("rolled the change back"),
        "{msg}"
    );
    assert!(
        !msg.contains("secret-token"),
        "the capability token is never shown: {msg}"
    );
    assert_eq!(sim.control().state()["keyVersion"], 1, "nothing encrypted");
    let t = client.datastores().table(DS, TABLE).await.unwrap();
    assert!(
        !t.columns
            .iter()
            .find(|c| c.name == "ssn")
            .unwrap()
            .encrypted
    );
    assert_eq!(audit_count(&ledger, "failure").await, 1);
    let journal = format!("{:?}", ledger.jobs(10).await.unwrap());
    assert!(
        !journal.contains("secret-token"),
        "the callback URL is not journaled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_kms_callback_that_answers_ends_verified() {
    let (sim, client, _dir, ledger) = setup().await;
    let (hook, _seen) = crate::receiver().await;
    let mut req = request(&["ssn"]);
    req.kms = Some(encrypt::KmsCallback {
        url: url::Url::parse(&hook).unwrap(),
        sync: encrypt::SyncMode::Sync,
    });
    let (table, plan) = plan_for(&client, &req).await;
    let report = run(&client, &ledger, &req, &plan, &table).await.unwrap();
    assert_eq!(report.columns, ["ssn"]);
    let calls = sim.control().kms_callbacks();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0]["payload"]["complianceCheck"]["algorithm"],
        "AES-256-GCM"
    );
    let status = ledger.outbox_status().await.unwrap();
    assert_eq!(
        status.pending, 1,
        "one column_encryption.verified event waits for [webhooks.kms]"
    );
}

/// Regression (trust review, item 13): a job whose PATCH was lost stayed `running`, and
/// the KMS receiver verified any newer key version for its columns for ever. A SYNC
/// callback now matches a running job only while its PATCH is in flight (until the
/// deadline journaled before it was sent: the retry deadline plus one attempt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_whose_patch_was_lost_accepts_no_callback_after_its_deadline() {
    let sim = crate::sim(SimConfig::default()).await;
    let mut s = crate::settings(&sim);
    s.retry.deadline = std::time::Duration::from_millis(400);
    s.request_timeout = std::time::Duration::from_millis(600);
    let client = cxone::Client::new(s).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ledger = crate::ledger(&dir).await;
    let req = request(&["passport_number"]);
    let (table, plan) = plan_for(&client, &req).await;
    // Every attempt is reset: the client gives up, the job stays running.
    sim.control()
        .configure(serde_json::json!({"resetNext": 1000}))
        .unwrap();
    let gave_up = std::time::Instant::now();
    run(&client, &ledger, &req, &plan, &table)
        .await
        .unwrap_err();
    assert!(
        encrypt::apply::unfinished(&ledger, &req)
            .await
            .unwrap()
            .is_some()
    );
    let callback = |version: u64| {
        encrypt::callback::Callback::parse(
            serde_json::json!({"tableId": TABLE, "columns": ["passport_number"],
                "keyVersion": version, "complianceCheck": {"algorithm": "AES-256-GCM"}})
            .as_object()
            .unwrap(),
        )
        .unwrap()
    };
    // Within the window (a SYNC callback of the PATCH in flight) it matches.
    if gave_up.elapsed() < std::time::Duration::from_millis(900) {
        let m = encrypt::callback::find_job(&ledger, &callback(7))
            .await
            .unwrap();
        assert!(m.is_ok(), "{m:?}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    for version in [8, 50, 1_000_000] {
        let m = encrypt::callback::find_job(&ledger, &callback(version))
            .await
            .unwrap();
        assert!(
            matches!(m, Err(encrypt::callback::Unmatched::NotInFlight { .. })),
            "key version {version}: {m:?}"
        );
    }
}
