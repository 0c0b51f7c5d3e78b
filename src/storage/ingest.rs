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
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> BlobStore {
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        BlobStore::new(dir.join("blobs"), dir.join("tmp"), crate::clock::Clock::system())
    }

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, io::Error>> + Unpin {
        futures_util::stream::iter(parts.iter().map(|part| Ok(Bytes::from_static(part))).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn uploads_are_hashed_published_once_and_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let first = store.ingest(chunks(&[b"hello ", b"world"]), 100, ExpectedDigests::default()).await.unwrap();
        assert_eq!(first.sha256, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
        let published = store.publish(first).await.unwrap();
        let second = store.ingest(chunks(&[b"hello world"]), 100, ExpectedDigests::default()).await.unwrap();
        let again = store.publish(second).await.unwrap();
        assert_eq!(published.sha256, again.sha256);
        assert_eq!(store.list_blobs().unwrap(), vec![published.sha256.clone()]);
        // Once the rows are committed, both temp files (a second link and a redundant copy)
        // are removed in the background.
        drop((published, again));
        let mut polls = 0;
        while std::fs::read_dir(store.tmp_dir()).unwrap().count() > 0 {
            assert!(polls < 500, "the redundant temp file was left");
            polls += 1;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_large_upload_in_small_chunks_is_stored_whole_across_write_behind_windows() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        // 20 MiB and a bit in 16 KiB pieces: several batches, write-back windows and flushes.
        let data: Vec<u8> =
            (0..(20 << 20) + 12_345).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let pieces: Vec<Result<Bytes, io::Error>> =
            data.chunks(16 << 10).map(|piece| Ok(Bytes::copy_from_slice(piece))).collect();
        let pending =
            store.ingest(futures_util::stream::iter(pieces), u64::MAX, ExpectedDigests::default()).await.unwrap();
        let expected = hex(ring::digest::digest(&ring::digest::SHA256, &data).as_ref());
        assert_eq!((pending.sha256.clone(), pending.size), (expected.clone(), data.len() as u64));
        let published = store.publish(pending).await.unwrap();
        assert!(std::fs::read(store.blob_path(&published.sha256).unwrap()).unwrap() == data, "stored bytes differ");
        assert_eq!(published.sha256, expected);
    }

    #[tokio::test]
    async fn batches_gather_what_has_arrived_up_to_the_batch_size_and_see_the_end_once() {
        let pieces: Vec<Result<Bytes, io::Error>> = (0..100).map(|_| Ok(Bytes::from(vec![7u8; 64 << 10]))).collect();
        let mut body = futures_util::stream::iter(pieces).fuse();
        let mut size = 0;
        let mut batches = Vec::new();
        let mut head = Vec::new();
        while let Some(batch) = next_batch(&mut body, &mut size, u64::MAX, &mut head).await.unwrap() {
            batches.push(batch.iter().map(Bytes::len).sum::<usize>());
        }
        assert_eq!(size, 100 * (64 << 10));
        // 6.25 MiB already waiting: six full batches, then the remaining quarter.
        assert_eq!(
            batches,
            vec![BATCH_BYTES, BATCH_BYTES, BATCH_BYTES, BATCH_BYTES, BATCH_BYTES, BATCH_BYTES, 256 << 10]
        );
        assert!(
            next_batch(&mut body, &mut size, u64::MAX, &mut head).await.unwrap().is_none(),
            "the end is seen again"
        );
        assert_eq!(head, vec![7u8; HEAD_BYTES], "the head is kept");
    }

    #[tokio::test]
    async fn empty_chunks_anywhere_in_the_body_are_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        // HTTP/2 may deliver empty DATA frames, e.g. one that only ends the stream.
        let pending =
            store.ingest(chunks(&[b"", b"hello ", b"", b"world", b""]), 100, ExpectedDigests::default()).await.unwrap();
        assert_eq!(
            (pending.sha256.as_str(), pending.size),
            ("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9", 11)
        );
        let empty = store.ingest(chunks(&[b"", b""]), 100, ExpectedDigests::default()).await.unwrap();
        assert_eq!(empty.size, 0);
    }

    #[test]
    fn vectored_writes_finish_when_only_empty_slices_are_left() {
        let mut out = Vec::new();
        let pieces = [Bytes::from_static(b"ab"), Bytes::new(), Bytes::from_static(b"c"), Bytes::new()];
        write_all_vectored(&mut out, &pieces).unwrap();
        write_all_vectored(&mut out, &[Bytes::new()]).unwrap();
        assert_eq!(out, b"abc");
    }

    #[tokio::test]
    async fn failures_leave_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let too_large = store.ingest(chunks(&[b"0123456789", b"x"]), 10, ExpectedDigests::default()).await;
        assert!(matches!(too_large, Err(IngestError::TooLarge { limit: 10 })));
        let cut: Vec<Result<Bytes, io::Error>> = vec![Ok(Bytes::from_static(b"part")), Err(io::Error::other("reset"))];
        let cut_short = store.ingest(futures_util::stream::iter(cut), 100, ExpectedDigests::default()).await;
        assert!(matches!(cut_short, Err(IngestError::Body(_))));
        let mismatch =
            store.ingest(chunks(&[b"data"]), 100, ExpectedDigests { sha256: Some([0; 32]), sha512: None }).await;
        assert!(matches!(mismatch, Err(IngestError::DigestMismatch)));
        let sha512 = ExpectedDigests { sha256: None, sha512: Some([0; 64]) };
        let mismatch512 = store.ingest(chunks(&[b"data"]), 100, sha512).await;
        assert!(matches!(mismatch512, Err(IngestError::DigestMismatch)), "a SHA-512 alone is checked too");
        let unwanted = store.ingest(chunks(&[b"never published"]), 100, ExpectedDigests::default()).await.unwrap();
        unwanted.discard().await;
        assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
        assert!(store.list_blobs().unwrap().is_empty());
    }

    #[tokio::test]
    async fn stored_blobs_are_read_only_and_a_discarded_blob_is_linked_again_at_commit() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let published = store
            .publish(store.ingest(chunks(&[b"kept"]), 100, ExpectedDigests::default()).await.unwrap())
            .await
            .unwrap();
        let path = store.blob_path(&published.sha256).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o400);
        assert!(store.discard(&published.sha256, std::time::Duration::from_secs(3600)).unwrap().is_none(), "too young");
        let trash = store.discard(&published.sha256, std::time::Duration::ZERO).unwrap().unwrap();
        assert!(!path.exists() && trash.starts_with(store.tmp_dir()));
        assert!(published.ensure_stored().unwrap(), "the commit puts the blob back");
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
        assert!(!published.ensure_stored().unwrap());
        drop(published);
        std::fs::remove_file(trash).unwrap();
        let mut polls = 0;
        while std::fs::read_dir(store.tmp_dir()).unwrap().count() > 0 {
            assert!(polls < 500, "the upload's temp file was left");
            polls += 1;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"kept", "the blob outlives the temp file");
    }

    #[test]
    fn blobs_stored_by_older_versions_are_made_read_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let sha256 = hex(ring::digest::digest(&ring::digest::SHA256, b"old").as_ref());
        let path = store.blob_path(&sha256).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(store.make_read_only().unwrap(), 1);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o400);
        assert_eq!(store.make_read_only().unwrap(), 0);
    }
}
