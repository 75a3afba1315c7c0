//! A bad store URL, a database that is not a ledger, a bad key file: each is a clear error
//! and nothing is overwritten.

use ledger::{Error, KeySource, Ledger};

#[tokio::test]
async fn an_unknown_scheme_names_the_schemes_we_take() {
    let e = Ledger::open("mysql://root@127.0.0.1/test", KeySource::None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(
        e.to_string().contains("sqlite://") && e.to_string().contains("postgres://"),
        "{e}"
    );
}

#[tokio::test]
async fn an_unreachable_postgres_is_unavailable_and_hides_the_password() {
    let e = Ledger::open(
        "postgres://cxg:hunter2@127.0.0.1:1/nothing",
        KeySource::None,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("127.0.0.1:1") && !msg.contains("hunter2"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_corrupt_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let junk: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&path, &junk).unwrap();
    let e = Ledger::open(&format!("sqlite://{}", path.display()), KeySource::None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Foreign(_)), "{e:?}");
    assert!(e.to_string().contains("not a SQLite database"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), junk, "not a byte changed");
    assert!(!dir.path().join("ledger.sqlite-wal").exists());
}

#[tokio::test]
async fn a_foreign_sqlite_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT)")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let e = Ledger::open(&format!("sqlite://{}", path.display()), KeySource::None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Foreign(_)), "{e:?}");
    assert!(e.to_string().contains("customers"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[tokio::test]
async fn a_foreign_postgres_database_is_refused() {
    let Some(store) = crate::postgres_store().await else {
        return;
    };
    crate::exec(&store, "CREATE TABLE orders (id INT)").await;
    let e = Ledger::open(&store.url, KeySource::None).await.unwrap_err();
    assert!(matches!(e, Error::Foreign(_)), "{e:?}");
    assert!(e.to_string().contains("orders"), "{e}");
}

#[tokio::test]
async fn unreadable_or_malformed_key_files_are_refused_and_kept() {
    let store = crate::sqlite_store().await;
    let dir = tempfile::tempdir().unwrap();
    // A directory where the key file should be.
    let e = Ledger::open(&store.url, KeySource::File(dir.path().to_path_buf()))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Key(_)), "{e:?}");
    assert!(e.to_string().contains("cannot read"), "{e}");
    // Not a key.
    let junk = dir.path().join("junk.key");
    std::fs::write(&junk, "hello\n").unwrap();
    set_mode(&junk, 0o600);
    let e = Ledger::open(&store.url, KeySource::File(junk.clone()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a cxguard key file"), "{e}");
    assert_eq!(std::fs::read_to_string(&junk).unwrap(), "hello\n");
    // A real key that others can read.
    let open_key = dir.path().join("open.key");
    ledger::AuditKey::create(&open_key).unwrap();
    set_mode(&open_key, 0o644);
    let e = Ledger::open(&store.url, KeySource::File(open_key))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("chmod 600"), "{e}");
}

fn set_mode(path: &std::path::Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}
