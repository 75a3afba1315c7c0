//! Audit appends/s and verify entries/s on SQLite and PostgreSQL, each beside a baseline
//! measured in the same run: plain INSERTs of rows of the same shape, one per transaction
//! (what an unchained, unsigned log would cost on the same store).
//!
//! Run: `cargo bench -p ledger --bench ledger` (`-- --quick` for a short run). PostgreSQL
//! is `CXGUARD_TEST_POSTGRES` (default postgres://postgres@127.0.0.1:5432/test); it is
//! skipped with a note when unreachable. `--json FILE` also writes the figures as JSON
//! (for `bench/compare`), with a second baseline: one plain SELECT of as many rows.
//! Verify and that SELECT run five times each, in turns, and each prints its median.

use std::sync::Arc;
use std::time::Instant;

use ledger::{AuditKey, Batch, Details, KeySource, Ledger, NewEntry, Outcome};
use sqlx::Connection;

fn entry(i: u64) -> NewEntry {
    NewEntry::new(
        "bench",
        "bench.op",
        &format!("c-{i:07}"),
        Outcome::Success,
        Details::new()
            .count("i", i)
            .labels("fields", &["email", "phone"]),
    )
    .unwrap()
}

async fn baseline(url: &str, n: u64) -> f64 {
    let t = Instant::now();
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query("CREATE TABLE IF NOT EXISTS plain_log (seq INTEGER PRIMARY KEY, at TEXT, actor TEXT, operation TEXT, target TEXT, outcome TEXT, details TEXT)")
            .execute(&mut c).await.unwrap();
        for i in 0..n {
            let mut tx = c.begin().await.unwrap();
            sqlx::query("INSERT INTO plain_log (at, actor, operation, target, outcome, details) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind("2026-01-01T00:00:00.000000Z").bind("bench").bind("bench.op").bind(format!("c-{i:07}")).bind("success").bind("{\"i\":1}")
                .execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query("CREATE TABLE IF NOT EXISTS plain_log (seq BIGSERIAL PRIMARY KEY, at TEXT, actor TEXT, operation TEXT, target TEXT, outcome TEXT, details TEXT)")
            .execute(&mut c).await.unwrap();
        for i in 0..n {
            let mut tx = c.begin().await.unwrap();
            sqlx::query("INSERT INTO plain_log (at, actor, operation, target, outcome, details) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind("2026-01-01T00:00:00.000000Z").bind("bench").bind("bench.op").bind(format!("c-{i:07}")).bind("success").bind("{\"i\":1}")
                .execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Fills `plain_log` with `$n` rows of the entries' shape, in one transaction.
macro_rules! plain_rows {
    ($c:expr, $n:expr) => {{
        let mut tx = $c.begin().await.unwrap();
        sqlx::query("DELETE FROM plain_log").execute(&mut *tx).await.unwrap();
        for i in 0..$n {
            sqlx::query("INSERT INTO plain_log (at, actor, operation, target, outcome, details) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind("2026-01-01T00:00:00.000000Z").bind("bench").bind("bench.op").bind(format!("c-{i:07}")).bind("success").bind("{\"i\":1,\"fields\":[\"email\",\"phone\"]}")
                .execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }};
}

/// Reads `plain_log` back in one SELECT; rows/s.
macro_rules! plain_select {
    ($c:expr, $n:expr) => {{
        use futures_util::TryStreamExt as _;
        let t = Instant::now();
        let mut rows = sqlx::query("SELECT seq, at, actor, operation, target, outcome, details FROM plain_log ORDER BY seq").fetch(&mut *$c);
        let mut got = 0u64;
        while let Some(_r) = rows.try_next().await.unwrap() {
            got += 1;
        }
        assert_eq!(got, $n);
        $n as f64 / t.elapsed().as_secs_f64()
    }};
}

/// A plain table of rows of the same shape, read back in one SELECT: what reading the
/// log costs on the same store with no hashing or signature check. (Two connection
/// types, one body each: hence the macros.)
enum Plain {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Plain {
    async fn fill(url: &str, n: u64) -> Plain {
        if url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            plain_rows!(c, n);
            Plain::Sqlite(c)
        } else {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            plain_rows!(c, n);
            Plain::Postgres(c)
        }
    }

    async fn select(&mut self, n: u64) -> f64 {
        match self {
            Plain::Sqlite(c) => plain_select!(c, n),
            Plain::Postgres(c) => plain_select!(c, n),
        }
    }
}

/// Reads of the whole log, taken in turns with the plain SELECT; each figure is the
/// median of its rounds, so one stall of a shared machine moves neither.
const READ_ROUNDS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn measure(name: &str, url: &str, appends: u64, verify_n: u64) -> serde_json::Value {
    let key = Arc::new(AuditKey::generate().unwrap());
    let l = Ledger::open(url, KeySource::Key(key.clone()))
        .await
        .unwrap();
    let base = baseline(url, appends).await;
    let t = Instant::now();
    for i in 0..appends {
        l.append(entry(i)).await.unwrap();
    }
    let single = appends as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut done = appends;
    while done < verify_n {
        let audit = (done..(done + 1000).min(verify_n))
            .map(entry)
            .collect::<Vec<_>>();
        done += audit.len() as u64;
        l.commit(Batch {
            audit,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let batched = (verify_n - appends) as f64 / t.elapsed().as_secs_f64();
    let mut plain = Plain::fill(url, verify_n).await;
    let (mut verifies, mut selects) = (Vec::new(), Vec::new());
    let mut entries = 0;
    for _ in 0..READ_ROUNDS {
        let t = Instant::now();
        let v = l.verify(&key.public()).await.unwrap();
        assert!(v.is_intact());
        entries = v.entries;
        verifies.push(v.entries as f64 / t.elapsed().as_secs_f64());
        selects.push(plain.select(verify_n).await);
    }
    let (verify, select) = (median(verifies), median(selects));
    println!(
        "{name:<9} {:>14.0} {:>14.0} {:>8.2}x {:>16.0} {:>16.0} {:>16.0}",
        base,
        single,
        single / base,
        batched,
        verify,
        select
    );
    serde_json::json!({
        "baselineInsertPerS": base,
        "appendsPerS": single,
        "batchedAppendsPerS": batched,
        "verifyPerS": verify,
        "baselineSelectPerS": select,
        "entries": entries,
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (appends, total) = if quick {
        (300, 20_000)
    } else {
        (2_000, 100_000)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("{appends} single appends (one transaction each), then batches of 1000 up to {total} entries, then verify all");
        println!("{:<9} {:>14} {:>14} {:>9} {:>16} {:>16} {:>16}", "backend", "baseline ins/s", "appends/s", "ratio", "batched appends/s", "verify entries/s", "plain SELECT/s");
        let dir = tempfile::tempdir().unwrap();
        let mut figures = serde_json::json!({});
        figures["sqlite"] = measure("sqlite", &format!("sqlite://{}", dir.path().join("bench.sqlite").display()), appends, total).await;
        let admin = std::env::var("CXGUARD_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        match sqlx::PgConnection::connect(&admin).await {
            Ok(mut c) => {
                let db = format!("cxg_bench_{}", std::process::id());
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{db}\""))).execute(&mut c).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\""))).execute(&mut c).await.unwrap();
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&format!("/{db}"));
                figures["postgres"] = measure("postgres", url.as_str(), appends, total).await;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))).execute(&mut c).await.ok();
            }
            Err(e) => println!("postgres  skipped: {e}"),
        }
        let args: Vec<String> = std::env::args().collect();
        if let Some(path) = args.iter().position(|a| a == "--json").and_then(|i| args.get(i + 1)) {
            std::fs::write(path, figures.to_string()).unwrap();
        }
    });
}
