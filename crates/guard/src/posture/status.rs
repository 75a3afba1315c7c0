//! The posture's status, per protection: when its last job finished successfully, and
//! how many changes the posture would make now (its drift), from a plan made now.

use ledger::Ledger;
use serde::Serialize;

use super::load::Posture;
use super::plan::PosturePlan;
use crate::Result;

/// One protection's status.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Protection {
    /// `webchat`, `encryption`, `secrets` or `retention`.
    pub name: &'static str,
    /// When its last job finished successfully.
    pub last_success: Option<String>,
    /// Changes the posture would make now; `None` when it declares nothing for it.
    pub drift: Option<usize>,
}

/// Each protection with its last successful job, drift not yet known: the tutorials'
/// protections, or on CXone's published API (`cxone`) access keys and data policies
/// (the last posture run that finished).
pub async fn last_successes(ledger: &Ledger, cxone: bool) -> Result<Vec<Protection>> {
    let kinds: &[(&'static str, &str)] = if cxone {
        &[
            ("access_keys", crate::accesskeys::JOB_KIND),
            ("data_policies", super::apply::RUN_KIND),
        ]
    } else {
        &[
            ("webchat", crate::webchat::JOB_KIND),
            ("encryption", crate::encrypt::JOB_KIND),
            ("secrets", crate::rotate::JOB_KIND),
            ("retention", crate::anonymize::JOB_KIND),
        ]
    };
    let mut rows = Vec::with_capacity(kinds.len());
    for &(name, kind) in kinds {
        let last = ledger
            .jobs_of(kind, ledger::JobStatus::Done, 1)
            .await?
            .into_iter()
            .next()
            .map(|j| j.updated_at);
        rows.push(Protection {
            name,
            last_success: last,
            drift: None,
        });
    }
    Ok(rows)
}

/// Sets each row's drift from `plan` (made now from `posture`): the changes of the
/// sections `posture` declares.
pub fn set_drift(rows: &mut [Protection], posture: &Posture, plan: &PosturePlan) {
    if rows.first().is_some_and(|r| r.name == "access_keys") {
        let declared = [
            posture.access_keys.is_some(),
            posture.data_policies.is_some(),
        ];
        let counts = [
            plan.access_keys.len(),
            plan.data_policies.len() + plan.data_policy_drift.len(),
        ];
        for (i, row) in rows.iter_mut().enumerate().take(2) {
            row.drift = declared[i].then_some(counts[i]);
        }
        return;
    }
    let declared = [
        posture.webchat.is_some(),
        !posture.tables.is_empty(),
        posture.secrets.is_some(),
        posture.contacts.is_some(),
    ];
    let counts = [
        plan.webchat.len(),
        plan.datastore.len(),
        plan.secrets.len(),
        plan.contacts
            .as_ref()
            .map_or(0, |c| usize::from(c.pending > 0)),
    ];
    for (i, row) in rows.iter_mut().enumerate().take(4) {
        row.drift = declared[i].then_some(counts[i]);
    }
}
