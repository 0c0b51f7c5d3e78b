//! Resumable (tus 1.0) uploads: creation with a quota reservation, appends at a durable
//! offset, expiry; the last byte ends in the plain upload's commit.
//!
//! An upload is a row in `uploads` and a part file `uploads/<id>` in the state dir. Creation
//! checks the size limit, the free-disk reserve and the quota against `Upload-Length` and
//! reserves that much of the quota in the same IMMEDIATE transaction that inserts the row, so
//! parallel creations serialise and cannot overrun it (`db::files::used_bytes` counts
//! reservations, which plain uploads respect too). An append writes at the durable offset,
//! fsyncs, and only then records the new offset: whatever HEAD reports is on disk. One append
//! at a time per upload; another one meanwhile is refused ([`UploadError::Locked`]) and changes
//! nothing. When the last byte is in, the part file is sealed read-only and handed to
//! [`Files::commit_finishing`] like a plain upload's temp file: content-addressed, deduplicated,
//! recorded in one transaction that also ends the reservation. The SHA-256 is computed while
//! appending; after a restart it is computed once from the part file (see `storage::part`).
//! Nothing here knows HTTP.

mod append;
mod expiry;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

use crate::auth::Principal;
use crate::clock::Clock;
use crate::db::files::FileRow;
use crate::db::uploads::{self, UploadRow};
use crate::db::{DbError, users};
use crate::domain::{Description, FileId, FileName, FolderPath, UploadId};
use crate::files::{FileError, Files, Finishing, OnConflict, Precondition, Received, UploadRequest};
use crate::storage::part::{self, AppendError, PartHash};
use crate::storage::{ExpectedDigests, PendingBlob};

/// One append at a time per upload; `None` until the hash is known again after a restart.
type Slot = Arc<tokio::sync::Mutex<Option<PartHash>>>;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("no such upload")]
    NotFound,
    #[error("another request is appending to this upload; wait for it, then ask HEAD for the offset")]
    Locked,
    #[error("Upload-Offset is {sent}, but the upload has {expected} bytes; ask HEAD for the offset")]
    OffsetMismatch { sent: u64, expected: u64 },
    #[error("the chunk does not match its Upload-Checksum; it was not appended")]
    ChecksumMismatch,
    #[error("the chunk was cut short, so its Upload-Checksum cannot be checked; it was not appended")]
    Incomplete,
    #[error("the chunk goes past Upload-Length ({length} bytes)")]
    PastLength { length: u64 },
    #[error("the whole contents do not match the sha256 given at creation; the upload was removed")]
    DigestMismatch,
    #[error(transparent)]
    File(#[from] FileError),
}

impl From<DbError> for UploadError {
    fn from(err: DbError) -> Self {
        Self::File(FileError::Db(err))
    }
}

impl From<std::io::Error> for UploadError {
    fn from(err: std::io::Error) -> Self {
        Self::File(FileError::Io(err))
    }
}

/// What a client asks for at creation.
pub struct NewUpload {
    pub folder: FolderPath,
    pub name: FileName,
    pub on_conflict: OnConflict,
    pub description: Description,
    pub length: u64,
    /// `Upload-Metadata` as sent, echoed by HEAD.
    pub metadata: String,
    /// The SHA-256 (hex) the whole contents must have.
    pub expected_sha256: Option<String>,
}

/// Where an upload stands.
pub struct UploadStatus {
    pub id: UploadId,
    pub length: u64,
    pub offset: u64,
    pub metadata: String,
    pub expires_at: i64,
    /// The file it became, once finished.
    pub file_id: Option<FileId>,
}

impl UploadStatus {
    fn of(row: &UploadRow) -> Self {
        Self {
            id: row.id.clone(),
            length: u64::try_from(row.length).unwrap_or(0),
            offset: u64::try_from(row.received).unwrap_or(0),
            metadata: row.metadata.clone(),
            expires_at: row.expires_at,
            file_id: row.file_id.clone(),
        }
    }
}

/// A chunk to append.
pub struct Chunk<S> {
    pub offset: u64,
    /// `Content-Length`, when sent.
    pub declared_size: Option<u64>,
    /// `Upload-Checksum: sha256 ...`.
    pub checksum: Option<[u8; 32]>,
    pub body: S,
}

#[derive(Clone)]
pub struct Uploads {
    files: Files,
    clock: Clock,
    dir: PathBuf,
    tmp: PathBuf,
    expiry: Duration,
    slots: Arc<Mutex<HashMap<UploadId, Slot>>>,
}

fn on_conflict_name(choice: OnConflict) -> &'static str {
    match choice {
        OnConflict::Fail => "fail",
        OnConflict::Rename => "rename",
        OnConflict::Replace => "replace",
    }
}

fn on_conflict_parse(stored: &str) -> OnConflict {
    match stored {
        "rename" => OnConflict::Rename,
        "replace" => OnConflict::Replace,
        _ => OnConflict::Fail,
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(std::io::Error::other)?
}

impl Uploads {
    /// `expiry`: how long an upload lives after its last byte (`uploads.resumable_expiry`).
    pub fn new(files: Files, clock: Clock, expiry: Duration) -> Self {
        let state_dir = files.state_dir().clone();
        Self {
            files,
            clock,
            dir: state_dir.uploads_dir(),
            tmp: state_dir.tmp_dir(),
            expiry,
            slots: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn part_path(&self, id: &UploadId) -> PathBuf {
        self.dir.join(&id.0)
    }

    fn expires_from_now(&self) -> i64 {
        self.clock.now().saturating_add(i64::try_from(self.expiry.as_secs()).unwrap_or(i64::MAX))
    }

    fn slot(&self, id: &UploadId) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(slots.entry(id.clone()).or_default())
    }

    fn forget(&self, id: &UploadId) {
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
    }

    /// The caller's upload, unless it expired.
    async fn row(&self, caller: &Principal, id: &UploadId) -> Result<UploadRow, UploadError> {
        let lookup = id.clone();
        let row = self.files.db().read(move |conn| uploads::by_id(conn, &lookup)).await?;
        match row {
            Some(row) if row.owner_id == caller.user_id && row.expires_at > self.clock.now() => Ok(row),
            _ => Err(UploadError::NotFound),
        }
    }

    async fn check_free_space(&self, wanted: u64) -> Result<(), UploadError> {
        let state_dir = self.files.state_dir().clone();
        let free = blocking(move || state_dir.free_bytes()).await?;
        if free < self.files.disk_reserve().saturating_add(wanted) {
            return Err(FileError::NoSpace.into());
        }
        Ok(())
    }

    /// Creates an upload, reserving `length` (and the description) of the caller's quota.
    pub async fn create(&self, caller: &Principal, new: NewUpload) -> Result<UploadStatus, UploadError> {
        let max_file_size = self.files.max_file_size();
        if new.length > max_file_size {
            return Err(FileError::TooLarge { limit: max_file_size }.into());
        }
        self.check_free_space(new.length).await?;
        let id = UploadId::generate();
        let path = self.part_path(&id);
        blocking(move || part::create(&path)).await?;
        let now = self.clock.now();
        let length = i64::try_from(new.length).unwrap_or(i64::MAX);
        let row = UploadRow {
            id: id.clone(),
            owner_id: caller.user_id.clone(),
            folder: new.folder.as_str().to_owned(),
            name: new.name.as_str().to_owned(),
            on_conflict: on_conflict_name(new.on_conflict).to_owned(),
            description: new.description.as_str().to_owned(),
            length,
            received: 0,
            reserved_bytes: length.saturating_add(new.description.stored_bytes()),
            metadata: new.metadata,
            expected_sha256: new.expected_sha256,
            created_at: now,
            expires_at: self.expires_from_now(),
            file_id: None,
        };
        let (caller_copy, inserted) = (caller.clone(), row.clone());
        let (folder, name, on_conflict) = (new.folder, new.name, new.on_conflict);
        let created = self
            .files
            .db()
            .write(move |tx| {
                if !caller_copy.still_authorized(tx)? {
                    return Ok(Err(FileError::CredentialsEnded));
                }
                let owner = &inserted.owner_id;
                if on_conflict == OnConflict::Fail && crate::db::files::by_name(tx, owner, &folder, &name)?.is_some() {
                    return Ok(Err(FileError::NameTaken));
                }
                let quota = users::by_id(tx, owner)?.and_then(|user| user.quota_bytes);
                let used = crate::db::files::used_bytes(tx, owner)?;
                if quota.is_some_and(|quota| used.saturating_add(inserted.reserved_bytes) > quota) {
                    return Ok(Err(FileError::QuotaExceeded));
                }
                uploads::insert(tx, &inserted)?;
                Ok(Ok(()))
            })
            .await
            .map_err(FileError::Db)
            .and_then(|outcome| outcome);
        if let Err(err) = created {
            let path = self.part_path(&id);
            let _ = blocking(move || std::fs::remove_file(path)).await;
            return Err(err.into());
        }
        tracing::info!(target: "coffer::uploads", upload = %id, length = new.length, "resumable upload created");
        Ok(UploadStatus::of(&row))
    }

    /// Where the caller's upload stands (HEAD).
    pub async fn status(&self, caller: &Principal, id: &UploadId) -> Result<UploadStatus, UploadError> {
        Ok(UploadStatus::of(&self.row(caller, id).await?))
    }

    /// Ends an upload (tus termination): its part file and reservation go; a finished upload's
    /// file stays.
    pub async fn terminate(&self, caller: &Principal, id: &UploadId) -> Result<(), UploadError> {
        self.row(caller, id).await?;
        let slot = self.slot(id);
        let Ok(_appending) = slot.try_lock_owned() else { return Err(UploadError::Locked) };
        self.remove(id).await
    }

    /// Deletes the row and the part file.
    async fn remove(&self, id: &UploadId) -> Result<(), UploadError> {
        let delete = id.clone();
        self.files.db().write(move |tx| uploads::delete(tx, &delete)).await?;
        let path = self.part_path(id);
        match blocking(move || std::fs::remove_file(path)).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
            _ => {}
        }
        self.forget(id);
        Ok(())
    }
}
