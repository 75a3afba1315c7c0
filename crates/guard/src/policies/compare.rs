//! The plan of `[[data_policies]]`: each declared policy missing (to create), the same,
//! or different (drift: the API cannot change it), and each live policy nothing
//! declares (unmanaged); and the one create, made exactly once.

use serde::{Deserialize, Serialize};

use super::{Declared, declared_of};
use crate::{Error, Result};

/// A policy `apply` creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyCreate {
    /// The policy as declared.
    pub policy: Declared,
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDiff {
    /// The posture's name of the field.
    pub field: String,
    /// As declared.
    pub declared: String,
    /// As the tenant has it.
    pub live: String,
}

/// A declared policy that differs from the live one of its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    /// Its name.
    pub name: String,
    /// The live policy's id.
    pub policy_id: String,
    /// The fields that differ.
    pub fields: Vec<FieldDiff>,
}

impl Drift {
    /// The drift in words, with what to do.
    pub fn describe(&self) -> String {
        let f: Vec<String> = self
            .fields
            .iter()
            .map(|d| format!("{} (declared {}, live {})", d.field, d.declared, d.live))
            .collect();
        format!(
            "data policy {:?} ({}) differs: {}; CXone's API cannot change a policy: change it in CXone's UI (Admin → Policies), or declare it under a new name",
            self.name,
            self.policy_id,
            f.join(", ")
        )
    }
}

/// What the plan found.
#[derive(Debug, Default)]
pub struct PoliciesPlan {
    /// To create.
    pub create: Vec<PolicyCreate>,
    /// Declared, live, and different.
    pub drift: Vec<Drift>,
    /// Declared and the same.
    pub unchanged: Vec<String>,
    /// Live and not declared.
    pub unmanaged: Vec<String>,
    /// Missing, and not creatable through the API as declared.
    pub not_creatable: Vec<String>,
}

fn shown<T: std::fmt::Debug>(v: &Option<T>) -> String {
    v.as_ref().map_or("none".into(), |x| format!("{x:?}"))
}

/// The fields of `want` that `live` does not match.
pub fn differences(want: &Declared, live: &Declared) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let mut diff = |field: &str, declared: String, live: String| {
        if declared != live {
            out.push(FieldDiff {
                field: field.into(),
                declared,
                live,
            });
        }
    };
    diff(
        "type",
        format!("{:?}", want.policy_type),
        format!("{:?}", live.policy_type),
    );
    diff(
        "entity_type",
        format!("{:?}", want.entity_type),
        format!("{:?}", live.entity_type),
    );
    diff(
        "retention_days",
        shown(&want.retention_days),
        shown(&live.retention_days),
    );
    diff(
        "media",
        format!("{:?}", want.media),
        format!("{:?}", live.media),
    );
    diff("recurring", shown(&want.frequency), shown(&live.frequency));
    if want.description.is_some() {
        diff(
            "description",
            shown(&want.description),
            shown(&live.description),
        );
    }
    let (mut a, mut b) = (want.criteria.clone(), live.criteria.clone());
    a.sort();
    b.sort();
    if a != b {
        diff(
            "criteria",
            serde_json::to_string(&a).unwrap_or_default(),
            serde_json::to_string(&b).unwrap_or_default(),
        );
    }
    out
}

/// Compares `declared` with the tenant's policies (read once).
pub async fn plan(client: &cxone::Client, declared: &[Declared]) -> Result<PoliciesPlan> {
    let live = client.policies().list().await?;
    let mut p = PoliciesPlan::default();
    for want in declared {
        let same_name: Vec<&cxone::policies::Policy> = live
            .iter()
            .filter(|l| l.policy_name.as_deref() == Some(want.name.as_str()))
            .collect();
        match same_name.as_slice() {
            // The create request takes one media type (§6.1).
            [] if want.media.len() > 1 => p.not_creatable.push(format!(
                "data policy {:?} is missing and declares {} media types; CXone's create takes one: declare one per policy, or create it in CXone's UI",
                want.name,
                want.media.len()
            )),
            [] => p.create.push(PolicyCreate {
                policy: want.clone(),
            }),
            [one] => {
                let fields = differences(want, &declared_of(one));
                if fields.is_empty() {
                    p.unchanged.push(format!("data policy {:?}", want.name));
                } else {
                    p.drift.push(Drift {
                        name: want.name.clone(),
                        policy_id: one.policy_id.clone().unwrap_or_default(),
                        fields,
                    });
                }
            }
            many => p.drift.push(Drift {
                name: want.name.clone(),
                policy_id: many
                    .iter()
                    .filter_map(|m| m.policy_id.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
                fields: vec![FieldDiff {
                    field: "name".into(),
                    declared: "one policy".into(),
                    live: format!("{} policies", many.len()),
                }],
            }),
        }
    }
    for l in &live {
        let name = l.policy_name.as_deref().unwrap_or_default();
        if !declared.iter().any(|d| d.name == name) {
            p.unmanaged.push(format!(
                "data policy {:?} ({}) is live but not declared (unmanaged)",
                name,
                l.policy_id.as_deref().unwrap_or("?")
            ));
        }
    }
    Ok(p)
}

/// The create request of a declared policy.
pub fn request(d: &Declared) -> cxone::policies::NewPolicy {
    cxone::policies::NewPolicy {
        policy_name: d.name.clone(),
        policy_type: d.policy_type.clone(),
        entity_type: d.entity_type.clone(),
        criteria: d
            .criteria
            .iter()
            .map(|c| cxone::policies::Criterion {
                field_id: c.field.clone(),
                operator: c.operator.clone(),
                value: c.value.clone(),
                values: c.values.clone(),
            })
            .collect(),
        description: d.description.clone(),
        recurring: d.frequency.is_some(),
        recurrence_config: d
            .frequency
            .as_ref()
            .map(|f| cxone::policies::RecurrenceConfig {
                frequency: Some(f.clone()),
            }),
        retention_value_in_days: d.retention_days.map(|r| r.to_string()),
        // The request schema takes one value (§6.1); a plan never creates a policy
        // declaring more.
        apply_to_media_types: d.media.first().cloned(),
    }
}

/// How often a create is tried before giving up.
const ATTEMPTS: u32 = 6;

/// Creates `d` exactly once: the API's create is not idempotent, so the tenant is
/// searched for the name before each attempt — a create whose answer was lost (a reset
/// connection, a timeout) is found there instead of made twice. Returns the policy's id
/// and whether this call created it.
pub async fn create_once(client: &cxone::Client, d: &Declared) -> Result<(String, bool)> {
    let mut last: Option<cxone::Error> = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100 << attempt.min(5))).await;
        }
        let live = match client.policies().list().await {
            Ok(l) => l,
            Err(e) if e.is_retryable() => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(found) = live
            .iter()
            .find(|l| l.policy_name.as_deref() == Some(d.name.as_str()))
        {
            // Made by an earlier attempt whose answer was lost (or by someone else).
            return Ok((found.policy_id.clone().unwrap_or_default(), attempt > 0));
        }
        match client.policies().create(&request(d)).await {
            Ok(id) => return Ok((id, true)),
            Err(e) if e.is_retryable() || e.status().is_none() => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Failed(format!(
        "data policy {:?}: not created after {ATTEMPTS} attempts: {}",
        d.name,
        last.map_or_else(|| "no answer".into(), |e| e.to_string())
    )))
}
