//! Files: uploads into the blob store, metadata, who may read what.
//!
//! An upload is checked up front (announced size against `storage.max_file_size`, the owner's
//! quota and the free-disk reserve), streamed into the blob store with the tighter of the size
//! and quota limits, published, and only then recorded, in one IMMEDIATE transaction that
//! checks the quota and the name again, so parallel uploads can neither overshoot a quota nor
//! take one name twice. Anything that fails leaves no row and uses no quota; a published blob
//! whose row never commits is collected by the next GC pass. That transaction also makes sure
//! the blob is still stored (`gc.rs` removes blobs only under the same write lock), so a
//! committed row always has its blob, even when the upload's request was cancelled meanwhile.
//!
//! Another user's file is "not found", never "forbidden", so ids reveal nothing. Admins may
//! read every file; each such read of someone else's file is audited.

mod access;
mod folders;
pub mod gc;
pub mod media_type;
mod upload;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

use crate::auth::Principal;
use crate::auth::throttle::{Throttle, ThrottlePolicy};
use crate::clock::Clock;
use crate::db::files::{self, FileRow};
use crate::db::{Db, DbError, uploads, users};
use crate::domain::{Description, DescriptionError, FileId, FileName, FolderPath, NameError, UploadId, UserId};
use crate::state_dir::StateDir;
use crate::storage::{BlobStore, ExpectedDigests, GcLock, IngestError, PendingBlob};

pub use access::{Access, readable_among, user_access};
pub use gc::GcRound;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("no such file")]
    NotFound,
    #[error("a file with this name already exists in the folder")]
    NameTaken,
    #[error(transparent)]
    InvalidName(#[from] NameError),
    #[error(transparent)]
    InvalidDescription(#[from] DescriptionError),
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("this upload would exceed your storage quota")]
    QuotaExceeded,
    #[error("the server is short of disk space")]
    NoSpace,
    #[error("the contents do not match the Content-Digest sent")]
    DigestMismatch,
    #[error("the upload was cut short: {0}")]
    Aborted(String),
    #[error("the file does not match If-Match or If-None-Match; nothing was changed")]
    PreconditionFailed,
    #[error("your session or account ended during the upload; nothing was stored")]
    CredentialsEnded,
    #[error("no such user")]
    NoSuchUser,
    #[error("no such folder")]
    NoSuchFolder,
    #[error("a folder with this path already exists")]
    FolderExists,
    #[error("the folder holds files; delete it with recursive=true to delete them too")]
    FolderNotEmpty,
    #[error("too many grants to unknown users; try again in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    #[error("{0}")]
    Invalid(String),
    #[error("this upload link takes no more files")]
    LinkFull,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("storage failure: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnConflict {
    Fail,
    Rename,
    Replace,
}

/// A conditional write (`If-Match`, `If-None-Match: *`) on the file a request names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Precondition {
    #[default]
    None,
    /// `If-Match: *`: the file must exist.
    Exists,
    /// `If-Match: "<sha256>", ...`: the file's contents must be one of these.
    ContentsAre(Vec<String>),
    /// `If-None-Match: *`: the name must be free.
    Absent,
}

impl Precondition {
    pub fn holds(&self, current: Option<&FileRow>) -> bool {
        match self {
            Self::None => true,
            Self::Exists => current.is_some(),
            Self::ContentsAre(tags) => current.is_some_and(|file| tags.contains(&file.sha256)),
            Self::Absent => current.is_none(),
        }
    }
}

pub struct UploadRequest {
    pub folder: FolderPath,
    pub name: FileName,
    pub on_conflict: OnConflict,
    pub description: Description,
    /// From `Content-Length`, when the client announced it.
    pub declared_size: Option<u64>,
    /// From `Content-Digest`.
    pub digests: ExpectedDigests,
    pub precondition: Precondition,
}

/// Contents received in full and checked, not yet stored: [`Files::commit`] finishes the upload.
pub struct Received {
    pending: PendingBlob,
}

impl Received {
    /// Contents received by other means (a resumable upload's last byte).
    pub fn from_pending(pending: PendingBlob) -> Self {
        Self { pending }
    }
}

/// The resumable upload a commit finishes.
pub struct Finishing {
    pub upload: UploadId,
    /// Until when the finished upload still answers HEAD with the file's id.
    pub keep_until: i64,
}

/// Who a commit stores for, and what must still hold in its transaction.
enum Authority<'a> {
    /// A signed-in caller whose credential must still stand.
    Caller(&'a Principal),
    /// An upload link's owner: the check runs in the commit's transaction with the new file's
    /// row, just before it is inserted, and may refuse (nothing is stored then) or record more.
    Link(UserId, LinkCheck),
}

/// See [`Files::commit_for_link`].
pub type LinkCheck =
    Box<dyn FnOnce(&rusqlite::Connection, &FileRow) -> Result<Result<(), FileError>, DbError> + Send + 'static>;

#[derive(Clone)]
pub struct Files {
    db: Db,
    clock: Clock,
    store: BlobStore,
    /// Grants to accounts that do not exist, per caller (account enumeration).
    grant_misses: Arc<Throttle>,
    state_dir: StateDir,
    /// `storage.max_file_size`, shared by every clone so a reload changes it everywhere.
    max_file_size: Arc<AtomicU64>,
    disk_reserve: u64,
    /// Tests: runs inside an upload's commit transaction, before anything else there.
    #[cfg(test)]
    pause_before_commit: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Files {
    pub fn new(
        db: Db,
        clock: Clock,
        store: BlobStore,
        state_dir: StateDir,
        max_file_size: u64,
        disk_reserve: u64,
    ) -> Self {
        let max_file_size = Arc::new(AtomicU64::new(max_file_size));
        let policy = ThrottlePolicy {
            free_failures: access::GRANT_FREE_MISSES,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(3600),
        };
        let grant_misses = Arc::new(Throttle::new(policy, clock.clone()));
        Self {
            db,
            clock,
            store,
            grant_misses,
            state_dir,
            max_file_size,
            disk_reserve,
            #[cfg(test)]
            pause_before_commit: None,
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// `storage.max_file_size` now.
    pub fn max_file_size(&self) -> u64 {
        self.max_file_size.load(Ordering::Relaxed)
    }

    /// `storage.disk_reserve`: free space every upload leaves on the disk.
    pub fn disk_reserve(&self) -> u64 {
        self.disk_reserve
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn state_dir(&self) -> &StateDir {
        &self.state_dir
    }

    /// A new `storage.max_file_size`, for uploads that start from now on.
    pub fn set_max_file_size(&self, limit: u64) {
        self.max_file_size.store(limit, Ordering::Relaxed);
    }

    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// Removes blobs no file references. Safe at any time: each blob is re-checked and removed
    /// under the database write lock (see `gc.rs`). Skipped while a backup holds `gc.lock`.
    pub async fn collect_garbage(&self) -> Result<GcRound, FileError> {
        let (lock_path, store) = (self.state_dir.gc_lock(), self.store.clone());
        let listed = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let Some(lock) = GcLock::try_exclusive(&lock_path)? else { return Ok(None) };
            Ok(Some((lock, store.list_blobs()?)))
        })
        .await
        .map_err(std::io::Error::other)??;
        let Some((lock, stored)) = listed else { return Ok(GcRound::HeldOff) };
        let referenced = self.db.read(files::referenced_blobs).await?;
        let candidates: Vec<String> = stored.into_iter().filter(|blob| !referenced.contains(blob)).collect();
        let mut removed = Vec::new();
        for batch in candidates.chunks(gc::BATCH) {
            let (store, batch) = (self.store.clone(), batch.to_vec());
            let discarded =
                self.db.write(move |tx| gc::discard_unreferenced(tx, &store, &batch, Duration::ZERO)).await??;
            let discarded = tokio::task::spawn_blocking(move || gc::remove_trash(&discarded).map(|()| discarded))
                .await
                .map_err(std::io::Error::other)??;
            removed.extend(discarded.into_iter().map(|(sha256, _)| sha256));
        }
        drop(lock);
        Ok(GcRound::Removed(removed))
    }
}
