//! `cxguard digital anonymize` on the emulator's real surface: exactly the messages of
//! the cases in scope removed, a rerun sending no write, a crash in the middle resumed
//! without a removal sent twice, and bad input refused before any change.

use std::collections::BTreeSet;

use crate::cxone_api::real;
use crate::harness::Harness;
use crate::{stderr, stdout};

const POLICY: &str = r#"[fields]
email = { op = "erase" }

[digital]
messages = { content = "remove", author_name = "remove", reason = "TTL" }
"#;

/// The retention policy: messages removed, and the loyalty number of their customers
/// erased.
const RETENTION: &str = r#"[digital]
messages = { content = "remove", author_name = "remove", reason = "TTL" }

[digital.customer_fields]
loyalty_number = { op = "erase" }
"#;

fn dfo(h: &Harness) -> serde_json::Value {
    h.sim.control().state()["real"].clone()
}

/// The message ids of the closed cases whose status changed before `cut`.
fn expected(h: &Harness, cut: &str) -> BTreeSet<String> {
    let cut =
        time::OffsetDateTime::parse(cut, &time::format_description::well_known::Rfc3339).unwrap();
    let state = dfo(h);
    let mut out = BTreeSet::new();
    for c in state["dfo"]["cases"].as_array().unwrap() {
        let at = time::OffsetDateTime::parse(
            c["statusUpdatedAt"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        if c["status"] == "closed" && at < cut {
            for i in 0..c["messages"].as_u64().unwrap() {
                out.insert(format!("{}-m{i}", c["id"].as_str().unwrap()));
            }
        }
    }
    out
}

fn removed(h: &Harness) -> serde_json::Map<String, serde_json::Value> {
    dfo(h)["dfo"]["removals"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// A cut-off between the seeded closings: some closed cases before it, some after.
fn cut(h: &Harness) -> String {
    let state = dfo(h);
    let mut times: Vec<&str> = state["dfo"]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "closed")
        .map(|c| c["statusUpdatedAt"].as_str().unwrap())
        .collect();
    times.sort();
    times[times.len() / 2].to_string()
}

#[test]
fn retention_removes_exactly_the_messages_of_cases_closed_before_the_date_and_a_rerun_writes_nothing()
 {
    let h = real(cxone_sim::SimConfig::default());
    h.write("policy.toml", RETENTION);
    let cut = cut(&h);
    let want = expected(&h, &cut);
    assert!(!want.is_empty());
    let state = dfo(&h);
    let in_scope: BTreeSet<String> = state["dfo"]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| want.contains(&format!("{}-m0", c["id"].as_str().unwrap())))
        .map(|c| c["customer"].as_str().unwrap().to_string())
        .collect();
    let has_loyalty = |s: &serde_json::Value, c: &str| {
        s["dfo"]["customerFields"][c]
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f["ident"] == "loyalty_number"))
    };
    let erased: Vec<&String> = in_scope.iter().filter(|c| has_loyalty(&state, c)).collect();
    assert!(!erased.is_empty(), "some customers in scope hold the field");
    let o = h.run(&[
        "--output",
        "json",
        "digital",
        "anonymize",
        "--policy",
        "policy.toml",
        "--closed-before",
        &cut,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let got = removed(&h);
    let ids: BTreeSet<String> = got.keys().cloned().collect();
    assert_eq!(ids, want, "exactly the messages in scope");
    for (id, m) in &got {
        assert_eq!(m["contentRemoved"]["reason"], "TTL", "{id}");
        assert_eq!(m["authorNameRemoved"]["reason"], "TTL", "{id}");
    }
    assert_eq!(r["report"]["calls"], (2 * want.len() + erased.len()) as u64);
    // Exactly the customers of those cases lost the field; every other customer kept it.
    let after = dfo(&h);
    for (c, _) in state["dfo"]["customerFields"].as_object().unwrap() {
        let want_kept = has_loyalty(&state, c) && !in_scope.contains(c);
        assert_eq!(has_loyalty(&after, c), want_kept, "{c}");
    }
    assert_eq!(h.ledger_entries("dfo.customer.field").len(), erased.len());
    // Audited per removal, never a value; one consent event per case.
    assert_eq!(
        h.ledger_entries("dfo.message.removed").len(),
        2 * want.len()
    );
    assert_eq!(h.run(&["audit", "verify"]).status.code(), Some(0));

    // A rerun (a new job: the first finished) sends no write.
    let writes = dfo(&h)["dfoWrites"].clone();
    let o = h.run(&[
        "--output",
        "json",
        "digital",
        "anonymize",
        "--policy",
        "policy.toml",
        "--closed-before",
        &cut,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["report"]["changed"], 0);
    assert_eq!(dfo(&h)["dfoWrites"], writes, "no write on a rerun");
    assert_eq!(removed(&h).len(), want.len());
}

#[test]
fn a_job_over_150_cases_killed_at_three_points_resumes_with_each_message_removed_once() {
    for point in ["digital.found", "digital.removed", "digital.settled"] {
        let h = real(cxone_sim::SimConfig::default());
        h.write("policy.toml", POLICY);
        let state = dfo(&h);
        let cases = state["dfo"]["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 150);
        let ids: Vec<&str> = cases.iter().map(|c| c["id"].as_str().unwrap()).collect();
        let messages: u64 = cases.iter().map(|c| c["messages"].as_u64().unwrap()).sum();
        h.write("cases.txt", &ids.join("\n"));
        let args = [
            "digital",
            "anonymize",
            "--policy",
            "policy.toml",
            "--cases",
            "cases.txt",
        ];
        let o = h
            .command(&args)
            .env("CXGUARD_FAILPOINT", point)
            .output()
            .unwrap();
        assert_ne!(o.status.code(), Some(0), "{point}: the failpoint aborts");
        let o = h.run(&args);
        assert_eq!(o.status.code(), Some(0), "{point}: {}", stderr(&o));
        assert_eq!(removed(&h).len() as u64, messages, "{point}");
        // Writes the tenant accepted: those it answered 429 changed nothing.
        let d = dfo(&h);
        assert_eq!(
            d["dfoWrites"].as_u64().unwrap() - d["rateLimited"].as_u64().unwrap(),
            2 * messages,
            "{point}: no removal request repeated"
        );
        assert_eq!(
            h.run(&["audit", "verify"]).status.code(),
            Some(0),
            "{point}"
        );
    }
}

#[test]
fn a_job_killed_in_the_middle_of_a_case_resumes_without_sending_a_removal_twice() {
    let h = real(cxone_sim::SimConfig::default());
    h.write("policy.toml", POLICY);
    let cut = cut(&h);
    let want = expected(&h, &cut);
    let args = [
        "digital",
        "anonymize",
        "--policy",
        "policy.toml",
        "--closed-before",
        &cut,
    ];
    let o = h
        .command(&args)
        .env("CXGUARD_FAILPOINT", "digital.removed")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "the failpoint aborts");
    let first = dfo(&h)["dfoWrites"].as_u64().unwrap();
    assert!(first >= 1 && (first as usize) < 2 * want.len());
    let o = h.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("(resumed)"), "{}", stdout(&o));
    assert_eq!(removed(&h).keys().cloned().collect::<BTreeSet<_>>(), want);
    // Every removal sent once: the one sent before the kill is not sent again.
    let d = dfo(&h);
    assert_eq!(
        d["dfoWrites"].as_u64().unwrap() - d["rateLimited"].as_u64().unwrap(),
        2 * want.len() as u64,
        "each message's content and author name removed once"
    );
}

#[test]
fn bad_input_is_refused_naming_the_line_or_flag_before_any_change() {
    let h = real(cxone_sim::SimConfig::default());
    h.write(
        "bad.toml",
        "[digital]\nmessages = { content = \"delete\", reason = \"GDPR\" }\n",
    );
    h.write("policy.toml", POLICY);
    h.write("cases.txt", "300000001\nnot a case!\n");
    for (args, want) in [
        (
            vec!["--policy", "bad.toml", "--closed-before", "2026-01-01"],
            "bad.toml:2: digital.messages.content",
        ),
        (
            vec!["--policy", "policy.toml", "--closed-before", "2999-01-01"],
            "in the future",
        ),
        (
            vec!["--policy", "policy.toml", "--cases", "cases.txt"],
            "cases.txt:2: not a case number",
        ),
    ] {
        let mut all = vec!["digital", "anonymize"];
        all.extend(args);
        let o = h.run(&all);
        assert_eq!(o.status.code(), Some(65), "{all:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{all:?}: {}", stderr(&o));
    }
    assert_eq!(dfo(&h)["dfoWrites"], 0);
    assert!(removed(&h).is_empty());
}

#[test]
fn one_customer_s_cases_and_a_case_list_are_covered_and_nothing_else() {
    let h = real(cxone_sim::SimConfig::default());
    h.write(
        "policy.toml",
        "[digital]\nmessages = { content = \"remove\", reason = \"GDPR\" }\n",
    );
    let state = dfo(&h);
    let cases = state["dfo"]["cases"].as_array().unwrap();
    let of = |customer: &str| -> BTreeSet<String> {
        cases
            .iter()
            .filter(|c| c["customer"] == customer)
            .flat_map(|c| {
                let id = c["id"].as_str().unwrap().to_string();
                (0..c["messages"].as_u64().unwrap()).map(move |i| format!("{id}-m{i}"))
            })
            .collect()
    };
    let o = h.run(&[
        "digital",
        "anonymize",
        "--policy",
        "policy.toml",
        "--customer",
        "cust-00002",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let got = removed(&h);
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        of("cust-00002")
    );
    assert!(
        got.values().all(
            |m| m["contentRemoved"]["reason"] == "GDPR" && m.get("authorNameRemoved").is_none()
        )
    );
    // A listed case that does not exist fails the job, naming it; the others are done.
    h.write("cases.txt", "# two cases\n300000100\n399999999\n");
    let o = h.run(&[
        "digital",
        "anonymize",
        "--policy",
        "policy.toml",
        "--cases",
        "cases.txt",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("399999999"), "{}", stderr(&o));
    assert!(removed(&h).contains_key("300000100-m0"));
}

#[test]
fn customer_fields_are_changed_by_the_policy_s_operators_once_and_unknown_idents_refused() {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let h = real(cxone_sim::SimConfig::default()).env("IT_DIGITAL_KEY", &key);
    h.write(
        "policy.toml",
        r#"[keys]
k = { id = "it-digital-1", env = "IT_DIGITAL_KEY" }

[digital.customer_fields]
loyalty_number = { op = "pseudonymize", key = "k" }
"#,
    );
    let field = |h: &Harness, customer: &str| {
        dfo(h)["dfo"]["customerFields"][customer]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["ident"] == "loyalty_number").cloned())
            .map(|f| f["value"].as_str().unwrap().to_string())
    };
    let before = field(&h, "cust-00001").expect("the seed gives even customers a loyalty number");
    let other = field(&h, "cust-00003");
    let args = [
        "digital",
        "anonymize",
        "--policy",
        "policy.toml",
        "--customer",
        "cust-00001",
    ];
    let o = h.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let after = field(&h, "cust-00001").unwrap();
    assert_ne!(after, before);
    assert_eq!(after.len(), 64, "a keyed pseudonym: {after}");
    assert_eq!(
        field(&h, "cust-00003"),
        other,
        "another customer is untouched"
    );
    assert!(
        removed(&h).is_empty(),
        "no messages rule: no message touched"
    );
    let entries = h.ledger_entries("dfo.customer.field");
    assert_eq!(entries.len(), 1);
    assert!(
        !h.ledger_bytes().contains(&before),
        "the value is never recorded"
    );
    // A rerun writes nothing: the value is already a pseudonym.
    let writes = dfo(&h)["dfoWrites"].clone();
    let o = h.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(dfo(&h)["dfoWrites"], writes);
    // An ident the tenant does not define is refused with its line, before any change.
    h.write(
        "bad.toml",
        "[digital.customer_fields]\n\nno_such_field = { op = \"erase\" }\n",
    );
    let o = h.run(&[
        "digital",
        "anonymize",
        "--policy",
        "bad.toml",
        "--customer",
        "cust-00003",
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad.toml:3: digital.customer_fields.no_such_field"),
        "{}",
        stderr(&o)
    );
    assert_eq!(dfo(&h)["dfoWrites"], writes);
}

#[test]
fn case_fields_are_masked_once_and_an_unknown_case_field_is_refused() {
    let h = real(cxone_sim::SimConfig::default());
    h.write(
        "policy.toml",
        "[digital.case_fields]\norder_number = { op = \"mask\", keep_last = 4 }\n",
    );
    let order = |h: &Harness, case: &str| {
        dfo(h)["dfo"]["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == case)
            .and_then(|c| c["customFields"].as_array().cloned())
            .and_then(|a| a.iter().find(|f| f["ident"] == "order_number").cloned())
            .map(|f| f["value"].as_str().unwrap().to_string())
    };
    // 300000000 and 300000003 carry an order number; 300000001 has none.
    let before = order(&h, "300000003").expect("every third case has one");
    assert!(order(&h, "300000001").is_none());
    h.write("cases.txt", "300000001\n300000003\n");
    let args = [
        "digital",
        "anonymize",
        "--policy",
        "policy.toml",
        "--cases",
        "cases.txt",
    ];
    let o = h.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let after = order(&h, "300000003").unwrap();
    assert_eq!(after, format!("********{}", &before[before.len() - 4..]));
    assert!(
        order(&h, "300000000").is_some_and(|v| v.starts_with("ORD-")),
        "not listed: untouched"
    );
    assert!(
        removed(&h).is_empty(),
        "no messages rule: no message touched"
    );
    assert_eq!(h.ledger_entries("dfo.case.field").len(), 1);
    let writes = dfo(&h)["dfoWrites"].clone();
    let o = h.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(dfo(&h)["dfoWrites"], writes, "a rerun writes nothing");
    h.write(
        "bad.toml",
        "[digital.case_fields]\nticket = { op = \"erase\" }\n",
    );
    let o = h.run(&[
        "digital",
        "anonymize",
        "--policy",
        "bad.toml",
        "--cases",
        "cases.txt",
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad.toml:2: digital.case_fields.ticket"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn customer_notes_are_deleted_once_and_a_bad_notes_op_is_refused() {
    let h = real(cxone_sim::SimConfig::default());
    h.write("policy.toml", "[digital.notes]\nop = \"delete\"\n");
    let notes = |h: &Harness, c: &str| dfo(h)["dfo"]["notes"][c].as_u64();
    assert_eq!(
        notes(&h, "cust-00001"),
        Some(1),
        "every fifth customer has a note"
    );
    assert_eq!(notes(&h, "cust-00006"), Some(1));
    let args = [
        "digital",
        "anonymize",
        "--policy",
        "policy.toml",
        "--customer",
        "cust-00001",
    ];
    let o = h.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(notes(&h, "cust-00001"), Some(0));
    assert_eq!(
        notes(&h, "cust-00006"),
        Some(1),
        "another customer's note is kept"
    );
    assert_eq!(h.ledger_entries("dfo.customer.note.deleted").len(), 1);
    assert!(
        !h.ledger_bytes().contains("call back on"),
        "no note content recorded"
    );
    let writes = dfo(&h)["dfoWrites"].clone();
    assert_eq!(h.run(&args).status.code(), Some(0));
    assert_eq!(dfo(&h)["dfoWrites"], writes, "a rerun deletes nothing");
    h.write("bad.toml", "[digital.notes]\nop = \"shred\"\n");
    let o = h.run(&[
        "digital",
        "anonymize",
        "--policy",
        "bad.toml",
        "--customer",
        "cust-00006",
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad.toml:1: digital.notes.op"),
        "{}",
        stderr(&o)
    );
    assert_eq!(notes(&h, "cust-00006"), Some(1));
}
