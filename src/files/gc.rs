//! Collecting blobs no file references: the server's `blob-gc` task and `coffer check
//! --repair` both end here.
//!
//! A list of candidates (blobs no row referenced a moment ago) may be stale by the time it is
//! acted on: an upload may have committed a row for one since. So each candidate is checked
//! again inside an IMMEDIATE transaction, the same write lock every upload's commit takes, and
//! moved out of the store while that lock is held ([`BlobStore::discard`]). A commit that
//! comes later finds its blob gone and links it again ([`crate::storage::Published`]).
//! Collection never runs while a backup holds `<state>/gc.lock` ([`GcLock`]). This module
//! never decides from an old snapshot of the file table, and never holds the write lock while
//! a blob's space is freed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::db::DbError;
use crate::db::files;
use crate::storage::{BlobStore, GcLock};

/// Candidates re-checked per write transaction, so uploads' commits never wait long.
pub const BATCH: usize = 256;

/// The outcome of one collection round.
#[derive(Debug, PartialEq, Eq)]
pub enum GcRound {
    /// A backup holds `gc.lock`: nothing was looked at; the next round tries again.
    HeldOff,
    /// These blobs were removed.
    Removed(Vec<String>),
}

/// Inside the caller's IMMEDIATE transaction: moves every candidate that no row references and
/// that is at least `min_age` old out of the store. Returns the blobs and where they went.
pub fn discard_unreferenced(
    tx: &Connection,
    store: &BlobStore,
    candidates: &[String],
    min_age: Duration,
) -> Result<Result<Vec<(String, PathBuf)>, std::io::Error>, DbError> {
    let mut discarded = Vec::new();
    for sha256 in candidates {
        if files::is_referenced(tx, sha256)? {
            continue;
        }
        match store.discard(sha256, min_age) {
            Ok(Some(trash)) => discarded.push((sha256.clone(), trash)),
            Ok(None) => {}
            Err(err) => return Ok(Err(err)),
        }
    }
    Ok(Ok(discarded))
}

/// Frees the space of discarded blobs (outside any transaction). Blocking.
pub fn remove_trash(discarded: &[(String, PathBuf)]) -> std::io::Result<()> {
    for (_, trash) in discarded {
        std::fs::remove_file(trash)?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// `coffer check --repair`'s collection, in its own process: takes `gc.lock` (`HeldOff` when
/// a backup holds it) and removes the `candidates` still unreferenced and at least `min_age`
/// old, batch by batch under the database write lock. Blocking.
pub fn collect_blocking(
    conn: &mut Connection,
    store: &BlobStore,
    gc_lock: &Path,
    candidates: &[String],
    min_age: Duration,
) -> Result<GcRound, RepairError> {
    let Some(_lock) = GcLock::try_exclusive(gc_lock)? else { return Ok(GcRound::HeldOff) };
    let mut removed = Vec::new();
    for batch in candidates.chunks(BATCH) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(DbError::from)?;
        let discarded = discard_unreferenced(&tx, store, batch, min_age)??;
        tx.commit().map_err(DbError::from)?;
        remove_trash(&discarded)?;
        removed.extend(discarded.into_iter().map(|(sha256, _)| sha256));
    }
    Ok(GcRound::Removed(removed))
}
