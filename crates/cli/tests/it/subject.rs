//! `cxguard subject find` as a privacy team runs it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine as _;

use crate::harness::Harness;
use crate::{stderr, stdout};

const KEY_ENV: &str = "IT_IDENTITY_KEY";

fn identity() -> guard::identity::Identity {
    let key = Arc::new(guard::keys::Key::from_bytes("subject-it", vec![9u8; 32]).unwrap());
    guard::identity::Identity::new(
        key,
        guard::pseudonym::Normalizer {
            region: Some(guard::pseudonym::parse_region("US").unwrap()),
            gmail_folding: false,
        },
        "hashed_user_id",
    )
    .unwrap()
}

fn harness(contacts: u32) -> Harness {
    let h = Harness::start(cxone_sim::SimConfig {
        contacts,
        ..Default::default()
    })
    .env(
        KEY_ENV,
        &base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
    );
    h.write(
        "cxguard.toml",
        &format!(
            "[identity]\nkey = {{ id = \"subject-it\", env = \"{KEY_ENV}\" }}\ndefault_region = \"US\"\n"
        ),
    );
    h
}

#[test]
fn find_with_500_requests_reads_every_contact_once_and_finds_exactly_the_planted() {
    let h = harness(20_000);
    let id = identity();
    let control = h.sim.control();
    let email_of = |i: u32| {
        control.contact(&format!("c-{i:07}")).unwrap()["email"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    // 200 present: 120 by their email as is (written differently), 60 whose email field
    // holds the pseudonym, 20 by a phone planted in another format.
    let mut lines = vec!["identifier,kind,ref".to_string()];
    let mut planted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for k in 0..200u32 {
        let contact = 1 + k * 97;
        let cid = format!("c-{contact:07}");
        let reference = format!("P-{k}");
        if k < 120 {
            let email = format!("Person.{k}@Example.com");
            control
                .edit_contact(&cid, serde_json::json!({"email": email.to_lowercase()}))
                .unwrap();
            lines.push(format!(" {email} ,email,{reference}"));
        } else if k < 180 {
            let email = format!("pseudo.{k}@example.com");
            let (_, p) = id
                .pseudonym("x", &email, guard::identity::IdentifierKind::Email)
                .unwrap();
            control
                .edit_contact(&cid, serde_json::json!({"email": p}))
                .unwrap();
            lines.push(format!("{email},email,{reference}"));
        } else {
            let phone = format!("+1415555{:04}", 1000 + k);
            control
                .edit_contact(&cid, serde_json::json!({"phone": phone}))
                .unwrap();
            lines.push(format!("(415) 555-{:04},phone,{reference}", 1000 + k));
        }
        planted.entry(reference).or_default().insert(cid);
    }
    for k in 0..300 {
        lines.push(format!("absent.{k}@nowhere.example,email,A-{k}"));
    }
    // Nobody else holds a planted identifier.
    assert!(!email_of(2).starts_with("person."));
    h.write("requests.csv", &(lines.join("\n") + "\n"));
    let before = control.route_hits("GET /api/v1/contacts");
    let tokens = control.token_requests_total();

    let o = h.run(&[
        "--output",
        "json",
        "subject",
        "find",
        "--file",
        "requests.csv",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let found: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(found["contactsScanned"], 20_000);
    let pages = found["pages"].as_u64().unwrap();
    assert_eq!(pages, 20, "{found:#}");
    assert_eq!(
        control.route_hits("GET /api/v1/contacts") - before,
        pages,
        "one pass: one listing request per page"
    );
    assert_eq!(control.route_hits("GET /api/v1/contacts/{id}"), 0);
    assert_eq!(control.token_requests_total() - tokens, 1);
    let subjects = found["subjects"].as_array().unwrap();
    assert_eq!(subjects.len(), 500);
    for s in subjects {
        let reference = s["reference"].as_str().unwrap();
        let got: BTreeSet<String> = s["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        let want = planted.get(reference).cloned().unwrap_or_default();
        assert_eq!(got, want, "{reference}: {s}");
        let k: u32 = reference[2..].parse().unwrap();
        if reference.starts_with("P-") {
            let fields = &s["contacts"][0]["fields"];
            let expect = if k < 120 {
                serde_json::json!({"email": "raw"})
            } else if k < 180 {
                serde_json::json!({"email": "pseudonym"})
            } else {
                serde_json::json!({"phone": "raw"})
            };
            assert_eq!(fields, &expect, "{reference}");
        }
    }
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains("@example.com") && !out.contains("nowhere"),
        "no identifier in the output"
    );
    // Audited per subject with its pseudonym and counts, never the identifier.
    let entries = h.ledger_entries("subject.find");
    assert_eq!(entries.len(), 500);
    assert!(!h.ledger_bytes().contains("@example.com"));
    assert!(!h.ledger_bytes().contains("nowhere.example"));
}

#[test]
fn find_one_person_names_their_linked_guests_and_bad_input_exits_65() {
    let h = harness(300);
    let o = h.run(&[
        "guests",
        "link",
        "--guest",
        "g-000003",
        "--identifier",
        "lee@example.com",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = h.run(&[
        "guests",
        "link",
        "--guest",
        "g-000004",
        "--identifier",
        "other@example.com",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    h.sim
        .control()
        .edit_contact("c-0000007", serde_json::json!({"email": "LEE@example.com"}))
        .unwrap();
    let o = h.run(&["subject", "find", "--email", "Lee@Example.com"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("email: 1 contact(s), 1 guest(s)"), "{out}");
    assert!(out.contains("contact c-0000007: email (raw)"), "{out}");
    assert!(
        out.contains("guest g-000003") && !out.contains("g-000004"),
        "{out}"
    );
    assert_eq!(crate::assert_report_fits_and_adds_up(&out), 1, "{out}");
    assert!(!out.to_lowercase().contains("lee@"), "{out}");

    for (args, want) in [
        (
            &["subject", "find", "--email", "not-an-email"][..],
            "identifier: is not an email",
        ),
        (
            &["subject", "find", "--phone", "12"],
            "identifier: is not a phone",
        ),
    ] {
        let o = h.run(args);
        assert_eq!(o.status.code(), Some(65), "{args:?}");
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
        assert!(!stderr(&o).contains("not-an-email"));
    }
    h.write(
        "bad.csv",
        "identifier,ref\nok@example.com,a\nbroken@,b\nfine@example.com,a\n",
    );
    let hits = h.sim.control().route_hits("GET /api/v1/contacts");
    let o = h.run(&["subject", "find", "--file", "bad.csv"]);
    assert_eq!(o.status.code(), Some(65));
    let err = stderr(&o);
    assert!(
        err.contains("bad.csv:4: ref \"a\" is also on line 2"),
        "{err}"
    );
    assert!(!err.contains("broken@") && !err.contains("fine@"), "{err}");
    assert_eq!(
        h.sim.control().route_hits("GET /api/v1/contacts"),
        hits,
        "nothing read"
    );
}

const POLICY: &str = r#"default_region = "US"
[keys]
k = { id = "subject-it", env = "IT_IDENTITY_KEY" }
[fields]
firstName = { op = "erase" }
lastName = { op = "erase" }
email = { op = "pseudonymize", key = "k" }
phone = { op = "mask", keep_first = 3 }
"#;

/// Mutations since `before`, by record.
fn changed_since(
    now: &BTreeMap<String, u64>,
    before: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    now.iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

#[test]
fn erase_changes_the_persons_five_records_files_one_request_and_the_receipt_verifies() {
    let h = harness(300);
    h.write("policy.toml", POLICY);
    for g in ["g-000003", "g-000005"] {
        let o = h.run(&[
            "guests",
            "link",
            "--guest",
            g,
            "--identifier",
            "lee@example.com",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (_, p) = identity()
        .pseudonym(
            "x",
            "lee@example.com",
            guard::identity::IdentifierKind::Email,
        )
        .unwrap();
    let c = h.sim.control();
    c.edit_contact("c-0000007", serde_json::json!({"email": "LEE@example.com"}))
        .unwrap();
    c.edit_contact("c-0000011", serde_json::json!({"email": "lee@example.com"}))
        .unwrap();
    c.edit_contact("c-0000013", serde_json::json!({"email": p}))
        .unwrap();
    let before = c.mutations("");
    std::fs::create_dir(h.dir.path().join("receipts")).unwrap();

    let o = h.run(&[
        "-vv",
        "--output",
        "json",
        "subject",
        "erase",
        "--email",
        "Lee@Example.com",
        "--policy",
        "policy.toml",
        "--receipts",
        "receipts",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let changed = changed_since(&c.mutations(""), &before);
    let records: Vec<&String> = changed
        .keys()
        .filter(|k| !k.starts_with("erasure/"))
        .collect();
    assert_eq!(
        records,
        vec![
            "contact/c-0000007",
            "contact/c-0000011",
            "contact/c-0000013",
            "guest/g-000003",
            "guest/g-000005"
        ],
        "those five records and nothing else: {changed:?}"
    );
    assert!(changed.values().all(|n| *n == 1), "{changed:?}");
    for g in ["g-000003", "g-000005"] {
        let attrs = c.guest_attributes(g).unwrap();
        assert!(
            !attrs.to_string().contains("hashed_user_id"),
            "{g}: identity attribute deleted"
        );
    }
    let filed = c.erasures();
    assert_eq!(filed.len(), 1);
    assert_eq!(filed[0]["subjectIdentifier"], "lee@example.com");
    assert_eq!(filed[0]["subjectIdentifierType"], "EMAIL");

    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &out["receipts"][0];
    assert_eq!(r["reference"], "email");
    assert_eq!(r["pseudonym"], p.as_str());
    assert_eq!(r["platform"]["requestId"], filed[0]["requestId"]);
    assert_eq!(r["contacts"].as_array().unwrap().len(), 3);
    assert_eq!(r["guests"], serde_json::json!(["g-000003", "g-000005"]));
    for step in ["find", "contacts", "guest", "platform"] {
        assert!(
            r["audit"][step].as_array().is_some_and(|a| !a.is_empty()),
            "{step}: {r}"
        );
    }
    let head = r["auditHead"].as_str().unwrap();
    let v = h.run(&["audit", "verify", "--expect-head", head]);
    assert_eq!(v.status.code(), Some(0), "{}{}", stdout(&v), stderr(&v));
    let file = h.dir.path().join("receipts/email.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let receipt = std::fs::read_to_string(&file).unwrap();
    for (name, text) in [
        ("stdout", stdout(&o)),
        ("stderr (-vv)", stderr(&o)),
        ("receipt", receipt),
        ("ledger", h.ledger_bytes()),
    ] {
        assert!(
            !text.to_lowercase().contains("lee@"),
            "the identifier is in {name}"
        );
    }
    // A second erase finds nothing raw, changes nothing, still files the platform
    // request (recordings may hold the person), and refuses to overwrite a receipt.
    let o = h.run(&[
        "subject",
        "erase",
        "--email",
        "lee@example.com",
        "--policy",
        "policy.toml",
        "--receipts",
        "receipts",
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("never overwritten"), "{}", stderr(&o));
    let o = h.run(&[
        "subject",
        "erase",
        "--phone",
        "+1 415 555 0199",
        "--policy",
        "policy.toml",
        "--skip-platform-erasure",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("no records found"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("platform erasure: skipped"),
        "{}",
        stdout(&o)
    );
    assert_eq!(c.erasures().len(), 1, "skipped means not filed");
}

#[test]
fn erase_of_50_people_killed_at_three_points_resumes_and_repeats_no_effect() {
    const PATCH_CONTACT: &str = "PATCH /api/v1/contacts/{id}";
    const PATCH_GUEST: &str = "PATCH /api/v2/interactions/guests/{id}/attributes";
    const ERASURE: &str = "POST /privacy/v1/erasure";
    for (route, hits) in [(PATCH_CONTACT, 10u64), (PATCH_GUEST, 5), (ERASURE, 20)] {
        let h = Harness::start(cxone_sim::SimConfig {
            contacts: 2000,
            latency: std::time::Duration::from_millis(4),
            ..Default::default()
        })
        .env(
            KEY_ENV,
            &base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
        );
        h.write(
            "cxguard.toml",
            &format!(
                "[identity]\nkey = {{ id = \"subject-it\", env = \"{KEY_ENV}\" }}\ndefault_region = \"US\"\n"
            ),
        );
        h.write("policy.toml", POLICY);
        let c = h.sim.control();
        let mut csv = String::from("identifier,ref\n");
        let mut pairs = String::from("guest_id,identifier\n");
        for k in 0..50u32 {
            let email = format!("crash.{k}@example.com");
            c.edit_contact(
                &format!("c-{:07}", 1 + k * 31),
                serde_json::json!({"email": email}),
            )
            .unwrap();
            if k % 5 == 0 {
                pairs.push_str(&format!("g-{:06},{email}\n", 1 + k / 5));
            }
            csv.push_str(&format!("{email},R{k}\n"));
        }
        h.write("requests.csv", &csv);
        h.write("pairs.csv", &pairs);
        let o = h.run(&["guests", "backfill", "--file", "pairs.csv"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let before = c.mutations("");
        let base = c.route_hits(route);
        let args = [
            "subject",
            "erase",
            "--file",
            "requests.csv",
            "--policy",
            "policy.toml",
        ];
        let mut child = h
            .command(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let waiting = std::time::Instant::now();
        while c.route_hits(route) < base + hits
            && waiting.elapsed() < std::time::Duration::from_secs(120)
            && child.try_wait().unwrap().is_none()
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before {hits} × {route}"
        );
        child.kill().unwrap();
        let _ = child.wait();
        let o = h.run(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "after {hits} × {route}: {}",
            stderr(&o)
        );
        let changed = changed_since(&c.mutations(""), &before);
        let contacts = changed.keys().filter(|k| k.starts_with("contact/")).count();
        let guests = changed.keys().filter(|k| k.starts_with("guest/")).count();
        assert_eq!(contacts, 50, "{route}");
        assert_eq!(guests, 10, "{route}");
        for (k, n) in changed.iter().filter(|(k, _)| !k.starts_with("erasure/")) {
            assert_eq!(*n, 1, "{k} changed once ({route})");
        }
        let filed = c.erasures();
        let people: BTreeSet<String> = filed
            .iter()
            .map(|e| e["subjectIdentifier"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(people.len(), 50, "every person's request filed ({route})");
        assert!(
            filed.len() <= 51,
            "at most one repeat, for the request in flight at the kill ({route}): {}",
            filed.len()
        );
        let v = h.run(&["audit", "verify"]);
        assert!(v.status.success(), "{}", stdout(&v));
    }
}

#[test]
fn erase_without_the_erasure_scope_is_refused_before_any_change() {
    let h = harness(100);
    h.write("policy.toml", POLICY);
    let c = h.sim.credentials();
    let o = h
        .command(&[
            "subject",
            "erase",
            "--email",
            "x@example.com",
            "--policy",
            "policy.toml",
        ])
        .env("CXGUARD_CLIENT_ID", &c.readonly_client_id)
        .env("CXGUARD_CLIENT_SECRET", &c.readonly_client_secret)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("privacy:erasure:write"),
        "{}",
        stderr(&o)
    );
    assert!(h.sim.control().mutations("").is_empty());
    assert_eq!(h.sim.control().route_hits("GET /api/v1/contacts"), 0);
}

#[test]
fn export_writes_the_persons_records_0600_with_a_manifest_and_audits_only_the_digest() {
    let h = harness(200);
    let o = h.run(&[
        "guests",
        "link",
        "--guest",
        "g-000002",
        "--identifier",
        "kim@example.com",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c = h.sim.control();
    for id in ["c-0000004", "c-0000009"] {
        c.edit_contact(id, serde_json::json!({"email": "kim@example.com"}))
            .unwrap();
    }
    let o = h.run(&[
        "-vv",
        "subject",
        "export",
        "--email",
        "Kim@example.com",
        "--out",
        "access",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let dir = h.dir.path().join("access");
    let file = dir.join("email.json");
    let bytes = std::fs::read(&file).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let ids: Vec<&str> = doc["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["c-0000004", "c-0000009"]);
    assert_eq!(
        doc["contacts"][0]["email"], "kim@example.com",
        "the data is in the file"
    );
    assert_eq!(doc["guests"][0]["guestId"], "g-000002");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("email.manifest.json")).unwrap()).unwrap();
    let sha = guard::sha256_hex_bytes(&bytes);
    assert_eq!(manifest["files"][0]["sha256"], sha.as_str());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["email.json", "email.manifest.json"] {
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }
    let entries = h.ledger_entries("subject.export");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].details["file_sha256"], sha.as_str());
    assert_eq!(entries[0].details["contacts"], 2);
    for (name, text) in [
        ("stdout", stdout(&o)),
        ("stderr (-vv)", stderr(&o)),
        ("ledger", h.ledger_bytes()),
    ] {
        assert!(
            !text.to_lowercase().contains("kim@"),
            "the identifier is in {name}"
        );
    }
    let o = h.run(&[
        "subject",
        "export",
        "--email",
        "kim@example.com",
        "--out",
        "access",
    ]);
    assert_eq!(o.status.code(), Some(65), "never overwritten");
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
}
