//! Subject requests and guest identity on CXone's published API: a person who is a DFO
//! customer with two cases and three completed contacts erased (every message removed
//! with reason GDPR, their fields changed per policy, one platform erasure, nothing else
//! changed), `subject verify` waiting for the asynchronous platform erasure, and `serve`
//! linking a DFO customer with the pseudonym `contacts anonymize` writes.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::cxone_api::real;
use crate::harness::Harness;
use crate::{stderr, stdout};

const KEY_ENV: &str = "IT_IDENTITY_KEY";

/// Customer 32 of the seed (`cust-00033`): cases 300000032 and 300000092, three
/// completed contacts from its address, a loyalty number.
const EMAIL: &str = "digital.person032@example.net";
const CUSTOMER: &str = "cust-00033";

fn key() -> String {
    base64::engine::general_purpose::STANDARD.encode([7u8; 32])
}

fn identity_config() -> String {
    format!("[identity]\nkey = {{ id = \"id-it\", env = \"{KEY_ENV}\" }}\n")
}

/// The real-surface harness with an identity key.
fn harness() -> Harness {
    let h = real(cxone_sim::SimConfig::default()).env(KEY_ENV, &key());
    let config = std::fs::read_to_string(h.dir.path().join("cxguard.toml")).unwrap();
    h.write("cxguard.toml", &format!("{config}{}", identity_config()));
    h
}

fn real_state(h: &Harness) -> serde_json::Value {
    h.sim.control().state()["real"].clone()
}

#[test]
fn erasing_a_dfo_customer_removes_their_messages_changes_their_fields_files_one_platform_erasure_and_verify_waits_for_it()
 {
    let h = harness();
    h.write(
        "policy.toml",
        "[digital.customer_fields]\nloyalty_number = { op = \"erase\" }\n",
    );
    h.write("id.txt", &format!("{EMAIL}\n"));
    // The platform erasure lands 4 s after it is filed.
    h.sim
        .control()
        .configure(serde_json::json!({"erasureDelayMs": 4000}))
        .unwrap();
    let before = real_state(&h);
    let cases: Vec<String> = before["dfo"]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["customer"] == CUSTOMER)
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(cases.len(), 2, "the seed's person has two cases");
    let voice: Vec<&serde_json::Value> = before["completed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["fromAddress"] == EMAIL)
        .collect();
    assert_eq!(voice.len(), 3, "and three completed contacts");
    let mut messages = std::collections::BTreeSet::new();
    for c in before["dfo"]["cases"].as_array().unwrap() {
        if c["customer"] == CUSTOMER {
            for i in 0..c["messages"].as_u64().unwrap() {
                messages.insert(format!("{}-m{i}", c["id"].as_str().unwrap()));
            }
        }
    }

    // Linked as a returning guest first: the erasure deletes the link too.
    let o = h.run(&["digital", "setup"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = h.run(&["guests", "link", "--guest", CUSTOMER, "--identifier", EMAIL]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // find: read-only, by reference.
    let o = h.run(&["subject", "find", "--email", EMAIL]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "customer {CUSTOMER}: field:hashed_user_id, identity"
        )) && out.contains("3 completed contact(s)"),
        "{out}"
    );
    assert!(!out.contains(EMAIL), "no identifier printed: {out}");

    let o = h.run(&[
        "--output",
        "json",
        "subject",
        "erase",
        "--email",
        EMAIL,
        "--policy",
        "policy.toml",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stdout(&o).contains(EMAIL) && !stderr(&o).contains(EMAIL));
    let out: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let r = &out["receipts"][0];
    let got: std::collections::BTreeSet<String> = r["digital"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, messages, "the receipt lists every message of theirs");
    assert_eq!(r["digital"]["voiceContacts"].as_array().unwrap().len(), 3);
    assert_eq!(
        r["digital"]["fields"],
        serde_json::json!([format!("customer {CUSTOMER}: loyalty_number (erase)")])
    );
    assert_eq!(r["digital"]["links"], serde_json::json!([CUSTOMER]));
    assert!(r["platform"]["requestId"].is_string(), "{r}");
    assert!(
        r["notice"].as_str().unwrap().contains("asynchronous")
            && r["notice"]
                .as_str()
                .unwrap()
                .contains("does not cover digital"),
        "{r}"
    );
    assert!(r["audit"]["messages"].as_array().unwrap().len() >= messages.len());
    h.write("receipt.json", &serde_json::to_string(r).unwrap());

    // Exactly their messages removed, both parts, reason GDPR.
    let after = real_state(&h);
    let removals = after["dfo"]["removals"].as_object().unwrap();
    let removed: std::collections::BTreeSet<String> = removals.keys().cloned().collect();
    assert_eq!(removed, messages);
    for (id, m) in removals {
        for part in ["contentRemoved", "authorNameRemoved"] {
            assert_eq!(m[part]["reason"], "GDPR", "{id} {part}: {m}");
        }
    }
    // Their loyalty number erased; every other customer's fields and every case's
    // fields as they were.
    let fields = |s: &serde_json::Value| s["dfo"]["customerFields"].clone();
    let (mut b, a) = (fields(&before), fields(&after));
    assert!(
        b[CUSTOMER]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["ident"] == "loyalty_number")
    );
    assert_eq!(a[CUSTOMER], serde_json::json!([]));
    b[CUSTOMER] = serde_json::json!([]);
    assert_eq!(a, b, "no other customer's fields changed");
    let case_fields = |s: &serde_json::Value| {
        s["dfo"]["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["customFields"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(case_fields(&before), case_fields(&after));
    // One platform erasure, of their address (only its digest is kept).
    let erasures = h.sim.control().erasures();
    assert_eq!(erasures.len(), 1, "{erasures:?}");
    assert_eq!(erasures[0]["subjectIdentifierType"], "EMAIL");
    assert_eq!(erasures[0]["subjectSha256"], guard::sha256_hex(EMAIL));

    // verify at once: the voice side is not anonymized yet → 2.
    let o = h.run(&["subject", "verify", "receipt.json", "--file", "id.txt"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("not yet anonymized"), "{}", stdout(&o));
    assert!(stdout(&o).contains(&format!("DFO customer(s) {CUSTOMER} keep the identity")));
    // … and with --wait, 0 once the platform erasure has landed.
    let o = h.run(&[
        "subject",
        "verify",
        "receipt.json",
        "--file",
        "id.txt",
        "--wait",
        "30s",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("nothing holds this person any more"));
    let verified = h.ledger_entries("subject.verified");
    assert_eq!(verified.len(), 2);
    assert_eq!(verified[0].details["remaining"], 3);
    assert_eq!(verified[1].details["remaining"], 0);

    // Another person's identifier is refused against this receipt, nothing searched.
    h.write("other.txt", "someone.else@example.net\n");
    let o = h.run(&["subject", "verify", "receipt.json", "--file", "other.txt"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not the person of receipt"),
        "{}",
        stderr(&o)
    );
    // A rerun of the erasure changes nothing more: no removal sent.
    let writes = real_state(&h)["dfoWrites"].as_u64().unwrap();
    let o = h.run(&[
        "subject",
        "erase",
        "--email",
        EMAIL,
        "--policy",
        "policy.toml",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(real_state(&h)["dfoWrites"].as_u64().unwrap(), writes);
    let o = h.run(&["audit", "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn an_erasure_killed_after_finding_resumes_without_repeating_a_removal() {
    let h = harness();
    h.write("policy.toml", "# messages only\n");
    for point in ["subject.found", "digital.settled", "subject.digital"] {
        let o = h
            .command(&[
                "subject",
                "erase",
                "--email",
                EMAIL,
                "--policy",
                "policy.toml",
            ])
            .env("CXGUARD_FAILPOINT", point)
            .output()
            .unwrap();
        assert_ne!(o.status.code(), Some(0), "{point}: killed");
    }
    let o = h.run(&[
        "subject",
        "erase",
        "--email",
        EMAIL,
        "--policy",
        "policy.toml",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let state = real_state(&h);
    let removals = state["dfo"]["removals"].as_object().unwrap();
    assert_eq!(removals.len(), 8, "{removals:?}");
    // Each message's two parts sent once: 16 removals, and the platform erasure filed
    // by the one run that reached it.
    let sent = h.ledger_entries("dfo.message.removed").len();
    assert_eq!(sent, 16);
    assert_eq!(h.sim.control().erasures().len(), 1);
}

#[test]
fn bad_input_to_a_cxone_subject_request_is_refused_before_any_request() {
    let h = harness();
    h.write(
        "policy.toml",
        "[digital.customer_fields]\nno_such = { op = \"erase\" }\n",
    );
    let requests = real_state(&h)["requests"].as_u64().unwrap();
    let o = h.run(&[
        "subject",
        "erase",
        "--email",
        "not-an-email",
        "--policy",
        "policy.toml",
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(!stderr(&o).contains("not-an-email"), "{}", stderr(&o));
    let o = h.run(&["subject", "find", "--email", EMAIL, "--since", "2999-01-01"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("--since"), "{}", stderr(&o));
    assert_eq!(real_state(&h)["requests"].as_u64().unwrap(), requests);
    // An unknown customer field: refused naming it, before anything is changed.
    let o = h.run(&[
        "subject",
        "erase",
        "--email",
        EMAIL,
        "--policy",
        "policy.toml",
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("no_such"), "{}", stderr(&o));
    assert_eq!(real_state(&h)["dfoWrites"], 0);
    assert!(h.sim.control().erasures().is_empty());
}

/// The access request on CXone's published API: the person's DFO customer, cases,
/// messages (content included) and completed contacts, in one file with its manifest.
#[test]
fn an_export_holds_the_dfo_records_and_completed_contacts_of_the_person() {
    let h = harness();
    let o = h.run(&["subject", "export", "--email", EMAIL, "--out", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stdout(&o).contains(EMAIL) && !stderr(&o).contains(EMAIL));
    assert!(
        stdout(&o).contains("1 DFO customer(s), 2 case(s), 8 message(s), 3 completed contact(s)"),
        "{}",
        stdout(&o)
    );
    let path = h.dir.path().join("out/email.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(doc["customers"][0]["id"], CUSTOMER);
    assert_eq!(doc["cases"].as_array().unwrap().len(), 2);
    let messages = doc["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 8);
    assert!(
        messages[0]["messageContent"]["payload"]["text"].is_string(),
        "the content is the person's"
    );
    let completed = doc["completedContacts"].as_array().unwrap();
    assert_eq!(completed.len(), 3);
    assert!(completed.iter().all(|c| c["fromAddress"] == EMAIL));
    let e = h.ledger_entries("subject.export");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].details["messages"], 8);
    assert!(
        !serde_json::to_string(&e[0].details)
            .unwrap()
            .contains(EMAIL)
    );
}

/// `serve` links a DFO customer: the field holds exactly what `contacts anonymize`
/// writes for the same email with the same key.
#[test]
fn serve_links_a_dfo_customer_with_the_pseudonym_contacts_anonymize_writes() {
    let h = harness();
    // Missing definition: doctor says so, and a link is refused naming the fix.
    let o = h.run(&["doctor"]);
    assert!(stdout(&o).contains("identity field"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("cxguard digital setup"),
        "{}",
        stdout(&o)
    );
    let o = h.run(&["guests", "link", "--guest", CUSTOMER, "--identifier", EMAIL]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(stderr(&o).contains("digital setup"), "{}", stderr(&o));
    let o = h.run(&["digital", "setup"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("created"), "{}", stdout(&o));
    let o = h.run(&["digital", "setup"]);
    assert!(stdout(&o).contains("defined already"), "{}", stdout(&o));
    assert_eq!(h.ledger_entries("dfo.field_definition.created").len(), 1);
    let defs = real_state(&h)["fieldDefinitions"].clone();
    let def = defs
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ident"] == "hashed_user_id")
        .unwrap()
        .clone();
    assert_eq!(def["type"], "text");
    assert_eq!(def["isVisibleInCustomerCard"], false);

    // A tutorial contact's email, linked to the DFO customer by serve.
    let contact = h.sim.control().contact("c-0000001").unwrap();
    let email = contact["email"].as_str().unwrap().to_string();
    let o = h.run(&["keys", "api", "--id", "web-it"]);
    let api_key = stdout(&o).trim().to_string();
    let line = stderr(&o)
        .lines()
        .find(|l| l.contains("api_keys"))
        .unwrap()
        .trim()
        .to_string();
    let config = std::fs::read_to_string(h.dir.path().join("cxguard.toml")).unwrap();
    h.write("cxguard.toml", &format!("{config}[server]\n{line}\n"));
    let mut child = h
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = Instant::now();
    let url = loop {
        let l = lines
            .next()
            .expect("serve prints where it listens")
            .unwrap();
        if let Some(rest) = l.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(30));
    };
    let (ok, unknown) = h.rt.block_on(async {
        let http = reqwest::Client::new();
        let post = |guest: &str| {
            http.post(format!("{url}/v1/guests/{guest}/identity"))
                .bearer_auth(&api_key)
                .json(&serde_json::json!({ "identifier": email }))
                .send()
        };
        (
            post(CUSTOMER).await.unwrap().status(),
            post("cust-99999").await.unwrap().status(),
        )
    });
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert_eq!(ok, 200);
    assert_eq!(unknown, 404);
    let linked = real_state(&h)["dfo"]["customerFields"][CUSTOMER]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["ident"] == "hashed_user_id")
        .map(|f| f["value"].as_str().unwrap().to_string())
        .expect("the customer's field holds the pseudonym");

    // contacts anonymize on the tutorials' routes, with the identity key.
    h.write("tutorial.toml", &identity_config());
    h.write(
        "anon.toml",
        &format!(
            "[keys]\nk = {{ id = \"id-it\", env = \"{KEY_ENV}\" }}\n[fields]\nemail = {{ op = \"pseudonymize\", key = \"k\" }}\n"
        ),
    );
    h.write("ids.txt", "c-0000001\n");
    let c = h.sim.credentials().clone();
    let o = h
        .command(&[
            "contacts",
            "anonymize",
            "--policy",
            "anon.toml",
            "--ids",
            "ids.txt",
        ])
        .env("CXGUARD_CONFIG", "tutorial.toml")
        .env("CXGUARD_CLIENT_ID", &c.client_id)
        .env("CXGUARD_CLIENT_SECRET", &c.client_secret)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let written = h.sim.control().contact("c-0000001").unwrap()["email"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(written, email);
    assert_eq!(
        linked, written,
        "one person, one pseudonym on both surfaces"
    );
}

/// A person known on a social channel by their user id there: `--external-id` finds the
/// DFO customer whose identity holds it, though their email is another.
#[test]
fn an_external_id_finds_the_customer_whose_social_identity_holds_it() {
    let h = harness();
    // Customer 35 (cust-00036) also writes under the social user id 1000035.
    let o = h.run(&[
        "--output",
        "json",
        "subject",
        "find",
        "--email",
        "someone.new@example.org",
        "--external-id",
        "1000035",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &v["subjects"][0];
    assert_eq!(s["customers"][0]["id"], "cust-00036", "{v}");
    assert_eq!(s["customers"][0]["holds"]["identity"], "raw");
    assert_eq!(s["cases"].as_array().unwrap().len(), 2);
    assert!(!stdout(&o).contains("1000035"), "the id is never printed");
    // Without it, nothing.
    let o = h.run(&[
        "--output",
        "json",
        "subject",
        "find",
        "--email",
        "someone.new@example.org",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["subjects"][0]["customers"], serde_json::json!([]));
    // With --file it is a column; a bad one is refused by line, not quoted.
    h.write(
        "req.csv",
        "identifier,external_id\nsomeone.new@example.org,bad\u{7}id\n",
    );
    let o = h.run(&["subject", "find", "--file", "req.csv"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("req.csv:2: external id: holds a control character"),
        "{}",
        stderr(&o)
    );
}
