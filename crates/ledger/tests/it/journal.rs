//! The job journal: items move pending → in_flight → done | failed, settle atomically
//! with their audit entries and events, and a resume finds what is left.

use ledger::{
    Claim, Details, EventKind, Filter, ItemOutcome, ItemState, JobStatus, Ledger, NewEntry,
    NewEvent, NewJob, Outcome,
};

use crate::{key, open, stores};

fn job(id: &str, n: usize) -> NewJob {
    NewJob {
        id: id.to_string(),
        kind: "test-job",
        actor: "test".into(),
        params: Details::new().label("mode", "unit"),
        fingerprint: None,
        items: (1..=n).map(|i| format!("c-{i:07}")).collect(),
    }
}

fn done_entry(item: &str) -> NewEntry {
    NewEntry::new(
        "test",
        "test.item",
        item,
        Outcome::Success,
        Details::new().labels("fields", &["email"]),
    )
    .unwrap()
}

fn event(item: &str) -> NewEvent {
    NewEvent::new(
        EventKind::Consent,
        "contact.anonymized",
        Details::new()
            .id("contact_id", item)
            .unwrap()
            .label("status", "success"),
    )
}

#[tokio::test]
async fn items_move_through_their_states_and_settle_with_audit_and_events() {
    for s in stores().await {
        let k = key();
        let l = open(&s, &k).await;
        let id = l.create_job(job("job-1", 3)).await.unwrap();
        assert_eq!(l.job(&id).await.unwrap().pending, 3);
        assert_eq!(
            l.claim(&id, "c-0000001").await.unwrap(),
            Claim::Claimed { attempt: 1 }
        );
        assert_eq!(l.job(&id).await.unwrap().in_flight, 1);
        let c = l
            .settle(
                &id,
                "c-0000001",
                ItemOutcome::Done { result: None },
                vec![done_entry("c-0000001")],
                vec![event("c-0000001")],
            )
            .await
            .unwrap();
        assert_eq!(c.entries.len(), 1);
        assert_eq!(c.event_ids.len(), 1);
        assert_eq!(l.claim(&id, "c-0000001").await.unwrap(), Claim::AlreadyDone);
        l.claim(&id, "c-0000002").await.unwrap();
        l.settle(
            &id,
            "c-0000002",
            ItemOutcome::Failed {
                error: "412 twice".into(),
            },
            vec![],
            vec![],
        )
        .await
        .unwrap();
        assert_eq!(
            l.claim(&id, "c-0000002").await.unwrap(),
            Claim::Claimed { attempt: 2 },
            "a failed item can be retried"
        );
        let failed = l
            .job_items(&id, Some(ItemState::InFlight), 10)
            .await
            .unwrap();
        assert_eq!(failed[0].last_error.as_deref(), Some("412 twice"));
        let summary = l.job(&id).await.unwrap();
        assert_eq!(
            (
                summary.pending,
                summary.in_flight,
                summary.done,
                summary.failed
            ),
            (1, 1, 1, 0),
            "{}",
            s.name
        );
        let audit = l.entries(&Filter::default()).await.unwrap();
        assert_eq!(audit[0].operation, "job.start");
        assert_eq!(audit[1].target, "c-0000001");
        assert_eq!(l.outbox_status().await.unwrap().pending, 1);
    }
}

#[tokio::test]
async fn a_failed_settle_writes_nothing() {
    for s in stores().await {
        let k = key();
        let l = open(&s, &k).await;
        let id = l.create_job(job("job-2", 1)).await.unwrap();
        let before = l.entries(&Filter::default()).await.unwrap().len();
        let e = l
            .settle(
                &id,
                "c-9999999",
                ItemOutcome::Done { result: None },
                vec![done_entry("c-9999999")],
                vec![event("c-9999999")],
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no item"), "{e}");
        assert_eq!(
            l.entries(&Filter::default()).await.unwrap().len(),
            before,
            "{}: no audit entry",
            s.name
        );
        assert_eq!(
            l.outbox_status().await.unwrap().pending,
            0,
            "{}: no event",
            s.name
        );
        assert!(l.verify(&k.public()).await.unwrap().is_intact());
    }
}

#[tokio::test]
async fn a_resume_finds_the_unfinished_items_in_order() {
    for s in stores().await {
        let k = key();
        let l = open(&s, &k).await;
        let id = l.create_job(job("job-3", 5)).await.unwrap();
        for key in ["c-0000001", "c-0000003"] {
            l.claim(&id, key).await.unwrap();
            l.settle(
                &id,
                key,
                ItemOutcome::Done { result: None },
                vec![done_entry(key)],
                vec![],
            )
            .await
            .unwrap();
        }
        // c-0000004 was in flight when the process died.
        l.claim(&id, "c-0000004").await.unwrap();
        drop(l);
        let l = Ledger::open(&s.url, ledger::KeySource::Key(k.clone()))
            .await
            .unwrap();
        let left: Vec<String> = l
            .unfinished_items(&id, -1, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        assert_eq!(
            left,
            vec!["c-0000002", "c-0000004", "c-0000005"],
            "{}",
            s.name
        );
        l.add_items(&id, &["c-0000005".into(), "c-0000006".into()])
            .await
            .unwrap();
        assert_eq!(
            l.unfinished_items(&id, -1, 100).await.unwrap().len(),
            4,
            "existing items are not duplicated"
        );
        let fin = l
            .finish_job(
                &id,
                JobStatus::Done,
                NewEntry::new(
                    "test",
                    "job.finish",
                    &id,
                    Outcome::Success,
                    Details::new().count("done", 2),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        assert!(
            fin.checkpoint.is_some(),
            "every job ends with a signed checkpoint"
        );
        assert_eq!(l.job(&id).await.unwrap().status, "done");
        assert_eq!(l.jobs(10).await.unwrap().len(), 1);
        assert!(l.job("job-nope").await.is_err());
    }
}

#[tokio::test]
async fn a_job_that_finishes_keeps_only_the_items_with_a_result_and_its_counts() {
    for s in stores().await {
        let k = key();
        let l = open(&s, &k).await;
        let id = l.create_job(job("job-compact", 4)).await.unwrap();
        for (i, result) in [
            (1, None),
            (2, Some(serde_json::json!({"fpe": {"phone": "v2"}}))),
            (3, None),
        ] {
            let item = format!("c-{i:07}");
            l.claim(&id, &item).await.unwrap();
            l.settle(
                &id,
                &item,
                ItemOutcome::Done { result },
                vec![done_entry(&item)],
                vec![],
            )
            .await
            .unwrap();
        }
        l.claim(&id, "c-0000004").await.unwrap();
        l.settle(
            &id,
            "c-0000004",
            ItemOutcome::Failed {
                error: "412 twice".into(),
            },
            vec![],
            vec![],
        )
        .await
        .unwrap();
        // A job that ends failed keeps everything, for the operator to look into.
        let other = l.create_job(job("job-kept", 2)).await.unwrap();
        for item in ["c-0000001", "c-0000002"] {
            l.claim(&other, item).await.unwrap();
            l.settle(
                &other,
                item,
                ItemOutcome::Done { result: None },
                vec![],
                vec![],
            )
            .await
            .unwrap();
        }
        let finish = |job: &str| {
            NewEntry::new("test", "job.finish", job, Outcome::Success, Details::new()).unwrap()
        };
        l.finish_job(&other, JobStatus::Failed, finish(&other))
            .await
            .unwrap();
        assert_eq!(l.job_items(&other, None, 10).await.unwrap().len(), 2);

        l.finish_job(&id, JobStatus::Done, finish(&id))
            .await
            .unwrap();
        let left: Vec<String> = l
            .job_items(&id, None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(left, ["c-0000002", "c-0000004"], "{}", s.name);
        let summary = l.job(&id).await.unwrap();
        assert_eq!(
            (summary.done, summary.failed, summary.pending),
            (3, 1, 0),
            "{}: the counts stay whole",
            s.name
        );
        // What a later job reads of an earlier one's results is still there.
        let known = l
            .latest_results("test-job", &["c-0000002".to_string()])
            .await
            .unwrap();
        assert_eq!(known["c-0000002"]["fpe"]["phone"], "v2");
        assert!(l.verify(&k.public()).await.unwrap().is_intact());
    }
}

/// Regression (trust review, item 6): "find the running job with this fingerprint, else
/// create it" is one step: ten openers at once, on their own handles (as replicas
/// would be), open one job. And a job's lease admits one holder at a time, is given up
/// on release, and may be taken over once it has expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_make_one_job_and_a_lease_admits_one_holder() {
    for store in stores().await {
        let k = key();
        let handles: Vec<Ledger> = {
            let mut v = Vec::new();
            for _ in 0..10 {
                v.push(open(&store, &k).await);
            }
            v
        };
        let tasks: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let l = l.clone();
                tokio::spawn(async move {
                    let mut j = job(&format!("job-open-{i}"), 2);
                    j.fingerprint = Some("same-request".into());
                    l.open_job(j).await.unwrap()
                })
            })
            .collect();
        let mut ids = std::collections::BTreeSet::new();
        let mut created = 0;
        for t in tasks {
            let (id, new) = t.await.unwrap();
            ids.insert(id);
            created += usize::from(new);
        }
        assert_eq!((ids.len(), created), (1, 1), "{}: {ids:?}", store.name);
        let id = ids.into_iter().next().unwrap();

        let (a, b) = (&handles[0], &handles[1]);
        let ttl = std::time::Duration::from_secs(30);
        assert!(a.take_lease(&id, "holder-a", ttl).await.unwrap());
        assert!(
            !b.take_lease(&id, "holder-b", ttl).await.unwrap(),
            "{}",
            store.name
        );
        assert!(a.take_lease(&id, "holder-a", ttl).await.unwrap(), "renewed");
        assert_eq!(a.lease(&id).await.unwrap().unwrap().0, "holder-a");
        a.release_lease(&id, "holder-a").await.unwrap();
        assert!(
            b.take_lease(&id, "holder-b", std::time::Duration::ZERO)
                .await
                .unwrap()
        );
        // holder-b's lease has expired (it died): another may take the job over.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert!(
            a.take_lease(&id, "holder-a", ttl).await.unwrap(),
            "{}",
            store.name
        );
    }
}
