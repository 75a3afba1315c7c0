//! `audit`, `jobs` and `outbox` against a ledger in a temporary CXGUARD_HOME.

use std::path::Path;

use serde_json::Value;

use crate::{cxguard, stderr, stdout, tmp};

/// Fills the default ledger of `home` with a finished job of `n` items and one pending
/// consent event, as a protection would.
fn fill(home: &Path, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use ledger::{
            Details, EventKind, ItemOutcome, JobStatus, KeySource, Ledger, NewEntry, NewEvent,
            NewJob, Outcome,
        };
        let url = format!("sqlite://{}", home.join("ledger.sqlite").display());
        let l = Ledger::open(&url, KeySource::File(home.join("audit-signing.key")))
            .await
            .unwrap()
            .with_checkpoint_every(5);
        let items: Vec<String> = (1..=n).map(|i| format!("c-{i:07}")).collect();
        let job = l
            .create_job(NewJob {
                id: "anonymize-test-1".into(),
                kind: "anonymize",
                actor: "tester".into(),
                params: Details::new(),
                items: items.clone(),
                fingerprint: None,
            })
            .await
            .unwrap();
        for (i, item) in items.iter().enumerate() {
            l.claim(&job, item).await.unwrap();
            let outcome = if i == 1 {
                ItemOutcome::Failed {
                    error: "HTTP 412 twice".into(),
                }
            } else {
                ItemOutcome::Done { result: None }
            };
            let entry = NewEntry::new(
                "tester",
                "contact.anonymize",
                item,
                Outcome::Success,
                Details::new().labels("fields", &["email"]),
            )
            .unwrap();
            let events = if i == 0 {
                vec![NewEvent::new(
                    EventKind::Consent,
                    "contact.anonymized",
                    Details::new().id("contact_id", item).unwrap(),
                )]
            } else {
                vec![]
            };
            l.settle(&job, item, outcome, vec![entry], events)
                .await
                .unwrap();
        }
        l.finish_job(
            &job,
            JobStatus::Failed,
            NewEntry::new(
                "tester",
                "job.finish",
                &job,
                Outcome::Failure,
                Details::new(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
        l.close().await;
    });
}

fn home_env(home: &Path) -> Vec<(&'static str, String)> {
    vec![("CXGUARD_HOME", home.display().to_string())]
}

fn run(args: &[&str], home: &Path, dir: &Path) -> std::process::Output {
    let env = home_env(home);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cxguard(args, &env, dir)
}

#[test]
fn audit_verify_show_export_and_public_key() {
    let (home, dir) = (tmp(), tmp());
    fill(home.path(), 8);
    let o = run(&["audit", "verify"], home.path(), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("audit log intact: 10 entries"),
        "{}",
        stdout(&o)
    );

    let o = run(
        &[
            "audit",
            "show",
            "--operation",
            "contact.*",
            "--target",
            "c-0000003",
            "--output",
            "json",
        ],
        home.path(),
        dir.path(),
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["target"], "c-0000003");

    let o = run(
        &["audit", "export", "--format", "jsonl", "--limit", "4"],
        home.path(),
        dir.path(),
    );
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[1]["prev_hash"], lines[0]["hash"]);

    let o = run(&["audit", "public-key"], home.path(), dir.path());
    let pubkey = dir.path().join("audit.pub");
    std::fs::write(&pubkey, stdout(&o)).unwrap();
    let o = cxguard(
        &["audit", "verify", "--public-key", pubkey.to_str().unwrap()],
        &[(
            "CXGUARD_STORE",
            &format!("sqlite://{}", home.path().join("ledger.sqlite").display()),
        )],
        dir.path(),
    );
    assert!(
        o.status.success(),
        "an auditor verifies with the public key alone: {}",
        stderr(&o)
    );

    let o = run(
        &["audit", "show", "--since", "last week"],
        home.path(),
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("--since"), "{}", stderr(&o));
}

#[test]
fn a_tampered_log_fails_verification_naming_the_entry() {
    let (home, dir) = (tmp(), tmp());
    fill(home.path(), 6);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!(
            "sqlite://{}",
            home.path().join("ledger.sqlite").display()
        ))
        .await
        .unwrap();
        sqlx::query("UPDATE audit_entries SET target = 'c-0000099' WHERE seq = 4")
            .execute(&mut c)
            .await
            .unwrap();
    });
    let o = run(&["audit", "verify"], home.path(), dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("BROKEN at entry 4"), "{}", stdout(&o));
    assert!(stderr(&o).contains("entry 4"), "{}", stderr(&o));
}

#[test]
fn jobs_list_and_show() {
    let (home, dir) = (tmp(), tmp());
    fill(home.path(), 4);
    let o = run(
        &["jobs", "list", "--output", "json"],
        home.path(),
        dir.path(),
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["id"], "anonymize-test-1");
    assert_eq!(
        (v[0]["done"].as_u64(), v[0]["failed"].as_u64()),
        (Some(3), Some(1))
    );
    let o = run(
        &["jobs", "show", "anonymize-test-1"],
        home.path(),
        dir.path(),
    );
    assert!(o.status.success());
    assert!(stdout(&o).contains("HTTP 412 twice"), "{}", stdout(&o));
    let o = run(&["jobs", "show", "nope"], home.path(), dir.path());
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("jobs list"), "{}", stderr(&o));
}

#[test]
fn outbox_status_deliver_with_no_endpoint_then_retry_and_purge() {
    let (home, dir) = (tmp(), tmp());
    fill(home.path(), 2);
    let o = run(
        &["outbox", "status", "--output", "json"],
        home.path(),
        dir.path(),
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"]["pending"], 1);
    // An endpoint that does not answer: the event waits for its next retry, and
    // --until-empty says so with exit 75 rather than 0.
    let secret = dir.path().join("consent.secret");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    std::fs::write(
        dir.path().join("cxguard.toml"),
        format!(
            "[webhooks.consent]\nurl = \"http://127.0.0.1:9/hook\"\nsecret_file = \"{}\"\n",
            secret.display()
        ),
    )
    .unwrap();
    let o = run(
        &["outbox", "deliver", "--until-empty", "--max-wait", "1"],
        home.path(),
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("1 event(s) still pending"),
        "{}",
        stderr(&o)
    );
    // Grouped by endpoint, type, status and error, with the command to run.
    let o = run(&["outbox", "status"], home.path(), dir.path());
    let out = stdout(&o);
    assert!(
        out.contains("outbox: 1 events = 1 pending + 0 delivered + 0 dead + 0 skipped"),
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.contains("contact.anonymized"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("consent") && row.contains("pending") && row.contains("cannot reach"),
        "{row}"
    );
    assert!(
        out.contains("cxguard outbox deliver --until-empty"),
        "{out}"
    );
    let o = run(
        &[
            "outbox",
            "list",
            "--status",
            "pending",
            "--type",
            "contact.anonymized",
            "--output",
            "json",
        ],
        home.path(),
        dir.path(),
    );
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let o = run(
        &["outbox", "list", "--status", "lost"],
        home.path(),
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    std::fs::remove_file(dir.path().join("cxguard.toml")).unwrap();
    // No [webhooks.consent] configured: recorded as skipped, not lost.
    let o = run(
        &["outbox", "deliver", "--until-empty"],
        home.path(),
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("skipped 1"), "{}", stdout(&o));
    let o = run(
        &["outbox", "status", "--output", "json"],
        home.path(),
        dir.path(),
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = v["skipped"][0]["id"].as_str().unwrap().to_string();
    assert!(
        v["skipped"][0]["lastError"]
            .as_str()
            .unwrap()
            .contains("[webhooks.consent]")
    );
    let o = run(&["outbox", "retry", &id], home.path(), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["outbox", "purge", "--delivered"], home.path(), dir.path());
    assert!(stdout(&o).contains("purged 0"), "{}", stdout(&o));
    let o = run(&["outbox", "new-secret"], home.path(), dir.path());
    assert!(stdout(&o).starts_with("whsec_"));
}

#[test]
fn webhook_config_errors_name_the_setting() {
    let (home, dir) = (tmp(), tmp());
    std::fs::write(dir.path().join("cxguard.toml"), "[webhooks.vault]\nurl = \"https://vault.example.com/hook\"\nsecret_env = \"NOT_SET_ANYWHERE\"\n").unwrap();
    let o = run(&["outbox", "deliver"], home.path(), dir.path());
    assert_eq!(o.status.code(), Some(78));
    assert!(
        stderr(&o).contains("webhooks.vault.secret_env") && stderr(&o).contains("NOT_SET_ANYWHERE"),
        "{}",
        stderr(&o)
    );
    std::fs::write(
        dir.path().join("cxguard.toml"),
        "[webhooks.kms]\nurl = \"ftp://kms.example.com\"\nsecret_env = \"X\"\n",
    )
    .unwrap();
    let o = run(&["outbox", "deliver"], home.path(), dir.path());
    assert_eq!(o.status.code(), Some(78));
    assert!(stderr(&o).contains("webhooks.kms.url"), "{}", stderr(&o));
}

#[test]
fn bad_store_settings_are_clear_errors() {
    let dir = tmp();
    let o = cxguard(
        &["jobs", "list"],
        &[("CXGUARD_STORE", "mysql://localhost/x")],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(78));
    assert!(stderr(&o).contains("unknown scheme"), "{}", stderr(&o));
    let o = cxguard(
        &["jobs", "list"],
        &[("CXGUARD_STORE", "postgres://u:pw-9f@127.0.0.1:1/x")],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(69));
    assert!(!stderr(&o).contains("pw-9f"), "{}", stderr(&o));
    let junk = dir.path().join("junk.sqlite");
    std::fs::write(&junk, b"definitely not sqlite, but precious").unwrap();
    let o = cxguard(
        &["jobs", "list"],
        &[("CXGUARD_STORE", &format!("sqlite://{}", junk.display()))],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(
        std::fs::read(&junk).unwrap(),
        b"definitely not sqlite, but precious"
    );
}

#[test]
fn an_old_ledger_opens_verifies_and_takes_new_appends() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ledger-0.1");
    let home = crate::tmp();
    let work = crate::tmp();
    // The appends come from a `--sim` rehearsal, which keeps its ledger under `sim/`.
    let data = home.path().join("sim");
    std::fs::create_dir(&data).unwrap();
    for f in ["ledger.sqlite", "audit-signing.key", "audit-anchor.json"] {
        let to = data.join(f);
        std::fs::copy(fixture.join(f), &to).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    for f in ["policy.toml", "ids.txt"] {
        std::fs::copy(fixture.join(f), work.path().join(f)).unwrap();
    }
    let key = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let env = [
        ("CXGUARD_HOME", home.path().to_str().unwrap()),
        ("FX_KEY", key),
    ];
    let verify = || {
        let o = crate::cxguard(
            &["--sim", "--output", "json", "audit", "verify"],
            &env,
            work.path(),
        );
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["entries"].as_u64().unwrap()
    };
    assert_eq!(verify(), 22, "the old ledger verifies as it was");
    let o = crate::cxguard(
        &[
            "--sim",
            "contacts",
            "anonymize",
            "--policy",
            "policy.toml",
            "--ids",
            "ids.txt",
        ],
        &env,
        work.path(),
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(verify() > 22, "new entries chain onto the old ones");
}
