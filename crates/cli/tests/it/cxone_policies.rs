//! CXone's data policies as code on the emulator's real surface: export then plan
//! unchanged; a new policy planned and created exactly once through injected faults;
//! drift reported and never applied; runs followed to their end and judged; evidence
//! downloaded, recorded and refused from a URL cxguard must not fetch.

use crate::cxone_api::real;
use crate::harness::Harness;
use crate::{stderr, stdout};

fn state(h: &Harness) -> serde_json::Value {
    h.sim.control().state()["real"].clone()
}

fn named(h: &Harness, name: &str) -> Vec<serde_json::Value> {
    state(h)["policies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["policyName"] == name)
        .cloned()
        .collect()
}

const NEW: &str = r#"
[[data_policies]]
name = "Voice recordings: 7 years"
type = "RETENTION"
entity_type = "MASTER_CONTACT"
retention_days = 2555
media = ["VOICE"]
recurring = { frequency = "DAILY" }
[[data_policies.criteria]]
field = "skillName"
operator = "EQUALS"
value = "Support"
"#;

#[test]
fn export_plans_unchanged_and_a_new_policy_is_created_once_through_faults() {
    let h = real(cxone_sim::SimConfig::default());
    let o = h.run(&["export", "--out", "posture.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let exported = std::fs::read_to_string(h.dir.path().join("posture.toml")).unwrap();
    assert_eq!(
        exported.matches("[[data_policies]]").count(),
        4,
        "{exported}"
    );
    let o = h.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));

    let two = "\n[[data_policies]]\nname = \"Two media\"\ntype = \"RETENTION\"\nentity_type = \"MASTER_CONTACT\"\nmedia = [\"VOICE\", \"SCREEN\"]\ncriteria = []\n";
    h.write("posture.toml", &format!("{exported}{NEW}{two}"));
    let o = h.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains(
                "\"Two media\" is missing and declares 2 media types; CXone's create takes one"
            ),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("+ data policy \"Voice recordings: 7 years\": create (RETENTION, MASTER_CONTACT, 2555 days, DAILY)"),
        "{}",
        stdout(&o)
    );
    // 10% of requests fail before any change, 10% lose their answer after it.
    h.sim
        .control()
        .configure(serde_json::json!({"faultRate": 0.1, "resetRate": 0.1}))
        .unwrap();
    let o = h.run(&["apply", "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    h.sim
        .control()
        .configure(serde_json::json!({"faultRate": 0.0, "resetRate": 0.0}))
        .unwrap();
    let made = named(&h, "Voice recordings: 7 years");
    assert!(
        named(&h, "Two media").is_empty(),
        "not creatable as declared"
    );
    assert_eq!(made.len(), 1, "created exactly once: {made:?}");
    assert_eq!(made[0]["retentionValueInDays"], "2555");
    let created = h.ledger_entries("data_policy.created");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].target, made[0]["policyId"].as_str().unwrap());
    h.write("posture.toml", &format!("{exported}{NEW}"));
    let o = h.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));

    // Its run, followed to the end.
    let o = h.run(&[
        "--output",
        "json",
        "policies",
        "runs",
        "--policy",
        "Voice recordings: 7 years",
        "--wait",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["runs"][0]["status"], "SUCCEEDED", "{v}");
    assert_eq!(v["runs"][0]["summary"]["progress"], 100);
    assert!(
        stderr(&o).contains("SUCCEEDED"),
        "the progress shows each step"
    );
    let o = h.run(&["audit", "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_changed_retention_is_drift_named_by_field_and_apply_changes_nothing() {
    let h = real(cxone_sim::SimConfig::default());
    let o = h.run(&["export", "--out", "posture.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let exported = std::fs::read_to_string(h.dir.path().join("posture.toml")).unwrap();
    assert!(exported.contains("retention_days = 730"), "{exported}");
    h.write(
        "posture.toml",
        &exported.replace("retention_days = 730", "retention_days = 365"),
    );
    let o = h.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        out.contains("\"Voice retention 2y\": retention_days differs (declared 365, live 730): cannot be changed through CXone's API"),
        "{out}"
    );
    assert!(out.contains("change it in CXone's UI"), "{out}");
    let before = state(&h)["policies"].clone();
    let o = h.run(&["apply", "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(state(&h)["policies"], before, "apply changed nothing");
    assert!(h.ledger_entries("data_policy.created").is_empty());
}

#[test]
fn bad_data_policies_are_refused_naming_each_line_before_any_call() {
    let h = real(cxone_sim::SimConfig::default());
    h.write(
        "posture.toml",
        r#"[[data_policies]]
type = "RETENTION"
entity_type = "MASTER_CONTACT"
criteria = []

[[data_policies]]
name = "A"
type = "RETENTION"
entity_type = "CONTACT"
retention_days = 0
criteria = []

[[data_policies]]
name = "A"
type = "RETENTION"
entity_type = "SEGMENT"
criteria = []

[[data_policies]]
name = "B"
entity_type = "SEGMENT"
"#,
    );
    let requests = state(&h)["requests"].clone();
    let o = h.run(&["plan"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    let e = stderr(&o);
    for want in [
        "posture.toml:1: data_policies.name: required",
        "posture.toml:6: data_policies.entity_type: \"CONTACT\" is not MASTER_CONTACT or SEGMENT",
        "posture.toml:6: data_policies.retention_days: 0 is not a positive number of days",
        "posture.toml:13: data_policies.name: \"A\" is also declared on line 6",
        "posture.toml:19: data_policies.type: required",
        "posture.toml:19: data_policies.criteria: required",
    ] {
        assert!(e.contains(want), "{want}\n{e}");
    }
    assert_eq!(state(&h)["requests"], requests, "nothing sent");
}

#[test]
fn runs_waiting_for_approval_too_long_are_findings() {
    let h = real(cxone_sim::SimConfig::default());
    // The seeded erasure policy's run has waited a day for approval.
    let o = h.run(&[
        "policies",
        "runs",
        "--policy",
        "GDPR erasure",
        "--approval-hours",
        "12",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("waiting for approval for 24 h, more than 12 h"),
        "{}",
        stdout(&o)
    );
    let o = h.run(&[
        "policies",
        "runs",
        "--policy",
        "GDPR erasure",
        "--approval-hours",
        "48",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    // Every run: the failed and partial ones are findings too.
    let o = h.run(&["--output", "json", "policies", "runs"]);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let findings: Vec<&str> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["finding"].is_string())
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(findings.len(), 3, "{v}");
    for s in ["FAILED", "PARTIALLY_SUCCEEDED", "PENDING_APPROVAL"] {
        assert!(findings.contains(&s), "{findings:?}");
    }
    // status carries them as findings.
    let o = h.run(&["status"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        out.contains("data policy \"Litigation hold: case 17\", run run-0006: the run FAILED"),
        "{out}"
    );
    assert!(out.contains("PARTIALLY_SUCCEEDED"), "{out}");
}

#[test]
fn evidence_is_written_0600_recorded_and_refused_from_urls_it_must_not_fetch() {
    let h = real(cxone_sim::SimConfig::default());
    let o = h.run(&["policies", "evidence", "run-0001", "--out", "ev"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let path = h.dir.path().join("ev/evidence-run-0001.csv");
    let bytes = std::fs::read(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let digest = guard::sha256_hex_bytes(&bytes);
    let entries = h.ledger_entries("data_policy.evidence");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].target, "run-0001");
    assert_eq!(entries[0].details["sha256"], digest.as_str());
    assert_eq!(entries[0].details["bytes"], bytes.len() as u64);
    // Never overwritten.
    let o = h.run(&["policies", "evidence", "run-0001", "--out", "ev"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    // The report lists it with its digest.
    let o = h.run(&["report", "--format", "json", "--out", "r.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report = std::fs::read_to_string(h.dir.path().join("r.json")).unwrap();
    assert!(
        report.contains(&digest),
        "the report carries the evidence digest"
    );

    // A redirecting URL, and plain http off loopback: refused, nothing written.
    h.sim
        .control()
        .configure(serde_json::json!({"evidenceRedirect": true}))
        .unwrap();
    let o = h.run(&["policies", "evidence", "run-0002", "--out", "ev2"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("redirect"), "{}", stderr(&o));
    assert!(!h.dir.path().join("ev2/evidence-run-0002.csv").exists());
    h.sim
        .control()
        .configure(serde_json::json!({"evidenceRedirect": false, "evidenceUrl": "http://198.51.100.7/r.csv"}))
        .unwrap();
    let o = h.run(&["policies", "evidence", "run-0002", "--out", "ev2"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("only https"), "{}", stderr(&o));
    assert!(!h.dir.path().join("ev2/evidence-run-0002.csv").exists());
    assert_eq!(h.ledger_entries("data_policy.evidence").len(), 1);
}
