//! Backfill: link many `guest_id,identifier` pairs from a CSV file as one resumable job.
//!
//! [`plan`] is pure: it reads every line, normalizes and hashes every identifier, and
//! reports every bad line at once (by line number, never quoting the identifier); a
//! guest named twice with two different people is an error, twice with the same person
//! is one link. [`apply`] journals the guests as job items, links them with bounded
//! concurrency, and settles each chunk with its audit entries in one transaction, so a
//! rerun with the same file resumes where a crash stopped it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::StreamExt as _;
use ledger::journal::{ItemOutcome, JobStatus};
use ledger::{Details, Ledger, NewEntry, NewJob, Outcome};
use serde::Serialize;

use super::{IdentifierKind, Identity, LinkError, check_guest_id};
use crate::Result;
use crate::job::{Job, Resume, Step, Tally};
use crate::pseudonym::Kind;

/// The job kind in the journal.
pub const JOB_KIND: &str = "guests.backfill";
const CHUNK: i64 = 500;

/// One guest to link: where it came from and the pseudonym it will hold.
#[derive(Debug, Clone)]
pub struct Link {
    /// Its line in the CSV, from 1.
    pub line: usize,
    /// The guest.
    pub guest_id: String,
    /// What the identifier is.
    pub kind: Kind,
    pseudonym: String,
}

/// The validated file: what will be linked, and a fingerprint naming this exact job.
#[derive(Debug)]
pub struct Plan {
    /// One link per valid line.
    pub links: Vec<Link>,
    /// Lines that named a guest already linked to the same person earlier in the file.
    pub duplicates: usize,
    /// A hash of the file's links, so a rerun of the same file resumes its job.
    pub fingerprint: String,
}

fn unquote(s: &str) -> &str {
    let t = s.trim();
    t.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(t)
}

/// Reads `text` (CSV: `guest_id,identifier` per line; an optional header line; blank
/// lines and `#` comments skipped). Every problem is reported, each naming its line.
pub fn plan(
    identity: &Identity,
    text: &str,
    kind: IdentifierKind,
    shown: &str,
) -> Result<Plan, Vec<String>> {
    let mut errors = Vec::new();
    let mut links: Vec<Link> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut duplicates = 0;
    for (i, raw_line) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw_line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let Some((g, ident)) = l.split_once(',') else {
            errors.push(format!(
                "{shown}:{line}: expected two columns, guest_id,identifier"
            ));
            continue;
        };
        let (g, ident) = (unquote(g), unquote(ident));
        if line == 1 && g.eq_ignore_ascii_case("guest_id") {
            continue;
        }
        if let Err(e) = check_guest_id(g) {
            errors.push(format!("{shown}:{line}: guest_id {}", e.message));
            continue;
        }
        match identity.pseudonym("identifier", ident, kind) {
            Err(e) => errors.push(format!("{shown}:{line}: {e}")),
            Ok((k, p)) => match seen.get(g) {
                Some(&at) if links[at].pseudonym == p => duplicates += 1,
                Some(&at) => errors.push(format!(
                    "{shown}:{line}: guest {g} is already linked to another person on line {}",
                    links[at].line
                )),
                None => {
                    seen.insert(g.to_string(), links.len());
                    links.push(Link {
                        line,
                        guest_id: g.to_string(),
                        kind: k,
                        pseudonym: p,
                    });
                }
            },
        }
    }
    if links.is_empty() && errors.is_empty() {
        errors.push(format!("{shown}: no guest_id,identifier pairs in the file"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // The pseudonyms are keyed hashes: the fingerprint reveals nobody.
    let mut material = format!("{}\n{}\n", identity.key_id(), identity.attribute());
    for l in &links {
        material.push_str(&l.guest_id);
        material.push(',');
        material.push_str(&l.pseudonym);
        material.push('\n');
    }
    Ok(Plan {
        links,
        duplicates,
        fingerprint: crate::sha256_hex(&material),
    })
}

pub use crate::job::Progress;

/// One link that failed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The guest.
    pub guest_id: String,
    /// Why.
    pub error: String,
}

/// What a backfill run did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The job's id.
    pub job_id: String,
    /// Whether this run resumed an unfinished job.
    pub resumed: bool,
    /// Links made in this run.
    pub linked: u64,
    /// Links an earlier, interrupted run had already made.
    pub already_done: u64,
    /// The links that failed.
    pub failed: Vec<Failure>,
    /// Wall-clock time.
    pub seconds: f64,
}

/// How a backfill runs.
pub struct Options {
    /// Who runs it, for the audit trail.
    pub actor: String,
    /// Links in flight at once.
    pub concurrency: usize,
}

/// Runs the plan as a journaled job on the job runner (or resumes the unfinished job of
/// the same plan).
pub async fn apply(
    client: &cxone::Client,
    ledger: &Ledger,
    identity: &Identity,
    plan: &Plan,
    opts: &Options,
    progress: Arc<Progress>,
) -> Result<Report> {
    let started = Instant::now();
    progress
        .total
        .store(plan.links.len() as u64, Ordering::Relaxed);
    let new = NewJob {
        id: Ledger::new_job_id(JOB_KIND),
        kind: JOB_KIND,
        actor: opts.actor.clone(),
        params: Details::new()
            .id("key", identity.key_id())?
            .id("attribute", identity.attribute())?,
        items: plan.links.iter().map(|l| l.guest_id.clone()).collect(),
        fingerprint: Some(plan.fingerprint.clone()),
    };
    let job = Job::open(client, ledger, new, Resume::Auto, progress).await?;
    let by_guest: BTreeMap<&str, &Link> = plan
        .links
        .iter()
        .map(|l| (l.guest_id.as_str(), l))
        .collect();
    let mut pending = 0u64;
    let mut after = -1i64;
    let stopped: std::sync::Mutex<Option<cxone::Error>> = std::sync::Mutex::new(None);
    loop {
        let chunk = ledger.unfinished_items(job.id(), after, CHUNK).await?;
        let Some(last) = chunk.last() else { break };
        after = last.0;
        let keys: Vec<String> = chunk.into_iter().map(|(_, k)| k).collect();
        pending += keys.len() as u64;
        let claimed = job.claim_many(&keys).await?;
        let stopped = &stopped;
        let job = &job;
        let results: Vec<(String, Attempt)> = futures_util::stream::iter(claimed)
            .map(|(guest, _attempt)| {
                let link = by_guest.get(guest.as_str()).copied();
                async move {
                    let r = link_one(client, identity, job, link, &guest, stopped).await;
                    (guest, r)
                }
            })
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
        let steps = steps(identity, &opts.actor, results)?;
        job.settle(steps).await?;
        if let Some(e) = stopped.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(crate::Error::Api(e));
        }
    }
    let already_done = (plan.links.len() as u64).saturating_sub(pending);
    job.progress()
        .done
        .fetch_add(already_done, Ordering::Relaxed);
    finish(job, &opts.actor, already_done, started).await
}

/// Links one claimed guest; a missing scope stops the whole job (no other guest can do
/// better), leaving this guest unfinished.
async fn link_one(
    client: &cxone::Client,
    identity: &Identity,
    job: &Job<'_>,
    link: Option<&Link>,
    guest: &str,
    stopped: &std::sync::Mutex<Option<cxone::Error>>,
) -> Attempt {
    if stopped.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
        return Attempt::Stopped;
    }
    let Some(l) = link else {
        return Attempt::Failed(format!(
            "guest {guest} is in the job but not in the file; start a new job"
        ));
    };
    match job
        .timed(identity.apply(client, &l.guest_id, l.kind, &l.pseudonym))
        .await
    {
        Ok(x) => Attempt::Linked(x.kind),
        Err(LinkError::UnknownGuest(_)) => Attempt::Failed("the tenant has no such guest".into()),
        Err(LinkError::UnknownCustomer(_)) => {
            Attempt::Failed("the tenant has no such DFO customer".into())
        }
        Err(LinkError::Api(e)) if e.is_missing_scope() => {
            let mut s = stopped.lock().unwrap_or_else(|e| e.into_inner());
            if s.is_none() {
                *s = Some(e);
            }
            Attempt::Stopped
        }
        Err(other) => Attempt::Failed(other.to_string()),
    }
}

/// The settled items of a chunk: a linked guest with its audit entry, a failed one with
/// its error; a stopped one stays unfinished.
fn steps(identity: &Identity, actor: &str, results: Vec<(String, Attempt)>) -> Result<Vec<Step>> {
    let mut steps = Vec::with_capacity(results.len());
    for (guest, r) in results {
        match r {
            Attempt::Stopped => {}
            Attempt::Linked(kind) => {
                let l = super::Linked {
                    guest_id: guest.clone(),
                    attribute: identity.attribute().to_string(),
                    key_id: identity.key_id().to_string(),
                    kind,
                };
                steps.push(Step {
                    audit: vec![l.audit_entry(actor)?],
                    events: Vec::new(),
                    outcome: ItemOutcome::Done { result: None },
                    tally: Tally::Changed { fields: Vec::new() },
                    key: guest,
                });
            }
            Attempt::Failed(error) => steps.push(Step {
                key: guest,
                outcome: ItemOutcome::Failed {
                    error: error.clone(),
                },
                audit: Vec::new(),
                events: Vec::new(),
                tally: Tally::Failed { error },
            }),
        }
    }
    Ok(steps)
}

/// Ends the job, failed if any guest failed, auditing the totals.
async fn finish(job: Job<'_>, actor: &str, already_done: u64, started: Instant) -> Result<Report> {
    let so_far = job.totals();
    let ok = so_far.failed == 0;
    let finish = NewEntry::new(
        actor,
        "job.finish",
        job.id(),
        if ok {
            Outcome::Success
        } else {
            Outcome::Failure
        },
        Details::new()
            .count("linked", so_far.changed)
            .count("already_done", already_done)
            .count("failed", so_far.failed),
    )?;
    let status = if ok {
        JobStatus::Done
    } else {
        JobStatus::Failed
    };
    let resumed = job.resumed();
    let r = job.finish(status, finish).await?;
    Ok(Report {
        job_id: r.job_id,
        resumed,
        linked: r.changed,
        already_done,
        failed: r
            .failures
            .into_iter()
            .map(|f| Failure {
                guest_id: f.id,
                error: f.error,
            })
            .collect(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What one guest's link came to.
enum Attempt {
    Linked(Kind),
    Failed(String),
    /// Not attempted, or refused for a missing scope: left unfinished for a rerun.
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Key;
    use crate::pseudonym::Normalizer;

    fn identity() -> Identity {
        let key = Arc::new(Key::from_bytes("k1", vec![3; 32]).unwrap());
        Identity::new(key, Normalizer::default(), "hashed_user_id").unwrap()
    }

    #[test]
    fn every_bad_line_is_reported_by_number_without_its_identifier() {
        let text = "guest_id,identifier\n\
                    g-1,ann@example.com\n\
                    # a comment\n\
                    \n\
                    g-2,not-an-email@\n\
                    g 3,bob@example.com\n\
                    only-one-column\n\
                    g-1,ANN@example.com\n\
                    g-1,carol@example.com\n";
        let errs = plan(&identity(), text, IdentifierKind::Auto, "pairs.csv").unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(
            errs[0].starts_with("pairs.csv:5: identifier:"),
            "{}",
            errs[0]
        );
        assert!(errs[1].starts_with("pairs.csv:6: guest_id"), "{}", errs[1]);
        assert!(errs[2].starts_with("pairs.csv:7: expected two columns"));
        assert!(errs[3].contains("line 2"), "{}", errs[3]);
        assert!(
            errs.iter()
                .all(|e| !e.contains("carol") && !e.contains("not-an-email"))
        );
    }

    #[test]
    fn the_same_person_twice_is_one_link_and_the_fingerprint_is_stable() {
        let text = "g-1,ann@example.com\ng-2,\"+1 212 555 0123\"\ng-1, ANN@example.com\n";
        let id = identity();
        let p = plan(&id, text, IdentifierKind::Auto, "f").unwrap();
        assert_eq!(p.links.len(), 2);
        assert_eq!(p.duplicates, 1);
        let again = plan(&id, text, IdentifierKind::Auto, "f").unwrap();
        assert_eq!(p.fingerprint, again.fingerprint);
        let other = plan(&id, "g-1,bob@example.com\n", IdentifierKind::Auto, "f").unwrap();
        assert_ne!(p.fingerprint, other.fingerprint);
        assert!(plan(&id, "# nothing\n", IdentifierKind::Auto, "f").is_err());
    }
}
