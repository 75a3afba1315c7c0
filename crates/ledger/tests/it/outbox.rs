//! The outbox and its deliverer against a receiver on loopback.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use ledger::deliver::{Deliverer, DeliveryConfig, Endpoint};
use ledger::webhooks::{self, WebhookSecret};
use ledger::{Details, EventKind, Ledger, NewEvent};

use crate::{TestStore, key, open, stores};

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const OLD_SECRET: &str = "whsec_dGhlIG9sZCBzZWNyZXQgYmVpbmcgcm90YXRlZCBvdXQ=";

#[derive(Default)]
pub struct Seen {
    /// Every request: (id, timestamp, signature, body, answered status).
    pub requests: Vec<(String, String, String, String, u16)>,
    /// Requests per id in flight right now, and the most seen at once.
    pub in_flight: HashMap<String, u32>,
    pub max_in_flight_same_id: u32,
}

/// A receiver that fails each message's first `fail_first` attempts, holds each request
/// for `delay`, and records everything.
pub async fn receiver(fail_first: u32, delay: Duration) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = s2.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let id = h("webhook-id");
                {
                    let mut s = seen.lock().unwrap();
                    let n = s.in_flight.entry(id.clone()).or_insert(0);
                    *n += 1;
                    let now = *n;
                    s.max_in_flight_same_id = s.max_in_flight_same_id.max(now);
                }
                tokio::time::sleep(delay).await;
                let mut s = seen.lock().unwrap();
                *s.in_flight.get_mut(&id).unwrap() -= 1;
                let earlier = s.requests.iter().filter(|r| r.0 == id).count() as u32;
                let status = if earlier < fail_first { 503 } else { 204 };
                s.requests.push((
                    id,
                    h("webhook-timestamp"),
                    h("webhook-signature"),
                    body,
                    status,
                ));
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

pub fn config(url: &str, schedule_ms: &[u64]) -> DeliveryConfig {
    let mut endpoints = BTreeMap::new();
    endpoints.insert(
        EventKind::Consent,
        Endpoint {
            url: url.parse().unwrap(),
            secrets: vec![
                WebhookSecret::parse(SECRET).unwrap(),
                WebhookSecret::parse(OLD_SECRET).unwrap(),
            ],
        },
    );
    DeliveryConfig {
        endpoints,
        schedule: schedule_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect(),
        timeout: Duration::from_secs(5),
        lease: Duration::from_millis(500),
        ..Default::default()
    }
}

pub fn consent(i: usize) -> NewEvent {
    NewEvent::new(
        EventKind::Consent,
        "contact.anonymized",
        Details::new()
            .id("contact_id", &format!("c-{i:07}"))
            .unwrap()
            .label("status", "success"),
    )
}

async fn enqueue_n(l: &Ledger, n: usize) {
    for i in 0..n {
        l.enqueue(consent(i)).await.unwrap();
    }
}

async fn ledger_for(s: &TestStore) -> Ledger {
    open(s, &key()).await
}

#[tokio::test]
async fn a_receiver_failing_three_times_then_accepting_gets_it_acknowledged_once() {
    for s in stores().await {
        let l = ledger_for(&s).await;
        let (url, seen) = receiver(3, Duration::ZERO).await;
        enqueue_n(&l, 1).await;
        let d = Deliverer::new(l.clone(), config(&url, &[0, 20, 20, 20, 20, 20, 20, 20])).unwrap();
        let (total, left) = d.until_empty(Duration::from_secs(10)).await.unwrap();
        assert_eq!(left, 0);
        assert_eq!(total.delivered, 1, "{}: {total:?}", s.name);
        let requests = seen.lock().unwrap().requests.clone();
        let statuses: Vec<u16> = requests.iter().map(|r| r.4).collect();
        assert_eq!(statuses, vec![503, 503, 503, 204]);
        assert!(
            requests.iter().all(|r| r.0 == requests[0].0),
            "one message id throughout"
        );
        let ev = &l.outbox_events(Some("delivered"), 10).await.unwrap()[0];
        assert_eq!(ev.attempts, 4);
    }
}

#[tokio::test]
async fn after_the_last_attempt_the_event_goes_to_dead_letter_and_can_be_retried() {
    for s in stores().await {
        let l = ledger_for(&s).await;
        let (url, seen) = receiver(u32::MAX, Duration::ZERO).await;
        enqueue_n(&l, 1).await;
        let d = Deliverer::new(l.clone(), config(&url, &[0, 10, 10])).unwrap();
        let (total, _) = d.until_empty(Duration::from_secs(5)).await.unwrap();
        assert_eq!(total.dead, 1, "{}: {total:?}", s.name);
        assert_eq!(seen.lock().unwrap().requests.len(), 3);
        let dead = l.outbox_events(Some("dead"), 10).await.unwrap();
        assert!(dead[0].last_error.as_deref().unwrap().contains("503"));
        l.retry_event(&dead[0].id).await.unwrap();
        assert_eq!(l.outbox_status().await.unwrap().pending, 1);
        assert!(l.retry_event("msg_nope").await.is_err());
    }
}

#[tokio::test]
async fn a_kind_without_an_endpoint_is_recorded_as_skipped() {
    for s in stores().await {
        let l = ledger_for(&s).await;
        l.enqueue(NewEvent::new(
            EventKind::Vault,
            "secret_rotation",
            Details::new().id("secret_id", "sec-1").unwrap(),
        ))
        .await
        .unwrap();
        let (url, _) = receiver(0, Duration::ZERO).await;
        let d = Deliverer::new(l.clone(), config(&url, &[0])).unwrap();
        let (total, _) = d.until_empty(Duration::from_secs(2)).await.unwrap();
        assert_eq!(total.skipped, 1);
        let st = l.outbox_status().await.unwrap();
        assert_eq!((st.pending, st.skipped), (0, 1), "{}", s.name);
        let ev = &l.outbox_events(Some("skipped"), 1).await.unwrap()[0];
        assert!(
            ev.last_error
                .as_deref()
                .unwrap()
                .contains("[webhooks.vault]")
        );
    }
}

#[tokio::test]
async fn two_deliverers_never_send_the_same_event_at_once() {
    for s in stores().await {
        let l = ledger_for(&s).await;
        enqueue_n(&l, 120).await;
        let (url, seen) = receiver(0, Duration::from_millis(5)).await;
        let mut cfg1 = config(&url, &[0, 50]);
        cfg1.batch = 10;
        let mut cfg2 = config(&url, &[0, 50]);
        cfg2.batch = 10;
        let a = Deliverer::new(l.clone(), cfg1).unwrap();
        let b = Deliverer::new(
            Ledger::open(&s.url, ledger::KeySource::None).await.unwrap(),
            cfg2,
        )
        .unwrap();
        let (ra, rb) = tokio::join!(
            a.until_empty(Duration::from_secs(20)),
            b.until_empty(Duration::from_secs(20))
        );
        let (ra, rb) = (ra.unwrap().0, rb.unwrap().0);
        assert_eq!(ra.delivered + rb.delivered, 120, "{}", s.name);
        assert!(
            ra.delivered > 0 && rb.delivered > 0,
            "both took part: {ra:?} {rb:?}"
        );
        let (sent, most_at_once) = {
            let seen = seen.lock().unwrap();
            (seen.requests.len(), seen.max_in_flight_same_id)
        };
        assert_eq!(sent, 120, "each event sent exactly once");
        assert_eq!(most_at_once, 1);
        l.purge_delivered().await.unwrap();
        assert_eq!(l.outbox_status().await.unwrap().delivered, 0);
    }
}

#[tokio::test]
async fn a_deliverer_that_dies_mid_flight_leaves_nothing_undelivered() {
    for s in stores().await {
        let l = ledger_for(&s).await;
        enqueue_n(&l, 30).await;
        let (url, seen) = receiver(0, Duration::ZERO).await;
        // A deliverer leases a batch and dies before sending or recording anything.
        let stolen = l.lease_due(10, 300).await.unwrap();
        assert_eq!(stolen.len(), 10);
        drop(stolen);
        let d = Deliverer::new(l.clone(), config(&url, &[0, 10])).unwrap();
        let (total, left) = d.until_empty(Duration::from_secs(5)).await.unwrap();
        assert_eq!((total.delivered, left), (30, 0), "{}", s.name);
        let seen = seen.lock().unwrap();
        let ids: std::collections::HashSet<_> = seen.requests.iter().map(|r| r.0.clone()).collect();
        assert_eq!(ids.len(), 30);
    }
}

#[tokio::test]
async fn a_killed_deliverer_process_is_restarted_and_delivers_everything() {
    // The child half: deliver slowly until killed.
    if let Ok(url) = std::env::var("LEDGER_CHILD_DELIVER_URL") {
        let store = std::env::var("LEDGER_CHILD_STORE").unwrap();
        let l = Ledger::open(&store, ledger::KeySource::None).await.unwrap();
        let mut cfg = config(&url, &[0, 10]);
        cfg.batch = 50;
        cfg.lease = Duration::from_millis(800);
        let _ = Deliverer::new(l, cfg)
            .unwrap()
            .until_empty(Duration::from_secs(60))
            .await;
        return;
    }
    for s in stores().await {
        let l = ledger_for(&s).await;
        enqueue_n(&l, 40).await;
        let (url, seen) = receiver(0, Duration::from_millis(400)).await;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "outbox::a_killed_deliverer_process_is_restarted_and_delivers_everything",
                "--nocapture",
            ])
            .env("LEDGER_CHILD_DELIVER_URL", &url)
            .env("LEDGER_CHILD_STORE", &s.url)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until requests are in flight, then SIGKILL the deliverer.
        for _ in 0..100 {
            if !seen.lock().unwrap().in_flight.values().all(|n| *n == 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.kill().unwrap();
        let _ = child.wait();
        assert!(
            l.outbox_status().await.unwrap().pending > 0,
            "{}: the kill left work undone",
            s.name
        );
        let d = Deliverer::new(l.clone(), config(&url, &[0, 10])).unwrap();
        let (_, left) = d.until_empty(Duration::from_secs(30)).await.unwrap();
        assert_eq!(left, 0);
        assert_eq!(l.outbox_status().await.unwrap().delivered, 40, "{}", s.name);
        let seen = seen.lock().unwrap();
        let ok: std::collections::HashSet<_> = seen
            .requests
            .iter()
            .filter(|r| r.4 == 204)
            .map(|r| r.0.clone())
            .collect();
        assert_eq!(ok.len(), 40, "every event reached the receiver");
    }
}

#[tokio::test]
async fn deliveries_carry_verifiable_standard_webhooks_signatures() {
    let s = crate::sqlite_store().await;
    let l = ledger_for(&s).await;
    enqueue_n(&l, 1).await;
    let (url, seen) = receiver(0, Duration::ZERO).await;
    Deliverer::new(l.clone(), config(&url, &[0]))
        .unwrap()
        .until_empty(Duration::from_secs(5))
        .await
        .unwrap();
    let (id, ts, sig, body, _) = seen.lock().unwrap().requests[0].clone();
    assert_eq!(
        sig.split(' ').count(),
        2,
        "one signature per secret while rotating"
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], "contact.anonymized");
    assert_eq!(v["data"]["contact_id"], "c-0000000");
    assert!(v["timestamp"].is_string());
    let now = ts.parse::<i64>().unwrap();
    for secret in [SECRET, OLD_SECRET] {
        let ok = webhooks::verify(
            &[WebhookSecret::parse(secret).unwrap()],
            Some(&id),
            Some(&ts),
            Some(&sig),
            body.as_bytes(),
            now,
            300,
        );
        assert_eq!(ok, Ok(()), "verifies with {secret}");
    }

    // The reference implementation agrees.
    let has_lib = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_lib {
        assert!(
            std::env::var("CI").is_err(),
            "CI must check signatures with the standardwebhooks package (pip install standardwebhooks)"
        );
        eprintln!("skipped the reference check: pip install standardwebhooks");
        return;
    }
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
d = json.load(sys.stdin)
for secret in d["secrets"]:
    Webhook(secret).verify(d["body"], {"webhook-id": d["id"], "webhook-timestamp": d["ts"], "webhook-signature": d["sig"]})
try:
    Webhook(d["secrets"][0]).verify(d["body"] + " ", {"webhook-id": d["id"], "webhook-timestamp": d["ts"], "webhook-signature": d["sig"]})
    sys.exit("a changed body verified")
except Exception:
    pass
print("ok")
"#;
    let input = serde_json::json!({"secrets": [SECRET, OLD_SECRET], "id": id, "ts": ts, "sig": sig, "body": body});
    let mut py = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    py.stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

#[tokio::test]
async fn a_redirecting_receiver_gets_no_event_sent_onward() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let s = crate::sqlite_store().await;
    let l = ledger_for(&s).await;
    let elsewhere = Arc::new(AtomicU64::new(0));
    let e2 = elsewhere.clone();
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_addr = other.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((_s, _)) = other.accept().await {
            e2.fetch_add(1, Ordering::SeqCst);
        }
    });
    let location = format!("http://{other_addr}/hook");
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let location = location.clone();
            async move {
                (
                    axum::http::StatusCode::PERMANENT_REDIRECT,
                    [(axum::http::header::LOCATION, location)],
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    enqueue_n(&l, 1).await;
    let d = Deliverer::new(l.clone(), config(&url, &[0])).unwrap();
    let (total, _) = d.until_empty(Duration::from_secs(5)).await.unwrap();
    assert_eq!(total.dead, 1, "{total:?}");
    let dead = l.outbox_events(Some("dead"), 10).await.unwrap();
    let err = dead[0].last_error.as_deref().unwrap();
    assert!(
        err.contains("308") && err.contains(&other_addr.to_string()),
        "{err}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        elsewhere.load(Ordering::SeqCst),
        0,
        "nothing reached the other port"
    );
}
