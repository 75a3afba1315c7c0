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
//! Where things live: `lib.rs` holds [`Ledger`], opening a store, [`Batch`] and
//! [`Ledger::commit`]; the `impl Ledger` blocks for reading the audit log, the journal
//! and the outbox sit beside their types in [`audit`], [`journal`] and [`outbox`];
//! chain checking is in `verify`, time and hex helpers in `encoding`.
//!
//! Not here: what the protections do, or HTTP status codes.

#![warn(missing_docs)]

pub mod anchor;
pub mod appender;
pub mod audit;
mod commit;
pub mod deliver;
pub mod details;
mod encoding;
mod error;
pub mod journal;
mod lease;
pub mod outbox;
mod pages;
pub mod signing;
mod store;
mod verify;
pub mod webhooks;

use std::sync::Arc;

use sqlx::Row;

pub use audit::{AuditEntry, Checkpoint, Filter, NewEntry, Outcome, Verdict};
pub use details::Details;
pub use encoding::{hex, timestamp};
pub(crate) use encoding::{now, now_ms, random_hex};
pub use error::{Error, Result};
pub use journal::{Claim, ItemOutcome, ItemState, JobItem, JobStatus, JobSummary};
pub use outbox::{EventKind, Leased, NewEvent, OutboxEvent, OutboxGroup, OutboxStatus, Settlement};
pub use signing::{AuditKey, PublicKey};
pub use store::redact;
pub use verify::Anchored;

use crate::store::{Pool, on_backend};

/// The advisory lock that serialises appends to the chain on PostgreSQL.
pub(crate) const AUDIT_LOCK: i64 = 7_243_002;

/// Checkpoint every this many entries unless configured otherwise.
pub const DEFAULT_CHECKPOINT_EVERY: i64 = 1000;

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
    /// Audit entries to append, in order.
    pub audit: Vec<NewEntry>,
    /// Webhook events to enqueue.
    pub events: Vec<NewEvent>,
    /// A job to create, with its first items.
    pub new_job: Option<NewJob>,
    /// Items to settle, each with its outcome.
    pub items: Vec<ItemSettle>,
    /// A job status to set.
    pub job_status: Option<(String, JobStatus)>,
    /// Sign a checkpoint at the end of this batch (the end of a job).
    pub checkpoint: bool,
    /// With `new_job` that has a fingerprint: when a running job of its kind has that
    /// fingerprint, write nothing and name it in [`Committed::existing_job`]. The look
    /// and the insert are one step (serialized on the fingerprint), so two processes
    /// opening the same job at once open one.
    pub unless_running: bool,
}

/// A job to create.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its id (see [`Ledger::new_job_id`]).
    pub id: String,
    /// Its kind.
    pub kind: &'static str,
    /// Who starts it.
    pub actor: String,
    /// Its parameters, as typed details.
    pub params: Details,
    /// Its first items.
    pub items: Vec<String>,
    /// What identifies "the same job" for an automatic resume (e.g. a hash of the
    /// policy and the selection); `None` if jobs of this kind never resume by themselves.
    pub fingerprint: Option<String>,
}

/// One item's outcome, to settle in a batch.
#[derive(Debug, Clone)]
pub struct ItemSettle {
    /// The job.
    pub job_id: String,
    /// The item.
    pub key: String,
    /// How it ended.
    pub outcome: ItemOutcome,
}

/// What a batch appended.
#[derive(Debug, Default)]
pub struct Committed {
    /// The entries appended.
    pub entries: Vec<AuditEntry>,
    /// The checkpoint signed, if any.
    pub checkpoint: Option<Checkpoint>,
    /// The ids of the events enqueued.
    pub event_ids: Vec<String>,
    /// With [`Batch::unless_running`]: the running job found, when one was (and nothing
    /// was written).
    pub existing_job: Option<String>,
}

/// cxguard's durable record: the audit chain, the job journal and the webhook outbox, in one
/// SQLite or PostgreSQL store. Cheap to clone.
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
    /// The `audit_details` rows this process knows.
    details: Arc<audit::DetailsIds>,
    /// This ledger's part of its webhook ids (`cxguard_meta` `outbox_tag`).
    outbox_tag: Arc<str>,
    /// Every entry appended names this tenant in its details (`tenant`), e.g. the
    /// emulator for a `--sim` rehearsal.
    tenant_label: Option<&'static str>,
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
            details: Arc::default(),
            outbox_tag: Arc::from(""),
            tenant_label: None,
        };
        ledger.outbox_tag = on_backend!(&ledger.pool, p => {
            let r = sqlx::query("SELECT value FROM cxguard_meta WHERE key = 'outbox_tag'").fetch_one(p).await?;
            Arc::from(r.try_get::<String, _>("value")?)
        });
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

    /// Signs a checkpoint every `n` entries.
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

    /// Names `tenant` (a label fixed in the program, such as `emulator`) in the details
    /// of every entry this handle appends, so a rehearsal's entries cannot be read as
    /// work on a real tenant.
    pub fn with_tenant_label(mut self, tenant: &'static str) -> Self {
        self.tenant_label = Some(tenant);
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

    /// Whether the store is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.pool.is_postgres()
    }

    /// The public half of the signing key, when the ledger can write.
    pub fn public_key(&self) -> Option<PublicKey> {
        self.key.as_ref().map(|k| k.public())
    }

    /// Signs a document outside the chain (a saved plan) with the ledger's audit key:
    /// its key id and the signature ([`AuditKey::sign_document`]).
    pub fn sign_document(&self, domain: &str, body: &str) -> Result<(String, String)> {
        let key = self.key()?;
        Ok((key.key_id().to_string(), key.sign_document(domain, body)))
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

    /// Whether the store answers (a readiness probe): one trivial query.
    pub async fn ping(&self) -> Result<()> {
        on_backend!(&self.pool, p => {
            sqlx::query("SELECT 1").execute(p).await?;
            Ok(())
        })
    }

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
