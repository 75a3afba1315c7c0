//! The anchor outside the database, the witness event, and the checks that only an
//! outside reference makes possible: rollback, truncation by restore, a second signer.

use ledger::anchor::AnchorFile;
use ledger::{EventKind, KeySource, Ledger};

use crate::{entry, exec, key, open, stores};

#[tokio::test]
async fn each_checkpoint_advances_the_anchor_and_a_rollback_is_caught() {
    for s in stores().await {
        let dir = tempfile::tempdir().unwrap();
        let k = key();
        let l = open(&s, &k)
            .await
            .with_checkpoint_every(5)
            .with_anchor(AnchorFile::new(dir.path().join("anchor.json")));
        for i in 0..12 {
            l.append(entry(i)).await.unwrap();
        }
        let a = l.anchor().unwrap().read().unwrap().expect("written");
        assert_eq!(a.seq, 10, "{}", s.name);
        assert!(a.verifies(&k.public()));
        assert_eq!(
            l.check_head(a.seq, &a.hash, "the anchor").await.unwrap(),
            None
        );
        // What restoring an older copy looks like: the entries after 7 are gone.
        exec(&s, "DELETE FROM audit_entries WHERE seq > 7").await;
        exec(&s, "DELETE FROM audit_checkpoints WHERE seq > 7").await;
        let b = l
            .check_head(a.seq, &a.hash, "the anchor")
            .await
            .unwrap()
            .expect("caught");
        assert!(
            b.reason.contains("ends at entry 7") && b.reason.contains("records entry 10"),
            "{}: {}",
            s.name,
            b.reason
        );
        let wrong = "0".repeat(64);
        let b = l
            .check_head(5, &wrong, "the saved head")
            .await
            .unwrap()
            .unwrap();
        assert!(b.reason.contains("another hash"), "{}", b.reason);
    }
}

#[tokio::test]
async fn a_witness_gets_every_signed_head_in_the_same_transaction() {
    for s in stores().await {
        let k = key();
        let l = open(&s, &k)
            .await
            .with_checkpoint_every(3)
            .with_witness(true);
        for i in 0..7 {
            l.append(entry(i)).await.unwrap();
        }
        let status = l.outbox_status().await.unwrap();
        assert_eq!(
            status.pending_by_kind.get(EventKind::Witness.as_str()),
            Some(&2),
            "{}: heads at 3 and 6",
            s.name
        );
        let events = l.outbox_events(None, 100).await.unwrap();
        let payload = l.event_payload(&events[0].id).await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(v["type"], "audit.head");
        assert!(v["data"]["seq"].as_i64().is_some());
        assert_eq!(v["data"]["hash"].as_str().unwrap().len(), 64);
    }
}

#[tokio::test]
async fn a_second_signer_is_refused_inside_the_append() {
    for s in stores().await {
        let first = open(&s, &key()).await;
        let second = open(&s, &key()).await;
        // Both opened an empty ledger, so neither was refused at open.
        first.append(entry(1)).await.unwrap();
        let e = second.append(entry(2)).await.unwrap_err();
        assert!(e.to_string().contains("different keys"), "{}: {e}", s.name);
        assert_eq!(
            first
                .entries(&ledger::Filter::default())
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

#[tokio::test]
async fn opening_an_existing_ledger_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.sqlite");
    let url = format!("sqlite://{}", path.display());
    let e = Ledger::open_existing(&url, KeySource::None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no ledger"), "{e}");
    assert!(!path.exists());
    for s in stores().await {
        if s.name == "postgres" {
            let e = Ledger::open_existing(&s.url, KeySource::None)
                .await
                .unwrap_err();
            assert!(e.to_string().contains("no cxguard ledger"), "{e}");
        }
    }
}
