//! The SQLite database: connection setup, a small pool, and the only doors to it.
//!
//! Every connection runs WAL with `synchronous=FULL`, foreign keys on and a busy timeout.
//! Async code reaches the database only through [`Db::read`] and [`Db::write`], which run the
//! closure on one of the database's own threads (`threads`), so no SQLite call ever runs on an
//! async worker; writes run in an IMMEDIATE transaction so they take the write lock up front
//! instead of failing halfway.

pub mod api_tokens;
pub mod audit;
pub mod checkpoint;
pub mod files;
pub mod folders;
pub mod mail;
#[cfg(test)]
mod migration_tests;
mod migrations;
pub mod oidc;
mod schema_history;
pub mod sessions;
pub mod shares;
mod threads;
pub mod upload_links;
pub mod uploads;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use migrations::{LATEST_VERSION, MigrationError};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("database task failed: {0}")]
    Task(String),
}

#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// To the database threads, one connection each: their number bounds the connections
    /// open and the calls running at once.
    jobs: crossbeam_channel::Sender<threads::Job>,
}

/// Opens a connection with the pragmas every connection must have.
pub fn connect(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Requests run the same few dozen statements: keep them compiled (`prepare_cached`).
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl Db {
    /// Opens the database, creating it if needed, and brings its schema up to date.
    /// Blocking: call before the runtime serves requests or from `spawn_blocking`.
    pub fn open(path: &Path, busy_timeout: Duration, max_connections: usize) -> Result<Self, MigrationError> {
        let mut conn = connect(path, busy_timeout).map_err(MigrationError::Open)?;
        migrations::apply(&mut conn, path)?;
        let jobs = threads::start(max_connections, path.to_owned(), busy_timeout, conn)
            .map_err(|err| MigrationError::Threads(err.to_string()))?;
        Ok(Self { inner: Arc::new(Inner { path: path.to_owned(), jobs }) })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` with a connection on a database thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        self.with_connection(move |conn| f(conn)).await
    }

    /// Runs `f` inside an IMMEDIATE transaction on a database thread; commits when `f` returns
    /// `Ok`, rolls back otherwise.
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, DbError> + Send + 'static,
    {
        self.with_connection(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
    }

    async fn with_connection<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: threads::Job = Box::new(move |conn| {
            let _ = answer.send(conn.and_then(f));
        });
        let stopped = || DbError::Task("the database threads stopped".into());
        self.inner.jobs.send(job).map_err(|_| stopped())?;
        // A dropped answer means the closure panicked (its thread carries on).
        let result = answered.await.unwrap_or_else(|_| Err(DbError::Task("a database call panicked".into())));
        if matches!(result, Err(DbError::Sqlite(_))) {
            crate::metrics::get().database_errors.inc();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connection_gets_wal_full_sync_foreign_keys_and_the_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let conn = connect(&dir.path().join("coffer.db"), Duration::from_millis(4321)).unwrap();
        let text = |pragma: &str| conn.pragma_query_value(None, pragma, |row| row.get::<_, String>(0)).unwrap();
        let number = |pragma: &str| conn.pragma_query_value(None, pragma, |row| row.get::<_, i64>(0)).unwrap();
        assert_eq!(text("journal_mode"), "wal");
        assert_eq!(number("synchronous"), 2, "FULL");
        assert_eq!(number("foreign_keys"), 1);
        assert_eq!(number("busy_timeout"), 4321);
    }

    #[test]
    fn bundled_sqlite_has_the_wal_reset_fix() {
        // SQLite before 3.51.3 (except the 3.44.6 and 3.50.7 backports) can corrupt a WAL
        // database when two connections write or checkpoint at the same instant; backups and
        // `coffer check` add connections to the server's database.
        let conn = Connection::open_in_memory().unwrap();
        let version: String = conn.query_row("SELECT sqlite_version()", [], |row| row.get(0)).unwrap();
        assert!(rusqlite::version_number() >= 3_051_003, "bundled SQLite {version} lacks the WAL-reset fix");
        assert_eq!(rusqlite::version(), version, "the library linked is the one bundled");
    }

    #[tokio::test]
    async fn failed_write_rolls_back_and_leaves_the_pool_usable() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("coffer.db"), Duration::from_secs(1), 2).unwrap();
        let failed = db
            .write(|tx| {
                tx.execute("UPDATE instance SET instance_id = 'changed'", [])?;
                tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
                Ok(())
            })
            .await;
        assert!(failed.is_err());
        let id: String = db
            .read(|conn| Ok(conn.query_row("SELECT instance_id FROM instance", [], |row| row.get(0))?))
            .await
            .unwrap();
        assert_ne!(id, "changed", "the failed transaction left nothing behind");
    }

    #[tokio::test]
    async fn a_call_that_panics_mid_transaction_answers_an_error_and_leaves_no_lock_behind() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("coffer.db"), Duration::from_millis(200), 1).unwrap();
        let panicked = db
            .write(|tx| -> Result<(), DbError> {
                tx.execute("UPDATE instance SET instance_id = 'changed'", [])?;
                panic!("a bug in a database call");
            })
            .await;
        assert!(matches!(panicked, Err(DbError::Task(_))), "{panicked:?}");
        // The only thread carries on; had it kept the connection, the transaction would still
        // hold the write lock and this write would time out as busy.
        db.write(|tx| Ok(tx.execute("UPDATE instance SET instance_id = 'after'", [])?)).await.unwrap();
        let id: String = db
            .read(|conn| Ok(conn.query_row("SELECT instance_id FROM instance", [], |row| row.get(0))?))
            .await
            .unwrap();
        assert_eq!(id, "after");
    }
}
