//! The plan: for each widget the file names, the widget it asks for (the tenant's, with
//! only the managed fields replaced) and the diff from what the tenant has. Also the
//! canonical digest of a policy (RFC 8785 JSON Canonicalization, SHA-256), which a WAF
//! can recompute.

use cxone::Client;
use cxone::models::{SecurityPolicies, Widget, WidgetRule};
use serde::Serialize;
use serde_json::Value;

use super::policy::{Policy, WidgetPolicy};
use crate::{Error, Result};

/// What would change in one widget's security policies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    /// Origins the file adds.
    pub origins_added: Vec<String>,
    /// Origins the file removes.
    pub origins_removed: Vec<String>,
    /// The same origins in another order.
    pub origins_reordered: bool,
    /// Authentication settings that change, as `field: before → after`.
    pub authentication: Vec<String>,
    /// Rules added, by id.
    pub rules_added: Vec<String>,
    /// Rules removed, by id.
    pub rules_removed: Vec<String>,
    /// Rules whose action or pattern changes, as `id: what`.
    pub rules_changed: Vec<String>,
    /// The rules kept, in another order (order matters: the first match applies).
    pub rules_reordered: bool,
}

impl Changes {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }

    /// One line: `+2 origins, -1 origin, rules: +1 (block-admin)`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let list = |v: &[String]| v.join(", ");
        if !self.origins_added.is_empty() {
            parts.push(format!("origins +{}", list(&self.origins_added)));
        }
        if !self.origins_removed.is_empty() {
            parts.push(format!("origins -{}", list(&self.origins_removed)));
        }
        if self.origins_reordered {
            parts.push("origins reordered".into());
        }
        parts.extend(self.authentication.iter().cloned());
        if !self.rules_added.is_empty() {
            parts.push(format!("rules +{}", list(&self.rules_added)));
        }
        if !self.rules_removed.is_empty() {
            parts.push(format!("rules -{}", list(&self.rules_removed)));
        }
        for c in &self.rules_changed {
            parts.push(format!("rule {c}"));
        }
        if self.rules_reordered {
            parts.push("rules reordered".into());
        }
        if parts.is_empty() {
            "no changes".into()
        } else {
            parts.join("; ")
        }
    }
}

/// One widget's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WidgetPlan {
    /// The widget's id.
    pub widget: String,
    /// Its name (kept as the tenant has it).
    pub name: String,
    /// What changes.
    pub changes: Changes,
    /// The widget as it would be put (every setting the file does not manage kept).
    #[serde(skip)]
    pub desired: Widget,
    /// The security policies the tenant has now.
    #[serde(skip)]
    pub current: SecurityPolicies,
    /// The ETag the widget was read with.
    #[serde(skip)]
    pub etag: String,
}

/// The widget `policy` asks for: `current` with the managed fields replaced. Rules keep
/// any field the tenant has that cxguard does not manage, matched by id.
pub fn desired(current: &Widget, policy: &WidgetPolicy) -> Widget {
    let mut w = current.clone();
    let sp = &mut w.settings.security_policies;
    if let Some(o) = &policy.cors_origins {
        sp.cors_origins = o.clone();
    }
    if let Some(t) = policy.require_token {
        sp.authentication.require_token = t;
    }
    if let Some(m) = policy.token_expiry_minutes {
        sp.authentication.token_expiry_minutes = m;
    }
    if let Some(rules) = &policy.rules {
        let before = &current.settings.security_policies.rules;
        sp.rules = rules
            .iter()
            .map(|r| WidgetRule {
                id: r.id.clone(),
                action: r.action.clone(),
                pattern: r.pattern.clone(),
                other: before
                    .iter()
                    .find(|b| b.id == r.id)
                    .map(|b| b.other.clone())
                    .unwrap_or_default(),
            })
            .collect();
    }
    w
}

/// What changes from `before` to `after`.
pub fn diff(before: &SecurityPolicies, after: &SecurityPolicies) -> Changes {
    let mut c = Changes::default();
    let had = |o: &String, list: &[String]| list.contains(o);
    c.origins_added = after
        .cors_origins
        .iter()
        .filter(|o| !had(o, &before.cors_origins))
        .cloned()
        .collect();
    c.origins_removed = before
        .cors_origins
        .iter()
        .filter(|o| !had(o, &after.cors_origins))
        .cloned()
        .collect();
    let kept = |list: &[String], other: &[String]| -> Vec<String> {
        list.iter().filter(|o| other.contains(o)).cloned().collect()
    };
    c.origins_reordered = kept(&before.cors_origins, &after.cors_origins)
        != kept(&after.cors_origins, &before.cors_origins);
    let (a, b) = (&before.authentication, &after.authentication);
    if a.require_token != b.require_token {
        c.authentication.push(format!(
            "requireToken: {} → {}",
            a.require_token, b.require_token
        ));
    }
    if a.token_expiry_minutes != b.token_expiry_minutes {
        c.authentication.push(format!(
            "tokenExpiryMinutes: {} → {}",
            a.token_expiry_minutes, b.token_expiry_minutes
        ));
    }
    let ids =
        |rules: &[WidgetRule]| -> Vec<String> { rules.iter().map(|r| r.id.clone()).collect() };
    let (bi, ai) = (ids(&before.rules), ids(&after.rules));
    c.rules_added = ai.iter().filter(|i| !bi.contains(i)).cloned().collect();
    c.rules_removed = bi.iter().filter(|i| !ai.contains(i)).cloned().collect();
    for r in &after.rules {
        if let Some(old) = before.rules.iter().find(|o| o.id == r.id) {
            let mut what = Vec::new();
            if old.action != r.action {
                what.push(format!("action {} → {}", old.action, r.action));
            }
            if old.pattern != r.pattern {
                what.push(format!("pattern {:?} → {:?}", old.pattern, r.pattern));
            }
            if !what.is_empty() {
                c.rules_changed
                    .push(format!("{}: {}", r.id, what.join(", ")));
            }
        }
    }
    c.rules_reordered = kept(&bi, &ai) != kept(&ai, &bi);
    c
}

/// Reads every widget the file names (with its ETag) and plans it. A widget the tenant
/// does not have is bad input, named.
pub async fn plan(client: &Client, policy: &Policy) -> Result<Vec<WidgetPlan>> {
    let mut out = Vec::with_capacity(policy.widgets.len());
    let mut missing = Vec::new();
    for (id, p) in &policy.widgets {
        match client.webchat().get(id).await {
            Ok((current, etag)) => out.push(plan_one(&current, etag, p)),
            Err(e) if e.status() == Some(404) => missing.push(format!("widgets.{id}")),
            Err(e) => return Err(e.into()),
        }
    }
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "the tenant has no such widget: {} (`cxguard webchat export` lists those it has)",
            missing.join(", ")
        )));
    }
    Ok(out)
}

/// One widget's plan from what the tenant has.
pub fn plan_one(current: &Widget, etag: String, policy: &WidgetPolicy) -> WidgetPlan {
    let desired = desired(current, policy);
    let changes = diff(
        &current.settings.security_policies,
        &desired.settings.security_policies,
    );
    WidgetPlan {
        widget: current.id.clone(),
        name: current.name.clone(),
        changes,
        desired,
        current: current.settings.security_policies.clone(),
        etag,
    }
}

/// SHA-256 (hex) of the RFC 8785 canonical JSON of `policies`.
pub fn config_digest(policies: &SecurityPolicies) -> String {
    let v = serde_json::to_value(policies).unwrap_or(Value::Null);
    crate::sha256_hex(&canonical_json(&v))
}

/// RFC 8785 (JCS) for the values policies hold: object keys sorted by UTF-16 code
/// units, no whitespace, strings escaped minimally, integers as integers.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            // ECMAScript number formatting; policies hold no fractions, so this is rare.
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 1e21 => {
                out.push_str(&format!("{f:.0}"))
            }
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_string(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_canonical(&m[*k], out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_and_escapes_minimally() {
        let v = json!({"b": [1, true, null], "a": "x\"\\\n\u{1}é", "aa": {"z": 1, "A": 2}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":"x\"\\\n\u0001é","aa":{"A":2,"z":1},"b":[1,true,null]}"#
        );
    }

    fn widget(origins: &[&str], rules: &[(&str, &str, &str)]) -> Widget {
        serde_json::from_value(json!({
            "id": "w", "name": "Support", "theme": {"color": "blue"},
            "settings": {"securityPolicies": {
                "corsOrigins": origins,
                "authentication": {"requireToken": false, "tokenExpiryMinutes": 30},
                "rules": rules.iter().map(|(i, a, p)| json!({"id": i, "action": a, "pattern": p, "hits": 3})).collect::<Vec<_>>(),
            }, "version": "4", "locale": "en"}
        }))
        .unwrap()
    }

    #[test]
    fn only_managed_fields_change_and_the_diff_names_them() {
        let current = widget(
            &["https://a.example.com", "https://b.example.com"],
            &[("r1", "block", "/admin/*"), ("r2", "log", ".*")],
        );
        let policy = WidgetPolicy {
            cors_origins: Some(vec![
                "https://b.example.com".into(),
                "https://c.example.com".into(),
            ]),
            require_token: Some(true),
            token_expiry_minutes: None,
            rules: Some(vec![
                super::super::policy::Rule {
                    id: "r2".into(),
                    action: "log".into(),
                    pattern: ".*".into(),
                },
                super::super::policy::Rule {
                    id: "r1".into(),
                    action: "block".into(),
                    pattern: "/admin/**".into(),
                },
                super::super::policy::Rule {
                    id: "r3".into(),
                    action: "allow".into(),
                    pattern: "/shop/*".into(),
                },
            ]),
        };
        let p = plan_one(&current, "\"4\"".into(), &policy);
        let d = serde_json::to_value(&p.desired).unwrap();
        assert_eq!(d["name"], "Support");
        assert_eq!(
            d["theme"]["color"], "blue",
            "an unmanaged top-level field is kept"
        );
        assert_eq!(d["settings"]["locale"], "en");
        assert_eq!(
            d["settings"]["securityPolicies"]["authentication"]["tokenExpiryMinutes"],
            30
        );
        assert_eq!(
            d["settings"]["securityPolicies"]["rules"][1]["hits"], 3,
            "a kept rule keeps its other fields"
        );
        let c = &p.changes;
        assert_eq!(c.origins_added, ["https://c.example.com"]);
        assert_eq!(c.origins_removed, ["https://a.example.com"]);
        assert_eq!(c.authentication, ["requireToken: false → true"]);
        assert_eq!(c.rules_added, ["r3"]);
        assert_eq!(
            c.rules_changed,
            ["r1: pattern \"/admin/*\" → \"/admin/**\""]
        );
        assert!(c.rules_reordered);
        let same = plan_one(&p.desired, "\"5\"".into(), &policy);
        assert!(same.changes.is_empty(), "{:?}", same.changes);
    }
}
