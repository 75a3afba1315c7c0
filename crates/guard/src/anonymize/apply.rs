//! Applying a policy to a selection of contacts.
//!
//! The journal is written before the tenant: a page's contacts become job items before
//! any of them is patched, and each is marked in flight before its PATCH. A contact's
//! outcome, audit entry and consent event are settled together (in batches, one
//! transaction each), so after a crash a rerun finds exactly the contacts still to do —
//! and a contact whose PATCH landed just before the crash is found already in its target
//! state and settled without a second PATCH.
//!
//! A rerun of the same policy and selection resumes the unfinished job by itself; so does
//! `--resume JOB`, which also checks the job ran this policy and selection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cxone::Client;
use cxone::models::Contact;
use futures_util::StreamExt;
use ledger::{
    Details, EventKind, ItemOutcome, JobStatus, Ledger, NewEntry, NewEvent, NewJob, Outcome,
};
use serde::Serialize;
use serde_json::json;

use super::JOB_KIND;
use super::policy::{Operator, Policy};
use super::transform::{self, ContactPlan};
use crate::{Error, Result};

/// Which contacts a run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These ids (erasure requests).
    Ids(Vec<String>),
    /// Contacts last updated before this time (retention).
    UpdatedBefore(time::OffsetDateTime),
    All,
}

impl Selection {
    /// Reads an ids file: one id a line; blank lines and `#` comments are ignored,
    /// duplicates dropped. An empty list or a malformed id is an error naming the line.
    pub fn from_ids_text(text: &str, shown: &str) -> Result<Self> {
        let mut ids = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let id = line.split('#').next().unwrap_or("").trim();
            if id.is_empty() {
                continue;
            }
            ledger::details::check_identifier("contact id", id)
                .map_err(|e| Error::Invalid(format!("{shown}:{}: {e}", i + 1)))?;
            if seen.insert(id.to_string()) {
                ids.push(id.to_string());
            }
        }
        if ids.is_empty() {
            return Err(Error::Invalid(format!(
                "{shown}: no contact ids (one id a line): the selection is empty"
            )));
        }
        Ok(Selection::Ids(ids))
    }

    /// `--updated-before`: an RFC 3339 time or a date (midnight UTC); not in the future.
    pub fn updated_before(text: &str, now: time::OffsetDateTime) -> Result<Self> {
        let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .or_else(|_| {
                time::Date::parse(
                    text,
                    time::macros::format_description!("[year]-[month]-[day]"),
                )
                .map(|d| d.midnight().assume_utc())
            });
        let t = t.map_err(|_| {
            Error::Invalid(format!(
                "--updated-before: {text:?} is not a date (2024-12-31) or an RFC 3339 time"
            ))
        })?;
        if t > now {
            return Err(Error::Invalid(format!(
                "--updated-before: {text} is in the future; a retention cut-off must be in the past"
            )));
        }
        Ok(Selection::UpdatedBefore(t))
    }

    fn describe(&self) -> String {
        match self {
            Selection::Ids(ids) => {
                let lines: String = ids.iter().map(|id| format!("{id}\n")).collect();
                format!("ids:{}:{}", ids.len(), crate::sha256_hex(&lines))
            }
            Selection::UpdatedBefore(t) => format!("updated-before:{}", t.unix_timestamp()),
            Selection::All => "all".into(),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Selection::Ids(_) => "ids",
            Selection::UpdatedBefore(_) => "updated_before",
            Selection::All => "all",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// PATCHes in flight at once.
    pub concurrency: usize,
    /// Contacts per listing page (1 to 1000).
    pub page_size: u32,
    /// Who runs the job, for the audit trail (an identifier).
    pub actor: String,
    /// Resume this job instead of finding or starting one.
    pub resume: Option<String>,
    /// Re-reads after a 412 before a contact is given up.
    pub conflict_retries: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: 16,
            page_size: 500,
            actor: "cxguard".into(),
            resume: None,
            conflict_retries: 3,
        }
    }
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Contacts known to the job so far (grows while a listing is paged).
    pub total: AtomicU64,
    pub done: AtomicU64,
    pub changed: AtomicU64,
    pub failed: AtomicU64,
}

/// Latencies in a log-bucketed histogram: constant memory however many contacts.
#[derive(Debug, Clone)]
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

const BUCKET_GROWTH: f64 = 1.02;

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: vec![0; 1200],
            count: 0,
        }
    }
    fn record(&mut self, d: Duration) {
        let us = d.as_micros().max(1) as f64;
        let i = (us.ln() / BUCKET_GROWTH.ln()) as usize;
        let last = self.buckets.len() - 1;
        self.buckets[i.min(last)] += 1;
        self.count += 1;
    }
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let want = (p * self.count as f64).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return BUCKET_GROWTH.powi(i as i32 + 1) / 1000.0;
            }
        }
        0.0
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub id: String,
    pub error: String,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub job_id: String,
    pub resumed: bool,
    /// Contacts this run settled.
    pub processed: u64,
    pub changed: u64,
    /// Already in their target state.
    pub unchanged: u64,
    pub failed: u64,
    pub not_found: u64,
    /// Field → contacts where it changed.
    pub fields: BTreeMap<String, u64>,
    pub seconds: f64,
    pub contacts_per_s: f64,
    pub patches: u64,
    pub patches_per_s: f64,
    pub latency: Latency,
    pub http_429: u64,
    pub retries: u64,
    pub requests: u64,
    /// The failed contacts (the first 1000).
    pub failures: Vec<Failure>,
}

/// What settling one contact records.
enum Settled {
    Changed {
        id: String,
        plan: ContactPlan,
    },
    Landed {
        id: String,
    },
    Unchanged {
        id: String,
    },
    NotFound {
        id: String,
    },
    Failed {
        id: String,
        error: String,
        status: Option<u16>,
    },
    /// Not attempted, or refused for a missing scope: the job stops as a whole and this
    /// contact stays unfinished, so a rerun once the scope is granted picks it up.
    Stopped {
        id: String,
    },
}

impl Settled {
    fn id(&self) -> &str {
        match self {
            Settled::Changed { id, .. }
            | Settled::Landed { id }
            | Settled::Unchanged { id }
            | Settled::NotFound { id }
            | Settled::Stopped { id }
            | Settled::Failed { id, .. } => id,
        }
    }
}

/// Shared by the tasks of one run.
struct Run<'a> {
    client: &'a Client,
    ledger: &'a Ledger,
    policy: &'a Policy,
    opts: &'a Options,
    job: String,
    has_encrypt: bool,
    progress: Arc<Progress>,
    stats: std::sync::Mutex<Stats>,
    /// The first missing-scope refusal: once set, no further request is sent.
    stopped: std::sync::Mutex<Option<cxone::Error>>,
}

#[derive(Default)]
struct Stats {
    changed: u64,
    unchanged: u64,
    failed: u64,
    not_found: u64,
    patches: u64,
    fields: BTreeMap<String, u64>,
    failures: Vec<Failure>,
    latency: Option<Histogram>,
}

/// Starts, finds or resumes the job and applies the policy to the selection.
pub async fn run(
    client: &Client,
    ledger: &Ledger,
    policy: &Policy,
    selection: &Selection,
    opts: &Options,
    progress: Arc<Progress>,
) -> Result<Report> {
    ledger::details::check_identifier("actor", &opts.actor)?;
    if !(1..=1000).contains(&opts.page_size) {
        return Err(Error::Invalid(format!(
            "page size {} is not from 1 to 1000",
            opts.page_size
        )));
    }
    let fingerprint = crate::sha256_hex(&format!("{}\n{}", policy.digest, selection.describe()));
    let (job, resumed) = match &opts.resume {
        Some(id) => {
            let fp = ledger.job_fingerprint(id).await?;
            if fp.as_deref() != Some(fingerprint.as_str()) {
                return Err(Error::Invalid(format!(
                    "job {id} was started with another policy or selection; resume it with the same --policy and selection, or start a new job"
                )));
            }
            let j = ledger.job(id).await?;
            if j.status != "running" {
                return Err(Error::Invalid(format!(
                    "job {id} already ended ({}); nothing to resume",
                    j.status
                )));
            }
            (id.clone(), true)
        }
        None => match ledger.running_job(JOB_KIND, &fingerprint).await? {
            Some(id) => {
                tracing::info!(job = %id, "resuming the unfinished job with the same policy and selection");
                (id, true)
            }
            None => {
                let items = match selection {
                    Selection::Ids(ids) => ids.clone(),
                    _ => Vec::new(),
                };
                let params = Details::new()
                    .label("selection", selection.label())
                    .count("ids", items.len() as u64)
                    .ids("key_ids", &policy.key_ids())?
                    .sha256("policy_sha256", &policy.digest)?;
                let id = ledger
                    .create_job(NewJob {
                        id: Ledger::new_job_id(JOB_KIND),
                        kind: JOB_KIND,
                        actor: opts.actor.clone(),
                        params,
                        items,
                        fingerprint: Some(fingerprint.clone()),
                    })
                    .await?;
                (id, false)
            }
        },
    };
    let start = Instant::now();
    let before = client.stats();
    let run = Run {
        client,
        ledger,
        policy,
        opts,
        job: job.clone(),
        has_encrypt: policy
            .rules
            .iter()
            .any(|r| matches!(r.op, Operator::Encrypt { .. })),
        progress: progress.clone(),
        stats: std::sync::Mutex::new(Stats {
            latency: Some(Histogram::new()),
            ..Default::default()
        }),
        stopped: std::sync::Mutex::new(None),
    };

    // Contacts journaled but not done: those of an ids selection, and any a crash left.
    let mut after = -1i64;
    loop {
        let chunk = ledger.unfinished_items(&job, after, 500).await?;
        let Some(last) = chunk.last() else { break };
        after = last.0;
        let keys: Vec<String> = chunk.into_iter().map(|(_, k)| k).collect();
        progress
            .total
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        let claimed = ledger.claim_many(&job, &keys).await?;
        run.process_all(claimed.into_iter().map(|(k, a)| (k, a, None)).collect())
            .await?;
    }

    // A listing: page after page from where the job had got to.
    if !matches!(selection, Selection::Ids(_)) {
        let mut list = client.contacts().list().page_size(opts.page_size);
        if let Selection::UpdatedBefore(t) = selection {
            list = list.updated_before(*t);
        }
        let mut token = ledger.cursor(&job).await?;
        let first = token.is_none();
        if !first && token.as_deref() == Some("") {
            // The listing had finished before the crash.
        } else {
            let mut next = Some(tokio::spawn({
                let list = list.clone();
                let t = token.clone();
                async move { list.page(t.as_deref()).await }
            }));
            while let Some(fetch) = next.take() {
                let page = fetch
                    .await
                    .map_err(|e| Error::Invalid(format!("the page fetch failed: {e}")))??;
                token = page.page_token.clone();
                if let Some(t) = token.clone() {
                    let list = list.clone();
                    next = Some(tokio::spawn(async move { list.page(Some(&t)).await }));
                }
                let keys: Vec<String> = page.contacts.iter().map(|c| c.id.clone()).collect();
                ledger.add_items(&job, &keys).await?;
                // The items are journaled: the cursor may move past this page now.
                ledger
                    .set_cursor(&job, Some(token.as_deref().unwrap_or("")))
                    .await?;
                progress
                    .total
                    .fetch_add(keys.len() as u64, Ordering::Relaxed);
                let claimed: BTreeMap<String, i64> =
                    ledger.claim_many(&job, &keys).await?.into_iter().collect();
                let work = page
                    .contacts
                    .into_iter()
                    .filter_map(|c| claimed.get(&c.id).map(|a| (c.id.clone(), *a, Some(c))))
                    .collect();
                run.process_all(work).await?;
            }
        }
    }

    let stats = run.stats.into_inner().unwrap_or_else(|e| e.into_inner());
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    let after_stats = client.stats();
    let processed = stats.changed + stats.unchanged + stats.failed + stats.not_found;
    let status = if stats.failed + stats.not_found == 0 {
        JobStatus::Done
    } else {
        JobStatus::Failed
    };
    let fields: Vec<(String, u64)> = stats.fields.iter().map(|(k, v)| (k.clone(), *v)).collect();
    let finish = NewEntry::new(
        &opts.actor,
        "job.finish",
        &job,
        if status == JobStatus::Done {
            Outcome::Success
        } else {
            Outcome::Failure
        },
        Details::new()
            .count("changed", stats.changed)
            .count("unchanged", stats.unchanged)
            .count("failed", stats.failed)
            .count("not_found", stats.not_found)
            .count_map("fields", &fields)?,
    )?;
    ledger.finish_job(&job, status, finish).await?;
    let hist = stats.latency.unwrap_or_else(Histogram::new);
    Ok(Report {
        job_id: job,
        resumed,
        processed,
        changed: stats.changed,
        unchanged: stats.unchanged,
        failed: stats.failed,
        not_found: stats.not_found,
        fields: stats.fields,
        seconds,
        contacts_per_s: processed as f64 / seconds,
        patches: stats.patches,
        patches_per_s: stats.patches as f64 / seconds,
        latency: Latency {
            p50_ms: hist.percentile_ms(0.50),
            p95_ms: hist.percentile_ms(0.95),
            p99_ms: hist.percentile_ms(0.99),
        },
        http_429: after_stats.rate_limited - before.rate_limited,
        retries: after_stats.retries - before.retries,
        requests: after_stats.requests - before.requests,
        failures: stats.failures,
    })
}

/// Settles are written in batches of at most this many contacts.
const SETTLE_BATCH: usize = 100;

impl Run<'_> {
    /// What an API error means for one contact. A missing scope is not the contact's
    /// fault and no other contact can do better: it stops the job instead.
    fn api_failed(&self, id: String, e: cxone::Error) -> Settled {
        if e.is_missing_scope() {
            let mut s = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
            if s.is_none() {
                *s = Some(e);
            }
            return Settled::Stopped { id };
        }
        Settled::Failed {
            id,
            status: e.status(),
            error: e.to_string(),
        }
    }

    fn is_stopped(&self) -> bool {
        self.stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Processes claimed contacts: reads those not listed, plans every one (pure),
    /// records what FF1 will write before writing it, PATCHes `concurrency` at a time, and
    /// settles the results in batches. Producer and settler run side by side, so a
    /// settle never waits on a PATCH future that is not being polled.
    async fn process_all(&self, work: Vec<(String, i64, Option<Contact>)>) -> Result<()> {
        let conc = self.opts.concurrency.max(1);
        let fetched: Vec<Result<(String, i64, Contact), Settled>> =
            futures_util::stream::iter(work)
                .map(|(id, attempt, listed)| async move {
                    if self.is_stopped() {
                        return Err(Settled::Stopped { id });
                    }
                    match listed {
                        Some(c) => Ok((id, attempt, c)),
                        None => match self.client.contacts().get(&id).await {
                            Ok(c) => Ok((id, attempt, c)),
                            Err(e) if e.status() == Some(404) => Err(Settled::NotFound { id }),
                            Err(e) => Err(self.api_failed(id, e)),
                        },
                    }
                })
                .buffer_unordered(conc)
                .collect()
                .await;
        let known = if self.has_encrypt {
            let ids: Vec<String> = fetched
                .iter()
                .filter_map(|r| r.as_ref().ok().map(|(id, _, _)| id.clone()))
                .collect();
            self.ledger.latest_results(JOB_KIND, &ids).await?
        } else {
            Default::default()
        };
        let mut now = Vec::new();
        let mut ready = Vec::new();
        let mut intents = Vec::new();
        for r in fetched {
            let (id, attempt, contact) = match r {
                Ok(x) => x,
                Err(s) => {
                    now.push(s);
                    continue;
                }
            };
            let encrypted = Earlier::from_record(known.get(&id));
            match transform::plan(self.policy, &contact, &encrypted.ciphertexts) {
                Err(e) => now.push(Settled::Failed {
                    id,
                    status: None,
                    error: e,
                }),
                // A later attempt that finds nothing to do: the earlier one landed.
                Ok(p) if p.is_noop() => now.push(if attempt > 1 {
                    Settled::Landed { id }
                } else {
                    Settled::Unchanged { id }
                }),
                Ok(p) => {
                    if let Some(intent) = intent(&encrypted, &p) {
                        intents.push((id.clone(), intent));
                    }
                    ready.push((id, contact, p, encrypted));
                }
            }
        }
        self.ledger.record_results(&self.job, &intents).await?;

        let (tx, mut rx) = tokio::sync::mpsc::channel::<Settled>(SETTLE_BATCH * 2);
        let producer = async move {
            for s in now {
                if tx.send(s).await.is_err() {
                    return;
                }
            }
            let mut results = futures_util::stream::iter(ready)
                .map(|(id, contact, plan, encrypted)| self.patch_one(id, contact, plan, encrypted))
                .buffer_unordered(conc);
            while let Some(s) = results.next().await {
                if tx.send(s).await.is_err() {
                    return;
                }
            }
        };
        let settler = async {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < SETTLE_BATCH {
                    match rx.try_recv() {
                        Ok(s) => batch.push(s),
                        Err(_) => break,
                    }
                }
                self.settle(batch).await?;
            }
            Ok::<_, Error>(())
        };
        let ((), settled) = tokio::join!(producer, settler);
        settled?;
        match self
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            Some(e) => Err(Error::Api(e)),
            None => Ok(()),
        }
    }

    async fn patch_one(
        &self,
        id: String,
        mut contact: Contact,
        mut plan: ContactPlan,
        encrypted: Earlier,
    ) -> Settled {
        // The contact as the last 412 showed it: re-planned from without another GET.
        let mut current: Option<Contact> = None;
        for round in 0..=self.opts.conflict_retries {
            if self.is_stopped() {
                return Settled::Stopped { id };
            }
            // A contact listed without an ETag is read first: a PATCH is never sent
            // unguarded (`If-Match: *` would overwrite a concurrent edit).
            if round > 0 || contact.etag.is_none() {
                contact = match current.take() {
                    Some(c) => c,
                    None => match self.client.contacts().get(&id).await {
                        Ok(c) => c,
                        Err(e) if e.status() == Some(404) => return Settled::NotFound { id },
                        Err(e) => return self.api_failed(id, e),
                    },
                };
                plan = match transform::plan(self.policy, &contact, &encrypted.ciphertexts) {
                    Ok(p) if p.is_noop() => return Settled::Landed { id },
                    Ok(p) => p,
                    Err(e) => {
                        return Settled::Failed {
                            id,
                            status: None,
                            error: e,
                        };
                    }
                };
                if let Some(intent) = intent(&encrypted, &plan)
                    && let Err(e) = self
                        .ledger
                        .record_results(&self.job, &[(id.clone(), intent)])
                        .await
                {
                    return Settled::Failed {
                        id,
                        status: None,
                        error: format!("cannot write the journal: {e}"),
                    };
                }
            }
            let Some(etag) = contact.etag.clone() else {
                return Settled::Failed {
                    id,
                    status: None,
                    error: "the tenant sent the contact without an ETag, so it cannot be changed safely".into(),
                };
            };
            let t0 = Instant::now();
            let result = self.client.contacts().patch(&id, &etag, &plan.patch).await;
            let took = t0.elapsed();
            {
                let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
                s.patches += 1;
                if let Some(h) = s.latency.as_mut() {
                    h.record(took);
                }
            }
            match result {
                Ok(cxone::contacts::Patched::Applied(_)) => return Settled::Changed { id, plan },
                Ok(cxone::contacts::Patched::Conflict(now)) => current = Some(now),
                Err(e) if e.status() == Some(404) => return Settled::NotFound { id },
                Err(e) => return self.api_failed(id, e),
            }
        }
        Settled::Failed {
            id,
            status: Some(412),
            error: format!(
                "the contact kept changing: {} re-reads after 412 were not enough",
                self.opts.conflict_retries
            ),
        }
    }

    /// The fields the policy covers, for events about contacts whose exact changes an
    /// earlier, interrupted attempt made.
    fn covered(&self) -> (Vec<String>, Vec<(String, &'static str)>) {
        let rules = self.policy.rules.iter().filter(|r| r.op != Operator::Keep);
        let names: Vec<String> = rules.clone().map(|r| r.field.name()).collect();
        let algos = rules.map(|r| (r.field.name(), r.op.algorithm())).collect();
        (names, algos)
    }

    async fn settle(&self, batch: Vec<Settled>) -> Result<()> {
        let actor = &self.opts.actor;
        let mut audit = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let mut items = Vec::with_capacity(batch.len());
        let key_ids = self.policy.key_ids();
        let batch: Vec<Settled> = batch
            .into_iter()
            .filter(|s| !matches!(s, Settled::Stopped { .. }))
            .collect();
        for s in &batch {
            let id = s.id();
            let (outcome, entry, event) = match s {
                Settled::Stopped { .. } => continue,
                Settled::Changed { plan, .. } => {
                    let fields: Vec<String> =
                        plan.changes.iter().map(|c| c.field.clone()).collect();
                    let ops: Vec<(String, &'static str)> = plan
                        .changes
                        .iter()
                        .map(|c| (c.field.clone(), c.op))
                        .collect();
                    let algos: Vec<(String, &'static str)> = plan
                        .changes
                        .iter()
                        .map(|c| (c.field.clone(), c.algorithm))
                        .collect();
                    let unnormalized = plan.changes.iter().filter(|c| !c.normalized).count() as u64;
                    let mut details = Details::new()
                        .ids("fields", &fields)?
                        .label_map("operators", &ops)?
                        .ids("key_ids", &key_ids)?
                        .count("unnormalized", unnormalized);
                    if !plan.ciphertexts.is_empty() {
                        details =
                            details.label("fpe_derivation", transform::FpeVersion::CURRENT.label());
                    }
                    let entry =
                        NewEntry::new(actor, "contact.anonymize", id, Outcome::Success, details)?;
                    let event = consent_event(id, &fields, &algos)?;
                    // The ciphertexts were recorded (merged with earlier ones) as the
                    // intent before the PATCH; settling keeps that record.
                    (ItemOutcome::Done { result: None }, entry, Some(event))
                }
                Settled::Landed { .. } => {
                    let (fields, algos) = self.covered();
                    let entry = NewEntry::new(
                        actor,
                        "contact.anonymize",
                        id,
                        Outcome::Success,
                        Details::new()
                            .ids("fields", &fields)?
                            .ids("key_ids", &key_ids)?
                            .flag("completed_by_earlier_attempt", true),
                    )?;
                    (
                        ItemOutcome::Done { result: None },
                        entry,
                        Some(consent_event(id, &fields, &algos)?),
                    )
                }
                Settled::Unchanged { .. } => {
                    let entry = NewEntry::new(
                        actor,
                        "contact.anonymize",
                        id,
                        Outcome::Skipped,
                        Details::new().label("reason", "already_in_target_state"),
                    )?;
                    (ItemOutcome::Done { result: None }, entry, None)
                }
                Settled::NotFound { .. } => {
                    let entry = NewEntry::new(
                        actor,
                        "contact.anonymize",
                        id,
                        Outcome::Failure,
                        Details::new()
                            .label("reason", "not_found")
                            .number("status", 404),
                    )?;
                    (
                        ItemOutcome::Failed {
                            error: "no such contact (404)".into(),
                        },
                        entry,
                        None,
                    )
                }
                Settled::Failed { error, status, .. } => {
                    let mut d = Details::new().label("reason", "error");
                    if let Some(st) = status {
                        d = d.number("status", i64::from(*st));
                    }
                    let entry = NewEntry::new(actor, "contact.anonymize", id, Outcome::Failure, d)?;
                    (
                        ItemOutcome::Failed {
                            error: error.clone(),
                        },
                        entry,
                        None,
                    )
                }
            };
            audit.push(entry);
            if let Some(ev) = event {
                events.push(ev);
            }
            items.push(ledger::ItemSettle {
                job_id: self.job.clone(),
                key: id.to_string(),
                outcome,
            });
        }
        self.ledger
            .commit(ledger::Batch {
                audit,
                events,
                items,
                ..Default::default()
            })
            .await?;
        let mut st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        for s in batch {
            self.progress.done.fetch_add(1, Ordering::Relaxed);
            match s {
                Settled::Changed { plan, .. } => {
                    st.changed += 1;
                    self.progress.changed.fetch_add(1, Ordering::Relaxed);
                    for c in plan.changes {
                        *st.fields.entry(c.field).or_insert(0) += 1;
                    }
                }
                Settled::Landed { .. } => {
                    st.changed += 1;
                    self.progress.changed.fetch_add(1, Ordering::Relaxed);
                }
                Settled::Unchanged { .. } => st.unchanged += 1,
                Settled::NotFound { id } => {
                    st.not_found += 1;
                    self.progress.failed.fetch_add(1, Ordering::Relaxed);
                    if st.failures.len() < 1000 {
                        st.failures.push(Failure {
                            id,
                            error: "no such contact (404)".into(),
                        });
                    }
                }
                Settled::Stopped { .. } => {}
                Settled::Failed { id, error, .. } => {
                    st.failed += 1;
                    self.progress.failed.fetch_add(1, Ordering::Relaxed);
                    if st.failures.len() < 1000 {
                        st.failures.push(Failure { id, error });
                    }
                }
            }
        }
        Ok(())
    }
}

/// What the journal recorded of a contact's encrypted fields: each ciphertext's hash,
/// and the FF1 derivation each was written with (absent before v2: v1).
#[derive(Debug, Clone, Default)]
pub(crate) struct Earlier {
    pub ciphertexts: BTreeMap<String, String>,
    pub fpe: BTreeMap<String, String>,
}

impl Earlier {
    pub(crate) fn from_record(record: Option<&serde_json::Value>) -> Self {
        let Some(v) = record else {
            return Earlier::default();
        };
        let ciphertexts: BTreeMap<String, String> =
            serde_json::from_value(v["ciphertexts"].clone()).unwrap_or_default();
        let recorded: BTreeMap<String, String> =
            serde_json::from_value(v["fpe"].clone()).unwrap_or_default();
        let fpe = ciphertexts
            .keys()
            .map(|f| {
                let version = recorded
                    .get(f)
                    .cloned()
                    .unwrap_or_else(|| transform::FpeVersion::V1.as_str().to_string());
                (f.clone(), version)
            })
            .collect();
        Earlier { ciphertexts, fpe }
    }
}

/// What to record before a PATCH that writes ciphertexts: every field's ciphertext hash
/// and FF1 derivation, earlier ones included, so any later run recognises all of them
/// and `reveal` decrypts each with the derivation it was written with.
fn intent(earlier: &Earlier, plan: &ContactPlan) -> Option<serde_json::Value> {
    if plan.ciphertexts.is_empty() {
        return None;
    }
    let mut all = earlier.ciphertexts.clone();
    all.extend(plan.ciphertexts.clone());
    let mut fpe = earlier.fpe.clone();
    for f in plan.ciphertexts.keys() {
        fpe.insert(
            f.clone(),
            transform::FpeVersion::CURRENT.as_str().to_string(),
        );
    }
    Some(json!({"ciphertexts": all, "fpe": fpe}))
}

/// The tutorial's `contact.anonymized` event: contact id, status, fields and algorithm,
/// never a value.
fn consent_event(
    id: &str,
    fields: &[String],
    algorithms: &[(String, &'static str)],
) -> Result<NewEvent> {
    Ok(NewEvent::new(
        EventKind::Consent,
        "contact.anonymized",
        Details::new()
            .id("contact_id", id)?
            .label("status", "success")
            .ids("fields", fields)?
            .label_map("algorithm", algorithms)?,
    ))
}

/// What `--dry-run` shows: how many contacts, which fields, a few redacted examples.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    pub examined: u64,
    pub would_change: u64,
    pub unchanged: u64,
    pub not_found: u64,
    pub errors: u64,
    pub fields: BTreeMap<String, u64>,
    pub examples: Vec<Example>,
    pub first_errors: Vec<Failure>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Example {
    pub id: String,
    pub changes: Vec<ExampleChange>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExampleChange {
    pub field: String,
    pub op: &'static str,
    pub before: String,
    pub after: String,
}

/// Reads the selection and plans every contact, writing nothing anywhere.
pub async fn dry_run(
    client: &Client,
    policy: &Policy,
    selection: &Selection,
    opts: &Options,
    examples: usize,
) -> Result<DryRun> {
    let mut out = DryRun::default();
    let consider =
        |out: &mut DryRun, c: &Contact| match transform::plan(policy, c, &BTreeMap::new()) {
            Err(e) => {
                out.errors += 1;
                if out.first_errors.len() < 20 {
                    out.first_errors.push(Failure {
                        id: c.id.clone(),
                        error: e,
                    });
                }
            }
            Ok(p) if p.is_noop() => out.unchanged += 1,
            Ok(p) => {
                out.would_change += 1;
                for ch in &p.changes {
                    *out.fields.entry(ch.field.clone()).or_insert(0) += 1;
                }
                if out.examples.len() < examples {
                    out.examples.push(Example {
                        id: c.id.clone(),
                        changes: p
                            .changes
                            .iter()
                            .map(|ch| ExampleChange {
                                field: ch.field.clone(),
                                op: ch.op,
                                before: transform::redact(ch.before.as_deref()),
                                after: if ch.op == "replace" {
                                    format!("{:?}", ch.after.clone().unwrap_or_default())
                                } else {
                                    transform::redact(ch.after.as_deref())
                                },
                            })
                            .collect(),
                    });
                }
            }
        };
    match selection {
        Selection::Ids(ids) => {
            let mut fetched = futures_util::stream::iter(ids.iter().cloned())
                .map(|id| async move { (id.clone(), client.contacts().get(&id).await) })
                .buffer_unordered(opts.concurrency.max(1));
            while let Some((id, r)) = fetched.next().await {
                out.examined += 1;
                match r {
                    Ok(c) => consider(&mut out, &c),
                    Err(e) if e.status() == Some(404) => out.not_found += 1,
                    Err(e) => {
                        out.errors += 1;
                        out.first_errors.push(Failure {
                            id,
                            error: e.to_string(),
                        });
                    }
                }
            }
        }
        _ => {
            let mut list = client.contacts().list().page_size(opts.page_size);
            if let Selection::UpdatedBefore(t) = selection {
                list = list.updated_before(*t);
            }
            let mut stream = Box::pin(list.stream());
            while let Some(c) = stream.next().await {
                let c = c?;
                out.examined += 1;
                consider(&mut out, &c);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_validate() {
        let now = time::OffsetDateTime::now_utc();
        assert!(
            Selection::updated_before("2999-01-01", now)
                .unwrap_err()
                .to_string()
                .contains("in the future")
        );
        assert!(Selection::updated_before("last year", now).is_err());
        assert!(matches!(
            Selection::updated_before("2024-06-01", now),
            Ok(Selection::UpdatedBefore(_))
        ));
        assert!(
            Selection::from_ids_text("# none\n\n", "ids.txt")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let e = Selection::from_ids_text("c-1\nann@example.com\n", "ids.txt")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("ids.txt:2:"), "{e}");
        assert_eq!(
            Selection::from_ids_text("c-1\nc-2 # dup below\nc-1\n", "f").unwrap(),
            Selection::Ids(vec!["c-1".into(), "c-2".into()])
        );
    }

    #[test]
    fn histogram_percentiles_are_close() {
        let mut h = Histogram::new();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.percentile_ms(0.5);
        let p99 = h.percentile_ms(0.99);
        assert!((49.0..=52.0).contains(&p50), "{p50}");
        assert!((98.0..=102.0).contains(&p99), "{p99}");
    }
}
