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

    /// Receives and stores an upload in one go.
    pub async fn upload<S>(&self, caller: &Principal, request: UploadRequest, body: S) -> Result<FileRow, FileError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    {
        let received = self.receive(caller, &request, body).await?;
        self.commit(caller, request, received).await
    }

    /// Checks what can be checked before reading (announced size against
    /// `storage.max_file_size`, the quota and the free-disk reserve; a taken name; the
    /// precondition), then streams `body` into a pending blob no larger than the tighter of
    /// the size limit and the quota left. Nothing is stored yet.
    pub async fn receive<S>(&self, caller: &Principal, request: &UploadRequest, body: S) -> Result<Received, FileError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    {
        self.receive_for(&caller.user_id, request, body, u64::MAX).await
    }

    /// [`Files::receive`] into `owner`'s files with a further bound on the size (an upload
    /// link's): over it, `TooLarge` names that bound.
    pub async fn receive_for<S>(
        &self,
        owner: &UserId,
        request: &UploadRequest,
        body: S,
        bound: u64,
    ) -> Result<Received, FileError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    {
        let max_file_size = self.max_file_size.load(Ordering::Relaxed).min(bound);
        if request.declared_size.is_some_and(|size| size > max_file_size) {
            return Err(FileError::TooLarge { limit: max_file_size });
        }
        let (who, folder, name) = (owner.clone(), request.folder.clone(), request.name.clone());
        let (quota, used, existing) = self
            .db
            .read(move |conn| {
                let quota = users::by_id(conn, &who)?.and_then(|user| user.quota_bytes);
                let existing = files::by_name(conn, &who, &folder, &name)?;
                Ok((quota, files::used_bytes(conn, &who)?, existing))
            })
            .await?;
        if !request.precondition.holds(existing.as_ref()) {
            return Err(FileError::PreconditionFailed);
        }
        if existing.is_some() && request.on_conflict == OnConflict::Fail {
            return Err(FileError::NameTaken);
        }
        let replacing = request.on_conflict == OnConflict::Replace && existing.is_some();
        let freed = existing.filter(|_| replacing).map_or(0, |old| old.size);
        let metadata = if replacing { 0 } else { request.description.stored_bytes() };
        let quota_left = quota.map(|quota| {
            u64::try_from(quota.saturating_sub(used).saturating_add(freed).saturating_sub(metadata)).unwrap_or(0)
        });
        if let (Some(left), Some(size)) = (quota_left, request.declared_size)
            && size > left
        {
            return Err(FileError::QuotaExceeded);
        }
        let state_dir = self.state_dir.clone();
        let free =
            tokio::task::spawn_blocking(move || state_dir.free_bytes()).await.map_err(std::io::Error::other)??;
        if free < self.disk_reserve.saturating_add(request.declared_size.unwrap_or(0)) {
            return Err(FileError::NoSpace);
        }

        let quota_bound = quota_left.filter(|left| *left < max_file_size);
        let limit = quota_bound.unwrap_or(max_file_size);
        let pending = self.store.ingest(body, limit, request.digests).await.map_err(|err| match err {
            IngestError::TooLarge { .. } if quota_bound.is_some() => FileError::QuotaExceeded,
            other => ingest_error(other),
        })?;
        Ok(Received { pending })
    }

    /// Commits received contents: publishes the blob, then in one IMMEDIATE transaction checks
    /// again that the caller's credential still stands, the precondition, the quota and the
    /// name (parallel uploads serialise here), and records the file. Only then is it stored.
    pub async fn commit(
        &self,
        caller: &Principal,
        request: UploadRequest,
        received: Received,
    ) -> Result<FileRow, FileError> {
        self.commit_finishing(caller, request, received, None).await
    }

    /// [`Files::commit`] for a resumable upload: in the same transaction, the upload's own
    /// reservation is left out of the quota check and the upload is marked finished as the
    /// new file, so its reservation ends exactly when the file's size starts to count.
    pub async fn commit_finishing(
        &self,
        caller: &Principal,
        request: UploadRequest,
        received: Received,
        finishing: Option<Finishing>,
    ) -> Result<FileRow, FileError> {
        self.commit_as(Authority::Caller(caller), request, received, finishing).await
    }

    /// [`Files::commit`] into `owner`'s files for an upload link: `check` decides in the
    /// transaction, with the row about to be inserted, whether the link still takes it.
    pub async fn commit_for_link(
        &self,
        owner: &UserId,
        request: UploadRequest,
        received: Received,
        check: LinkCheck,
    ) -> Result<FileRow, FileError> {
        self.commit_as(Authority::Link(owner.clone(), check), request, received, None).await
    }

    async fn commit_as(
        &self,
        authority: Authority<'_>,
        request: UploadRequest,
        received: Received,
        finishing: Option<Finishing>,
    ) -> Result<FileRow, FileError> {
        let content_type = media_type::media_type(&request.name, &received.pending.head);
        let published = self.store.publish(received.pending).await.map_err(ingest_error)?;
        let (size, sha256) = (i64::try_from(published.size).unwrap_or(i64::MAX), published.sha256.clone());
        let (caller, owner, mut link_check) = match authority {
            Authority::Caller(caller) => (Some(caller.clone()), caller.user_id.clone(), None),
            Authority::Link(owner, check) => (None, owner, Some(check)),
        };
        let now = self.clock.now();
        #[cfg(test)]
        let pause = self.pause_before_commit.clone();
        // `published` moves into the transaction: even when this request is cancelled, the
        // blob is checked (and put back) under the write lock that blob collection takes too.
        let row = self
            .db
            .write(move |tx| {
                #[cfg(test)]
                if let Some(pause) = pause {
                    pause();
                }
                if let Some(caller) = &caller
                    && !caller.still_authorized(tx)?
                {
                    return Ok(Err(FileError::CredentialsEnded));
                }
                if let Err(err) = published.ensure_stored() {
                    return Ok(Err(FileError::Io(err)));
                }
                let existing = files::by_name(tx, &owner, &request.folder, &request.name)?;
                if !request.precondition.holds(existing.as_ref()) {
                    return Ok(Err(FileError::PreconditionFailed));
                }
                let (freed, added) = match (&existing, request.on_conflict) {
                    (Some(old), OnConflict::Replace) => (old.size, size),
                    _ => (0, size.saturating_add(request.description.stored_bytes())),
                };
                let own_reservation = match &finishing {
                    Some(finishing) => match uploads::by_id(tx, &finishing.upload)? {
                        Some(upload) if upload.file_id.is_none() => upload.reserved_bytes,
                        _ => return Ok(Err(FileError::NotFound)),
                    },
                    None => 0,
                };
                let quota = users::by_id(tx, &owner)?.and_then(|user| user.quota_bytes);
                let used = files::used_bytes(tx, &owner)?.saturating_sub(own_reservation);
                if quota.is_some_and(|quota| used.saturating_sub(freed).saturating_add(added) > quota) {
                    return Ok(Err(FileError::QuotaExceeded));
                }
                let record = |row: FileRow| -> Result<Result<FileRow, FileError>, DbError> {
                    if let Some(finishing) = &finishing {
                        uploads::finish(tx, &finishing.upload, &row.id, finishing.keep_until)?;
                    }
                    Ok(Ok(row))
                };
                let name = match (existing, request.on_conflict) {
                    (None, _) => request.name.clone(),
                    (Some(_), OnConflict::Fail) => return Ok(Err(FileError::NameTaken)),
                    (Some(_), OnConflict::Replace) if link_check.is_some() => return Ok(Err(FileError::NameTaken)),
                    (Some(old), OnConflict::Replace) => {
                        files::replace_contents(tx, &old.id, size, &sha256, &content_type, now)?;
                        return match files::by_id(tx, &old.id)? {
                            Some(row) => record(row),
                            None => Ok(Err(FileError::NotFound)),
                        };
                    }
                    (Some(_), OnConflict::Rename) => match free_name(tx, &owner, &request.folder, &request.name)? {
                        Some(name) => name,
                        None => return Ok(Err(FileError::NameTaken)),
                    },
                };
                let row = FileRow {
                    id: FileId::generate(),
                    owner_id: owner.clone(),
                    folder: request.folder.as_str().to_owned(),
                    name: name.as_str().to_owned(),
                    size,
                    sha256: sha256.clone(),
                    content_type: content_type.clone(),
                    description: request.description.as_str().to_owned(),
                    created_at: now,
                    modified_at: now,
                };
                if let Some(check) = link_check.take()
                    && let Err(refused) = check(tx, &row)?
                {
                    return Ok(Err(refused));
                }
                files::insert(tx, &row)?;
                record(row)
            })
            .await??;
        Ok(row)
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

/// `name (2).ext`, `name (3).ext`, ... up to a bound.
fn free_name(
    conn: &rusqlite::Connection,
    owner: &UserId,
    folder: &FolderPath,
    name: &FileName,
) -> Result<Option<FileName>, DbError> {
    for number in 2..1000 {
        let Some(candidate) = name.numbered(number) else { return Ok(None) };
        if files::by_name(conn, owner, folder, &candidate)?.is_none() {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

fn ingest_error(err: IngestError) -> FileError {
    match err {
        IngestError::TooLarge { limit } => FileError::TooLarge { limit },
        IngestError::DigestMismatch => FileError::DigestMismatch,
        IngestError::NoSpace => FileError::NoSpace,
        IngestError::Body(reason) => FileError::Aborted(reason),
        IngestError::Disk(err) => FileError::Io(err),
    }
}
