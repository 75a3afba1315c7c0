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

/// `cxguard serve` as a child process, until dropped (SIGKILL: the test is over).
struct Serving {
    child: std::process::Child,
    url: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(h: &Harness) -> Serving {
    use std::io::{BufRead as _, BufReader};
    let mut child = h
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let l = lines
            .next()
            .expect("serve prints where it listens")
            .unwrap();
        if let Some(rest) = l.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    Serving { child, url }
}

/// The first line on stdout, and the config line on stderr, of `keys api`.
fn new_key(h: &Harness, args: &[&str]) -> (String, String) {
    let o = h.run(args);
    assert!(o.status.success(), "{}", stderr(&o));
    let line = stderr(&o)
        .lines()
        .find(|l| l.contains("sha256"))
        .unwrap()
        .trim()
        .to_string();
    (stdout(&o).trim().to_string(), line)
}

#[test]
fn a_sync_callback_to_serve_is_verified_once_and_a_forged_one_is_refused() {
    let h = harness()
        .env(
            "IT_IDENTITY_KEY",
            "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=",
        )
        .env(
            "IT_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
    let (hook, received) = h.receiver("kms");
    let (_, api_line) = new_key(&h, &["keys", "api", "--id", "web-it"]);
    let (token, kms_line) = new_key(&h, &["keys", "api", "--id", "tenant-it", "--kms"]);
    assert!(token.starts_with("cxk_") && !kms_line.contains(&token));
    h.write(
        "cxguard.toml",
        &format!(
            "[identity]\nkey = {{ id = \"guest-id-it\", env = \"IT_IDENTITY_KEY\" }}\n\
             [server]\n{api_line}\n[kms]\n{kms_line}\n\
             [webhooks.kms]\nurl = \"{hook}\"\nsecret_env = \"IT_WEBHOOK_SECRET\"\n"
        ),
    );
    let serving = serve(&h);
    let callback = |t: &str| format!("{}/v1/kms/callback/{t}", serving.url);
    let l = h.ledger();
    let entries = |op: &str| {
        h.rt.block_on(l.entries(&ledger::Filter {
            operation: Some(op.into()),
            ..Default::default()
        }))
        .unwrap()
    };

    // A token serve does not know: 404, so the tenant rolls back; exit 1 naming the
    // callback's host, never its token.
    let o = h.run(&[
        "datastore",
        "encrypt",
        TABLE,
        "--columns",
        "ssn",
        "--kms-callback",
        &callback("cxk_not-a-configured-token"),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("KMS callback") && stderr(&o).contains("127.0.0.1"),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("not-a-configured-token"),
        "{}",
        stderr(&o)
    );
    assert_eq!(table_mutations(&h), 0, "rolled back: nothing encrypted");
    assert_eq!(h.sim.control().state()["keyVersion"], 1);

    // The configured token: the tenant calls back before answering, serve finds the
    // running job, and the change lands.
    let o = h.run(&[
        "datastore",
        "encrypt",
        TABLE,
        "--columns",
        "ssn,passport_number",
        "--kms-callback",
        &callback(&token),
        "--sync-mode",
        "sync",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("key version 2"), "{}", stdout(&o));
    assert_eq!(table_mutations(&h), 1);
    let verified = entries("datastore.kms_verified");
    assert_eq!(verified.len(), 1, "audited once");
    assert_eq!(verified[0].target, "tbl-customer-profiles");
    assert_eq!(verified[0].actor, "kms:tenant-it");
    assert_eq!(verified[0].details["key_version"], 2);

    // What the tenant sent, sent again (a retry) and replayed: the same answer, no
    // second entry.
    let http = reqwest::Client::new();
    let post = |body: Value, key: Option<&str>| {
        let mut r = http.post(callback(&token)).json(&body);
        if let Some(k) = key {
            r = r.header("x-idempotency-key", k);
        }
        h.rt.block_on(async { r.send().await.unwrap() })
    };
    let sent = h.sim.control().kms_callbacks();
    let payload = sent.last().unwrap()["payload"].clone();
    for key in [Some("kms-tbl-customer-profiles-2"), None] {
        let r = post(payload.clone(), key);
        assert_eq!(r.status(), 200);
        let v: Value = h.rt.block_on(r.json()).unwrap();
        assert_eq!(v["status"], "VERIFIED");
        let cols = payload["columns"].as_array().unwrap().len();
        assert_eq!(
            v["permissionHash"],
            guard::sha256_hex(&format!("tbl-customer-profiles:2:{cols}"))
        );
    }
    assert_eq!(entries("datastore.kms_verified").len(), 1);

    // Forged: a table cxguard never asked about, a newer key version nobody asked for,
    // another algorithm. Refused, recorded as refusals, never as verified.
    let mut unknown = payload.clone();
    unknown["tableId"] = "tbl-other".into();
    let mut newer = payload.clone();
    newer["keyVersion"] = 3.into();
    let mut weak = payload.clone();
    weak["complianceCheck"]["algorithm"] = "AES-128-CBC".into();
    for (body, status) in [(unknown, 409), (newer, 409), (weak, 422)] {
        let r = post(body.clone(), None);
        assert_eq!(r.status(), status, "{body}");
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "application/problem+json"
        );
    }
    let r = post(Value::String("junk".into()), None);
    assert_eq!(r.status(), 400);
    let r = h.rt.block_on(async {
        http.post(callback("cxk_wrong"))
            .json(&payload)
            .send()
            .await
            .unwrap()
    });
    assert_eq!(
        r.status(),
        404,
        "an unknown token looks like no route at all"
    );
    assert_eq!(entries("datastore.kms_verified").len(), 1);
    assert_eq!(entries("datastore.kms_refused").len(), 3);

    // The column_encryption.verified event reaches [webhooks.kms].
    let o = h.run(&["outbox", "deliver", "--until-empty", "--max-wait", "10"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "column_encryption.verified");
    assert_eq!(got[0]["data"]["key_version"], 2);
    let metrics = h.rt.block_on(async {
        http.get(format!("{}/metrics", serving.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(
        metrics.contains("cxguard_kms_callbacks_total{outcome=\"verified\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains(&token), "no token in the metrics");
    let o = h.run(&["audit", "verify"]);
    assert!(o.status.success(), "{}", stdout(&o));
}
