//! Slow and greedy clients: half-sent requests are cut off at the header deadline while
//! real callers keep being served, slow bodies get 408, the connection cap holds, the
//! operations routes are limited per address, and a link whose caller gave up is still
//! audited when it lands.

use std::time::{Duration, Instant};

use cxone_sim::SimConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Harness, Options, expected};

fn limits(header: Duration, request: Duration) -> server::Limits {
    server::Limits {
        header_read_timeout: header,
        request_timeout: request,
        ..Default::default()
    }
}

/// Reads until the server closes the connection; how long that took, or `None` if it
/// stayed open past `within`.
async fn closed_within(mut s: TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let done = tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    done.ok().map(|()| start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_cut_off_while_callers_are_served() {
    let header = Duration::from_secs(1);
    let h = Harness::start(Options {
        limits: limits(header, Duration::from_secs(10)),
        ..Default::default()
    })
    .await;
    let addr = h.url.trim_start_matches("http://").to_string();
    // Warm the path (token, phone metadata, ledger) so the figures are of the steady state.
    assert_eq!(h.link("g-000001", "warm@example.com").await.status(), 200);

    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"POST /v1/guests/g-000002/iden").await.unwrap();
        slow.push(s);
    }
    let opened = Instant::now();
    let waits: Vec<_> = slow
        .into_iter()
        .map(|s| tokio::spawn(closed_within(s, header + Duration::from_secs(4))))
        .collect();

    let mut latencies = Vec::new();
    let mut i = 0;
    while opened.elapsed() < header + Duration::from_millis(500) {
        let t = Instant::now();
        let r = h
            .link(&format!("g-{:06}", 3 + i % 40), "ann.lee@example.com")
            .await;
        latencies.push(t.elapsed());
        assert_eq!(r.status(), 200);
        i += 1;
    }
    let mut closed = 0;
    for w in waits {
        let took = w.await.unwrap().expect("a half-sent request was left open");
        assert!(
            took <= header + Duration::from_secs(2),
            "closed only after {took:?}"
        );
        closed += 1;
    }
    assert_eq!(closed, 500);
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    println!(
        "{} authenticated links during the attack, p50 {:?}, p99 {p99:?}",
        latencies.len(),
        latencies[latencies.len() / 2]
    );
    assert!(latencies.len() >= 20, "{}", latencies.len());
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408() {
    let h = Harness::start(Options {
        limits: limits(Duration::from_secs(5), Duration::from_millis(800)),
        ..Default::default()
    })
    .await;
    let addr = h.url.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/guests/g-000001/identity HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"ident",
        h.key
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let header = Duration::from_millis(800);
    let h = Harness::start(Options {
        limits: server::Limits {
            max_connections: 4,
            ..limits(header, Duration::from_secs(10))
        },
        ..Default::default()
    })
    .await;
    let addr = h.url.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    let r = h.link("g-000001", "ann.lee@example.com").await;
    assert_eq!(r.status(), 200);
    // Served only once the header deadline freed a slot held by an idle connection.
    assert!(start.elapsed() >= header / 2, "{:?}", start.elapsed());
    drop(idle);
}

#[tokio::test]
async fn operations_routes_are_limited_per_address() {
    let h = Harness::start(Options {
        limits: server::Limits {
            ops_rate_per_ip: 5,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let mut limited = 0;
    for _ in 0..30 {
        let r = h
            .http
            .get(format!("{}/metrics", h.url))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            limited += 1;
        }
    }
    assert!(limited >= 15, "{limited} of 30 refused");
    // API callers are limited per key, not by this.
    assert_eq!(
        h.link("g-000001", "ann.lee@example.com").await.status(),
        200
    );
    assert_eq!(h.get_text("/healthz").await, r#"{"status":"ok"}"#);
}

#[tokio::test]
async fn a_link_that_lands_after_the_deadline_is_still_audited() {
    let h = Harness::start(Options {
        sim: SimConfig {
            latency: Duration::from_millis(1200),
            ..Default::default()
        },
        deadline: Duration::from_millis(400),
        ..Default::default()
    })
    .await;
    // The token request is slow too; fetch it first so the link itself outlasts the deadline.
    let r = h.link("g-000001", "ann.lee@example.com").await;
    assert_eq!(r.status(), 502);
    let start = Instant::now();
    while h.links_audited().await == 0 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(h.links_audited().await, 1, "the landed PATCH is audited");
    assert_eq!(
        h.attribute("g-000001"),
        Some(expected("ann.lee@example.com"))
    );
}
