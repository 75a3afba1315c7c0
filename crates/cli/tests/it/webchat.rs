//! `cxguard webchat plan | apply | export | drift` as a user runs them: every bad origin
//! and pattern refused before any call, a colleague's concurrent edit kept, idempotent
//! applies, drift for CI, export round trips, and a WAF digest anyone can recompute.

use serde_json::Value;

use crate::harness::Harness;
use crate::{stderr, stdout};

const PUT: &str = "PUT /api/v2/webchat/widgets/{id}";

fn puts(h: &Harness) -> u64 {
    h.sim.control().route_hits(PUT)
}

fn corpus(which: &str) -> Vec<String> {
    let text = include_str!("../../../guard/tests/data/xss-patterns.json");
    let v: Value = serde_json::from_str(text).unwrap();
    serde_json::from_value(v[which].clone()).unwrap()
}

fn rules_file(widget: &str, patterns: &[String]) -> String {
    let mut f = format!("[widgets.{widget}]\n");
    for (i, p) in patterns.iter().enumerate() {
        f.push_str(&format!(
            "[[widgets.{widget}.rules]]\nid = \"r{i}\"\naction = \"block\"\npattern = {}\n",
            guard::webchat::export::toml_string(p)
        ));
    }
    f
}

#[test]
fn every_bad_origin_and_pattern_exits_65_and_puts_nothing() {
    let h = Harness::start(cxone_sim::SimConfig::default());
    let bad_origins = [
        "https://-.",
        "https://www.example.com/",
        "https://www.example.com/path",
        "https://www.example.com?q=1",
        "https://www.example.com#x",
        "https://user@www.example.com",
        "https://*.example.com",
        "http://www.example.com",
        "ftp://www.example.com",
        "www.example.com",
        "https://www.example.com:",
    ];
    let list: Vec<String> = bad_origins
        .iter()
        .map(|o| guard::webchat::export::toml_string(o))
        .collect();
    h.write(
        "origins.toml",
        &format!(
            "[widgets.wgt-support]\ncors_origins = [{}]\nrequire_token = true\ntoken_expiry_minutes = 3000\n",
            list.join(", ")
        ),
    );
    for cmd in ["plan", "apply", "drift"] {
        let o = h.run(&["webchat", cmd, "--policy", "origins.toml"]);
        assert_eq!(o.status.code(), Some(65), "{cmd}: {}", stderr(&o));
        let e = stderr(&o);
        for i in 0..bad_origins.len() {
            assert!(
                e.contains(&format!("widgets.wgt-support.cors_origins[{i}]")),
                "{cmd}: origin {i} not named:\n{e}"
            );
        }
        assert!(e.contains("token_expiry_minutes: 3000"), "{e}");
    }
    // Two spellings of one origin.
    h.write(
        "dupes.toml",
        "[widgets.wgt-support]\ncors_origins = [\"https://bücher.example\", \"https://xn--bcher-kva.example:443\"]\n",
    );
    let o = h.run(&["webchat", "apply", "--policy", "dupes.toml"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(
        stderr(&o).contains("same origin once normalized (https://xn--bcher-kva.example)"),
        "{}",
        stderr(&o)
    );

    // Every evasion in the corpus, in files of at most 50 rules: each rule named.
    let evasions = corpus("evasions");
    for (n, chunk) in evasions.chunks(40).enumerate() {
        h.write("xss.toml", &rules_file("wgt-support", chunk));
        let o = h.run(&["webchat", "apply", "--policy", "xss.toml"]);
        assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
        let e = stderr(&o);
        for (i, p) in chunk.iter().enumerate() {
            assert!(
                e.contains(&format!("rules[{i}].pattern")),
                "chunk {n}: rule {i} ({p:?}) not refused:\n{e}"
            );
        }
        assert!(!e.contains("rewritten") || e.contains("not rewritten"));
    }
    assert_eq!(puts(&h), 0, "no PUT was sent");
    assert_eq!(
        h.sim
            .control()
            .route_hits("GET /api/v2/webchat/widgets/{id}"),
        0,
        "nor any call"
    );

    // Ordinary patterns that merely contain the words are accepted.
    h.write("ok.toml", &rules_file("wgt-support", &corpus("ordinary")));
    let o = h.run(&["webchat", "plan", "--policy", "ok.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        h.sim
            .control()
            .route_hits("GET /api/v2/webchat/widgets/{id}"),
        1,
        "the counter above counts this route"
    );
}

/// SHA-256 of the canonical JSON of `v`, computed by Python, independently of cxguard.
fn python_jcs_sha256(v: &Value) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib, json, sys; d = json.load(sys.stdin); \
             print(hashlib.sha256(json.dumps(d, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode()).hexdigest())",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(v.to_string().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

#[test]
fn export_plan_apply_with_a_concurrent_edit_then_drift() {
    let h = Harness::start(cxone_sim::SimConfig::default()).env(
        "IT_WEBHOOK_SECRET",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    let (hook, received) = h.receiver("waf");
    h.write(
        "cxguard.toml",
        &format!("[webhooks.waf]\nurl = \"{hook}\"\nsecret_env = \"IT_WEBHOOK_SECRET\"\n"),
    );

    // Export → plan: no changes for every seeded widget.
    let o = h.run(&["webchat", "export"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let exported = stdout(&o);
    assert!(exported.contains("[widgets.wgt-support]") && exported.contains("[widgets.wgt-sales]"));
    h.write("live.toml", &exported);
    let o = h.run(&[
        "webchat",
        "plan",
        "--policy",
        "live.toml",
        "--detailed-exitcode",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("0 of 2 widget(s) to change"),
        "{}",
        stdout(&o)
    );

    // Our change: one origin edited, one rule added; the name is not ours to manage.
    let ours = exported.replace(
        "https://support.example.com\"",
        "https://help.example.com:8443\"",
    ) + "[[widgets.wgt-support.rules]]\nid = \"block-admin\"\naction = \"block\"\npattern = \"/admin/*\"\n";
    h.write("policy.toml", &ours);
    let o = h.run(&[
        "webchat",
        "plan",
        "--policy",
        "policy.toml",
        "--detailed-exitcode",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let plan = stdout(&o);
    crate::assert_report_fits_and_adds_up(&plan);
    for want in [
        "~ wgt-support (Support chat)",
        "+ origin https://help.example.com:8443",
        "- origin https://support.example.com",
        "+ rule block-admin",
        "wgt-sales (Sales chat): no changes",
    ] {
        assert!(plan.contains(want), "{want:?} in\n{plan}");
    }
    assert_eq!(puts(&h), 0, "a plan writes nothing");

    // A colleague renames the widget between our GET and our PUT.
    h.sim.control().race_edit_widget(
        "wgt-support",
        serde_json::json!({"name": "Support chat (EU)"}),
    );
    let o = h.run(&["webchat", "apply", "--policy", "policy.toml"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    crate::assert_report_fits_and_adds_up(&stdout(&o));
    assert_eq!(
        puts(&h),
        2,
        "a 412, then a PUT re-planned on the fresh widget"
    );
    let w = h.sim.control().widget("wgt-support").unwrap();
    assert_eq!(w["name"], "Support chat (EU)", "their change survives");
    let sp = &w["settings"]["securityPolicies"];
    assert_eq!(
        sp["corsOrigins"],
        serde_json::json!(["https://www.example.com", "https://help.example.com:8443"]),
        "ours lands"
    );
    assert_eq!(sp["rules"][2]["id"], "block-admin");

    // Again: nothing to do, no PUT.
    let o = h.run(&["webchat", "apply", "--policy", "policy.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("wgt-support: no changes"),
        "{}",
        stdout(&o)
    );
    assert_eq!(puts(&h), 2);
    let o = h.run(&[
        "webchat",
        "plan",
        "--policy",
        "policy.toml",
        "--detailed-exitcode",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    // Someone changes the tenant: drift for cron and CI.
    h.sim
        .control()
        .edit_widget(
            "wgt-support",
            serde_json::json!({"settings": {"securityPolicies": {"authentication": {"requireToken": false, "tokenExpiryMinutes": 60}}}}),
        )
        .unwrap();
    let o = h.run(&[
        "webchat",
        "plan",
        "--policy",
        "policy.toml",
        "--detailed-exitcode",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = h.run(&["webchat", "drift", "--policy", "policy.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stdout(&o).trim(),
        "drift wgt-support: requireToken: false → true"
    );

    // The WAF got one event per deployment, its digest recomputable by anyone.
    let o = h.run(&["outbox", "deliver", "--until-empty", "--max-wait", "10"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "webchat.policy_deployed");
    // The policies as deployed (before the later tenant edit): rebuild them.
    let mut deployed = sp.clone();
    deployed["authentication"]["requireToken"] = true.into();
    assert_eq!(got[0]["data"]["configDigest"], python_jcs_sha256(&deployed));

    let l = h.ledger();
    let entries =
        h.rt.block_on(l.entries(&ledger::Filter {
            operation: Some("webchat.policy_deploy".into()),
            ..Default::default()
        }))
        .unwrap();
    let changed: Vec<_> = entries.iter().filter(|e| e.outcome == "success").collect();
    assert_eq!(changed.len(), 1, "one entry per widget changed");
    assert_eq!(changed[0].target, "wgt-support");
    let o = h.run(&["audit", "verify"]);
    assert!(o.status.success(), "{}", stdout(&o));

    // An unsafe rule someone put in the tenant by other means is a finding of export.
    h.sim
        .control()
        .edit_widget(
            "wgt-sales",
            serde_json::json!({"settings": {"securityPolicies": {"rules": [
                {"id": "legacy", "action": "allow", "pattern": "&#x3C;iframe src=x>"}
            ]}}}),
        )
        .unwrap();
    let o = h.run(&["webchat", "export", "--widget", "wgt-sales"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "finding: widgets.wgt-sales.rules[0].pattern: contains a script vector (<iframe)"
        ),
        "{}",
        stderr(&o)
    );
    let o = h.run(&["webchat", "export", "--widget", "no-such-widget"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
}
