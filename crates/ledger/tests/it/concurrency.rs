//! Several processes appending to one store keep one valid chain.

use std::time::Duration;

use ledger::{KeySource, Ledger};

use crate::{TestStore, entry};

/// The child half: append `LEDGER_CHILD_APPENDS` entries one by one, then exit.
async fn child_appends() -> bool {
    let Ok(store) = std::env::var("LEDGER_CHILD_APPEND_STORE") else {
        return false;
    };
    let key_path = std::env::var("LEDGER_CHILD_KEY").unwrap();
    let n: u64 = std::env::var("LEDGER_CHILD_APPENDS")
        .unwrap()
        .parse()
        .unwrap();
    let l = Ledger::open(&store, KeySource::File(key_path.into()))
        .await
        .unwrap();
    for i in 0..n {
        l.append(entry(i)).await.unwrap();
    }
    true
}

async fn run_children(store: &TestStore, processes: usize, appends: u64) {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("audit.key");
    // Create the key and the schema first, as the first cxguard run would.
    let first = Ledger::open(&store.url, KeySource::File(key_path.clone()))
        .await
        .unwrap();
    let children: Vec<_> = (0..processes)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "concurrency::child_appender", "--nocapture"])
                .env("LEDGER_CHILD_APPEND_STORE", &store.url)
                .env("LEDGER_CHILD_KEY", &key_path)
                .env("LEDGER_CHILD_APPENDS", appends.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        let status = tokio::task::spawn_blocking(move || c.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "an appender failed");
    }
    let v = first.verify(&first.public_key().unwrap()).await.unwrap();
    assert!(v.is_intact(), "{}: {v:?}", store.name);
    assert_eq!(v.entries, processes as u64 * appends, "{}", store.name);
}

#[tokio::test]
async fn child_appender() {
    // Runs only as a child of the tests below.
    let _ = child_appends().await;
}

#[tokio::test]
async fn four_processes_appending_2500_each_to_postgres_make_one_chain() {
    let Some(store) = crate::postgres_store().await else {
        return;
    };
    tokio::time::timeout(Duration::from_secs(300), run_children(&store, 4, 2500))
        .await
        .expect("in time");
}

#[tokio::test]
async fn four_processes_appending_to_sqlite_make_one_chain() {
    let store = crate::sqlite_store().await;
    tokio::time::timeout(Duration::from_secs(120), run_children(&store, 4, 250))
        .await
        .expect("in time");
}

/// Many callers appending one entry each through the group-commit appender: every
/// caller learns its own sequence number, and the chain holds each entry once.
#[tokio::test]
async fn the_appender_commits_concurrent_callers_in_one_chain() {
    for store in crate::stores().await {
        let key = crate::key();
        let l = crate::open(&store, &key).await;
        let (appender, closed) = ledger::appender::Appender::spawn(l.clone(), 64);
        let tasks: Vec<_> = (0..500)
            .map(|i| {
                let a = appender.clone();
                tokio::spawn(async move { a.append(entry(i)).await.unwrap() })
            })
            .collect();
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap());
        }
        drop(appender);
        closed.wait().await;
        seqs.sort();
        seqs.dedup();
        assert_eq!(seqs.len(), 500, "{}: one seq per caller", store.name);
        let v = l.verify(&l.public_key().unwrap()).await.unwrap();
        assert!(v.is_intact(), "{}: {v:?}", store.name);
        assert_eq!(v.entries, 500, "{}", store.name);
    }
}

/// Callers that reach their append a scheduler turn or two after the first share its
/// commit: the writer gathers before it commits. (Committed one small batch at a time, a
/// busy service spent 40% more CPU per request.) Entries of one commit share their `at`.
#[tokio::test]
async fn the_appender_gathers_callers_arriving_within_a_few_turns_into_one_commit() {
    let store = crate::sqlite_store().await;
    let key = crate::key();
    let l = crate::open(&store, &key).await;
    let (appender, closed) = ledger::appender::Appender::spawn(l.clone(), 64);
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let a = appender.clone();
            tokio::spawn(async move {
                // A third append at once, a third after one turn, a third after two.
                for _ in 0..i % 3 {
                    tokio::task::yield_now().await;
                }
                a.append(entry(i)).await.unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    drop(appender);
    closed.wait().await;
    let entries = l.entries(&ledger::Filter::default()).await.unwrap();
    assert_eq!(entries.len(), 12);
    let commits: std::collections::BTreeSet<&str> = entries.iter().map(|e| e.at.as_str()).collect();
    assert_eq!(commits.len(), 1, "one commit for all twelve: {commits:?}");
}

/// Regression (trust review, item 3): `verify` read the signed head and the checkpoints
/// in queries of their own, before the entries; while another task appended, 2 runs in
/// 6 said "appended outside cxguard" on an untampered ledger. Now all three are read in
/// one snapshot: 50 runs during appends, no false alarm, and a real edit made while
/// the appends go on is still caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_while_another_task_appends_raises_no_false_alarm_and_still_catches_an_edit() {
    for store in crate::stores().await {
        let key = crate::key();
        // Small checkpoint interval: checkpoints are written as often as heads.
        let l = crate::open(&store, &key).await.with_checkpoint_every(5);
        for i in 0..20 {
            l.append(entry(i)).await.unwrap();
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (l, stop) = (l.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 20;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    l.append(entry(i)).await.unwrap();
                    i += 1;
                }
                i
            })
        };
        let public = key.public();
        let mut alarms = Vec::new();
        for _ in 0..50 {
            let v = l.verify(&public).await.unwrap();
            if let Some(b) = v.broken {
                alarms.push(b.reason);
            }
        }
        assert!(
            alarms.is_empty(),
            "{}: {} false alarm(s) in 50 runs: {alarms:?}",
            store.name,
            alarms.len()
        );
        // A real edit while the appends go on.
        crate::exec(
            &store,
            "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3",
        )
        .await;
        let v = l.verify(&public).await.unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let appended = writer.await.unwrap();
        assert!(
            appended > 20,
            "{}: the writer appended meanwhile",
            store.name
        );
        let b = v.broken.expect("the edit is caught");
        assert_eq!(b.seq, 3, "{}: {}", store.name, b.reason);
    }
}
