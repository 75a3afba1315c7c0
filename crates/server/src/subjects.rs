//! Subject erasure for a privacy team's portal: `POST /v1/subjects/erasure` queues one
//! person's erasure (`guard::subject::erase`: find, anonymize their contacts, clear their
//! guests, file CXone's platform erasure) and answers 202 with the job's id;
//! `GET /v1/subjects/erasure/{job}` answers its status and, once done, its receipt.
//!
//! The job is opened in the ledger before the 202, so its id is durable and a repeat of
//! the same request answers the same job. The identifier itself is held only in memory,
//! in the queue, never in the ledger: a job the process was running when it stopped stays
//! `running` until the same request is POSTed again, which resumes it where it stopped.
//! The queue is bounded; when it is full the request is refused with 503 and
//! `Retry-After`, and nothing is opened.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use guard::identity::{IdentifierKind, Identity};
use guard::subject::erase::{self, JOB_KIND};
use guard::subject::{self, Matcher, Request, Subject};
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::AppState;
use crate::problem::{FieldError, Problem};
use crate::routes::{Caller, json_object};
use crate::schema::{ErasureAccepted, ErasureStatus};

/// How `serve` erases subjects (`[subjects]` in the configuration).
#[derive(Debug)]
pub struct SubjectsConfig {
    /// The policy the subjects' records are erased with: a masking policy for the
    /// contacts, or on CXone's published API its `[digital]` section.
    pub policy: erase::ErasePolicy,
    /// Erasures queued at once; one more is refused with 503.
    pub queue: usize,
    /// File CXone's platform erasure (spec §9); `false` when the privacy team files it
    /// apart (the receipt says so).
    pub platform_erasure: bool,
    /// Contacts per listing page of the search.
    pub page_size: cxone::PageSize,
    /// Contact PATCHes in flight at once.
    pub concurrency: usize,
}

/// What this process knows of a job beyond the ledger.
#[derive(Debug, Clone)]
enum Local {
    Queued,
    Running,
    /// Stopped with this message (never an identifier); the job stays open.
    Failed(String),
}

/// The jobs this process queued, ran or saw fail, most recent last, at most [`KNOWN`].
#[derive(Default)]
struct Known {
    state: HashMap<String, Local>,
    order: VecDeque<String>,
}

const KNOWN: usize = 4096;

impl Known {
    fn set(&mut self, job: &str, s: Local) {
        if self.state.insert(job.to_string(), s).is_none() {
            self.order.push_back(job.to_string());
            while self.order.len() > KNOWN {
                if let Some(old) = self.order.pop_front() {
                    self.state.remove(&old);
                }
            }
        }
    }

    fn forget(&mut self, job: &str) {
        if self.state.remove(job).is_some() {
            self.order.retain(|j| j != job);
        }
    }
}

struct Work {
    job: String,
    subjects: Vec<Subject>,
    /// Who asked, for the audit trail: `api:{key id}`.
    actor: String,
}

/// The erasure queue and what the process knows of its jobs.
pub(crate) struct Subjects {
    policy: Arc<erase::ErasePolicy>,
    options: erase::Options,
    tx: mpsc::Sender<Work>,
    known: Mutex<Known>,
    /// One open at a time, so a request repeated at once opens one job.
    opening: tokio::sync::Mutex<()>,
}

impl Subjects {
    /// The queue, and the worker that empties it one job at a time.
    pub(crate) fn start(
        config: SubjectsConfig,
        identity: Arc<Identity>,
        client: cxone::Client,
        ledger: ledger::Ledger,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let subjects = Arc::new(Subjects {
            policy: Arc::new(config.policy),
            options: erase::Options {
                actor: "service:subjects".into(),
                platform: config.platform_erasure,
                page_size: config.page_size,
                concurrency: config.concurrency.max(1),
                attribute: identity.attribute().to_string(),
                since: None,
            },
            tx,
            known: Mutex::default(),
            opening: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(work(
            Arc::downgrade(&subjects),
            rx,
            identity,
            client,
            ledger,
            metrics,
        ));
        subjects
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn options(&self, caller: &str) -> erase::Options {
        erase::Options {
            actor: format!("api:{caller}"),
            ..self.options.clone()
        }
    }
}

async fn work(
    subjects: std::sync::Weak<Subjects>,
    mut rx: mpsc::Receiver<Work>,
    identity: Arc<Identity>,
    client: cxone::Client,
    ledger: ledger::Ledger,
    metrics: Arc<crate::metrics::Metrics>,
) {
    while let Some(w) = rx.recv().await {
        let Some(s) = subjects.upgrade() else { return };
        s.known().set(&w.job, Local::Running);
        let options = erase::Options {
            actor: w.actor,
            ..s.options.clone()
        };
        let extra = s.policy.pseudonymize_keys();
        let matcher = Matcher::new(&w.subjects, identity.normalizer(), &extra);
        let ran = erase::run(
            &client,
            &ledger,
            &w.job,
            &s.policy,
            &w.subjects,
            &matcher,
            &options,
        )
        .await;
        metrics.subject_queue.dec();
        match ran {
            Ok(()) => {
                s.known().forget(&w.job);
                metrics.subject("erased");
                tracing::info!(job = %w.job, "subject erased");
            }
            Err(guard::Error::Busy(why)) => {
                // Another replica runs (or ran) it: the ledger answers its status.
                tracing::info!(job = %w.job, %why, "subject erasure left to the process that holds it");
                s.known().forget(&w.job);
            }
            Err(e) => {
                metrics.subject("failed");
                // The kind and status only: the tenant's words may echo the identifier.
                tracing::warn!(job = %w.job, error = %e.summary(), "subject erasure stopped; the job stays open");
                s.known().set(&w.job, Local::Failed(why(&e)));
            }
        }
    }
}

/// What a caller reads about a failed erasure: the kind of failure, never the tenant's
/// own words (a tenant may echo the identifier back); the log has the rest.
fn why(e: &guard::Error) -> String {
    let resume = "POST the same request again to resume it where it stopped";
    match e {
        guard::Error::Api(api) => match api.status() {
            Some(s) => format!(
                "the tenant answered HTTP {s} ({:?}) and retries ran out; {resume}",
                api.stage()
            ),
            None => format!(
                "the tenant could not be reached ({:?}) and retries ran out; {resume}",
                api.stage()
            ),
        },
        guard::Error::Ledger(_) => format!("the audit ledger failed; {resume}"),
        guard::Error::Internal(_) => format!("an internal fault; see the service log; {resume}"),
        // Counts and job ids only (contacts that could not be anonymized, …).
        other => format!("{other}; {resume}"),
    }
}

fn disabled() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-enabled",
        "Subject erasure is not enabled",
        "this service erases no subjects: set [subjects] policy in its configuration",
    )
}

fn ledger_unavailable() -> Problem {
    let mut p = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ledger-unavailable",
        "The audit ledger is unavailable",
        "the erasure could not be journaled; nothing was done; retry",
    );
    p.retry_after = Some(5);
    p
}

/// The request, checked field by field: every bad field is named at once.
fn read(m: &Map, identity: &Identity) -> Result<Request, Problem> {
    let mut errors = Vec::new();
    let err = |field: &str, message: &str| FieldError {
        field: field.into(),
        message: message.into(),
    };
    let identifier = match m.get("identifier") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            errors.push(err("identifier", "is required"));
            None
        }
        Some(_) => {
            errors.push(err("identifier", "must be a string"));
            None
        }
    };
    let kind = match m.get("kind") {
        None | Some(Value::Null) => Some(IdentifierKind::Auto),
        Some(Value::String(s)) => match IdentifierKind::parse(s) {
            Ok(k) => Some(k),
            Err(_) => {
                errors.push(err("kind", "must be one of email, phone, auto"));
                None
            }
        },
        Some(_) => {
            errors.push(err("kind", "must be a string: email, phone or auto"));
            None
        }
    };
    let reference = match m.get("ref") {
        Some(Value::String(r)) => match guard::subject::check_reference(r) {
            Ok(()) => Some(r.clone()),
            Err(e) => {
                errors.push(err("ref", &e));
                None
            }
        },
        None | Some(Value::Null) => {
            errors.push(err(
                "ref",
                "is required: the request's reference (a ticket id), which names the person in the receipt",
            ));
            None
        }
        Some(_) => {
            errors.push(err("ref", "must be a string"));
            None
        }
    };
    unknown_fields(m, &mut errors);
    if let (Some(i), Some(k)) = (identifier, kind)
        && let Err(e) = identity.normalize("identifier", i, k)
    {
        errors.push(FieldError {
            field: e.field.to_string(),
            message: e.message,
        });
    }
    match (identifier, kind, reference) {
        (Some(i), Some(kind), Some(reference)) if errors.is_empty() => Ok(Request {
            reference,
            identifier: SecretString::from(i.to_string()),
            kind,
            external_ids: Vec::new(),
        }),
        _ => Err(Problem::invalid(errors)),
    }
}

/// Every key besides identifier, kind and ref, named back only if it is a plain word: a
/// key can carry an address too.
fn unknown_fields(m: &Map, errors: &mut Vec<FieldError>) {
    for k in m.keys() {
        if !["identifier", "kind", "ref"].contains(&k.as_str()) {
            errors.push(FieldError {
                field: if k.len() <= 40 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    k.clone()
                } else {
                    "(unknown)".to_string()
                },
                message: "is not a field of this request (identifier, kind, ref)".into(),
            });
        }
    }
}

type Map = serde_json::Map<String, Value>;

/// Erase one person.
///
/// Queues the erasure of the person `identifier` names — find their contacts and
/// guests, anonymize the contacts with the configured masking policy, delete the guests'
/// identity attribute, file CXone's platform erasure — as one journaled job, and answers
/// 202 with its id at once. The same request again, while the job is open, answers the
/// same job (and resumes it if it had stopped). The identifier is never stored, logged
/// or returned.
#[utoipa::path(
    post,
    path = "/v1/subjects/erasure",
    tag = "subjects",
    request_body(content = crate::schema::ErasureRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "The erasure is queued (or was already open); poll the job", body = ErasureAccepted,
            headers(("Location" = String, description = "The job's status URL"))),
        crate::schema::ErasureErrors,
    ),
    security(("apiKey" = []))
)]
pub async fn erase_subject(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let Some(subjects) = &state.subjects else {
        return Err(disabled());
    };
    let m = json_object(&headers, &body)?;
    let request = match read(&m, &state.identity) {
        Ok(r) => r,
        Err(p) => {
            state.metrics.subject("invalid");
            return Err(p);
        }
    };
    let person = subject::prepare(vec![request], &state.identity).map_err(|e| {
        state.metrics.subject("invalid");
        Problem::field("identifier", e.join("; "))
    })?;
    let options = subjects.options(&caller);
    let _one = subjects.opening.lock().await;
    // A place in the queue first: when it is full nothing is opened.
    let permit = match subjects.tx.clone().try_reserve_owned() {
        Ok(p) => p,
        Err(_) => {
            state.metrics.subject("queue_full");
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue-full",
                "Too many erasures queued",
                "the erasure queue is full; nothing was queued; retry after the time in Retry-After",
            );
            p.retry_after = Some(30);
            return Err(p);
        }
    };
    let job = erase::open(&state.ledger, &subjects.policy, &person, &options)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e.summary(), "a subject erasure could not be opened");
            ledger_unavailable()
        })?;
    let queued = {
        let mut known = subjects.known();
        match known.state.get(&job) {
            Some(Local::Queued | Local::Running) => false,
            _ => {
                known.set(&job, Local::Queued);
                true
            }
        }
    };
    if queued {
        permit.send(Work {
            job: job.clone(),
            subjects: person,
            actor: options.actor,
        });
        state.metrics.subject_queue.inc();
        state.metrics.subject("accepted");
    } else {
        state.metrics.subject("repeated");
    }
    let url = format!("/v1/subjects/erasure/{job}");
    let mut response = (
        StatusCode::ACCEPTED,
        Json(ErasureAccepted {
            job_id: job,
            status: "queued".into(),
            status_url: url.clone(),
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// An erasure's status.
///
/// `queued`, `running`, `failed` (with why, and the job stays open: POST the same
/// request again to resume it) or `done`, with the receipt: what was found and changed,
/// the platform erasure's request id, the audit sequence numbers of each step and the
/// audit head, for `cxguard audit verify`.
#[utoipa::path(
    get,
    path = "/v1/subjects/erasure/{job}",
    tag = "subjects",
    params(("job" = String, Path, description = "The job id the POST answered", max_length = 128)),
    responses(
        (status = 200, description = "The job's status, and its receipt once done", body = ErasureStatus),
        (status = 401, description = "No or an unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such erasure job, or subject erasure is not enabled", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "This API key is over its rate limit; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The ledger is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("apiKey" = []))
)]
pub async fn erasure_status(
    State(state): State<AppState>,
    Caller(_): Caller,
    Path(job): Path<String>,
) -> Result<Json<ErasureStatus>, Problem> {
    let Some(subjects) = &state.subjects else {
        return Err(disabled());
    };
    let unknown = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-job",
            "No such erasure job",
            "no subject erasure has this id",
        )
    };
    if job.len() > 128
        || !job
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    {
        return Err(unknown());
    }
    let summary = match state.ledger.job(&job).await {
        Ok(j) if j.kind == JOB_KIND => j,
        Ok(_) | Err(ledger::Error::NotFound(_)) => return Err(unknown()),
        Err(e) => {
            tracing::warn!(error = %e, "the ledger failed reading an erasure job");
            return Err(ledger_unavailable());
        }
    };
    let mut out = ErasureStatus {
        job_id: job.clone(),
        status: summary.status.clone(),
        created_at: summary.created_at.clone(),
        updated_at: summary.updated_at.clone(),
        detail: None,
        receipt: None,
    };
    if summary.status == "done" {
        let receipts = erase::receipts(&state.ledger, &job).await.map_err(|e| {
            tracing::warn!(job = %job, error = %e, "an erasure's receipt could not be read");
            ledger_unavailable()
        })?;
        out.receipt = receipts
            .into_iter()
            .next()
            .and_then(|r| serde_json::to_value(r).ok());
        return Ok(Json(out));
    }
    if summary.status == "running" {
        let local = subjects.known().state.get(&job).cloned();
        match local {
            Some(Local::Queued) => out.status = "queued".into(),
            Some(Local::Running) => {}
            Some(Local::Failed(why)) => {
                out.status = "failed".into();
                out.detail = Some(why);
            }
            None => {
                out.detail = Some(
                    "not running in this process: another replica runs it, or the service stopped before it finished; POST the same request again to resume it"
                        .into(),
                )
            }
        }
    }
    Ok(Json(out))
}
