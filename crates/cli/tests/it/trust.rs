//! The trust review's findings as a user meets them: a `--sim` rehearsal run with a
//! production configuration reaches neither its ledger nor its webhook endpoints.

use crate::harness::Harness;
use crate::{stderr, stdout};

const POLICY: &str = r#"default_region = "US"
[keys]
k = { id = "it-key-1", env = "IT_ANON_KEY" }
[fields]
firstName = { op = "erase" }
email = { op = "pseudonymize", key = "k" }
"#;

/// Regression (trust review, item 2): `--sim` swapped only the tenant, so a rehearsal
/// with a production configuration sent signed `contact.anonymized` events to the real
/// consent endpoint and audited them in the production ledger. Now it records into a
/// ledger of its own under `sim/`, every entry naming the emulator, and sends nothing
/// unless `--sim-webhooks`.
#[test]
fn a_sim_rehearsal_touches_neither_the_configured_ledger_nor_its_webhooks() {
    let h = Harness::start(cxone_sim::SimConfig::default())
        .env(
            "IT_ANON_KEY",
            &base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [11u8; 32]),
        )
        .env(
            "IT_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
    let (url, received) = h.receiver("consent");
    let prod = h.dir.path().join("prod");
    std::fs::create_dir(&prod).unwrap();
    let store = format!("sqlite://{}", prod.join("ledger.sqlite").display());
    h.write("policy.toml", POLICY);
    h.write(
        "cxguard.toml",
        &format!(
            "[store]\nurl = \"{store}\"\n[audit]\nkey_file = \"{}\"\n[webhooks.consent]\nurl = \"{url}\"\nsecret_env = \"IT_WEBHOOK_SECRET\"\n[outbox]\nschedule_secs = [0, 1]\n",
            prod.join("audit.key").display()
        ),
    );
    let env_store = format!("sqlite://{}", prod.join("env-ledger.sqlite").display());
    let anonymize = [
        "--sim",
        "contacts",
        "anonymize",
        "--policy",
        "policy.toml",
        "--all",
    ];
    let o = h
        .command(&anonymize)
        .env("CXGUARD_STORE", &env_store)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let o = h.run(&[
        "--sim",
        "outbox",
        "deliver",
        "--until-empty",
        "--max-wait",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::thread::sleep(std::time::Duration::from_millis(300));

    assert!(received.lock().unwrap().is_empty(), "a webhook was sent");
    let left: Vec<_> = std::fs::read_dir(&prod)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.is_empty(),
        "the production ledger was touched: {left:?}"
    );
    // The rehearsal's own ledger: every entry names the emulator.
    let sim = h.home.path().join("sim");
    let url = format!("sqlite://{}", sim.join("ledger.sqlite").display());
    let l =
        h.rt.block_on(ledger::Ledger::open(&url, ledger::KeySource::None))
            .unwrap();
    let entries =
        h.rt.block_on(l.entries(&ledger::Filter::default()))
            .unwrap();
    assert!(
        entries.iter().any(|e| e.operation == "contact.anonymize"),
        "the rehearsal is audited in its own ledger"
    );
    for e in &entries {
        assert_eq!(e.details["tenant"], "emulator", "{e:?}");
    }
    assert!(sim.join("audit-signing.key").exists());
    // With --sim-webhooks a rehearsal does send (to a fresh data directory).
    let other = crate::tmp();
    let mut args = vec!["--sim-webhooks"];
    args.extend_from_slice(&anonymize);
    let o = h
        .command(&args)
        .env("CXGUARD_HOME", other.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = h
        .command(&[
            "--sim",
            "--sim-webhooks",
            "outbox",
            "deliver",
            "--until-empty",
            "--max-wait",
            "10",
        ])
        .env("CXGUARD_HOME", other.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!received.lock().unwrap().is_empty(), "--sim-webhooks sends");
    let o = h.run(&["--sim-webhooks", "outbox", "status"]);
    assert_eq!(o.status.code(), Some(64), "--sim-webhooks needs --sim");
}

/// Regression (trust review, item 8): `subject export` wrote its files subject by
/// subject and audited them all after the loop, so a crash left personal data on disk
/// with no audit entry. Now an intent naming each file is recorded before it is
/// written: killed mid-run, every export file on disk has its entry. Two references
/// that map to one file name are refused before anything is written.
#[test]
fn an_export_killed_midway_leaves_an_audit_entry_for_every_file_on_disk() {
    const KEY_ENV: &str = "IT_IDENTITY_KEY";
    let h = Harness::start(cxone_sim::SimConfig {
        contacts: 600,
        latency: std::time::Duration::from_millis(4),
        ..Default::default()
    })
    .env(
        KEY_ENV,
        &base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 32]),
    );
    h.write(
        "cxguard.toml",
        &format!(
            "[identity]\nkey = {{ id = \"subject-it\", env = \"{KEY_ENV}\" }}\ndefault_region = \"US\"\n"
        ),
    );
    let c = h.sim.control();
    let mut csv = String::from("identifier,ref\n");
    for k in 0..40u32 {
        let email = format!("export.{k}@example.com");
        c.edit_contact(
            &format!("c-{:07}", 1 + k * 13),
            serde_json::json!({"email": email}),
        )
        .unwrap();
        csv.push_str(&format!("{email},R{k}\n"));
    }
    h.write("requests.csv", &csv);

    // Refs that collide on their file name: refused, nothing written.
    h.write(
        "clash.csv",
        "identifier,ref\nexport.1@example.com,T/1\nexport.2@example.com,T_1\n",
    );
    let o = h.run(&["subject", "export", "--file", "clash.csv", "--out", "clash"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("T_1.json"), "{}", stderr(&o));
    let clash = h.dir.path().join("clash");
    assert_eq!(
        std::fs::read_dir(&clash).map(|d| d.count()).unwrap_or(0),
        0,
        "nothing written"
    );

    let out = h.dir.path().join("access");
    let mut child = h
        .command(&[
            "subject",
            "export",
            "--file",
            "requests.csv",
            "--out",
            "access",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let files = || {
        std::fs::read_dir(&out)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.ends_with(".manifest.json"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let started = std::time::Instant::now();
    while files().len() < 5 && started.elapsed() < std::time::Duration::from_secs(60) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let on_disk = files();
    assert!(
        on_disk.len() >= 5 && on_disk.len() < 40,
        "killed midway: {on_disk:?}"
    );
    let intents: std::collections::BTreeSet<String> = h
        .ledger_entries("subject.export.intent")
        .iter()
        .map(|e| e.details["file"].as_str().unwrap().to_string())
        .collect();
    for f in &on_disk {
        assert!(intents.contains(f), "{f} is on disk with no audit entry");
    }
    assert!(!crate::harness::Harness::ledger_bytes(&h).contains("export.1@"));
}
