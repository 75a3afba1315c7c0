//! Folding a SQLite ledger's write-ahead log into its database file, off the commit
//! path.
//!
//! Left to itself, SQLite checkpoints inside the commit that takes the log past 1,000
//! pages. That checkpoint syncs the disk, and every append behind it waits. Measured
//! with `cargo bench -p cxguard --bench serve` on 2 cores, in three paired runs, p99
//! was 6.4–7.2 ms with those checkpoints and 4.1–4.3 ms without them.
//!
//! So the store's connections never checkpoint by themselves (`wal_autocheckpoint = 0`,
//! set in `store`). This task does it instead, on a connection of the pool, a quarter
//! of a second after the log changed. It uses `PASSIVE` mode, which waits for no reader
//! and no writer. The log is checkpointed at least as often as before, so
//! `ledger.sqlite` alone lags the ledger by a fraction of a second rather than by up to
//! 1,000 pages. `Ledger::close` still folds in the rest (`TRUNCATE`).
//!
//! Not here: opening the store (`store`), or what is written.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use sqlx::SqlitePool;

/// How long after the log changed it is checkpointed, at most (plus the checkpoint).
const EVERY: Duration = Duration::from_millis(250);

/// Keeps the checkpointing task going; it ends once every clone is dropped or the pool
/// is closed.
#[derive(Debug, Clone)]
pub(crate) struct Checkpointer {
    _alive: Arc<()>,
}

/// The log's length and modification time: it changed if either did.
fn stamp(wal: &PathBuf) -> Option<(u64, Option<SystemTime>)> {
    let m = std::fs::metadata(wal).ok()?;
    (m.len() > 0).then(|| (m.len(), m.modified().ok()))
}

/// Starts checkpointing the log `wal` (the database's path with `-wal` appended) of the
/// database `pool` opens.
pub(crate) fn spawn(pool: SqlitePool, wal: PathBuf) -> Checkpointer {
    let alive = Arc::new(());
    let weak: Weak<()> = Arc::downgrade(&alive);
    tokio::spawn(async move {
        let mut folded = None;
        loop {
            tokio::time::sleep(EVERY).await;
            if weak.strong_count() == 0 || pool.is_closed() {
                return;
            }
            // Taken before the checkpoint: what is written during it is seen next time.
            let now = stamp(&wal);
            if now.is_none() || now == folded {
                continue;
            }
            match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                Ok(_) => folded = now,
                Err(e) if pool.is_closed() => {
                    tracing::debug!(error = %e, "the ledger closed during a checkpoint");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not checkpoint the ledger's write-ahead log; retrying")
                }
            }
        }
    });
    Checkpointer { _alive: alive }
}
