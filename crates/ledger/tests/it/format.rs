//! The stored format: what a ledger of the previous format becomes when this version
//! opens it, and what a job's entries cost.

use ledger::{Details, Filter, KeySource, Ledger, NewEntry, Outcome};

use crate::{TestStore, entry, exec, key, open, stores};

/// Rewrites `s` in the format before schema 5 (audit details inline, hex `prev_hash` and
/// `hash`; whole event bodies), as a ledger written by an earlier cxguard holds them.
async fn to_format_4(s: &TestStore) {
    let sqlite = s.url.starts_with("sqlite:");
    let h = |col: &str| {
        if sqlite {
            format!("lower(hex({col}))")
        } else {
            format!("encode({col}, 'hex')")
        }
    };
    let zeros = "'0000000000000000000000000000000000000000000000000000000000000000'";
    // The outbox as it was (these tests enqueue no events, so no body is lost).
    let outbox = if sqlite {
        "DROP TABLE outbox; CREATE TABLE outbox (id TEXT PRIMARY KEY, kind TEXT NOT NULL, \
         event_type TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL, \
         attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL, \
         lease_until_ms INTEGER, lease_token TEXT, last_error TEXT, created_at TEXT NOT NULL, \
         delivered_at TEXT); CREATE INDEX outbox_due ON outbox (status, next_attempt_ms)"
    } else {
        "DROP INDEX outbox_due; DROP INDEX outbox_id; ALTER TABLE outbox DROP COLUMN template_id; \
         ALTER TABLE outbox DROP COLUMN subject; ALTER TABLE outbox ALTER COLUMN id SET NOT NULL; \
         ALTER TABLE outbox ADD PRIMARY KEY (id); \
         CREATE INDEX outbox_due ON outbox (status, next_attempt_ms)"
    };
    exec(
        s,
        &format!(
            "CREATE TABLE old_entries (seq BIGINT PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, \
             operation TEXT NOT NULL, target TEXT NOT NULL, outcome TEXT NOT NULL, details TEXT NOT NULL, \
             prev_hash TEXT NOT NULL, hash TEXT NOT NULL); \
             INSERT INTO old_entries SELECT e.seq, e.at, e.actor, e.operation, e.target, e.outcome, d.details, \
             COALESCE((SELECT {} FROM audit_entries p WHERE p.seq = e.seq - 1), {zeros}), {} \
             FROM audit_entries e JOIN audit_details d ON d.id = e.details_id; \
             DROP TABLE audit_entries; DROP TABLE audit_details; \
             ALTER TABLE old_entries RENAME TO audit_entries; \
             CREATE INDEX audit_entries_operation ON audit_entries (operation); \
             {outbox}; DELETE FROM cxguard_meta WHERE key = 'outbox_tag'; \
             ALTER TABLE jobs DROP COLUMN lease_owner; ALTER TABLE jobs DROP COLUMN lease_until; \
             UPDATE cxguard_meta SET value = '4' WHERE key = 'schema_version'",
            h("p.hash"),
            h("e.hash")
        ),
    )
    .await;
}

#[tokio::test]
async fn a_ledger_of_the_previous_format_migrates_verifies_and_takes_appends() {
    for s in stores().await {
        let k = key();
        let l = open(&s, &k).await.with_checkpoint_every(10);
        for i in 1..=25 {
            l.append(entry(i)).await.unwrap();
        }
        let before = l.entries(&Filter::default()).await.unwrap();
        l.close().await;
        to_format_4(&s).await;
        exec(
            &s,
            "INSERT INTO outbox (id, kind, event_type, payload, status, attempts, next_attempt_ms, created_at) \
             VALUES ('msg_0123456789abcdef01234567', 'consent', 'contact.anonymized', '{\"type\":\"old\"}', \
             'pending', 0, 0, '2026-01-01T00:00:00.000000Z')",
        )
        .await;

        let l = open(&s, &k).await.with_checkpoint_every(10);
        let v = l.verify(&k.public()).await.unwrap();
        assert!(v.is_intact(), "{}: {v:?}", s.name);
        assert_eq!(v.entries, 25);
        // Read back exactly as written: hashes, the previous hashes, details.
        assert_eq!(
            l.entries(&Filter::default()).await.unwrap(),
            before,
            "{}",
            s.name
        );
        let e = l.append(entry(26)).await.unwrap();
        assert_eq!(e.prev_hash, before[24].hash);
        assert!(
            l.verify(&k.public()).await.unwrap().is_intact(),
            "{}",
            s.name
        );

        // An event enqueued before keeps its id and body; a new one is numbered.
        let old = "msg_0123456789abcdef01234567";
        assert_eq!(l.event_payload(old).await.unwrap(), "{\"type\":\"old\"}");
        let new = l
            .enqueue(ledger::NewEvent::new(
                ledger::EventKind::Vault,
                "secret_rotation",
                Details::new().count("n", 1),
            ))
            .await
            .unwrap();
        let tag = new.strip_prefix("msg_").and_then(|s| s.split_once('_'));
        assert!(
            tag.is_some_and(|(t, n)| t.len() == 8 && n.parse::<i64>().is_ok()),
            "{new}"
        );
        let leased = l.lease_due(10, 60_000).await.unwrap();
        let ids: Vec<&str> = leased.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, [old, new.as_str()], "{}", s.name);
        for ev in &leased {
            assert!(
                l.settle_event(&ev.id, &ev.token, ledger::Settlement::Delivered)
                    .await
                    .unwrap()
            );
        }
        assert_eq!(l.outbox_status().await.unwrap().delivered, 2);
        l.retry_event(old).await.unwrap_err();
        assert!(l.retry_event("msg_nope").await.is_err());
    }
}

#[tokio::test]
async fn a_migrated_hash_that_was_not_hex_is_named_by_verify() {
    for s in stores().await {
        let k = key();
        let l = open(&s, &k).await;
        for i in 1..=5 {
            l.append(entry(i)).await.unwrap();
        }
        l.close().await;
        to_format_4(&s).await;
        exec(
            &s,
            "UPDATE audit_entries SET hash = 'not a hash' WHERE seq = 3",
        )
        .await;
        let l = open(&s, &k).await;
        let v = l.verify(&k.public()).await.unwrap();
        assert_eq!(v.broken.map(|b| b.seq), Some(3), "{}", s.name);
    }
}

#[tokio::test]
async fn entries_with_the_same_details_share_one_stored_text() {
    for s in stores().await {
        let k = key();
        let l = open(&s, &k).await;
        let same = || {
            NewEntry::new(
                "test",
                "contact.anonymize",
                "c-1",
                Outcome::Success,
                Details::new().count("unnormalized", 0).flag("x", true),
            )
            .unwrap()
        };
        for _ in 0..3 {
            l.commit(ledger::Batch {
                audit: (0..100).map(|_| same()).collect(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        l.close().await;
        let url = s.url.clone();
        let n: i64 = if url.starts_with("sqlite:") {
            use sqlx::{Connection, Row};
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query("SELECT COUNT(*) AS n FROM audit_details")
                .fetch_one(&mut c)
                .await
                .unwrap()
                .get("n")
        } else {
            use sqlx::{Connection, Row};
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query("SELECT COUNT(*) AS n FROM audit_details")
                .fetch_one(&mut c)
                .await
                .unwrap()
                .get("n")
        };
        assert_eq!(n, 1, "{}: 300 entries with one details text", s.name);
        let l = open(&s, &k).await;
        let all = l.entries(&Filter::default()).await.unwrap();
        assert_eq!(all.len(), 300);
        assert!(
            all.iter()
                .all(|e| e.details == serde_json::json!({"unnormalized": 0, "x": true}))
        );
        assert!(l.verify(&k.public()).await.unwrap().is_intact());
    }
}

#[tokio::test]
async fn events_that_share_a_body_are_sent_byte_for_byte_as_built() {
    use ledger::{EventKind, NewEvent, Settlement};
    for s in stores().await {
        let k = key();
        let l = open(&s, &k).await;
        let event = |id: &str| {
            NewEvent::new(
                EventKind::Consent,
                "contact.anonymized",
                Details::new()
                    .id("contact_id", id)
                    .unwrap()
                    .label("status", "success")
                    .ids("fields", &["email".to_string(), "phone".to_string()])
                    .unwrap(),
            )
        };
        let ids = ["c-1", "c-2", "c-3"];
        l.commit(ledger::Batch {
            events: ids
                .iter()
                .map(|id| event(id).with_subject("contact_id"))
                .chain([event("c-4")])
                .collect(),
            ..Default::default()
        })
        .await
        .unwrap();
        let stored = l.outbox_events(None, 10).await.unwrap();
        let leased = l.lease_due(10, 60_000).await.unwrap();
        assert_eq!(leased.len(), 4, "{}", s.name);
        for (ev, (l, id)) in stored
            .iter()
            .zip(leased.iter().zip(["c-1", "c-2", "c-3", "c-4"]))
        {
            assert_eq!(l.payload, event(id).payload(&ev.created_at), "{}", s.name);
        }
        // Skipped: why is shown, for each event and each group.
        for ev in &leased {
            assert!(
                l.settle_event(&ev.id, &ev.token, Settlement::Skipped)
                    .await
                    .unwrap()
            );
        }
        let why = "no endpoint configured for consent events ([webhooks.consent] url)";
        let listed = l.outbox_events(Some("skipped"), 10).await.unwrap();
        assert_eq!(listed.len(), 4);
        assert!(listed.iter().all(|e| e.last_error.as_deref() == Some(why)));
        let groups = l.outbox_groups().await.unwrap();
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(groups[0].last_error.as_deref(), Some(why));
        // And the body of a skipped event is still there to send later.
        assert_eq!(
            l.event_payload(&listed[1].id).await.unwrap(),
            event("c-2").payload(&listed[1].created_at)
        );
    }
}

#[tokio::test]
async fn a_webhook_id_is_never_given_twice_even_after_a_purge() {
    use ledger::{EventKind, NewEvent, Settlement};
    for s in stores().await {
        let l = open(&s, &key()).await;
        let event = || {
            NewEvent::new(
                EventKind::Vault,
                "secret_rotation",
                Details::new().count("n", 1),
            )
        };
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..3 {
            let id = l.enqueue(event()).await.unwrap();
            assert!(seen.insert(id.clone()), "{}: {id} given twice", s.name);
            for ev in l.lease_due(10, 60_000).await.unwrap() {
                assert!(
                    l.settle_event(&ev.id, &ev.token, Settlement::Delivered)
                        .await
                        .unwrap()
                );
            }
            assert_eq!(l.purge_delivered().await.unwrap(), 1);
        }
    }
}

/// Between folds, recent entries live in `ledger.sqlite-wal` (up to 10,000 pages of
/// log); closing folds them in, so a backup that copies `ledger.sqlite` alone after
/// cxguard stopped misses nothing.
#[tokio::test]
async fn once_closed_the_database_file_alone_holds_every_entry() {
    let store = crate::sqlite_store().await;
    let key = key();
    let l = open(&store, &key).await;
    for i in 0..20 {
        l.append(entry(i)).await.unwrap();
    }
    let db = store.url.strip_prefix("sqlite://").unwrap().to_string();
    let wal = std::fs::metadata(format!("{db}-wal")).map_or(0, |m| m.len());
    assert!(wal > 0, "the entries are in the log before the close");
    l.close().await;
    let copies = tempfile::tempdir().unwrap();
    let copy = copies.path().join("alone.sqlite");
    std::fs::copy(&db, &copy).unwrap();
    let held: i64 = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row("SELECT count(*) FROM audit_entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(held, 20);
    let copied = Ledger::open_existing(&format!("sqlite://{}", copy.display()), KeySource::None)
        .await
        .unwrap();
    let v = copied.verify(&key.public()).await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.entries, 20);
}
