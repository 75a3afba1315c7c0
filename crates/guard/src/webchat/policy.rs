//! The policy file: one `[widgets.ID]` table per widget, naming only what cxguard
//! manages there. Parsed and checked in full before any call; every problem is reported
//! at once as `widgets.ID.field[index]: why`.

use std::collections::BTreeMap;
use std::path::Path;

use cxone::models::SecurityPolicies;
use serde::Deserialize;

use super::{ACTIONS, MAX_PATTERN, MAX_RULES, origin, xss};
use crate::{Error, Result};

/// One content rule as the file states it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Its id, unique in the widget.
    pub id: String,
    /// `block`, `allow`, `redirect` or `log`.
    pub action: String,
    /// What it matches.
    pub pattern: String,
}

/// What the file manages of one widget; `None` leaves the tenant's value alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidgetPolicy {
    /// Origins allowed to embed the widget (normalized once parsed).
    pub cors_origins: Option<Vec<String>>,
    /// Whether a visitor token is required.
    pub require_token: Option<bool>,
    /// How long a visitor token lasts, 5–1440 minutes.
    pub token_expiry_minutes: Option<u32>,
    /// The rules, in order (the first that matches applies).
    pub rules: Option<Vec<Rule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    widgets: BTreeMap<String, WidgetPolicy>,
}

/// A checked policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Widgets by id.
    pub widgets: BTreeMap<String, WidgetPolicy>,
    /// SHA-256 of the file's text, for the journal.
    pub digest: String,
}

impl Policy {
    /// Parses and checks `text` (read from `path`, named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Policy> {
        let file: File = toml::from_str(text).map_err(|e| {
            Error::Invalid(crate::parsing::toml_problem(
                &path.display().to_string(),
                text,
                &e,
            ))
        })?;
        if file.widgets.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: no [widgets.ID] table: name at least one widget",
                path.display()
            )));
        }
        let mut problems = Vec::new();
        let mut widgets = BTreeMap::new();
        for (id, mut w) in file.widgets {
            let at = format!("widgets.{id}");
            if ledger::details::check_identifier("widget id", &id).is_err() {
                problems.push(format!("{at}: not a widget id (letters, digits, . _ - :)"));
            }
            check(&at, &mut w, &mut problems);
            widgets.insert(id, w);
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(format!(
                "{} does not validate ({} problem{}):\n  {}",
                path.display(),
                problems.len(),
                if problems.len() == 1 { "" } else { "s" },
                problems.join("\n  ")
            )));
        }
        Ok(Policy {
            widgets,
            digest: crate::sha256_hex(text),
        })
    }
}

/// Checks one widget's policy, normalizing its origins; problems are appended.
fn check(at: &str, w: &mut WidgetPolicy, problems: &mut Vec<String>) {
    if let Some(origins) = &mut w.cors_origins {
        let mut seen: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for (i, o) in origins.iter_mut().enumerate() {
            match origin::normalize(o) {
                Ok(n) => {
                    if let Some((j, first)) = seen.get(&n) {
                        problems.push(format!(
                            "{at}.cors_origins[{i}]: {o:?} and cors_origins[{j}] {first:?} are the same origin once normalized ({n})"
                        ));
                    } else {
                        seen.insert(n.clone(), (i, o.clone()));
                    }
                    *o = n;
                }
                Err(why) => problems.push(format!("{at}.cors_origins[{i}]: {o:?} {why}")),
            }
        }
    }
    if let Some(m) = w.token_expiry_minutes
        && !(5..=1440).contains(&m)
    {
        problems.push(format!(
            "{at}.token_expiry_minutes: {m} is not from 5 to 1440"
        ));
    }
    if let Some(rules) = &w.rules {
        check_rules(at, rules, problems);
    }
}

/// The rules' count, ids, actions and patterns.
fn check_rules(at: &str, rules: &[Rule], problems: &mut Vec<String>) {
    if rules.len() > MAX_RULES {
        problems.push(format!(
            "{at}.rules: {} rules, more than the {MAX_RULES} allowed",
            rules.len()
        ));
    }
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        let f = format!("{at}.rules[{i}]");
        if ledger::details::check_identifier("rule id", &r.id).is_err() {
            problems.push(format!(
                "{f}.id: {:?} is not a rule id (letters, digits, . _ - :)",
                r.id.escape_debug().to_string()
            ));
        } else if let Some(j) = ids.insert(&r.id, i) {
            problems.push(format!("{f}.id: {:?} is also the id of rules[{j}]", r.id));
        }
        if !ACTIONS.contains(&r.action.as_str()) {
            problems.push(format!(
                "{f}.action: {:?} is not one of {}",
                r.action.escape_debug().to_string(),
                ACTIONS.join(", ")
            ));
        }
        if let Some(why) = pattern_problem(&r.pattern) {
            problems.push(format!("{f}.pattern: {why}"));
        }
    }
}

/// Why `pattern` cannot be deployed, if it cannot: empty, too long, a control
/// character, or a script vector once decoded (shown in its decoded form).
pub fn pattern_problem(pattern: &str) -> Option<String> {
    let n = pattern.chars().count();
    if n == 0 {
        return Some("is empty".into());
    }
    if n > MAX_PATTERN {
        return Some(format!("has {n} characters, more than {MAX_PATTERN}"));
    }
    if let Some(i) = pattern.chars().position(char::is_control) {
        return Some(format!(
            "character {} is a control character; patterns are printable text",
            i + 1
        ));
    }
    xss::script_vector(pattern).map(|f| {
        format!(
            "contains a script vector ({}) once decoded: \"{}\"; it is refused, not rewritten",
            f.vector, f.decoded
        )
    })
}

/// What the tenant holds that cxguard would refuse to deploy: bad origins, bad rules,
/// script vectors — as findings, `widgets.ID.field[index]: why`.
pub fn findings(widget: &str, live: &SecurityPolicies) -> Vec<String> {
    let at = format!("widgets.{widget}");
    let mut out = Vec::new();
    for (i, o) in live.cors_origins.iter().enumerate() {
        if let Err(why) = origin::normalize(o) {
            out.push(format!("{at}.cors_origins[{i}]: {o:?} {why}"));
        }
    }
    let rules: Vec<Rule> = live
        .rules
        .iter()
        .map(|r| Rule {
            id: r.id.clone(),
            action: r.action.clone(),
            pattern: r.pattern.clone(),
        })
        .collect();
    check_rules(&at, &rules, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<Policy, String> {
        Policy::parse(text, Path::new("policy.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_issue_example_parses_and_normalizes() {
        let p = parse(
            r#"
[widgets.wgt-support]
cors_origins = ["https://WWW.example.com", "https://support.example.com:8443"]
require_token = true
token_expiry_minutes = 60
[[widgets.wgt-support.rules]]
id = "block-admin"
action = "block"
pattern = "/admin/*"
"#,
        )
        .unwrap();
        let w = &p.widgets["wgt-support"];
        assert_eq!(
            w.cors_origins.as_deref().unwrap(),
            [
                "https://www.example.com",
                "https://support.example.com:8443"
            ]
        );
        assert_eq!(w.rules.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn every_problem_is_named_by_widget_field_and_index() {
        let e = parse(
            r#"
[widgets.w1]
cors_origins = ["https://a.example.com", "https://A.example.com:443", "http://b.example.com"]
require_token = true
token_expiry_minutes = 2
[[widgets.w1.rules]]
id = "r"
action = "mask"
pattern = "&lt;ScRiPt&gt;"
[[widgets.w1.rules]]
id = "r"
action = "log"
pattern = "a\u0007b"
"#,
        )
        .unwrap_err();
        for want in [
            "(7 problems)",
            "widgets.w1.cors_origins[1]: \"https://A.example.com:443\" and cors_origins[0] \"https://a.example.com\" are the same origin once normalized (https://a.example.com)",
            "widgets.w1.cors_origins[2]",
            "widgets.w1.token_expiry_minutes: 2",
            "widgets.w1.rules[0].action: \"mask\"",
            "widgets.w1.rules[0].pattern: contains a script vector (<script) once decoded: \"<script>\"",
            "widgets.w1.rules[1].id: \"r\" is also the id of rules[0]",
            "widgets.w1.rules[1].pattern: character 2 is a control character",
        ] {
            assert!(e.contains(want), "missing {want:?} in\n{e}");
        }
    }

    #[test]
    fn unknown_keys_and_empty_files_are_refused() {
        assert!(
            parse("[widgets.w]\ncors = []\n")
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(parse("").unwrap_err().contains("no [widgets.ID]"));
    }
}
