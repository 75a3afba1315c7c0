//! Loopback throughput of the emulator and of the client, each beside a baseline measured
//! in the same run:
//! - emulator requests/s (GET and PATCH of a contact, a 1000-contact page) against a bare
//!   axum route answering a fixed JSON body, driven by the same raw reqwest load;
//! - client round trips/s through the whole stack (pacer, token cache, retry loop,
//!   decoding) against raw reqwest GETs of the same contact.
//!
//! Run: `cargo bench -p cxone --bench roundtrip` (add `-- --quick` for a short run).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cxone::{Client, Grant, Settings};
use cxone_sim::{Sim, SimConfig};

const CONCURRENCY: usize = 32;

struct Figure {
    name: &'static str,
    requests: u64,
    secs: f64,
}

impl Figure {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

/// Runs `op` from `CONCURRENCY` tasks until `total` calls are done.
async fn drive<F, Fut>(name: &'static str, total: u64, op: F) -> Figure
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let op = op.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                op(i).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    Figure {
        name,
        requests: total,
        secs: start.elapsed().as_secs_f64(),
    }
}

async fn bare_axum() -> String {
    let app = axum::Router::new().route(
        "/x",
        axum::routing::get(|| async { axum::Json(serde_json::json!({"id": "c-0000001", "firstName": "Ann", "email": "a@example.com"})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/x")
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: u64 = if quick { 3_000 } else { 20_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let sim = Sim::start(SimConfig { contacts: 100_000, ..Default::default() }).await.unwrap();
        let base = sim.base_url();
        let creds = sim.credentials().clone();
        let http = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().unwrap();
        let token: serde_json::Value = http
            .post(sim.token_url())
            .basic_auth(&creds.client_id, Some(&creds.client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = Arc::new(token["access_token"].as_str().unwrap().to_string());
        let bare = Arc::new(bare_axum().await);

        // Warm up connections and code paths.
        for _ in 0..200 {
            let _ = http.get(bare.as_str()).send().await.unwrap().bytes().await;
        }

        let (h, u) = (http.clone(), bare.clone());
        let baseline = drive("bare axum GET (baseline)", n, move |_| {
            let (h, u) = (h.clone(), u.clone());
            async move {
                h.get(u.as_str()).send().await.unwrap().bytes().await.unwrap();
            }
        })
        .await;

        let (h, b, t) = (http.clone(), base.clone(), token.clone());
        let sim_get = drive("emulator GET contact", n, move |i| {
            let (h, b, t) = (h.clone(), b.clone(), t.clone());
            async move {
                let r = h.get(format!("{b}/api/v1/contacts/c-{:07}", i % 100_000 + 1)).bearer_auth(t.as_str()).send().await.unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
            }
        })
        .await;

        let (h, b, t) = (http.clone(), base.clone(), token.clone());
        let sim_patch = drive("emulator PATCH contact", n, move |i| {
            let (h, b, t) = (h.clone(), b.clone(), t.clone());
            async move {
                let r = h
                    .patch(format!("{b}/api/v1/contacts/c-{:07}", i % 100_000 + 1))
                    .bearer_auth(t.as_str())
                    .header("if-match", "*")
                    .json(&serde_json::json!({"email": null, "customFields": {"notes": format!("n{i}")}}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
            }
        })
        .await;

        let pages = n / 20;
        let (h, b, t) = (http.clone(), base.clone(), token.clone());
        let sim_page = drive("emulator GET page of 1000", pages, move |i| {
            let (h, b, t) = (h.clone(), b.clone(), t.clone());
            async move {
                let _ = i;
                let r = h.get(format!("{b}/api/v1/contacts?pageSize=1000")).bearer_auth(t.as_str()).send().await.unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
            }
        })
        .await;

        let grant = Grant::ClientCredentials { client_id: creds.client_id.clone(), client_secret: creds.client_secret.clone().into() };
        let client = Client::new(Settings::new(&base, grant).unwrap()).unwrap();
        client.authenticate().await.unwrap();
        let c = client.clone();
        let via_client = drive("cxone client GET contact (full stack)", n, move |i| {
            let c = c.clone();
            async move {
                c.contacts().get(&format!("c-{:07}", i % 100_000 + 1)).await.unwrap();
            }
        })
        .await;
        let (h, b, t) = (http.clone(), base.clone(), token.clone());
        let via_raw = drive("raw reqwest GET contact + decode", n, move |i| {
            let (h, b, t) = (h.clone(), b.clone(), t.clone());
            async move {
                let r = h.get(format!("{b}/api/v1/contacts/c-{:07}", i % 100_000 + 1)).bearer_auth(t.as_str()).send().await.unwrap();
                let _: serde_json::Value = r.json().await.unwrap();
            }
        })
        .await;

        println!("loopback, {CONCURRENCY} concurrent requests, {} CPU(s)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        println!("{:<42} {:>8} {:>8} {:>10} {:>9}", "what", "requests", "secs", "req/s", "ratio");
        let row = |f: &Figure, base: &Figure| {
            println!("{:<42} {:>8} {:>8.2} {:>10.0} {:>8.2}x", f.name, f.requests, f.secs, f.rate(), f.rate() / base.rate());
        };
        row(&baseline, &baseline);
        row(&sim_get, &baseline);
        row(&sim_patch, &baseline);
        row(&sim_page, &baseline);
        println!("  (a page carries 1000 contacts: {:.0} contacts/s listed)", sim_page.rate() * 1000.0);
        row(&via_raw, &via_raw);
        row(&via_client, &via_raw);
        let s = client.stats();
        println!("  client: {} requests, {} retries, {} token request(s)", s.requests, s.retries, s.token_requests);
        tokio::time::sleep(Duration::from_millis(10)).await;
    });
}
