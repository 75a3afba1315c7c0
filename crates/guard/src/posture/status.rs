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

/// Each protection with its last successful job, drift not yet known.
pub async fn last_successes(ledger: &Ledger) -> Result<Vec<Protection>> {
    let kinds = [
        ("webchat", crate::webchat::JOB_KIND),
        ("encryption", crate::encrypt::JOB_KIND),
        ("secrets", crate::rotate::JOB_KIND),
        ("retention", crate::anonymize::JOB_KIND),
    ];
    let mut rows = Vec::with_capacity(kinds.len());
    for (name, kind) in kinds {
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
