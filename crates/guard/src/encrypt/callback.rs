//! The KMS callback a tenant posts after a column-encryption change (spec §5): checked
//! against what cxguard itself asked for, so a change nobody ran through cxguard is
//! refused (and, with SYNC, rolled back by the tenant).
//!
//! A callback matches when its table and column set are those of an encryption job in
//! the journal that is either still running with its PATCH in flight (a SYNC callback
//! arrives before the PATCH returns, so its key version is not journaled yet: it must be
//! newer than every key version verified for the table before, and arrive before the
//! PATCH's journaled deadline) or done with exactly this key version (an ASYNC callback
//! that arrives after the job settled).
//!
//! Pure checks ([`Callback::parse`], [`permission_hash`]), one ledger lookup
//! ([`find_job`]) and the whole decision with its audit ([`Receiver::verify`]): a
//! [`Verdict`]. The HTTP side (the token, a verdict's status code and metric) is the
//! `server` crate's.

use std::collections::BTreeSet;

use ledger::{Details, JobStatus, Ledger, NewEntry, Outcome};
use serde_json::Value;

use super::{ALGORITHM, JOB_KIND};
use crate::Result;
use crate::sha256_hex;

/// Jobs looked at per status: a tenant calls back about a change just made.
const RECENT_JOBS: i64 = 50;

/// At most this many columns in one callback (a table has far fewer).
pub const MAX_COLUMNS: usize = 500;

/// A tenant's callback, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// The table the change was made to.
    pub table_id: String,
    /// The columns now encrypted, in the tenant's order.
    pub columns: Vec<String>,
    /// The key version the change produced.
    pub key_version: u64,
    /// The algorithm the tenant reports.
    pub algorithm: String,
}

/// One problem with a callback body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The field (`tableId`, `columns[2]`, `complianceCheck.algorithm`, …).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// `columns`: one to [`MAX_COLUMNS`] distinct column names.
fn columns(v: Option<&Value>, bad: &mut dyn FnMut(&str, &str)) -> Vec<String> {
    let mut columns = Vec::new();
    match v {
        Some(Value::Array(a)) if a.is_empty() => bad("columns", "must name at least one column"),
        Some(Value::Array(a)) if a.len() > MAX_COLUMNS => bad(
            "columns",
            &format!("has {} entries; at most {MAX_COLUMNS}", a.len()),
        ),
        Some(Value::Array(a)) => {
            for (i, c) in a.iter().enumerate() {
                match c.as_str() {
                    Some(s) if ledger::details::check_identifier("column", s).is_ok() => {
                        if columns.iter().any(|x| x == s) {
                            bad(&format!("columns[{i}]"), "names a column twice");
                        } else {
                            columns.push(s.to_string());
                        }
                    }
                    _ => bad(&format!("columns[{i}]"), "must be a column name"),
                }
            }
        }
        None | Some(Value::Null) => bad("columns", "is required"),
        Some(_) => bad("columns", "must be an array of column names"),
    }
    columns
}

impl Callback {
    /// Validates a callback body, reporting every problem at once.
    pub fn parse(body: &serde_json::Map<String, Value>) -> std::result::Result<Self, Vec<Invalid>> {
        let mut errors = Vec::new();
        let mut bad = |field: &str, message: &str| {
            errors.push(Invalid {
                field: field.to_string(),
                message: message.to_string(),
            })
        };
        let table_id = match body.get("tableId") {
            Some(Value::String(s)) if ledger::details::check_identifier("tableId", s).is_ok() => {
                Some(s.clone())
            }
            Some(Value::String(_)) => {
                bad("tableId", "must be a table id (A–Z a–z 0–9 . _ - :)");
                None
            }
            None | Some(Value::Null) => {
                bad("tableId", "is required");
                None
            }
            Some(_) => {
                bad("tableId", "must be a string");
                None
            }
        };
        let columns = columns(body.get("columns"), &mut bad);
        let key_version = match body.get("keyVersion") {
            Some(v) => match v.as_u64().filter(|n| *n >= 1) {
                Some(n) => Some(n),
                None => {
                    bad("keyVersion", "must be a whole number of at least 1");
                    None
                }
            },
            None => {
                bad("keyVersion", "is required");
                None
            }
        };
        let algorithm = match body.get("complianceCheck").map(|c| c.get("algorithm")) {
            Some(Some(Value::String(s))) if s.len() <= 64 => Some(s.clone()),
            Some(Some(Value::String(_))) => {
                bad("complianceCheck.algorithm", "is longer than 64 characters");
                None
            }
            _ => {
                bad("complianceCheck.algorithm", "is required (a string)");
                None
            }
        };
        match (table_id, key_version, algorithm, errors.is_empty()) {
            (Some(table_id), Some(key_version), Some(algorithm), true) => Ok(Callback {
                table_id,
                columns,
                key_version,
                algorithm,
            }),
            _ => Err(errors),
        }
    }

    /// Whether the tenant reports the one algorithm cxguard asks for.
    pub fn algorithm_ok(&self) -> bool {
        self.algorithm == ALGORITHM
    }

    /// The tutorial's permission hash: SHA-256 of `{tableId}:{keyVersion}:{columns}` as
    /// hex, where `{columns}` is the number of columns (kept for compatibility with
    /// receivers written against the tutorial).
    pub fn permission_hash(&self) -> String {
        permission_hash(&self.table_id, self.key_version, self.columns.len())
    }

    /// The audit entry of a verified callback: table, columns, key version, algorithm,
    /// the job it matched and the tenant's idempotency key as a digest.
    pub fn audit_entry(&self, actor: &str, found: &Found, request_key: &str) -> Result<NewEntry> {
        Ok(NewEntry::new(
            actor,
            AUDIT_OPERATION,
            &self.table_id,
            Outcome::Success,
            Details::new()
                .id("job", &found.job_id)?
                .id("datastore", &found.datastore)?
                .ids("columns", &self.columns)?
                .count("key_version", self.key_version)
                .label("algorithm", ALGORITHM)
                .sha256("callback_key_sha256", &sha256_hex(request_key))?,
        )?)
    }
}

/// The audit operation of a verified KMS callback.
pub const AUDIT_OPERATION: &str = "datastore.kms_verified";

/// `SHA-256("{table_id}:{key_version}:{column_count}")` as lowercase hex.
pub fn permission_hash(table_id: &str, key_version: u64, column_count: usize) -> String {
    sha256_hex(&format!("{table_id}:{key_version}:{column_count}"))
}

/// The encryption job a callback matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The job's id.
    pub job_id: String,
    /// The data store of the table.
    pub datastore: String,
}

/// Why a callback matched no job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmatched {
    /// No recent encryption job for this table and these columns.
    NoJob,
    /// The key version is not newer than one already verified for the table (a replay).
    StaleKeyVersion {
        /// The newest key version verified for the table.
        newest: u64,
    },
    /// The job is still running but its PATCH is not in flight: its journaled deadline
    /// has passed (the PATCH was lost in a crash), so no callback can belong to it.
    NotInFlight {
        /// The running job.
        job_id: String,
        /// When its PATCH had to have ended (RFC 3339).
        deadline: String,
    },
}

fn column_set(result: &Value) -> Option<BTreeSet<String>> {
    result["columns"]
        .as_array()?
        .iter()
        .map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

/// The journaled encryption job `cb` reports on, if cxguard asked for it.
pub async fn find_job(
    ledger: &Ledger,
    cb: &Callback,
) -> Result<std::result::Result<Found, Unmatched>> {
    let wanted: BTreeSet<String> = cb.columns.iter().cloned().collect();
    let for_table = |j: &ledger::JobSummary| j.params["table"].as_str() == Some(&cb.table_id);
    let intent = |id: String| async move {
        let items = ledger.job_items(&id, None, 10).await?;
        Ok::<_, crate::Error>(
            items
                .into_iter()
                .find(|i| i.key == super::apply::ITEM)
                .and_then(|i| i.result),
        )
    };
    let found = |j: &ledger::JobSummary| Found {
        job_id: j.id.clone(),
        datastore: j.params["datastore"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };

    // Done jobs: an exact key version matches; the newest one bounds a running job's.
    let mut newest = 0u64;
    for j in ledger
        .jobs_of(JOB_KIND, JobStatus::Done, RECENT_JOBS)
        .await?
    {
        if !for_table(&j) {
            continue;
        }
        let Some(r) = intent(j.id.clone()).await? else {
            continue;
        };
        let version = r["keyVersion"].as_u64().unwrap_or(0);
        if version == cb.key_version && column_set(&r).as_ref() == Some(&wanted) {
            return Ok(Ok(found(&j)));
        }
        newest = newest.max(version);
    }
    for j in ledger
        .jobs_of(JOB_KIND, JobStatus::Running, RECENT_JOBS)
        .await?
    {
        if !for_table(&j) {
            continue;
        }
        let Some(r) = intent(j.id.clone()).await? else {
            continue;
        };
        if column_set(&r).as_ref() == Some(&wanted) {
            if cb.key_version <= newest {
                return Ok(Err(Unmatched::StaleKeyVersion { newest }));
            }
            let deadline = r["patchDeadline"].as_str().unwrap_or_default().to_string();
            if !in_flight(&deadline, time::OffsetDateTime::now_utc()) {
                return Ok(Err(Unmatched::NotInFlight {
                    job_id: j.id.clone(),
                    deadline,
                }));
            }
            return Ok(Ok(found(&j)));
        }
    }
    Ok(Err(Unmatched::NoJob))
}

/// Whether a PATCH whose journaled deadline is `deadline` may still be in flight at
/// `now`; a missing or unreadable deadline is not.
fn in_flight(deadline: &str, now: time::OffsetDateTime) -> bool {
    time::OffsetDateTime::parse(deadline, &time::format_description::well_known::Rfc3339)
        .is_ok_and(|d| now <= d)
}

/// What a callback comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A change cxguard asked for, audited now (`datastore.kms_verified`).
    Verified(Found),
    /// The same change (key version and columns) was verified already: a retry or a
    /// replay, answered the same and audited once.
    Repeat,
    /// Refused, and audited (`datastore.kms_refused`) with its reason.
    Refused(Refusal),
}

/// Why a callback is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The tenant reports another algorithm than the one cxguard asks for.
    WrongAlgorithm,
    /// No encryption job of cxguard's asked for this change.
    NotRequested(Unmatched),
}

impl Refusal {
    /// What the caller is told, naming the table (no secret, no person's data).
    pub fn detail(&self, cb: &Callback) -> String {
        match self {
            Refusal::WrongAlgorithm => format!(
                "complianceCheck.algorithm must be {ALGORITHM}; cxguard never asks for another"
            ),
            Refusal::NotRequested(Unmatched::NoJob) => format!(
                "cxguard has no encryption job for table {} with these {} column(s); a change made outside cxguard is refused",
                cb.table_id,
                cb.columns.len()
            ),
            Refusal::NotRequested(Unmatched::StaleKeyVersion { newest }) => format!(
                "key version {} is not newer than version {newest}, already verified for table {}",
                cb.key_version, cb.table_id
            ),
            Refusal::NotRequested(Unmatched::NotInFlight { job_id, deadline }) => format!(
                "encryption job {job_id} for table {} has no PATCH in flight (its deadline was {deadline}); resume the job with `cxguard datastore encrypt` and the tenant calls back again",
                cb.table_id
            ),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Refusal::WrongAlgorithm => "wrong_algorithm",
            Refusal::NotRequested(_) => "no_matching_job",
        }
    }
}

impl Callback {
    /// The key one change is audited under: the tenant's idempotency key when it sent
    /// one (at most 256 characters), else one derived from what it reports, so a tenant
    /// that sends none still gets one audit entry per change.
    pub fn request_key(&self, tenant_key: Option<&str>) -> String {
        match tenant_key.filter(|k| !k.is_empty() && k.len() <= 256) {
            Some(k) => format!("tenant:{k}"),
            None => {
                let mut cols = self.columns.clone();
                cols.sort();
                format!(
                    "derived:{}:{}:{}",
                    self.table_id,
                    self.key_version,
                    cols.join(",")
                )
            }
        }
    }
}

/// The KMS callback's decisions, one check-and-record at a time in this process, so two
/// deliveries of one callback are audited once.
#[derive(Debug, Default)]
pub struct Receiver {
    one: tokio::sync::Mutex<()>,
}

impl Receiver {
    /// Decides `cb` (from the caller `actor`, under `request_key`) and audits the
    /// outcome through `audit`: a refusal as `datastore.kms_refused` (a failure to record
    /// it is logged, not fatal: the refusal stands), a verified change as
    /// `datastore.kms_verified`, a repeat not again.
    pub async fn verify<A: crate::audit::AuditSink>(
        &self,
        ledger: &Ledger,
        audit: &A,
        cb: &Callback,
        actor: &str,
        request_key: &str,
    ) -> Result<Verdict> {
        if !cb.algorithm_ok() {
            return Ok(refuse(audit, cb, actor, Refusal::WrongAlgorithm).await);
        }
        let _one = self.one.lock().await;
        if verified_before(ledger, cb).await? {
            return Ok(Verdict::Repeat);
        }
        match find_job(ledger, cb).await? {
            Err(why) => Ok(refuse(audit, cb, actor, Refusal::NotRequested(why)).await),
            Ok(found) => {
                audit
                    .append(cb.audit_entry(actor, &found, request_key)?)
                    .await?;
                Ok(Verdict::Verified(found))
            }
        }
    }
}

/// Whether this change (key version and columns, which name one change of one table)
/// was verified already: a retry under the same tenant key, or a replay under another.
async fn verified_before(ledger: &Ledger, cb: &Callback) -> Result<bool> {
    let earlier = ledger
        .entries(&ledger::Filter {
            operation: Some(AUDIT_OPERATION.into()),
            target: Some(cb.table_id.clone()),
            ..Default::default()
        })
        .await?;
    let columns: BTreeSet<&str> = cb.columns.iter().map(String::as_str).collect();
    Ok(earlier.iter().any(|e| {
        e.details["key_version"].as_u64() == Some(cb.key_version)
            && e.details["columns"].as_array().is_some_and(|a| {
                a.iter().filter_map(|c| c.as_str()).collect::<BTreeSet<_>>() == columns
            })
    }))
}

/// Records a refused callback that carried a valid token: someone changed encryption in
/// the tenant without cxguard, or something posed as the tenant with a leaked token.
async fn refuse<A: crate::audit::AuditSink>(
    audit: &A,
    cb: &Callback,
    actor: &str,
    why: Refusal,
) -> Verdict {
    let entry = Details::new()
        .ids("columns", &cb.columns)
        .map(|d| {
            d.count("key_version", cb.key_version)
                .label("reason", why.reason())
        })
        .and_then(|d| {
            NewEntry::new(
                actor,
                "datastore.kms_refused",
                &cb.table_id,
                Outcome::Failure,
                d,
            )
        });
    let recorded = match entry {
        Ok(e) => audit.append(e).await.map(drop),
        Err(e) => Err(e),
    };
    if let Err(e) = recorded {
        tracing::error!(error = %e, table = %cb.table_id, "a refused KMS callback could not be recorded");
    }
    Verdict::Refused(why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_patch_is_in_flight_only_until_its_deadline() {
        let now = time::macros::datetime!(2026-12-05 10:00:00 UTC);
        assert!(in_flight("2026-12-05T10:00:30Z", now));
        assert!(!in_flight("2026-12-05T09:59:59Z", now));
        assert!(!in_flight("", now));
        assert!(!in_flight("not a time", now));
    }

    fn parse(v: Value) -> std::result::Result<Callback, Vec<Invalid>> {
        Callback::parse(v.as_object().unwrap())
    }

    #[test]
    fn a_good_callback_parses_and_hashes_like_the_tutorial() {
        let cb = parse(
            json!({"tableId": "tbl-1", "columns": ["email", "phone"], "keyVersion": 2,
            "complianceCheck": {"algorithm": "AES-256-GCM"}}),
        )
        .unwrap();
        assert!(cb.algorithm_ok());
        // echo -n "tbl-1:2:2" | sha256sum
        assert_eq!(
            cb.permission_hash(),
            "ab93269696c891b9c5f242bdbbcd772f0ef697dfe02e2ace5b8b670821de79d1"
        );
    }

    #[test]
    fn every_problem_is_named() {
        let errors = parse(json!({"tableId": "a b", "columns": ["x", "x", 3], "keyVersion": 0}))
            .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "tableId",
                "columns[1]",
                "columns[2]",
                "keyVersion",
                "complianceCheck.algorithm"
            ]
        );
    }

    #[test]
    fn another_algorithm_is_not_ok() {
        let cb = parse(json!({"tableId": "t", "columns": ["c"], "keyVersion": 1,
            "complianceCheck": {"algorithm": "AES-128-CBC"}}))
        .unwrap();
        assert!(!cb.algorithm_ok());
    }
}
