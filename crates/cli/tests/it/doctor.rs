//! `cxguard doctor`, `completions` and `man`.

use std::process::Command;

use crate::harness::Harness;
use crate::{cxguard, stderr, stdout, tmp};

fn check_line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l[l.char_indices().nth(2).map_or(0, |(i, _)| i)..].starts_with(name))
        .unwrap_or_else(|| panic!("no {name} check in\n{out}"))
}

#[test]
fn doctor_passes_a_healthy_setup_and_names_the_fix_for_each_problem() {
    let h = Harness::start(cxone_sim::SimConfig::default());
    let o = h.run(&["doctor"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(check_line(&out, "token").starts_with('✓'), "{out}");
    assert!(check_line(&out, "scopes for contacts anonymize").starts_with('✓'));
    assert!(
        !out.contains(&h.sim.credentials().client_secret),
        "no secret printed"
    );
    assert!(out.contains("client secret set"), "{out}");

    // A wrong secret.
    let o = h
        .command(&["doctor"])
        .env("CXGUARD_CLIENT_SECRET", "not-the-secret")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(check_line(&out, "token").starts_with('✗'), "{out}");
    assert!(out.contains("fix: check the client id and secret"), "{out}");
    assert!(!out.contains("not-the-secret"));

    // A client without write scopes.
    let c = h.sim.credentials();
    let o = h
        .command(&["doctor", "--output", "json"])
        .env("CXGUARD_CLIENT_ID", &c.readonly_client_id)
        .env("CXGUARD_CLIENT_SECRET", &c.readonly_client_secret)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let scopes = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "scopes for contacts anonymize")
        .unwrap();
    assert_eq!(scopes["ok"], false);
    assert!(
        scopes["detail"].as_str().unwrap().contains("contact:write"),
        "{scopes}"
    );
    assert!(scopes["fix"].is_string());

    // An unreachable tenant.
    let o = h
        .command(&["doctor"])
        .env("CXGUARD_BASE_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        check_line(&out, "tenant reachable").starts_with('✗'),
        "{out}"
    );
    assert!(out.contains("fix: check tenant.base_url"), "{out}");

    // An audit key others can read, and a webhook nobody listens on.
    h.write(
        "cxguard.toml",
        "[webhooks.consent]\nurl = \"http://127.0.0.1:9/hook\"\nsecret_env = \"IT_HOOK\"\n",
    );
    // A command that records something: the ledger and its key come to be.
    let o = h.run(&["webchat", "export"]);
    h.write("live.toml", &stdout(&o));
    let o = h
        .command(&["webchat", "apply", "--policy", "live.toml"])
        .env("IT_HOOK", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let key = h.home.path().join("audit-signing.key");
    assert!(key.exists(), "the ledger and its key exist now");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let o = h
        .command(&["doctor"])
        .env("IT_HOOK", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(check_line(&out, "audit key").starts_with('✗'), "{out}");
    assert!(out.contains("fix: chmod 600"), "{out}");
    assert!(
        check_line(&out, "webhook consent").starts_with('✗'),
        "{out}"
    );

    // A receiver that listens gets nothing from doctor, unless asked for a test event;
    // an https endpoint that accepts connections but speaks no TLS is named as such.
    let (hook, got) = h.receiver("consent");
    let plain = h.sim.base_url().replace("http://", "https://");
    h.write(
        "cxguard.toml",
        &format!(
            "[webhooks.consent]\nurl = \"{hook}\"\nsecret_env = \"IT_HOOK\"\n\
             [webhooks.vault]\nurl = \"{plain}/hook\"\nsecret_env = \"IT_HOOK\"\n"
        ),
    );
    let doctor = |extra: &[&str]| {
        let mut args = vec!["doctor"];
        args.extend_from_slice(extra);
        h.command(&args)
            .env("IT_HOOK", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .output()
            .unwrap()
    };
    let o = doctor(&[]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        check_line(&out, "webhook consent").starts_with('✓'),
        "{out}"
    );
    assert!(
        check_line(&out, "webhook vault").starts_with('✗')
            && check_line(&out, "webhook vault").contains("TLS with"),
        "{out}"
    );
    assert!(got.lock().unwrap().is_empty(), "nothing sent by default");
    let o = doctor(&["--send-test-event"]);
    let out = stdout(&o);
    assert!(
        check_line(&out, "webhook consent").contains("test event accepted"),
        "{out}"
    );
    let sent = got.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["type"], "cxguard.test");
}

#[test]
fn completions_load_in_bash_and_man_writes_a_page_per_command() {
    let dir = tmp();
    let o = cxguard(&["completions", "bash"], &[], dir.path());
    assert!(o.status.success());
    let script = dir.path().join("cxguard.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    let b = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p cxguard",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(b.status.success(), "{}", stderr(&b));
    assert!(stdout(&b).contains("_cxguard"), "{}", stdout(&b));

    let man = dir.path().join("man");
    let o = cxguard(&["man", "--out", man.to_str().unwrap()], &[], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    for page in [
        "cxguard.1",
        "cxguard-contacts-anonymize.1",
        "cxguard-webchat-apply.1",
        "cxguard-doctor.1",
        "cxguard-plan.1",
    ] {
        assert!(man.join(page).exists(), "{page}");
    }
}
