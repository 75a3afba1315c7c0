//! `cxguard guests link | backfill` and `cxguard serve` as a user runs them.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::harness::Harness;
use crate::{stderr, stdout};

const IDENTITY_KEY_ENV: &str = "IT_IDENTITY_KEY";

fn identity_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([5u8; 32])
}

struct Setup(Harness);

impl std::ops::Deref for Setup {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

fn setup(guests: u32, latency: Duration, extra_config: &str) -> Setup {
    let h = Harness::start(cxone_sim::SimConfig {
        guests,
        latency,
        ..Default::default()
    })
    .env(IDENTITY_KEY_ENV, &identity_key());
    std::fs::write(
        h.dir.path().join("cxguard.toml"),
        format!(
            "[identity]\nkey = {{ id = \"guest-id-it\", env = \"{IDENTITY_KEY_ENV}\" }}\ndefault_region = \"US\"\n{extra_config}"
        ),
    )
    .unwrap();
    Setup(h)
}

impl Setup {
    fn expected(&self, raw: &str) -> String {
        let key = std::sync::Arc::new(
            guard::keys::Key::from_bytes("guest-id-it", vec![5u8; 32]).unwrap(),
        );
        let id = guard::identity::Identity::new(
            key,
            guard::pseudonym::Normalizer {
                region: Some(guard::pseudonym::parse_region("US").unwrap()),
                gmail_folding: false,
            },
            "hashed_user_id",
        )
        .unwrap();
        id.pseudonym("x", raw, guard::identity::IdentifierKind::Auto)
            .unwrap()
            .1
    }

    fn attribute(&self, guest: &str) -> Option<String> {
        let attrs = self.sim.control().guest_attributes(guest)?;
        attrs
            .as_array()?
            .iter()
            .find(|a| a["id"] == "hashed_user_id")
            .and_then(|a| a["value"].as_str().map(str::to_string))
    }
}

#[test]
fn link_one_guest_and_refuse_bad_input_clearly() {
    let s = setup(10, Duration::ZERO, "");
    let o = s.run(&[
        "guests",
        "link",
        "--guest",
        "g-000003",
        "--identifier",
        " Zed.Quinn@Example.com",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("linked g-000003"), "{}", stdout(&o));
    assert_eq!(
        s.attribute("g-000003"),
        Some(s.expected("zed.quinn@example.com"))
    );
    let entries = s.ledger_entries("guest.link");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].details["key"], "guest-id-it");
    for text in [stdout(&o), stderr(&o), s.ledger_bytes()] {
        assert!(!text.to_lowercase().contains("zed.quinn"), "{text}");
    }

    // From stdin: the identifier stays out of the process list.
    let mut child = s
        .command(&["guests", "link", "--guest", "g-000004", "--identifier", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"(212) 555-0199\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(s.attribute("g-000004"), Some(s.expected("+12125550199")));

    let o = s.run(&[
        "guests",
        "link",
        "--guest",
        "g-000005",
        "--identifier",
        "zed.quinn@",
    ]);
    assert_eq!(o.status.code(), Some(65));
    assert!(
        stderr(&o).contains("--identifier: is not an email address"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("zed.quinn"));
    let o = s.run(&["guests", "link", "--guest", "g/5", "--identifier", "a@b.co"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains("--guest:"), "{}", stderr(&o));
    let o = s.run(&[
        "guests",
        "link",
        "--guest",
        "g-999999",
        "--identifier",
        "a@b.co",
    ]);
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains("no guest g-999999"), "{}", stderr(&o));

    // No [identity] key: a configuration error that says what to add.
    std::fs::write(s.dir.path().join("cxguard.toml"), "").unwrap();
    let o = s.run(&[
        "guests",
        "link",
        "--guest",
        "g-000001",
        "--identifier",
        "a@b.co",
    ]);
    assert_eq!(o.status.code(), Some(78));
    assert!(stderr(&o).contains("identity.key"), "{}", stderr(&o));
    assert_eq!(s.attribute("g-000001"), None);
}

#[test]
fn backfill_validates_the_whole_file_first_and_resumes_after_a_kill() {
    let s = setup(400, Duration::from_millis(25), "");
    let bad = s.dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "guest_id,identifier\ng-000001,ann@example.com\ng-000002,secret-person@\ng-000001,bob@example.com\n",
    )
    .unwrap();
    let o = s.run(&["guests", "backfill", "--file", "bad.csv"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("bad.csv:3: identifier:"), "{err}");
    assert!(
        err.contains("bad.csv:4: guest g-000001 is already linked"),
        "{err}"
    );
    assert!(
        !err.contains("secret-person") && !err.contains("bob@"),
        "{err}"
    );
    assert!(s.sim.control().mutations("").is_empty(), "nothing changed");

    let person = |g: u32| format!("person{g}@example.com");
    let mut csv = String::from("guest_id,identifier\n");
    for g in 1..=300 {
        csv.push_str(&format!("g-{g:06},{}\n", person(g)));
    }
    std::fs::write(s.dir.path().join("pairs.csv"), &csv).unwrap();

    // Killed part-way, then run again: the second run resumes the same job.
    let mut child = s
        .command(&[
            "guests",
            "backfill",
            "--file",
            "pairs.csv",
            "--concurrency",
            "4",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let linked = || {
        (1..=300)
            .filter(|g| s.attribute(&format!("g-{g:06}")).is_some())
            .count()
    };
    let waiting = Instant::now();
    while linked() < 30 && waiting.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let linked_before = linked();
    assert!(
        linked_before > 0 && linked_before < 300,
        "killed part-way: {linked_before} linked"
    );
    let o = s.run(&[
        "--output",
        "json",
        "guests",
        "backfill",
        "--file",
        "pairs.csv",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["resumed"], true, "{report}");
    assert_eq!(
        report["linked"].as_u64().unwrap() + report["alreadyDone"].as_u64().unwrap(),
        300,
        "{report}"
    );
    for g in 1..=300 {
        assert_eq!(
            s.attribute(&format!("g-{g:06}")),
            Some(s.expected(&person(g))),
            "g-{g:06}"
        );
    }
    let starts = s.ledger_entries("job.start");
    assert_eq!(starts.len(), 1, "one job, resumed");
    let links = s.ledger_entries("guest.link");
    let mut targets: Vec<_> = links.iter().map(|e| e.target.clone()).collect();
    targets.sort();
    targets.dedup();
    assert_eq!(targets.len(), 300, "every guest's link is recorded");
    assert!(!s.ledger_bytes().contains("person1@"));

    // An unknown guest fails alone, named, with exit 1.
    std::fs::write(
        s.dir.path().join("more.csv"),
        "g-000301,x301@example.com\ng-999999,nobody@example.com\n",
    )
    .unwrap();
    let o = s.run(&["guests", "backfill", "--file", "more.csv"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("g-999999"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("2 guests in ")
            && stdout(&o).contains("= 1 linked + 0 linked earlier + 1 failed"),
        "{}",
        stdout(&o)
    );
    assert_eq!(crate::assert_report_fits_and_adds_up(&stdout(&o)), 1);
}

#[test]
fn serve_answers_logs_json_without_identifiers_and_drains_on_sigterm() {
    let s = setup(10, Duration::ZERO, "");
    // No API keys: refused before listening.
    let o = s.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(stderr(&o).contains("server.api_keys"), "{}", stderr(&o));

    let o = s.run(&["keys", "api", "--id", "web-it"]);
    assert_eq!(o.status.code(), Some(0));
    let api_key = stdout(&o).trim().to_string();
    let line = stderr(&o)
        .lines()
        .find(|l| l.contains("api_keys"))
        .unwrap()
        .trim()
        .to_string();
    assert!(
        !line.contains(&api_key),
        "the config line holds only the digest"
    );
    let config = std::fs::read_to_string(s.dir.path().join("cxguard.toml")).unwrap();
    // [subjects] settings without a policy enable nothing: refused, not ignored.
    std::fs::write(
        s.dir.path().join("cxguard.toml"),
        format!("{config}[server]\n{line}\n[subjects]\nqueue = 5\n"),
    )
    .unwrap();
    let o = s.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(stderr(&o).contains("subjects.policy"), "{}", stderr(&o));
    std::fs::write(
        s.dir.path().join("policy.toml"),
        "[fields]\nfirstName = { op = \"erase\" }\nemail = { op = \"erase\" }\n",
    )
    .unwrap();
    std::fs::write(
        s.dir.path().join("cxguard.toml"),
        format!("{config}[server]\n{line}\n[subjects]\npolicy = \"policy.toml\"\nqueue = 5\n"),
    )
    .unwrap();

    let mut child = s
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = Instant::now();
    let mut log = Vec::new();
    let url = loop {
        let l = lines
            .next()
            .expect("serve prints where it listens")
            .unwrap();
        log.push(l.clone());
        if let Some(rest) = l.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(30));
    };
    let reader = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let status = s.rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{url}/v1/guests/g-000002/identity"))
            .bearer_auth(&api_key)
            .header("x-request-id", "it-request-1")
            .json(&serde_json::json!({ "identifier": "Yara.Moss@example.com" }))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    assert_eq!(
        s.attribute("g-000002"),
        Some(s.expected("yara.moss@example.com"))
    );
    // The privacy portal erases her: queued, then done, and she is gone from the guest.
    let receipt = s.rt.block_on(async {
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{url}/v1/subjects/erasure"))
            .bearer_auth(&api_key)
            .json(&serde_json::json!({ "identifier": "Yara.Moss@example.com", "ref": "DSR-1" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let status_url = r.headers()["location"].to_str().unwrap().to_string();
        let started = Instant::now();
        loop {
            let j: serde_json::Value = http
                .get(format!("{url}{status_url}"))
                .bearer_auth(&api_key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match j["status"].as_str().unwrap() {
                "done" => break j["receipt"].clone(),
                "failed" => panic!("{j}"),
                _ => {}
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{j}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert_eq!(
        receipt["guests"],
        serde_json::json!(["g-000002"]),
        "{receipt}"
    );
    assert_eq!(receipt["reference"], "DSR-1");
    assert_eq!(s.attribute("g-000002"), None);
    assert_eq!(s.sim.control().erasures().len(), 1);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "SIGTERM drains and exits 0");
    log.extend(reader.join().unwrap());
    let access = log
        .iter()
        .find(|l| l.contains("it-request-1"))
        .unwrap_or_else(|| {
            panic!(
                "an access log line with the request id:\n{}",
                log.join("\n")
            )
        });
    let v: serde_json::Value = serde_json::from_str(access).expect("JSON log lines");
    assert_eq!(v["fields"]["status"], 200, "{v}");
    assert_eq!(v["fields"]["key"], "web-it", "{v}");
    let all = log.join("\n").to_lowercase();
    assert!(!all.contains("yara"), "no identifier in the log");
    assert!(
        !all.contains(&api_key.to_lowercase()),
        "no API key in the log"
    );
    assert_eq!(s.ledger_entries("guest.link").len(), 1);
    assert_eq!(s.ledger_entries("subject.erase.platform").len(), 1);
    assert!(!s.ledger_bytes().to_lowercase().contains("yara"));
}

/// schemathesis against `cxguard serve`'s own /openapi.json (.ci/schemathesis): no 5xx,
/// every answer as documented, auth enforced, invalid input refused.
#[test]
fn schemathesis_finds_no_server_error_or_schema_violation() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/schemathesis");
    let available = Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run schemathesis: pip install schemathesis"
        );
        eprintln!("skipped: needs schemathesis (pip install schemathesis)");
        return;
    }
    let o = Command::new("bash")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_cxguard"))
        .env_remove("CXGUARD_CONFIG")
        .output()
        .unwrap();
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}");
    assert!(out.contains(" passed"), "{out}");
    assert!(!out.contains("failed"), "{out}");
}
