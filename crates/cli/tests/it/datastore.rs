//! `cxguard datastore encrypt | coverage` as a user runs them: every bad input refused
//! with exit 65 before any write, a plan, an apply, and coverage for CI.

use serde_json::Value;

use crate::harness::Harness;
use crate::{stderr, stdout};

const TABLE: &str = "ds-customer/tbl-customer-profiles";

fn harness() -> Harness {
    Harness::start(cxone_sim::SimConfig::default())
}

fn table_mutations(h: &Harness) -> u64 {
    h.sim.control().mutations("table/").values().sum()
}

#[test]
fn each_bad_input_exits_65_naming_it_and_writes_nothing() {
    let h = harness();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--columns", "ssn,no_such"],
            "column no_such: ds-customer/tbl-customer-profiles has no such column",
        ),
        (&["--columns", "ssn,ssn"], "column ssn: named twice"),
        (
            &[
                "--columns",
                "full_name,email,phone,ssn,date_of_birth,loyalty_points,address_line1,city,postal_code,country,iban,passport_number",
                "--mask-indexes",
            ],
            "1 column(s) are encrypted now and 12 more are requested, 13 in all, over the table's limit of 12",
        ),
        (
            &["--columns", "customer_id"],
            "index pk_customer: read-only",
        ),
        (
            &["--columns", "email"],
            "index idx_email: covers email; pass --mask-indexes",
        ),
        (
            &["--columns", "ssn", "--compliance", "SOX"],
            "--compliance: \"SOX\" is not GDPR, HIPAA or PCI",
        ),
        (
            &["--columns", "ssn", "--rotation-days", "400"],
            "--rotation-days: 400 is not from 1 to 365",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["datastore", "encrypt", TABLE];
        args.extend_from_slice(extra);
        let o = h.run(&args);
        assert_eq!(o.status.code(), Some(65), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{extra:?}: {}", stderr(&o));
    }
    // Several problems at once, each named.
    let o = h.run(&[
        "datastore",
        "encrypt",
        TABLE,
        "--columns",
        "nope,customer_id,email",
    ]);
    assert_eq!(o.status.code(), Some(65));
    let e = stderr(&o);
    assert!(
        e.contains("(3 problems)")
            && e.contains("column nope")
            && e.contains("index pk_customer")
            && e.contains("index idx_email"),
        "{e}"
    );
    let o = h.run(&["datastore", "encrypt", "no-slash", "--columns", "ssn"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert_eq!(table_mutations(&h), 0, "nothing was written");
    assert_eq!(h.sim.control().state()["keyVersion"], 1);
}

#[test]
fn plan_apply_then_nothing_to_do_and_coverage_gates_ci() {
    let h = harness();
    let sensitive =
        "full_name,email,phone,ssn,date_of_birth,address_line1,postal_code,iban,passport_number";

    let o = h.run(&["datastore", "coverage", TABLE, "--fail-on-unencrypted"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("1/15 columns encrypted, 1/10 sensitive"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("sensitive in clear: full_name, email, phone, ssn"),
        "{}",
        stdout(&o)
    );

    let o = h.run(&[
        "datastore",
        "encrypt",
        TABLE,
        "--columns",
        sensitive,
        "--mask-indexes",
        "--dry-run",
        "--output",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        plan["plan"]["maskedIndexes"],
        serde_json::json!(["idx_email", "idx_phone_name"])
    );
    assert_eq!(
        plan["plan"]["after"]["sensitiveInClear"],
        serde_json::json!([])
    );
    assert_eq!(plan["plan"]["risk"], "high");
    assert_eq!(table_mutations(&h), 0, "a dry run writes nothing");

    let o = h.run(&[
        "datastore",
        "encrypt",
        TABLE,
        "--columns",
        sensitive,
        "--mask-indexes",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("key version 2"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("coverage now 10/15 columns, 10/10 sensitive"),
        "{}",
        stdout(&o)
    );
    assert_eq!(table_mutations(&h), 1);

    let o = h.run(&[
        "datastore",
        "encrypt",
        TABLE,
        "--columns",
        sensitive,
        "--mask-indexes",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("nothing to do"), "{}", stdout(&o));
    assert_eq!(table_mutations(&h), 1, "a rerun sends no PATCH");

    let o = h.run(&["datastore", "coverage", TABLE, "--fail-on-unencrypted"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("10/15 columns encrypted, 10/10 sensitive"),
        "{}",
        stdout(&o)
    );

    let l = h.ledger();
    let entries =
        h.rt.block_on(l.entries(&ledger::Filter {
            operation: Some("datastore.encrypt".into()),
            ..Default::default()
        }))
        .unwrap();
    assert_eq!(entries.len(), 1, "one audit entry per table");
    let d = entries[0].details.to_string();
    assert!(d.contains("key_version") && d.contains("idx_email"), "{d}");
    let o = h.run(&["audit", "verify"]);
    assert!(o.status.success(), "{}", stdout(&o));
}
