//! cxguard's anonymizer beside the tutorial's (../shared/peers/anonymize_seed.py), each
//! against its own emulator with the same settings, in one run:
//!
//! (a) rate-limited at 100 req/s: achieved PATCH rate as % of the limit, and 429s as % of
//!     requests;
//! (b) unthrottled, 20,000 contacts: contacts/s, and cxguard ÷ peer;
//! (c) peak RSS of cxguard while processing 1,000,000 contacts (`--quick`: 100,000).
//!
//! (d), transform throughput per operator, is `cargo bench -p guard --bench transforms`.
//!
//! Run: `cargo bench -p cxguard --bench anonymize` (needs python3 with httpx for the peer).
//! `--only-bulk` runs (b) only; `--json FILE` also writes the figures as JSON (for
//! `bench/compare`), with CPU per contact and the ledger's bytes per contact (per table).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cxone_sim::{Sim, SimConfig, SimHandle};
use serde_json::Value;

const POLICY: &str = r#"default_region = "US"
[keys]
k = { id = "bench-key", env = "BENCH_KEY" }
[fields]
firstName = { op = "erase" }
lastName = { op = "erase" }
email = { op = "pseudonymize", key = "k" }
phone = { op = "mask", keep_first = 3 }
"#;

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers/anonymize_seed.py")
}

fn peer_available() -> bool {
    peer_script().exists()
        && Command::new("python3")
            .args(["-c", "import httpx"])
            .status()
            .is_ok_and(|s| s.success())
}

fn cxguard(sim: &SimHandle, home: &Path, dir: &Path, extra: &[&str]) -> Command {
    let c = sim.credentials();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cxguard"));
    cmd.args([
        "--output",
        "json",
        "contacts",
        "anonymize",
        "--policy",
        "policy.toml",
        "--all",
    ])
    .args(extra)
    .current_dir(dir)
    .env("CXGUARD_BASE_URL", sim.base_url())
    .env("CXGUARD_CLIENT_ID", &c.client_id)
    .env("CXGUARD_CLIENT_SECRET", &c.client_secret)
    .env("CXGUARD_HOME", home)
    .env("BENCH_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    cmd
}

/// What one cxguard run cost.
struct Run {
    report: Value,
    peak_rss_mib: f64,
    /// User + system CPU seconds of the cxguard process.
    cpu_s: f64,
    /// The ledger's size after the run (WAL checkpointed), and per table.
    ledger_bytes: u64,
    ledger_tables: Vec<(String, u64)>,
}

/// user + system CPU of `pid` in seconds, from /proc (clock ticks of 1/100 s).
fn cpu_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The ledger's bytes in use after a checkpoint (its pages less the free ones), in all
/// and per table and index.
fn ledger_size(home: &Path) -> (u64, Vec<(String, u64)>) {
    use sqlx::{Connection as _, Row as _};
    let file = home.join("ledger.sqlite");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut c)
            .await
            .unwrap();
        let tables = sqlx::query(
            "SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name ORDER BY bytes DESC",
        )
        .fetch_all(&mut c)
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| (r.get::<String, _>("name"), r.get::<i64, _>("bytes") as u64))
                .collect()
        })
        .unwrap_or_default();
        // In use: the file less its free pages. A finished job's compacted journal rows
        // leave free pages that the next job's rows fill before the file grows.
        let mut pragma = [0u64; 3];
        for (v, q) in pragma.iter_mut().zip([
            "PRAGMA page_count",
            "PRAGMA freelist_count",
            "PRAGMA page_size",
        ]) {
            *v = sqlx::query(q)
                .fetch_one(&mut c)
                .await
                .map(|r| r.get::<i64, _>(0) as u64)
                .unwrap_or(0);
        }
        let [pages, free, page] = pragma;
        c.close().await.ok();
        ((pages - free) * page, tables)
    })
}

/// Runs cxguard to completion; returns its report, peak RSS, CPU and ledger size.
fn run_cxguard(sim: &SimHandle, extra: &[&str]) -> Run {
    let (home, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(dir.path().join("policy.toml"), POLICY).unwrap();
    let mut child = cxguard(sim, home.path(), dir.path(), extra)
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak_kb = 0u64;
    let mut cpu_s = 0.0f64;
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        use std::io::Read;
        let mut r = stdout;
        r.read_to_string(&mut s).unwrap();
        s
    });
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kb: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            peak_kb = peak_kb.max(kb);
        }
        if let Some(c) = cpu_of(pid) {
            cpu_s = c;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = reader.join().unwrap();
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("cxguard's report is JSON ({e}): {out}"));
    let (ledger_bytes, ledger_tables) = ledger_size(home.path());
    Run {
        report: v["report"].clone(),
        peak_rss_mib: peak_kb as f64 / 1024.0,
        cpu_s,
        ledger_bytes,
        ledger_tables,
    }
}

fn run_peer(sim: &SimHandle) -> Value {
    let c = sim.credentials();
    let out = Command::new("python3")
        .arg(peer_script())
        .args([
            "--base-url",
            &sim.base_url(),
            "--client-id",
            &c.client_id,
            "--client-secret",
            &c.client_secret,
        ])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only_bulk = args.iter().any(|a| a == "--only-bulk");
    let mut figures = serde_json::json!({});
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let peer = peer_available();
    if !peer {
        println!(
            "peer skipped: needs {} and python3 with httpx",
            peer_script().display()
        );
    }
    let start = |contacts: u32, rate: Option<u32>| {
        rt.block_on(Sim::start(SimConfig {
            contacts,
            rate_limit: rate,
            webchat_rate_limit: rate.map(|r| r.min(10)),
            ..Default::default()
        }))
        .unwrap()
    };

    // (a) rate-limited
    if !only_bulk {
        let n_a = if quick { 1000 } else { 2000 };
        println!("(a) rate limit 100 req/s, {n_a} contacts");
        let sim = start(n_a, Some(100));
        let t = Instant::now();
        let r = run_cxguard(&sim, &[]).report;
        let secs = t.elapsed().as_secs_f64();
        let requests = r["requests"].as_f64().unwrap_or(0.0);
        let rate = r["patchesPerS"].as_f64().unwrap_or(0.0);
        println!(
            "  cxguard  PATCH rate {rate:>6.1}/s = {:>5.1}% of the limit; 429s {} = {:.2}% of {requests} requests; {secs:.1} s",
            rate,
            r["http429"],
            100.0 * r["http429"].as_f64().unwrap_or(0.0) / requests.max(1.0),
        );
        drop(sim);
        if peer {
            let sim = start(n_a, Some(100));
            let p = run_peer(&sim);
            let ok = p["succeeded"].as_f64().unwrap_or(0.0);
            let secs = p["seconds"].as_f64().unwrap_or(1.0);
            let state = sim.control().state();
            let requests = state["counters"]["requests"].as_f64().unwrap_or(1.0);
            let refused = state["counters"]["rateLimited"].as_f64().unwrap_or(0.0);
            println!(
                "  peer     PATCH rate {:>6.1}/s = {:>5.1}% of the limit; 429s {refused} = {:.2}% of {requests} requests; {ok} of {n_a} succeeded, {} failed",
                ok / secs,
                ok / secs,
                100.0 * refused / requests,
                p["failed"]
            );
        }
    }

    // (b) unthrottled
    let n_b = if quick { 5000 } else { 20_000 };
    println!("(b) unthrottled, {n_b} contacts");
    let sim = start(n_b, None);
    let run = run_cxguard(&sim, &["--concurrency", "64", "--page-size", "1000"]);
    let r = &run.report;
    let ours = r["contactsPerS"].as_f64().unwrap_or(0.0);
    let n = r["processed"].as_f64().unwrap_or(1.0).max(1.0);
    println!(
        "  cxguard  {ours:>8.0} contacts/s ({} changed, {} failed); CPU {:.3} ms/contact; ledger {:.0} bytes/contact",
        r["changed"],
        r["failed"],
        1000.0 * run.cpu_s / n,
        run.ledger_bytes as f64 / n
    );
    for (t, b) in run.ledger_tables.iter().take(8) {
        println!("           {t:<28} {:>7.0} bytes/contact", *b as f64 / n);
    }
    figures["bulk"] = serde_json::json!({
        "contacts": n,
        "contactsPerS": ours,
        "cpuMsPerContact": 1000.0 * run.cpu_s / n,
        "ledgerBytesPerContact": run.ledger_bytes as f64 / n,
        "ledgerTables": run.ledger_tables.iter().map(|(t, b)| (t.clone(), *b as f64 / n)).collect::<std::collections::BTreeMap<_, _>>(),
    });
    drop(sim);
    if peer {
        let sim = start(n_b, None);
        let p = run_peer(&sim);
        let theirs = p["contacts_per_s"].as_f64().unwrap_or(0.0);
        println!(
            "  peer     {theirs:>8.0} contacts/s ({} succeeded, {} failed)",
            p["succeeded"], p["failed"]
        );
        println!("  ratio    {:>8.1}x", ours / theirs.max(1e-9));
        figures["bulk"]["peerContactsPerS"] = serde_json::json!(theirs);
    }

    // (c) memory
    if !only_bulk {
        let n_c = if quick { 100_000 } else { 1_000_000 };
        println!("(c) peak RSS while processing {n_c} contacts");
        let sim = start(n_c, None);
        let t = Instant::now();
        let run = run_cxguard(&sim, &["--concurrency", "64", "--page-size", "1000"]);
        let (r, peak) = (&run.report, run.peak_rss_mib);
        figures["memory"] = serde_json::json!({"contacts": n_c, "peakRssMib": peak, "contactsPerS": r["contactsPerS"]});
        println!(
            "  cxguard  peak RSS {peak:.1} MiB; {} contacts in {:.0} s ({:.0}/s)",
            r["processed"],
            t.elapsed().as_secs_f64(),
            r["contactsPerS"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(path) = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1))
    {
        std::fs::write(path, figures.to_string()).unwrap();
    }
}
