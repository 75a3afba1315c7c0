//! identity: the normalization table (what a person typed → the value that is hashed, or
//! the message a caller reads), one pseudonym per person, the same as `anonymize`'s, and
//! linking against the emulator.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cxone::models::Contact;
use cxone_sim::SimConfig;
use guard::anonymize::{Policy, transform};
use guard::identity::{IdentifierKind, Identity, LinkError};
use guard::keys::Key;
use guard::pseudonym::{Normalizer, parse_region};

use crate::{KEY_B64, client, sim};

use IdentifierKind::{Auto, Email, Phone};

fn key() -> Arc<Key> {
    Arc::new(Key::from_bytes("test-key-1", vec![42u8; 32]).unwrap())
}

fn identity(region: Option<&str>, gmail_folding: bool) -> Identity {
    let normalizer = Normalizer {
        region: region.map(|r| parse_region(r).unwrap()),
        gmail_folding,
    };
    Identity::new(key(), normalizer, "hashed_user_id").unwrap()
}

/// Which configuration a row runs under.
#[derive(Clone, Copy, Debug)]
enum Cfg {
    /// default_region = "US", no gmail folding
    Us,
    /// default_region = "GB"
    Gb,
    /// no default region
    NoRegion,
    /// default_region = "US", gmail_folding = true
    Gmail,
}

enum Want {
    Is(&'static str),
    Fails(&'static str),
}
use Want::{Fails, Is};

#[rustfmt::skip]
const TABLE: &[(Cfg, IdentifierKind, &str, Want)] = &[
    // Email: case and whitespace.
    (Cfg::Us, Email, "ann.lee@example.com", Is("ann.lee@example.com")),
    (Cfg::Us, Email, "ANN.LEE@EXAMPLE.COM", Is("ann.lee@example.com")),
    (Cfg::Us, Email, "Ann.Lee@Example.Com", Is("ann.lee@example.com")),
    (Cfg::Us, Email, "  ann.lee@example.com  ", Is("ann.lee@example.com")),
    (Cfg::Us, Email, "\tann.lee@example.com\r\n", Is("ann.lee@example.com")),
    (Cfg::Us, Email, "\u{a0}ann.lee@example.com\u{2003}", Is("ann.lee@example.com")),
    (Cfg::Us, Email, "ann.lee\u{200b}@example.com", Is("ann.lee@example.com")),
    (Cfg::Us, Email, "\u{feff}ann.lee@example.com", Is("ann.lee@example.com")),
    // Email: plus-addressing is kept, except gmail's with folding on.
    (Cfg::Us, Email, "ann.lee+chat@example.com", Is("ann.lee+chat@example.com")),
    (Cfg::Gmail, Email, "ann.lee+chat@example.com", Is("ann.lee+chat@example.com")),
    (Cfg::Us, Email, "Ann.Lee+promo@gmail.com", Is("ann.lee+promo@gmail.com")),
    (Cfg::Gmail, Email, "Ann.Lee+promo@gmail.com", Is("annlee@gmail.com")),
    (Cfg::Gmail, Email, "a.n.n.l.e.e@GoogleMail.com", Is("annlee@gmail.com")),
    (Cfg::Gmail, Email, "annlee@gmail.com", Is("annlee@gmail.com")),
    (Cfg::Gmail, Email, "+promo@gmail.com", Fails("nothing before the + tag")),
    // Email: Unicode.
    (Cfg::Us, Email, "JOSÉ@example.com", Is("josé@example.com")),
    (Cfg::Us, Email, "jose\u{301}@example.com", Is("josé@example.com")),
    (Cfg::Us, Email, "ÅSA@EXEMPEL.SE", Is("åsa@exempel.se")),
    (Cfg::Us, Email, "ann@BÜCHER.de", Is("ann@xn--bcher-kva.de")),
    (Cfg::Us, Email, "ann@xn--bcher-kva.de", Is("ann@xn--bcher-kva.de")),
    (Cfg::Us, Auto, "Ann.Lee@Example.com", Is("ann.lee@example.com")),
    // Email: invalid, each with its reason.
    (Cfg::Us, Email, "", Fails("is empty")),
    (Cfg::Us, Email, "   ", Fails("is empty")),
    (Cfg::Us, Email, "ann.lee.example.com", Fails("no @")),
    (Cfg::Us, Email, "@example.com", Fails("nothing before the @")),
    (Cfg::Us, Email, "ann@", Fails("nothing after the @")),
    (Cfg::Us, Email, "ann@localhost", Fails("the domain has no dot")),
    (Cfg::Us, Email, "ann lee@example.com", Fails("not RFC 5322 syntax")),
    (Cfg::Us, Email, "ann..lee@example.com", Fails("not RFC 5322 syntax")),
    (Cfg::Us, Email, "ann@exa mple.com", Fails("not RFC 5322 syntax")),
    (Cfg::Us, Email, "ann@@example.com", Fails("not RFC 5322 syntax")),
    // Phone: one US number written many ways.
    (Cfg::Us, Phone, "+1 (212) 555-0123", Is("+12125550123")),
    (Cfg::Us, Phone, "(212) 555-0123", Is("+12125550123")),
    (Cfg::Us, Phone, "212.555.0123", Is("+12125550123")),
    (Cfg::Us, Phone, "212-555-0123", Is("+12125550123")),
    (Cfg::Us, Phone, "1-212-555-0123", Is("+12125550123")),
    (Cfg::Us, Phone, "  +1 212 555 0123\n", Is("+12125550123")),
    (Cfg::Us, Phone, "011 44 20 7946 0958", Is("+442079460958")),
    (Cfg::Us, Phone, "＋１ ２１２ ５５５ ０１２３", Is("+12125550123")),
    (Cfg::Us, Auto, "(212) 555-0123", Is("+12125550123")),
    (Cfg::NoRegion, Phone, "+1 212 555 0123", Is("+12125550123")),
    // Phone: international numbers, with and without a default region.
    (Cfg::Us, Phone, "+44 20 7946 0958", Is("+442079460958")),
    (Cfg::Gb, Phone, "020 7946 0958", Is("+442079460958")),
    (Cfg::Gb, Phone, "00 44 20 7946 0958", Is("+442079460958")),
    (Cfg::Gb, Phone, "+44 (0)20 7946 0958", Is("+442079460958")),
    (Cfg::Us, Phone, "+49 30 90182012", Is("+493090182012")),
    (Cfg::Us, Phone, "+33 1 42 68 53 00", Is("+33142685300")),
    (Cfg::Us, Phone, "+81 3-3224-5000", Is("+81332245000")),
    (Cfg::Us, Phone, "+91 98765 43210", Is("+919876543210")),
    (Cfg::Us, Phone, "+55 11 91234-5678", Is("+5511912345678")),
    // Regression: phonenumber 0.3 stripped the default region's "1" from these.
    (Cfg::Us, Phone, "011 33 1 42 68 53 00", Is("+33142685300")),
    (Cfg::Us, Phone, "tel:+1-212-555-0123", Is("+12125550123")),
    // Phone: invalid, each with its reason.
    (Cfg::Us, Phone, "", Fails("is empty")),
    (Cfg::Us, Phone, "call me maybe", Fails("no digits")),
    (Cfg::Us, Auto, "no-at-sign", Fails("no digits")),
    (Cfg::Us, Phone, "12", Fails("not a phone number")),
    (Cfg::Us, Phone, "+1 555", Fails("not a phone number")),
    (Cfg::Us, Phone, "12345678901234567890", Fails("not a phone number")),
    (Cfg::NoRegion, Phone, "(212) 555-0123", Fails("no default region")),
];

fn run(cfg: Cfg, kind: IdentifierKind, raw: &str) -> Result<String, String> {
    let id = match cfg {
        Cfg::Us => identity(Some("US"), false),
        Cfg::Gb => identity(Some("GB"), false),
        Cfg::NoRegion => identity(None, false),
        Cfg::Gmail => identity(Some("US"), true),
    };
    id.normalize("identifier", raw, kind)
        .map(|(_, v)| v)
        .map_err(|e| e.to_string())
}

#[test]
fn normalization_table() {
    assert!(TABLE.len() >= 40, "the table keeps at least 40 cases");
    let mut wrong = Vec::new();
    for (cfg, kind, raw, want) in TABLE {
        let got = run(*cfg, *kind, raw);
        let ok = match (want, &got) {
            (Is(v), Ok(g)) => g == v,
            (Fails(m), Err(e)) => {
                // Every message names the field, says why, and never repeats the input.
                e.starts_with("identifier: ")
                    && e.contains(m)
                    && (raw.trim().len() < 3 || !e.contains(raw.trim()))
            }
            _ => false,
        };
        if !ok {
            let w = match want {
                Is(v) => format!("Ok({v:?})"),
                Fails(m) => format!("Err(..{m}..)"),
            };
            wrong.push(format!("{cfg:?} {kind:?} {raw:?}: want {w}, got {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} rows wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn one_person_one_pseudonym() {
    let us = identity(Some("US"), false);
    let groups: &[&[(IdentifierKind, &str)]] = &[
        &[
            (Email, "ann.lee@example.com"),
            (Auto, " ANN.LEE@EXAMPLE.COM "),
            (Email, "Ann.Lee@Example.Com\u{200b}"),
        ],
        &[
            (Phone, "+1 (212) 555-0123"),
            (Auto, "212.555.0123"),
            (Phone, "1-212-555-0123"),
            (Phone, "＋１ ２１２ ５５５ ０１２３"),
        ],
        &[
            (Email, "josé@example.com"),
            (Email, "JOSE\u{301}@EXAMPLE.COM"),
        ],
    ];
    let mut seen = Vec::new();
    for group in groups {
        let values: Vec<String> = group
            .iter()
            .map(|(k, raw)| us.pseudonym("identifier", raw, *k).unwrap().1)
            .collect();
        assert!(
            values.iter().all(|v| *v == values[0]),
            "one person, several pseudonyms: {group:?}"
        );
        assert!(guard::pseudonym::is_pseudonym(&values[0]));
        seen.push(values[0].clone());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), groups.len(), "different people, one pseudonym");
}

#[test]
fn the_pseudonym_equals_anonymizes_for_the_same_key() {
    let policy_text = r#"default_region = "US"
[keys]
k = { id = "test-key-1", env = "TEST_KEY" }
[fields]
email = { op = "pseudonymize", key = "k" }
"customFields.mobile" = { op = "pseudonymize", key = "k", normalize = "phone" }
"#;
    let env = |k: &str| (k == "TEST_KEY").then(KEY_B64);
    let policy = Policy::parse(policy_text, Path::new("policy.toml"), &env).unwrap();
    let us = identity(Some("US"), false);
    for (email, phone) in [
        ("  Ann.Lee@Example.com", "(212) 555-0123"),
        ("JOSÉ@bücher.de", "+44 20 7946 0958"),
    ] {
        let contact: Contact = serde_json::from_value(serde_json::json!({
            "id": "c-0000001", "email": email,
            "createdAt": "2020-01-01T00:00:00Z", "updatedAt": "2020-01-01T00:00:00Z",
            "customFields": { "mobile": phone }, "version": 1, "etag": "\"1\""
        }))
        .unwrap();
        let plan = transform::plan(&policy, &contact, &BTreeMap::new()).unwrap();
        let patch = plan.patch.to_json();
        assert_eq!(
            patch["email"].as_str().unwrap(),
            us.pseudonym("identifier", email, Auto).unwrap().1,
            "{email}"
        );
        assert_eq!(
            patch["customFields"]["mobile"].as_str().unwrap(),
            us.pseudonym("identifier", phone, Phone).unwrap().1,
            "{phone}"
        );
    }
}

#[tokio::test]
async fn link_upserts_the_attribute_and_refuses_unknown_guests() {
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    let id = identity(Some("US"), false);
    let linked = id
        .link(&client, "g-000001", "identifier", " Ann@Example.com", Auto)
        .await
        .unwrap();
    assert_eq!(linked.guest_id, "g-000001");
    assert_eq!(linked.key_id, "test-key-1");
    let attrs = client.guests().attributes("g-000001").await.unwrap();
    let want = id.pseudonym("x", "ann@example.com", Email).unwrap().1;
    assert!(
        attrs
            .iter()
            .any(|a| a.id == "hashed_user_id" && a.value == want),
        "{attrs:?}"
    );
    // Again: idempotent, same value.
    id.link(&client, "g-000001", "identifier", "ANN@example.com", Email)
        .await
        .unwrap();
    assert_eq!(client.guests().attributes("g-000001").await.unwrap(), attrs);

    let err = id
        .link(&client, "g-999999", "identifier", "ann@example.com", Auto)
        .await
        .unwrap_err();
    assert!(matches!(err, LinkError::UnknownGuest(_)), "{err:?}");
    // Invalid input: nothing is sent.
    let before = sim
        .control()
        .route_hits("PATCH /api/v2/interactions/guests/{id}/attributes");
    let err = id
        .link(&client, "g-000002", "identifier", "not-an-email@", Auto)
        .await
        .unwrap_err();
    assert!(matches!(err, LinkError::Invalid(_)), "{err:?}");
    assert_eq!(
        sim.control()
            .route_hits("PATCH /api/v2/interactions/guests/{id}/attributes"),
        before
    );
}

/// Regression: a client without interaction:guest:write failed guest after guest; now the
/// job stops once, and the same plan run again with the scope finishes it.
#[tokio::test]
async fn a_backfill_without_the_scope_stops_once_and_resumes() {
    use guard::identity::backfill;
    let sim = sim(SimConfig::default()).await;
    let c = sim.credentials();
    let grant = cxone::Grant::ClientCredentials {
        client_id: c.readonly_client_id.clone(),
        client_secret: c.readonly_client_secret.clone().into(),
    };
    let readonly =
        cxone::Client::new(cxone::Settings::new(&sim.base_url(), grant).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ledger = crate::ledger(&dir).await;
    let id = identity(Some("US"), false);
    let text: String = (1..=30)
        .map(|i| format!("g-{i:06},person{i}@example.com\n"))
        .collect();
    let plan = backfill::plan(&id, &text, Auto, "pairs.csv").unwrap();
    let opts = backfill::Options {
        actor: "test".into(),
        concurrency: 4,
    };
    let e = backfill::apply(&readonly, &ledger, &id, &plan, &opts, Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, guard::Error::Api(api) if api.is_missing_scope()),
        "{e}"
    );
    let patches = sim
        .control()
        .route_hits("PATCH /api/v2/interactions/guests/{id}/attributes");
    assert!(patches <= 4, "{patches} PATCHes after the first refusal");
    let report = backfill::apply(
        &client(&sim),
        &ledger,
        &id,
        &plan,
        &opts,
        Default::default(),
    )
    .await
    .unwrap();
    assert!(report.resumed);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.linked, 30);
}
