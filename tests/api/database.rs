//! The database as the server leaves it on disk.

use crate::helpers::{Options, spawn_app, start};

#[tokio::test]
async fn database_runs_wal_and_migrations_are_recorded() {
    let mut app = spawn_app(Options::default());
    app.terminate();
    assert!(app.wait_exit().await.success());
    for file in ["coffer.db", "tls/self-signed.crt"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(app.state_dir.join(file)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o077, 0, "{file} is readable by others: {mode:o}");
    }
    let conn = rusqlite::Connection::open(app.state_dir.join("coffer.db")).unwrap();
    let mode: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let version: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
    assert_eq!(version, coffer::db::LATEST_VERSION);
    let check: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
    assert_eq!(check, "ok");
}

#[tokio::test]
async fn database_from_a_newer_coffer_is_refused_with_a_clear_message() {
    let mut app = spawn_app(Options::default());
    app.terminate();
    assert!(app.wait_exit().await.success());
    let state_dir = app.state_dir.clone();
    let conn = rusqlite::Connection::open(state_dir.join("coffer.db")).unwrap();
    conn.pragma_update(None, "user_version", coffer::db::LATEST_VERSION + 1).unwrap();
    drop(conn);

    let Err((status, log)) = start(Options { state_dir: Some(state_dir.clone()), ..Options::default() }) else {
        panic!("server started on a database from the future");
    };
    assert_eq!(status.code(), Some(1));
    assert!(log.contains("written by a newer Coffer"), "{log}");
    let conn = rusqlite::Connection::open(state_dir.join("coffer.db")).unwrap();
    let version: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
    assert_eq!(version, coffer::db::LATEST_VERSION + 1, "the newer database was left as it was");
}
