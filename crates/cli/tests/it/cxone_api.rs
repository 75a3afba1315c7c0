//! `api = "cxone"`: CXone's published API against the emulator's real surface —
//! doctor, inventory, a refused access key, the commands it does not have, and the
//! configuration it refuses before any request.

use crate::harness::Harness;
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
        &["plan"],
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
