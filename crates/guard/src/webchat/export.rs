//! The tenant's security policies written as a policy file (every managed field of each
//! widget), with what cxguard would refuse to deploy reported as findings. `export` then
//! `plan` shows no changes.

use cxone::Client;
use cxone::models::Widget;

use super::policy;
use crate::Result;

/// What `export` read.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The policy file.
    pub toml: String,
    /// Widgets exported.
    pub widgets: Vec<String>,
    /// Problems in what the tenant holds (`widgets.ID.field[index]: why`).
    pub findings: Vec<String>,
}

/// Reads every widget, or only `only`, and writes them as a policy file.
pub async fn export(client: &Client, only: Option<&str>) -> Result<Exported> {
    let widgets: Vec<Widget> = match only {
        Some(id) => vec![client.webchat().get(id).await?.0],
        None => client.webchat().list().await?,
    };
    let mut out = String::from(
        "# Webchat security policies, exported by `cxguard webchat export`.\n\
         # Only what is named here is managed; every other widget setting is kept.\n",
    );
    let mut findings = Vec::new();
    let mut ids = Vec::new();
    for w in &widgets {
        let sp = &w.settings.security_policies;
        findings.extend(policy::findings(&w.id, sp));
        ids.push(w.id.clone());
        out.push_str(&format!(
            "\n# {}\n[widgets.{}]\n",
            comment(&w.name),
            toml_key(&w.id)
        ));
        out.push_str(&format!(
            "cors_origins = [{}]\n",
            sp.cors_origins
                .iter()
                .map(|o| toml_string(o))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        out.push_str(&format!(
            "require_token = {}\ntoken_expiry_minutes = {}\n",
            sp.authentication.require_token, sp.authentication.token_expiry_minutes
        ));
        if sp.rules.is_empty() {
            out.push_str("rules = []\n");
        }
        for r in &sp.rules {
            out.push_str(&format!(
                "[[widgets.{}.rules]]\nid = {}\naction = {}\npattern = {}\n",
                toml_key(&w.id),
                toml_string(&r.id),
                toml_string(&r.action),
                toml_string(&r.pattern)
            ));
        }
    }
    Ok(Exported {
        toml: out,
        widgets: ids,
        findings,
    })
}

/// `s` as a TOML basic string (quoted and escaped), for files cxguard writes.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `s` as a TOML key: bare when it can be, quoted otherwise.
pub fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        s.to_string()
    } else {
        toml_string(s)
    }
}

/// Text safe on one comment line.
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_through_toml() {
        for s in [
            "plain",
            "a\"b",
            "back\\slash",
            "(?i)bot|crawler",
            "tab\there",
            "é✓",
        ] {
            let doc = format!("v = {}\n", toml_string(s));
            let v: toml::Table = toml::from_str(&doc).unwrap();
            assert_eq!(v["v"].as_str(), Some(s), "{doc}");
        }
    }
}
