//! Embedded, versioned schema migrations, applied at start.
//!
//! The schema version lives in `PRAGMA user_version`. Each migration runs in its own IMMEDIATE
//! transaction together with the version bump, so a crash leaves the database at one version or
//! the next, never between. Before migrating a database that already holds data, a copy is
//! written beside it with `VACUUM INTO`. Migrations only add: they never drop or rewrite data a
//! user could miss. A database written by a newer Coffer is refused, never "downgraded".

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::schema_history::MIGRATIONS;

pub const LATEST_VERSION: u32 = MIGRATIONS.len() as u32;

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("cannot open the database: {0}")]
    Open(rusqlite::Error),
    #[error(
        "database {path} has schema version {found}, but this Coffer ({coffer}) knows versions up to {LATEST_VERSION}: \
         it was written by a newer Coffer. Install that version again, or restore a backup made by this one"
    )]
    NewerSchema { path: String, found: u32, coffer: &'static str },
    #[error("cannot copy the database to {copy} before migrating: {source}")]
    Backup { copy: String, source: rusqlite::Error },
    #[error("migration to schema version {version} failed, the database is unchanged at version {from}: {source}")]
    Step { version: u32, from: u32, source: rusqlite::Error },
    #[error("cannot start the database threads: {0}")]
    Threads(String),
}

pub(super) fn schema_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Brings the schema to [`LATEST_VERSION`].
pub fn apply(conn: &mut Connection, path: &Path) -> Result<(), MigrationError> {
    migrate_to(conn, path, LATEST_VERSION)
}

/// Brings the schema to `target` (at most [`LATEST_VERSION`]); tests stop at older versions.
pub(super) fn migrate_to(conn: &mut Connection, path: &Path, target: u32) -> Result<(), MigrationError> {
    let found = schema_version(conn).map_err(MigrationError::Open)?;
    if found > LATEST_VERSION {
        return Err(MigrationError::NewerSchema {
            path: path.display().to_string(),
            found,
            coffer: env!("CARGO_PKG_VERSION"),
        });
    }
    if found >= target {
        return Ok(());
    }
    if found > 0 {
        let copy = format!("{}.before-v{}", path.display(), found + 1);
        let _ = std::fs::remove_file(&copy);
        conn.execute("VACUUM INTO ?1", [&copy])
            .map_err(|source| MigrationError::Backup { copy: copy.clone(), source })?;
        tracing::info!(%copy, from = found, to = LATEST_VERSION, "copied the database before migrating");
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().take(target as usize).skip(found as usize) {
        let version = index as u32 + 1;
        let mut step = || -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()
        };
        step().map_err(|source| MigrationError::Step { version, from: version - 1, source })?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_database_reaches_latest_version_and_reapplying_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.db");
        let mut conn = Connection::open(&path).unwrap();
        apply(&mut conn, &path).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), LATEST_VERSION);
        let id: String = conn.query_row("SELECT instance_id FROM instance", [], |row| row.get(0)).unwrap();
        apply(&mut conn, &path).unwrap();
        let again: String = conn.query_row("SELECT instance_id FROM instance", [], |row| row.get(0)).unwrap();
        assert_eq!(id, again);
        assert_eq!(id.len(), 32);
    }

    #[test]
    fn newer_schema_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", LATEST_VERSION + 7).unwrap();
        let err = apply(&mut conn, &path).unwrap_err();
        assert!(matches!(err, MigrationError::NewerSchema { found, .. } if found == LATEST_VERSION + 7));
        assert!(err.to_string().contains("written by a newer Coffer"));
        assert_eq!(schema_version(&conn).unwrap(), LATEST_VERSION + 7);
    }
}
