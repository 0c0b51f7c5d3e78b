//! The content-addressed blob store: file contents under `blobs/ab/cd/<sha256>`.
//!
//! Blobs are immutable and read-only (mode 0400): one is written once, under the hash of its
//! contents, and never rewritten, so two files with the same contents share a blob without
//! ever aliasing each other's changes, and a backup may hard-link the very inode. An upload
//! streams into `tmp/` on a dedicated blocking thread fed through a small bounded channel
//! (memory stays flat), hashing as it goes; it is fsynced, hard-linked into place and the
//! directory fsynced, and only then may the caller commit its database row.
//!
//! One exclusion keeps blobs and rows consistent: the database's write lock. A blob is removed
//! only by [`BlobStore::discard`], called inside an IMMEDIATE transaction after re-checking
//! that no row references it; an upload's commit calls [`Published::ensure_stored`] inside
//! its own IMMEDIATE transaction, which links the blob again from the upload's temp file if a
//! collection removed it since publication. Whichever transaction goes first, a committed row
//! always has its blob. Paths come from hashes only, never from user input.

pub mod check;
pub mod gc_lock;
mod ingest;
pub mod part;
mod write_behind;

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clock::Clock;

pub use gc_lock::GcLock;
pub use ingest::{ExpectedDigests, HEAD_BYTES, IngestError, PendingBlob};

/// The mode of every stored blob: read-only, for the service user alone.
pub const BLOB_MODE: u32 = 0o400;

#[derive(Clone)]
pub struct BlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
    /// Decides the ages of blobs and temp files (collection, sweeps).
    clock: Clock,
}

/// A blob in the store whose row is not committed yet. It keeps the upload's temp file (a
/// second link to the same contents) until dropped, so the commit can put the blob back if a
/// collection removed it meanwhile; dropping removes the temp file in the background.
pub struct Published {
    pub sha256: String,
    pub size: u64,
    target: PathBuf,
    temp: Option<PathBuf>,
}

impl Published {
    /// Makes sure the blob is in the store, linking it again from the upload's temp file when
    /// it is not. Call it inside the IMMEDIATE transaction that commits the blob's row: blobs
    /// are removed only under that same write lock. Blocking. Returns whether it was relinked.
    pub fn ensure_stored(&self) -> io::Result<bool> {
        if self.target.exists() {
            return Ok(false);
        }
        let temp = self.temp.as_deref().ok_or_else(|| io::Error::other("the upload's temp file is gone"))?;
        link_into_store(temp, &self.target)?;
        tracing::info!(
            target: "coffer::storage",
            sha256 = %self.sha256,
            "a blob collected between its upload's publication and commit was linked again"
        );
        Ok(true)
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            // Freeing a deduplicated upload's own copy takes a while (about 0.5 s per GiB);
            // nobody need wait for it. A crash before it is done leaves a temp file the next
            // start sweeps.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || std::fs::remove_file(temp))),
                Err(_) => drop(std::fs::remove_file(temp)),
            }
        }
    }
}

/// Hard-links `temp` at `target` (creating its shard directories) and makes the new entry
/// durable. An existing `target` holds the same contents (same name, same hash): not an error.
fn link_into_store(temp: &Path, target: &Path) -> io::Result<()> {
    let shard = target.parent().ok_or_else(|| io::Error::other("blob path has no parent"))?;
    std::fs::create_dir_all(shard)?;
    match std::fs::hard_link(temp, target) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(err) => return Err(err),
    }
    sync_dir(shard)?;
    if let Some(top) = shard.parent() {
        sync_dir(top)?;
    }
    Ok(())
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
    pub fn new(blobs: PathBuf, tmp: PathBuf, clock: Clock) -> Self {
        Self { blobs, tmp, clock }
    }

    /// How long ago `path` was last changed, by the store's clock.
    pub fn age_of(&self, path: &Path) -> io::Result<Duration> {
        Ok(self.clock.since(std::fs::metadata(path)?.modified()?))
    }

    /// Where the blob with this hash lives; `None` for anything but a SHA-256 hex string.
    pub fn blob_path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256_hex(sha256).then(|| self.blobs.join(&sha256[..2]).join(&sha256[2..4]).join(sha256))
    }

    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Links a fully written, fsynced (and read-only) upload into place, then fsyncs the
    /// directories involved; when the same contents are already stored, nothing changes.
    pub async fn publish(&self, pending: PendingBlob) -> Result<Published, IngestError> {
        let target = self.blob_path(&pending.sha256).ok_or_else(|| IngestError::Disk(io::Error::other("bad hash")))?;
        let (sha256, size) = (pending.sha256.clone(), pending.size);
        let temp = pending.take_path();
        // From here the temp file belongs to `published`, which removes it when dropped.
        let published = Published { sha256, size, target, temp: Some(temp) };
        let (temp, target) = (published.temp.clone().unwrap_or_default(), published.target.clone());
        tokio::task::spawn_blocking(move || link_into_store(&temp, &target))
            .await
            .map_err(|err| IngestError::Disk(io::Error::other(err.to_string())))?
            .map_err(IngestError::from_io)?;
        Ok(published)
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
        let metrics = crate::metrics::get();
        let mut file = tokio::task::spawn_blocking(move || -> io::Result<std::fs::File> {
            let mut file = std::fs::File::open(path)?;
            file.seek(io::SeekFrom::Start(start))?;
            Ok(file)
        })
        .await
        .map_err(io::Error::other)?
        .inspect_err(|_| metrics.blob_store_errors.inc())?;
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
        // The in-flight mark lives as long as the stream, however the download ends.
        let in_flight = metrics.downloads_in_flight.track();
        Ok(futures_util::stream::unfold((receiver, in_flight), move |(mut receiver, in_flight)| async move {
            let item = receiver.recv().await?;
            match &item {
                Ok(chunk) => metrics.download_bytes.add(chunk.len() as u64),
                Err(_) => metrics.blob_store_errors.inc(),
            }
            Some((item, (receiver, in_flight)))
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
        for entry in std::fs::read_dir(&self.tmp)? {
            let entry = entry?;
            let modified = entry.metadata()?.modified()?;
            if self.clock.since(modified) >= older_than {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Moves a blob out of the store (into `tmp/`, to be removed by the caller) when it was
    /// stored at least `min_age` ago; `None` when it is younger or already gone. Call it only
    /// inside an IMMEDIATE transaction that has just found no row referencing the blob: that
    /// write lock is what keeps a commit from recording it meanwhile. The move is a rename,
    /// so the lock is never held while a large file's space is freed. Blocking.
    pub fn discard(&self, sha256: &str, min_age: Duration) -> io::Result<Option<PathBuf>> {
        let Some(path) = self.blob_path(sha256) else { return Ok(None) };
        let modified = match std::fs::metadata(&path) {
            Ok(metadata) => metadata.modified()?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        if self.clock.since(modified) < min_age {
            return Ok(None);
        }
        let trash = self.tmp.join(format!("gc-{sha256}-{:08x}", rand::random::<u32>()));
        std::fs::rename(&path, &trash)?;
        Ok(Some(trash))
    }

    /// Makes every stored blob read-only ([`BLOB_MODE`]); blobs stored by versions before
    /// that rule were 0600. Blocking. Returns how many it changed.
    pub fn make_read_only(&self) -> io::Result<usize> {
        let mut changed = 0;
        for sha256 in self.list_blobs()? {
            let Some(path) = self.blob_path(&sha256) else { continue };
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o7777;
            if mode != BLOB_MODE {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(BLOB_MODE))?;
                changed += 1;
            }
        }
        Ok(changed)
    }
}
