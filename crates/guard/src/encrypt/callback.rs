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
//! Pure checks ([`Callback::parse`], [`permission_hash`]) and one ledger lookup
//! ([`find_job`]); the HTTP side (token, status codes, audit) is the `server` crate's.

use std::collections::BTreeSet;

use ledger::{Details, JobStatus, Ledger, NewEntry, Outcome};
use serde_json::Value;

use super::{ALGORITHM, JOB_KIND};
use crate::Result;
use crate::sha256_hex;

/// Jobs looked at per status: a tenant calls back about a change just made.
const RECENT_JOBS: i64 = 50;

/// At most this many columns in one callback (a table has far fewer).
const MAX_COLUMNS: usize = 500;

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
        let mut columns = Vec::new();
        match body.get("columns") {
            Some(Value::Array(a)) if a.is_empty() => {
                bad("columns", "must name at least one column")
            }
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
