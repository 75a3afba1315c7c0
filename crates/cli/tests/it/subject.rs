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
