//! The content-addressed blob store: file contents under `blobs/ab/cd/<sha256>`.
//!
//! Blobs are immutable: one is written once, under the hash of its contents, and never
//! rewritten, so two files with the same contents share a blob without ever aliasing each
//! other's changes. An upload streams into `tmp/` on a dedicated blocking thread fed through
//! a small bounded channel (memory stays flat), hashing as it goes; it is fsynced, renamed
//! into place and the directory fsynced, and only then may the caller commit its database row.
//! A blob no row references is deleted only by [`BlobStore::collect_garbage`], which holds the
//! publish lock exclusively, so it can never remove a blob between its rename and its row's
//! commit. Paths come from hashes only, never from user input.

pub mod check;
mod ingest;
mod write_behind;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedRwLockReadGuard, RwLock};

pub use ingest::{ExpectedDigests, HEAD_BYTES, IngestError, PendingBlob};

#[derive(Clone)]
pub struct BlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
    /// Held shared from a blob's publication until its row commits; exclusively by GC.
    publish_lock: Arc<RwLock<()>>,
}

/// Keeps a just-published blob safe from garbage collection until dropped (after the commit).
pub struct Published {
    pub sha256: String,
    pub size: u64,
    _guard: OwnedRwLockReadGuard<()>,
}

/// Bytes read from disk at a time when serving a blob, and chunks read ahead of the client.
const READ_CHUNK: usize = 256 << 10;
const READ_AHEAD_CHUNKS: usize = 4;

/// Whether `text` is a SHA-256 in lowercase hex, the only form a blob name takes.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl BlobStore {
    pub fn new(blobs: PathBuf, tmp: PathBuf) -> Self {
        Self { blobs, tmp, publish_lock: Arc::new(RwLock::new(())) }
    }

    /// Where the blob with this hash lives; `None` for anything but a SHA-256 hex string.
    pub fn blob_path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256_hex(sha256).then(|| self.blobs.join(&sha256[..2]).join(&sha256[2..4]).join(sha256))
    }

    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Moves a fully written, fsynced upload into place, then fsyncs the directories involved;
    /// when the same contents are already stored, the upload is removed in the background.
    pub async fn publish(&self, pending: PendingBlob) -> Result<Published, IngestError> {
        let guard = Arc::clone(&self.publish_lock).read_owned().await;
        let target = self.blob_path(&pending.sha256).ok_or_else(|| IngestError::Disk(io::Error::other("bad hash")))?;
        let (sha256, size) = (pending.sha256.clone(), pending.size);
        let redundant = tokio::task::spawn_blocking(move || -> io::Result<Option<PathBuf>> {
            let temp = pending.take_path();
            if target.exists() {
                return Ok(Some(temp));
            }
            let shard = target.parent().ok_or_else(|| io::Error::other("blob path has no parent"))?;
            std::fs::create_dir_all(shard)?;
            std::fs::rename(&temp, &target)?;
            sync_dir(shard)?;
            if let Some(top) = shard.parent() {
                sync_dir(top)?;
            }
            Ok(None)
        })
        .await
        .map_err(|err| IngestError::Disk(io::Error::other(err.to_string())))?
        .map_err(IngestError::from_io)?;
        if let Some(temp) = redundant {
            // Freeing a large file's extents takes a while (about 0.5 s per GiB); the caller
            // need not wait for it. A crash before it is done leaves a temp file the next
            // start sweeps.
            drop(tokio::task::spawn_blocking(move || std::fs::remove_file(temp)));
        }
        Ok(Published { sha256, size, _guard: guard })
    }

    /// Opens a blob for reading. Blocking.
    pub fn open(&self, sha256: &str) -> io::Result<std::fs::File> {
        let path = self.blob_path(sha256).ok_or_else(|| io::Error::other("bad hash"))?;
        std::fs::File::open(path)
    }

    /// Streams `length` bytes of a blob from `start`, read on one blocking thread in large
    /// chunks through a small bounded channel (flat memory, few thread hops). Errors after the
    /// first byte end the stream early, which the client sees as a cut-off transfer.
    pub async fn read_range(
        &self,
        sha256: &str,
        start: u64,
        length: u64,
    ) -> io::Result<impl futures_util::Stream<Item = io::Result<bytes::Bytes>> + Send + 'static> {
        use std::io::{Read, Seek};
        let path = self.blob_path(sha256).ok_or_else(|| io::Error::other("bad hash"))?;
        let mut file = tokio::task::spawn_blocking(move || -> io::Result<std::fs::File> {
            let mut file = std::fs::File::open(path)?;
            file.seek(io::SeekFrom::Start(start))?;
            Ok(file)
        })
        .await
        .map_err(io::Error::other)??;
        let (sender, receiver) = tokio::sync::mpsc::channel::<io::Result<bytes::Bytes>>(READ_AHEAD_CHUNKS);
        tokio::task::spawn_blocking(move || {
            let mut left = length;
            while left > 0 {
                let mut chunk = vec![0u8; READ_CHUNK.min(left as usize)];
                let outcome = file.read(&mut chunk).and_then(|read| match read {
                    0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blob shorter than recorded")),
                    read => Ok(read),
                });
                let failed = outcome.is_err();
                let item = outcome.map(|read| {
                    chunk.truncate(read);
                    left -= read as u64;
                    bytes::Bytes::from(chunk)
                });
                // The client went away: stop reading.
                if sender.blocking_send(item).is_err() || failed {
                    return;
                }
            }
        });
        Ok(futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        }))
    }

    /// Every stored blob's hash. Blocking.
    pub fn list_blobs(&self) -> io::Result<Vec<String>> {
        let mut found = Vec::new();
        let Ok(top) = std::fs::read_dir(&self.blobs) else { return Ok(found) };
        for first in top {
            for second in std::fs::read_dir(first?.path())? {
                for blob in std::fs::read_dir(second?.path())? {
                    let name = blob?.file_name().to_string_lossy().into_owned();
                    if is_sha256_hex(&name) {
                        found.push(name);
                    }
                }
            }
        }
        Ok(found)
    }

    /// Removes files in `tmp/` last changed before `older_than` ago (all of them at start,
    /// when no upload can be in flight). Blocking. Returns how many.
    pub fn sweep_tmp(&self, older_than: Duration) -> io::Result<usize> {
        let mut removed = 0;
        let now = SystemTime::now();
        for entry in std::fs::read_dir(&self.tmp)? {
            let entry = entry?;
            let modified = entry.metadata()?.modified()?;
            if now.duration_since(modified).unwrap_or_default() >= older_than {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Deletes blobs that `referenced` (a fresh look at the database) does not know and that
    /// were stored at least `older_than` ago. Holds the publish lock exclusively throughout.
    pub async fn collect_garbage<F>(&self, older_than: Duration, referenced: F) -> io::Result<Vec<String>>
    where
        F: FnOnce() -> io::Result<std::collections::HashSet<String>> + Send + 'static,
    {
        let _exclusive = self.publish_lock.write().await;
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let live = referenced()?;
            let now = SystemTime::now();
            let mut removed = Vec::new();
            for sha256 in store.list_blobs()? {
                let Some(path) = store.blob_path(&sha256) else { continue };
                let age = now.duration_since(std::fs::metadata(&path)?.modified()?).unwrap_or_default();
                if !live.contains(&sha256) && age >= older_than {
                    std::fs::remove_file(&path)?;
                    removed.push(sha256);
                }
            }
            Ok(removed)
        })
        .await
        .map_err(|err| io::Error::other(err.to_string()))?
    }
}
