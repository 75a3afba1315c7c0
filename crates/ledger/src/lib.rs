//! ledger: cxguard's durable record, on SQLite or PostgreSQL.
//!
//! Three things that must commit together, so they live in one store:
//! - the **audit log**, a hash chain with signed checkpoints and a signed head
//!   ([`audit`]), verifiable offline with the public key;
//! - the **job journal**, so a long job resumes after a crash without losing or
//!   repeating an effect ([`journal`]);
//! - the **webhook outbox**, so every event reaches its system at least once
//!   ([`outbox`], delivered by [`deliver`], signed per [`webhooks`]).
//!
//! Every write goes through [`Ledger::commit`] with a [`Batch`]: one transaction, the
//! chain's head read under a lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL an advisory
//! lock), so several processes appending to one store keep one valid chain.
//!
//! Not here: what the protections do, or HTTP status codes.

pub mod anchor;
pub mod appender;
pub mod audit;
pub mod deliver;
pub mod details;
mod error;
pub mod journal;
pub mod outbox;
pub mod signing;
mod store;
pub mod webhooks;

use std::sync::Arc;

use serde_json::Value;
use sqlx::Row;

pub use audit::{AuditEntry, Checkpoint, Filter, NewEntry, Outcome, Verdict};
pub use details::Details;
pub use error::{Error, Result};
pub use journal::{Claim, ItemOutcome, ItemState, JobItem, JobStatus, JobSummary};
pub use outbox::{EventKind, Leased, NewEvent, OutboxEvent, OutboxStatus, Settlement};
pub use signing::{AuditKey, PublicKey};
pub use store::redact;

use crate::audit::{Broken, GENESIS, HashInput, entry_hash};
use crate::store::{Pool, begin_write, on_backend};

/// The advisory lock that serialises appends to the chain on PostgreSQL.
const AUDIT_LOCK: i64 = 7_243_002;

/// Audit rows written by one INSERT statement. Not more: sqlx-sqlite looks each bound
/// parameter's name up in a list as long as the statement's (quadratic), and past ~30
/// rows that costs more than the round trips saved (measured: 1 row 29.7k, 8 rows
/// 42.8k, 25 rows 49.3k, 60 rows 46.7k appends/s).
const ROWS_PER_INSERT: usize = 32;

/// Checkpoint every this many entries unless configured otherwise.
pub const DEFAULT_CHECKPOINT_EVERY: i64 = 1000;

/// The stored time format: UTC with microseconds, so it sorts as text.
pub fn timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

fn now() -> String {
    timestamp(time::OffsetDateTime::now_utc())
}

pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    if getrandom::fill(&mut b).is_err() {
        // Not security-relevant (ids and lease tokens): fall back to time-derived bytes.
        let n = now_ms() as u64 ^ (std::process::id() as u64) << 32;
        for (i, x) in b.iter_mut().enumerate() {
            *x = (n >> ((i % 8) * 8)) as u8 ^ i as u8;
        }
    }
    hex(&b)
}

/// Lowercase hex of `bytes`, in one allocation: audit hashes, key ids and random ids
/// here, digests and pseudonyms in `guard`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Where the signing key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// No key: the ledger can be read and verified, not written.
    None,
    /// A key file; created (mode 0600) if missing and the ledger has never been signed.
    File(std::path::PathBuf),
    /// A key in memory (tests, benchmarks).
    Key(Arc<AuditKey>),
}

/// Everything one transaction writes.
#[derive(Debug, Default)]
pub struct Batch {
    pub audit: Vec<NewEntry>,
    pub events: Vec<NewEvent>,
    pub new_job: Option<NewJob>,
    /// Items to settle, each with its outcome.
    pub items: Vec<ItemSettle>,
    pub job_status: Option<(String, JobStatus)>,
    /// Sign a checkpoint at the end of this batch (the end of a job).
    pub checkpoint: bool,
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub kind: &'static str,
    pub actor: String,
    pub params: Details,
    pub items: Vec<String>,
    /// What identifies "the same job" for an automatic resume (e.g. a hash of the
    /// policy and the selection); `None` if jobs of this kind never resume by themselves.
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ItemSettle {
    pub job_id: String,
    pub key: String,
    pub outcome: ItemOutcome,
}

/// What a batch appended.
#[derive(Debug, Default)]
pub struct Committed {
    pub entries: Vec<AuditEntry>,
    pub checkpoint: Option<Checkpoint>,
    pub event_ids: Vec<String>,
}

#[derive(Clone)]
pub struct Ledger {
    pool: Pool,
    key: Option<Arc<AuditKey>>,
    checkpoint_every: i64,
    shown: String,
    /// Where each signed checkpoint is also written, outside the database.
    anchor: Option<Arc<anchor::AnchorFile>>,
    /// Announce each signed checkpoint as an `audit.head` event for a witness system.
    witness: bool,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("store", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens (creating if needed) the store at `url` and loads the signing key.
    pub async fn open(url: &str, key: KeySource) -> Result<Self> {
        Self::open_in(url, key, store::OpenMode::Create).await
    }

    /// Opens a ledger that must already exist; creates nothing. For reading and
    /// verifying, where a missing ledger is a finding, not a fresh start.
    pub async fn open_existing(url: &str, key: KeySource) -> Result<Self> {
        Self::open_in(url, key, store::OpenMode::Existing).await
    }

    async fn open_in(url: &str, key: KeySource, mode: store::OpenMode) -> Result<Self> {
        let pool = store::open(url, mode).await?;
        let mut ledger = Ledger {
            pool,
            key: None,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            shown: redact(url),
            anchor: None,
            witness: false,
        };
        let signed_by = ledger.signed_by().await?;
        ledger.key = match key {
            KeySource::None => None,
            KeySource::Key(k) => Some(k),
            KeySource::File(path) => {
                if path.exists() {
                    Some(Arc::new(AuditKey::load(&path)?))
                } else if let Some(id) = &signed_by {
                    return Err(Error::Key(format!(
                        "audit signing key {} is missing, but this ledger was signed with key {id}; restore the key file (a new key would break verification)",
                        path.display()
                    )));
                } else {
                    let k = AuditKey::create(&path)?;
                    tracing::info!(path = %path.display(), key_id = k.key_id(), "created the audit signing key");
                    Some(Arc::new(k))
                }
            }
        };
        if let (Some(k), Some(id)) = (&ledger.key, &signed_by)
            && k.key_id() != id
        {
            return Err(Error::Key(format!(
                "this ledger is signed with key {id}, but the configured key is {}; use the ledger's key",
                k.key_id()
            )));
        }
        Ok(ledger)
    }

    pub fn with_checkpoint_every(mut self, n: i64) -> Self {
        self.checkpoint_every = n.max(1);
        self
    }

    /// Writes every signed checkpoint to `file` too (see [`anchor`]).
    pub fn with_anchor(mut self, file: anchor::AnchorFile) -> Self {
        self.anchor = Some(Arc::new(file));
        self
    }

    /// Enqueues an `audit.head` event (kind [`EventKind::Witness`]) with each signed
    /// checkpoint, in the checkpoint's own transaction.
    pub fn with_witness(mut self, on: bool) -> Self {
        self.witness = on;
        self
    }

    /// The anchor file, if one is configured.
    pub fn anchor(&self) -> Option<&anchor::AnchorFile> {
        self.anchor.as_deref()
    }

    /// The store's URL with any password hidden.
    pub fn location(&self) -> &str {
        &self.shown
    }

    pub fn is_postgres(&self) -> bool {
        self.pool.is_postgres()
    }

    pub fn public_key(&self) -> Option<PublicKey> {
        self.key.as_ref().map(|k| k.public())
    }

    /// The key id the ledger's head was signed with, if it has entries.
    async fn signed_by(&self) -> Result<Option<String>> {
        on_backend!(&self.pool, p => {
            let row = sqlx::query("SELECT key_id FROM audit_head WHERE id = 1").fetch_optional(p).await?;
            Ok(row.map(|r| r.try_get::<String, _>("key_id")).transpose()?)
        })
    }

    fn key(&self) -> Result<&AuditKey> {
        self.key.as_deref().ok_or_else(|| {
            Error::Key(
                "this ledger was opened without a signing key: it can be read, not written".into(),
            )
        })
    }

    // ------------------------------------------------------------------ writing

    /// Appends one audit entry on its own.
    pub async fn append(&self, entry: NewEntry) -> Result<AuditEntry> {
        let mut c = self
            .commit(Batch {
                audit: vec![entry],
                ..Default::default()
            })
            .await?;
        Ok(c.entries.remove(0))
    }

    /// Signs a checkpoint at the current head now.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        Ok(self
            .commit(Batch {
                checkpoint: true,
                ..Default::default()
            })
            .await?
            .checkpoint)
    }

    /// Enqueues one event on its own.
    pub async fn enqueue(&self, event: NewEvent) -> Result<String> {
        let mut c = self
            .commit(Batch {
                events: vec![event],
                ..Default::default()
            })
            .await?;
        Ok(c.event_ids.remove(0))
    }

    /// Writes a batch in one transaction.
    pub async fn commit(&self, batch: Batch) -> Result<Committed> {
        let key = if batch.audit.is_empty() && !batch.checkpoint && batch.new_job.is_none() {
            None
        } else {
            Some(self.key()?)
        };
        let pg = self.pool.is_postgres();
        let every = self.checkpoint_every;
        on_backend!(&self.pool, p => {
            let mut tx = begin_write!(self.pool, p);
            let mut out = Committed::default();
            let at = now();
            let mut audit = batch.audit;
            let mut batch_events_extra: Vec<NewEvent> = Vec::new();
            if let Some(job) = &batch.new_job {
                sqlx::query("INSERT INTO jobs (id, kind, actor, params, status, created_at, updated_at, fingerprint) VALUES ($1, $2, $3, $4, 'running', $5, $6, $7)")
                    .bind(&job.id).bind(job.kind).bind(&job.actor).bind(job.params.to_value().to_string()).bind(&at).bind(&at).bind(&job.fingerprint)
                    .execute(&mut *tx).await?;
                for (i, item) in job.items.iter().enumerate() {
                    sqlx::query("INSERT INTO job_items (job_id, item_key, position, state, updated_at) VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT DO NOTHING")
                        .bind(&job.id).bind(item).bind(i as i64).bind(&at)
                        .execute(&mut *tx).await?;
                }
                audit.insert(0, NewEntry::new(&job.actor, "job.start", &job.id, Outcome::Started,
                    job.params.clone().label("kind", job.kind).count("items", job.items.len() as u64))?);
            }
            for s in &batch.items {
                let (state, err, result) = match &s.outcome {
                    ItemOutcome::Done { result } => ("done", None, result.as_ref().map(Value::to_string)),
                    ItemOutcome::Failed { error } => ("failed", Some(error.clone()), None),
                };
                // A result recorded before the effect (an intent) stays unless replaced.
                let n = sqlx::query("UPDATE job_items SET state = $1, last_error = $2, result = COALESCE($3, result), updated_at = $4 WHERE job_id = $5 AND item_key = $6")
                    .bind(state).bind(err).bind(result).bind(&at).bind(&s.job_id).bind(&s.key)
                    .execute(&mut *tx).await?.rows_affected();
                if n == 0 {
                    return Err(Error::NotFound(format!("job {} has no item {}", s.job_id, s.key)));
                }
                sqlx::query("UPDATE jobs SET updated_at = $1 WHERE id = $2").bind(&at).bind(&s.job_id).execute(&mut *tx).await?;
            }
            if let Some((job, status)) = &batch.job_status {
                let n = sqlx::query("UPDATE jobs SET status = $1, updated_at = $2 WHERE id = $3")
                    .bind(status.as_str()).bind(&at).bind(job)
                    .execute(&mut *tx).await?.rows_affected();
                if n == 0 {
                    return Err(Error::NotFound(format!("no job {job}")));
                }
            }
            if let Some(key) = key {
                if pg {
                    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(AUDIT_LOCK).execute(&mut *tx).await?;
                }
                // Checked again here, under the lock, not only at open: another process
                // with another key may have signed the head since.
                let signer = sqlx::query("SELECT key_id FROM audit_head WHERE id = 1").fetch_optional(&mut *tx).await?;
                if let Some(r) = signer {
                    let id: String = r.try_get("key_id")?;
                    if id != key.key_id() {
                        return Err(Error::Key(format!(
                            "this ledger's head is signed with key {id}, but this process signs with {}; refusing to append (two processes with different keys on one ledger)",
                            key.key_id()
                        )));
                    }
                }
                let head = sqlx::query("SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *tx).await?;
                let (mut seq, mut prev) = match head {
                    Some(r) => (r.try_get::<i64, _>("seq")?, r.try_get::<String, _>("hash")?),
                    None => (0, GENESIS.to_string()),
                };
                let mut crossed = false;
                // The details as stored text, beside `out.entries` (which keeps them as JSON).
                let mut details_texts: Vec<String> = Vec::with_capacity(audit.len());
                for e in audit {
                    seq += 1;
                    let details = e.details.to_value();
                    let details_text = details.to_string();
                    let hash = entry_hash(&HashInput {
                        seq, at: &at, actor: &e.actor, operation: e.operation, target: &e.target,
                        outcome: e.outcome.as_str(), details: &details_text, prev_hash: &prev,
                    });
                    crossed |= seq % every == 0;
                    details_texts.push(details_text);
                    out.entries.push(AuditEntry {
                        seq, at: at.clone(), actor: e.actor, operation: e.operation.to_string(), target: e.target,
                        outcome: e.outcome.as_str().to_string(), details, prev_hash: prev.clone(), hash: hash.clone(),
                    });
                    prev = hash;
                }
                // Many rows per INSERT: one round trip per ROWS_PER_INSERT entries.
                for (entries, texts) in out.entries.chunks(ROWS_PER_INSERT).zip(details_texts.chunks(ROWS_PER_INSERT)) {
                    let mut sql = String::from("INSERT INTO audit_entries (seq, at, actor, operation, target, outcome, details, prev_hash, hash) VALUES ");
                    for i in 0..entries.len() {
                        let b = i * 9;
                        if i > 0 {
                            sql.push_str(", ");
                        }
                        sql.push_str(&format!("(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9));
                    }
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for (e, text) in entries.iter().zip(texts) {
                        q = q.bind(e.seq).bind(&e.at).bind(&e.actor).bind(&e.operation).bind(&e.target).bind(&e.outcome)
                            .bind(text).bind(&e.prev_hash).bind(&e.hash);
                    }
                    q.execute(&mut *tx).await?;
                }
                if !out.entries.is_empty() {
                    let sig = key.sign(&signing::head_message(seq, &prev, &at));
                    sqlx::query("INSERT INTO audit_head (id, seq, hash, at, key_id, signature) VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, at = excluded.at, key_id = excluded.key_id, signature = excluded.signature")
                        .bind(seq).bind(&prev).bind(&at).bind(key.key_id()).bind(&sig)
                        .execute(&mut *tx).await?;
                }
                if (crossed || batch.checkpoint) && seq > 0 {
                    let cp_at = sqlx::query("SELECT at FROM audit_entries WHERE seq = $1").bind(seq).fetch_one(&mut *tx).await?.try_get::<String, _>("at")?;
                    let signature = key.sign(&signing::checkpoint_message(seq, &prev, &cp_at));
                    sqlx::query("INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING")
                        .bind(seq).bind(&prev).bind(&cp_at).bind(key.key_id()).bind(&signature)
                        .execute(&mut *tx).await?;
                    let cp = Checkpoint { seq, hash: prev.clone(), at: cp_at, key_id: key.key_id().to_string(), signature };
                    if self.witness {
                        let data = Details::new().number("seq", cp.seq).sha256("hash", &cp.hash)?
                            .id("at", &cp.at)?.id("keyId", &cp.key_id)?.signature("signature", &cp.signature)?;
                        batch_events_extra.push(NewEvent::new(EventKind::Witness, "audit.head", data));
                    }
                    out.checkpoint = Some(cp);
                }
            }
            for ev in batch.events.into_iter().chain(batch_events_extra) {
                let id = format!("msg_{}", random_hex(12));
                sqlx::query("INSERT INTO outbox (id, kind, event_type, payload, status, attempts, next_attempt_ms, created_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6)")
                    .bind(&id).bind(ev.kind.as_str()).bind(ev.event_type).bind(ev.payload(&at)).bind(now_ms()).bind(&at)
                    .execute(&mut *tx).await?;
                out.event_ids.push(id);
            }
            tx.commit().await?;
            if let (Some(a), Some(cp)) = (&self.anchor, &out.checkpoint) {
                // File I/O off the async threads. The entries are committed: an anchor
                // that lags is advanced at the next checkpoint, and an error here would
                // only hide that they were.
                let (a, cp) = (a.clone(), cp.clone());
                let advanced = tokio::task::spawn_blocking(move || a.advance(&cp).map_err(|e| (a, e))).await;
                if let Ok(Err((a, e))) = advanced {
                    tracing::error!(anchor = %a.path().display(), error = %e, "could not advance the audit anchor");
                }
            }
            Ok(out)
        })
    }

    /// Checks that this ledger reaches `head` and holds the same hash there: a database
    /// restored from an older copy, or with entries removed, ends before it. `source`
    /// names where the head came from, for the message.
    pub async fn check_head(&self, seq: i64, hash: &str, source: &str) -> Result<Option<Broken>> {
        let last: i64 = on_backend!(&self.pool, p => {
            sqlx::query("SELECT COALESCE(MAX(seq), 0) AS n FROM audit_entries").fetch_one(p).await?.try_get::<i64, _>("n")?
        });
        if last < seq {
            return Ok(Some(Broken {
                seq,
                reason: format!(
                    "the ledger ends at entry {last}, but {source} records entry {seq}: entries were removed or an older copy of the ledger was restored"
                ),
            }));
        }
        let stored: Option<String> = on_backend!(&self.pool, p => {
            sqlx::query("SELECT hash FROM audit_entries WHERE seq = $1").bind(seq).fetch_optional(p).await?
                .map(|r| r.try_get::<String, _>("hash")).transpose()?
        });
        match stored {
            Some(h) if h == hash => Ok(None),
            Some(_) => Ok(Some(Broken {
                seq,
                reason: format!(
                    "entry {seq} holds another hash than {source} records: the chain was rewritten after it"
                ),
            })),
            None => Ok(Some(Broken {
                seq,
                reason: format!("entry {seq}, which {source} records, is missing"),
            })),
        }
    }

    // ------------------------------------------------------------------ audit: reading

    /// Entries matching `filter`, in order.
    pub async fn entries(&self, filter: &Filter) -> Result<Vec<AuditEntry>> {
        self.read_entries(filter, false).await
    }

    /// With `raw`, `details` is the stored text as a JSON string, exactly as hashed.
    async fn read_entries(&self, filter: &Filter, raw: bool) -> Result<Vec<AuditEntry>> {
        let mut sql = String::from(
            "SELECT seq, at, actor, operation, target, outcome, details, prev_hash, hash FROM audit_entries WHERE seq > $1",
        );
        let mut binds: Vec<String> = Vec::new();
        let mut n = 2;
        if let Some(op) = &filter.operation {
            match op.strip_suffix('*') {
                Some(prefix) => {
                    sql.push_str(&format!(
                        " AND substr(operation, 1, {}) = ${n}",
                        prefix.len()
                    ));
                    binds.push(prefix.to_string());
                }
                None => {
                    sql.push_str(&format!(" AND operation = ${n}"));
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
                sql.push_str(&format!(" AND {col} {op} ${n}"));
                binds.push(v.clone());
                n += 1;
            }
        }
        sql.push_str(&format!(
            " ORDER BY seq LIMIT {}",
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
                let details: String = r.try_get("details")?;
                Ok(AuditEntry {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    operation: r.try_get("operation")?,
                    target: r.try_get("target")?,
                    outcome: r.try_get("outcome")?,
                    details: if raw { Value::String(details) } else { serde_json::from_str(&details).unwrap_or(Value::String(details)) },
                    prev_hash: r.try_get("prev_hash")?,
                    hash: r.try_get("hash")?,
                })
            }).collect()
        })
    }

    /// Whether the store answers (a readiness probe): one trivial query.
    pub async fn ping(&self) -> Result<()> {
        on_backend!(&self.pool, p => {
            sqlx::query("SELECT 1").execute(p).await?;
            Ok(())
        })
    }

    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        on_backend!(&self.pool, p => {
            let rows = sqlx::query("SELECT seq, hash, at, key_id, signature FROM audit_checkpoints ORDER BY seq").fetch_all(p).await?;
            rows.iter().map(|r| Ok(Checkpoint {
                seq: r.try_get("seq")?, hash: r.try_get("hash")?, at: r.try_get("at")?,
                key_id: r.try_get("key_id")?, signature: r.try_get("signature")?,
            })).collect()
        })
    }

    async fn head(&self) -> Result<Option<Checkpoint>> {
        on_backend!(&self.pool, p => {
            let row = sqlx::query("SELECT seq, hash, at, key_id, signature FROM audit_head WHERE id = 1").fetch_optional(p).await?;
            row.map(|r| Ok(Checkpoint {
                seq: r.try_get("seq")?, hash: r.try_get("hash")?, at: r.try_get("at")?,
                key_id: r.try_get("key_id")?, signature: r.try_get("signature")?,
            })).transpose()
        })
    }

    /// Checks the whole chain, every checkpoint and the signed head against `key`, and
    /// names the first entry at fault. Reads in pages, so memory stays flat.
    pub async fn verify(&self, key: &PublicKey) -> Result<Verdict> {
        let checkpoints = self.checkpoints().await?;
        let head = self.head().await?;
        let mut verdict = Verdict {
            entries: 0,
            checkpoints: checkpoints.len() as u64,
            last_seq: 0,
            last_hash: None,
            key_id: key.key_id().to_string(),
            broken: None,
        };
        let fail = |mut v: Verdict, seq: i64, reason: String| {
            v.broken = Some(Broken { seq, reason });
            Ok(v)
        };
        let mut cps = checkpoints.iter().peekable();
        let mut prev_hash = GENESIS.to_string();
        let mut expected = 1i64;
        loop {
            let page = self
                .read_entries(
                    &Filter {
                        after_seq: Some(expected - 1),
                        limit: Some(5000),
                        ..Default::default()
                    },
                    true,
                )
                .await?;
            if page.is_empty() {
                break;
            }
            for e in &page {
                if e.seq != expected {
                    return fail(
                        verdict,
                        expected,
                        format!("entry {expected} is missing (the next entry is {})", e.seq),
                    );
                }
                if e.prev_hash != prev_hash {
                    return fail(
                        verdict,
                        e.seq,
                        format!(
                            "entry {}: prev_hash does not match the hash of entry {} (inserted or reordered)",
                            e.seq,
                            e.seq - 1
                        ),
                    );
                }
                let details = e.details.as_str().unwrap_or_default();
                let recomputed = entry_hash(&HashInput {
                    seq: e.seq,
                    at: &e.at,
                    actor: &e.actor,
                    operation: &e.operation,
                    target: &e.target,
                    outcome: &e.outcome,
                    details,
                    prev_hash: &e.prev_hash,
                });
                if recomputed != e.hash {
                    return fail(
                        verdict,
                        e.seq,
                        format!(
                            "entry {}: its contents do not match its hash (edited)",
                            e.seq
                        ),
                    );
                }
                while let Some(cp) = cps.peek() {
                    if cp.seq > e.seq {
                        break;
                    }
                    let cp = cps.next().expect("peeked");
                    if cp.seq < e.seq {
                        return fail(
                            verdict,
                            cp.seq,
                            format!("checkpoint at entry {} has no entry", cp.seq),
                        );
                    }
                    if cp.hash != e.hash || cp.at != e.at {
                        return fail(
                            verdict,
                            e.seq,
                            format!(
                                "entry {}: differs from what checkpoint {} signed",
                                e.seq, cp.seq
                            ),
                        );
                    }
                    if !key.verify(
                        &signing::checkpoint_message(cp.seq, &cp.hash, &cp.at),
                        &cp.signature,
                    ) {
                        return fail(
                            verdict,
                            e.seq,
                            format!(
                                "checkpoint at entry {}: the signature does not verify with public key {} (it claims key {})",
                                cp.seq,
                                key.key_id(),
                                cp.key_id
                            ),
                        );
                    }
                }
                prev_hash = e.hash.clone();
                verdict.entries += 1;
                verdict.last_seq = e.seq;
                verdict.last_hash = Some(e.hash.clone());
                expected += 1;
            }
        }
        if let Some(cp) = cps.next() {
            return fail(
                verdict.clone(),
                verdict.last_seq + 1,
                format!(
                    "checkpoint at entry {} names an entry that is missing: the log was truncated after entry {}",
                    cp.seq, verdict.last_seq
                ),
            );
        }
        match head {
            None if verdict.entries > 0 => fail(
                verdict.clone(),
                verdict.last_seq,
                "the signed head is missing: the log's end cannot be vouched for".into(),
            ),
            None => Ok(verdict),
            Some(h) => {
                if !key.verify(&signing::head_message(h.seq, &h.hash, &h.at), &h.signature) {
                    let seq = h.seq.min(verdict.last_seq.max(1));
                    return fail(
                        verdict,
                        seq,
                        format!(
                            "the signed head does not verify with public key {} (it claims key {})",
                            key.key_id(),
                            h.key_id
                        ),
                    );
                }
                if h.seq > verdict.last_seq {
                    return fail(
                        verdict.clone(),
                        verdict.last_seq + 1,
                        format!(
                            "the log was truncated after entry {}: the signed head names entry {}",
                            verdict.last_seq, h.seq
                        ),
                    );
                }
                if h.seq < verdict.last_seq {
                    return fail(
                        verdict,
                        h.seq + 1,
                        format!(
                            "entry {} and later are not covered by the signed head (which names entry {}): appended outside cxguard",
                            h.seq + 1,
                            h.seq
                        ),
                    );
                }
                if h.hash != prev_hash {
                    return fail(
                        verdict.clone(),
                        verdict.last_seq,
                        format!(
                            "entry {}: differs from what the signed head vouches for",
                            verdict.last_seq
                        ),
                    );
                }
                Ok(verdict)
            }
        }
    }

    // ------------------------------------------------------------------ journal

    /// A new job id: `<kind>-<UTC time>-<random>`, readable and unique.
    pub fn new_job_id(kind: &str) -> String {
        let t = time::OffsetDateTime::now_utc();
        format!(
            "{kind}-{:04}{:02}{:02}T{:02}{:02}{:02}-{}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            random_hex(3)
        )
    }

    /// Creates a job with its first items and a `job.start` audit entry.
    pub async fn create_job(&self, job: NewJob) -> Result<String> {
        details::check_identifier("job id", &job.id)?;
        let id = job.id.clone();
        self.commit(Batch {
            new_job: Some(job),
            ..Default::default()
        })
        .await?;
        Ok(id)
    }

    /// Adds items to a running job (jobs that discover their items as they go). Items
    /// already present are left as they are.
    pub async fn add_items(&self, job_id: &str, keys: &[String]) -> Result<()> {
        on_backend!(&self.pool, p => {
            let mut tx = begin_write!(self.pool, p);
            let start: i64 = sqlx::query("SELECT COALESCE(MAX(position), -1) AS m FROM job_items WHERE job_id = $1")
                .bind(job_id).fetch_one(&mut *tx).await?.try_get("m")?;
            let at = now();
            for (i, k) in keys.iter().enumerate() {
                sqlx::query("INSERT INTO job_items (job_id, item_key, position, state, updated_at) VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT DO NOTHING")
                    .bind(job_id).bind(k).bind(start + 1 + i as i64).bind(&at)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Marks an item in flight before its effect is attempted.
    pub async fn claim(&self, job_id: &str, key: &str) -> Result<Claim> {
        on_backend!(&self.pool, p => {
            let mut tx = begin_write!(self.pool, p);
            let row = sqlx::query("SELECT state, attempts FROM job_items WHERE job_id = $1 AND item_key = $2")
                .bind(job_id).bind(key).fetch_optional(&mut *tx).await?
                .ok_or_else(|| Error::NotFound(format!("job {job_id} has no item {key}")))?;
            let state: String = row.try_get("state")?;
            if state == "done" {
                return Ok(Claim::AlreadyDone);
            }
            let attempt = row.try_get::<i64, _>("attempts")? + 1;
            sqlx::query("UPDATE job_items SET state = 'in_flight', attempts = $1, updated_at = $2 WHERE job_id = $3 AND item_key = $4")
                .bind(attempt).bind(now()).bind(job_id).bind(key)
                .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(Claim::Claimed { attempt })
        })
    }

    /// Settles an item with its audit entries and events, in one transaction.
    pub async fn settle(
        &self,
        job_id: &str,
        key: &str,
        outcome: ItemOutcome,
        audit: Vec<NewEntry>,
        events: Vec<NewEvent>,
    ) -> Result<Committed> {
        self.commit(Batch {
            audit,
            events,
            items: vec![ItemSettle {
                job_id: job_id.to_string(),
                key: key.to_string(),
                outcome,
            }],
            ..Default::default()
        })
        .await
    }

    /// Ends a job: its status, a closing audit entry and a signed checkpoint.
    pub async fn finish_job(
        &self,
        job_id: &str,
        status: JobStatus,
        entry: NewEntry,
    ) -> Result<Committed> {
        self.commit(Batch {
            audit: vec![entry],
            job_status: Some((job_id.to_string(), status)),
            checkpoint: true,
            ..Default::default()
        })
        .await
    }

    /// Marks several items in flight at once (one transaction), returning each one's
    /// attempt number; items already done are left out.
    pub async fn claim_many(&self, job_id: &str, keys: &[String]) -> Result<Vec<(String, i64)>> {
        on_backend!(&self.pool, p => {
            let mut tx = begin_write!(self.pool, p);
            let at = now();
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                let row = sqlx::query("UPDATE job_items SET state = 'in_flight', attempts = attempts + 1, updated_at = $1 WHERE job_id = $2 AND item_key = $3 AND state <> 'done' RETURNING attempts")
                    .bind(&at).bind(job_id).bind(key).fetch_optional(&mut *tx).await?;
                if let Some(r) = row {
                    out.push((key.clone(), r.try_get::<i64, _>("attempts")?));
                }
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Records how far a job that discovers its items has got (e.g. a page token).
    pub async fn set_cursor(&self, job_id: &str, cursor: Option<&str>) -> Result<()> {
        on_backend!(&self.pool, p => {
            sqlx::query("UPDATE jobs SET cursor = $1 WHERE id = $2").bind(cursor).bind(job_id).execute(p).await?;
            Ok(())
        })
    }

    /// The cursor `set_cursor` last recorded.
    pub async fn cursor(&self, job_id: &str) -> Result<Option<String>> {
        on_backend!(&self.pool, p => {
            let r = sqlx::query("SELECT cursor FROM jobs WHERE id = $1").bind(job_id).fetch_optional(p).await?
                .ok_or_else(|| Error::NotFound(format!("no job {job_id}")))?;
            Ok(r.try_get::<Option<String>, _>("cursor")?)
        })
    }

    /// The most recent unfinished job of `kind` started with `fingerprint`, to resume.
    pub async fn running_job(&self, kind: &str, fingerprint: &str) -> Result<Option<String>> {
        on_backend!(&self.pool, p => {
            let r = sqlx::query("SELECT id FROM jobs WHERE kind = $1 AND fingerprint = $2 AND status = 'running' ORDER BY created_at DESC LIMIT 1")
                .bind(kind).bind(fingerprint).fetch_optional(p).await?;
            Ok(r.map(|r| r.try_get::<String, _>("id")).transpose()?)
        })
    }

    /// The fingerprint a job was started with.
    pub async fn job_fingerprint(&self, job_id: &str) -> Result<Option<String>> {
        on_backend!(&self.pool, p => {
            let r = sqlx::query("SELECT fingerprint FROM jobs WHERE id = $1").bind(job_id).fetch_optional(p).await?
                .ok_or_else(|| Error::NotFound(format!("no job {job_id}; `cxguard jobs list` shows the jobs")))?;
            Ok(r.try_get::<Option<String>, _>("fingerprint")?)
        })
    }

    /// Records results for items before their effect is attempted (what a job intends
    /// to write), in one transaction, so a crash right after the effect still leaves a
    /// record of it.
    pub async fn record_results(&self, job_id: &str, results: &[(String, Value)]) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        on_backend!(&self.pool, p => {
            let mut tx = begin_write!(self.pool, p);
            let at = now();
            for (key, value) in results {
                sqlx::query("UPDATE job_items SET result = $1, updated_at = $2 WHERE job_id = $3 AND item_key = $4")
                    .bind(value.to_string()).bind(&at).bind(job_id).bind(key)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// For each of `keys`, the result most recently recorded for it by a job of `kind`
    /// (done, or intended by an attempt in flight).
    pub async fn latest_results(
        &self,
        kind: &str,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, Value>> {
        let mut out = std::collections::HashMap::new();
        on_backend!(&self.pool, p => {
            let mut conn = p.acquire().await?;
            for key in keys {
                let r = sqlx::query("SELECT i.result FROM job_items i JOIN jobs j ON j.id = i.job_id WHERE i.item_key = $1 AND j.kind = $2 AND i.result IS NOT NULL ORDER BY i.updated_at DESC LIMIT 1")
                    .bind(key).bind(kind).fetch_optional(&mut *conn).await?;
                if let Some(v) = r.map(|r| r.try_get::<String, _>("result")).transpose()?.and_then(|s| serde_json::from_str(&s).ok()) {
                    out.insert(key.clone(), v);
                }
            }
            Ok::<_, Error>(())
        })?;
        Ok(out)
    }

    /// Items not yet done (pending, in flight after a crash, or failed), in order.
    pub async fn unfinished_items(
        &self,
        job_id: &str,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>> {
        on_backend!(&self.pool, p => {
            let rows = sqlx::query("SELECT position, item_key FROM job_items WHERE job_id = $1 AND state <> 'done' AND position > $2 ORDER BY position LIMIT $3")
                .bind(job_id).bind(after_position).bind(limit).fetch_all(p).await?;
            rows.iter().map(|r| Ok((r.try_get("position")?, r.try_get("item_key")?))).collect()
        })
    }

    pub async fn jobs(&self, limit: i64) -> Result<Vec<JobSummary>> {
        let ids: Vec<String> = on_backend!(&self.pool, p => {
            let rows = sqlx::query("SELECT id FROM jobs ORDER BY created_at DESC, id DESC LIMIT $1").bind(limit).fetch_all(p).await?;
            rows.iter().map(|r| r.try_get::<String, _>("id")).collect::<Result<Vec<_>, _>>()?
        });
        let mut out = Vec::new();
        for id in ids {
            out.push(self.job(&id).await?);
        }
        Ok(out)
    }

    pub async fn job(&self, id: &str) -> Result<JobSummary> {
        on_backend!(&self.pool, p => {
            let row = sqlx::query("SELECT id, kind, actor, params, status, created_at, updated_at FROM jobs WHERE id = $1")
                .bind(id).fetch_optional(p).await?
                .ok_or_else(|| Error::NotFound(format!("no job {id}; `cxguard jobs list` shows the jobs")))?;
            let counts = sqlx::query("SELECT state, COUNT(*) AS n FROM job_items WHERE job_id = $1 GROUP BY state").bind(id).fetch_all(p).await?;
            let mut s = JobSummary {
                id: row.try_get("id")?, kind: row.try_get("kind")?, actor: row.try_get("actor")?,
                status: row.try_get("status")?, created_at: row.try_get("created_at")?, updated_at: row.try_get("updated_at")?,
                pending: 0, in_flight: 0, done: 0, failed: 0,
                params: serde_json::from_str(&row.try_get::<String, _>("params")?).unwrap_or(Value::Null),
            };
            for c in counts {
                let n = c.try_get::<i64, _>("n")? as u64;
                match c.try_get::<String, _>("state")?.as_str() {
                    "pending" => s.pending = n,
                    "in_flight" => s.in_flight = n,
                    "done" => s.done = n,
                    "failed" => s.failed = n,
                    _ => {}
                }
            }
            Ok(s)
        })
    }

    /// A job's items in a state (all when `None`), in order.
    pub async fn job_items(
        &self,
        id: &str,
        state: Option<ItemState>,
        limit: i64,
    ) -> Result<Vec<JobItem>> {
        on_backend!(&self.pool, p => {
            let rows = sqlx::query("SELECT item_key, state, attempts, last_error, result, updated_at FROM job_items WHERE job_id = $1 AND ($2 = '' OR state = $3) ORDER BY position LIMIT $4")
                .bind(id).bind(state.map_or("", |s| s.as_str())).bind(state.map_or("", |s| s.as_str())).bind(limit)
                .fetch_all(p).await?;
            rows.iter().map(|r| Ok(JobItem {
                key: r.try_get("item_key")?, state: r.try_get("state")?, attempts: r.try_get("attempts")?,
                last_error: r.try_get("last_error")?,
                result: r.try_get::<Option<String>, _>("result")?.and_then(|s| serde_json::from_str(&s).ok()),
                updated_at: r.try_get("updated_at")?,
            })).collect()
        })
    }

    // ------------------------------------------------------------------ outbox

    /// Leases up to `n` due events for `lease_ms`. Two deliverers never hold the same
    /// event: PostgreSQL skips rows another transaction has locked, SQLite serialises
    /// writers, and a lease that expires (a deliverer died) makes the event due again.
    pub async fn lease_due(&self, n: i64, lease_ms: i64) -> Result<Vec<Leased>> {
        let now = now_ms();
        let pg = self.pool.is_postgres();
        on_backend!(&self.pool, p => {
            let mut tx = begin_write!(self.pool, p);
            let select = if pg {
                "SELECT id, kind, payload, attempts FROM outbox WHERE status = 'pending' AND next_attempt_ms <= $1 AND (lease_until_ms IS NULL OR lease_until_ms < $2) ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED"
            } else {
                "SELECT id, kind, payload, attempts FROM outbox WHERE status = 'pending' AND next_attempt_ms <= $1 AND (lease_until_ms IS NULL OR lease_until_ms < $2) ORDER BY rowid LIMIT $3"
            };
            let rows = sqlx::query(select).bind(now).bind(now).bind(n).fetch_all(&mut *tx).await?;
            let mut out = Vec::new();
            for r in rows {
                let token = random_hex(8);
                let id: String = r.try_get("id")?;
                sqlx::query("UPDATE outbox SET lease_until_ms = $1, lease_token = $2 WHERE id = $3")
                    .bind(now + lease_ms).bind(&token).bind(&id).execute(&mut *tx).await?;
                out.push(Leased { id, kind: r.try_get("kind")?, payload: r.try_get("payload")?, attempts: r.try_get("attempts")?, token });
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Records an attempt's result, if `token` still holds the lease (a deliverer whose
    /// lease expired does not overwrite a newer attempt). Returns whether it did.
    pub async fn settle_event(
        &self,
        id: &str,
        token: &str,
        settlement: Settlement,
    ) -> Result<bool> {
        let (status, error, next, delivered, counts) = match &settlement {
            Settlement::Delivered => ("delivered", None, None, Some(now()), true),
            Settlement::Failed {
                error,
                retry_at_ms: Some(t),
            } => ("pending", Some(error.clone()), Some(*t), None, true),
            Settlement::Failed {
                error,
                retry_at_ms: None,
            } => ("dead", Some(error.clone()), None, None, true),
            Settlement::Skipped { reason } => ("skipped", Some(reason.clone()), None, None, false),
        };
        on_backend!(&self.pool, p => {
            let n = sqlx::query("UPDATE outbox SET status = $1, last_error = $2, next_attempt_ms = COALESCE($3, next_attempt_ms), delivered_at = $4, attempts = attempts + $5, lease_until_ms = NULL, lease_token = NULL WHERE id = $6 AND lease_token = $7")
                .bind(status).bind(error).bind(next).bind(delivered).bind(if counts { 1i64 } else { 0 }).bind(id).bind(token)
                .execute(p).await?.rows_affected();
            Ok(n == 1)
        })
    }

    pub async fn outbox_status(&self) -> Result<OutboxStatus> {
        on_backend!(&self.pool, p => {
            let rows = sqlx::query("SELECT status, kind, COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox GROUP BY status, kind").fetch_all(p).await?;
            let mut s = OutboxStatus::default();
            for r in rows {
                let n = r.try_get::<i64, _>("n")? as u64;
                let status: String = r.try_get("status")?;
                match status.as_str() {
                    "pending" => {
                        s.pending += n;
                        *s.pending_by_kind.entry(r.try_get("kind")?).or_insert(0) += n;
                        let oldest: Option<String> = r.try_get("oldest")?;
                        if oldest.is_some() && (s.oldest_pending.is_none() || oldest < s.oldest_pending) {
                            s.oldest_pending = oldest;
                        }
                    }
                    "delivered" => s.delivered += n,
                    "dead" => s.dead += n,
                    "skipped" => s.skipped += n,
                    _ => {}
                }
            }
            Ok(s)
        })
    }

    /// Events in a status (all when `None`), oldest first.
    pub async fn outbox_events(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>> {
        let order = if self.pool.is_postgres() {
            "seq"
        } else {
            "rowid"
        };
        let sql = format!(
            "SELECT id, kind, event_type, status, attempts, next_attempt_ms, last_error, created_at, delivered_at FROM outbox WHERE ($1 = '' OR status = $2) ORDER BY {order} LIMIT $3"
        );
        on_backend!(&self.pool, p => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(status.unwrap_or("")).bind(status.unwrap_or("")).bind(limit).fetch_all(p).await?;
            rows.iter().map(|r| Ok(OutboxEvent {
                id: r.try_get("id")?, kind: r.try_get("kind")?, event_type: r.try_get("event_type")?,
                status: r.try_get("status")?, attempts: r.try_get("attempts")?, next_attempt_ms: r.try_get("next_attempt_ms")?,
                last_error: r.try_get("last_error")?, created_at: r.try_get("created_at")?, delivered_at: r.try_get("delivered_at")?,
            })).collect()
        })
    }

    /// The body of one event, as it is (or was) sent.
    pub async fn event_payload(&self, id: &str) -> Result<String> {
        on_backend!(&self.pool, p => {
            sqlx::query("SELECT payload FROM outbox WHERE id = $1").bind(id).fetch_optional(p).await?
                .ok_or_else(|| Error::NotFound(format!("no outbox event {id}")))?
                .try_get::<String, _>("payload").map_err(Error::from)
        })
    }

    /// Makes a dead, skipped or pending event due now with a fresh schedule.
    pub async fn retry_event(&self, id: &str) -> Result<()> {
        on_backend!(&self.pool, p => {
            let n = sqlx::query("UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_ms = $1, lease_until_ms = NULL, lease_token = NULL WHERE id = $2 AND status <> 'delivered'")
                .bind(now_ms()).bind(id).execute(p).await?.rows_affected();
            if n == 1 { Ok(()) } else { Err(Error::NotFound(format!("no undelivered outbox event {id}"))) }
        })
    }

    /// Deletes delivered events; returns how many.
    pub async fn purge_delivered(&self) -> Result<u64> {
        on_backend!(&self.pool, p => {
            Ok(sqlx::query("DELETE FROM outbox WHERE status = 'delivered'").execute(p).await?.rows_affected())
        })
    }

    /// The earliest time a pending event becomes due, in Unix milliseconds.
    pub async fn next_due_ms(&self) -> Result<Option<i64>> {
        on_backend!(&self.pool, p => {
            let r = sqlx::query("SELECT MIN(CASE WHEN lease_until_ms IS NOT NULL AND lease_until_ms > next_attempt_ms THEN lease_until_ms ELSE next_attempt_ms END) AS m FROM outbox WHERE status = 'pending'")
                .fetch_one(p).await?;
            Ok(r.try_get::<Option<i64>, _>("m")?)
        })
    }

    /// Closes the pool (waits for connections to finish).
    /// Closes the store. On SQLite the write-ahead log is folded into the database file
    /// first, so `ledger.sqlite` alone is the whole ledger (a backup that copies only it
    /// misses nothing).
    pub async fn close(&self) {
        if let Pool::Sqlite(p) = &self.pool
            && let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(p)
                .await
        {
            tracing::debug!(error = %e, "could not fold the write-ahead log into the ledger");
        }
        on_backend!(&self.pool, p => p.close().await)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(super::hex(&[]), "");
    }
}
