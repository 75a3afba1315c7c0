//! The runs of the tenant's data policies (spec-real §6.5–6.8): listed with their status
//! and result summary, followed to a final status, and judged — a run that failed, ended
//! partly done, or waits for approval too long is a finding.

use serde::Serialize;

use crate::Result;

/// One run, as `policies runs` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    /// The policy.
    pub policy_id: String,
    /// The policy's name.
    pub policy_name: String,
    /// The run.
    pub run_id: String,
    /// Its status, as the tenant spells it.
    pub status: String,
    /// Whether it has ended.
    pub ended: bool,
    /// When it began.
    pub created: Option<String>,
    /// When it ended.
    pub completed: Option<String>,
    /// What it did.
    pub summary: Option<cxone::policies::ResultSummary>,
    /// Why it needs a person, if it does.
    pub finding: Option<String>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this policy (by name).
    pub policy: Option<String>,
    /// Only runs begun at or after this time.
    pub since: Option<time::OffsetDateTime>,
    /// A run waiting for approval longer than this is a finding.
    pub approval_hours: u32,
}

fn parse(t: &Option<String>) -> Option<time::OffsetDateTime> {
    t.as_deref().and_then(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    })
}

/// What needs a person about a run, judged at `now`.
pub fn finding(
    status: &cxone::policies::InstanceStatus,
    created: Option<time::OffsetDateTime>,
    approval_hours: u32,
    now: time::OffsetDateTime,
) -> Option<String> {
    use cxone::policies::InstanceStatus as S;
    match status {
        S::Failed => Some("the run FAILED".into()),
        S::SearchFailed => Some("the run's search failed (SEARCH_FAILED)".into()),
        S::PartiallySucceeded => {
            Some("the run PARTIALLY_SUCCEEDED: some entities were not done".into())
        }
        S::PendingApproval => {
            let waited = created.map(|c| now - c)?;
            (waited > time::Duration::hours(i64::from(approval_hours))).then(|| {
                format!(
                    "waiting for approval for {} h, more than {approval_hours} h: approve or decline it in CXone",
                    waited.whole_hours()
                )
            })
        }
        _ => None,
    }
}

/// Every run of the tenant's policies that `f` selects, newest first, each with its
/// detail (status and result summary) read from the run itself.
pub async fn list(client: &cxone::Client, f: &Filter) -> Result<Vec<RunView>> {
    let api = client.policies();
    let policies = api.list().await?;
    let now = time::OffsetDateTime::now_utc();
    let mut out = Vec::new();
    for p in &policies {
        let (Some(id), name) = (
            p.policy_id.as_deref(),
            p.policy_name.clone().unwrap_or_default(),
        ) else {
            continue;
        };
        if f.policy.as_deref().is_some_and(|want| want != name) {
            continue;
        }
        for r in api.runs(id).await? {
            let created = parse(&r.creation_date);
            if let (Some(since), Some(c)) = (f.since, created)
                && c < since
            {
                continue;
            }
            let status = r
                .status
                .clone()
                .unwrap_or(cxone::policies::InstanceStatus::Unknown(String::new()));
            out.push(RunView {
                policy_id: id.to_string(),
                policy_name: name.clone(),
                run_id: r.policy_instance_id.clone().unwrap_or_default(),
                status: status.as_str().to_string(),
                ended: status.is_terminal(),
                created: r.creation_date.clone(),
                completed: r.completion_date.clone(),
                summary: r.result_summary.clone(),
                finding: finding(&status, created, f.approval_hours, now),
            });
        }
    }
    out.sort_by(|a, b| b.created.cmp(&a.created));
    Ok(out)
}

/// Follows `runs` that have not ended until each has (or waits for approval, which no
/// polling ends), re-reading each every `poll`, at most `max`; `progress` hears each
/// re-read run.
pub async fn wait(
    client: &cxone::Client,
    runs: &mut [RunView],
    approval_hours: u32,
    poll: std::time::Duration,
    max: std::time::Duration,
    progress: &dyn Fn(&RunView),
) -> Result<()> {
    let start = std::time::Instant::now();
    let waiting = |r: &RunView| !r.ended && r.status != "PENDING_APPROVAL";
    while runs.iter().any(waiting) && start.elapsed() < max {
        tokio::time::sleep(poll).await;
        let now = time::OffsetDateTime::now_utc();
        for r in runs.iter_mut().filter(|r| waiting(r)) {
            let fresh = client.policies().run(&r.policy_id, &r.run_id).await?;
            let status = fresh
                .status
                .clone()
                .unwrap_or(cxone::policies::InstanceStatus::Unknown(String::new()));
            r.status = status.as_str().to_string();
            r.ended = status.is_terminal();
            r.completed = fresh.completion_date.clone();
            r.summary = fresh.result_summary.clone();
            r.finding = finding(&status, parse(&r.created), approval_hours, now);
            progress(r);
        }
    }
    Ok(())
}
