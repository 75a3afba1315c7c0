//! The ledger on both backends: every test runs on SQLite and on PostgreSQL
//! (`CXGUARD_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`). Without
//! a reachable PostgreSQL the PostgreSQL half is skipped with a note — except under CI
//! (`CI=true`), where it fails.

mod anchor;
mod audit;
mod bad_input;
mod concurrency;
mod format;
mod journal;
mod outbox;

use std::sync::Arc;

use ledger::{AuditKey, Details, KeySource, Ledger, NewEntry, Outcome};
use sqlx::Connection;

pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn pg_admin_url() -> String {
    std::env::var("CXGUARD_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_PG.to_string())
}

/// A fresh, empty store.
pub struct TestStore {
    pub url: String,
    pub name: &'static str,
    _dir: Option<tempfile::TempDir>,
}

static PG_CLEANED: tokio::sync::OnceCell<bool> = tokio::sync::OnceCell::const_new();

/// Whether PostgreSQL is reachable; under CI its absence is a failure.
async fn postgres_available() -> bool {
    *PG_CLEANED
        .get_or_init(|| async {
            match sqlx::PgConnection::connect(&pg_admin_url()).await {
                Ok(mut c) => {
                    // Drop databases that earlier (crashed) runs left behind: only those
                    // made over an hour ago, since nextest runs each test in its own
                    // process and another one may have just created its database.
                    let old: Vec<(String,)> = sqlx::query_as(
                        "SELECT datname FROM pg_database WHERE datname LIKE 'cxg_it_%' AND datname NOT IN (SELECT datname FROM pg_stat_activity WHERE datname IS NOT NULL)",
                    )
                    .fetch_all(&mut c)
                    .await
                    .unwrap_or_default();
                    let cutoff = unix_now().saturating_sub(3600);
                    for (db,) in old.into_iter().filter(|(db,)| made_at(db).is_none_or(|t| t < cutoff)) {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{db}\""))).execute(&mut c).await;
                    }
                    true
                }
                Err(e) => {
                    assert!(
                        std::env::var("CI").is_err(),
                        "CI must run the PostgreSQL tests, but {} is unreachable: {e}",
                        ledger::redact(&pg_admin_url())
                    );
                    eprintln!("note: PostgreSQL at {} unreachable ({e}); its half of the tests is skipped", ledger::redact(&pg_admin_url()));
                    false
                }
            }
        })
        .await
}

pub fn unique(prefix: &str) -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    format!(
        "{prefix}{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

pub async fn sqlite_store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ledger.sqlite").display());
    TestStore {
        url,
        name: "sqlite",
        _dir: Some(dir),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// When a test database named `cxg_it_<unix seconds>_<random>` was made.
fn made_at(db: &str) -> Option<u64> {
    db.strip_prefix("cxg_it_")?.split('_').next()?.parse().ok()
}

pub async fn postgres_store() -> Option<TestStore> {
    if !postgres_available().await {
        return None;
    }
    let admin = pg_admin_url();
    let db = unique(&format!("cxg_it_{}_", unix_now()));
    let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
        .execute(&mut c)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{db}"));
    Some(TestStore {
        url: url.to_string(),
        name: "postgres",
        _dir: None,
    })
}

/// One fresh store per backend.
pub async fn stores() -> Vec<TestStore> {
    let mut v = vec![sqlite_store().await];
    if let Some(pg) = postgres_store().await {
        v.push(pg);
    }
    v
}

pub fn key() -> Arc<AuditKey> {
    Arc::new(AuditKey::generate().unwrap())
}

pub async fn open(store: &TestStore, key: &Arc<AuditKey>) -> Ledger {
    Ledger::open(&store.url, KeySource::Key(key.clone()))
        .await
        .unwrap()
}

pub fn entry(i: u64) -> NewEntry {
    NewEntry::new(
        "test",
        "test.op",
        &format!("target-{}", i % 7),
        Outcome::Success,
        Details::new().count("i", i),
    )
    .unwrap()
}

/// Runs raw SQL against a store, as an attacker with database access would.
pub async fn exec(store: &TestStore, sql: &str) {
    if store.url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&store.url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(&store.url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
    }
}
