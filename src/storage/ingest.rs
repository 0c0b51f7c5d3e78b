//! Streaming an upload into `tmp/`: size limit, SHA-256 (and SHA-512 when the client sent one
//! to check), the first bytes kept for recognising the contents, fsync.
//!
//! The body is read on the async side and handed to one blocking writer thread through a
//! channel of a few chunks, so a slow disk slows the client instead of filling memory. If
//! anything goes wrong (limit, client gone, disk full, digest mismatch) the temp file is
//! removed before the error is returned; a [`PendingBlob`] dropped without being published
//! removes its temp file too.

use std::fs::OpenOptions;
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::sync::mpsc;

use super::BlobStore;
use super::write_behind::WriteBehind;

/// Batches in flight between the body reader and the writer thread.
pub(super) const CHANNEL_BATCHES: usize = 4;
/// Most bytes gathered from the body into one batch: whatever has already arrived, up to this.
const BATCH_BYTES: usize = 1 << 20;
/// The start of the contents kept with a pending blob, enough to recognise a file's type.
pub const HEAD_BYTES: usize = 8 << 10;

/// Digests the client sent for the whole contents; each one given must match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpectedDigests {
    pub sha256: Option<[u8; 32]>,
    pub sha512: Option<[u8; 64]>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the contents do not match the Content-Digest sent")]
    DigestMismatch,
    #[error("the server is out of disk space")]
    NoSpace,
    #[error("the upload was cut short: {0}")]
    Body(String),
    #[error("cannot store the upload: {0}")]
    Disk(io::Error),
}

impl IngestError {
    pub fn from_io(err: io::Error) -> Self {
        let full = err.kind() == io::ErrorKind::StorageFull
            || err.kind() == io::ErrorKind::QuotaExceeded
            || matches!(err.raw_os_error(), Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error());
        if full { Self::NoSpace } else { Self::Disk(err) }
    }
}

/// A complete, fsynced upload in `tmp/`, not yet in the store.
pub struct PendingBlob {
    path: Option<PathBuf>,
    pub sha256: String,
    pub size: u64,
    /// The first [`HEAD_BYTES`] of the contents (fewer for a smaller file).
    pub head: Vec<u8>,
}

impl PendingBlob {
    /// Contents already complete, fsynced and read-only at `path` (a link the blob store may
    /// remove), with their SHA-256 (hex) and first [`HEAD_BYTES`].
    pub fn adopt(path: PathBuf, sha256: String, size: u64, head: Vec<u8>) -> Self {
        Self { path: Some(path), sha256, size, head }
    }

    pub(super) fn take_path(mut self) -> PathBuf {
        self.path.take().unwrap_or_default()
    }

    /// Removes the temp file now (dropping does it in the background).
    pub async fn discard(mut self) {
        if let Some(path) = self.path.take() {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
        }
    }
}

impl Drop for PendingBlob {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || std::fs::remove_file(path))),
                Err(_) => drop(std::fs::remove_file(path)),
            }
        }
    }
}

pub(super) enum Piece {
    Data(Vec<Bytes>),
    Done,
}

/// Writes every byte of `chunks` with as few `writev` calls as the kernel allows.
pub(super) fn write_all_vectored(file: &mut impl Write, chunks: &[Bytes]) -> io::Result<()> {
    // Empty chunks are left out: a `writev` of nothing but empty slices writes 0 bytes, which
    // would read as a device that accepts no more.
    let mut slices: Vec<IoSlice<'_>> =
        chunks.iter().filter(|chunk| !chunk.is_empty()).map(|chunk| IoSlice::new(chunk)).collect();
    let mut left: usize = chunks.iter().map(Bytes::len).sum();
    let mut rest = &mut slices[..];
    while left > 0 {
        match file.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => {
                left -= written;
                IoSlice::advance_slices(&mut rest, written);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// What the writer thread found: the temp file, its SHA-256 and, when asked for, SHA-512.
struct Written {
    path: PathBuf,
    sha256: [u8; 32],
    sha512: Option<Vec<u8>>,
}

/// Writes pieces to a new temp file until `Done` (kept, synced) or the channel closes
/// without it (removed). Returns the path and digests of what was written, or `None` when the
/// upload ended early.
fn write_temp(
    tmp: PathBuf,
    mut pieces: mpsc::Receiver<Piece>,
    mut write_behind: WriteBehind,
    want_sha512: bool,
) -> io::Result<Option<Written>> {
    let path = tmp.join(format!("upload-{:032x}", rand::random::<u128>()));
    // Created read-only: this inode becomes the stored blob (hard-linked, never rewritten);
    // the descriptor opened here is the only one that may ever write it.
    let mut file = OpenOptions::new().write(true).create_new(true).mode(super::BLOB_MODE).open(&path)?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut digest512 = want_sha512.then(|| ring::digest::Context::new(&ring::digest::SHA512));
    let mut bytes_written = 0u64;
    let written = (|| -> io::Result<bool> {
        loop {
            match pieces.blocking_recv() {
                Some(Piece::Data(batch)) => {
                    write_all_vectored(&mut file, &batch)?;
                    for chunk in &batch {
                        digest.update(chunk);
                        if let Some(digest512) = digest512.as_mut() {
                            digest512.update(chunk);
                        }
                    }
                    let len = batch.iter().map(Bytes::len).sum();
                    bytes_written += len as u64;
                    write_behind.advance(&file, len)?;
                }
                Some(Piece::Done) => {
                    write_behind.finish(&file)?;
                    return Ok(true);
                }
                None => return Ok(false),
            }
        }
    })();
    match written {
        Ok(true) => {
            let mut sha256 = [0u8; 32];
            sha256.copy_from_slice(digest.finish().as_ref());
            let sha512 = digest512.map(|digest512| digest512.finish().as_ref().to_vec());
            Ok(Some(Written { path, sha256, sha512 }))
        }
        Ok(false) => {
            drop(file);
            std::fs::remove_file(&path)?;
            tracing::info!(
                target: "coffer::storage",
                bytes_written,
                "an upload ended before its last byte; its temp file is removed"
            );
            Ok(None)
        }
        Err(err) => {
            drop(file);
            let _ = std::fs::remove_file(&path);
            Err(err)
        }
    }
}

/// Waits for the next chunk of `body`, then takes whatever else has already arrived, up to
/// [`BATCH_BYTES`]: one hand-off to the writer thread per batch instead of per network chunk
/// (HTTP/2 DATA frames are often 16 KiB). `None` once the body has ended.
/// Feeds `body` to the writer thread in batches (counted in the metrics) and ends the stream
/// with `Done` unless reading failed. Returns the bytes read and how reading ended. A closed
/// channel means the writer failed: feeding stops quietly, the writer reports its own error.
pub(super) async fn feed<S>(
    body: S,
    limit: u64,
    head: &mut Vec<u8>,
    sender: mpsc::Sender<Piece>,
) -> (u64, Result<(), IngestError>)
where
    S: Stream<Item = Result<Bytes, io::Error>> + Unpin,
{
    // Fused: a batch may end with the body, and the next call must see that end again.
    let mut body = body.fuse();
    let mut size = 0u64;
    let metrics = crate::metrics::get();
    let read = loop {
        match next_batch(&mut body, &mut size, limit, head).await {
            Ok(None) => break Ok(()),
            Err(err) => break Err(err),
            Ok(Some(batch)) => {
                metrics.upload_bytes.add(batch.iter().map(|chunk| chunk.len() as u64).sum());
                if sender.send(Piece::Data(batch)).await.is_err() {
                    break Ok(());
                }
            }
        }
    };
    if read.is_ok() {
        let _ = sender.send(Piece::Done).await;
    }
    (size, read)
}

pub(super) async fn next_batch<S>(
    body: &mut S,
    size: &mut u64,
    limit: u64,
    head: &mut Vec<u8>,
) -> Result<Option<Vec<Bytes>>, IngestError>
where
    S: Stream<Item = Result<Bytes, io::Error>> + Unpin,
{
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    let mut next = body.next().await;
    loop {
        match next {
            None => break,
            Some(Err(err)) => return Err(IngestError::Body(err.to_string())),
            Some(Ok(chunk)) => {
                *size += chunk.len() as u64;
                if *size > limit {
                    return Err(IngestError::TooLarge { limit });
                }
                batch_bytes += chunk.len();
                if head.len() < HEAD_BYTES {
                    head.extend_from_slice(&chunk[..chunk.len().min(HEAD_BYTES - head.len())]);
                }
                if !chunk.is_empty() {
                    batch.push(chunk);
                }
            }
        }
        if batch_bytes >= BATCH_BYTES {
            break;
        }
        match body.next().now_or_never() {
            Some(item) => next = item,
            None => break,
        }
    }
    Ok((!batch.is_empty()).then_some(batch))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl BlobStore {
    /// Streams `body` into a temp file: at most `limit` bytes, and the contents must match
    /// every digest in `expected`.
    pub async fn ingest<S>(&self, body: S, limit: u64, expected: ExpectedDigests) -> Result<PendingBlob, IngestError>
    where
        S: Stream<Item = Result<Bytes, io::Error>> + Unpin,
    {
        let (sender, receiver) = mpsc::channel(CHANNEL_BATCHES);
        let tmp = self.tmp.clone();
        let write_behind = WriteBehind::new(tokio::runtime::Handle::current());
        let want_sha512 = expected.sha512.is_some();
        let writer = tokio::task::spawn_blocking(move || write_temp(tmp, receiver, write_behind, want_sha512));
        let mut head = Vec::new();
        let metrics = crate::metrics::get();
        let _in_flight = metrics.uploads_in_flight.track();
        let (size, read) = feed(body, limit, &mut head, sender).await;
        let written = writer.await.map_err(|err| IngestError::Disk(io::Error::other(err.to_string())))?;
        read?;
        let written = match written {
            Ok(Some(done)) => done,
            Ok(None) => return Err(IngestError::Body("the upload ended early".into())),
            Err(err) => {
                let err = IngestError::from_io(err);
                if matches!(err, IngestError::Disk(_)) {
                    metrics.blob_store_errors.inc();
                }
                return Err(err);
            }
        };
        let pending = PendingBlob { path: Some(written.path), sha256: hex(&written.sha256), size, head };
        let sha256_differs = expected.sha256.is_some_and(|expected| expected != written.sha256);
        let sha512_differs =
            expected.sha512.is_some_and(|expected| Some(expected.as_slice()) != written.sha512.as_deref());
        if sha256_differs || sha512_differs {
            return Err(IngestError::DigestMismatch);
        }
        Ok(pending)
    }
}

#[cfg(test)]
mod tests;
