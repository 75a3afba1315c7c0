//! `digital anonymize` bound by CXone's DFO update budget (spec-real §4.1): the
//! emulator's budgets scaled down so the job is bound by them (every case closed, a
//! `--closed-before` over all 150 cases and their 600 messages, both parts removed:
//! 1,200 writes), run twice in one process:
//!
//! - **paced**: `[tenant.limits]` set to the scaled budgets, as an operator sets them to
//!   their tenant's: the share of the update budget used, and the share of requests
//!   answered 429;
//! - **baseline**: the same job with the published budgets (the limits not set), so the
//!   client sends faster than this tenant accepts and recovers by retrying its 429s —
//!   the tutorials' approach to a throttle.
//!
//! Run: `cargo bench -p cxguard --bench digital` (`--json FILE` also writes the figures).

use std::path::Path;
use std::process::{Command, Stdio};

use cxone_sim::{Sim, SimConfig, SimHandle};
use serde_json::Value;

/// The emulator's DFO budgets × this: 1,000,000 updates/h → 200/s, a case's burst 180.
const SCALE: f64 = 0.72;

const POLICY: &str = r#"[digital]
messages = { content = "remove", author_name = "remove", reason = "TTL" }
"#;

fn config(sim: &SimHandle, dir: &Path, paced: bool) {
    let c = sim.credentials();
    std::fs::write(
        dir.join("access-key.json"),
        serde_json::json!({"accessKeyId": c.cxone_access_key_id, "accessKeySecret": c.cxone_access_key_secret})
            .to_string(),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("access-key.json"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let limits = if paced {
        format!(
            "[tenant.limits]\ndfo_updates_per_hour = {}\ndfo_contact_burst = {}\ndfo_contact_per_minute = {}\ndfo_reads_per_hour = {}\n",
            (1_000_000.0 * SCALE) as u32,
            (250.0 * SCALE) as u32,
            ((17.0 * SCALE) as u32).max(1),
            (120_000.0 * SCALE) as u32,
        )
    } else {
        String::new()
    };
    std::fs::write(
        dir.join("cxguard.toml"),
        format!(
            "[tenant]\napi = \"cxone\"\nissuer = \"{}\"\nclient_id = \"{}\"\naccess_key_file = \"access-key.json\"\n{limits}",
            sim.cxone_issuer(),
            c.cxone_client_id
        ),
    )
    .unwrap();
    std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
}

/// One run on a fresh emulator: its JSON output and the emulator's counts.
fn run(paced: bool) -> (Value, Value) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt
        .block_on(Sim::start(SimConfig {
            dfo_budget_scale: SCALE,
            ..SimConfig::default()
        }))
        .unwrap();
    sim.control()
        .configure(serde_json::json!({"closeAllCases": true}))
        .unwrap();
    let (home, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    config(&sim, dir.path(), paced);
    let c = sim.credentials();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cxguard"))
        .args([
            "--output",
            "json",
            "digital",
            "anonymize",
            "--policy",
            "policy.toml",
            "--closed-before",
            &now,
        ])
        .current_dir(dir.path())
        .env("CXGUARD_CONFIG", "cxguard.toml")
        .env("CXGUARD_CLIENT_ID", &c.cxone_client_id)
        .env("CXGUARD_CLIENT_SECRET", &c.cxone_client_secret)
        .env("CXGUARD_HOME", home.path())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "digital anonymize failed");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let state = sim.control().state()["real"].clone();
    (v, state)
}

fn main() {
    let json_out = std::env::args().skip_while(|a| a != "--json").nth(1);
    let mut figures = serde_json::Map::new();
    println!(
        "digital anonymize, 150 closed cases, DFO budgets × {SCALE} (1,000,000 updates/h → 200/s)"
    );
    println!("| run | writes | seconds | % of update budget | % of requests 429 | retries |");
    println!("|---|---|---|---|---|---|");
    for (name, paced) in [
        ("paced ([tenant.limits] = the tenant's)", true),
        ("baseline (published limits, 429s retried)", false),
    ] {
        let (v, state) = run(paced);
        let (r, b) = (&v["report"], &v["budget"]);
        let removals = state["dfo"]["removals"].as_object().map_or(0, |m| m.len());
        assert_eq!(removals, 600, "every message of the 150 cases removed");
        // Against the tenant's real budget (the baseline's own figure is against the
        // published one it was told).
        let rate = 1_000_000.0 * SCALE / 3600.0;
        let seconds = r["seconds"].as_f64().unwrap_or(0.0);
        let writes = b["writes"].as_f64().unwrap_or(0.0);
        let of_budget = writes * 100.0 / (rate * seconds + rate);
        println!(
            "| {name} | {writes} | {seconds:.2} | {of_budget:.1} | {:.2} | {} |",
            b["percent429"].as_f64().unwrap_or(0.0),
            r["retries"]
        );
        figures.insert(
            if paced { "paced" } else { "baseline" }.into(),
            serde_json::json!({
                "writes": b["writes"], "seconds": r["seconds"],
                "percentOfBudget": of_budget, "reportedPercentOfBudget": b["percentOfBudget"],
                "percent429": b["percent429"],
                "retries": r["retries"], "messagesRemoved": removals,
            }),
        );
    }
    if let Some(f) = json_out {
        std::fs::write(f, serde_json::to_string_pretty(&figures).unwrap()).unwrap();
    }
}
