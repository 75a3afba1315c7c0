//! Several `serve` replicas behind a load balancer share one PostgreSQL ledger: links
//! answered by either land in one audit chain that verifies.

use std::time::Duration;

use cxone_sim::{Sim, SimConfig};
use futures_util::StreamExt as _;
use sqlx::Connection as _;

use crate::{expected, identity};

fn pg_admin_url() -> String {
    std::env::var("CXGUARD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh database for this test, or None when PostgreSQL is unreachable (never under CI).
async fn fresh_database() -> Option<String> {
    let admin = pg_admin_url();
    let mut c = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the replicas test, but PostgreSQL is unreachable: {e}"
            );
            eprintln!("skipped: PostgreSQL unreachable ({e})");
            return None;
        }
    };
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    // Named `cxg_it_<unix seconds>_…` like the ledger's test databases, whose cleanup
    // drops only those over an hour old.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let db = format!(
        "cxg_it_{secs}_srv{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
        .execute(&mut c)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{db}"));
    Some(url.to_string())
}

type Running = (
    Vec<String>,
    Vec<tokio::sync::oneshot::Sender<()>>,
    Vec<tokio::task::JoinHandle<Result<(), server::Error>>>,
);

/// Two `serve` replicas on the ledger `db`, each with its own client and ledger handle
/// (as two processes would have), and `subjects(i)` for replica `i`.
async fn replicas(
    sim: &cxone_sim::SimHandle,
    db: &str,
    key_file: &std::path::Path,
    sha256: &str,
    subjects: impl Fn(usize) -> Option<server::SubjectsConfig>,
) -> Running {
    let (mut urls, mut stops, mut tasks) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..2 {
        let creds = sim.credentials();
        let grant = cxone::Grant::ClientCredentials {
            client_id: creds.client_id.clone(),
            client_secret: creds.client_secret.clone().into(),
        };
        let client =
            cxone::Client::new(cxone::Settings::new(&sim.base_url(), grant).unwrap()).unwrap();
        let ledger = ledger::Ledger::open(db, ledger::KeySource::File(key_file.to_path_buf()))
            .await
            .unwrap();
        let server = server::Server::bind(
            "127.0.0.1:0",
            server::Config {
                identity: identity(),
                client,
                ledger,
                api_keys: vec![server::ApiKey {
                    id: "web".into(),
                    sha256: sha256.to_string(),
                }],
                kms_tokens: Vec::new(),
                rate: server::RateLimit {
                    per_second: 10_000,
                    burst: 10_000,
                },
                upstream_deadline: Duration::from_secs(10),
                drain: Duration::from_secs(10),
                limits: server::Limits::default(),
                subjects: subjects(i),
            },
        )
        .await
        .unwrap();
        urls.push(format!("http://{}", server.local_addr()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(tx);
        tasks.push(tokio::spawn(server.run(async move {
            let _ = rx.await;
        })));
    }
    (urls, stops, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_postgres_audit_chain() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let sim = Sim::start(SimConfig {
        guests: 400,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("audit.key");
    let (api_key, sha256) = server::generate_api_key().unwrap();
    let (urls, stops, tasks) = replicas(&sim, &db, &key_file, &sha256, |_| None).await;
    let http = reqwest::Client::new();
    let statuses: Vec<u16> = futures_util::stream::iter(1..=400u32)
        .map(|g| {
            // Round robin, as a load balancer would.
            let url = urls[(g % 2) as usize].clone();
            let http = http.clone();
            let key = api_key.clone();
            async move {
                http.post(format!("{url}/v1/guests/g-{g:06}/identity"))
                    .bearer_auth(key)
                    .json(&serde_json::json!({ "identifier": format!("p{g}@example.com") }))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    for s in stops {
        let _ = s.send(());
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for g in [1u32, 2, 399, 400] {
        let attrs = sim
            .control()
            .guest_attributes(&format!("g-{g:06}"))
            .unwrap();
        assert!(
            attrs
                .to_string()
                .contains(&expected(&format!("p{g}@example.com"))),
            "g-{g:06}"
        );
    }
    let reader = ledger::Ledger::open(&db, ledger::KeySource::File(key_file))
        .await
        .unwrap();
    let v = reader.verify(&reader.public_key().unwrap()).await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.entries, 400, "one chain holds both replicas' links");
}

/// Regression (trust review, item 6): the same erasure POSTed to two replicas at once ran
/// one job twice (its GET then answered 503 for ever) or opened two jobs (two platform
/// erasures). Opening is one step in the ledger and a job runs under a lease: 20
/// identical POSTs spread over both replicas make one job, one platform erasure and one
/// receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_identical_erasures_over_two_replicas_make_one_job_and_one_platform_erasure() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let sim = Sim::start(SimConfig {
        contacts: 300,
        latency: Duration::from_millis(3),
        ..Default::default()
    })
    .await
    .unwrap();
    for id in ["c-0000004", "c-0000040", "c-0000200"] {
        sim.control()
            .edit_contact(id, serde_json::json!({"email": "twice@example.com"}))
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("audit.key");
    let (api_key, sha256) = server::generate_api_key().unwrap();
    let (urls, stops, tasks) = replicas(&sim, &db, &key_file, &sha256, |_| {
        Some(crate::subjects::subjects(32))
    })
    .await;
    let http = reqwest::Client::new();
    let answers: Vec<(u16, serde_json::Value)> = futures_util::stream::iter(0..20usize)
        .map(|i| {
            let url = urls[i % 2].clone();
            let (http, key) = (http.clone(), api_key.clone());
            async move {
                let r = http
                    .post(format!("{url}/v1/subjects/erasure"))
                    .bearer_auth(key)
                    .json(&serde_json::json!({"identifier": "twice@example.com", "ref": "DSR-2"}))
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.json().await.unwrap())
            }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    let jobs: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(s, a)| {
            assert_eq!(*s, 202, "{a}");
            a["jobId"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(jobs.len(), 1, "one job: {jobs:?}");
    let job = jobs.into_iter().next().unwrap();
    // Both replicas answer the same receipt once it is done.
    let mut receipts = Vec::new();
    for url in &urls {
        let started = std::time::Instant::now();
        loop {
            let r = http
                .get(format!("{url}/v1/subjects/erasure/{job}"))
                .bearer_auth(&api_key)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let v: serde_json::Value = r.json().await.unwrap();
            if status != 200 {
                let reader = ledger::Ledger::open(&db, ledger::KeySource::None)
                    .await
                    .unwrap();
                let e = guard::subject::erase::receipts(&reader, &job).await;
                let ops: Vec<String> = reader
                    .entries(&ledger::Filter::default())
                    .await
                    .unwrap()
                    .iter()
                    .map(|e| format!("{} {} {}", e.seq, e.operation, e.target))
                    .collect();
                panic!("{v} {e:?} {ops:#?}");
            }
            if v["status"] == "done" {
                receipts.push(v["receipt"].clone());
                break;
            }
            assert_ne!(v["status"], "failed", "{v}");
            assert!(started.elapsed() < Duration::from_secs(60), "{v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(receipts[0], receipts[1], "one receipt");
    assert_eq!(sim.control().erasures().len(), 1, "one platform erasure");
    for s in stops {
        let _ = s.send(());
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let reader = ledger::Ledger::open(&db, ledger::KeySource::File(key_file))
        .await
        .unwrap();
    let erase_jobs = reader
        .jobs_of(
            guard::subject::erase::JOB_KIND,
            ledger::JobStatus::Done,
            100,
        )
        .await
        .unwrap();
    assert_eq!(erase_jobs.len(), 1, "{erase_jobs:?}");
    let finds = reader
        .entries(&ledger::Filter {
            operation: Some("subject.erase.find".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(finds.len(), 1, "the job ran once");
    let v = reader.verify(&reader.public_key().unwrap()).await.unwrap();
    assert!(v.is_intact(), "{v:?}");
}
