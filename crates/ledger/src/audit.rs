//! The audit log: an append-only hash chain. Each entry's `hash` is SHA-256 over a
//! canonical encoding of the entry (length-prefixed fields, its `prev_hash` included), so
//! an edit, a deletion, an insertion or a reordering breaks the chain at that entry.
//! Signed checkpoints (every N entries and at the end of every job) and a signed head
//! (moved at every append) make a rewritten chain or a truncated tail detectable too:
//! forging them needs the signing key, which never enters the database.

use sqlx::Row;

use crate::Ledger;
use crate::store::on_backend;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::details::{Details, check_identifier};
use crate::error::{Error, Result};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How an audited operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It began (a job's start).
    Started,
    /// It did what it was asked.
    Success,
    /// It failed.
    Failure,
    /// There was nothing to do.
    Skipped,
    /// It was undone.
    RolledBack,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Started => "started",
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Skipped => "skipped",
            Outcome::RolledBack => "rolled_back",
        }
    }
}

/// An entry to append. The operation is a name fixed in the program; actor and target are
/// identifiers; details are typed (see [`Details`]).
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Who did it (an identifier, never a person's data).
    pub actor: String,
    /// What was done, a name fixed in the program (`contact.anonymize`).
    pub operation: &'static str,
    /// What it was done to (an id).
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Typed details, checked to hold no secret or raw personal data.
    pub details: Details,
}

impl NewEntry {
    /// An entry, with `actor` and `target` checked to be identifiers.
    pub fn new(
        actor: &str,
        operation: &'static str,
        target: &str,
        outcome: Outcome,
        details: Details,
    ) -> Result<Self> {
        check_identifier("actor", actor)?;
        check_identifier("target", target)?;
        Ok(NewEntry {
            actor: actor.to_string(),
            operation,
            target: target.to_string(),
            outcome,
            details,
        })
    }
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Its position in the chain, from 1.
    pub seq: i64,
    /// When it was appended (UTC, microseconds).
    pub at: String,
    /// Who did it.
    pub actor: String,
    /// What was done.
    pub operation: String,
    /// What it was done to.
    pub target: String,
    /// How it ended.
    pub outcome: String,
    /// Its details (JSON).
    pub details: Value,
    /// The hash of the entry before it.
    pub prev_hash: String,
    /// Its hash, over every field above.
    pub hash: String,
}

/// A signed checkpoint: the signature covers `(seq, hash, at)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The entry it covers.
    pub seq: i64,
    /// That entry's hash.
    pub hash: String,
    /// When it was signed.
    pub at: String,
    /// The id of the signing key.
    pub key_id: String,
    /// The Ed25519 signature, base64.
    pub signature: String,
}

/// The fields an entry's hash covers, as stored.
pub(crate) struct HashInput<'a> {
    pub seq: i64,
    pub at: &'a str,
    pub actor: &'a str,
    pub operation: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
    pub details: &'a str,
    pub prev_hash: &'a str,
}

pub(crate) fn entry_hash(e: &HashInput<'_>) -> String {
    crate::hex(&entry_digest(e))
}

/// The SHA-256 of an entry, as stored (32 bytes): `verify` compares it with the stored
/// hash without an allocation per entry.
pub(crate) fn entry_digest(e: &HashInput<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cxguard-audit-entry-v1\0");
    let mut digits = [0u8; 20];
    let seq = decimal(e.seq, &mut digits);
    h.update((seq.len() as u64).to_be_bytes());
    h.update(seq);
    for part in [
        e.at,
        e.actor,
        e.operation,
        e.target,
        e.outcome,
        e.details,
        e.prev_hash,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// A digest as 64 lowercase hex digits on the stack: the next entry's `prev_hash`.
pub(crate) fn hex64(d: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in d.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
    }
    out
}

/// `n` in decimal, as `n.to_string()` writes it, into `buf`.
fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let negative = n < 0;
    let mut v = n.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if negative {
        // A sequence number is never negative; written as to_string would, for all that.
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// The hash `entry` should have, recomputed from its fields (`details_text` as stored).
/// Offered so that other tools can check an exported log.
pub fn recompute_hash(entry: &AuditEntry, details_text: &str) -> String {
    entry_hash(&HashInput {
        seq: entry.seq,
        at: &entry.at,
        actor: &entry.actor,
        operation: &entry.operation,
        target: &entry.target,
        outcome: &entry.outcome,
        details: details_text,
        prev_hash: &entry.prev_hash,
    })
}

/// The ids of details texts this process has stored (or seen committed) in
/// `audit_details`, so the entries of a job share one row. Only committed ids enter it;
/// two processes storing the same text make two rows, which is harmless.
#[derive(Debug, Default)]
pub(crate) struct DetailsIds(std::sync::Mutex<std::collections::HashMap<String, i64>>);

impl DetailsIds {
    /// Texts remembered at most; past it the map starts again.
    const MAX: usize = 4_096;

    pub fn get(&self, text: &str) -> Option<i64> {
        self.0.lock().ok()?.get(text).copied()
    }

    /// Remembers ids whose rows have committed.
    pub fn remember(&self, fresh: std::collections::HashMap<String, i64>) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() + fresh.len() > Self::MAX {
                m.clear();
            }
            m.extend(fresh);
        }
    }
}

/// Filters for `audit show` / `audit export`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// An operation name, or a prefix ending in `*` (`secret.rotate.*`).
    pub operation: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// RFC 3339 bounds on `at`, inclusive since, exclusive until.
    pub since: Option<String>,
    /// Only entries before this time.
    pub until: Option<String>,
    /// Only entries after this sequence number.
    pub after_seq: Option<i64>,
    /// At most this many.
    pub limit: Option<i64>,
}

impl Filter {
    /// Normalises the time bounds to the stored format so they compare as text.
    pub fn validate(mut self) -> Result<Self> {
        for (name, v) in [("since", &mut self.since), ("until", &mut self.until)] {
            if let Some(s) = v.as_ref() {
                let t =
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .map_err(|e| {
                            Error::Invalid(format!("--{name}: {s:?} is not an RFC 3339 time: {e}"))
                        })?;
                *v = Some(crate::timestamp(t));
            }
        }
        Ok(self)
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// Entries checked.
    pub entries: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// The last entry's sequence number.
    pub last_seq: i64,
    /// The hash of entry `last_seq`: with it, `SEQ:HASH` is a head an auditor can keep
    /// and give back to `audit verify --expect-head`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_hash: Option<String>,
    /// The id of the key verified against.
    pub key_id: String,
    /// `None` when intact; otherwise the first entry at fault and why.
    pub broken: Option<Broken>,
}

/// Where the chain breaks, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Broken {
    /// The first entry at fault.
    pub seq: i64,
    /// What is wrong with it.
    pub reason: String,
}

impl Verdict {
    /// Whether nothing was found wrong.
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

// ---------------------------------------------------------------------- reading

impl Ledger {
    /// Entries matching `filter`, in order.
    pub async fn entries(&self, filter: &Filter) -> Result<Vec<AuditEntry>> {
        self.read_entries(filter, false).await
    }

    /// With `raw`, `details` is the stored text as a JSON string, exactly as hashed.
    pub(crate) async fn read_entries(&self, filter: &Filter, raw: bool) -> Result<Vec<AuditEntry>> {
        // `prev_hash` is not stored: it is the hash of the entry before.
        let mut sql = String::from(
            "SELECT e.seq, e.at, e.actor, e.operation, e.target, e.outcome, d.details, e.hash, \
             (SELECT p.hash FROM audit_entries p WHERE p.seq = e.seq - 1) AS prev_hash \
             FROM audit_entries e LEFT JOIN audit_details d ON d.id = e.details_id WHERE e.seq > $1",
        );
        let mut binds: Vec<String> = Vec::new();
        let mut n = 2;
        if let Some(op) = &filter.operation {
            match op.strip_suffix('*') {
                Some(prefix) => {
                    sql.push_str(&format!(
                        " AND substr(e.operation, 1, {}) = ${n}",
                        prefix.len()
                    ));
                    binds.push(prefix.to_string());
                }
                None => {
                    sql.push_str(&format!(" AND e.operation = ${n}"));
                    binds.push(op.clone());
                }
            }
            n += 1;
        }
        for (col, op, v) in [
            ("target", "=", &filter.target),
            ("at", ">=", &filter.since),
            ("at", "<", &filter.until),
        ] {
            if let Some(v) = v {
                sql.push_str(&format!(" AND e.{col} {op} ${n}"));
                binds.push(v.clone());
                n += 1;
            }
        }
        sql.push_str(&format!(
            " ORDER BY e.seq LIMIT {}",
            filter.limit.unwrap_or(i64::MAX / 2)
        ));
        on_backend!(&self.pool, p => {
            // Only fixed column names, operators and numbers are formatted in; values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(filter.after_seq.unwrap_or(0));
            for b in &binds {
                q = q.bind(b);
            }
            let rows = q.fetch_all(p).await?;
            rows.iter().map(|r| {
                let seq: i64 = r.try_get("seq")?;
                let details: String = r.try_get::<Option<String>, _>("details")?.unwrap_or_default();
                let prev: Option<Vec<u8>> = r.try_get("prev_hash")?;
                Ok(AuditEntry {
                    seq,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    operation: r.try_get("operation")?,
                    target: r.try_get("target")?,
                    outcome: r.try_get("outcome")?,
                    details: if raw { Value::String(details) } else { serde_json::from_str(&details).unwrap_or(Value::String(details)) },
                    prev_hash: match prev {
                        Some(h) => crate::hex(&h),
                        None if seq == 1 => GENESIS.to_string(),
                        None => String::new(),
                    },
                    hash: crate::hex(&r.try_get::<Vec<u8>, _>("hash")?),
                })
            }).collect()
        })
    }

    /// Every signed checkpoint, in order.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        on_backend!(&self.pool, p => {
            let rows = sqlx::query("SELECT seq, hash, at, key_id, signature FROM audit_checkpoints ORDER BY seq").fetch_all(p).await?;
            rows.iter().map(|r| Ok(Checkpoint {
                seq: r.try_get("seq")?, hash: r.try_get("hash")?, at: r.try_get("at")?,
                key_id: r.try_get("key_id")?, signature: r.try_get("signature")?,
            })).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(details: &'a str, prev: &'a str) -> HashInput<'a> {
        HashInput {
            seq: 1,
            at: "2026-01-01T00:00:00.000000Z",
            actor: "a",
            operation: "op",
            target: "t",
            outcome: "success",
            details,
            prev_hash: prev,
        }
    }

    #[test]
    fn every_field_and_the_boundaries_between_them_count() {
        let base = entry_hash(&input("{}", GENESIS));
        assert_eq!(base.len(), 64);
        assert_ne!(base, entry_hash(&input("{ }", GENESIS)));
        assert_ne!(base, entry_hash(&input("{}", &"1".repeat(64))));
        // Moving a character across a field boundary changes the hash (length prefixes).
        let mut a = input("{}", GENESIS);
        a.actor = "ab";
        a.operation = "c";
        let mut b = input("{}", GENESIS);
        b.actor = "a";
        b.operation = "bc";
        assert_ne!(entry_hash(&a), entry_hash(&b));
    }

    #[test]
    fn entries_refuse_raw_values_as_targets() {
        assert!(
            NewEntry::new(
                "cli",
                "contact.anonymize",
                "ann@example.com",
                Outcome::Success,
                Details::new()
            )
            .is_err()
        );
    }
}
