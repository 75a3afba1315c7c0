//! Applying an encryption plan on the job runner.
//!
//! One job per request, one item (`columns`). Before the PATCH, the journal records the
//! idempotency key, the columns and the first rotation date — everything the body is
//! made from but the callback URL, which holds a capability token and comes from the
//! request again. A rerun after a crash finds the unfinished job by the request's
//! fingerprint and sends the same key with the same body: the tenant answers with its
//! first response and applies nothing twice. The table is then read back, and the job
//! counts as done only when every column is encrypted as asked.

use std::sync::Arc;
use std::time::Instant;

use cxone::Client;
use cxone::models::Table;
use ledger::{
    Details, EventKind, ItemOutcome, JobStatus, Ledger, NewEntry, NewEvent, NewJob, Outcome,
};
use serde::Serialize;
use serde_json::{Value, json};

use super::Coverage;
use super::plan::{Plan, body, next_rotation, same_configuration};
use super::{ALGORITHM, Classifier, JOB_KIND, Request};
use crate::job::{Job, Progress, Resume, Step, Tally};
use crate::{Error, Result, sha256_hex};

/// The job's one item.
pub(super) const ITEM: &str = "columns";

/// What an encryption run did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The job's id.
    pub job_id: String,
    /// Whether this run resumed an interrupted job.
    pub resumed: bool,
    /// The table, `DS/TABLE`.
    pub table: String,
    /// The columns now encrypted by this job.
    pub columns: Vec<String>,
    /// The indexes masked.
    pub masked_indexes: Vec<String>,
    /// The table's key version after the change.
    pub key_version: u64,
    /// Coverage after the change, read back from the tenant.
    pub coverage: Coverage,
    /// Wall-clock time.
    pub seconds: f64,
}

/// What identifies "the same request", for resuming: the table, the sorted columns and
/// every setting (the callback URL by its hash).
pub fn fingerprint(req: &Request) -> String {
    let mut cols = req.columns.clone();
    cols.sort();
    cols.dedup();
    let kms = req
        .kms
        .as_ref()
        .map(|k| format!("{}:{}", sha256_hex(k.url.as_str()), k.sync.as_str()))
        .unwrap_or_default();
    sha256_hex(&format!(
        "{}\n{}\n{}\n{}:{}\n{}\n{kms}",
        req.table,
        cols.join(","),
        req.compliance.as_str(),
        req.rotation.strategy(),
        req.rotation.interval_days(),
        req.mask_indexes,
    ))
}

/// The unfinished job for this request, if a crash left one.
pub async fn unfinished(ledger: &Ledger, req: &Request) -> Result<Option<String>> {
    Ok(ledger.running_job(JOB_KIND, &fingerprint(req)).await?)
}

/// Runs `plan` (or resumes the unfinished job of the same request) and verifies the
/// result. `table` is the table the plan was made from.
pub async fn apply(
    client: &Client,
    ledger: &Ledger,
    req: &Request,
    plan: &Plan,
    table: &Table,
    classifier: &Classifier,
    actor: &str,
) -> Result<Report> {
    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    if plan.is_noop() && unfinished(ledger, req).await?.is_none() {
        return Err(Error::Invalid("nothing to do".into()));
    }
    let params = Details::new()
        .id("datastore", &req.table.datastore)?
        .id("table", &req.table.table)?
        .ids("columns", &plan.columns)?
        .label("compliance", req.compliance.as_str());
    let new = NewJob {
        id: Ledger::new_job_id("encrypt"),
        kind: JOB_KIND,
        actor: actor.to_string(),
        params,
        items: vec![ITEM.to_string()],
        fingerprint: Some(fingerprint(req)),
    };
    let job = Job::open(client, ledger, new, Resume::Auto, progress).await?;
    let intent = journal_intent(client, ledger, &job, req, plan, table).await?;
    let patch = body(req, &intent.columns, intent.next_rotation);
    let result = job
        .timed(client.datastores().encrypt_columns(
            &req.table.datastore,
            &req.table.table,
            &patch,
            &intent.key,
        ))
        .await;
    let key_version = match result {
        Ok(r) => r.key_version,
        Err(e) => return Err(refused(&job, req, e).await),
    };

    // Read back: done only when every column is encrypted as asked.
    let now = client
        .datastores()
        .table(&req.table.datastore, &req.table.table)
        .await?;
    let names: Vec<String> = intent.columns.iter().map(|(n, _)| n.clone()).collect();
    if let Some(msg) = not_as_asked(&now.columns, &names, req) {
        fail(&job, req, "verify_failed", &msg).await?;
        return Err(Error::Failed(msg));
    }
    let coverage = Coverage::of(&now.columns, &Default::default(), classifier);
    let step = verified(actor, req, &intent, &names, key_version, &coverage)?;
    job.settle(vec![step]).await?;
    let resumed = job.resumed();
    let finish = NewEntry::new(
        actor,
        "job.finish",
        job.id(),
        Outcome::Success,
        Details::new().count("columns", names.len() as u64),
    )?;
    let r = job.finish(JobStatus::Done, finish).await?;
    Ok(Report {
        job_id: r.job_id,
        resumed,
        table: req.table.to_string(),
        columns: names,
        masked_indexes: intent.masked,
        key_version,
        coverage,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The intent a rerun sends, journaled with its PATCH window before the PATCH, and the
/// item claimed. A resumed job sends what it journaled before its PATCH; one that crashed
/// before that journaled nothing and sent nothing.
async fn journal_intent(
    client: &Client,
    ledger: &Ledger,
    job: &Job<'_>,
    req: &Request,
    plan: &Plan,
    table: &Table,
) -> Result<Intent> {
    // A resumed job sends what it journaled before its PATCH; one that crashed before
    // that journaled nothing and sent nothing.
    let recorded = ledger
        .job_items(job.id(), None, 10)
        .await?
        .into_iter()
        .find(|i| i.key == ITEM)
        .and_then(|i| i.result);
    let intent = match recorded {
        Some(v) => Intent::from_json(&v)?,
        None => Intent::new(job.id(), req, plan, table),
    };
    // Journaled before the PATCH: a rerun sends this key with this body. With it, when
    // the PATCH starts and when it must have ended (every attempt of it): a SYNC callback
    // is accepted only inside that window, so a PATCH lost in a crash does not leave the
    // callback receiver accepting newer key versions for ever.
    let settings = client.settings();
    let in_flight = settings.retry.deadline + settings.request_timeout;
    let mut recorded = intent.to_json();
    recorded["patchStartedAt"] = ledger::timestamp(time::OffsetDateTime::now_utc()).into();
    recorded["patchDeadline"] =
        ledger::timestamp(time::OffsetDateTime::now_utc() + in_flight).into();
    ledger
        .record_results(job.id(), &[(ITEM.to_string(), recorded)])
        .await?;
    job.found(1);
    job.claim(ITEM).await?;
    Ok(intent)
}

/// Read back: the columns not encrypted as asked, as a message, if any.
fn not_as_asked(
    columns: &[cxone::models::Column],
    names: &[String],
    req: &Request,
) -> Option<String> {
    let wrong: Vec<&String> = names
        .iter()
        .filter(|n| {
            !columns
                .iter()
                .any(|c| &c.name == *n && same_configuration(c, req))
        })
        .collect();
    if wrong.is_empty() {
        return None;
    }
    Some(format!(
        "the tenant accepted the change, but {} {} not encrypted as asked when read back",
        wrong
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        if wrong.len() == 1 { "is" } else { "are" }
    ))
}

/// The settled item of a verified encryption: its audit entry and KMS event, and the
/// intent with its key version, so a late ASYNC KMS callback can be matched.
fn verified(
    actor: &str,
    req: &Request,
    intent: &Intent,
    names: &[String],
    key_version: u64,
    coverage: &Coverage,
) -> Result<Step> {
    let entry = NewEntry::new(
        actor,
        "datastore.encrypt",
        &req.table.table,
        Outcome::Success,
        Details::new()
            .id("datastore", &req.table.datastore)?
            .ids("columns", names)?
            .count("key_version", key_version)
            .label("compliance", req.compliance.as_str())
            .label("rotation", req.rotation.strategy())
            .ids("masked_indexes", &intent.masked)?,
    )?;
    let event = NewEvent::new(
        EventKind::Kms,
        "column_encryption.verified",
        Details::new()
            .id("table_id", &req.table.table)?
            .id("datastore_id", &req.table.datastore)?
            .ids("columns", names)?
            .count("key_version", key_version)
            .label("algorithm", ALGORITHM)
            .count("encrypted_columns", coverage.encrypted as u64)
            .count("total_columns", coverage.total as u64)
            .count("sensitive_encrypted", coverage.sensitive_encrypted as u64)
            .count("sensitive_total", coverage.sensitive_total as u64),
    );
    Ok(Step {
        key: ITEM.to_string(),
        outcome: ItemOutcome::Done {
            // With the key version, so a late ASYNC KMS callback can be matched.
            result: Some({
                let mut v = intent.to_json();
                v["keyVersion"] = json!(key_version);
                v
            }),
        },
        audit: vec![entry],
        events: vec![event],
        tally: Tally::Changed {
            fields: names.to_vec(),
        },
    })
}

/// What the job sends, journaled before it is sent (no secret: the callback URL is not in
/// it).
struct Intent {
    key: String,
    columns: Vec<(String, String)>,
    masked: Vec<String>,
    next_rotation: Option<i64>,
}

impl Intent {
    fn new(job: &str, req: &Request, plan: &Plan, table: &Table) -> Self {
        let columns: Vec<(String, String)> = plan
            .columns
            .iter()
            .map(|n| {
                let kind = table
                    .columns
                    .iter()
                    .find(|c| &c.name == n)
                    .map(|c| c.kind.clone())
                    .unwrap_or_default();
                (n.clone(), kind)
            })
            .collect();
        let next_rotation = next_rotation(req, time::OffsetDateTime::now_utc());
        let digest = sha256_hex(&body(req, &columns, next_rotation).to_string());
        Intent {
            key: format!("cxg-{job}-{}", &digest[..16]),
            columns,
            masked: plan.masked_indexes.clone(),
            next_rotation,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "idempotencyKey": self.key,
            "columns": self.columns.iter().map(|(n, k)| json!({"name": n, "type": k})).collect::<Vec<_>>(),
            "maskedIndexes": self.masked,
            "nextRotationEpoch": self.next_rotation,
        })
    }

    fn from_json(v: &Value) -> Result<Self> {
        let bad = || Error::Internal("the journaled encryption intent is unreadable".into());
        let columns = v["columns"]
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|c| {
                Some((
                    c["name"].as_str()?.to_string(),
                    c["type"].as_str()?.to_string(),
                ))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        Ok(Intent {
            key: v["idempotencyKey"].as_str().ok_or_else(bad)?.to_string(),
            columns,
            masked: serde_json::from_value(v["maskedIndexes"].clone()).unwrap_or_default(),
            next_rotation: v["nextRotationEpoch"].as_i64(),
        })
    }
}

/// What a refused PATCH becomes. A refusal (400, 409, 422) or a failed SYNC callback
/// (502) ends the job failed, with nothing recorded as done; anything else (the tenant
/// unreachable) leaves it to resume.
async fn refused(job: &Job<'_>, req: &Request, e: cxone::Error) -> Error {
    // The tenant may echo the callback URL, which holds a capability token: never repeat it.
    let redact = |text: String| match &req.kms {
        Some(k) => text.replace(k.url.as_str(), "<callback URL>"),
        None => text,
    };
    let listed = |e: &cxone::Error| -> String {
        redact(match e {
            cxone::Error::Api { problem, .. } if !problem.errors.is_empty() => problem
                .errors
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        })
    };
    let (reason, err) = match e.status() {
        Some(400 | 409 | 422) => {
            let msg = format!(
                "the tenant refused the change to {}: {}",
                req.table,
                listed(&e)
            );
            ("refused", Error::Conflict(msg))
        }
        Some(502) if req.kms.is_some() => {
            let host = req
                .kms
                .as_ref()
                .and_then(|k| k.url.host_str().map(str::to_string))
                .unwrap_or_default();
            let msg = format!(
                "the KMS callback at {host} failed, so the tenant rolled the change back; no column was encrypted (tenant request {})",
                e.request_id().unwrap_or("none")
            );
            ("kms_callback_failed", Error::Failed(msg))
        }
        _ => return Error::Api(e),
    };
    if let Err(f) = fail(job, req, reason, &err.to_string()).await {
        return f;
    }
    err
}

/// Settles the item failed, with its audit entry, and ends the job failed.
async fn fail(job: &Job<'_>, req: &Request, reason: &'static str, msg: &str) -> Result<()> {
    let entry = NewEntry::new(
        job.actor(),
        "datastore.encrypt",
        &req.table.table,
        Outcome::Failure,
        Details::new()
            .id("datastore", &req.table.datastore)?
            .label("reason", reason),
    )?;
    job.settle(vec![Step {
        key: ITEM.to_string(),
        outcome: ItemOutcome::Failed {
            error: msg.to_string(),
        },
        audit: vec![entry],
        events: Vec::new(),
        tally: Tally::Failed {
            error: msg.to_string(),
        },
    }])
    .await?;
    let finish = NewEntry::new(
        job.actor(),
        "job.finish",
        job.id(),
        Outcome::Failure,
        Details::new().label("reason", reason),
    )?;
    job.end(JobStatus::Failed, finish).await
}
