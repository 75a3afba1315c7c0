//! [`Ledger::commit`]: everything one transaction writes — a job opened (or the running
//! one of its fingerprint found), items settled, audit entries appended to the chain and
//! its signed head, a checkpoint, and webhook events enqueued — in that order.

use serde_json::Value;
use sqlx::Row;

use crate::audit::{GENESIS, HashInput, entry_digest};
use crate::error::Error;
use crate::store::{begin_write, on_backend};
use crate::{
    AUDIT_LOCK, AuditEntry, Batch, Checkpoint, Committed, Details, EventKind, ItemOutcome, Ledger,
    NewEntry, NewEvent, Outcome, Result, hex, now, now_ms, signing,
};

/// Audit rows written by one INSERT statement. Not more: sqlx-sqlite looks each bound
/// parameter's name up in a list as long as the statement's (quadratic), and past ~30
/// rows that costs more than the round trips saved (measured: 1 row 29.7k, 8 rows
/// 42.8k, 25 rows 49.3k, 60 rows 46.7k appends/s).
pub(crate) const ROWS_PER_INSERT: usize = 32;

/// One item outcome as bound: job, key, state, error, result.
type SettleRow<'a> = (
    &'a str,
    &'a str,
    &'static str,
    Option<String>,
    Option<String>,
);

/// The id of `text` in `audit_details` (audit details, and bodies shared by a job's
/// events): known to this process, added by this transaction, or added now.
macro_rules! intern {
    ($ledger:ident, $tx:ident, $fresh:ident, $text:expr) => {{
        let text: String = $text;
        match $ledger
            .details
            .get(&text)
            .or_else(|| $fresh.get(&text).copied())
        {
            Some(id) => id,
            None => {
                let id: i64 =
                    sqlx::query("INSERT INTO audit_details (details) VALUES ($1) RETURNING id")
                        .bind(&text)
                        .fetch_one(&mut *$tx)
                        .await?
                        .try_get("id")?;
                $fresh.insert(text, id);
                id
            }
        }
    }};
}

/// The PostgreSQL advisory lock that serializes opening jobs of `kind` with fingerprint
/// `fp`: the first eight bytes of their SHA-256, never [`AUDIT_LOCK`]'s.
fn fingerprint_lock(kind: &str, fp: &str) -> i64 {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(format!("cxguard-job-open\n{kind}\n{fp}").as_bytes());
    let n = i64::from_be_bytes(d[..8].try_into().unwrap_or([0; 8]));
    if n == AUDIT_LOCK { n + 1 } else { n }
}

/// Step: the running job of `$job`'s kind and fingerprint, when there is one (the look
/// serialized on the fingerprint: on PostgreSQL by an advisory lock, on SQLite by
/// `BEGIN IMMEDIATE`, so a second opener waits and then sees the first one's job).
macro_rules! find_running_job {
    ($tx:ident, $job:expr, $fp:expr, $pg:expr) => {{
        if $pg {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(fingerprint_lock($job.kind, $fp))
                .execute(&mut *$tx)
                .await?;
        }
        sqlx::query("SELECT id FROM jobs WHERE kind = $1 AND fingerprint = $2 AND status = 'running' ORDER BY created_at DESC LIMIT 1")
            .bind($job.kind).bind($fp).fetch_optional(&mut *$tx).await?
            .map(|r| r.try_get::<String, _>("id")).transpose()?
    }};
}

/// Step: the job row and its first items.
macro_rules! insert_job {
    ($tx:ident, $job:expr, $at:expr) => {{
        let job = $job;
        sqlx::query("INSERT INTO jobs (id, kind, actor, params, status, created_at, updated_at, fingerprint) VALUES ($1, $2, $3, $4, 'running', $5, $6, $7)")
            .bind(&job.id).bind(job.kind).bind(&job.actor).bind(job.params.to_value().to_string()).bind(&$at).bind(&$at).bind(&job.fingerprint)
            .execute(&mut *$tx).await?;
        for (i, item) in job.items.iter().enumerate() {
            sqlx::query("INSERT INTO job_items (job_id, item_key, position, state, updated_at) VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT DO NOTHING")
                .bind(&job.id).bind(item).bind(i as i64).bind(&$at)
                .execute(&mut *$tx).await?;
        }
    }};
}

/// Step: items settled, many per UPDATE (one round trip per ROWS_PER_INSERT items, not
/// two per item: the outcomes as a VALUES list joined on (job, key)); the jobs touched
/// stamped; a job status set.
macro_rules! settle_items {
    ($tx:ident, $items:expr, $job_status:expr, $at:expr, $pg:expr) => {{
        let pg = $pg;
        let settles: Vec<SettleRow<'_>> = $items.iter().map(|s| {
            let (state, err, result) = match &s.outcome {
                ItemOutcome::Done { result } => ("done", None, result.as_ref().map(Value::to_string)),
                ItemOutcome::Failed { error } => ("failed", Some(error.clone()), None),
            };
            (s.job_id.as_str(), s.key.as_str(), state, err, result)
        }).collect();
        for chunk in settles.chunks(ROWS_PER_INSERT) {
            let mut values = String::new();
            for i in 0..chunk.len() {
                let b = 1 + i * 5;
                if i > 0 {
                    values.push_str(", ");
                }
                values.push_str(&format!("(${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5));
            }
            // SQLite names a VALUES list's columns column1…; PostgreSQL takes a list.
            let (v, c) = if pg {
                (" AS v(job_id, item_key, state, err, result)", ["v.job_id", "v.item_key", "v.state", "v.err", "v.result"])
            } else {
                (" AS v", ["v.column1", "v.column2", "v.column3", "v.column4", "v.column5"])
            };
            // A result recorded before the effect (an intent) stays unless replaced.
            let sql = format!(
                "UPDATE job_items SET state = {}, last_error = {}, result = COALESCE({}, job_items.result), updated_at = $1 FROM (VALUES {values}){v} WHERE job_items.job_id = {} AND job_items.item_key = {}",
                c[2], c[3], c[4], c[0], c[1]
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(crate::store::positional(pg, sql))).bind(&$at);
            for (job, key, state, err, result) in chunk {
                q = q.bind(*job).bind(*key).bind(*state).bind(err.as_deref()).bind(result.as_deref());
            }
            let n = q.execute(&mut *$tx).await?.rows_affected();
            if n < chunk.len() as u64 {
                for (job, key, ..) in chunk {
                    let found = sqlx::query("SELECT 1 FROM job_items WHERE job_id = $1 AND item_key = $2")
                        .bind(*job).bind(*key).fetch_optional(&mut *$tx).await?;
                    if found.is_none() {
                        return Err(Error::NotFound(format!("job {job} has no item {key}")));
                    }
                }
            }
        }
        let mut jobs_touched: Vec<&str> = $items.iter().map(|s| s.job_id.as_str()).collect();
        jobs_touched.sort_unstable();
        jobs_touched.dedup();
        for job in jobs_touched {
            sqlx::query("UPDATE jobs SET updated_at = $1 WHERE id = $2").bind(&$at).bind(job).execute(&mut *$tx).await?;
        }
        if let Some((job, status)) = $job_status {
            let n = sqlx::query("UPDATE jobs SET status = $1, updated_at = $2 WHERE id = $3")
                .bind(status.as_str()).bind(&$at).bind(job)
                .execute(&mut *$tx).await?.rows_affected();
            if n == 0 {
                return Err(Error::NotFound(format!("no job {job}")));
            }
        }
    }};
}

/// Step: the audit entries chained onto the head (under the chain's lock on PostgreSQL),
/// their rows, and the signed head; answers the last sequence number, its hash, and
/// whether a checkpoint interval was crossed.
macro_rules! append_audit {
    ($ledger:ident, $tx:ident, $key:expr, $audit:expr, $at:expr, $pg:expr, $fresh:ident, $out:ident) => {{
        let (key, pg, at) = ($key, $pg, &$at);
        if pg {
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(AUDIT_LOCK).execute(&mut *$tx).await?;
        }
        // Checked again here, under the lock, not only at open: another process
        // with another key may have signed the head since.
        // The head's signer and the last entry in one round trip: each statement
        // is a hand-off to SQLite's worker thread, and a commit waits for them all.
        let head = sqlx::query("SELECT (SELECT key_id FROM audit_head WHERE id = 1) AS key_id, last.seq, last.hash FROM (SELECT 1 AS one) AS only_row LEFT JOIN (SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1) AS last ON 1 = 1")
            .fetch_one(&mut *$tx).await?;
        if let Some(id) = head.try_get::<Option<String>, _>("key_id")?
            && id != key.key_id()
        {
            return Err(Error::Key(format!(
                "this ledger's head is signed with key {id}, but this process signs with {}; refusing to append (two processes with different keys on one ledger)",
                key.key_id()
            )));
        }
        let (mut seq, mut prev) = match (head.try_get::<Option<i64>, _>("seq")?, head.try_get::<Option<Vec<u8>>, _>("hash")?) {
            (Some(seq), Some(hash)) => (seq, hex(&hash)),
            _ => (0, GENESIS.to_string()),
        };
        let mut crossed = false;
        // Each entry's details row (shared by equal texts) and its hash as stored.
        let audit: Vec<NewEntry> = $audit;
        let mut stored: Vec<(i64, [u8; 32])> = Vec::with_capacity(audit.len());
        for mut e in audit {
            seq += 1;
            if let Some(t) = $ledger.tenant_label {
                e.details = e.details.label("tenant", t);
            }
            let details = e.details.to_value();
            let details_text = details.to_string();
            let digest = entry_digest(&HashInput {
                seq, at, actor: &e.actor, operation: e.operation, target: &e.target,
                outcome: e.outcome.as_str(), details: &details_text, prev_hash: &prev,
            });
            let details_id = intern!($ledger, $tx, $fresh, details_text);
            crossed |= seq % $ledger.checkpoint_every == 0;
            stored.push((details_id, digest));
            let hash = hex(&digest);
            $out.entries.push(AuditEntry {
                seq, at: at.clone(), actor: e.actor, operation: e.operation.to_string(), target: e.target,
                outcome: e.outcome.as_str().to_string(), details, prev_hash: prev, hash: hash.clone(),
            });
            prev = hash;
        }
        // Many rows per INSERT: one round trip per ROWS_PER_INSERT entries. The
        // signed head is written with them; on SQLite by the last INSERT's call
        // (one statement string may hold several there), saving a round trip.
        let head_sql = |b: usize| format!("INSERT INTO audit_head (id, seq, hash, at, key_id, signature) VALUES (1, ${}, ${}, ${}, ${}, ${}) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, at = excluded.at, key_id = excluded.key_id, signature = excluded.signature", b + 1, b + 2, b + 3, b + 4, b + 5);
        let sig = (!$out.entries.is_empty()).then(|| key.sign(&signing::head_message(seq, &prev, at)));
        let last = $out.entries.len().saturating_sub(1) / ROWS_PER_INSERT;
        for (c, (entries, stored)) in $out.entries.chunks(ROWS_PER_INSERT).zip(stored.chunks(ROWS_PER_INSERT)).enumerate() {
            let mut sql = String::from("INSERT INTO audit_entries (seq, at, actor, operation, target, outcome, details_id, hash) VALUES ");
            for i in 0..entries.len() {
                let b = i * 8;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8));
            }
            let with_head = !pg && c == last;
            if with_head {
                sql.push_str("; ");
                sql.push_str(&head_sql(entries.len() * 8));
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(crate::store::positional(pg, sql)));
            for (e, (details_id, digest)) in entries.iter().zip(stored) {
                q = q.bind(e.seq).bind(&e.at).bind(&e.actor).bind(&e.operation).bind(&e.target).bind(&e.outcome)
                    .bind(*details_id).bind(&digest[..]);
            }
            if with_head {
                q = q.bind(seq).bind(&prev).bind(at).bind(key.key_id()).bind(sig.as_deref());
            }
            q.execute(&mut *$tx).await?;
        }
        if pg && let Some(sig) = &sig {
            sqlx::query(sqlx::AssertSqlSafe(head_sql(0))).bind(seq).bind(&prev).bind(at).bind(key.key_id()).bind(sig)
                .execute(&mut *$tx).await?;
        }
        (seq, prev, crossed)
    }};
}

/// Step: a signed checkpoint at entry `$seq` (hash `$prev`), announced as an
/// `audit.head` event to a witness when one is configured.
macro_rules! sign_checkpoint {
    ($ledger:ident, $tx:ident, $key:expr, $seq:expr, $prev:expr, $out:ident, $events:ident) => {{
        let (key, seq, prev) = ($key, $seq, $prev);
        let cp_at = sqlx::query("SELECT at FROM audit_entries WHERE seq = $1").bind(seq).fetch_one(&mut *$tx).await?.try_get::<String, _>("at")?;
        let signature = key.sign(&signing::checkpoint_message(seq, &prev, &cp_at));
        sqlx::query("INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING")
            .bind(seq).bind(&prev).bind(&cp_at).bind(key.key_id()).bind(&signature)
            .execute(&mut *$tx).await?;
        let cp = Checkpoint { seq, hash: prev.clone(), at: cp_at, key_id: key.key_id().to_string(), signature };
        if $ledger.witness {
            let data = Details::new().number("seq", cp.seq).sha256("hash", &cp.hash)?
                .id("at", &cp.at)?.id("keyId", &cp.key_id)?.signature("signature", &cp.signature)?;
            $events.push(NewEvent::new(EventKind::Witness, "audit.head", data));
        }
        $out.checkpoint = Some(cp);
    }};
}

/// Step: webhook events enqueued, many per INSERT as for audit entries. An event that
/// shares its body with its job's others stores its own part (the subject) and the id of
/// the shared text; the rest, the whole body.
macro_rules! enqueue_events {
    ($ledger:ident, $tx:ident, $events:expr, $at:expr, $pg:expr, $fresh:ident, $out:ident) => {{
        let events: Vec<NewEvent> = $events;
        let due = now_ms();
        let mut rows: Vec<(String, Option<i64>, Option<String>)> = Vec::with_capacity(events.len());
        for ev in &events {
            rows.push(match ev.shared() {
                Some((shared, subject)) => (String::new(), Some(intern!($ledger, $tx, $fresh, shared)), Some(subject)),
                None => (ev.payload(&$at), None, None),
            });
        }
        for (chunk, rows) in events.chunks(ROWS_PER_INSERT).zip(rows.chunks(ROWS_PER_INSERT)) {
            let mut sql = String::from("INSERT INTO outbox (kind, event_type, payload, status, attempts, next_attempt_ms, created_at, template_id, subject) VALUES ");
            for i in 0..chunk.len() {
                let b = i * 7;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("(${}, ${}, ${}, 'pending', 0, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7));
            }
            sql.push_str(" RETURNING seq");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(crate::store::positional($pg, sql)));
            for (ev, (payload, template, subject)) in chunk.iter().zip(rows) {
                q = q.bind(ev.kind.as_str()).bind(ev.event_type).bind(payload).bind(due).bind(&$at).bind(*template).bind(subject.as_deref());
            }
            // Numbered in the order given; each event's webhook id follows from it.
            let mut seqs = q.fetch_all(&mut *$tx).await?.iter().map(|r| r.try_get::<i64, _>("seq")).collect::<std::result::Result<Vec<_>, _>>()?;
            seqs.sort_unstable();
            $out.event_ids.extend(seqs.into_iter().map(|s| $ledger.webhook_id(s, None)));
        }
    }};
}

impl Ledger {
    /// Writes a batch in one transaction, in named steps: a job opened (or, with
    /// `unless_running`, the running one of its fingerprint found, and nothing written),
    /// items settled, audit entries appended and the head signed, a checkpoint signed,
    /// events enqueued; then the anchor advanced.
    pub async fn commit(&self, batch: Batch) -> Result<Committed> {
        let key = if batch.audit.is_empty() && !batch.checkpoint && batch.new_job.is_none() {
            None
        } else {
            Some(self.key()?)
        };
        let pg = self.pool.is_postgres();
        let out = on_backend!(&self.pool, p => {
            let mut tx = begin_write!(self.pool, p);
            let mut out = Committed::default();
            let at = now();
            if let Some(job) = batch.new_job.as_ref().filter(|_| batch.unless_running)
                && let Some(fp) = &job.fingerprint
                && let Some(existing) = find_running_job!(tx, job, fp, pg)
            {
                out.existing_job = Some(existing);
                tx.rollback().await?;
                return Ok(out);
            }
            let mut audit = batch.audit;
            if let Some(job) = &batch.new_job {
                insert_job!(tx, job, at);
                audit.insert(0, job_start(job)?);
            }
            settle_items!(tx, batch.items, &batch.job_status, at, pg);
            // Details rows this transaction adds; remembered once it commits.
            let mut fresh: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
            let mut witness: Vec<NewEvent> = Vec::new();
            if let Some(key) = key {
                let (seq, prev, crossed) = append_audit!(self, tx, key, audit, at, pg, fresh, out);
                if (crossed || batch.checkpoint) && seq > 0 {
                    sign_checkpoint!(self, tx, key, seq, prev, out, witness);
                }
            }
            enqueue_events!(self, tx, batch.events.into_iter().chain(witness).collect(), at, pg, fresh, out);
            tx.commit().await?;
            self.details.remember(fresh);
            out
        });
        self.advance_anchor(&out).await;
        Ok(out)
    }

    /// Writes a new checkpoint to the anchor file, off the async threads. The entries
    /// are committed: an anchor that lags is advanced at the next checkpoint, and an
    /// error here would only hide that they were.
    async fn advance_anchor(&self, out: &Committed) {
        if let (Some(a), Some(cp)) = (&self.anchor, &out.checkpoint) {
            let (a, cp) = (a.clone(), cp.clone());
            let advanced =
                tokio::task::spawn_blocking(move || a.advance(&cp).map_err(|e| (a, e))).await;
            if let Ok(Err((a, e))) = advanced {
                tracing::error!(anchor = %a.path().display(), error = %e, "could not advance the audit anchor");
            }
        }
    }
}

/// The `job.start` entry of a new job: its parameters, kind and item count.
fn job_start(job: &crate::NewJob) -> Result<NewEntry> {
    NewEntry::new(
        &job.actor,
        "job.start",
        &job.id,
        Outcome::Started,
        job.params
            .clone()
            .label("kind", job.kind)
            .count("items", job.items.len() as u64),
    )
}
