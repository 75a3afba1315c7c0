//! The audit chain: appends, filters, verification, and each kind of tampering.

use ledger::{AuditKey, Batch, Filter, KeySource, Ledger};

use crate::{TestStore, entry, exec, key, open, stores};

async fn filled(store: &TestStore, n: u64, every: i64) -> (Ledger, std::sync::Arc<AuditKey>) {
    let k = key();
    let l = open(store, &k).await.with_checkpoint_every(every);
    for i in 1..=n {
        l.append(entry(i)).await.unwrap();
    }
    (l, k)
}

async fn broken_at(l: &Ledger, k: &AuditKey) -> (i64, String) {
    let v = l.verify(&k.public()).await.unwrap();
    let b = v
        .broken
        .clone()
        .unwrap_or_else(|| panic!("tampering went undetected: {v:?}"));
    (b.seq, b.reason)
}

#[tokio::test]
async fn an_untouched_chain_verifies_with_checkpoints_every_n() {
    for s in stores().await {
        let (l, k) = filled(&s, 25, 10).await;
        let v = l.verify(&k.public()).await.unwrap();
        assert!(v.is_intact(), "{}: {v:?}", s.name);
        assert_eq!(v.entries, 25);
        let cps: Vec<i64> = l
            .checkpoints()
            .await
            .unwrap()
            .iter()
            .map(|c| c.seq)
            .collect();
        assert_eq!(cps, vec![10, 20], "{}", s.name);
        l.checkpoint().await.unwrap();
        assert_eq!(l.checkpoints().await.unwrap().len(), 3);
        assert!(l.verify(&k.public()).await.unwrap().is_intact());
    }
}

#[tokio::test]
async fn entries_link_by_hash_and_filters_select() {
    for s in stores().await {
        let (l, _) = filled(&s, 14, 1000).await;
        let all = l.entries(&Filter::default()).await.unwrap();
        assert_eq!(all.len(), 14);
        assert_eq!(all[0].prev_hash, ledger::audit::GENESIS);
        for w in all.windows(2) {
            assert_eq!(w[1].prev_hash, w[0].hash);
        }
        let t3 = l
            .entries(&Filter {
                target: Some("target-3".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            t3.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 10],
            "{}",
            s.name
        );
        let prefix = l
            .entries(&Filter {
                operation: Some("test.*".into()),
                limit: Some(5),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(prefix.len(), 5);
        let none = l
            .entries(&Filter {
                operation: Some("other.op".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(none.is_empty());
        let since = Filter {
            since: Some(all[5].at.clone()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert!(
            l.entries(&since)
                .await
                .unwrap()
                .iter()
                .all(|e| e.at >= all[5].at)
        );
        let future = Filter {
            since: Some("2999-01-01T00:00:00Z".into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert!(l.entries(&future).await.unwrap().is_empty());
        assert!(
            Filter {
                since: Some("yesterday".into()),
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }
}

#[tokio::test]
async fn editing_a_field_is_detected_at_that_entry() {
    for s in stores().await {
        let (l, k) = filled(&s, 25, 10).await;
        exec(
            &s,
            "UPDATE audit_entries SET outcome = 'failure' WHERE seq = 7",
        )
        .await;
        let (seq, why) = broken_at(&l, &k).await;
        assert_eq!(seq, 7, "{}: {why}", s.name);
        assert!(why.contains("edited"), "{why}");
        // Even a change of whitespace in the stored details counts.
        exec(
            &s,
            "UPDATE audit_entries SET outcome = 'success' WHERE seq = 7",
        )
        .await;
        assert!(l.verify(&k.public()).await.unwrap().is_intact());
        exec(
            &s,
            "UPDATE audit_details SET details = '{\"i\": 12}' WHERE id = (SELECT details_id FROM audit_entries WHERE seq = 12)",
        )
        .await;
        assert_eq!(broken_at(&l, &k).await.0, 12, "{}", s.name);
    }
}

#[tokio::test]
async fn deleting_an_entrys_details_is_detected_at_that_entry() {
    for s in stores().await {
        let (l, k) = filled(&s, 25, 10).await;
        exec(
            &s,
            "DELETE FROM audit_details WHERE id = (SELECT details_id FROM audit_entries WHERE seq = 12)",
        )
        .await;
        let (seq, why) = broken_at(&l, &k).await;
        assert_eq!(seq, 12, "{}: {why}", s.name);
        assert!(why.contains("edited"), "{why}");
    }
}

/// Verify joins entries to their details itself on PostgreSQL while the details fit in
/// its bound (64 MiB); past it the server joins them. Both ways find the same break.
#[tokio::test]
async fn details_too_large_to_hold_are_joined_by_the_server() {
    let Some(s) = crate::postgres_store().await else {
        return;
    };
    let (l, k) = filled(&s, 25, 10).await;
    // A details row of 70 MB that no entry refers to (an outbox template, say): every
    // row of audit_details counts toward the bound.
    exec(
        &s,
        "INSERT INTO audit_details (details) VALUES (repeat('x', 70000000))",
    )
    .await;
    let v = l.verify(&k.public()).await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.entries, 25);
    exec(
        &s,
        "UPDATE audit_details SET details = '{\"i\": 12}' WHERE id = (SELECT details_id FROM audit_entries WHERE seq = 12)",
    )
    .await;
    assert_eq!(broken_at(&l, &k).await.0, 12);
}

#[tokio::test]
async fn deleting_an_entry_is_detected() {
    for s in stores().await {
        let (l, k) = filled(&s, 25, 10).await;
        exec(&s, "DELETE FROM audit_entries WHERE seq = 5").await;
        let (seq, why) = broken_at(&l, &k).await;
        assert_eq!(seq, 5, "{}: {why}", s.name);
        assert!(why.contains("missing"), "{why}");
    }
}

#[tokio::test]
async fn inserting_an_entry_is_detected() {
    for s in stores().await {
        // In the middle: renumber 10.. up by one and put a well-formed forgery at 10.
        let (l, k) = filled(&s, 25, 10).await;
        let e9 = l
            .entries(&Filter {
                after_seq: Some(8),
                limit: Some(1),
                ..Default::default()
            })
            .await
            .unwrap()
            .remove(0);
        let mut forged = e9.clone();
        forged.seq = 10;
        forged.prev_hash = e9.hash.clone();
        forged.outcome = "success".into();
        let details = "{\"i\":999}";
        forged.hash = ledger::audit::recompute_hash(&forged, details);
        for seq in (10..=25).rev() {
            exec(
                &s,
                &format!(
                    "UPDATE audit_entries SET seq = {} WHERE seq = {seq}",
                    seq + 1
                ),
            )
            .await;
        }
        exec(
            &s,
            &format!(
                "INSERT INTO audit_details (id, details) VALUES (100010, '{details}'); \
                 INSERT INTO audit_entries (seq, at, actor, operation, target, outcome, details_id, hash) VALUES (10, '{}', 'test', 'test.op', 'target-9', 'success', 100010, {})",
                forged.at,
                blob(&s, &forged.hash)
            ),
        )
        .await;
        let (seq, why) = broken_at(&l, &k).await;
        assert_eq!(seq, 10, "{}: {why}", s.name);

        // At the end: a well-formed entry after the last one is not vouched for by the head.
        let s2 = crate::sqlite_store().await;
        let (l2, k2) = filled(&s2, 5, 10).await;
        let last = l2.entries(&Filter::default()).await.unwrap().pop().unwrap();
        let mut extra = last.clone();
        extra.seq = 6;
        extra.prev_hash = last.hash.clone();
        extra.hash = ledger::audit::recompute_hash(&extra, "{\"i\":6}");
        exec(
            &s2,
            &format!(
                "INSERT INTO audit_details (id, details) VALUES (100006, '{{\"i\":6}}'); \
                 INSERT INTO audit_entries (seq, at, actor, operation, target, outcome, details_id, hash) VALUES (6, '{}', 'test', 'test.op', '{}', 'success', 100006, {})",
                extra.at,
                extra.target,
                blob(&s2, &extra.hash)
            ),
        )
        .await;
        let (seq, why) = broken_at(&l2, &k2).await;
        assert_eq!(seq, 6, "{why}");
        assert!(why.contains("not covered by the signed head"), "{why}");
    }
}

/// A hash in hex as a literal of the store's byte type.
fn blob(s: &crate::TestStore, hex: &str) -> String {
    if s.url.starts_with("sqlite:") {
        format!("X'{hex}'")
    } else {
        format!("decode('{hex}', 'hex')")
    }
}

#[tokio::test]
async fn reordering_entries_is_detected() {
    for s in stores().await {
        let (l, k) = filled(&s, 25, 10).await;
        // Swap entries 3 and 4 wholesale (their numbers too).
        exec(&s, "UPDATE audit_entries SET seq = -3 WHERE seq = 3").await;
        exec(&s, "UPDATE audit_entries SET seq = 3 WHERE seq = 4").await;
        exec(&s, "UPDATE audit_entries SET seq = 4 WHERE seq = -3").await;
        let (seq, why) = broken_at(&l, &k).await;
        assert_eq!(seq, 3, "{}: {why}", s.name);
    }
}

#[tokio::test]
async fn truncating_after_the_last_checkpoint_is_detected() {
    for s in stores().await {
        let (l, k) = filled(&s, 25, 10).await;
        exec(&s, "DELETE FROM audit_entries WHERE seq > 20").await;
        let (seq, why) = broken_at(&l, &k).await;
        assert_eq!(seq, 21, "{}: {why}", s.name);
        assert!(why.contains("truncated after entry 20"), "{why}");
        // Removing the signed head as well does not hide it.
        exec(&s, "DELETE FROM audit_head").await;
        let (_, why) = broken_at(&l, &k).await;
        assert!(why.contains("head is missing"), "{why}");
        // Nor does cutting back past a checkpoint.
        exec(&s, "DELETE FROM audit_entries WHERE seq > 15").await;
        let (seq, why) = broken_at(&l, &k).await;
        assert_eq!(seq, 16, "{}: {why}", s.name);
        assert!(why.contains("checkpoint at entry 20"), "{why}");
    }
}

#[tokio::test]
async fn re_signing_with_another_key_is_detected() {
    for s in stores().await {
        let (l, k) = filled(&s, 25, 10).await;
        // The attacker rewrites entry 12, drops every signature, and signs anew with a key
        // of their own: the chain is consistent again, but not under our public key.
        exec(&s, "DELETE FROM audit_entries WHERE seq >= 12").await;
        exec(&s, "DELETE FROM audit_checkpoints").await;
        exec(&s, "DELETE FROM audit_head").await;
        let forger = Ledger::open(&s.url, KeySource::Key(crate::key()))
            .await
            .unwrap()
            .with_checkpoint_every(10);
        for i in 12..=25 {
            forger.append(crate::entry(i + 1000)).await.unwrap();
        }
        forger.checkpoint().await.unwrap();
        let other = forger.public_key().unwrap();
        assert!(
            forger.verify(&other).await.unwrap().is_intact(),
            "consistent under the forger's key"
        );
        let (seq, why) = broken_at(&l, &k).await;
        assert_eq!(seq, 20, "{}: {why}", s.name);
        assert!(why.contains("does not verify with public key"), "{why}");
    }
}

#[tokio::test]
async fn a_hundred_thousand_entries_verify() {
    for s in stores().await {
        let k = key();
        let l = open(&s, &k).await;
        for chunk in 0..100u64 {
            let audit = (0..1000).map(|i| entry(chunk * 1000 + i)).collect();
            l.commit(Batch {
                audit,
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let v = l.verify(&k.public()).await.unwrap();
        assert!(v.is_intact(), "{}: {v:?}", s.name);
        assert_eq!(v.entries, 100_000);
        assert_eq!(v.checkpoints, 100);
    }
}

#[tokio::test]
async fn the_key_is_created_once_and_a_different_key_is_refused() {
    for s in stores().await {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let l = Ledger::open(&s.url, KeySource::File(path.clone()))
            .await
            .unwrap();
        l.append(entry(1)).await.unwrap();
        let written = std::fs::read(&path).unwrap();
        let again = Ledger::open(&s.url, KeySource::File(path.clone()))
            .await
            .unwrap();
        again.append(entry(2)).await.unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            written,
            "the key is never rewritten"
        );
        let e = Ledger::open(&s.url, KeySource::Key(key()))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("signed with key"), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = Ledger::open(&s.url, KeySource::File(path.clone()))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("is missing") && e.contains("restore"), "{e}");
        assert!(!path.exists(), "no new key was made for a signed ledger");
        // Reading and verifying need no key.
        let ro = Ledger::open(&s.url, KeySource::None).await.unwrap();
        assert_eq!(ro.entries(&Filter::default()).await.unwrap().len(), 2);
        assert!(ro.append(entry(3)).await.is_err());
    }
}
