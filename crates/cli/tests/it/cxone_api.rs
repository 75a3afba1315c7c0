//! `api = "cxone"`: CXone's published API against the emulator's real surface —
//! doctor, inventory, a refused access key, the commands it does not have, and the
//! configuration it refuses before any request.

use crate::harness::Harness;
use crate::openbao::{bao, bao_api, with_vault};
use crate::{stderr, stdout};

/// A harness configured for the real surface: issuer, app and `access_key_file`.
pub(crate) fn real(config: cxone_sim::SimConfig) -> Harness {
    let h = Harness::start(config);
    let c = h.sim.credentials().clone();
    h.write(
        "access-key.json",
        &serde_json::json!({"accessKeyId": c.cxone_access_key_id, "accessKeySecret": c.cxone_access_key_secret})
            .to_string(),
    );
    h.write(
        "cxguard.toml",
        &format!(
            "[tenant]\napi = \"cxone\"\nissuer = \"{}\"\nclient_id = \"{}\"\naccess_key_file = \"access-key.json\"\n",
            h.sim.cxone_issuer(),
            c.cxone_client_id
        ),
    );
    h.env("CXGUARD_CONFIG", "cxguard.toml")
        .env("CXGUARD_CLIENT_ID", &c.cxone_client_id)
        .env("CXGUARD_CLIENT_SECRET", &c.cxone_client_secret)
}

fn real_state(h: &Harness) -> serde_json::Value {
    h.sim.control().state()["real"].clone()
}

#[test]
fn doctor_shows_the_discovered_tenant_and_a_read_per_area() {
    let h = real(cxone_sim::SimConfig::default());
    let o = h.run(&["doctor"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    let tenant = real_state(&h)["tenantId"].as_str().unwrap().to_string();
    assert!(out.contains(&format!("tenant {tenant}")), "{out}");
    assert!(
        out.contains("area na1") && out.contains("cluster B32"),
        "{out}"
    );
    for area in [
        "access keys",
        "digital (DFO)",
        "data policies",
        "ACD reporting",
    ] {
        assert!(out.contains(&format!("✓ {area}")), "{area}: {out}");
    }
    let c = h.sim.credentials();
    assert!(!out.contains(&c.cxone_access_key_secret) && !out.contains(&c.cxone_client_secret));
}

#[test]
fn inventory_json_counts_match_the_emulator() {
    let h = real(cxone_sim::SimConfig::default());
    let o = h.run(&["--output", "json", "inventory"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let inv: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let n = real_state(&h)["counts"].clone();
    assert_eq!(inv["accessKeys"]["total"], n["accessKeys"]);
    assert_eq!(inv["accessKeys"]["active"], n["activeAccessKeys"]);
    assert_eq!(inv["customers"], n["customers"]);
    assert_eq!(inv["casesByStatus"], n["casesByStatus"]);
    assert_eq!(
        inv["customFields"].as_array().unwrap().len() as u64,
        n["customerFieldDefinitions"].as_u64().unwrap()
    );
    assert_eq!(
        inv["policies"].as_array().unwrap().len() as u64,
        n["policies"].as_u64().unwrap()
    );
    assert_eq!(
        inv["completedContacts30Days"],
        n["completedContactsLast30Days"]
    );
    assert_eq!(inv["tenant"]["tenantId"], real_state(&h)["tenantId"]);
    // The seeded keys: one inactive, one never used, one unused for 120 days.
    assert_eq!(inv["accessKeys"]["inactive"], 1);
    assert_eq!(inv["accessKeys"]["neverUsed"], 1);
    assert_eq!(inv["accessKeys"]["unused90Days"], 1);
}

#[test]
fn an_inventory_completes_through_429s_without_retry_after_and_counts_them() {
    let h = real(cxone_sim::SimConfig::default());
    h.sim
        .control()
        .configure(serde_json::json!({"dfoThrottleShare": 0.34}))
        .unwrap();
    let o = h.run(&["--output", "json", "inventory"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let inv: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let refused = real_state(&h)["rateLimited"].as_u64().unwrap();
    assert!(refused > 0, "the emulator refused some DFO reads");
    assert_eq!(inv["rateLimited"].as_u64().unwrap(), refused);
    assert_eq!(inv["customers"], real_state(&h)["counts"]["customers"]);
}

#[test]
fn a_wrong_access_key_exits_77_naming_invalid_grant() {
    let h = real(cxone_sim::SimConfig::default());
    let c = h.sim.credentials().clone();
    h.write(
        "access-key.json",
        &serde_json::json!({"accessKeyId": c.cxone_access_key_id, "accessKeySecret": "wrong="})
            .to_string(),
    );
    let o = h.run(&["inventory"]);
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    assert!(stderr(&o).contains("invalid_grant"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("wrong="));
}

#[test]
fn a_tutorial_command_exits_78_and_sends_nothing() {
    let h = real(cxone_sim::SimConfig::default());
    let before = h.sim.control().state()["counters"]["requests"].clone();
    for args in [
        &["secrets", "list"][..],
        &["datastore", "coverage", "ds/t"],
        &["webchat", "export"],
        &["contacts", "anonymize", "--all", "--policy", "p.toml"],
    ] {
        let o = h.run(args);
        assert_eq!(o.status.code(), Some(78), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("not available on api = \"cxone\"") && e.contains("Instead:"),
            "{args:?}: {e}"
        );
    }
    assert_eq!(h.sim.control().state()["counters"]["requests"], before);
    assert_eq!(real_state(&h)["tokenRequests"], 0);
}

#[test]
fn bad_configuration_is_refused_with_78_naming_the_field_before_any_request() {
    let h = real(cxone_sim::SimConfig::default());
    let c = h.sim.credentials().clone();
    // (cxguard.toml, a file it names with its text, the field the error names)
    type Case<'a> = (String, Option<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "[tenant]\napi = \"cxone\"\nissuer = \"http://cxone.example\"\nclient_id = \"a\"\naccess_key_file = \"access-key.json\"\n".into(),
            None,
            "issuer",
        ),
        (
            format!("[tenant]\napi = \"cxone\"\nissuer = \"{}\"\nclient_id = \"a\"\naccess_key_file = \"broad.json\"\n", h.sim.cxone_issuer()),
            Some(("broad.json", "{}")),
            "tenant.access_key_file",
        ),
        (
            format!("[tenant]\napi = \"cxone\"\nissuer = \"{}\"\nclient_id = \"a\"\naccess_key_file = \"notjson.json\"\n", h.sim.cxone_issuer()),
            Some(("notjson.json", "accessKeyId=x")),
            "tenant.access_key_file",
        ),
    ];
    for (toml, file, field) in cases {
        if let Some((name, text)) = file {
            let p = h.write(name, text);
            if name == "broad.json" {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
        h.write("cxguard.toml", &toml);
        let o = h.run(&["doctor"]);
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains(field), "{field}: {all}");
        assert!(!all.contains(&c.cxone_access_key_secret));
        let o = h.run(&["inventory"]);
        assert_eq!(o.status.code(), Some(78), "{field}: {}", stderr(&o));
    }
    assert_eq!(real_state(&h)["tokenRequests"], 0);
}

#[test]
fn the_report_carries_the_inventory_as_its_section() {
    let h = real(cxone_sim::SimConfig::default());
    let o = h.run(&["report", "--format", "json", "--out", "r.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(r["api"], "cxone");
    assert_eq!(
        r["inventory"]["customers"],
        real_state(&h)["counts"]["customers"]
    );
    assert_eq!(r["audit"]["intact"], true);
    let o = h.run(&["report", "--out", "r.html"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let html = std::fs::read_to_string(h.dir.path().join("r.html")).unwrap();
    let tenant = real_state(&h)["tenantId"].as_str().unwrap().to_string();
    assert!(
        html.contains(&tenant) && html.contains("Access keys") && html.contains("Data policies")
    );
    assert!(!html.contains("<script"));
}

/// The secrets the emulator holds for every access key, as the ledger must never show.
fn new_secret_in(text: &str, file: &serde_json::Value) -> bool {
    file["accessKeySecret"]
        .as_str()
        .is_some_and(|s| text.contains(s))
}

#[test]
fn rotating_its_own_access_key_file_delivers_verifies_and_retires_the_old_key() {
    let h = real(cxone_sim::SimConfig::default());
    let old = h.sim.credentials().cxone_access_key_id.clone();
    let o = h.run(&[
        "--output",
        "json",
        "accesskeys",
        "rotate",
        "--key",
        &old,
        "--deliver",
        "file:access-key.json",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["rotations"][0]["status"], "rotated");
    let delivered: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(h.dir.path().join("access-key.json")).unwrap(),
    )
    .unwrap();
    let new = delivered["accessKeyId"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(r["rotations"][0]["newKey"], new.as_str());
    assert!(
        !h.dir.path().join("access-key.json.previous").exists(),
        "kept only until the old key was deactivated"
    );
    // The next command signs in with the new key; the old one is inactive.
    let o = h.run(&["--output", "json", "inventory"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let inv: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(inv["accessKeys"]["total"], 9);
    // The old key is refused at the token endpoint.
    let c = h.sim.credentials().clone();
    h.write(
        "old-key.json",
        &serde_json::json!({"accessKeyId": old, "accessKeySecret": c.cxone_access_key_secret})
            .to_string(),
    );
    let toml = std::fs::read_to_string(h.dir.path().join("cxguard.toml")).unwrap();
    h.write("old.toml", &toml.replace("access-key.json", "old-key.json"));
    let o = h
        .command(&["inventory"])
        .env("CXGUARD_CONFIG", "old.toml")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    assert!(stderr(&o).contains("inactive"), "{}", stderr(&o));
    // Audited, intact, and the secret nowhere but the delivered file.
    let ops: Vec<String> = [
        "accesskey.created",
        "accesskey.delivered",
        "accesskey.verified",
        "accesskey.deactivated",
    ]
    .iter()
    .filter(|op| h.ledger_entries(op).is_empty())
    .map(|s| s.to_string())
    .collect();
    assert!(ops.is_empty(), "missing audit entries {ops:?}");
    let o = h.run(&["audit", "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(!new_secret_in(&h.ledger_bytes(), &delivered));
    assert!(!new_secret_in(&out, &delivered) && !new_secret_in(&stderr(&o), &delivered));
}

#[test]
fn a_refused_new_key_is_rolled_back_and_the_old_one_stays_active() {
    let h = real(cxone_sim::SimConfig::default());
    h.sim
        .control()
        .configure(serde_json::json!({"refuseCreatedAccessKeys": true}))
        .unwrap();
    let old = h.sim.credentials().cxone_access_key_id.clone();
    let before = std::fs::read_to_string(h.dir.path().join("access-key.json")).unwrap();
    let o = h.run(&[
        "accesskeys",
        "rotate",
        "--key",
        &old,
        "--deliver",
        "file:access-key.json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("rolled back") || stderr(&o).contains("stays active"),
        "{}",
        stderr(&o)
    );
    // The file is put back, the new key gone, the old one active.
    assert_eq!(
        std::fs::read_to_string(h.dir.path().join("access-key.json")).unwrap(),
        before
    );
    let n = real_state(&h)["counts"].clone();
    assert_eq!(n["accessKeys"], 8);
    assert_eq!(n["activeAccessKeys"], 7);
    assert_eq!(h.ledger_entries("accesskey.rolled_back").len(), 1);
    let o = h.run(&["inventory"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_missing_key_or_an_unwritable_target_stops_before_anything_is_deactivated() {
    let h = real(cxone_sim::SimConfig::default());
    let o = h.run(&[
        "accesskeys",
        "rotate",
        "--key",
        "no-such-key=",
        "--deliver",
        "file:k.json",
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("--key"), "{}", stderr(&o));
    let old = h.sim.credentials().cxone_access_key_id.clone();
    let o = h.run(&[
        "accesskeys",
        "rotate",
        "--key",
        &old,
        "--deliver",
        "file:no/such/dir/k.json",
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    let n = real_state(&h)["counts"].clone();
    // The created key was deleted; the old one still active.
    assert_eq!(n["accessKeys"], 8);
    assert_eq!(n["activeAccessKeys"], 7);
}

#[test]
fn a_rotation_delivered_to_openbao_leaves_the_new_secret_there_and_none_elsewhere() {
    let Some(b) = bao() else { return };
    let h = real(cxone_sim::SimConfig::default()).env("IT_BAO_TOKEN", "it-root-token");
    with_vault(&h, &b);
    let old = h.sim.credentials().cxone_access_key_id.clone();
    let o = h.run(&[
        "accesskeys",
        "rotate",
        "--key",
        &old,
        "--deliver",
        "vault:secret/cxone/crm",
    ]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let v = bao_api(&b, "GET", "secret/data/cxone/crm", None);
    let stored = v["data"]["data"].clone();
    let new = stored["accessKeyId"]
        .as_str()
        .expect("the key in OpenBao")
        .to_string();
    assert_ne!(new, old);
    let secret = stored["accessKeySecret"].as_str().unwrap().to_string();
    assert!(secret.len() > 20);
    // The old key inactive, the new one active, the chain intact, the secret nowhere else.
    let n = real_state(&h)["counts"].clone();
    assert_eq!(
        (n["accessKeys"].as_u64(), n["activeAccessKeys"].as_u64()),
        (Some(9), Some(7))
    );
    let o = h.run(&["audit", "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    for text in [out, err, h.ledger_bytes(), stdout(&o)] {
        assert!(!text.contains(&secret), "the secret leaked");
    }
}

#[test]
fn a_rotation_killed_at_each_step_boundary_finishes_on_rerun_with_one_new_key() {
    for point in [
        "accesskey.intent",
        "accesskey.created",
        "accesskey.delivered",
        "accesskey.verified",
        "accesskey.deactivated",
    ] {
        let h = real(cxone_sim::SimConfig::default());
        let old = h.sim.credentials().cxone_access_key_id.clone();
        let args = [
            "accesskeys",
            "rotate",
            "--key",
            &old,
            "--deliver",
            "file:access-key.json",
        ];
        let o = h
            .command(&args)
            .env("CXGUARD_FAILPOINT", point)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            None,
            "{point}: killed, not exited: {}",
            stderr(&o)
        );
        let o = h.run(&args);
        assert_eq!(o.status.code(), Some(0), "{point}: {}", stderr(&o));
        // Exactly one new key: delivered, active; the old one inactive; no orphan.
        let delivered: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(h.dir.path().join("access-key.json")).unwrap(),
        )
        .unwrap();
        let new = delivered["accessKeyId"].as_str().unwrap().to_string();
        let n = real_state(&h)["counts"].clone();
        assert_eq!(
            n["accessKeys"], 9,
            "{point}: one key more than the seeded 8"
        );
        assert_eq!(
            n["activeAccessKeys"], 7,
            "{point}: the new one active, the old one not"
        );
        let o = h.run(&["--output", "json", "accesskeys", "list"]);
        let list: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{point}: {e}: {}", stderr(&o)));
        let active = |id: &str| {
            list["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["id"] == id)
                .map(|k| k["active"] == true)
        };
        assert_eq!(active(&new), Some(true), "{point}");
        assert_eq!(active(&old), Some(false), "{point}");
        let o = h.run(&["audit", "verify"]);
        assert_eq!(o.status.code(), Some(0), "{point}: {}", stdout(&o));
    }
}

#[test]
fn a_second_rotation_of_the_same_key_while_one_runs_exits_75() {
    let h = real(cxone_sim::SimConfig {
        latency: std::time::Duration::from_millis(250),
        ..Default::default()
    });
    let old = h.sim.credentials().cxone_access_key_id.clone();
    let args = [
        "accesskeys",
        "rotate",
        "--key",
        &old,
        "--deliver",
        "file:access-key.json",
    ];
    let first = h
        .command(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first has opened its job and holds the lease by now (its requests take 250 ms each).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let second = h.run(&args);
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(second.status.code(), Some(75), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("accesskey"),
        "names the running job: {}",
        stderr(&second)
    );
    let n = real_state(&h)["counts"].clone();
    assert_eq!(
        (n["accessKeys"].as_u64(), n["activeAccessKeys"].as_u64()),
        (Some(9), Some(7))
    );
}

#[test]
fn a_check_and_set_conflict_in_openbao_stops_the_job_before_deactivation() {
    let Some(b) = bao() else { return };
    let h = real(cxone_sim::SimConfig::default()).env("IT_BAO_TOKEN", "it-root-token");
    with_vault(&h, &b);
    // Someone wrote versions 1 and 2 and deleted the latest: cxguard reads no live
    // version, writes with check-and-set 0, and OpenBao refuses it (the current version
    // is 2) — the state changed under the reader, deterministically.
    bao_api(
        &b,
        "POST",
        "secret/data/cxone/crm",
        Some(r#"{"data":{"v":"1"}}"#),
    );
    bao_api(
        &b,
        "POST",
        "secret/data/cxone/crm",
        Some(r#"{"data":{"v":"2"}}"#),
    );
    bao_api(&b, "DELETE", "secret/data/cxone/crm", None);
    let old = h.sim.credentials().cxone_access_key_id.clone();
    let o = h.run(&[
        "accesskeys",
        "rotate",
        "--key",
        &old,
        "--deliver",
        "vault:secret/cxone/crm",
    ]);
    assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
    assert!(stderr(&o).contains("check-and-set"), "{}", stderr(&o));
    // Nothing deactivated; the created key deleted; OpenBao's history untouched.
    let n = real_state(&h)["counts"].clone();
    assert_eq!(
        (n["accessKeys"].as_u64(), n["activeAccessKeys"].as_u64()),
        (Some(8), Some(7))
    );
    assert!(h.ledger_entries("accesskey.deactivated").is_empty());
    assert_eq!(h.ledger_entries("accesskey.rolled_back").len(), 1);
    let meta = bao_api(&b, "GET", "secret/metadata/cxone/crm", None);
    assert_eq!(meta["data"]["current_version"], 2);
}
