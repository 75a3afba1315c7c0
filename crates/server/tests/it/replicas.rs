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
    let mut urls = Vec::new();
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let creds = sim.credentials();
        let grant = cxone::Grant::ClientCredentials {
            client_id: creds.client_id.clone(),
            client_secret: creds.client_secret.clone().into(),
        };
        let client =
            cxone::Client::new(cxone::Settings::new(&sim.base_url(), grant).unwrap()).unwrap();
        let ledger = ledger::Ledger::open(&db, ledger::KeySource::File(key_file.clone()))
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
                    sha256: sha256.clone(),
                }],
                kms_tokens: Vec::new(),
                rate: server::RateLimit {
                    per_second: 10_000,
                    burst: 10_000,
                },
                upstream_deadline: Duration::from_secs(10),
                drain: Duration::from_secs(10),
                limits: server::Limits::default(),
                subjects: None,
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
