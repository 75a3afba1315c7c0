//! Commands that succeed: demo, inventory against a tenant, sim's banner.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{cxguard, stderr, stdout, tmp};

#[test]
fn demo_prints_the_inventory() {
    let dir = tmp();
    let o = cxguard(&["demo"], &[], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "Contacts: 1000",
        "Secrets: 4",
        "Data actions: 5",
        "Data Store tables: 1",
        "guests: 50",
        "Webchat widgets: 2",
        "1 token request",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
    assert!(stderr(&o).contains("embedded CXone emulator"));
}

#[test]
fn demo_json_is_one_document_with_the_inventory() {
    let dir = tmp();
    let o = cxguard(
        &["demo", "--output", "json", "--contacts", "120"],
        &[],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(v["inventory"]["contacts"]["counted"], 120);
    assert_eq!(v["inventory"]["secrets"].as_array().unwrap().len(), 4);
    assert_eq!(v["inventory"]["target"]["kind"], "embedded-emulator");
    assert_eq!(v["client"]["tokenRequests"], 1);
    let crm = v["inventory"]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "sec-crm-api-key")
        .unwrap();
    assert_eq!(crm["dependents"].as_array().unwrap().len(), 3);
    let id = &v["identity"];
    assert_eq!(id["linked"].as_array().unwrap().len(), 3, "{id}");
    assert_eq!(id["samePseudonym"], true, "{id}");
    assert_eq!(id["invalidStatus"], 400);
    assert_eq!(id["invalidField"], "identifier");
    assert_eq!(id["unauthenticatedStatus"], 401);
    let enc = &v["encrypt"];
    assert_eq!(enc["callbackVerified"], true, "{enc}");
    assert_eq!(enc["report"]["keyVersion"], 2, "{enc}");
    assert_eq!(enc["coverage"]["sensitiveInClear"], serde_json::json!([]));
    assert_eq!(
        v["inventory"]["tables"][0]["coverage"]["sensitiveInClear"]
            .as_array()
            .unwrap()
            .len(),
        9,
        "the inventory names the sensitive columns in clear before the demo encrypts them"
    );
    assert_eq!(v["posture"]["planned"], 2, "{}", v["posture"]);
    assert_eq!(
        v["posture"]["after"], 0,
        "plan → apply → plan shows no changes"
    );
    let wc = &v["webchat"];
    assert_eq!(wc["report"]["widgets"][1]["outcome"], "changed", "{wc}");
    assert!(
        wc["refusal"].as_str().unwrap().contains("<script>alert(1)"),
        "{wc}"
    );
    assert!(
        !o.stdout.windows(4).any(|w| w == b"cxk_"),
        "the callback token is never printed"
    );
}

#[test]
fn quiet_demo_writes_nothing_to_stderr() {
    let dir = tmp();
    let o = cxguard(&["demo", "-q", "--contacts", "10"], &[], dir.path());
    assert!(o.status.success());
    assert_eq!(stderr(&o), "");
}

#[test]
fn inventory_without_a_tenant_says_it_uses_the_embedded_emulator() {
    let dir = tmp();
    let o = cxguard(&["inventory", "--output", "json"], &[], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no tenant configured"),
        "{}",
        stderr(&o)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["target"]["kind"], "embedded-emulator");
}

/// Starts `cxguard sim` on a free port and returns the child and its JSON banner.
fn start_sim(extra: &[&str]) -> (std::process::Child, Value) {
    let mut args = vec!["sim", "--port", "0", "--output", "json"];
    if !extra.contains(&"--contacts") {
        args.extend_from_slice(&["--contacts", "250"]);
    }
    args.extend_from_slice(extra);
    let mut child = Command::new(env!("CARGO_BIN_EXE_cxguard"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    // The banner is one pretty-printed JSON document ending with a closing brace line.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        text.push_str(&line);
        if line.trim_end() == "}" {
            break;
        }
    }
    (child, serde_json::from_str(&text).expect("banner is JSON"))
}

#[test]
fn inventory_against_a_configured_tenant_from_env_and_config_file() {
    let (mut child, banner) = start_sim(&[]);
    let base = banner["baseUrl"].as_str().unwrap().to_string();
    let id = banner["credentials"]["clientId"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = banner["credentials"]["clientSecret"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tmp();
    let o = cxguard(
        &[
            "inventory",
            "--output",
            "json",
            "--table",
            "ds-customer/tbl-customer-profiles",
        ],
        &[
            ("CXGUARD_BASE_URL", &base),
            ("CXGUARD_CLIENT_ID", &id),
            ("CXGUARD_CLIENT_SECRET", &secret),
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["target"]["kind"], "tenant");
    assert_eq!(v["contacts"]["counted"], 250);
    assert_eq!(v["tables"][0]["id"], "tbl-customer-profiles");
    assert!(
        !stdout(&o).contains(&secret) && !stderr(&o).contains(&secret),
        "the secret is never printed"
    );

    // The same through cxguard.toml with the secret in a file.
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(
        dir.path().join("cxguard.toml"),
        format!("[tenant]\nbase_url = \"{base}\"\nclient_id = \"{id}\"\nclient_secret_file = \"client-secret\"\nmax_rate = 50\n"),
    )
    .unwrap();
    let o = cxguard(&["inventory", "--max-contacts", "100"], &[], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Contacts: 100+"), "{}", stdout(&o));
    assert_eq!(
        stderr(&o),
        "",
        "no warning for a 0600 secret file, no emulator note"
    );

    // The access-key grant.
    let o = cxguard(
        &["inventory", "--output", "json", "--max-contacts", "5"],
        &[
            ("CXGUARD_BASE_URL", &base),
            (
                "CXGUARD_CLIENT_ID",
                banner["credentials"]["appClientId"].as_str().unwrap(),
            ),
            (
                "CXGUARD_CLIENT_SECRET",
                banner["credentials"]["appClientSecret"].as_str().unwrap(),
            ),
            (
                "CXGUARD_ACCESS_KEY_ID",
                banner["credentials"]["accessKeyId"].as_str().unwrap(),
            ),
            (
                "CXGUARD_ACCESS_KEY_SECRET",
                banner["credentials"]["accessKeySecret"].as_str().unwrap(),
            ),
        ],
        tmp().path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn wrong_credentials_exit_77_without_printing_the_secret() {
    let (mut child, banner) = start_sim(&[]);
    let base = banner["baseUrl"].as_str().unwrap().to_string();
    let dir = tmp();
    let o = cxguard(
        &["inventory"],
        &[
            ("CXGUARD_BASE_URL", &base),
            ("CXGUARD_CLIENT_ID", "cxguard-demo"),
            ("CXGUARD_CLIENT_SECRET", "Zz-not-it-91"),
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    assert!(stderr(&o).contains("invalid_client"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("Zz-not-it-91"));
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn an_unreachable_tenant_exits_69() {
    let dir = tmp();
    let o = cxguard(
        &["inventory"],
        &[
            ("CXGUARD_BASE_URL", "http://127.0.0.1:9"),
            ("CXGUARD_CLIENT_ID", "a"),
            ("CXGUARD_CLIENT_SECRET", "b"),
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
    assert!(stderr(&o).contains("127.0.0.1:9"), "{}", stderr(&o));
}

/// The tutorial-001 peer script (../shared/peers) runs against `cxguard sim` unmodified:
/// the emulator accepts what the tutorials send (`If-Match: *`, a `contactId` member).
#[test]
fn the_tutorial_peer_anonymizer_runs_against_the_emulator() {
    let peer = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/peers/anonymize_seed.py");
    let has_httpx = Command::new("python3")
        .args(["-c", "import httpx"])
        .status()
        .is_ok_and(|s| s.success());
    if !peer.exists() || !has_httpx {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the peer test: need {} and python3 with httpx",
            peer.display()
        );
        eprintln!(
            "skipped: needs {} and python3 with httpx (pip install httpx)",
            peer.display()
        );
        return;
    }
    let (mut child, banner) = start_sim(&["--contacts", "2000"]);
    let out = Command::new("python3")
        .arg(&peer)
        .args(["--base-url", banner["baseUrl"].as_str().unwrap()])
        .args([
            "--client-id",
            banner["credentials"]["clientId"].as_str().unwrap(),
        ])
        .args([
            "--client-secret",
            banner["credentials"]["clientSecret"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("the peer prints one JSON line");
    assert_eq!(v["succeeded"], 2000, "{v}");
    assert_eq!(v["failed"], 0, "{v}");
}

#[test]
fn secrets_list_and_due_for_cron() {
    let dir = tmp();
    let o = cxguard(
        &["-q", "secrets", "list", "--output", "json"],
        &[],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let crm = v
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "sec-crm-api-key")
        .unwrap();
    assert_eq!(crm["dependents"].as_array().unwrap().len(), 3);
    assert!(crm["ageDays"].as_i64().unwrap() >= 119);

    let o = cxguard(
        &[
            "-q",
            "secrets",
            "due",
            "--max-age",
            "90d",
            "--output",
            "json",
        ],
        &[],
        dir.path(),
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "secrets are due: exit 2 for cron and CI"
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<&str> = v["due"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec!["sec-unused-token", "sec-erp-basic", "sec-crm-api-key"],
        "oldest first"
    );
    let o = cxguard(
        &["-q", "secrets", "due", "--max-age", "500d"],
        &[],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0));
    let o = cxguard(
        &["-q", "secrets", "due", "--max-age", "soon"],
        &[],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("--max-age"), "{}", stderr(&o));
}
