//! `cxguard contacts anonymize` as a user runs it: bad input, and a job killed five times.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use cxone::models::Contact;
use guard::anonymize::{Policy, transform};

use crate::harness::Harness;
use crate::{stderr, stdout};

const POLICY: &str = r#"default_region = "US"
[keys]
k = { id = "it-key-1", env = "IT_ANON_KEY" }
[fields]
firstName = { op = "erase" }
lastName = { op = "mask", keep_first = 1 }
email = { op = "pseudonymize", key = "k" }
phone = { op = "encrypt", key = "k" }
"customFields.notes" = { op = "replace", value = "[redacted]" }
"#;

fn key() -> String {
    base64::engine::general_purpose::STANDARD.encode([11u8; 32])
}

/// The harness, plus the consent webhooks received (by `webhook-id`).
struct Setup {
    h: Harness,
    hooks: Arc<Mutex<BTreeMap<String, u32>>>,
}

impl std::ops::Deref for Setup {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.h
    }
}

fn setup(contacts: u32) -> Setup {
    let h = Harness::start(cxone_sim::SimConfig {
        contacts,
        ..Default::default()
    })
    .env("IT_ANON_KEY", &key())
    .env(
        "IT_WEBHOOK_SECRET",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    let hooks = Arc::new(Mutex::new(BTreeMap::new()));
    let h2 = hooks.clone();
    let url = h.rt.block_on(async move {
        let app = axum::Router::new().route(
            "/consent",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let seen = h2.clone();
                async move {
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    *seen.lock().unwrap().entry(id).or_insert(0) += 1;
                    axum::http::StatusCode::OK
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        format!("http://{addr}/consent")
    });
    std::fs::write(h.dir.path().join("policy.toml"), POLICY).unwrap();
    std::fs::write(
        h.dir.path().join("cxguard.toml"),
        format!("[webhooks.consent]\nurl = \"{url}\"\nsecret_env = \"IT_WEBHOOK_SECRET\"\n[outbox]\nschedule_secs = [0, 1, 1, 1]\n"),
    )
    .unwrap();
    Setup { h, hooks }
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let s = setup(100);
    let write = |name: &str, text: &str| {
        let p = s.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let malformed = write("bad.toml", "[fields]\nemail = { op = \"hash\" }\n");
    let o = s.run(&["contacts", "anonymize", "--policy", &malformed, "--all"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad.toml:2: fields.email: unknown operator \"hash\""),
        "{}",
        stderr(&o)
    );

    let short = write(
        "short.toml",
        "[keys]\nk = { id = \"k\", env = \"SHORT_KEY\" }\n[fields]\nemail = { op = \"pseudonymize\", key = \"k\" }\n",
    );
    let mut cmd = s.command(&["contacts", "anonymize", "--policy", &short, "--all"]);
    let o = cmd
        .env(
            "SHORT_KEY",
            base64::engine::general_purpose::STANDARD.encode([1u8; 16]),
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(65));
    assert!(
        stderr(&o).contains("16 bytes; at least 32"),
        "{}",
        stderr(&o)
    );

    let o = s.run(&[
        "contacts",
        "anonymize",
        "--policy",
        "policy.toml",
        "--updated-before",
        "2999-01-01",
    ]);
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains("in the future"), "{}", stderr(&o));

    let empty = write("ids.txt", "# no ids yet\n\n");
    let o = s.run(&[
        "contacts",
        "anonymize",
        "--policy",
        "policy.toml",
        "--ids",
        &empty,
    ]);
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains("selection is empty"), "{}", stderr(&o));

    let o = s.run(&["contacts", "anonymize", "--policy", "policy.toml"]);
    assert_eq!(o.status.code(), Some(64), "a selection is required");

    assert!(
        !s.home.path().join("ledger.sqlite").exists(),
        "no ledger was written"
    );
    assert!(
        s.sim.control().mutations("").is_empty(),
        "no contact was touched"
    );
}

#[test]
fn dry_run_then_ids_with_an_unknown_one_then_reveal() {
    let s = setup(100);
    let o = s.run(&[
        "contacts",
        "anonymize",
        "--policy",
        "policy.toml",
        "--all",
        "--dry-run",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("100 contacts examined"),
        "{}",
        stdout(&o)
    );
    assert!(s.sim.control().mutations("").is_empty());

    std::fs::write(s.dir.path().join("ids.txt"), "c-0000003\nc-0000404\n").unwrap();
    let original: Contact =
        serde_json::from_value(s.sim.control().contact("c-0000003").unwrap()).unwrap();
    let o = s.run(&[
        "contacts",
        "anonymize",
        "--policy",
        "policy.toml",
        "--ids",
        "ids.txt",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a failure makes the exit code non-zero"
    );
    assert!(
        stderr(&o).contains("c-0000404: no such contact"),
        "the unknown id is listed: {}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("1 changed"), "{}", stdout(&o));

    if let Some(phone) = original.phone {
        let o = s.run(&[
            "contacts",
            "reveal",
            "c-0000003",
            "--field",
            "phone",
            "--policy",
            "policy.toml",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o).trim(), phone);
    }
}

#[test]
fn a_job_killed_five_times_finishes_with_each_contact_anonymized_once() {
    let s = setup(5000);
    let originals: Vec<Contact> = (1..=5000)
        .map(|i| {
            serde_json::from_value(s.sim.control().contact(&format!("c-{i:07}")).unwrap()).unwrap()
        })
        .collect();
    s.sim
        .control()
        .configure(serde_json::json!({"faultRate": 0.05, "resetRate": 0.02}))
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    let args = [
        "contacts",
        "anonymize",
        "--policy",
        "policy.toml",
        "--all",
        "--page-size",
        "200",
    ];
    for _ in 0..5 {
        let mut child = s
            .command(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.u64(100..500)));
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
    }
    let done_before = s.sim.control().mutations("contact/").len();
    assert!(
        done_before > 0 && done_before < 5000,
        "the kills landed mid-job ({done_before} done)"
    );
    let o = s.run(&args);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("(resumed)"),
        "the rerun resumed the job: {}",
        stdout(&o)
    );

    s.sim
        .control()
        .configure(serde_json::json!({"faultRate": 0.0, "resetRate": 0.0}))
        .unwrap();
    let env = |k: &str| (k == "IT_ANON_KEY").then(key);
    let policy = Policy::parse(POLICY, Path::new("policy.toml"), &env).unwrap();
    let mutations = s.sim.control().mutations("contact/");
    let mut changed = 0;
    for o in &originals {
        let now: Contact = serde_json::from_value(s.sim.control().contact(&o.id).unwrap()).unwrap();
        let plan = transform::plan(&policy, o, &BTreeMap::new()).unwrap();
        if plan.is_noop() {
            continue;
        }
        changed += 1;
        assert_eq!(
            mutations.get(&format!("contact/{}", o.id)),
            Some(&1),
            "{}: one PATCH effect",
            o.id
        );
        assert_eq!(now.first_name, None);
        if let (Some(before), Some(after)) = (&o.phone, &now.phone) {
            assert_eq!(
                &transform::decrypt_digits(
                    policy.key("k"),
                    transform::FpeVersion::V2,
                    &o.id,
                    "phone",
                    after
                )
                .unwrap(),
                before,
                "{}: encrypted once",
                o.id
            );
        }
        if let Some(e) = &now.email {
            assert!(guard::pseudonym::is_pseudonym(e));
        }
    }

    let l = s.ledger();
    let entries =
        s.rt.block_on(l.entries(&ledger::Filter {
            operation: Some("contact.anonymize".into()),
            ..Default::default()
        }))
        .unwrap();
    let targets: HashSet<_> = entries.iter().map(|e| e.target.clone()).collect();
    assert_eq!(targets.len(), 5000);
    assert_eq!(
        entries.len(),
        5000,
        "one audit entry per contact across all runs"
    );
    // A killed run may have held events under its deliverer's lease (60 s).
    let o = s.run(&["outbox", "deliver", "--until-empty", "--max-wait", "90"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let status = s.rt.block_on(l.outbox_status()).unwrap();
    assert_eq!(
        status.delivered, changed,
        "one consent event per anonymized contact"
    );
    assert_eq!(
        s.hooks.lock().unwrap().len() as u64,
        changed,
        "the receiver got each one"
    );
    let o = s.run(&["audit", "verify"]);
    assert!(o.status.success(), "{}", stdout(&o));
    let o = s.run(&["jobs", "list", "--output", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        jobs.as_array().unwrap().len(),
        1,
        "one job, resumed each time"
    );
    assert_eq!(jobs[0]["status"], "done");
}

/// Runs `cxguard args…` under a pseudo-terminal (`script`), so its progress is drawn,
/// and returns everything it wrote there.
fn under_a_terminal(s: &Setup, args: &[&str]) -> String {
    let mut line = String::from(env!("CARGO_BIN_EXE_cxguard"));
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    let o = s
        .command(&[])
        .get_envs()
        .fold(std::process::Command::new("script"), |mut c, (k, v)| {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
            c
        })
        .args(["-qefc", &line, "/dev/null"])
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

#[test]
fn progress_is_a_spinner_without_eta_for_a_listing_and_a_bar_with_eta_for_ids() {
    let s = setup(1500);
    s.sim
        .control()
        .configure(serde_json::json!({"latencyMs": 2}))
        .unwrap();
    let out = under_a_terminal(
        &s,
        &[
            "contacts",
            "anonymize",
            "--policy",
            "policy.toml",
            "--all",
            "--concurrency",
            "2",
        ],
    );
    assert!(out.contains(" contacts  "), "progress was drawn: {out:?}");
    assert!(!out.contains("ETA"), "no ETA for an unknown total: {out:?}");
    assert!(
        out.contains(" changed, ") && out.contains(" rate-limited, "),
        "{out:?}"
    );
    let rates: Vec<&str> = out
        .split(|c: char| c.is_whitespace())
        .filter(|w| w.ends_with("/s") && w.len() > 2)
        .collect();
    assert!(!rates.is_empty(), "{out:?}");
    for r in &rates {
        assert!(
            r.trim_end_matches("/s")
                .chars()
                .all(|c| c.is_ascii_digit() || c == ','),
            "a whole-number rate: {r}"
        );
    }

    // Known total: the ids of an erasure request.
    let ids: String = (1..=1200).map(|i| format!("c-{i:07}\n")).collect();
    s.write("ids.txt", &ids);
    s.sim
        .control()
        .configure(serde_json::json!({"latencyMs": 3}))
        .unwrap();
    let out = under_a_terminal(
        &s,
        &[
            "contacts",
            "anonymize",
            "--policy",
            "policy.toml",
            "--ids",
            "ids.txt",
            "--concurrency",
            "2",
        ],
    );
    assert!(
        out.contains("ETA"),
        "a bar with an ETA for a known total: {out:?}"
    );
    assert!(out.contains("/1,200 contacts"), "{out:?}");
}

#[test]
fn the_report_fits_100_columns_and_its_counts_add_up() {
    let s = setup(400);
    let o = s.run(&["contacts", "anonymize", "--policy", "policy.toml", "--all"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(crate::assert_report_fits_and_adds_up(&out), 1, "{out}");
    let sum_line = out.lines().find(|l| l.contains(" contacts in ")).unwrap();
    assert!(
        sum_line.trim_start().starts_with("400 contacts"),
        "{sum_line}"
    );
    assert!(out.contains("webhook events sent by this run: "), "{out}");
}
