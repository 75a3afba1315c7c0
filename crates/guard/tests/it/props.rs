//! Property tests of every validator that faces users: over arbitrary strings each
//! returns `Ok` or a clear error, never panics, and never quotes a rejected value back.
//! 10,000 cases each (proptest; no fuzzing toolchain beyond stable is assumed).

use std::path::Path;
use std::sync::Arc;

use guard::anonymize::Policy;
use guard::anonymize::transform::{FpeVersion, decrypt_digits, encrypt_digits};
use guard::identity::{IdentifierKind, Identity, backfill, check_guest_id};
use guard::keys::Key;
use guard::pseudonym::{Normalizer, parse_region};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn identity() -> Identity {
    let key = Arc::new(Key::from_bytes("prop-key", vec![1u8; 32]).unwrap());
    let normalizer = Normalizer {
        region: Some(parse_region("US").unwrap()),
        gmail_folding: true,
    };
    Identity::new(key, normalizer, "hashed_user_id").unwrap()
}

/// Strings a user might type, and strings nobody would.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        "[a-z0-9._+-]{1,12}@[a-z0-9.-]{1,12}",
        "[+0-9() .-]{0,24}",
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// Whether `msg` repeats `value` (checked only where a coincidence is unlikely).
fn echoes(msg: &str, value: &str) -> bool {
    value.chars().count() >= 8 && msg.contains(value)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn identifiers_validate_without_panic_or_echo(s in text(), k in 0..3u8) {
        let kind = [IdentifierKind::Email, IdentifierKind::Phone, IdentifierKind::Auto][k as usize];
        let id = identity();
        match id.pseudonym("identifier", &s, kind) {
            Ok((_, p)) => prop_assert!(guard::pseudonym::is_pseudonym(&p)),
            Err(e) => {
                prop_assert_eq!(e.field, "identifier");
                prop_assert!(!echoes(&e.to_string(), &s), "{}", e);
            }
        }
    }

    #[test]
    fn ids_validate_without_panic_or_echo(s in text()) {
        if let Err(e) = check_guest_id(&s) {
            prop_assert!(!echoes(&e.to_string(), &s), "{}", e);
        }
        if let Err(e) = ledger::details::check_identifier("contact id", &s) {
            prop_assert!(!echoes(&e.to_string(), &s), "{}", e);
            prop_assert!(e.to_string().starts_with("contact id: "));
        }
        let _ = IdentifierKind::parse(&s);
        let _ = FpeVersion::parse(&s);
        let _ = guard::rotate::secrets::parse_age(&s);
        let _ = s.parse::<ledger::anchor::ExpectedHead>();
    }

    #[test]
    fn policy_toml_never_panics(s in text()) {
        let env = |_: &str| None;
        let _ = Policy::parse(&s, Path::new("p.toml"), &env);
    }

    #[test]
    fn structured_policies_never_panic(
        field in prop_oneof![Just("firstName".to_string()), Just("phone".to_string()), Just("email".to_string()), "customFields\\.[a-zA-Z0-9_.-]{0,70}", any::<String>()],
        op in prop_oneof![Just("erase"), Just("mask"), Just("pseudonymize"), Just("encrypt"), Just("replace"), Just("keep"), Just("shred")],
        n in any::<i64>(),
        value in any::<String>(),
        region in "[A-Za-z]{0,3}",
    ) {
        let text = format!(
            "default_region = {region:?}\n[keys]\nk = {{ id = \"k\", env = \"K\" }}\n[fields]\n{field:?} = {{ op = {op:?}, keep_first = {n}, key = \"k\", value = {value:?} }}\n"
        );
        let env = |k: &str| (k == "K").then(|| "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".to_string());
        if let Err(errors) = Policy::parse(&text, Path::new("p.toml"), &env) {
            prop_assert!(errors.iter().all(|e| e.starts_with("p.toml")), "{:?}", errors);
        }
    }

    #[test]
    fn csv_lines_never_panic_and_errors_name_lines(s in text()) {
        let id = identity();
        if let Err(errors) = backfill::plan(&id, &s, IdentifierKind::Auto, "pairs.csv") {
            for e in &errors {
                prop_assert!(e.starts_with("pairs.csv:"), "{}", e);
            }
        }
    }

    #[test]
    fn ff1_reverses_for_every_digit_string(
        digits in "[0-9]{6,30}",
        id in "[a-z0-9-]{1,20}",
        field in prop_oneof![Just("phone"), Just("customFields.acct")],
    ) {
        let k = Key::from_bytes("fpe", vec![2u8; 32]).unwrap();
        let c = encrypt_digits(&k, &id, field, &digits).unwrap();
        prop_assert_eq!(c.len(), digits.len());
        prop_assert_eq!(decrypt_digits(&k, FpeVersion::V2, &id, field, &c).unwrap(), digits);
    }
}
