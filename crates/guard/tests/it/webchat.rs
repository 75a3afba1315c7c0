//! The webchat pattern validator against an evasion corpus (OWASP's XSS filter evasion
//! cheat sheet and its encodings), ordinary patterns that merely contain `on`, `script`
//! or `eval`, and random input.

use guard::webchat::policy::pattern_problem;
use proptest::prelude::*;

/// The shared corpus (`tests/data/xss-patterns.json`, read by the CLI tests too):
/// evasions that must be refused, ordinary patterns that must be accepted.
fn corpus(which: &str) -> Vec<String> {
    let text = include_str!("../data/xss-patterns.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    serde_json::from_value(v[which].clone()).unwrap()
}

#[test]
fn every_evasion_is_refused_naming_the_decoded_form() {
    let evasions = corpus("evasions");
    assert!(evasions.len() >= 40);
    for p in &evasions {
        let why = pattern_problem(p).unwrap_or_else(|| panic!("{p:?} was accepted"));
        assert!(
            why.contains("script vector") || why.contains("control character"),
            "{p:?}: {why}"
        );
    }
}

#[test]
fn ordinary_patterns_with_the_words_are_accepted() {
    let ordinary = corpus("ordinary");
    assert!(ordinary.len() >= 20);
    for p in &ordinary {
        assert_eq!(pattern_problem(p), None, "{p:?}");
    }
}

fn entity_encode(s: &str) -> String {
    s.chars().map(|c| format!("&#{};", c as u32)).collect()
}

fn percent_encode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// One character as a browser reads it back: itself, percent-encoded, a named
/// reference (where one exists), or a decimal or hex reference with `pad` leading zeros.
fn encode_char(c: char, how: u8, pad: usize) -> String {
    let named = match c {
        '<' => Some("lt"),
        ':' => Some("colon"),
        '(' => Some("lpar"),
        '=' => Some("equals"),
        '/' => Some("sol"),
        '.' => Some("period"),
        _ => None,
    };
    let zeros = "0".repeat(pad);
    match how % 5 {
        0 => c.to_string(),
        1 => {
            let mut buf = [0u8; 4];
            c.encode_utf8(&mut buf)
                .bytes()
                .map(|b| format!("%{b:02X}"))
                .collect()
        }
        2 => named.map_or_else(|| format!("&#{zeros}{};", c as u32), |n| format!("&{n};")),
        3 => format!("&#{zeros}{};", c as u32),
        _ => format!("&#x{zeros}{:x};", c as u32),
    }
}

/// Script vectors that match anywhere in a pattern.
const VECTORS: &[&str] = &[
    "<script",
    "javascript:",
    "vbscript:",
    "data:text/html",
    "<iframe",
    "<svg",
    "<img",
    "srcdoc=",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Regression (trust review, item 5): any script vector, each of its characters
    /// in any of the encodings with any zero padding, and the whole maybe encoded once
    /// more, is refused.
    #[test]
    fn any_script_vector_in_any_mix_of_encodings_with_padding_is_refused(
        v in 0..VECTORS.len(),
        hows in proptest::collection::vec((any::<u8>(), 0..40usize), 16),
        outer in 0..3u8,
    ) {
        let vector = VECTORS[v];
        let inner: String = vector
            .chars()
            .zip(hows.iter().cycle())
            .map(|(c, (how, pad))| encode_char(c, *how, *pad))
            .collect();
        let p = match outer {
            0 => inner,
            1 => inner.replace('&', "%26").replace('%', "%25"),
            _ => inner.replace('&', "&amp;"),
        };
        let p = format!("/path/{p}");
        let why = pattern_problem(&p);
        prop_assert!(why.as_deref().is_some_and(|w| w.contains("script vector")), "{p:?}: {why:?}");
    }

    #[test]
    fn no_input_makes_the_validator_panic(s in "\\PC{0,300}", raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = pattern_problem(&s);
        let _ = pattern_problem(&String::from_utf8_lossy(&raw));
        let _ = guard::webchat::origin::normalize(&s);
    }

    #[test]
    fn a_refused_pattern_encoded_once_more_is_still_refused(i in 0..84usize, how in 0..3u8) {
        let evasions = corpus("evasions");
        let p = evasions[i % evasions.len()].as_str();
        // Only the script vectors: a control character is refused by itself.
        prop_assume!(!p.chars().any(char::is_control));
        let again = match how {
            0 => entity_encode(p),
            1 => percent_encode(p),
            _ => p.replace('<', "&lt;").replace(':', "%3A"),
        };
        prop_assert!(pattern_problem(&again).is_some(), "{again:?}");
    }
}
