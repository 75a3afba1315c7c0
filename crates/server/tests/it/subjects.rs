//! `POST /v1/subjects/erasure` and `GET /v1/subjects/erasure/{job}` as a privacy portal
//! uses them: queue one person's erasure, poll it, read the receipt.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::{Harness, Options, problem};

const POLICY: &str = r#"default_region = "US"
[keys]
k = { id = "policy-key", env = "IT_POLICY_KEY" }
[fields]
firstName = { op = "erase" }
lastName = { op = "erase" }
email = { op = "pseudonymize", key = "k" }
phone = { op = "mask", keep_first = 3 }
"#;

pub(crate) fn subjects(queue: usize) -> server::SubjectsConfig {
    let key = base64::engine::general_purpose::STANDARD.encode([8u8; 32]);
    let policy = guard::anonymize::Policy::parse(
        POLICY,
        std::path::Path::new("policy.toml"),
        &|name: &str| (name == "IT_POLICY_KEY").then(|| key.clone()),
    )
    .unwrap();
    server::SubjectsConfig {
        policy: guard::subject::erase::ErasePolicy::Contacts(policy),
        queue,
        platform_erasure: true,
        page_size: cxone::PageSize::new(1000).unwrap(),
        concurrency: 4,
    }
}

async fn start(queue: usize, deadline: Duration) -> Harness {
    Harness::start(Options {
        sim: cxone_sim::SimConfig {
            contacts: 300,
            ..Default::default()
        },
        deadline,
        subjects: Some(subjects(queue)),
        ..Default::default()
    })
    .await
}

async fn erase(h: &Harness, body: Value) -> (u16, Option<String>, Value) {
    let r = h.post("/v1/subjects/erasure", &body).send().await.unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    if let Some(i) = body["identifier"].as_str() {
        assert!(
            !text.contains(i),
            "the answer carries the identifier: {text}"
        );
    }
    (status, location, serde_json::from_str(&text).unwrap())
}

async fn job(h: &Harness, id: &str) -> Value {
    let r = h
        .http
        .get(format!("{}/v1/subjects/erasure/{id}", h.url))
        .bearer_auth(&h.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Polls the job until its status is one of `wanted`.
async fn until(h: &Harness, id: &str, wanted: &[&str]) -> Value {
    let start = Instant::now();
    loop {
        let j = job(h, id).await;
        if wanted.contains(&j["status"].as_str().unwrap()) {
            return j;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "job {id} still {j} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn an_erasure_is_queued_changes_the_persons_five_records_and_answers_a_receipt() {
    let h = start(8, Duration::from_secs(10)).await;
    for g in ["g-000003", "g-000005"] {
        assert_eq!(h.link(g, "lee@example.com").await.status(), 200);
    }
    let c = h.sim.control();
    let pseudonym = crate::expected("lee@example.com");
    c.edit_contact("c-0000007", json!({"email": "LEE@example.com"}))
        .unwrap();
    c.edit_contact("c-0000011", json!({"email": "lee@example.com"}))
        .unwrap();
    c.edit_contact("c-0000013", json!({"email": pseudonym}))
        .unwrap();
    let before = c.mutations("");

    let (status, location, accepted) = erase(
        &h,
        json!({"identifier": "Lee@Example.com", "kind": "email", "ref": "DSR-2026-0042"}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["jobId"].as_str().unwrap().to_string();
    assert_eq!(accepted["status"], "queued");
    assert_eq!(location.as_deref(), accepted["statusUrl"].as_str());
    assert_eq!(
        accepted["statusUrl"],
        format!("/v1/subjects/erasure/{id}").as_str()
    );

    let done = until(&h, &id, &["done", "failed"]).await;
    assert_eq!(done["status"], "done", "{done:#}");
    let text = done.to_string();
    assert!(!text.to_lowercase().contains("lee@example.com"), "{text}");
    let r = &done["receipt"];
    assert_eq!(r["reference"], "DSR-2026-0042");
    assert_eq!(r["pseudonym"], pseudonym.as_str());
    assert_eq!(r["jobId"], id.as_str());
    assert_eq!(r["recordsFound"], true);
    let contacts: BTreeSet<&str> = r["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        contacts,
        BTreeSet::from(["c-0000007", "c-0000011", "c-0000013"])
    );
    assert_eq!(r["guests"], json!(["g-000003", "g-000005"]));
    let erasures = c.erasures();
    assert_eq!(erasures.len(), 1, "one platform erasure");
    assert_eq!(erasures[0]["subjectIdentifier"], "lee@example.com");
    assert_eq!(r["platform"]["status"], "submitted");
    assert_eq!(r["platform"]["requestId"], erasures[0]["requestId"]);

    // Exactly the person's five records changed (and the platform request filed).
    let now = c.mutations("");
    let changed: BTreeSet<&String> = now
        .iter()
        .filter(|(k, v)| **v > before.get(*k).copied().unwrap_or(0))
        .map(|(k, _)| k)
        .filter(|k| !k.starts_with("erasure/"))
        .collect();
    assert_eq!(
        changed.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        [
            "contact/c-0000007",
            "contact/c-0000011",
            "contact/c-0000013",
            "guest/g-000003",
            "guest/g-000005"
        ]
    );

    // Every audit sequence number names its step of this person, and the head is the
    // entry that closed the job.
    let entries = h.ledger.entries(&ledger::Filter::default()).await.unwrap();
    let by_seq = |seq: i64| entries.iter().find(|e| e.seq == seq).unwrap();
    for step in ["find", "contacts", "guest", "platform"] {
        let seqs = r["audit"][step].as_array().unwrap();
        assert!(!seqs.is_empty(), "no {step} entries: {r:#}");
        for s in seqs {
            let e = by_seq(s.as_i64().unwrap());
            assert_eq!(e.operation, format!("subject.erase.{step}"));
            assert_eq!(e.target, pseudonym);
            assert_eq!(e.actor, "api:web-test");
        }
    }
    assert_eq!(r["audit"]["guest"].as_array().unwrap().len(), 2);
    let (seq, hash) = r["auditHead"].as_str().unwrap().split_once(':').unwrap();
    let head = by_seq(seq.parse().unwrap());
    assert_eq!(head.hash, hash);
    assert_eq!(head.operation, "job.finish");
    assert_eq!(head.target, id);
    let key = h.ledger.public_key().unwrap();
    assert!(h.ledger.verify(&key).await.unwrap().is_intact());

    let metrics = h.get_text("/metrics").await;
    for line in [
        r#"cxguard_subject_erasures_total{outcome="accepted"} 1"#,
        r#"cxguard_subject_erasures_total{outcome="erased"} 1"#,
        "cxguard_subject_erasures_queued 0",
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
}

#[tokio::test]
async fn bad_requests_are_refused_field_by_field_and_nothing_is_opened() {
    let h = start(8, Duration::from_secs(10)).await;
    let (status, _, p) = erase(&h, json!({})).await;
    assert_eq!(status, 400);
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["identifier", "ref"], "{p:#}");

    for (body, field) in [
        (
            json!({"identifier": "not-an-address", "kind": "email", "ref": "T-1"}),
            "identifier",
        ),
        (
            json!({"identifier": "555", "kind": "phone", "ref": "T-1"}),
            "identifier",
        ),
        (
            json!({"identifier": "a@b.example", "ref": "ann@b.example"}),
            "ref",
        ),
        (
            json!({"identifier": "a@b.example", "kind": "fax", "ref": "T-1"}),
            "kind",
        ),
        (
            json!({"identifier": "a@b.example", "ref": "T-1", "note": "x"}),
            "note",
        ),
        (json!({"identifier": 5, "ref": "T-1"}), "identifier"),
    ] {
        let (status, _, p) = erase(&h, body.clone()).await;
        assert_eq!(status, 400, "{body}: {p:#}");
        assert_eq!(p["field"], field, "{body}: {p:#}");
        assert_eq!(p["type"], "urn:cxguard:problem:invalid-field");
    }
    let r = h
        .http
        .post(format!("{}/v1/subjects/erasure", h.url))
        .json(&json!({"identifier": "a@b.example", "ref": "T-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 401);
    let r = h
        .http
        .get(format!("{}/v1/subjects/erasure/subject.erase-nope", h.url))
        .bearer_auth(&h.key)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 404);
    assert!(
        h.ledger.jobs(100).await.unwrap().is_empty(),
        "a refused request opened a job"
    );
    assert!(h.sim.control().erasures().is_empty());

    // A service without [subjects] says so.
    let off = Harness::start(Options::default()).await;
    let r = off
        .post(
            "/v1/subjects/erasure",
            &json!({"identifier": "a@b.example", "ref": "T-1"}),
        )
        .send()
        .await
        .unwrap();
    let (status, p) = problem(r).await;
    assert_eq!(status, 404);
    assert_eq!(p["type"], "urn:cxguard:problem:not-enabled");
}

#[tokio::test]
async fn a_full_queue_refuses_with_retry_after_and_a_repeat_answers_the_same_job() {
    let h = start(1, Duration::from_secs(10)).await;
    // Slow enough that the first job is still running while the others arrive.
    h.sim
        .control()
        .configure(json!({"latencyMs": 150}))
        .unwrap();
    let ask = |who: &str| json!({"identifier": format!("{who}@example.com"), "ref": who});
    let (s, _, a) = erase(&h, ask("ann")).await;
    assert_eq!(s, 202, "{a}");
    let a = a["jobId"].as_str().unwrap().to_string();
    until(&h, &a, &["running"]).await;
    let (s, _, again) = erase(&h, ask("ann")).await;
    assert_eq!((s, again["jobId"].as_str()), (202, Some(a.as_str())));

    let (s, _, b) = erase(&h, ask("bob")).await;
    assert_eq!(s, 202, "{b}");
    let b = b["jobId"].as_str().unwrap().to_string();
    assert_ne!(a, b);
    assert_eq!(job(&h, &b).await["status"], "queued");

    let r = h
        .post("/v1/subjects/erasure", &ask("cy"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "30");
    let (status, p) = problem(r).await;
    assert_eq!(status, 503);
    assert_eq!(p["type"], "urn:cxguard:problem:queue-full");

    until(&h, &a, &["done"]).await;
    until(&h, &b, &["done"]).await;
    let jobs = h.ledger.jobs(100).await.unwrap();
    let erasures: Vec<_> = jobs.iter().filter(|j| j.kind == "subject.erase").collect();
    assert_eq!(erasures.len(), 2, "the refused request opened nothing");
    assert_eq!(
        h.sim.control().erasures().len(),
        2,
        "one platform request each"
    );
    let metrics = h.get_text("/metrics").await;
    for line in [
        r#"cxguard_subject_erasures_total{outcome="repeated"} 1"#,
        r#"cxguard_subject_erasures_total{outcome="queue_full"} 1"#,
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_failed_erasure_says_why_and_the_same_request_resumes_it() {
    let h = start(8, Duration::from_millis(500)).await;
    let c = h.sim.control();
    c.configure(json!({"faultRate": 1.0})).unwrap();
    let body = json!({"identifier": "+1 415 555 0100", "ref": "T-7"});
    let (s, _, a) = erase(&h, body.clone()).await;
    assert_eq!(s, 202, "{a}");
    let id = a["jobId"].as_str().unwrap().to_string();
    let failed = until(&h, &id, &["failed", "done"]).await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    let why = failed["detail"].as_str().unwrap();
    assert!(why.contains("POST the same request again"), "{why}");
    assert!(!why.contains("415"), "{why}");

    c.configure(json!({"faultRate": 0.0})).unwrap();
    let (s, _, again) = erase(&h, body).await;
    assert_eq!((s, again["jobId"].as_str()), (202, Some(id.as_str())));
    let done = until(&h, &id, &["done"]).await;
    assert_eq!(done["receipt"]["platform"]["status"], "submitted");
    assert_eq!(c.erasures().len(), 1);
    assert_eq!(c.erasures()[0]["subjectIdentifierType"], "PHONENO");
}
