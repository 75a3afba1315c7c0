//! `cxguard secrets rotate` as a user runs it: a SIGKILL between set and finish, no value
//! anywhere it should not be, and bad input.

use std::time::Duration;

use serde_json::Value;

use crate::harness::Harness;
use crate::{stderr, stdout};

const SECRET: &str = "sec-crm-api-key";

/// The harness, with the secret's current value in `previous.txt`.
struct Setup(Harness);

impl std::ops::Deref for Setup {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

fn setup() -> Setup {
    let h = Harness::start(cxone_sim::SimConfig {
        contacts: 10,
        ..Default::default()
    });
    let seed = h.sim.control().state()["seed"].as_u64().unwrap();
    h.write(
        "previous.txt",
        &cxone_sim::seeded_secret_value(seed, SECRET).unwrap(),
    );
    Setup(h)
}

impl Setup {
    fn version(&self) -> u64 {
        self.sim.control().secret(SECRET).unwrap()["version"]
            .as_u64()
            .unwrap()
    }
}

#[test]
fn a_rotation_killed_between_set_and_finish_is_resumed() {
    let s = setup();
    s.write("new.txt", "key_new_value_after_crash");
    // Slow responses so the kill lands while the dependents are being tested.
    s.sim
        .control()
        .configure(serde_json::json!({"latencyMs": 300}))
        .unwrap();
    let args = [
        "secrets",
        "rotate",
        SECRET,
        "--value-file",
        "new.txt",
        "--previous-value-file",
        "previous.txt",
    ];
    let mut child = s
        .command(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if s.version() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(s.version(), 2, "the set phase landed");
    child.kill().unwrap(); // SIGKILL, before the dependents were all tested
    let _ = child.wait();
    s.sim
        .control()
        .configure(serde_json::json!({"latencyMs": 0}))
        .unwrap();
    let o = s.run(&["jobs", "list", "--output", "json"]);
    let jobs: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(jobs[0]["status"], "running", "interrupted: {jobs}");
    let job = jobs[0]["id"].as_str().unwrap().to_string();

    // A new rotation is refused while this one is unfinished.
    s.write("other.txt", "key_another_value");
    let o = s.run(&[
        "secrets",
        "rotate",
        SECRET,
        "--value-file",
        "other.txt",
        "--previous-value-file",
        "new.txt",
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("--resume {job}")),
        "{}",
        stderr(&o)
    );
    // Resuming with a different value is refused by hash.
    let o = s.run(&[
        "secrets",
        "rotate",
        SECRET,
        "--value-file",
        "other.txt",
        "--previous-value-file",
        "previous.txt",
        "--resume",
        &job,
    ]);
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains("does not hash"), "{}", stderr(&o));

    let mut resume = args.to_vec();
    resume.extend(["--resume", &job]);
    let o = s.run(&resume);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(s.version(), 2, "no second set");
    for a in ["da-crm-lookup", "da-crm-case", "da-crm-loyalty"] {
        let d = s.sim.control().data_action(a).unwrap();
        assert_eq!(
            (
                d["status"].as_str(),
                d["compiledSecretVersions"][SECRET].as_u64()
            ),
            (Some("compiled"), Some(2)),
            "{a}"
        );
    }
    let o = s.run(&["audit", "verify"]);
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn a_rejected_value_rolls_back_names_the_action_and_no_value_leaks() {
    let s = setup();
    let new_value = "key_Leak-Canary-7f3a9c";
    s.write("new.txt", new_value);
    let hash: String = guard::sha256_hex(new_value);
    s.sim.control().reject_secret(Some("da-crm-loyalty"), &hash);
    let o = s.run(&[
        "-vvv",
        "secrets",
        "rotate",
        SECRET,
        "--value-file",
        "new.txt",
        "--previous-value-file",
        "previous.txt",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("da-crm-loyalty"),
        "the message names the action: {}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("rolled back"), "{}", stdout(&o));
    assert_eq!(crate::assert_report_fits_and_adds_up(&stdout(&o)), 1);
    assert!(
        stdout(&o).contains("3 data action(s) tested = 2 passed + 1 rejected"),
        "{}",
        stdout(&o)
    );
    let seed = s.sim.control().state()["seed"].as_u64().unwrap();
    let old = cxone_sim::seeded_secret_value(seed, SECRET).unwrap();
    let old_hash: String = guard::sha256_hex(&old);
    assert_eq!(
        s.sim.control().secret(SECRET).unwrap()["valueSha256"],
        old_hash.as_str()
    );

    // The values appear in no output, log line, audit entry, event, journal row or file
    // cxguard wrote.
    let export = s.run(&["audit", "export", "--format", "jsonl"]);
    let jobs = s.run(&["jobs", "list", "--output", "json"]);
    let ledger_bytes = std::fs::read(s.home.path().join("ledger.sqlite")).unwrap();
    let wal = std::fs::read(s.home.path().join("ledger.sqlite-wal")).unwrap_or_default();
    for v in [new_value, old.as_str()] {
        for (name, text) in [
            ("stdout", stdout(&o)),
            ("stderr (-vvv)", stderr(&o)),
            ("audit export", stdout(&export)),
            ("jobs", stdout(&jobs)),
            (
                "ledger",
                String::from_utf8_lossy(&ledger_bytes).into_owned(),
            ),
            ("ledger wal", String::from_utf8_lossy(&wal).into_owned()),
        ] {
            assert!(!text.contains(v), "a secret value appears in {name}");
        }
    }
    assert!(stdout(&export).contains("secret.rotate.rollback"));
}

#[test]
fn bad_values_get_clear_errors_and_change_nothing() {
    let s = setup();
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "sec-payments-jwt",
            "bad.jwt",
            "not.a-jwt",
            "three non-empty base64url segments",
        ),
        ("sec-erp-basic", "bad.b64", "abc", "multiple of 4"),
        (SECRET, "long.txt", &"x".repeat(4097), "4097 characters"),
        (SECRET, "empty.txt", "", "empty"),
        ("sec-nope", "ok.txt", "key_fine", "unknown secret id"),
    ];
    for (id, file, value, want) in cases {
        s.write(file, value);
        let o = s.run(&[
            "secrets",
            "rotate",
            id,
            "--value-file",
            file,
            "--no-rollback",
        ]);
        assert_eq!(o.status.code(), Some(65), "{id}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(want),
            "{id}: want {want:?} in {}",
            stderr(&o)
        );
    }
    let o = s.run(&[
        "secrets",
        "rotate",
        SECRET,
        "--value-file",
        "previous.txt",
        "--previous-value-file",
        "previous.txt",
    ]);
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains("identical"), "{}", stderr(&o));
    s.write("new.txt", "key_new");
    let o = s.run(&["secrets", "rotate", SECRET, "--value-file", "new.txt"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains("--no-rollback"), "{}", stderr(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            s.dir.path().join("new.txt"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let o = s.run(&[
        "secrets",
        "rotate",
        SECRET,
        "--value-file",
        "new.txt",
        "--previous-value-file",
        "previous.txt",
        "--dry-run",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("mode 0644"),
        "a broad value file is warned about: {}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("da-crm-case"),
        "the plan lists the dependents: {}",
        stdout(&o)
    );
    assert!(s.sim.control().mutations("").is_empty(), "nothing changed");
    assert!(
        !s.home.path().join("ledger.sqlite").exists(),
        "nothing was written"
    );
    let _ = &s.rt;
}

#[test]
fn a_generated_value_is_written_0600_before_it_is_sent() {
    let s = setup();
    let o = s.run(&[
        "secrets",
        "rotate",
        SECRET,
        "--generate",
        "--length",
        "40",
        "--write-value-to",
        "generated.key",
        "--previous-value-file",
        "previous.txt",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let path = s.dir.path().join("generated.key");
    let value = std::fs::read_to_string(&path).unwrap();
    assert_eq!(value.len(), 40);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let hash: String = guard::sha256_hex(&value);
    assert_eq!(
        s.sim.control().secret(SECRET).unwrap()["valueSha256"],
        hash.as_str(),
        "the file holds the value now set"
    );
    assert!(!stdout(&o).contains(&value) && !stderr(&o).contains(&value));
    // An existing file is never overwritten.
    let o = s.run(&[
        "secrets",
        "rotate",
        SECRET,
        "--generate",
        "--write-value-to",
        "generated.key",
        "--previous-value-file",
        "generated.key",
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), value);
    let o = s.run(&[
        "secrets",
        "rotate",
        SECRET,
        "--generate",
        "--previous-value-file",
        "previous.txt",
    ]);
    assert_eq!(
        o.status.code(),
        Some(64),
        "--generate needs --write-value-to"
    );
}

/// Regression: rotate used to connect (and fetch a token) before reading its value file.
#[test]
fn an_unreadable_value_file_sends_no_request_at_all() {
    let s = setup();
    let o = s.run(&[
        "secrets",
        "rotate",
        SECRET,
        "--value-file",
        "missing.txt",
        "--previous-value-file",
        "previous.txt",
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("missing.txt"), "{}", stderr(&o));
    assert_eq!(s.sim.control().token_requests_total(), 0);
    assert_eq!(s.sim.control().state()["counters"]["requests"], 0);
}

#[test]
fn generate_reads_the_secret_once() {
    let s = setup();
    let o = s.run(&[
        "secrets",
        "rotate",
        SECRET,
        "--generate",
        "--write-value-to",
        "once.key",
        "--previous-value-file",
        "previous.txt",
        "--dry-run",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        s.sim
            .control()
            .route_hits("GET /api/v2/integration/secret/{id}"),
        1
    );
}
