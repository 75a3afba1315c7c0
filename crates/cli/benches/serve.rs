//! `cxguard serve` beside the tutorial's Flask route (../shared/peers/guest_service_seed.py
//! under `gunicorn -w 2`), in one run, both backed by the same emulator with no upstream
//! rate limit, both sent the same requests (the tutorial's `POST
//! /api/update-guest-attributes`) over 64 keep-alive connections by a small Rust load
//! generator (raw HTTP/1.1, so it spends little CPU of its own).
//!
//! Prints requests/s, p50/p99 latency and server CPU per request (user+system time of the
//! server's processes from /proc, gunicorn's master and workers summed) for each, and the
//! ratios. Beside each server's CPU, "bench ms/req" is this process's own CPU per request
//! (the emulator and the load generator), which shares the two cores with the server and
//! so bounds what the server can reach. Targets: ≥ 20× the peer's throughput, p99 ≤ 1/10
//! of the peer's. The sides take turns (five windows each) so that a machine's drift
//! moves both alike.
//!
//! Run: `cargo bench -p cxguard --bench serve` (needs python3 with flask, requests and
//! gunicorn for the peer: `pip install flask requests gunicorn`). `--json FILE` also writes
//! the figures as JSON (for `bench/compare`). `--seconds N` sets the
//! measured time per side (default 10); `--only-ours` skips the peer (for profiling); `--with-logs` keeps
//! cxguard's JSON access log on (written to /dev/null), as `serve` runs by default.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cxone_sim::{Sim, SimConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 64;
const GUESTS: u32 = 5_000;
const WARMUP: Duration = Duration::from_secs(1);
/// Windows per side, taken in turns.
const ROUNDS: u32 = 5;

fn peer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers")
}

fn peer_available() -> bool {
    peer_dir().join("guest_service_seed.py").exists()
        && Command::new("python3")
            .args(["-c", "import flask, requests, gunicorn"])
            .status()
            .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// USER_HZ on Linux: the unit of the CPU times in /proc.
const TICK: f64 = 100.0;

/// The parent and the user+system CPU ticks of `/proc/<pid>/stat` (`pid` may be "self").
fn proc_stat(pid: &str) -> Option<(u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = s.rsplit_once(") ")?.1.split_whitespace().collect();
    let ppid: u32 = f.get(1)?.parse().ok()?;
    let cpu: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((ppid, cpu))
}

/// user+system CPU seconds of `pid` and all its descendants.
fn cpu_seconds(root: u32) -> f64 {
    let mut total = 0u64;
    let mut family = vec![root];
    let mut i = 0;
    let stats: Vec<(u32, u32, u64)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (ppid, cpu) = proc_stat(&pid.to_string())?;
            Some((pid, ppid, cpu))
        })
        .collect();
    while i < family.len() {
        let p = family[i];
        for (pid, ppid, cpu) in &stats {
            if *pid == p {
                total += cpu;
            }
            if *ppid == p && !family.contains(pid) {
                family.push(*pid);
            }
        }
        i += 1;
    }
    total as f64 / TICK
}

/// user+system CPU seconds of this process alone: the emulator and the load generator,
/// which share the two cores with the server measured.
fn own_cpu_seconds() -> f64 {
    proc_stat("self").map_or(0, |(_, cpu)| cpu) as f64 / TICK
}

struct Outcome {
    requests: u64,
    non_200: u64,
    latencies_us: Vec<u32>,
}

/// One keep-alive connection sending requests until `stop`; reconnects when the server
/// closes (gunicorn's sync workers close after every response).
async fn connection(
    addr: String,
    auth: Option<String>,
    n: usize,
    stop: Arc<AtomicBool>,
    record: Arc<AtomicBool>,
) -> Outcome {
    let mut out = Outcome {
        requests: 0,
        non_200: 0,
        latencies_us: Vec::with_capacity(200_000),
    };
    let mut i = n as u32;
    let mut stream: Option<TcpStream> = None;
    let mut buf = vec![0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        i = i.wrapping_add(CONNECTIONS as u32);
        let guest = i % GUESTS + 1;
        let body = format!(
            "{{\"guest_id\":\"g-{guest:06}\",\"user_identifier\":\"Person.{guest}@Example.com\"}}"
        );
        let auth_line = auth
            .as_ref()
            .map(|k| format!("Authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "POST /api/update-guest-attributes HTTP/1.1\r\nHost: {addr}\r\n{auth_line}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let started = Instant::now();
        let mut s = match stream.take() {
            Some(s) => s,
            None => match TcpStream::connect(&addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    s
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        if s.write_all(req.as_bytes()).await.is_err() {
            continue; // closed under us: reconnect and resend
        }
        // Read the head, then Content-Length bytes of body.
        let mut have = 0usize;
        let mut parsed: Option<(usize, usize, u16, bool)> = None; // head end, body len, status, close
        let mut ok = true;
        loop {
            if let Some((head, len, _, _)) = parsed
                && have >= head + len
            {
                break;
            }
            if have == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            match s.read(&mut buf[have..]).await {
                Ok(0) | Err(_) => {
                    ok = false;
                    break;
                }
                Ok(k) => have += k,
            }
            if parsed.is_none()
                && let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n")
            {
                let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let lower = head.to_ascii_lowercase();
                let len = lower
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let close = lower.contains("connection: close");
                parsed = Some((end + 4, len, status, close));
            }
        }
        let Some((_, _, status, close)) = parsed.filter(|_| ok) else {
            continue;
        };
        if record.load(Ordering::Relaxed) {
            out.requests += 1;
            if status != 200 {
                out.non_200 += 1;
            }
            out.latencies_us
                .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
        if !close {
            stream = Some(s);
        }
    }
    out
}

/// What one side did in one measured window.
#[derive(Default)]
struct Sample {
    requests: u64,
    non_200: u64,
    latencies_us: Vec<u32>,
    cpu_secs: f64,
    /// This process's CPU in the window: the emulator and the load generator.
    bench_cpu_secs: f64,
    secs: f64,
}

impl Sample {
    fn add(&mut self, o: Sample) {
        self.requests += o.requests;
        self.non_200 += o.non_200;
        self.latencies_us.extend(o.latencies_us);
        self.cpu_secs += o.cpu_secs;
        self.bench_cpu_secs += o.bench_cpu_secs;
        self.secs += o.secs;
    }

    fn figures(mut self) -> Figures {
        let lat = &mut self.latencies_us;
        lat.sort_unstable();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0) as f64
                / 1000.0
        };
        Figures {
            rps: self.requests as f64 / self.secs.max(1e-9),
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            cpu_ms_per_req: self.cpu_secs * 1000.0 / self.requests.max(1) as f64,
            bench_cpu_ms_per_req: self.bench_cpu_secs * 1000.0 / self.requests.max(1) as f64,
            requests: self.requests,
            non_200: self.non_200,
        }
    }
}

struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_ms_per_req: f64,
    bench_cpu_ms_per_req: f64,
    requests: u64,
    non_200: u64,
}

/// One measured window against the server at `addr`, after a warm-up.
async fn load(addr: &str, auth: Option<String>, server_pid: u32, secs: f64) -> Sample {
    let stop = Arc::new(AtomicBool::new(false));
    let record = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|n| {
            tokio::spawn(connection(
                addr.to_string(),
                auth.clone(),
                n,
                stop.clone(),
                record.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(WARMUP).await;
    let cpu0 = cpu_seconds(server_pid);
    let own0 = own_cpu_seconds();
    let t0 = Instant::now();
    record.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    record.store(false, Ordering::Relaxed);
    let mut sample = Sample {
        secs: t0.elapsed().as_secs_f64(),
        cpu_secs: cpu_seconds(server_pid) - cpu0,
        bench_cpu_secs: own_cpu_seconds() - own0,
        ..Default::default()
    };
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let o = t.await.unwrap();
        sample.requests += o.requests;
        sample.non_200 += o.non_200;
        sample.latencies_us.extend(o.latencies_us);
    }
    sample
}

fn wait_listening(addr: &str, child: &mut Child) {
    let t = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if let Ok(Some(s)) = child.try_wait() {
            panic!("the server at {addr} exited: {s}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{addr} never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn row(name: &str, f: &Figures) {
    println!(
        "{name:<28} {:>10.0} {:>9.2} {:>9.2} {:>12.3} {:>12.3} {:>10} {:>8}",
        f.rps, f.p50_ms, f.p99_ms, f.cpu_ms_per_req, f.bench_cpu_ms_per_req, f.requests, f.non_200
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let seconds: u64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = rt
        .block_on(Sim::start(SimConfig {
            guests: GUESTS,
            rate_limit: None,
            ..Default::default()
        }))
        .unwrap();
    let creds = sim.credentials();
    println!(
        "serve bench: {CONNECTIONS} connections, {seconds} s measured per side in {ROUNDS} turns, each after {} s warm-up, emulator at {} (no rate limit, {GUESTS} guests)",
        WARMUP.as_secs(),
        sim.base_url()
    );

    // cxguard serve, configured as a user would.
    let dir = tempfile::tempdir().unwrap();
    let (api_key, sha256) = server::generate_api_key().unwrap();
    std::fs::write(
        dir.path().join("cxguard.toml"),
        format!(
            "[identity]\nkey = {{ id = \"bench-id\", env = \"BENCH_IDENTITY_KEY\" }}\ndefault_region = \"US\"\n[server]\nrate_per_key = 1000000\nburst = 1000000\napi_keys = [{{ id = \"bench\", sha256 = \"{sha256}\" }}]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // The peer logs no access lines (gunicorn's default); `--with-logs` keeps ours on.
    let quiet = if args.iter().any(|a| a == "--with-logs") {
        "-v"
    } else {
        "-q"
    };
    let mut serve = Command::new(env!("CARGO_BIN_EXE_cxguard"))
        .args([quiet, "serve", "--listen", &addr])
        .current_dir(dir.path())
        .env("CXGUARD_BASE_URL", sim.base_url())
        .env("CXGUARD_CLIENT_ID", &creds.client_id)
        .env("CXGUARD_CLIENT_SECRET", &creds.client_secret)
        .env("CXGUARD_HOME", dir.path().join("home"))
        .env(
            "BENCH_IDENTITY_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        )
        .env_remove("CXGUARD_CONFIG")
        .env_remove("CXGUARD_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(&addr, &mut serve);
    eprintln!("cxguard serve pid {}", serve.id());

    let mut peer = if args.iter().any(|a| a == "--only-ours") {
        None
    } else if peer_available() {
        let port = free_port();
        let paddr = format!("127.0.0.1:{port}");
        let mut g = Command::new("python3")
            .args([
                "-m",
                "gunicorn",
                "-w",
                "2",
                "-b",
                &paddr,
                "--chdir",
                &peer_dir().display().to_string(),
                "--log-level",
                "warning",
                "guest_service_seed:app",
            ])
            .env("CXONE_BASE_URL", sim.base_url())
            .env("CXONE_CLIENT_ID", &creds.client_id)
            .env("CXONE_CLIENT_SECRET", &creds.client_secret)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_listening(&paddr, &mut g);
        Some((g, paddr))
    } else {
        eprintln!(
            "peer skipped: needs python3 with flask, requests and gunicorn (pip install flask requests gunicorn)"
        );
        None
    };

    // The two sides take turns, ROUNDS windows each, so a machine whose speed drifts
    // during the run (seen: 1.5x within minutes) moves both figures alike and cannot
    // bias the ratio. Both servers stay up; the idle one uses no CPU.
    let window = seconds as f64 / ROUNDS as f64;
    let (mut ours, mut theirs) = (Sample::default(), Sample::default());
    for _ in 0..ROUNDS {
        ours.add(rt.block_on(load(&addr, Some(api_key.clone()), serve.id(), window)));
        if let Some((g, paddr)) = &peer {
            theirs.add(rt.block_on(load(paddr, None, g.id(), window)));
        }
    }
    stop(serve);
    let ours = ours.figures();
    let peer = peer.take().map(|(g, _)| {
        stop(g);
        theirs.figures()
    });

    println!();
    println!(
        "{:<28} {:>10} {:>9} {:>9} {:>12} {:>12} {:>10} {:>8}",
        "server", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "bench ms/req", "requests", "non-200"
    );
    row("cxguard serve", &ours);
    if let Some(p) = &peer {
        row("peer: Flask, gunicorn -w 2", p);
        println!();
        let tput = ours.rps / p.rps.max(1e-9);
        let p99 = ours.p99_ms / p.p99_ms.max(1e-9);
        println!(
            "throughput: {tput:.1}× the peer (target ≥ 20×) {}",
            if tput >= 20.0 { "MET" } else { "MISSED" }
        );
        println!(
            "p99: {p99:.3} of the peer's (target ≤ 0.1) {}",
            if p99 <= 0.1 { "MET" } else { "MISSED" }
        );
        println!(
            "CPU per request: {:.2}× the peer's",
            ours.cpu_ms_per_req / p.cpu_ms_per_req.max(1e-9)
        );
    }
    if let Some(path) = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1))
    {
        let fig = |f: &Figures| {
            serde_json::json!({
                "rps": f.rps, "p50Ms": f.p50_ms, "p99Ms": f.p99_ms,
                "cpuMsPerReq": f.cpu_ms_per_req, "benchCpuMsPerReq": f.bench_cpu_ms_per_req,
                "requests": f.requests, "non200": f.non_200,
            })
        };
        let v = serde_json::json!({
            "withLogs": args.iter().any(|a| a == "--with-logs"),
            "ours": fig(&ours),
            "peer": peer.as_ref().map(fig),
        });
        std::fs::write(path, v.to_string()).unwrap();
    }
    rt.block_on(sim.stop());
}
