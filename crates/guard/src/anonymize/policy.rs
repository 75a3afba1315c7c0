//! The masking policy: a TOML file mapping contact fields to operators. Validated before
//! any call: every problem is reported at once, each naming its line in the file.
//!
//! ```toml
//! default_region = "US"          # for phone numbers written without +country code
//! gmail_folding = false
//!
//! [keys]
//! pseudonym = { id = "pseudo-2026", env = "CXGUARD_PSEUDONYM_KEY" }
//! fpe = { id = "fpe-2026", file = "/etc/cxguard/fpe.key" }
//!
//! [fields]
//! firstName = { op = "erase" }
//! lastName = { op = "mask", keep_first = 1 }
//! email = { op = "pseudonymize", key = "pseudonym" }
//! phone = { op = "encrypt", key = "fpe" }
//! "customFields.notes" = { op = "replace", value = "[redacted]" }
//! "customFields.loyaltyTier" = { op = "keep" }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

pub use super::rules::{Field, Keep, MIN_FPE_DIGITS, Operator};
use super::rules::{RuleFile, compile};
use crate::keys::{Key, KeySpec};
use crate::pseudonym::{Normalizer, parse_region};

/// One field and what to do to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The field.
    pub field: Field,
    /// What to do.
    pub op: Operator,
    /// The line in the policy file, for messages.
    pub line: usize,
}

/// A validated policy, its keys loaded.
#[derive(Debug)]
pub struct Policy {
    /// The rules, one per field.
    pub rules: Vec<Rule>,
    /// How emails and phone numbers are normalized before hashing.
    pub normalizer: Normalizer,
    /// The keys by name, loaded.
    pub keys: BTreeMap<String, Key>,
    /// SHA-256 of the policy text, so a resumed job can check it runs the same policy.
    pub digest: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    default_region: Option<Spanned<String>>,
    #[serde(default)]
    gmail_folding: bool,
    #[serde(default)]
    keys: BTreeMap<String, Spanned<KeySpec>>,
    #[serde(default)]
    fields: BTreeMap<Spanned<String>, Spanned<RuleFile>>,
    /// DFO: its custom-field rules here; its messages rule is `guard::digital::policy`'s.
    #[serde(default)]
    digital: Option<DigitalFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DigitalFile {
    /// Read by `guard::digital::policy`.
    #[serde(default, rename = "messages")]
    _messages: Option<toml::Value>,
    #[serde(default)]
    customer_fields: BTreeMap<Spanned<String>, Spanned<RuleFile>>,
    #[serde(default)]
    case_fields: BTreeMap<Spanned<String>, Spanned<RuleFile>>,
    /// Read by `guard::digital::policy`.
    #[serde(default, rename = "notes")]
    _notes: Option<toml::Value>,
}

/// Which rules of the file a [`Policy`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `[fields]`: contact fields (`contacts anonymize`).
    Contacts,
    /// `[digital.customer_fields]`: DFO customer custom fields by ident.
    CustomerFields,
    /// `[digital.case_fields]`: DFO case custom fields by ident.
    CaseFields,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

impl Policy {
    /// Parses and validates `text` (read from `path`, named in messages), loading keys
    /// through `lookup` (the environment). All problems are reported together.
    pub fn parse(
        text: &str,
        path: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Vec<String>> {
        Self::parse_section(text, path, lookup, Section::Contacts)
    }

    /// As [`Policy::parse`], with the rules of `section`: `[digital.customer_fields]`
    /// compiles each ident as a custom field, may be empty, and refuses `encrypt` (a
    /// DFO field keeps no record of what was encrypted, so a rerun would encrypt twice).
    pub fn parse_section(
        text: &str,
        path: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
        section: Section,
    ) -> Result<Self, Vec<String>> {
        let shown = path.display();
        let file: PolicyFile = toml::from_str(text)
            .map_err(|e| vec![crate::parsing::toml_problem(&shown.to_string(), text, &e)])?;
        let mut errors = Vec::new();
        let at = |offset: usize| format!("{shown}:{}", line_of(text, offset));

        let region = match &file.default_region {
            None => None,
            Some(r) => match parse_region(r.get_ref()) {
                Ok(id) => Some(id),
                Err(e) => {
                    errors.push(format!("{}: default_region: {e}", at(r.span().start)));
                    None
                }
            },
        };
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let mut keys = BTreeMap::new();
        for (name, spec) in &file.keys {
            match Key::load(spec.get_ref(), lookup, base_dir) {
                Ok(k) => {
                    keys.insert(name.clone(), k);
                }
                Err(e) => errors.push(format!(
                    "{}: keys.{name} (id {:?}): {e}",
                    at(spec.span().start),
                    spec.get_ref().id
                )),
            }
        }
        let empty = BTreeMap::new();
        let (table, prefix) = match section {
            Section::Contacts => (&file.fields, "fields."),
            Section::CustomerFields => (
                file.digital.as_ref().map_or(&empty, |d| &d.customer_fields),
                "digital.customer_fields.",
            ),
            Section::CaseFields => (
                file.digital.as_ref().map_or(&empty, |d| &d.case_fields),
                "digital.case_fields.",
            ),
        };
        if section == Section::Contacts && file.fields.is_empty() {
            errors.push(format!(
                "{shown}: [fields] is empty: the policy would change nothing"
            ));
        }
        let rules = compile_all(
            (text, &shown.to_string(), prefix, section),
            table,
            (&file.keys, &keys),
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        let digest = crate::sha256_hex(text);
        Ok(Policy {
            rules,
            normalizer: Normalizer {
                region,
                gmail_folding: file.gmail_folding,
            },
            keys,
            digest,
        })
    }

    /// The key named `name` (checked to exist when the policy was validated).
    pub fn key(&self, name: &str) -> &Key {
        &self.keys[name]
    }

    /// The keys the pseudonymize rules use: a value one of them made is a pseudonym of
    /// this policy's.
    pub fn pseudonymize_keys(&self) -> Vec<&Key> {
        let mut out: Vec<&Key> = Vec::new();
        for r in &self.rules {
            if let Operator::Pseudonymize { key, .. } = &r.op
                && !out.iter().any(|k| k.id() == self.keys[key].id())
            {
                out.push(&self.keys[key]);
            }
        }
        out
    }

    /// The key ids the rules use, for the audit trail.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .rules
            .iter()
            .filter_map(|r| match &r.op {
                Operator::Pseudonymize { key, .. } | Operator::Encrypt { key } => {
                    Some(self.keys[key].id().to_string())
                }
                _ => None,
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Each rule of `table` compiled for its field, its problems (named by line) added to
/// `errors`.
fn compile_all(
    (text, shown, prefix, section): (&str, &str, &str, Section),
    table: &BTreeMap<Spanned<String>, Spanned<RuleFile>>,
    (key_specs, keys): (&BTreeMap<String, Spanned<KeySpec>>, &BTreeMap<String, Key>),
    errors: &mut Vec<String>,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    for (name, rule) in table {
        let line = line_of(text, name.span().start);
        let here = format!("{shown}:{line}: {prefix}{}", name.get_ref());
        let parsed = match section {
            Section::Contacts => Field::parse(name.get_ref()),
            _ => Field::parse(&format!("customFields.{}", name.get_ref())),
        };
        if section != Section::Contacts && rule.get_ref().op == "encrypt" {
            errors.push(format!(
                "{here}: encrypt is for contact fields; a DFO field keeps no record of it (use pseudonymize, mask or erase)"
            ));
            continue;
        }
        let field = match parsed {
            Ok(f) => f,
            Err(e) => {
                errors.push(format!("{here}: {e}"));
                continue;
            }
        };
        match compile(&field, rule.get_ref(), key_specs, keys) {
            Ok(op) => rules.push(Rule { field, op, line }),
            Err(e) => errors.push(format!("{here}: {e}")),
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn env(k: &str) -> Option<String> {
        match k {
            "K32" => Some(base64::engine::general_purpose::STANDARD.encode([9u8; 32])),
            "K16" => Some(base64::engine::general_purpose::STANDARD.encode([9u8; 16])),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Policy, Vec<String>> {
        Policy::parse(text, Path::new("p.toml"), &env)
    }

    const GOOD: &str = r#"default_region = "US"
[keys]
pseudo = { id = "pseudo-1", env = "K32" }
[fields]
firstName = { op = "erase" }
lastName = { op = "mask", keep_first = 1 }
email = { op = "pseudonymize", key = "pseudo" }
phone = { op = "encrypt", key = "pseudo" }
"customFields.notes" = { op = "replace", value = "[redacted]" }
"customFields.loyaltyTier" = { op = "keep" }
"#;

    #[test]
    fn a_good_policy_compiles() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.rules.len(), 6);
        assert_eq!(p.key_ids(), vec!["pseudo-1"]);
        let email = p.rules.iter().find(|r| r.field == Field::Email).unwrap();
        assert_eq!(email.line, 7);
        assert!(!format!("{p:?}").contains("CQkJ"), "key bytes never print");
    }

    /// Each bad policy gets an error naming the file, the line and what is wrong.
    #[test]
    fn bad_policies_name_the_line() {
        let cases: &[(&str, &str)] = &[
            (
                "[fields]\nfirstName = { op = \"shred\" }\n",
                "p.toml:2: fields.firstName: unknown operator \"shred\"",
            ),
            (
                "[fields]\nmiddleName = { op = \"erase\" }\n",
                "p.toml:2: fields.middleName: unknown field",
            ),
            (
                "[fields]\nphone = { op = \"pseudonymize\", key = \"k\" }\n[keys]\nk = { id = \"k\", env = \"K32\" }\n",
                "p.toml:2: fields.phone: pseudonymize gives 64 characters; phone holds at most 50",
            ),
            (
                "[fields]\nphone = { op = \"replace\", value = \"123456789012345678901234567890123456789012345678901\" }\n",
                "p.toml:2: fields.phone: the replacement has 51 characters",
            ),
            (
                "[keys]\nk = { id = \"k\", env = \"K16\" }\n[fields]\nemail = { op = \"pseudonymize\", key = \"k\" }\n",
                "p.toml:2: keys.k (id \"k\"): key \"k\" has 16 bytes",
            ),
            (
                "[keys]\nk = { id = \"k\", env = \"NOPE\" }\n[fields]\nemail = { op = \"pseudonymize\", key = \"k\" }\n",
                "the environment variable NOPE is not set",
            ),
            (
                "[fields]\nemail = { op = \"pseudonymize\", key = \"missing\" }\n",
                "p.toml:2: fields.email: key \"missing\" is not defined in [keys]",
            ),
            (
                "[keys]\nk = { id = \"k\", env = \"K32\" }\n[fields]\nemail = { op = \"encrypt\", key = \"k\" }\n",
                "p.toml:4: fields.email: encrypt works on digit strings",
            ),
            (
                "[fields]\nlastName = { op = \"mask\", keep_first = 1, keep_last = 2 }\n",
                "p.toml:2: fields.lastName: give keep_first or keep_last, not both",
            ),
            (
                "[fields]\nlastName = { op = \"mask\", char = \"**\" }\n",
                "char must be one character",
            ),
            (
                "[fields]\nlastName = { op = \"erase\", value = \"x\" }\n",
                "value does not apply to op = \"erase\"",
            ),
            (
                "[fields]\nlastName = { op = \"erase\", colour = \"x\" }\n",
                "p.toml:2:28: key `lastName`: unknown field `colour`",
            ),
            (
                "default_region = \"Narnia\"\n[fields]\nlastName = { op = \"erase\" }\n",
                "p.toml:1: default_region",
            ),
            ("[fields]\n", "[fields] is empty"),
            ("[fields\n", "p.toml:1:"),
        ];
        for (text, want) in cases {
            let errors = parse(text).unwrap_err();
            assert!(
                errors.iter().any(|e| e.contains(want)),
                "{text:?}\nwant {want:?}\ngot {errors:?}"
            );
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errors =
            parse("[fields]\nfoo = { op = \"erase\" }\nemail = { op = \"nope\" }\n").unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
    }
}
