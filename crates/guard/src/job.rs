//! The job runner every protection is written on: journal → call → settle → audit →
//! event.
//!
//! A [`Job`] is one journaled job in the ledger. A protection
//! 1. opens it with [`Job::begin`] (a new job with its first items) or [`Job::attach`]
//!    (an unfinished one, after checking its kind and that it still runs);
//! 2. claims items before their effect ([`Job::claim`], [`Job::claim_many`]), so a crash
//!    leaves them `in_flight` for a resume to claim again;
//! 3. times each tenant call with [`Job::timed`];
//! 4. settles items with [`Job::settle`]: each [`Step`] carries the item's outcome, its
//!    audit entries and events, committed in one transaction, and what it counts as in
//!    the report ([`Tally`]);
//! 5. ends with [`Job::finish`]: a `job.finish` entry and a signed checkpoint, and the
//!    common [`Report`] (counts, rate, latency percentiles, requests, failures).
//!
//! What each step *does* is the protection's business; this module only keeps the
//! journal, the audit log, the outbox and the counters in step with one another.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cxone::Client;
use ledger::{
    Claim, ItemOutcome, ItemSettle, JobStatus, Ledger, NewEntry, NewEvent, NewJob, Outcome,
};
use serde::Serialize;

use crate::histogram::Histogram;
use crate::{Error, Result};

/// At most this many failures are kept for the report (every one is in the journal).
pub const MAX_FAILURES: usize = 1000;

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Items known to the job so far (grows while a listing is paged).
    pub total: AtomicU64,
    /// Items settled, whatever their outcome.
    pub done: AtomicU64,
    /// Items the job changed.
    pub changed: AtomicU64,
    /// Items that failed or were not found.
    pub failed: AtomicU64,
}

/// Latency percentiles of the timed calls, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    /// The median.
    pub p50_ms: f64,
    /// The 95th percentile.
    pub p95_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
}

/// One item that failed, and why (never a value).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The item's key (a contact id, a phase, a line number).
    pub id: String,
    /// What went wrong.
    pub error: String,
}

/// What one settled item counts as in the report.
#[derive(Debug, Clone, PartialEq)]
pub enum Tally {
    /// The job changed it; `fields` names what changed, for the per-field counts.
    Changed {
        /// The fields (or parts) that changed.
        fields: Vec<String>,
    },
    /// It was already in its target state.
    Unchanged,
    /// It does not exist at the tenant.
    NotFound {
        /// What kind of item (`contact`, `guest`), for the report.
        what: &'static str,
    },
    /// It failed.
    Failed {
        /// Why, for the report.
        error: String,
    },
    /// A step of the job that is not an item of its own (a phase): not counted.
    Step,
}

/// One item settled: its journal outcome, its audit entries and events (one
/// transaction), and how it counts.
#[derive(Debug)]
pub struct Step {
    /// The item's key in the journal.
    pub key: String,
    /// Done or failed, with the result or error the journal keeps.
    pub outcome: ItemOutcome,
    /// The audit entries that record it.
    pub audit: Vec<NewEntry>,
    /// The webhook events that announce it.
    pub events: Vec<NewEvent>,
    /// How it counts in the report.
    pub tally: Tally,
}

/// What a job did: the part every protection's report shares.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The job's id in the journal.
    pub job_id: String,
    /// Whether this run resumed an unfinished job.
    pub resumed: bool,
    /// Items this run settled (changed, unchanged, failed or not found).
    pub processed: u64,
    /// Items changed.
    pub changed: u64,
    /// Items already in their target state.
    pub unchanged: u64,
    /// Items that failed.
    pub failed: u64,
    /// Items the tenant does not have.
    pub not_found: u64,
    /// Field → items where it changed.
    pub fields: BTreeMap<String, u64>,
    /// Wall-clock time of this run.
    pub seconds: f64,
    /// Items settled per second.
    pub items_per_s: f64,
    /// Timed calls (the job's writes).
    pub calls: u64,
    /// Timed calls per second.
    pub calls_per_s: f64,
    /// Latency of the timed calls.
    pub latency: Latency,
    /// 429 responses during this run.
    pub http_429: u64,
    /// Retried requests during this run.
    pub retries: u64,
    /// API requests during this run (every attempt counts).
    pub requests: u64,
    /// The failed items (the first [`MAX_FAILURES`]).
    pub failures: Vec<Failure>,
}

/// Item counts of a run so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Items changed.
    pub changed: u64,
    /// Items already in their target state.
    pub unchanged: u64,
    /// Items that failed.
    pub failed: u64,
    /// Items the tenant does not have.
    pub not_found: u64,
}

impl Totals {
    /// Whether any item failed or was not found.
    pub fn any_failed(self) -> bool {
        self.failed + self.not_found > 0
    }
}

/// One journaled job being run. Shared by the tasks of a run (`&Job` is enough).
pub struct Job<'a> {
    ledger: &'a Ledger,
    client: &'a Client,
    id: String,
    actor: String,
    resumed: bool,
    started: Instant,
    before: cxone::Stats,
    progress: Arc<Progress>,
    tally: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    changed: u64,
    unchanged: u64,
    failed: u64,
    not_found: u64,
    calls: u64,
    fields: BTreeMap<String, u64>,
    failures: Vec<Failure>,
    latency: Histogram,
}

impl std::fmt::Debug for Job<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("resumed", &self.resumed)
            .finish_non_exhaustive()
    }
}

/// How [`Job::open`] treats a running job of the same fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume<'r> {
    /// Join it (the usual rerun after a crash), else begin a new one.
    Auto,
    /// Resume exactly this job, which must be of the kind and fingerprint asked for.
    Job(&'r str),
    /// Refuse while one is running (a rotation: finish or roll back the first).
    Refuse,
}

impl<'a> Job<'a> {
    /// The one front every protection opens its job by: `new` (its kind, fingerprint,
    /// parameters and first items), resumed as `resume` says. Finding a running job of
    /// the same fingerprint and creating one is one step in the ledger, so two processes
    /// opening the same job at once open one.
    pub async fn open(
        client: &'a Client,
        ledger: &'a Ledger,
        new: NewJob,
        resume: Resume<'_>,
        progress: Arc<Progress>,
    ) -> Result<Job<'a>> {
        match resume {
            Resume::Job(id) => {
                let fp = ledger.job_fingerprint(id).await?;
                if new.fingerprint.is_some() && fp != new.fingerprint {
                    return Err(Error::Invalid(format!(
                        "job {id} was started with other inputs than these; resume it with the same inputs, or start a new job"
                    )));
                }
                Self::attach(client, ledger, id, new.kind, &new.actor, progress).await
            }
            Resume::Refuse => {
                let (kind, of) = (new.kind, new.fingerprint.clone().unwrap_or_default());
                let job = Self::begin(client, ledger, new, progress).await?;
                if job.resumed {
                    return Err(Error::Invalid(format!(
                        "{kind} job {} of {of} is unfinished; finish or roll it back with --resume {}",
                        job.id, job.id
                    )));
                }
                Ok(job)
            }
            Resume::Auto => {
                let job = Self::begin(client, ledger, new, progress).await?;
                if job.resumed {
                    tracing::info!(job = %job.id, "resuming the unfinished job with the same inputs");
                }
                Ok(job)
            }
        }
    }

    /// Creates `job` in the journal (with its first items and a `job.start` entry).
    pub async fn begin(
        client: &'a Client,
        ledger: &'a Ledger,
        job: NewJob,
        progress: Arc<Progress>,
    ) -> Result<Job<'a>> {
        ledger::details::check_identifier("actor", &job.actor)?;
        let actor = job.actor.clone();
        // Atomic with the look for a running job of the same fingerprint: when another
        // process opened it between a caller's look and now, this one joins it.
        let (id, created) = ledger.open_job(job).await?;
        Ok(Self::new(client, ledger, id, actor, !created, progress))
    }

    /// Attaches to the unfinished job `id`, which must be of `kind` and still running.
    pub async fn attach(
        client: &'a Client,
        ledger: &'a Ledger,
        id: &str,
        kind: &str,
        actor: &str,
        progress: Arc<Progress>,
    ) -> Result<Job<'a>> {
        ledger::details::check_identifier("actor", actor)?;
        let j = ledger.job(id).await?;
        if j.kind != kind {
            return Err(Error::Invalid(format!(
                "job {id} is a {} job, not a {kind} job",
                j.kind
            )));
        }
        if j.status != "running" {
            return Err(Error::Invalid(format!(
                "job {id} already ended ({}); nothing to resume",
                j.status
            )));
        }
        Ok(Self::new(
            client,
            ledger,
            id.to_string(),
            actor.to_string(),
            true,
            progress,
        ))
    }

    fn new(
        client: &'a Client,
        ledger: &'a Ledger,
        id: String,
        actor: String,
        resumed: bool,
        progress: Arc<Progress>,
    ) -> Self {
        Job {
            ledger,
            client,
            id,
            actor,
            resumed,
            started: Instant::now(),
            before: client.stats(),
            progress,
            tally: Mutex::new(Counts::default()),
        }
    }

    /// The job's id in the journal.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Who runs the job, for its audit entries.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Whether this run resumed an unfinished job.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The ledger the job is journaled in.
    pub fn ledger(&self) -> &'a Ledger {
        self.ledger
    }

    /// The live counters.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Marks `key` in flight before its effect is attempted.
    pub async fn claim(&self, key: &str) -> Result<Claim> {
        Ok(self.ledger.claim(&self.id, key).await?)
    }

    /// Adds items found while the job runs (a listing's page) to the journal.
    pub async fn add_items(&self, keys: &[String]) -> Result<()> {
        self.ledger.add_items(&self.id, keys).await?;
        Ok(())
    }

    /// Claims several items at once; items already done are left out. Returns each
    /// claimed key with its attempt number.
    pub async fn claim_many(&self, keys: &[String]) -> Result<Vec<(String, i64)>> {
        Ok(self.ledger.claim_many(&self.id, keys).await?)
    }

    /// Of `keys`, those not done, with the attempts made at each so far; nothing is
    /// claimed.
    pub async fn attempts_of(&self, keys: &[String]) -> Result<Vec<(String, i64)>> {
        Ok(self.ledger.attempts_of(&self.id, keys).await?)
    }

    /// Counts `n` more items as known to the job, for the progress display (a listing
    /// finds them page by page).
    pub fn found(&self, n: usize) {
        self.progress.total.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Runs one tenant call, counting it and recording its latency.
    pub async fn timed<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        let t0 = Instant::now();
        let out = call.await;
        let took = t0.elapsed();
        let mut c = self.counts();
        c.calls += 1;
        c.latency.record(took);
        out
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Settles one phase item (`find`, `contacts`, …) done, with `result` journaled and
    /// `audit` recorded in the same transaction; it counts as a step, not an item.
    pub async fn step_done(
        &self,
        key: &str,
        result: Option<serde_json::Value>,
        audit: Vec<NewEntry>,
    ) -> Result<()> {
        self.settle(vec![Step {
            key: key.to_string(),
            outcome: ItemOutcome::Done { result },
            audit,
            events: Vec::new(),
            tally: Tally::Step,
        }])
        .await
    }

    /// Settles `steps` in one transaction (outcomes, audit entries, events), then counts
    /// them.
    pub async fn settle(&self, steps: Vec<Step>) -> Result<()> {
        if steps.is_empty() {
            return Ok(());
        }
        let mut batch = ledger::Batch::default();
        let mut tallies = Vec::with_capacity(steps.len());
        for s in steps {
            batch.audit.extend(s.audit);
            batch.events.extend(s.events);
            batch.items.push(ItemSettle {
                job_id: self.id.clone(),
                key: s.key.clone(),
                outcome: s.outcome,
            });
            tallies.push((s.key, s.tally));
        }
        self.ledger.commit(batch).await?;
        let mut c = self.counts();
        for (key, tally) in tallies {
            if tally != Tally::Step {
                self.progress.done.fetch_add(1, Ordering::Relaxed);
            }
            match tally {
                Tally::Changed { fields } => {
                    c.changed += 1;
                    self.progress.changed.fetch_add(1, Ordering::Relaxed);
                    for f in fields {
                        *c.fields.entry(f).or_insert(0) += 1;
                    }
                }
                Tally::Unchanged => c.unchanged += 1,
                Tally::NotFound { what } => {
                    c.not_found += 1;
                    self.progress.failed.fetch_add(1, Ordering::Relaxed);
                    c.fail(key, format!("no such {what} (404)"));
                }
                Tally::Failed { error } => {
                    c.failed += 1;
                    self.progress.failed.fetch_add(1, Ordering::Relaxed);
                    c.fail(key, error);
                }
                Tally::Step => {}
            }
        }
        Ok(())
    }

    /// The item counts so far, for a protection's `job.finish` entry (cheap: no report
    /// is built).
    pub fn totals(&self) -> Totals {
        let c = self.counts();
        Totals {
            changed: c.changed,
            unchanged: c.unchanged,
            failed: c.failed,
            not_found: c.not_found,
        }
    }

    /// Per-field counts so far (for the `job.finish` entry).
    pub fn fields(&self) -> Vec<(String, u64)> {
        self.counts()
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Ends the job with `status` and its `job.finish` entry, signs a checkpoint, and
    /// reports this run.
    pub async fn finish(self, status: JobStatus, entry: NewEntry) -> Result<Report> {
        self.end(status, entry).await?;
        Ok(self.report_so_far())
    }

    /// Ends the job by its item counts: failed if any item failed, with a `job.finish`
    /// entry of the counts and the per-field changes (the item jobs' common end).
    pub async fn finish_counted(self) -> Result<Report> {
        let r = self.totals();
        let status = if r.any_failed() {
            JobStatus::Failed
        } else {
            JobStatus::Done
        };
        let entry = NewEntry::new(
            &self.actor,
            "job.finish",
            &self.id,
            if status == JobStatus::Done {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            ledger::Details::new()
                .count("changed", r.changed)
                .count("unchanged", r.unchanged)
                .count("failed", r.failed)
                .count("not_found", r.not_found)
                .count_map("fields", &self.fields())?,
        )?;
        self.finish(status, entry).await
    }

    /// [`Job::finish`] for a protection that reports in its own terms.
    pub async fn end(&self, status: JobStatus, entry: NewEntry) -> Result<()> {
        self.ledger.finish_job(&self.id, status, entry).await?;
        Ok(())
    }

    /// This run's report so far.
    fn report_so_far(&self) -> Report {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let after = self.client.stats();
        let c = self.counts();
        let processed = c.changed + c.unchanged + c.failed + c.not_found;
        Report {
            job_id: self.id.clone(),
            resumed: self.resumed,
            processed,
            changed: c.changed,
            unchanged: c.unchanged,
            failed: c.failed,
            not_found: c.not_found,
            fields: c.fields.clone(),
            seconds,
            items_per_s: processed as f64 / seconds,
            calls: c.calls,
            calls_per_s: c.calls as f64 / seconds,
            latency: Latency {
                p50_ms: c.latency.percentile_ms(0.50),
                p95_ms: c.latency.percentile_ms(0.95),
                p99_ms: c.latency.percentile_ms(0.99),
            },
            http_429: after.rate_limited - self.before.rate_limited,
            retries: after.retries - self.before.retries,
            requests: after.requests - self.before.requests,
            failures: c.failures.clone(),
        }
    }
}

impl Counts {
    fn fail(&mut self, id: String, error: String) {
        if self.failures.len() < MAX_FAILURES {
            self.failures.push(Failure { id, error });
        }
    }
}
