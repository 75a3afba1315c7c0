//! Opening the store: SQLite (a file, WAL mode) or PostgreSQL, chosen by URL; the
//! schema migrations of each backend, applied automatically; and a refusal to touch a
//! database that is not a cxguard ledger.
//!
//! Both backends run the same queries (`$1`-style placeholders work on both); where SQL
//! differs — write locking, `SKIP LOCKED` — the code asks `Pool::is_postgres`. The
//! `on_backend!` macro expands one body for each backend's concrete pool type, which is
//! how one code path serves two sqlx drivers without `AnyPool`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};

use crate::error::{Error, Result};

/// `sql` for the backend: on SQLite, numbered parameters `$1, $2, …` that appear once
/// each and in order become anonymous `?`. SQLite finds a named parameter's name by a
/// walk along the statement's list of names, and sqlx asks for every parameter's name,
/// so a statement of n named parameters cost n²/2 steps: `sqlite3_bind_parameter_name`
/// was 5% of a bulk job's CPU with 256 per statement. Anonymous ones are not in that
/// list. Any other use of `$` (a number repeated or out of order) is left as written.
pub(crate) fn positional(pg: bool, sql: String) -> String {
    if pg {
        return sql;
    }
    let mut out = String::with_capacity(sql.len());
    let mut next = 1u32;
    let mut rest = sql.as_str();
    while let Some(i) = rest.find('$') {
        let digits = rest[i + 1..].bytes().take_while(u8::is_ascii_digit).count();
        match rest[i + 1..i + 1 + digits].parse::<u32>() {
            Ok(n) if n == next => {
                out.push_str(&rest[..i]);
                out.push('?');
                next += 1;
                rest = &rest[i + 1 + digits..];
            }
            _ => return sql,
        }
    }
    out.push_str(rest);
    out
}

/// Migrations, in order, per backend. A migration is applied once, recorded in
/// `cxguard_meta` as `schema_version`.
const SQLITE_MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_resume.sql"),
    include_str!("../migrations/sqlite/0003_audit_target.sql"),
    include_str!("../migrations/sqlite/0004_compacted.sql"),
    include_str!("../migrations/sqlite/0005_compact_audit.sql"),
    include_str!("../migrations/sqlite/0006_compact_outbox.sql"),
    include_str!("../migrations/sqlite/0007_job_lease.sql"),
];
const POSTGRES_MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_resume.sql"),
    include_str!("../migrations/postgres/0003_audit_target.sql"),
    include_str!("../migrations/postgres/0004_compacted.sql"),
    include_str!("../migrations/postgres/0005_compact_audit.sql"),
    include_str!("../migrations/postgres/0006_compact_outbox.sql"),
    include_str!("../migrations/postgres/0007_job_lease.sql"),
];

/// What `cxguard_meta.ledger` holds in every cxguard ledger.
const LEDGER_MARK: &str = "cxguard-ledger";

#[derive(Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Pool::Postgres(_))
    }
}

/// Runs `$body` with `$p` bound to the concrete pool of whichever backend is open.
macro_rules! on_backend {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_backend;

/// Begins a write transaction on `$p` (from `on_backend!`). On SQLite it takes the
/// write lock at once (`BEGIN IMMEDIATE`), so two processes never both read the chain's
/// head and then collide; PostgreSQL's writers serialise on an advisory lock where they must.
macro_rules! begin_write {
    ($pool:expr, $p:ident) => {
        if $pool.is_postgres() {
            $p.begin().await?
        } else {
            $p.begin_with("BEGIN IMMEDIATE").await?
        }
    };
}
pub(crate) use begin_write;

/// Where the store is, with any password hidden, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Whether opening may create the ledger, or must find one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    Create,
    Existing,
}

/// Creates `dir` and any missing parent with mode 0700: the ledger, keys and anchor
/// live there. Directories that exist are left as they are.
pub(crate) fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| Error::Config(format!("cannot create directory {}: {e}", dir.display())))
}

pub(crate) async fn open(url: &str, mode: OpenMode) -> Result<Pool> {
    let shown = redact(url);
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    match scheme {
        "sqlite" => open_sqlite(url, &shown, mode).await,
        "postgres" | "postgresql" => open_postgres(url, &shown, mode).await,
        _ => Err(Error::Config(format!(
            "store URL {shown:?}: unknown scheme {scheme:?}; use sqlite://PATH or postgres://USER@HOST/DB"
        ))),
    }
}

/// Pages of write-ahead log SQLite gathers before it folds them into the database.
const WAL_PAGES: &str = "10000";

async fn open_sqlite(url: &str, shown: &str, mode: OpenMode) -> Result<Pool> {
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::Config(format!("store URL {shown:?}: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
        // 1 MiB of page cache per connection rather than SQLite's 2: appends touch the
        // right edge of a few B-trees, and each connection's cache lives in memory of
        // its own (a million-contact anonymize: 48.8 MiB peak RSS, 49.3-50.0 with 2).
        .pragma("cache_size", "-1024")
        // SQLite folds its write-ahead log into the database inside the commit that takes
        // the log past this many pages, syncing the disk while every append behind it
        // waits. At its default (1,000 pages, 4 MiB) `serve` did that five times a second
        // under load, and its p99 was 6.6-7.2 ms; at 10,000 (about 40 MiB of log, reused
        // after each fold) 4.3-6.4 ms in the same paired runs, at the same peak RSS. What a
        // power cut can take is unchanged in kind (synchronous = NORMAL: the log is synced
        // when it is folded); `close` folds the rest.
        .pragma("wal_autocheckpoint", WAL_PAGES);
    let path = opts.get_filename().to_path_buf();
    let empty = std::fs::metadata(&path)
        .map(|m| m.len() == 0)
        .unwrap_or(true);
    if mode == OpenMode::Existing && empty {
        return Err(Error::NotFound(format!(
            "store {shown}: there is no ledger at {} (deleted, moved, or never written); nothing was created",
            path.display()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent).map_err(|e| Error::Config(format!("store {shown:?}: {e}")))?;
    }
    if !path.exists() {
        // Created here, mode 0600, so SQLite (and its -wal and -shm files, which take the
        // database's mode) never exist readable by others.
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        if let Err(e) = o.open(&path)
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(Error::Config(format!(
                "store {shown:?}: cannot create {}: {e}",
                path.display()
            )));
        }
    }
    // Look before we leap: a file that is not SQLite, or a SQLite database of someone
    // else's, is refused before anything writes to it (WAL mode itself is a write).
    if path.exists() {
        check_sqlite_file(&path, shown).await?;
    }
    // Three connections: the writer, a reader (the deliverer, a status read) and one to
    // spare. Each SQLite connection is a worker thread with its own page cache and, in
    // glibc, its own malloc arena: with eight, a million-contact job peaked at 81 MiB
    // of RSS; with three, 57 MiB (and 6,100 rather than 4,300 contacts/s).
    let pool = SqlitePoolOptions::new()
        .max_connections(3)
        // No ping before each use: a SQLite connection is a thread of this process, not
        // a socket that can go stale, and the ping was one more round trip to that thread
        // before every transaction.
        .test_before_acquire(false)
        .connect_with(opts)
        .await
        .map_err(|e| Error::Unavailable(format!("store {shown}: {e}")))?;
    let pool = Pool::Sqlite(pool);
    migrate(&pool, shown, mode).await?;
    Ok(pool)
}

async fn check_sqlite_file(path: &std::path::Path, shown: &str) -> Result<()> {
    let mut header = [0u8; 16];
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Ok(());
    }
    use std::io::Read;
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header));
    if read.is_err() || &header != b"SQLite format 3\0" {
        return Err(Error::Foreign(format!(
            "store {shown}: {} is not a SQLite database (corrupt, or another kind of file); it was left untouched",
            path.display()
        )));
    }
    let opts = SqliteConnectOptions::new().filename(path).read_only(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .map_err(|e| Error::Unavailable(format!("store {shown}: {e}")))?;
    let tables: Vec<String> = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&pool)
        .await
        .map_err(|e| {
            Error::Foreign(format!(
                "store {shown}: cannot read {}: {e}; it was left untouched",
                path.display()
            ))
        })?
        .iter()
        .filter_map(|r| r.try_get::<String, _>("name").ok())
        .collect();
    pool.close().await;
    if !tables.is_empty() && !tables.iter().any(|t| t == "cxguard_meta") {
        return Err(Error::Foreign(format!(
            "store {shown}: {} is a SQLite database of something else (tables: {}); it was left untouched",
            path.display(),
            tables.join(", ")
        )));
    }
    Ok(())
}

/// Whether a PostgreSQL URL sends the ledger in clear over a network: a host that is not
/// loopback (nor a Unix socket) without `sslmode=require`, `verify-ca` or `verify-full`.
pub(crate) fn postgres_in_clear(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    let host = u.host_str().unwrap_or("");
    let local = host.is_empty()
        || host.eq_ignore_ascii_case("localhost")
        || host.starts_with('/')
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let tls = u.query_pairs().any(|(k, v)| {
        k == "sslmode" && matches!(v.as_ref(), "require" | "verify-ca" | "verify-full")
    });
    !local && !tls
}

async fn open_postgres(url: &str, shown: &str, mode: OpenMode) -> Result<Pool> {
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| Error::Config(format!("store URL {shown:?}: {e}")))?;
    if postgres_in_clear(url) {
        tracing::warn!(
            store = shown,
            "the ledger's PostgreSQL URL has no sslmode=verify-full (or require) and the host is not loopback: audit entries and the job journal may cross the network in clear"
        );
    }
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .map_err(|e| Error::Unavailable(format!("store {shown}: cannot connect: {e}")))?;
    let pool = Pool::Postgres(pool);
    migrate(&pool, shown, mode).await?;
    Ok(pool)
}

/// Applies pending migrations. A database with tables but no `cxguard_meta` is someone
/// else's, and is refused. With [`OpenMode::Existing`], an empty database is an error and
/// nothing is created in it.
async fn migrate(pool: &Pool, shown: &str, mode: OpenMode) -> Result<()> {
    let migrations = if pool.is_postgres() {
        POSTGRES_MIGRATIONS
    } else {
        SQLITE_MIGRATIONS
    };
    on_backend!(pool, p => {
        let mut tx = p.begin().await?;
        if pool.is_postgres() {
            // Two processes opening a new database at once: one migrates, the other waits.
            sqlx::query("SELECT pg_advisory_xact_lock(7243001)").execute(&mut *tx).await?;
        }
        let list_tables = if pool.is_postgres() {
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()"
        } else {
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        };
        let tables: Vec<String> = sqlx::query(list_tables)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .filter_map(|r| r.try_get::<String, _>("name").ok())
            .collect();
        let version: i64 = if tables.iter().any(|t| t == "cxguard_meta") {
            let mark: Option<String> = sqlx::query("SELECT value FROM cxguard_meta WHERE key = 'ledger'")
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("value"))
                .transpose()?;
            if mark.as_deref() != Some(LEDGER_MARK) {
                return Err(Error::Foreign(format!("store {shown}: cxguard_meta exists but does not mark a cxguard ledger")));
            }
            sqlx::query("SELECT value FROM cxguard_meta WHERE key = 'schema_version'")
                .fetch_one(&mut *tx)
                .await?
                .try_get::<String, _>("value")?
                .parse()
                .map_err(|_| Error::Foreign(format!("store {shown}: unreadable schema_version")))?
        } else if !tables.is_empty() {
            return Err(Error::Foreign(format!(
                "store {shown}: the database holds other tables ({}); use an empty database for the ledger",
                tables.join(", ")
            )));
        } else if mode == OpenMode::Existing {
            return Err(Error::NotFound(format!(
                "store {shown}: there is no cxguard ledger in this database; nothing was created"
            )));
        } else {
            0
        };
        if version as usize > migrations.len() {
            return Err(Error::Foreign(format!(
                "store {shown}: schema version {version} is newer than this cxguard knows ({}); upgrade cxguard",
                migrations.len()
            )));
        }
        for (i, sql) in migrations.iter().enumerate().skip(version as usize) {
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty() && !s.lines().all(|l| l.trim_start().starts_with("--"))) {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            let v = (i + 1).to_string();
            if i == 0 {
                sqlx::query("INSERT INTO cxguard_meta (key, value) VALUES ('ledger', $1)").bind(LEDGER_MARK).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO cxguard_meta (key, value) VALUES ('schema_version', $1)").bind(&v).execute(&mut *tx).await?;
            } else {
                sqlx::query("UPDATE cxguard_meta SET value = $1 WHERE key = 'schema_version'").bind(&v).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbered_parameters_in_order_become_anonymous_on_sqlite_only() {
        use super::positional;
        let sql = "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)".to_string();
        assert_eq!(
            positional(false, sql.clone()),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
        assert_eq!(positional(true, sql.clone()), sql);
        for kept in [
            "VALUES ($1, $3, $2)",
            "WHERE a = $1 OR b = $1",
            "x = $2",
            "no parameters",
        ] {
            assert_eq!(positional(false, kept.to_string()), kept);
        }
        assert_eq!(
            positional(false, "a = $1 AND b = $2".into()),
            "a = ? AND b = ?"
        );
    }

    #[test]
    fn postgres_in_clear_only_off_loopback_without_tls() {
        use super::postgres_in_clear as clear;
        assert!(!clear("postgres://postgres@127.0.0.1:5432/test"));
        assert!(!clear("postgres://u@localhost/db"));
        assert!(!clear("postgres://u@[::1]/db"));
        assert!(clear("postgres://u@db.example.com/x"));
        assert!(clear("postgres://u@db.example.com/x?sslmode=prefer"));
        assert!(!clear("postgres://u@db.example.com/x?sslmode=verify-full"));
        assert!(!clear("postgres://u@db.example.com/x?sslmode=require"));
    }
}
