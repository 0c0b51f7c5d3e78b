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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, mpsc};
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::auth::{Credential, Principal};
    use crate::clock::Clock;
    use crate::db::{Db, sessions, users};
    use crate::domain::{Description, FileName, FolderPath, Role, SessionId};
    use crate::files::{Files, OnConflict, Precondition, UploadRequest};
    use crate::state_dir::StateDir;
    use crate::storage::ExpectedDigests;

    const PATIENCE: Duration = Duration::from_secs(20);

    /// A store with one user; its busy timeout is short, so a collection that has to wait for
    /// an upload's write lock gives up instead of waiting for it.
    fn files_with_user(dir: &std::path::Path) -> (Files, Principal) {
        let state = StateDir::new(dir.join("state"));
        state.create().unwrap();
        let db = Db::open(&state.database(), Duration::from_millis(300), 4).unwrap();
        let conn = crate::db::connect(&state.database(), Duration::from_secs(5)).unwrap();
        let username = crate::domain::Username::parse("ada").unwrap();
        let user = users::NewUser {
            username: &username,
            email: None,
            password_hash: "x",
            role: crate::domain::Role::User,
            quota_bytes: None,
            now: 0,
        };
        let owner = users::insert(&conn, &user).unwrap().unwrap();
        let session = SessionId::generate();
        let new = sessions::NewSession { id: &session, user_id: &owner, now: 0, expires_at: i64::MAX, client_ip: "" };
        sessions::create(&conn, &new).unwrap();
        let store = BlobStore::new(state.blobs_dir(), state.tmp_dir(), Clock::system());
        let principal = Principal { user_id: owner, role: Role::User, credential: Credential::Session(session) };
        (Files::new(db, Clock::system(), store, state, 1 << 20, 0), principal)
    }

    fn request(name: &str) -> UploadRequest {
        UploadRequest {
            folder: FolderPath::root(),
            name: FileName::parse(name).unwrap(),
            on_conflict: OnConflict::Fail,
            description: Description::default(),
            declared_size: None,
            digests: ExpectedDigests::default(),
            precondition: Precondition::None,
        }
    }

    /// The race: an upload's request is cancelled (HTTP/2 reset) while its row's transaction is
    /// still running on the blocking pool, and a collection round comes right then. The
    /// upload's commit is paused inside its transaction by the test hook, so the interleaving
    /// is exact. Before the fix the cancelled request released the guard that kept collection
    /// off, the collection deleted the blob, and the row committed a moment later without it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_uploads_row_commits_with_its_blob_even_when_collection_runs_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let (mut files, owner) = files_with_user(dir.path());
        let (entered, in_commit) = mpsc::channel::<()>();
        let (release, released) = mpsc::channel::<()>();
        let released = Mutex::new(released);
        files.pause_before_commit = Some(Arc::new(move || {
            entered.send(()).unwrap();
            released.lock().unwrap().recv_timeout(PATIENCE).unwrap();
        }));
        let contents = Bytes::from_static(b"committed after its request was cancelled");
        let sha256: String = ring::digest::digest(&ring::digest::SHA256, &contents)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let uploader = files.clone();
        let body = futures_util::stream::iter(vec![Ok(contents.clone())]);
        let upload = tokio::spawn(async move { uploader.upload(&owner, request("late.txt"), body).await });
        tokio::task::spawn_blocking(move || in_commit.recv_timeout(PATIENCE)).await.unwrap().unwrap();
        upload.abort();
        assert!(upload.await.unwrap_err().is_cancelled());

        let blob = files.store().blob_path(&sha256).unwrap();
        let round = files.collect_garbage().await;
        assert!(blob.exists(), "a collection removed the blob of a row being committed ({round:?})");
        release.send(()).unwrap();
        let db = files.db.clone();
        let mut committed = false;
        for _ in 0..2000 {
            let count =
                db.read(|conn| Ok(conn.query_row("SELECT count(*) FROM files", [], |row| row.get::<_, i64>(0))?));
            if count.await.unwrap() == 1 {
                committed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(committed, "the cancelled upload's transaction did not commit");
        assert!(matches!(files.collect_garbage().await.unwrap(), GcRound::Removed(removed) if removed.is_empty()));
        assert_eq!(std::fs::read(&blob).unwrap(), contents.as_ref(), "the committed row lost its blob");
    }

    /// A collection that found a blob unreferenced must not delete it when an upload has
    /// committed a row for it since: it looks again under the write lock at deletion.
    #[tokio::test]
    async fn collection_re_checks_references_at_the_moment_of_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let (files, owner) = files_with_user(dir.path());
        let body = futures_util::stream::iter(vec![Ok(Bytes::from_static(b"shared contents"))]);
        let row = files.upload(&owner, request("kept.txt"), body).await.unwrap();
        let orphan_body = futures_util::stream::iter(vec![Ok(Bytes::from_static(b"nobody's"))]);
        let orphan = files
            .store()
            .publish(files.store().ingest(orphan_body, 100, ExpectedDigests::default()).await.unwrap())
            .await
            .unwrap();
        let orphan_sha256 = orphan.sha256.clone();
        drop(orphan);
        // A stale list of candidates, as `coffer check` gathers over hours: both blobs.
        let stale = vec![row.sha256.clone(), orphan_sha256.clone()];
        let mut conn = crate::db::connect(files.db.path(), Duration::from_secs(5)).unwrap();
        let lock = files.state_dir.gc_lock();
        let round = collect_blocking(&mut conn, files.store(), &lock, &stale, Duration::ZERO).unwrap();
        assert_eq!(round, GcRound::Removed(vec![orphan_sha256]));
        assert!(files.store().blob_path(&row.sha256).unwrap().exists(), "a referenced blob was removed");

        // While a backup holds the GC lock, nothing is collected.
        let backup = GcLock::shared(&lock).unwrap();
        let held_off = collect_blocking(&mut conn, files.store(), &lock, &stale, Duration::ZERO).unwrap();
        assert_eq!(held_off, GcRound::HeldOff);
        assert_eq!(files.collect_garbage().await.unwrap(), GcRound::HeldOff);
        drop(backup);
    }
}
