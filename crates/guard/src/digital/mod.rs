//! Digital data on CXone's published API (Digital First Omnichannel, spec-real §4):
//! the messages of DFO cases — content and author name — removed by the masking
//! policy's `[digital]` section, as one journaled, resumable job on the shared runner.
//!
//! The job lists the cases in scope once (`find`, by `scrollToken`), journals each as an
//! item, and settles each case with one audit entry per removal and one `case.anonymized`
//! consent event. A message already flagged (`contentRemoved`, `authorNameRemoved`) is
//! skipped, so a rerun — or a resume after a crash in the middle of a case — sends no
//! removal twice. The client paces DFO reads and writes by the published budgets
//! (`[tenant.limits]`).

mod fields;
mod messages;
pub mod policy;
pub mod setup;

use std::sync::Arc;

use futures_util::StreamExt;
use ledger::Ledger;
use ledger::{Claim, Details, EventKind, ItemOutcome, NewEntry, NewEvent, NewJob};
use serde_json::json;

use crate::job::{Job, Progress, Report, Resume, Step, Tally};
use crate::{Error, Result};
pub use policy::{DigitalPolicy, Messages, Reason};

/// The journal kind.
pub const JOB_KIND: &str = "digital.anonymize";

/// Cases worked on at once.
const CONCURRENCY: usize = 4;

/// Which cases a run covers.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Closed cases whose status changed (they were closed) before this time.
    ClosedBefore(time::OffsetDateTime),
    /// These cases.
    Cases(Vec<String>),
    /// Every case of this DFO customer.
    Customer(String),
    /// A person's records, found by `subject erase`: these cases and these customers,
    /// nothing listed.
    Subject {
        /// The cases.
        cases: Vec<String>,
        /// The customers.
        customers: Vec<String>,
    },
}

impl Selection {
    /// `--closed-before`: refused in the future (it would take cases closed later today).
    pub fn closed_before(text: &str, now: time::OffsetDateTime) -> Result<Selection> {
        let t = crate::parsing::date_or_time("--closed-before", text)?;
        if t > now {
            return Err(Error::Invalid(format!(
                "--closed-before: {text} is in the future; give a date in the past"
            )));
        }
        Ok(Selection::ClosedBefore(t))
    }

    /// `--cases FILE`: one case number per line (blank lines and `#` comments skipped);
    /// a line that is not one is refused with its number.
    pub fn cases_file(shown: &str, text: &str) -> Result<Selection> {
        let mut ids = Vec::new();
        let mut bad = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if l.len() > 64 || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                bad.push(format!("{shown}:{}: not a case number", i + 1));
            } else if !ids.iter().any(|x| x == l) {
                ids.push(l.to_string());
            }
        }
        if !bad.is_empty() {
            return Err(Error::Invalid(bad.join("\n  ")));
        }
        if ids.is_empty() {
            return Err(Error::Invalid(format!("{shown}: holds no case number")));
        }
        Ok(Selection::Cases(ids))
    }

    fn describe(&self) -> String {
        match self {
            Selection::ClosedBefore(t) => format!("closed-before:{}", ledger::timestamp(*t)),
            Selection::Cases(ids) => format!("cases:{}", crate::sha256_hex(&ids.join("\n"))),
            Selection::Customer(c) => format!("customer:{c}"),
            Selection::Subject { cases, customers } => format!(
                "subject:{}:{}",
                crate::sha256_hex(&cases.join("\n")),
                crate::sha256_hex(&customers.join("\n"))
            ),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Selection::ClosedBefore(_) => "closed_before",
            Selection::Cases(_) => "cases",
            Selection::Customer(_) => "customer",
            Selection::Subject { .. } => "subject",
        }
    }
}

/// Runs (or resumes) the job of `policy` over `selection`.
pub async fn anonymize(
    client: &cxone::Client,
    ledger: &Ledger,
    policy: &DigitalPolicy,
    selection: &Selection,
    actor: &str,
    progress: Arc<Progress>,
) -> Result<Report> {
    ledger::details::check_identifier("actor", actor)?;
    fields::check_idents(client, policy).await?;
    let mut items = vec!["find".to_string()];
    match selection {
        Selection::Cases(ids) if policy.touches_cases() => items.extend(ids.iter().cloned()),
        Selection::Subject { cases, customers } => {
            if policy.touches_cases() {
                items.extend(cases.iter().cloned());
            }
            if policy.touches_customers() {
                items.extend(customers.iter().map(|c| format!("customer:{c}")));
            }
        }
        _ => {}
    }
    let new = NewJob {
        id: Ledger::new_job_id("digital"),
        kind: JOB_KIND,
        actor: actor.to_string(),
        params: Details::new()
            .label("selection", selection.label())
            .label(
                "reason",
                policy.messages.map_or("none", |m| m.reason.as_str()),
            )
            .sha256("policy_sha256", &policy.digest)?,
        items,
        fingerprint: Some(crate::sha256_hex(&format!(
            "{}\n{}",
            policy.digest,
            selection.describe()
        ))),
    };
    let job = Job::open(client, ledger, new, Resume::Auto, progress).await?;
    let run = Run {
        client,
        policy,
        job,
    };
    run.find(selection).await?;
    run.cases().await?;
    run.finish().await
}

/// What a case's parts did: audit entries, the parts changed, and how many changes.
#[derive(Default)]
struct Part {
    audit: Vec<NewEntry>,
    fields: Vec<String>,
    count: u64,
}

struct Run<'a> {
    client: &'a cxone::Client,
    policy: &'a DigitalPolicy,
    job: Job<'a>,
}

impl Run<'_> {
    /// Lists the cases in scope once and journals each as an item.
    async fn find(&self, selection: &Selection) -> Result<()> {
        let Claim::Claimed { .. } = self.job.claim("find").await? else {
            return Ok(());
        };
        if let Selection::Subject { .. } = selection {
            // Its items were journaled when the job was opened.
            return self.job.step_done("find", None, Vec::new()).await;
        }
        let fields = self.policy.touches_customers();
        let cases = self.cases_in(selection, fields).await?;
        let mut keys: Vec<String> = Vec::new();
        if self.policy.touches_cases() && !matches!(selection, Selection::Cases(_)) {
            keys.extend(cases.iter().filter_map(|c| c.id.clone()));
        }
        let n = keys.len();
        if fields {
            let mut customers: Vec<String> = match selection {
                Selection::Customer(c) => vec![c.clone()],
                _ => cases
                    .iter()
                    .filter_map(|c| c.end_user.as_ref().and_then(|u| u.id.clone()))
                    .collect(),
            };
            customers.sort();
            customers.dedup();
            keys.extend(customers.into_iter().map(|c| format!("customer:{c}")));
        }
        self.job.add_items(&keys).await?;
        self.job
            .step_done(
                "find",
                Some(json!({"cases": n, "customers": keys.len() - n})),
                Vec::new(),
            )
            .await?;
        crate::failpoint("digital.found");
        Ok(())
    }

    /// The cases of `selection`: listed by their filter, or (a case list, when the
    /// customers of its cases are needed) found in the listing of every case.
    async fn cases_in(&self, selection: &Selection, fields: bool) -> Result<Vec<cxone::dfo::Case>> {
        let dfo = self.client.dfo();
        Ok(match selection {
            Selection::Cases(_) if !fields => Vec::new(),
            Selection::Subject { .. } => Vec::new(),
            Selection::Cases(ids) => dfo
                .cases(&cxone::dfo::CaseFilter::default())
                .await?
                .into_iter()
                .filter(|c| c.id.as_ref().is_some_and(|id| ids.contains(id)))
                .collect(),
            Selection::Customer(c) => {
                dfo.cases(&cxone::dfo::CaseFilter {
                    customer_id: Some(c.clone()),
                    ..Default::default()
                })
                .await?
            }
            Selection::ClosedBefore(t) => dfo
                .cases(&cxone::dfo::CaseFilter {
                    statuses: vec![cxone::dfo::CaseStatus::Closed],
                    ..Default::default()
                })
                .await?
                .into_iter()
                .filter(|c| c.status == Some(cxone::dfo::CaseStatus::Closed))
                .filter(|c| closed_at(c).is_some_and(|at| at < *t))
                .collect(),
        })
    }

    /// Every case not yet done, [`CONCURRENCY`] at a time, each settled on its own.
    async fn cases(&self) -> Result<()> {
        let mut after = -1i64;
        loop {
            let chunk = self
                .job
                .ledger()
                .unfinished_items(self.job.id(), after, 500)
                .await?;
            let Some(last) = chunk.last() else { break };
            after = last.0;
            let keys: Vec<String> = chunk.into_iter().map(|(_, k)| k).collect();
            self.job.found(keys.len());
            // Claimed together first: the cases' futures then write nothing to the
            // ledger, and each settle is the only write while they run.
            let claimed = self.job.claim_many(&keys).await?;
            let mut settled = futures_util::stream::iter(claimed)
                .map(|(k, attempt)| async move {
                    match k.strip_prefix("customer:") {
                        Some(c) => {
                            let c = c.to_string();
                            self.customer(k, c).await
                        }
                        None => self.case(k, attempt).await,
                    }
                })
                .buffer_unordered(CONCURRENCY);
            while let Some(step) = settled.next().await {
                self.job.settle(vec![step?]).await?;
                crate::failpoint("digital.settled");
            }
        }
        Ok(())
    }

    /// One case: its messages' removals, then its own custom fields, each as the
    /// policy asks; the case's step holds the audit entries and its one event.
    async fn case(&self, key: String, attempt: i64) -> Result<Step> {
        let mut part = Part::default();
        if let Some(rule) = self.policy.messages
            && let Err(e) = self.remove_messages(&key, rule, attempt, &mut part).await?
        {
            return Ok(self.api_failed(key, &e));
        }
        if !self.policy.case_fields.rules.is_empty()
            && let Err(e) = self.case_fields(&key, &mut part).await?
        {
            return Ok(self.api_failed(key, &e));
        }
        let tally = if part.count == 0 {
            Tally::Unchanged
        } else {
            Tally::Changed {
                fields: part.fields,
            }
        };
        Ok(self.step(key, tally, part.audit, part.count))
    }

    /// A 404 is a case that does not exist; anything else a failure of this case.
    fn api_failed(&self, key: String, e: &cxone::Error) -> Step {
        if e.status() == Some(404) {
            self.step(key, Tally::NotFound { what: "case" }, Vec::new(), 0)
        } else {
            self.failed(key, e)
        }
    }

    fn step(&self, key: String, tally: Tally, audit: Vec<NewEntry>, removed: u64) -> Step {
        let events = match (&tally, self.event(&key, removed)) {
            (Tally::Changed { .. }, Ok(e)) => vec![e],
            _ => Vec::new(),
        };
        Step {
            outcome: match &tally {
                Tally::NotFound { .. } => ItemOutcome::Failed {
                    error: "no such case (404)".into(),
                },
                _ => ItemOutcome::Done {
                    result: Some(json!({"changes": removed})),
                },
            },
            key,
            audit,
            events,
            tally,
        }
    }

    fn event(&self, case: &str, removed: u64) -> Result<NewEvent> {
        Ok(NewEvent::new(
            EventKind::Consent,
            "case.anonymized",
            Details::new()
                .id("case", case)?
                .count("changes", removed)
                .label(
                    "reason",
                    self.policy.messages.map_or("none", |m| m.reason.as_str()),
                )
                .id("job", self.job.id())?,
        ))
    }

    fn failed(&self, key: String, e: &cxone::Error) -> Step {
        Step {
            outcome: ItemOutcome::Failed {
                error: e.to_string(),
            },
            key,
            audit: Vec::new(),
            events: Vec::new(),
            tally: Tally::Failed {
                error: e.to_string(),
            },
        }
    }

    async fn finish(self) -> Result<Report> {
        self.job.finish_counted().await
    }
}

/// When a closed case was closed: its last status change.
fn closed_at(c: &cxone::dfo::Case) -> Option<time::OffsetDateTime> {
    c.status_updated_at.as_deref().and_then(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    })
}

/// How much of the tenant's DFO update budget (spec-real §4.1, `[tenant.limits]
/// dfo_updates_per_hour`) a run used, and how many of its requests were refused.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetUse {
    /// Writes made (removals, field changes, note deletions).
    pub writes: u64,
    /// The budget paced to, per hour.
    pub per_hour: u32,
    /// Writes over what the budget allowed in the run's time (its rate × the run's
    /// seconds, plus one second's worth of burst), in percent.
    pub percent_of_budget: f64,
    /// Requests answered 429, in percent of the requests sent.
    pub percent_429: f64,
}

/// The budget figures of a finished run on `client`, when it paces by DFO budgets.
pub fn budget_use(client: &cxone::Client, r: &Report) -> Option<BudgetUse> {
    let per_hour = client.settings().dfo_budget()?.dfo_updates_per_hour;
    let rate = f64::from(per_hour) / 3600.0;
    let allowed = rate * r.seconds + rate.max(1.0);
    Some(BudgetUse {
        writes: r.calls,
        per_hour,
        percent_of_budget: if allowed > 0.0 {
            r.calls as f64 * 100.0 / allowed
        } else {
            0.0
        },
        percent_429: if r.requests == 0 {
            0.0
        } else {
            r.http_429 as f64 * 100.0 / r.requests as f64
        },
    })
}
