//! The audit chain as `verify` reads it: pages of entries exactly as stored, every text
//! column of a page in one buffer (one allocation per page, not nine per entry), read
//! ahead of the checking on a thread of their own.
//!
//! A SQLite ledger in a file is read through rusqlite in one read transaction (one
//! snapshot of the whole chain, rows read in place); sqlx hands rows over one at a time
//! from its worker thread, which held verify near 200,000 entries/s. PostgreSQL (and an
//! in-memory SQLite) is read through the pool in one read-only snapshot.
//!
//! On PostgreSQL the join of entries to their details is done here when the details fit
//! in [`DETAILS_CAP`]: the server's join (a hash join, then a sort of the whole log by
//! `seq`, spilled to disk past `work_mem`) sent nothing until the sort was done, and
//! verify ran at about a third of a plain SELECT of as many rows. The details are read
//! first (there are few: the entries of a job share one row), then the entries in `seq`
//! order straight from their primary key, so rows stream from the first one. A ledger
//! whose details would not fit is read through the server's join, as before.
//!
//! The details are held in id order, looked up where the last one was found (entries of
//! one batch name ids in order) and else by binary search, and the columns of both
//! queries are decoded without sqlx's type check per row (their types are the schema's
//! own): with a hash map and checked reads, 100,000 entries of their own details each
//! read at about 470,000 entries/s on a 2-core Xeon, and at about 610,000 without.

use sqlx::Row;
use tokio::sync::mpsc;

use crate::audit::Checkpoint;
use crate::error::{Error, Result};
use crate::store::Pool;

/// Entries per page.
const PAGE: usize = 8_192;
/// Pages read ahead of the checking.
const AHEAD: usize = 3;

/// Each entry with its details text (empty if its row is gone, which its hash then
/// shows) and its stored hash.
const CHECKPOINTS: &str =
    "SELECT seq, hash, at, key_id, signature FROM audit_checkpoints ORDER BY seq";
const HEAD: &str = "SELECT seq, hash, at, key_id, signature FROM audit_head WHERE id = 1";

const SELECT: &str = "SELECT e.seq, e.at, e.actor, e.operation, e.target, e.outcome, \
    COALESCE(d.details, ''), e.hash FROM audit_entries e \
    LEFT JOIN audit_details d ON d.id = e.details_id ORDER BY e.seq";

/// The details texts by id (PostgreSQL, see the module's text).
const DETAILS: &str = "SELECT id, details FROM audit_details ORDER BY id";
/// Each entry as stored, with the id of its details, in order.
const ENTRIES: &str = "SELECT seq, at, actor, operation, target, outcome, details_id, hash \
    FROM audit_entries ORDER BY seq";
/// Most bytes the details read by id may take in memory (their text and about 40 bytes
/// an id), so verify's memory stays bounded whatever the ledger holds.
const DETAILS_CAP: usize = 64 << 20;

/// Text columns of an entry: at, actor, operation, target, outcome, details.
const TEXTS: usize = 6;

/// One stored entry of a [`Page`]: its sequence number, where its six text columns
/// (at, actor, operation, target, outcome, details) end in the page's text (the first
/// starts at `start`), and its stored hash (`None` if it is not 32 bytes).
pub(crate) struct Raw {
    pub seq: i64,
    start: usize,
    ends: [usize; TEXTS],
    pub hash: Option<[u8; 32]>,
}

/// The signed head and the checkpoints, read in the same snapshot as the entries that
/// follow them: a head read in a query of its own, while another process appends, named
/// entries the snapshot did not have, or missed entries it did ("appended outside
/// cxguard" on an untampered ledger).
#[derive(Default)]
pub(crate) struct Signed {
    pub checkpoints: Vec<Checkpoint>,
    pub head: Option<Checkpoint>,
}

/// What the reader sends: first the [`Signed`] part, then the entries page by page.
pub(crate) enum Part {
    Signed(Signed),
    Page(Page),
}

/// Entries as stored, in order.
#[derive(Default)]
pub(crate) struct Page {
    text: String,
    pub rows: Vec<Raw>,
}

impl Page {
    fn with_capacity(rows: usize) -> Self {
        Page {
            text: String::with_capacity(rows * 240),
            rows: Vec::with_capacity(rows),
        }
    }

    /// Adds an entry; once the page holds [`PAGE`] entries, returns it and starts anew.
    fn push<'a>(
        &mut self,
        seq: i64,
        columns: impl IntoIterator<Item = &'a str>,
        hash: &[u8],
    ) -> Option<Page> {
        let start = self.text.len();
        let mut ends = [start; TEXTS];
        for (end, c) in ends.iter_mut().zip(columns) {
            self.text.push_str(c);
            *end = self.text.len();
        }
        let hash = hash.try_into().ok();
        self.rows.push(Raw {
            seq,
            start,
            ends,
            hash,
        });
        (self.rows.len() == PAGE).then(|| std::mem::replace(self, Page::with_capacity(PAGE)))
    }

    /// Column `i` (0 = at … 5 = details) of `r`.
    pub fn column(&self, r: &Raw, i: usize) -> &str {
        let from = if i == 0 { r.start } else { r.ends[i - 1] };
        &self.text[from..r.ends[i]]
    }
}

/// The whole chain in order, page by page, read ahead on a task of its own.
pub(crate) fn read_all(pool: &Pool) -> mpsc::Receiver<Result<Part>> {
    let (tx, rx) = mpsc::channel(AHEAD);
    match sqlite_file(pool) {
        Some(path) => {
            tokio::task::spawn_blocking(move || {
                if let Err(e) = read_sqlite(&path, &tx) {
                    let _ = tx.blocking_send(Err(e));
                }
            });
        }
        None => {
            let pool = pool.clone();
            tokio::spawn(async move {
                if let Err(e) = read_pool(&pool, &tx).await {
                    let _ = tx.send(Err(e)).await;
                }
            });
        }
    }
    rx
}

/// The database file of a SQLite ledger that lives in one.
fn sqlite_file(pool: &Pool) -> Option<std::path::PathBuf> {
    let Pool::Sqlite(p) = pool else { return None };
    let opts = p.connect_options();
    let path = opts.get_filename();
    let s = path.to_string_lossy();
    (!s.is_empty() && !s.starts_with(':') && !s.contains("mode=memory") && path.is_file())
        .then(|| path.to_path_buf())
}

fn read_sqlite(path: &std::path::Path, tx: &mpsc::Sender<Result<Part>>) -> Result<()> {
    use rusqlite::OpenFlags;
    let fail = |e: rusqlite::Error| Error::Unavailable(format!("reading the audit log: {e}"));
    let c = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fail)?;
    c.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(fail)?;
    // One snapshot of the whole chain: appends made meanwhile are not half-seen.
    c.execute_batch("BEGIN").map_err(fail)?;
    let signed_row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Checkpoint> {
        Ok(Checkpoint {
            seq: r.get(0)?,
            hash: r.get(1)?,
            at: r.get(2)?,
            key_id: r.get(3)?,
            signature: r.get(4)?,
        })
    };
    let checkpoints = c
        .prepare(CHECKPOINTS)
        .and_then(|mut st| {
            st.query_map([], signed_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(fail)?;
    let head = {
        let mut st = c.prepare(HEAD).map_err(fail)?;
        let mut rows = st.query_map([], signed_row).map_err(fail)?;
        rows.next().transpose().map_err(fail)?
    };
    if tx
        .blocking_send(Ok(Part::Signed(Signed { checkpoints, head })))
        .is_err()
    {
        return Ok(());
    }
    let mut st = c.prepare(SELECT).map_err(fail)?;
    let mut rows = st.query([]).map_err(fail)?;
    let mut page = Page::with_capacity(PAGE);
    while let Some(r) = rows.next().map_err(fail)? {
        let seq: i64 = r.get(0).map_err(fail)?;
        let mut cols: [&str; TEXTS] = [""; TEXTS];
        for (i, c) in cols.iter_mut().enumerate() {
            *c = r
                .get_ref(i + 1)
                .and_then(|v| Ok(v.as_str()?))
                .map_err(|e| {
                    Error::Invalid(format!("entry {seq}: column {} is not text ({e})", i + 1))
                })?;
        }
        // A hash edited into text or NULL is not 32 bytes: verify names the entry.
        let hash = r
            .get_ref(TEXTS + 1)
            .ok()
            .and_then(|v| v.as_blob().ok())
            .unwrap_or(&[]);
        if let Some(full) = page.push(seq, cols, hash)
            && tx.blocking_send(Ok(Part::Page(full))).is_err()
        {
            return Ok(()); // the checker stopped at a broken entry
        }
    }
    if !page.rows.is_empty() {
        let _ = tx.blocking_send(Ok(Part::Page(page)));
    }
    Ok(())
}

/// Every details text of the ledger in id order, in one buffer, or `None` if they would
/// take more than [`DETAILS_CAP`].
struct DetailsById {
    text: String,
    /// The ids, ascending, and where each one's text ends in `text`.
    ids: Vec<i64>,
    ends: Vec<usize>,
    /// Where the last lookup found its id: entries mostly name the details of the entry
    /// before them or the next ones, so most lookups need no search.
    hint: usize,
}

impl DetailsById {
    async fn read(t: &mut sqlx::PgConnection) -> Result<Option<Self>> {
        use futures_util::TryStreamExt as _;
        let mut d = DetailsById {
            text: String::new(),
            ids: Vec::new(),
            ends: Vec::new(),
            hint: 0,
        };
        let mut rows = sqlx::query(DETAILS).fetch(t);
        while let Some(r) = rows.try_next().await? {
            // The columns' types are the schema's own: no need to check them per row.
            let text: &str = r.try_get_unchecked(1)?;
            if d.text.len() + text.len() + 40 * (d.ids.len() + 1) > DETAILS_CAP {
                return Ok(None);
            }
            // Grown by doubling, but never past the bound.
            if d.text.capacity() - d.text.len() < text.len() {
                let want = (d.text.len() * 2).clamp(d.text.len() + text.len(), DETAILS_CAP);
                d.text.reserve_exact(want - d.text.len());
            }
            let id: i64 = r.try_get_unchecked(0)?;
            if d.ids.last().is_some_and(|&last| last >= id) {
                return Err(Error::Invalid(format!(
                    "audit details {id} came out of order"
                )));
            }
            d.text.push_str(text);
            d.ids.push(id);
            d.ends.push(d.text.len());
        }
        Ok(Some(d))
    }

    /// The text of details `id`, empty if there is no such row (the entry's hash then
    /// shows it, as the server's `LEFT JOIN` did).
    fn get(&mut self, id: i64) -> &str {
        let at = if self.ids.get(self.hint) == Some(&id) {
            Some(self.hint)
        } else if self.ids.get(self.hint + 1) == Some(&id) {
            Some(self.hint + 1)
        } else {
            self.ids.binary_search(&id).ok()
        };
        let Some(i) = at else { return "" };
        self.hint = i;
        let from = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[from..self.ends[i]]
    }
}

/// A PostgreSQL ledger in one read-only snapshot, entries and details joined here;
/// `false` (nothing sent) when the details would not fit in memory.
async fn read_postgres(
    t: &mut sqlx::PgConnection,
    tx: &mpsc::Sender<Result<Part>>,
) -> Result<bool> {
    use futures_util::TryStreamExt as _;
    let Some(mut details) = DetailsById::read(t).await? else {
        return Ok(false);
    };
    let mut rows = sqlx::query(ENTRIES).fetch(t);
    let mut page = Page::with_capacity(PAGE);
    while let Some(r) = rows.try_next().await? {
        let mut cols: [&str; TEXTS] = [""; TEXTS];
        // The columns' types are the schema's own: no need to check them per row.
        for (i, c) in cols.iter_mut().take(TEXTS - 1).enumerate() {
            *c = r.try_get_unchecked(i + 1)?;
        }
        cols[TEXTS - 1] = details.get(r.try_get_unchecked(TEXTS)?);
        let hash: &[u8] = r
            .try_get_unchecked::<Option<&[u8]>, _>(TEXTS + 1)?
            .unwrap_or(&[]);
        if let Some(full) = page.push(r.try_get_unchecked(0)?, cols, hash)
            && tx.send(Ok(Part::Page(full))).await.is_err()
        {
            return Ok(true);
        }
    }
    if !page.rows.is_empty() {
        let _ = tx.send(Ok(Part::Page(page))).await;
    }
    Ok(true)
}

/// The head and checkpoints, read in the transaction `t` (the entries' snapshot).
macro_rules! read_signed {
    ($t:expr) => {{
        let to_cp = |r: &_| -> Result<Checkpoint> {
            let r: &_ = r;
            Ok(Checkpoint {
                seq: Row::try_get(r, "seq")?,
                hash: Row::try_get(r, "hash")?,
                at: Row::try_get(r, "at")?,
                key_id: Row::try_get(r, "key_id")?,
                signature: Row::try_get(r, "signature")?,
            })
        };
        let checkpoints = sqlx::query(CHECKPOINTS)
            .fetch_all(&mut *$t)
            .await?
            .iter()
            .map(to_cp)
            .collect::<Result<Vec<_>>>()?;
        let head = sqlx::query(HEAD)
            .fetch_optional(&mut *$t)
            .await?
            .as_ref()
            .map(to_cp)
            .transpose()?;
        Signed { checkpoints, head }
    }};
}

/// Every entry joined to its details by the server, in the transaction `t`.
macro_rules! read_joined {
    ($t:expr, $tx:expr) => {{
        use futures_util::TryStreamExt as _;
        let mut rows = sqlx::query(SELECT).fetch(&mut *$t);
        let mut page = Page::with_capacity(PAGE);
        while let Some(r) = rows.try_next().await? {
            let mut cols: [&str; TEXTS] = [""; TEXTS];
            for (i, c) in cols.iter_mut().enumerate() {
                *c = r.try_get(i + 1)?;
            }
            let hash: &[u8] = r.try_get::<Option<&[u8]>, _>(TEXTS + 1)?.unwrap_or(&[]);
            if let Some(full) = page.push(r.try_get(0)?, cols, hash)
                && $tx.send(Ok(Part::Page(full))).await.is_err()
            {
                return Ok(());
            }
        }
        if !page.rows.is_empty() {
            let _ = $tx.send(Ok(Part::Page(page))).await;
        }
    }};
}

async fn read_pool(pool: &Pool, tx: &mpsc::Sender<Result<Part>>) -> Result<()> {
    // One read-only snapshot for the head, the checkpoints and the entries, the entries
    // in one query, streamed: no round trip per page, and appends made meanwhile are not
    // half-seen.
    match pool {
        Pool::Postgres(p) => {
            let mut t = p
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?;
            let signed = read_signed!(t);
            if tx.send(Ok(Part::Signed(signed))).await.is_err() || read_postgres(&mut t, tx).await?
            {
                return Ok(());
            }
            read_joined!(t, tx);
        }
        Pool::Sqlite(p) => {
            let mut t = p.begin().await?;
            let signed = read_signed!(t);
            if tx.send(Ok(Part::Signed(signed))).await.is_err() {
                return Ok(());
            }
            read_joined!(t, tx);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::DetailsById;

    #[test]
    fn details_are_found_by_id_in_any_order_and_a_missing_id_reads_empty() {
        let mut d = DetailsById {
            text: "abcd".into(),
            ids: vec![1, 2, 5, 9],
            ends: vec![1, 2, 3, 4],
            hint: 0,
        };
        // In order (the hint), out of order (a search), and ids with no row.
        let seen: Vec<String> = [1, 2, 5, 1, 9, 9, 3, 0, 10, 5]
            .into_iter()
            .map(|id| d.get(id).to_string())
            .collect();
        assert_eq!(seen, ["a", "b", "c", "a", "d", "d", "", "", "", "c"]);
    }
}
