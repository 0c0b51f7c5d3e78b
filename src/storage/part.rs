//! A resumable upload's part file: appending at the durable offset, hashing as it goes.
//!
//! Appends run through the same pipeline as a plain upload (body batches over a small channel
//! to one blocking writer thread, write-behind flushes, a final fsync), so a resumable upload
//! costs what a plain one does. The SHA-256 of everything before the durable offset is kept by
//! the caller between appends ([`PartHash`]) and extended by each append; nothing is read back
//! or hashed again, except once after a restart ([`rehash`]), because a hash state cannot be
//! persisted with the primitives the store uses. Bytes past the durable offset were never
//! acknowledged: each append cuts them off before writing.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

use super::ingest::{CHANNEL_BATCHES, Piece, feed, hex, write_all_vectored};
use super::write_behind::WriteBehind;
use super::{BLOB_MODE, HEAD_BYTES, IngestError, sync_dir};

/// The SHA-256 state of a part file's bytes before its durable offset.
#[derive(Clone)]
pub struct PartHash(ring::digest::Context);

impl Default for PartHash {
    fn default() -> Self {
        Self(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl PartHash {
    /// The SHA-256 (hex) of the whole contents, once the last byte is in.
    pub fn finish(self) -> String {
        hex(self.0.finish().as_ref())
    }
}

/// What an append made durable.
pub struct Appended {
    /// New bytes now on disk after the old offset.
    pub received: u64,
    pub hash: PartHash,
    /// The body ended early; what arrived is kept (only without a chunk checksum).
    pub cut_short: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the chunk is larger than the {limit} bytes the upload has left")]
    TooLarge { limit: u64 },
    #[error("the chunk does not match its Upload-Checksum; it was not appended")]
    ChecksumMismatch,
    #[error("the server is out of disk space")]
    NoSpace,
    #[error("the chunk was cut short, so its checksum cannot be checked; it was not appended")]
    Incomplete,
    #[error("cannot store the chunk: {0}")]
    Disk(io::Error),
}

fn disk_error(err: io::Error) -> AppendError {
    match IngestError::from_io(err) {
        IngestError::NoSpace => AppendError::NoSpace,
        IngestError::Disk(err) => AppendError::Disk(err),
        other => AppendError::Disk(io::Error::other(other.to_string())),
    }
}

/// Creates an empty part file (0600) and makes its directory entry durable. Blocking.
pub fn create(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.sync_all()?;
    sync_dir(path.parent().ok_or_else(|| io::Error::other("part file has no directory"))?)
}

/// Hashes the first `received` bytes of a part file again (after a restart). Blocking.
pub fn rehash(path: &Path, received: u64) -> io::Result<PartHash> {
    let mut file = std::fs::File::open(path)?;
    if file.metadata()?.len() < received {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the part file is shorter than its durable offset"));
    }
    let mut hash = PartHash::default();
    let mut buffer = vec![0u8; 1 << 20];
    let mut left = received;
    while left > 0 {
        let want = buffer.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let read = file.read(&mut buffer[..want])?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        hash.0.update(&buffer[..read]);
        left -= read as u64;
    }
    Ok(hash)
}

/// Makes a complete part file read-only (it becomes the blob's inode), links it at `link`
/// (in `tmp/`, for the blob store to publish) and returns its first [`HEAD_BYTES`]. Blocking.
pub fn seal(path: &Path, link: &Path) -> io::Result<Vec<u8>> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(BLOB_MODE))?;
    let mut file = std::fs::File::open(path)?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&mut file).take(HEAD_BYTES as u64).read_to_end(&mut head)?;
    file.sync_all()?;
    match std::fs::remove_file(link) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    std::fs::hard_link(path, link)?;
    Ok(head)
}

/// Least progress between two checkpoints of a long append.
pub const CHECKPOINT_BYTES: u64 = 64 << 20;

/// Called from the writer thread with a file position before which every byte is fsynced,
/// at most every [`CHECKPOINT_BYTES`], so a long append's progress can be recorded while it
/// runs. Blocking is fine there.
pub type Checkpoint = Box<dyn FnMut(u64) -> io::Result<()> + Send>;

/// What the writer thread did.
struct Written {
    hash: PartHash,
    chunk_sha256: Option<[u8; 32]>,
    bytes: u64,
}

fn write_part(
    path: &Path,
    offset: u64,
    mut pieces: mpsc::Receiver<Piece>,
    mut write_behind: WriteBehind,
    mut hash: PartHash,
    want_chunk_digest: bool,
    mut checkpoint: Option<Checkpoint>,
) -> io::Result<Written> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.set_len(offset)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut chunk_digest = want_chunk_digest.then(|| ring::digest::Context::new(&ring::digest::SHA256));
    let mut bytes = 0u64;
    let mut checkpointed = offset;
    // Until `Done` or the channel closing early: either way, what was written is made durable
    // (the caller decides whether to keep it).
    while let Some(Piece::Data(batch)) = pieces.blocking_recv() {
        write_all_vectored(&mut file, &batch)?;
        for chunk in &batch {
            hash.0.update(chunk);
            if let Some(digest) = chunk_digest.as_mut() {
                digest.update(chunk);
            }
        }
        let len: usize = batch.iter().map(Bytes::len).sum();
        bytes += len as u64;
        write_behind.advance(&file, len)?;
        if let Some(record) = checkpoint.as_mut() {
            let durable = write_behind.durable()?;
            if durable >= checkpointed + CHECKPOINT_BYTES {
                record(durable)?;
                checkpointed = durable;
            }
        }
    }
    write_behind.finish(&file)?;
    let chunk_sha256 = chunk_digest.map(|digest| {
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest.finish().as_ref());
        sha256
    });
    Ok(Written { hash, chunk_sha256, bytes })
}

/// Appends `body` to the part file at `path` at the durable `offset` (whose contents hash to
/// `hash`): at most `limit` bytes; with `checksum`, the chunk must have that SHA-256 and is
/// kept whole or not at all. On success every appended byte is fsynced. `checkpoint` (only
/// without a checksum) hears of durable progress while the append runs; after a failure the
/// bytes it was told of stay on disk.
pub async fn append<S>(
    path: PathBuf,
    offset: u64,
    body: S,
    limit: u64,
    hash: &PartHash,
    checksum: Option<[u8; 32]>,
    checkpoint: Option<Checkpoint>,
) -> Result<Appended, AppendError>
where
    S: Stream<Item = Result<Bytes, io::Error>> + Unpin,
{
    let (sender, receiver) = mpsc::channel(CHANNEL_BATCHES);
    let write_behind = WriteBehind::starting_at(tokio::runtime::Handle::current(), offset);
    let start = hash.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let checkpoint = checkpoint.filter(|_| checksum.is_none());
        write_part(&path, offset, receiver, write_behind, start, checksum.is_some(), checkpoint)
    });
    // Appends do not keep the contents' head (it is read at the end); a full one stops copying.
    let mut head = vec![0u8; HEAD_BYTES];
    let _in_flight = crate::metrics::get().uploads_in_flight.track();
    let (_, read) = feed(body, limit, &mut head, sender).await;
    let written = writer.await.map_err(|err| AppendError::Disk(io::Error::other(err.to_string())))?;
    let written = written.map_err(disk_error)?;
    let cut_short = match read {
        Ok(()) => false,
        Err(IngestError::TooLarge { limit }) => return Err(AppendError::TooLarge { limit }),
        Err(_) if checksum.is_some() => return Err(AppendError::Incomplete),
        Err(_) => true,
    };
    if checksum.is_some() && checksum != written.chunk_sha256 {
        return Err(AppendError::ChecksumMismatch);
    }
    Ok(Appended { received: written.bytes, hash: written.hash, cut_short })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, io::Error>> + Unpin {
        futures_util::stream::iter(parts.iter().map(|part| Ok(Bytes::from_static(part))).collect::<Vec<_>>())
    }

    fn sha256(data: &[u8]) -> [u8; 32] {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
        digest
    }

    #[tokio::test]
    async fn appends_hash_incrementally_and_a_refused_chunk_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        create(&path).unwrap();
        let first =
            append(path.clone(), 0, body(&[b"hello ", b"wor"]), 100, &PartHash::default(), None, None).await.unwrap();
        assert_eq!((first.received, first.cut_short), (9, false));
        // A chunk whose checksum does not match is refused; the next append at the same offset
        // overwrites what it wrote.
        let wrong = append(path.clone(), 9, body(&[b"ld?"]), 91, &first.hash, Some(sha256(b"ld!")), None).await;
        assert!(matches!(wrong, Err(AppendError::ChecksumMismatch)));
        let second =
            append(path.clone(), 9, body(&[b"ld!"]), 91, &first.hash, Some(sha256(b"ld!")), None).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world!");
        let whole = hex(&sha256(b"hello world!"));
        assert_eq!(second.hash.clone().finish(), whole, "the running hash covers every append");
        assert_eq!(rehash(&path, 12).unwrap().finish(), whole, "and equals a hash computed again from disk");
        let too_long = append(path.clone(), 12, body(&[b"12345"]), 4, &second.hash, None, None).await;
        assert!(matches!(too_long, Err(AppendError::TooLarge { limit: 4 })));
        // Bytes past the durable offset were never acknowledged: the next append cuts them off.
        append(path.clone(), 12, body(&[b"?"]), 4, &second.hash, None, None).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world!?");
    }
}
