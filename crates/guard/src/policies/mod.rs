//! CXone's data policies as code (spec-real §6): the policies a posture file declares
//! (`[[data_policies]]`), compared field by field with what the tenant runs, created
//! when missing — exactly once, since the API's create is not idempotent — and their
//! runs followed, with their evidence reports kept against the audit log.
//!
//! The public API has no update or delete of a policy (§6.4): a declared policy that
//! differs from the live one is drift, reported with the fields that differ, never
//! changed. CXone publishes neither the `policyType` values nor the criteria
//! vocabulary, so `export` writes the tenant's policies exactly as they are and the
//! declared values are compared as text.

pub mod compare;
pub mod evidence;
pub mod runs;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// `[[data_policies]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    name: Option<String>,
    #[serde(rename = "type")]
    policy_type: Option<String>,
    entity_type: Option<String>,
    retention_days: Option<i64>,
    #[serde(default)]
    media: Vec<String>,
    recurring: Option<RecurringFile>,
    description: Option<String>,
    criteria: Option<Vec<CriterionFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecurringFile {
    frequency: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CriterionFile {
    field: Option<String>,
    operator: Option<String>,
    value: Option<String>,
    #[serde(default)]
    values: Vec<String>,
}

/// One criterion, as declared and as compared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Criterion {
    /// The field it tests (`fieldId`).
    pub field: Option<String>,
    /// How.
    pub operator: Option<String>,
    /// Against one value.
    pub value: Option<String>,
    /// Or several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A declared policy, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Declared {
    /// Its name: how a declared policy is matched with a live one.
    pub name: String,
    /// Its type, as the tenant spells it.
    pub policy_type: String,
    /// `MASTER_CONTACT` or `SEGMENT`.
    pub entity_type: String,
    /// Days kept.
    pub retention_days: Option<u32>,
    /// Media types, sorted.
    pub media: Vec<String>,
    /// `DAILY`, `WEEKLY` or `MONTHLY` when it recurs.
    pub frequency: Option<String>,
    /// Its description, compared only when declared.
    pub description: Option<String>,
    /// What it selects.
    pub criteria: Vec<Criterion>,
}

/// The entity types the spec lists (§6.1).
pub const ENTITY_TYPES: [&str; 2] = ["MASTER_CONTACT", "SEGMENT"];
/// The recurrence frequencies (§6.1 RecurrenceConfig).
pub const FREQUENCIES: [&str; 3] = ["DAILY", "WEEKLY", "MONTHLY"];

/// Checks `[[data_policies]]` (read from `text` at `shown`): every problem named with
/// its line, none fatal to the others.
pub fn load(
    entries: Vec<Spanned<PolicyFile>>,
    shown: &str,
    text: &str,
    problems: &mut Vec<String>,
) -> Vec<Declared> {
    let mut out: Vec<Declared> = Vec::new();
    let mut names: std::collections::HashMap<String, usize> = Default::default();
    for e in entries {
        let line = crate::parsing::line_column(text, e.span().start).0;
        let f = e.into_inner();
        let duplicate = f.name.as_ref().and_then(|n| names.insert(n.clone(), line));
        if let (Some(first), Some(n)) = (duplicate, &f.name) {
            problems.push(format!(
                "{shown}:{line}: data_policies.name: {n:?} is also declared on line {first}; names must be unique"
            ));
        }
        if let Some(d) = one(f, &format!("{shown}:{line}"), problems)
            && duplicate.is_none()
        {
            out.push(d);
        }
    }
    out
}

/// One entry, checked; `at` is `FILE:LINE`.
fn one(f: PolicyFile, at: &str, problems: &mut Vec<String>) -> Option<Declared> {
    let at = |field: &str| format!("{at}: data_policies.{field}");
    let before = problems.len();
    let mut required = |v: &Option<String>, field: &str| match v {
        Some(x) if !x.trim().is_empty() => Some(x.clone()),
        _ => {
            problems.push(format!("{}: required", at(field)));
            None
        }
    };
    let name = required(&f.name, "name");
    let policy_type = required(&f.policy_type, "type");
    let entity_type = required(&f.entity_type, "entity_type");
    if let Some(t) = &entity_type
        && !ENTITY_TYPES.contains(&t.as_str())
    {
        problems.push(format!(
            "{}: {t:?} is not MASTER_CONTACT or SEGMENT",
            at("entity_type")
        ));
    }
    let retention_days = match f.retention_days {
        None => None,
        Some(d) if d > 0 && d <= i64::from(u32::MAX) => Some(d as u32),
        Some(d) => {
            problems.push(format!(
                "{}: {d} is not a positive number of days",
                at("retention_days")
            ));
            None
        }
    };
    if let Some(r) = &f.recurring
        && !FREQUENCIES.contains(&r.frequency.as_str())
    {
        problems.push(format!(
            "{}: {:?} is not DAILY, WEEKLY or MONTHLY",
            at("recurring.frequency"),
            r.frequency
        ));
    }
    if f.criteria.is_none() {
        problems.push(format!(
            "{}: required (criteria = [] for none; [[data_policies.criteria]] field, operator, value)",
            at("criteria")
        ));
    }
    if problems.len() > before {
        return None;
    }
    let mut media = f.media;
    media.sort();
    media.dedup();
    Some(Declared {
        name: name?,
        policy_type: policy_type?,
        entity_type: entity_type?,
        retention_days,
        media,
        frequency: f.recurring.map(|r| r.frequency),
        description: f.description,
        criteria: f
            .criteria?
            .into_iter()
            .map(|c| Criterion {
                field: c.field,
                operator: c.operator,
                value: c.value,
                values: c.values,
            })
            .collect(),
    })
}

/// A live policy in the declared form.
pub fn declared_of(p: &cxone::policies::Policy) -> Declared {
    let mut media = p.apply_to_media_types.clone();
    media.sort();
    media.dedup();
    Declared {
        name: p.policy_name.clone().unwrap_or_default(),
        policy_type: p.policy_type.clone().unwrap_or_default(),
        entity_type: p.entity_type.clone().unwrap_or_default(),
        retention_days: p
            .retention_value_in_days
            .as_deref()
            .and_then(|d| d.trim().parse().ok()),
        media,
        frequency: if p.recurring == Some(true) {
            p.recurrence_config
                .as_ref()
                .and_then(|r| r.frequency.clone())
                .or_else(|| Some(String::new()))
        } else {
            None
        },
        description: p.description.clone().filter(|d| !d.is_empty()),
        criteria: p
            .criteria
            .iter()
            .map(|c| Criterion {
                field: c.field_id.clone(),
                operator: c.operator.clone(),
                value: c.value.clone(),
                values: c.values.clone(),
            })
            .collect(),
    }
}

/// A TOML basic string: JSON's quoting is TOML's (`\"`, `\\`, `\n`, `\uXXXX`).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The tenant's policies as `[[data_policies]]`, exactly as they are: a posture file
/// whose plan is unchanged.
pub fn export(live: &[cxone::policies::Policy]) -> String {
    let mut out = String::from(
        "# CXone data policies, exported by cxguard: the API cannot change a policy, so a\n# declared one that differs is reported as drift; a new name creates a new one.\n",
    );
    for p in live {
        let d = declared_of(p);
        out.push_str("\n[[data_policies]]\n");
        out.push_str(&format!("name = {}\n", quoted(&d.name)));
        out.push_str(&format!("type = {}\n", quoted(&d.policy_type)));
        out.push_str(&format!("entity_type = {}\n", quoted(&d.entity_type)));
        if let Some(r) = d.retention_days {
            out.push_str(&format!("retention_days = {r}\n"));
        }
        let media: Vec<String> = d.media.iter().map(|m| quoted(m)).collect();
        out.push_str(&format!("media = [{}]\n", media.join(", ")));
        if let Some(f) = d.frequency.as_deref().filter(|f| !f.is_empty()) {
            out.push_str(&format!("recurring = {{ frequency = {} }}\n", quoted(f)));
        }
        if let Some(desc) = &d.description {
            out.push_str(&format!("description = {}\n", quoted(desc)));
        }
        if d.criteria.is_empty() {
            out.push_str("criteria = []\n");
        }
        for c in &d.criteria {
            out.push_str("[[data_policies.criteria]]\n");
            for (k, v) in [
                ("field", &c.field),
                ("operator", &c.operator),
                ("value", &c.value),
            ] {
                if let Some(v) = v {
                    out.push_str(&format!("{k} = {}\n", quoted(v)));
                }
            }
            if !c.values.is_empty() {
                let vs: Vec<String> = c.values.iter().map(|v| quoted(v)).collect();
                out.push_str(&format!("values = [{}]\n", vs.join(", ")));
            }
        }
    }
    out
}
