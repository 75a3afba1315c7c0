//! Applying a policy to a selection of contacts, on the job runner ([`crate::job`]).
//!
//! The journal is written before the tenant: a page's contacts become job items before
//! any of them is patched, and each is claimed (marked in flight) just before its PATCH —
//! only those with something to change, so a contact found in its target state later is
//! known to have been patched by an interrupted run only if it was claimed. A contact's
//! outcome, audit entry and consent event are settled together (in batches, one
//! transaction each), so after a crash a rerun finds exactly the contacts still to do —
//! and a contact whose PATCH landed just before the crash is found already in its target
//! state and settled without a second PATCH.
//!
//! A rerun of the same policy and selection resumes the unfinished job by itself; so does
//! `--resume JOB`, which also checks the job ran this policy and selection.

use std::collections::BTreeMap;
use std::sync::Arc;

use cxone::Client;
use cxone::models::Contact;
use futures_util::StreamExt;
use ledger::{Details, Ledger, NewJob};

use super::JOB_KIND;
use super::policy::{Operator, Policy};
use super::report::Report;
use super::selection::{Options, Selection};
use super::settle::{self, Earlier, Settled, intent};
use super::transform::{self, ContactPlan};
use crate::job::{Job, Progress, Resume};
use crate::{Error, Result};

/// Shared by the tasks of one run.
pub(super) struct Run<'a> {
    pub(super) client: &'a Client,
    pub(super) policy: &'a Policy,
    pub(super) opts: &'a Options,
    pub(super) job: Job<'a>,
    has_encrypt: bool,
    /// The first missing-scope refusal: once set, no further request is sent.
    stopped: std::sync::Mutex<Option<cxone::Error>>,
}

/// A contact to PATCH: its id, as read, its plan and what earlier runs encrypted.
type Ready = (String, Contact, ContactPlan, Earlier);

/// A batch sorted before any PATCH.
#[derive(Default)]
struct Sorted {
    now: Vec<Settled>,
    ready: Vec<Ready>,
    intents: Vec<(String, serde_json::Value)>,
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
    let fingerprint = crate::sha256_hex(&format!("{}\n{}", policy.digest, selection.describe()));
    let items = match selection {
        Selection::Ids(ids) => ids.clone(),
        _ => Vec::new(),
    };
    let params = Details::new()
        .label("selection", selection.label())
        .count("ids", items.len() as u64)
        .ids("key_ids", &policy.key_ids())?
        .sha256("policy_sha256", &policy.digest)?;
    let new = NewJob {
        id: Ledger::new_job_id(JOB_KIND),
        kind: JOB_KIND,
        actor: opts.actor.clone(),
        params,
        items,
        fingerprint: Some(fingerprint),
    };
    let resume = match &opts.resume {
        Some(id) => Resume::Job(id),
        None => Resume::Auto,
    };
    let job = Job::open(client, ledger, new, resume, progress).await?;
    let run = Run {
        client,
        policy,
        opts,
        job,
        has_encrypt: policy
            .rules
            .iter()
            .any(|r| matches!(r.op, Operator::Encrypt { .. })),
        stopped: std::sync::Mutex::new(None),
    };
    let id = run.job.id().to_string();

    // Contacts journaled but not done: those of an ids selection, and any a crash left.
    run.journaled_pass(ledger, &id).await?;
    run.listing_pass(ledger, &id, selection).await?;
    Ok(run.job.finish_counted().await?.into())
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
    /// Journaled contacts not yet done, 500 at a time.
    async fn journaled_pass(&self, ledger: &Ledger, id: &str) -> Result<()> {
        let mut after = -1i64;
        loop {
            let chunk = ledger.unfinished_items(id, after, 500).await?;
            let Some(last) = chunk.last() else { break };
            after = last.0;
            let keys: Vec<String> = chunk.into_iter().map(|(_, k)| k).collect();
            self.job.found(keys.len());
            let open = self.job.attempts_of(&keys).await?;
            self.process_all(open.into_iter().map(|(k, a)| (k, a, None)).collect())
                .await?;
        }
        Ok(())
    }

    /// A listing: page after page from where the job had got to ("" once it finished),
    /// the next page fetched while this one is processed.
    async fn listing_pass(&self, ledger: &Ledger, id: &str, selection: &Selection) -> Result<()> {
        let cursor = ledger.cursor(id).await?;
        if matches!(selection, Selection::Ids(_)) || cursor.as_deref() == Some("") {
            return Ok(());
        }
        let mut list = self
            .client
            .contacts()
            .list()
            .page_size(self.opts.page_size)
            .starting_at(cursor);
        if let Selection::UpdatedBefore(t) = selection {
            list = list.updated_before(*t);
        }
        let mut pages = std::pin::pin!(list.pages());
        while let Some(page) = pages.next().await {
            let page = page?;
            let keys: Vec<String> = page.contacts.iter().map(|c| c.id.clone()).collect();
            self.job.add_items(&keys).await?;
            // The items are journaled: the cursor may move past this page now.
            ledger
                .set_cursor(id, Some(page.page_token.as_deref().unwrap_or("")))
                .await?;
            self.job.found(keys.len());
            let claimed: BTreeMap<String, i64> =
                self.job.attempts_of(&keys).await?.into_iter().collect();
            let work = page
                .contacts
                .into_iter()
                .filter_map(|c| claimed.get(&c.id).map(|a| (c.id.clone(), *a, Some(c))))
                .collect();
            self.process_all(work).await?;
        }
        Ok(())
    }

    /// Fetches (unless listed), plans, claims, patches and settles a batch of contacts.
    async fn process_all(&self, work: Vec<(String, i64, Option<Contact>)>) -> Result<()> {
        let fetched = self.fetch_all(work).await;
        let known = if self.has_encrypt {
            let ids: Vec<String> = fetched
                .iter()
                .filter_map(|r| r.as_ref().ok().map(|(id, _, _)| id.clone()))
                .collect();
            self.job.ledger().latest_results(JOB_KIND, &ids).await?
        } else {
            Default::default()
        };
        let Sorted {
            now,
            ready,
            intents,
        } = self.sort(fetched, &known);
        self.job
            .ledger()
            .record_results(self.job.id(), &intents)
            .await?;
        // Claimed only now, and only those to PATCH: a claim says a PATCH may follow.
        let to_patch: Vec<String> = ready.iter().map(|(id, ..)| id.clone()).collect();
        self.job.claim_many(&to_patch).await?;
        self.patch_and_settle(now, ready).await?;
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

    /// Each contact as listed, or fetched when it was not; a missing one is settled as
    /// not found.
    async fn fetch_all(
        &self,
        work: Vec<(String, i64, Option<Contact>)>,
    ) -> Vec<Result<(String, i64, Contact), Settled>> {
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
            .buffer_unordered(self.opts.concurrency.max(1))
            .collect()
            .await
    }

    /// Splits fetched contacts into those settled now (failed, unchanged, landed) and
    /// those to PATCH, with the intents to journal before any PATCH.
    fn sort(
        &self,
        fetched: Vec<Result<(String, i64, Contact), Settled>>,
        known: &std::collections::HashMap<String, serde_json::Value>,
    ) -> Sorted {
        let mut out = Sorted::default();
        for r in fetched {
            let (id, attempt, contact) = match r {
                Ok(x) => x,
                Err(s) => {
                    out.now.push(s);
                    continue;
                }
            };
            let encrypted = Earlier::from_record(known.get(&id));
            match transform::plan(self.policy, &contact, &encrypted.ciphertexts) {
                Err(e) => out.now.push(Settled::Failed {
                    id,
                    status: None,
                    error: e,
                }),
                // Nothing to do, though an interrupted run claimed it for a PATCH: that
                // PATCH landed. Never claimed: it was in its target state already.
                Ok(p) if p.is_noop() => out.now.push(if attempt > 0 {
                    Settled::Landed { id }
                } else {
                    Settled::Unchanged { id }
                }),
                Ok(p) => {
                    if let Some(intent) = intent(&encrypted, &p) {
                        out.intents.push((id.clone(), intent));
                    }
                    out.ready.push((id, contact, p, encrypted));
                }
            }
        }
        out
    }

    /// PATCHes the ready contacts, settling every outcome in batches as it arrives.
    async fn patch_and_settle(&self, now: Vec<Settled>, ready: Vec<Ready>) -> Result<()> {
        let conc = self.opts.concurrency.max(1);
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
                settle::settle(&self.job, self.policy, batch).await?;
            }
            Ok::<_, Error>(())
        };
        let ((), settled) = tokio::join!(producer, settler);
        settled
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
                        .job
                        .ledger()
                        .record_results(self.job.id(), &[(id.clone(), intent)])
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
            let result = self
                .job
                .timed(self.client.contacts().patch(&id, &etag, &plan.patch))
                .await;
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
}
