//! `--output json` is a contract: every command's JSON document validates against its
//! JSON Schema in docs/schemas/, and every command that prints JSON has one.
//!
//! Set `CXGUARD_WRITE_SAMPLES=DIR` to keep the documents this test validated (to review a
//! schema change against real output).

use std::collections::BTreeSet;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;

use crate::harness::Harness;
use crate::{stderr, stdout};

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas")
}

/// Commands with no JSON document of their own: long-running servers print none, and
/// these print files in other formats (TOML, shell scripts, man pages, JSON Lines of
/// audit entries, which `audit-entry.json` covers line by line).
const NO_JSON: &[&str] = &["serve", "completions", "man", "export", "audit-export"];

/// Every leaf command, as `contacts-anonymize`, from the man pages clap writes.
fn leaf_commands(dir: &Path) -> BTreeSet<String> {
    let man = dir.join("man");
    let o = crate::cxguard(&["man", "--out", man.to_str().unwrap()], &[], dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let pages: BTreeSet<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".1").map(str::to_string))
        .filter_map(|n| n.strip_prefix("cxguard-").map(str::to_string))
        .filter(|n| !n.ends_with("-help") && n != "help")
        .collect();
    // A page with children (`contacts` has `contacts-anonymize`) is a group, not a leaf.
    pages
        .iter()
        .filter(|p| !pages.iter().any(|q| q.starts_with(&format!("{p}-"))))
        .cloned()
        .collect()
}

struct Documents {
    dir: PathBuf,
    /// (schema name, document file)
    pairs: Vec<(String, PathBuf)>,
}

impl Documents {
    fn add(&mut self, schema: &str, json: &str) {
        let v: serde_json::Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("{schema}: not one JSON document ({e}):\n{json}"));
        let file = self.dir.join(format!("{schema}.{}.json", self.pairs.len()));
        std::fs::write(&file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        self.pairs.push((schema.to_string(), file));
    }
}

/// Runs `cxguard --output json args…`, expects `code`, and keeps stdout for `schema`.
fn json(h: &Harness, docs: &mut Documents, schema: &str, args: &[&str], code: i32) -> String {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let o = h.run(&all);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{args:?}: {}{}",
        stdout(&o),
        stderr(&o)
    );
    let out = stdout(&o);
    docs.add(schema, &out);
    out
}

const POLICY: &str = r#"default_region = "US"
[keys]
k = { id = "it-key-1", env = "IT_ANON_KEY" }
[fields]
firstName = { op = "erase" }
email = { op = "pseudonymize", key = "k" }
phone = { op = "encrypt", key = "k" }
"#;

#[test]
fn every_commands_json_output_validates_against_its_schema() {
    let key = base64::engine::general_purpose::STANDARD.encode([11u8; 32]);
    let h = Harness::start(cxone_sim::SimConfig {
        contacts: 120,
        ..Default::default()
    })
    .env("IT_ANON_KEY", &key)
    .env("IT_IDENTITY_KEY", &key)
    .env("IT_HOOK", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let (hook, _got) = h.receiver("hook");
    h.write(
        "cxguard.toml",
        &format!(
            "[identity]\nkey = {{ id = \"guest-id-it\", env = \"IT_IDENTITY_KEY\" }}\n\
             default_region = \"US\"\n\
             [webhooks.consent]\nurl = \"{hook}\"\nsecret_env = \"IT_HOOK\"\n\
             [webhooks.vault]\nurl = \"{hook}\"\nsecret_env = \"IT_HOOK\"\n"
        ),
    );
    h.write("policy.toml", POLICY);
    let seed = cxone_sim::SimConfig::default().seed;
    h.write(
        "crm.previous",
        &cxone_sim::seeded_secret_value(seed, "sec-crm-api-key").unwrap(),
    );
    h.write("crm.next", "a-new-crm-api-key-0123456789abcdefghijkl");
    h.write(
        "posture.toml",
        "[contacts]\nretention_days = 365\npolicy = \"policy.toml\"\n\
         [webchat.widgets.wgt-support]\ncors_origins = [\"https://www.example.com\"]\n",
    );
    h.write(
        "pairs.csv",
        "guest_id,identifier\ng-000002,ann@example.com\ng-000003,+1 415 555 0100\n",
    );
    let samples = h.dir.path().join("json");
    std::fs::create_dir_all(&samples).unwrap();
    let mut docs = Documents {
        dir: samples.clone(),
        pairs: Vec::new(),
    };
    let d = &mut docs;

    json(&h, d, "doctor", &["doctor"], 0);
    json(&h, d, "inventory", &["inventory"], 0);
    for args in [
        &[
            "contacts",
            "anonymize",
            "--policy",
            "policy.toml",
            "--all",
            "--dry-run",
        ][..],
        &["contacts", "anonymize", "--policy", "policy.toml", "--all"],
    ] {
        json(&h, d, "contacts-anonymize", args, 0);
    }
    json(
        &h,
        d,
        "contacts-reveal",
        &[
            "contacts",
            "reveal",
            "c-0000001",
            "--field",
            "phone",
            "--policy",
            "policy.toml",
        ],
        0,
    );
    json(&h, d, "secrets-list", &["secrets", "list"], 0);
    json(
        &h,
        d,
        "secrets-due",
        &["secrets", "due", "--max-age", "30d"],
        2,
    );
    let rotate = [
        "secrets",
        "rotate",
        "sec-crm-api-key",
        "--value-file",
        "crm.next",
        "--previous-value-file",
        "crm.previous",
    ];
    let mut dry = rotate.to_vec();
    dry.push("--dry-run");
    json(&h, d, "secrets-rotate", &dry, 0);
    json(&h, d, "secrets-rotate", &rotate, 0);
    let table = "ds-customer/tbl-customer-profiles";
    json(
        &h,
        d,
        "datastore-encrypt",
        &[
            "datastore",
            "encrypt",
            table,
            "--columns",
            "ssn",
            "--dry-run",
        ],
        0,
    );
    json(
        &h,
        d,
        "datastore-encrypt",
        &["datastore", "encrypt", table, "--columns", "ssn"],
        0,
    );
    json(
        &h,
        d,
        "datastore-coverage",
        &["datastore", "coverage", table],
        0,
    );
    h.write(
        "live.toml",
        &stdout(&h.run(&["webchat", "export", "--widget", "wgt-support"])),
    );
    json(&h, d, "webchat-export", &["webchat", "export"], 0);
    json(
        &h,
        d,
        "webchat-plan",
        &["webchat", "plan", "--policy", "live.toml"],
        0,
    );
    json(
        &h,
        d,
        "webchat-apply",
        &["webchat", "apply", "--policy", "live.toml"],
        0,
    );
    json(
        &h,
        d,
        "webchat-drift",
        &["webchat", "drift", "--policy", "live.toml"],
        0,
    );
    json(
        &h,
        d,
        "guests-link",
        &[
            "guests",
            "link",
            "--guest",
            "g-000001",
            "--identifier",
            "bo@example.com",
        ],
        0,
    );
    json(
        &h,
        d,
        "guests-backfill",
        &["guests", "backfill", "--file", "pairs.csv", "--dry-run"],
        0,
    );
    json(
        &h,
        d,
        "guests-backfill",
        &["guests", "backfill", "--file", "pairs.csv"],
        0,
    );
    json(
        &h,
        d,
        "subject-find",
        &["subject", "find", "--email", "ann@example.com"],
        0,
    );
    json(
        &h,
        d,
        "subject-erase",
        &[
            "subject",
            "erase",
            "--email",
            "ann@example.com",
            "--policy",
            "policy.toml",
            "--dry-run",
        ],
        0,
    );
    json(
        &h,
        d,
        "subject-erase",
        &[
            "subject",
            "erase",
            "--email",
            "ann@example.com",
            "--policy",
            "policy.toml",
        ],
        0,
    );
    json(
        &h,
        d,
        "subject-export",
        &[
            "subject",
            "export",
            "--email",
            "ann@example.com",
            "--out",
            "access",
        ],
        0,
    );
    json(&h, d, "plan", &["plan", "--out", "plan.json"], 0);
    json(&h, d, "apply", &["apply", "plan.json", "--auto-approve"], 0);
    json(&h, d, "status", &["status"], 0);
    json(&h, d, "keys-new", &["keys", "new"], 0);
    json(&h, d, "keys-api", &["keys", "api", "--id", "portal"], 0);
    json(
        &h,
        d,
        "keys-api",
        &["keys", "api", "--id", "kms", "--kms"],
        0,
    );
    json(&h, d, "audit-verify", &["audit", "verify"], 0);
    json(&h, d, "audit-show", &["audit", "show", "--limit", "20"], 0);
    json(&h, d, "audit-public-key", &["audit", "public-key"], 0);
    let jobs = json(&h, d, "jobs-list", &["jobs", "list"], 0);
    let jobs: serde_json::Value = serde_json::from_str(&jobs).unwrap();
    let job = jobs
        .as_array()
        .or_else(|| jobs["jobs"].as_array())
        .and_then(|a| a.first())
        .and_then(|j| j["id"].as_str())
        .expect("a job")
        .to_string();
    json(&h, d, "jobs-show", &["jobs", "show", &job], 0);
    json(&h, d, "outbox-status", &["outbox", "status"], 0);
    json(
        &h,
        d,
        "outbox-deliver",
        &["outbox", "deliver", "--until-empty"],
        0,
    );
    let list = json(
        &h,
        d,
        "outbox-list",
        &["outbox", "list", "--status", "skipped", "--limit", "5"],
        0,
    );
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let event = list
        .as_array()
        .or_else(|| list["events"].as_array())
        .and_then(|a| a.first())
        .and_then(|e| e["id"].as_str())
        .expect("an event")
        .to_string();
    json(&h, d, "outbox-retry", &["outbox", "retry", &event], 0);
    json(
        &h,
        d,
        "outbox-purge",
        &["outbox", "purge", "--delivered"],
        0,
    );
    json(&h, d, "outbox-new-secret", &["outbox", "new-secret"], 0);
    json(
        &h,
        d,
        "report-written",
        &["report", "--format", "json", "--out", "report.json"],
        0,
    );
    let document = std::fs::read_to_string(h.dir.path().join("report.json")).unwrap();
    docs.add("report", &document);
    // Each line of the audit export is one entry.
    let o = h.run(&["audit", "export", "--format", "jsonl", "--limit", "20"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for line in stdout(&o).lines() {
        docs.add("audit-entry", line);
    }
    // The emulator's ready line, then it is stopped.
    let mut sim = Command::new(env!("CARGO_BIN_EXE_cxguard"))
        .args(["--output", "json", "sim", "--port", "0"])
        .current_dir(h.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut lines = std::io::BufReader::new(sim.stdout.take().unwrap());
    while serde_json::from_str::<serde_json::Value>(&first).is_err() {
        assert!(lines.read_line(&mut first).unwrap() > 0, "{first}");
    }
    sim.kill().unwrap();
    sim.wait().unwrap();
    docs.add("sim", &first);
    // And the demo's, against its own emulator.
    let o = crate::cxguard(&["--output", "json", "demo"], &[], h.dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    docs.add("demo", &stdout(&o));
    // CXone's published API (api = "cxone"): doctor's checks, the inventory, the report.
    let r = crate::cxone_api::real(cxone_sim::SimConfig::default());
    json(&r, &mut docs, "doctor", &["doctor"], 0);
    json(&r, &mut docs, "inventory-cxone", &["inventory"], 0);
    // Access keys: the seeded tenant has findings (exit 2); a rotation; nothing waiting.
    json(&r, &mut docs, "accesskeys-list", &["accesskeys", "list"], 2);
    let key = r.sim.credentials().cxone_access_key_id.clone();
    json(
        &r,
        &mut docs,
        "accesskeys-rotate",
        &[
            "accesskeys",
            "rotate",
            "--key",
            &key,
            "--deliver",
            "file:access-key.json",
        ],
        0,
    );
    json(
        &r,
        &mut docs,
        "accesskeys-finish",
        &["accesskeys", "finish"],
        0,
    );
    // Posture on this surface: an access key unused 120 days is planned and deactivated.
    r.write("posture.toml", "[access_keys]\nmax_unused_days = 100\n");
    json(&r, &mut docs, "plan", &["plan", "--detailed-exitcode"], 2);
    json(&r, &mut docs, "apply", &["apply", "--auto-approve"], 0);
    // Digital conversations: one customer's messages removed.
    r.write(
        "digital.toml",
        "[digital]\nmessages = { content = \"remove\", reason = \"TTL\" }\n",
    );
    json(
        &r,
        &mut docs,
        "digital-anonymize",
        &[
            "digital",
            "anonymize",
            "--policy",
            "digital.toml",
            "--customer",
            "cust-00003",
        ],
        0,
    );
    // Guest identity and subject requests on this surface.
    let config = std::fs::read_to_string(r.dir.path().join("cxguard.toml")).unwrap();
    r.write(
        "cxguard.toml",
        &format!("{config}[identity]\nkey = {{ id = \"id-schema\", env = \"SCHEMA_ID_KEY\" }}\n"),
    );
    let r = r.env(
        "SCHEMA_ID_KEY",
        &base64::engine::general_purpose::STANDARD.encode([4u8; 32]),
    );
    json(&r, &mut docs, "digital-setup", &["digital", "setup"], 0);
    // The platform erasure lands long after: verify finds the voice side still there.
    r.sim
        .control()
        .configure(serde_json::json!({"erasureDelayMs": 600_000}))
        .unwrap();
    let person = "digital.person036@example.net";
    r.write("person.txt", person);
    json(
        &r,
        &mut docs,
        "subject-find-cxone",
        &["subject", "find", "--email", person],
        0,
    );
    r.write(
        "erase.toml",
        "[digital.customer_fields]\nloyalty_number = { op = \"erase\" }\n",
    );
    json(
        &r,
        &mut docs,
        "subject-erase-cxone",
        &[
            "subject",
            "erase",
            "--email",
            person,
            "--policy",
            "erase.toml",
            "--dry-run",
        ],
        0,
    );
    let o = r.run(&[
        "--output",
        "json",
        "subject",
        "erase",
        "--email",
        person,
        "--policy",
        "erase.toml",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    docs.add("subject-erase-cxone", &stdout(&o));
    r.write("receipt.json", &stdout(&o));
    json(
        &r,
        &mut docs,
        "subject-verify",
        &["subject", "verify", "receipt.json", "--file", "person.txt"],
        2,
    );
    // Data policies: their runs (some are findings: exit 2) and one evidence report.
    json(&r, &mut docs, "policies-runs", &["policies", "runs"], 2);
    json(
        &r,
        &mut docs,
        "policies-evidence",
        &["policies", "evidence", "run-0001", "--out", "evidence"],
        0,
    );
    json(
        &r,
        &mut docs,
        "report-written",
        &["report", "--format", "json", "--out", "r.json"],
        0,
    );
    docs.add(
        "report-cxone",
        &std::fs::read_to_string(r.dir.path().join("r.json")).unwrap(),
    );

    if let Ok(keep) = std::env::var("CXGUARD_WRITE_SAMPLES") {
        std::fs::create_dir_all(&keep).unwrap();
        for (_, f) in &docs.pairs {
            std::fs::copy(f, Path::new(&keep).join(f.file_name().unwrap())).unwrap();
        }
    }

    // Every leaf command is covered or has no JSON of its own; every schema is used.
    let used: BTreeSet<String> = docs.pairs.iter().map(|(s, _)| s.clone()).collect();
    for leaf in leaf_commands(h.dir.path()) {
        assert!(
            used.contains(&leaf) || NO_JSON.contains(&leaf.as_str()),
            "command `{leaf}` prints JSON this test does not validate"
        );
    }
    let committed: BTreeSet<String> = std::fs::read_dir(schemas_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
        .collect();
    for s in &used {
        assert!(committed.contains(s), "no docs/schemas/{s}.json");
    }
    for s in &committed {
        assert!(
            used.contains(s),
            "docs/schemas/{s}.json validates nothing here"
        );
    }

    // One interpreter validates them all (the reference implementation, draft 2020-12).
    let list: Vec<String> = docs
        .pairs
        .iter()
        .map(|(s, f)| {
            format!(
                "{}\t{}",
                schemas_dir().join(format!("{s}.json")).display(),
                f.display()
            )
        })
        .collect();
    let listing = samples.join("pairs.tsv");
    std::fs::write(&listing, list.join("\n")).unwrap();
    let v = Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys, jsonschema\n\
             bad = 0\n\
             for line in open(sys.argv[1]):\n\
             \x20   schema, doc = line.rstrip('\\n').split('\\t')\n\
             \x20   s = json.load(open(schema))\n\
             \x20   jsonschema.Draft202012Validator.check_schema(s)\n\
             \x20   for e in jsonschema.Draft202012Validator(s).iter_errors(json.load(open(doc))):\n\
             \x20       bad += 1\n\
             \x20       print(f'{doc}: {list(e.absolute_path)}: {e.message}'[:400])\n\
             sys.exit(1 if bad else 0)\n",
        )
        .arg(&listing)
        .output()
        .expect("python3 with jsonschema (`.ci/run` installs it)");
    assert!(
        v.status.success(),
        "JSON output no longer matches its schema:\n{}{}",
        stdout(&v),
        stderr(&v)
    );
}
