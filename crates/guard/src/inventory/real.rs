//! The inventory of a tenant on CXone's published API (`spec/cxone-real.md`): who the
//! tenant is (discovery), its access keys, DFO customers and cases, custom-field
//! definitions, data policies with their last run, and the contacts completed in the
//! last 30 days. Read-only; counts and identifiers, never a person's data.

use std::collections::BTreeMap;

use serde::Serialize;

/// A key unused this long is reported as stale.
pub const STALE_DAYS: i64 = 90;

/// Access keys in numbers.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeySummary {
    /// Every key.
    pub total: u64,
    /// Keys that can sign in.
    pub active: u64,
    /// Keys switched off.
    pub inactive: u64,
    /// Keys never used.
    pub never_used: u64,
    /// Active keys not used for [`STALE_DAYS`] days.
    pub unused_90_days: u64,
    /// Keys per UserHub user id.
    pub by_user: BTreeMap<String, u64>,
}

/// A custom-field definition of DFO customers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FieldDefinition {
    /// Its identifier.
    pub ident: String,
    /// Its label.
    pub label: Option<String>,
    /// `text`, `email` or `list`.
    pub kind: Option<String>,
}

/// One data policy and the status of its last run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRow {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: Option<String>,
    /// Its type, as the tenant spells it.
    pub kind: Option<String>,
    /// Its last run's status, if it ran.
    pub last_run: Option<String>,
    /// When that run began.
    pub last_run_at: Option<String>,
}

/// What a tenant on CXone's published API holds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CxoneInventory {
    /// The discovered tenant.
    pub tenant: cxone::Tenant,
    /// Its access keys.
    pub access_keys: AccessKeySummary,
    /// DFO customers.
    pub customers: u64,
    /// DFO cases by status.
    pub cases_by_status: BTreeMap<String, u64>,
    /// The customers' custom-field definitions.
    pub custom_fields: Vec<FieldDefinition>,
    /// Data policies by type.
    pub policies_by_type: BTreeMap<String, u64>,
    /// Every data policy with its last run.
    pub policies: Vec<PolicyRow>,
    /// Contacts completed in the last 30 days.
    pub completed_contacts_30_days: u64,
    /// 429s the tenant answered while this was gathered (retried).
    pub rate_limited: u64,
}

/// The access keys in numbers, as of `now`.
pub fn summarize_keys(
    keys: &[cxone::accesskeys::AccessKey],
    now: time::OffsetDateTime,
) -> AccessKeySummary {
    let mut s = AccessKeySummary::default();
    for k in keys {
        s.total += 1;
        let active = k.is_active.unwrap_or(false);
        if active {
            s.active += 1;
        } else {
            s.inactive += 1;
        }
        let used = k.last_used_date.as_deref().and_then(|d| {
            time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc3339).ok()
        });
        match used {
            None => s.never_used += 1,
            Some(t) if active && (now - t).whole_days() >= STALE_DAYS => s.unused_90_days += 1,
            Some(_) => {}
        }
        *s.by_user
            .entry(k.user_id.clone().unwrap_or_else(|| "(unknown)".into()))
            .or_default() += 1;
    }
    s
}

/// Reads the tenant once, area by area.
pub async fn gather(client: &cxone::Client) -> crate::Result<CxoneInventory> {
    let tenant = client.tenant().await?.clone();
    let now = time::OffsetDateTime::now_utc();
    let before = client.stats().rate_limited;
    let every_case = cxone::dfo::CaseFilter::default();
    let (keys, customers, cases, fields, policies, runs) = tokio::try_join!(
        client.access_keys().list(None),
        client.dfo().customers(),
        client.dfo().cases(&every_case),
        client.dfo().customer_fields(),
        client.policies().list(),
        client.policies().instances(),
    )?;
    let completed = client
        .acd()
        .completed(
            &ledger::timestamp(now - time::Duration::days(30)),
            &ledger::timestamp(now),
        )
        .await?;
    let mut cases_by_status = BTreeMap::new();
    for c in &cases {
        let s = c.status.as_ref().map_or("(none)", |s| s.as_str());
        *cases_by_status.entry(s.to_string()).or_default() += 1;
    }
    Ok(CxoneInventory {
        tenant,
        access_keys: summarize_keys(&keys, now),
        customers: customers.len() as u64,
        cases_by_status,
        custom_fields: fields
            .into_iter()
            .map(|f| FieldDefinition {
                ident: f.ident,
                label: f.label,
                kind: f.kind,
            })
            .collect(),
        policies_by_type: policies.iter().fold(BTreeMap::new(), |mut m, p| {
            *m.entry(p.policy_type.clone().unwrap_or_else(|| "(none)".into()))
                .or_default() += 1;
            m
        }),
        policies: policy_rows(&policies, &runs),
        completed_contacts_30_days: completed.len() as u64,
        rate_limited: client.stats().rate_limited - before,
    })
}

/// Each policy with its latest run (by creation date).
fn policy_rows(
    policies: &[cxone::policies::Policy],
    runs: &[cxone::policies::Instance],
) -> Vec<PolicyRow> {
    policies
        .iter()
        .map(|p| {
            let last = runs
                .iter()
                .filter(|r| r.policy_id.is_some() && r.policy_id == p.policy_id)
                .max_by(|a, b| a.creation_date.cmp(&b.creation_date));
            PolicyRow {
                id: p.policy_id.clone().unwrap_or_default(),
                name: p.policy_name.clone(),
                kind: p.policy_type.clone(),
                last_run: last.and_then(|r| r.status.as_ref().map(|s| s.to_string())),
                last_run_at: last.and_then(|r| r.creation_date.clone()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(active: bool, used: Option<&str>, user: &str) -> cxone::accesskeys::AccessKey {
        serde_json::from_value(serde_json::json!({
            "accessKeyId": "k", "userId": user, "isActive": active, "lastUsedDate": used
        }))
        .unwrap()
    }

    #[test]
    fn keys_are_counted_by_state_use_and_user() {
        let now = time::macros::datetime!(2026-12-01 00:00 UTC);
        let s = summarize_keys(
            &[
                key(true, Some("2026-11-30T00:00:00Z"), "u1"),
                key(true, Some("2026-08-01T00:00:00Z"), "u1"),
                key(false, Some("2025-01-01T00:00:00Z"), "u2"),
                key(true, None, "u2"),
            ],
            now,
        );
        assert_eq!((s.total, s.active, s.inactive), (4, 3, 1));
        assert_eq!((s.never_used, s.unused_90_days), (1, 1));
        assert_eq!(s.by_user["u1"], 2);
    }
}
