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
