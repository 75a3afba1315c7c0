//! `cxguard plan | apply | export` — posture as code over the protections.

use base64::Engine as _;

use crate::harness::Harness;
use crate::{stderr, stdout};

const PUT: &str = "PUT /api/v2/webchat/widgets/{id}";

const MASKING: &str = r#"default_region = "US"
[keys]
k = { id = "it-key-1", env = "IT_ANON_KEY" }
[fields]
firstName = { op = "erase" }
email = { op = "pseudonymize", key = "k" }
"#;

fn harness() -> Harness {
    harness_with(cxone_sim::SimConfig {
        contacts: 300,
        ..Default::default()
    })
}

/// An emulator with `config`, the masking policy and the CRM key's values in place.
fn harness_with(config: cxone_sim::SimConfig) -> Harness {
    let h = Harness::start(config).env(
        "IT_ANON_KEY",
        &base64::engine::general_purpose::STANDARD.encode([11u8; 32]),
    );
    h.write("masking.toml", MASKING);
    // The CRM key's current value, for the rollback a rotation keeps ready.
    let seed = cxone_sim::SimConfig::default().seed;
    h.write(
        "crm.previous",
        &cxone_sim::seeded_secret_value(seed, "sec-crm-api-key").unwrap(),
    );
    h.write("crm.next", "a-new-crm-api-key-0123456789abcdefghijkl");
    h
}

/// A posture needing every kind of change on a fresh emulator.
const POSTURE: &str = r#"
[secrets]
unmanaged = ["sec-unused-token"]
[secrets.each.sec-crm-api-key]
max_age_days = 30
value_file = "crm.next"
previous_file = "crm.previous"

[contacts]
retention_days = 365
policy = "masking.toml"

[[datastore.tables]]
table = "ds-customer/tbl-customer-profiles"
columns = ["card_number", "ssn", "passport_number"]
compliance = "PCI"

[webchat.widgets.wgt-support]
cors_origins = ["https://www.example.com", "https://help.example.com"]
"#;

#[test]
fn plan_apply_plan_covers_every_protection_and_a_stale_plan_is_refused() {
    let h = harness();
    h.write("posture.toml", POSTURE);

    let o = h.run(&["plan", "--detailed-exitcode", "--out", "plan.json"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    let plan = stdout(&o);
    crate::assert_report_fits_and_adds_up(&plan);
    for want in [
        "~ webchat wgt-support: origins +https://help.example.com; origins -https://support.example.com",
        "~ datastore ds-customer/tbl-customer-profiles: encrypt ssn, passport_number",
        "~ secret sec-crm-api-key: rotate (120 days old, max 30)",
        "~ contacts: anonymize ",
        "4 to change",
    ] {
        assert!(plan.contains(want), "{want:?} in\n{plan}");
    }

    // Stale: the widget changes in the tenant after the plan was saved.
    h.sim
        .control()
        .edit_widget("wgt-support", serde_json::json!({"name": "Renamed"}))
        .unwrap();
    let o = h.run(&["apply", "plan.json"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("stale") && stderr(&o).contains("webchat widget wgt-support: ETag"),
        "{}",
        stderr(&o)
    );
    assert_eq!(h.sim.control().route_hits(PUT), 0, "nothing applied");
    assert_eq!(h.sim.control().mutations("table/").len(), 0);

    // A fresh plan, applied as saved.
    let o = h.run(&["plan", "--out", "plan.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = h.run(&["apply", "plan.json"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    crate::assert_report_fits_and_adds_up(&out);
    for want in [
        "webchat: applied",
        "encryption: applied",
        "secrets: applied",
        "retention: applied",
    ] {
        assert!(out.contains(want), "{want:?} in\n{out}");
    }
    let w = h.sim.control().widget("wgt-support").unwrap();
    assert_eq!(w["name"], "Renamed", "not managed, kept");

    let o = h.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("0 to change"), "{}", stdout(&o));

    let l = h.ledger();
    let runs =
        h.rt.block_on(l.entries(&ledger::Filter {
            operation: Some("posture.apply.*".into()),
            ..Default::default()
        }))
        .unwrap();
    assert_eq!(runs.len(), 2, "one entry opens the run, one closes it");

    let o = h.run(&["status", "--output", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for p in st["protections"].as_array().unwrap() {
        assert!(p["lastSuccess"].is_string(), "{p}");
        assert_eq!(p["drift"], 0, "{p}");
    }
    assert_eq!(st["audit"]["intact"], true, "{st}");
    h.sim
        .control()
        .edit_widget("wgt-support", serde_json::json!({"settings": {"securityPolicies": {"corsOrigins": ["https://www.example.com"]}}}))
        .unwrap();
    let o = h.run(&["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("webchat") && l.ends_with("yes (1 to change)")),
        "{}",
        stdout(&o)
    );
    let o = h.run(&["audit", "verify"]);
    assert!(o.status.success(), "{}", stdout(&o));
}

/// The plan file as JSON, and written back.
fn plan_json(h: &Harness) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(h.dir.path().join("plan.json")).unwrap()).unwrap()
}

fn write_plan(h: &Harness, v: &serde_json::Value) {
    std::fs::write(
        h.dir.path().join("plan.json"),
        serde_json::to_string_pretty(v).unwrap(),
    )
    .unwrap();
}

/// What an attacker who can write the plan file can do: recompute the plain digest.
fn redigest(v: &mut serde_json::Value) {
    let mut bare = v.clone();
    bare["digest"] = "".into();
    bare.as_object_mut().unwrap().remove("signature");
    v["digest"] = guard::sha256_hex(&guard::webchat::plan::canonical_json(&bare)).into();
}

/// Signs `v` as `plan --out` does, with `key`.
fn sign(v: &mut serde_json::Value, key: &ledger::AuditKey) {
    let mut body = v.clone();
    body.as_object_mut().unwrap().remove("signature");
    let value = key.sign_document(
        "cxguard-posture-plan",
        &guard::webchat::plan::canonical_json(&body),
    );
    v["signature"] = serde_json::json!({"keyId": key.key_id(), "value": value});
}

/// Regression (trust review, item 1): a saved plan's cut-off edited to 9999 (its plain
/// SHA-256 digest recomputed) anonymized 990 contacts instead of 257. Now a plan is
/// signed with the ledger's audit key, and `apply` re-derives every action from the
/// posture and the tenant: an edited plan, an unsigned one, one signed by another key,
/// and even one the right key signed with actions the posture does not yield, exit 65
/// and change nothing.
#[test]
fn an_edited_unsigned_or_foreign_plan_exits_65_and_changes_nothing() {
    let h = harness();
    h.write("posture.toml", POSTURE);
    let o = h.run(&["plan", "--out", "plan.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let original = plan_json(&h);
    assert!(original["signature"]["value"].is_string(), "{original}");
    let nothing_changed = |what: &str| {
        let c = h.sim.control();
        assert_eq!(
            c.mutations(""),
            Default::default(),
            "{what}: the tenant changed"
        );
        assert_eq!(c.route_hits(PUT), 0, "{what}");
    };

    let mut edited = original.clone();
    edited["contacts"]["cutoff"] = "9999-01-01T00:00:00Z".into();
    redigest(&mut edited);
    write_plan(&h, &edited);
    let o = h.run(&["apply", "plan.json"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("edited after it was signed"),
        "{}",
        stderr(&o)
    );
    nothing_changed("edited");

    let mut unsigned = edited.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    write_plan(&h, &unsigned);
    let o = h.run(&["apply", "plan.json"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("not signed"), "{}", stderr(&o));
    nothing_changed("unsigned");

    let other = ledger::AuditKey::generate().unwrap();
    let mut foreign = edited.clone();
    sign(&mut foreign, &other);
    write_plan(&h, &foreign);
    let o = h.run(&["apply", "plan.json"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("signed by key {}", other.key_id())),
        "{}",
        stderr(&o)
    );
    nothing_changed("foreign");

    // Signed by the ledger's own key, and still refused: the posture does not yield it.
    let own = ledger::AuditKey::load(&h.home.path().join("audit-signing.key")).unwrap();
    let mut forged = edited.clone();
    sign(&mut forged, &own);
    write_plan(&h, &forged);
    let o = h.run(&["apply", "plan.json"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("stale") && stderr(&o).contains("contacts.cutoff"),
        "{}",
        stderr(&o)
    );
    nothing_changed("signed but not yielded");

    // The plan as saved applies.
    write_plan(&h, &original);
    let o = h.run(&["apply", "plan.json"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("retention: applied"), "{}", stdout(&o));
}

#[test]
fn an_invalid_posture_lists_every_problem_and_changes_nothing() {
    let h = harness();
    h.write(
        "posture.toml",
        r#"
[secrets]
max_age_days = 90
[secrets.each.sec-crm-api-key]
max_age_days = 30

[contacts]
retention_days = 0
policy = "masking.toml"

[[datastore.tables]]
table = "ds-customer/tbl-customer-profiles"
columns = ["ssn", "no_such_column"]

[webchat.widgets.wgt-support]
cors_origins = ["http://www.example.com/"]
"#,
    );
    for args in [&["plan"][..], &["apply", "--auto-approve"][..]] {
        let o = h.run(args);
        assert_eq!(o.status.code(), Some(65), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        for want in [
            "(4 problems)",
            "secrets.each.sec-crm-api-key: no value source",
            "contacts.retention_days: must be at least 1",
            "no_such_column",
            "widgets.wgt-support.cors_origins[0]",
        ] {
            assert!(e.contains(want), "{args:?}: {want:?} in\n{e}");
        }
    }
    assert_eq!(h.sim.control().route_hits(PUT), 0);
    assert_eq!(
        h.sim
            .control()
            .route_hits("GET /api/v2/webchat/widgets/{id}"),
        0,
        "only the reads validation needs"
    );
}

#[test]
fn export_then_plan_shows_no_changes() {
    let h = harness();
    let o = h.run(&["export", "--out", "posture.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = h.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("0 to change"), "{out}");
    assert!(out.contains("secrets: no max_age_days"), "{out}");

    // The same posture as a [posture] section of cxguard.toml.
    let text = std::fs::read_to_string(h.dir.path().join("posture.toml")).unwrap();
    let section: String = text
        .lines()
        .map(|l| {
            if let Some(rest) = l.strip_prefix("[[") {
                format!("[[posture.{rest}\n")
            } else if let Some(rest) = l.strip_prefix('[') {
                format!("[posture.{rest}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::remove_file(h.dir.path().join("posture.toml")).unwrap();
    h.write("cxguard.toml", &section);
    let o = h.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("0 to change"), "{}", stdout(&o));
}

/// What an apply leaves behind that a crash must not change: the tenant's state and the
/// protections' audit entries, counted.
fn outcome(h: &Harness) -> serde_json::Value {
    let c = h.sim.control();
    let l = h.ledger();
    let mut ops = std::collections::BTreeMap::new();
    for e in
        h.rt.block_on(l.entries(&ledger::Filter::default()))
            .unwrap()
    {
        if [
            "contact.anonymize",
            "webchat.policy_deploy",
            "datastore.encrypt",
            "secret.rotate",
        ]
        .iter()
        .any(|p| e.operation.starts_with(p))
            && e.outcome == "success"
        {
            *ops.entry(e.operation.clone()).or_insert(0u64) += 1;
        }
    }
    let contacts = c.mutations("contact/");
    serde_json::json!({
        "widget": c.widget("wgt-support").unwrap()["settings"]["securityPolicies"],
        "keyVersion": c.state()["keyVersion"],
        "secretVersion": c.secret("sec-crm-api-key").unwrap()["version"],
        "contactsChanged": contacts.len(),
        "contactPatches": contacts.values().sum::<u64>(),
        "audit": ops,
    })
}

fn crash_harness() -> Harness {
    let h = harness_with(cxone_sim::SimConfig {
        contacts: 3000,
        latency: std::time::Duration::from_millis(3),
        ..Default::default()
    });
    h.write("posture.toml", POSTURE);
    let o = h.run(&["plan", "--out", "plan.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    h
}

#[test]
fn an_apply_killed_at_three_points_resumes_to_the_same_end() {
    let reference = crash_harness();
    let o = reference.run(&["apply", "plan.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = outcome(&reference);
    assert!(want["contactsChanged"].as_u64().unwrap() > 0, "{want}");

    // Killed at points reached by progress, not by time (a fast machine finished the
    // whole apply before a 1.5 s timer): mid secret rotation, and after 500 and 1,500
    // contact PATCHes of the retention job.
    const SECRET_PUT: &str = "PUT /api/v2/integration/secret/{id}";
    const CONTACT_PATCH: &str = "PATCH /api/v1/contacts/{id}";
    for (route, hits) in [
        (SECRET_PUT, 1u64),
        (CONTACT_PATCH, 500),
        (CONTACT_PATCH, 1500),
    ] {
        let delay_ms = format!("{hits} × {route}");
        let h = crash_harness();
        let mut child = h
            .command(&["apply", "plan.json"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let waiting = std::time::Instant::now();
        while h.sim.control().route_hits(route) < hits
            && waiting.elapsed() < std::time::Duration::from_secs(120)
            && child.try_wait().unwrap().is_none()
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the apply ended before {delay_ms}"
        );
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        let o = h.run(&["jobs", "list", "--output", "json"]);
        let jobs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let run = jobs
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["kind"] == "posture.apply")
            .map(|j| j["id"].as_str().unwrap().to_string());
        let at_kill = outcome(&h);
        let o = match &run {
            Some(run) => h.run(&["apply", "--resume", run]),
            // Killed before the run began: nothing changed, the plan still holds.
            None => h.run(&["apply", "plan.json"]),
        };
        assert!(
            o.status.success(),
            "after {delay_ms} ({run:?}): {}{}",
            stdout(&o),
            stderr(&o)
        );
        assert_eq!(
            outcome(&h),
            want,
            "killed after {delay_ms} ({run:?}), when the state was {at_kill}"
        );
        let o = h.run(&["audit", "verify"]);
        assert!(o.status.success(), "{}", stdout(&o));
        let o = h.run(&["plan", "--detailed-exitcode"]);
        assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    }
}
