//! Files: uploads into the blob store, metadata, who may read what.
//!
//! An upload is checked up front (announced size against `storage.max_file_size`, the owner's
//! quota and the free-disk reserve), streamed into the blob store with the tighter of the size
//! and quota limits, published, and only then recorded, in one IMMEDIATE transaction that
//! checks the quota and the name again, so parallel uploads can neither overshoot a quota nor
//! take one name twice. Anything that fails leaves no row and uses no quota; a published blob
//! whose row never commits is collected by the next GC pass.
//!
//! Another user's file is "not found", never "forbidden", so ids reveal nothing. Admins may
//! read every file; each such read of someone else's file is audited.

mod access;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

use crate::auth::now;
use crate::db::files::{self, FileRow};
use crate::db::{Db, DbError, users};
use crate::domain::{FileId, FileName, FolderPath, NameError, UserId};
use crate::state_dir::StateDir;
use crate::storage::{BlobStore, IngestError};

pub use access::{Access, readable_among, user_access};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("no such file")]
    NotFound,
    #[error("a file with this name already exists in the folder")]
    NameTaken,
    #[error(transparent)]
    InvalidName(#[from] NameError),
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
    #[error("{0}")]
    Invalid(String),
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

pub struct UploadRequest {
    pub folder: FolderPath,
    pub name: FileName,
    pub on_conflict: OnConflict,
    pub description: String,
    pub content_type: String,
    /// From `Content-Length`, when the client announced it.
    pub declared_size: Option<u64>,
    /// From `Content-Digest: sha-256=:...:`.
    pub expected_sha256: Option<[u8; 32]>,
}

/// Keeps a content type only if it is a plain `type/subtype`; anything else is stored as
/// `application/octet-stream` (downloads never trust it anyway).
pub fn clean_content_type(given: Option<&str>) -> String {
    let token = |part: &str| {
        !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&byte))
    };
    given
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .filter(|value| {
            value.len() <= 127 && value.split_once('/').is_some_and(|(kind, sub)| token(kind) && token(sub))
        })
        .unwrap_or_else(|| "application/octet-stream".into())
}

#[derive(Clone)]
pub struct Files {
    db: Db,
    store: BlobStore,
    state_dir: StateDir,
    /// `storage.max_file_size`, shared by every clone so a reload changes it everywhere.
    max_file_size: Arc<AtomicU64>,
    disk_reserve: u64,
}

impl Files {
    pub fn new(db: Db, store: BlobStore, state_dir: StateDir, max_file_size: u64, disk_reserve: u64) -> Self {
        Self { db, store, state_dir, max_file_size: Arc::new(AtomicU64::new(max_file_size)), disk_reserve }
    }

    /// A new `storage.max_file_size`, for uploads that start from now on.
    pub fn set_max_file_size(&self, limit: u64) {
        self.max_file_size.store(limit, Ordering::Relaxed);
    }

    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    pub async fn upload<S>(&self, owner: &UserId, request: UploadRequest, body: S) -> Result<FileRow, FileError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    {
        let max_file_size = self.max_file_size.load(Ordering::Relaxed);
        if request.declared_size.is_some_and(|size| size > max_file_size) {
            return Err(FileError::TooLarge { limit: max_file_size });
        }
        let (who, folder, name) = (owner.clone(), request.folder.clone(), request.name.clone());
        let (quota, used, taken) = self
            .db
            .read(move |conn| {
                let quota = users::by_id(conn, &who)?.and_then(|user| user.quota_bytes);
                let taken = files::by_name(conn, &who, &folder, &name)?.is_some();
                Ok((quota, files::used_bytes(conn, &who)?, taken))
            })
            .await?;
        if taken && request.on_conflict == OnConflict::Fail {
            return Err(FileError::NameTaken);
        }
        let quota_left = quota.map(|quota| u64::try_from(quota - used).unwrap_or(0));
        if let (Some(left), Some(size)) = (quota_left, request.declared_size)
            && size > left
            && request.on_conflict != OnConflict::Replace
        {
            return Err(FileError::QuotaExceeded);
        }
        let state_dir = self.state_dir.clone();
        let free =
            tokio::task::spawn_blocking(move || state_dir.free_bytes()).await.map_err(std::io::Error::other)??;
        if free < self.disk_reserve.saturating_add(request.declared_size.unwrap_or(0)) {
            return Err(FileError::NoSpace);
        }

        let quota_bound = quota_left.filter(|left| *left < max_file_size && request.on_conflict != OnConflict::Replace);
        let limit = quota_bound.unwrap_or(max_file_size);
        let pending = self.store.ingest(body, limit, request.expected_sha256).await.map_err(|err| match err {
            IngestError::TooLarge { .. } if quota_bound.is_some() => FileError::QuotaExceeded,
            other => ingest_error(other),
        })?;
        let published = self.store.publish(pending).await.map_err(ingest_error)?;
        let (size, sha256) = (i64::try_from(published.size).unwrap_or(i64::MAX), published.sha256.clone());
        let owner = owner.clone();
        let row = self
            .db
            .write(move |tx| {
                let now = now();
                let existing = files::by_name(tx, &owner, &request.folder, &request.name)?;
                let freed = match (&existing, request.on_conflict) {
                    (Some(old), OnConflict::Replace) => old.size,
                    _ => 0,
                };
                let quota = users::by_id(tx, &owner)?.and_then(|user| user.quota_bytes);
                if quota.is_some_and(|quota| files::used_bytes(tx, &owner).unwrap_or(i64::MAX) - freed + size > quota) {
                    return Ok(Err(FileError::QuotaExceeded));
                }
                let name = match (existing, request.on_conflict) {
                    (None, _) => request.name.clone(),
                    (Some(_), OnConflict::Fail) => return Ok(Err(FileError::NameTaken)),
                    (Some(old), OnConflict::Replace) => {
                        files::replace_contents(tx, &old.id, size, &sha256, &request.content_type, now)?;
                        return Ok(files::by_id(tx, &old.id)?.ok_or(FileError::NotFound));
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
                    content_type: request.content_type.clone(),
                    description: request.description.clone(),
                    created_at: now,
                    modified_at: now,
                };
                files::insert(tx, &row)?;
                Ok(Ok(row))
            })
            .await??;
        drop(published);
        Ok(row)
    }

    /// Removes blobs no file references (and finished uploads' leftovers). Safe at any time:
    /// it holds the publish lock, so blobs awaiting their rows are never touched.
    pub async fn collect_garbage(&self) -> Result<Vec<String>, FileError> {
        let path = self.db.path().to_owned();
        let referenced = move || {
            let conn = crate::db::connect(&path, Duration::from_secs(30)).map_err(std::io::Error::other)?;
            files::referenced_blobs(&conn).map_err(std::io::Error::other)
        };
        Ok(self.store.collect_garbage(Duration::ZERO, referenced).await?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_content_types_are_kept() {
        assert_eq!(clean_content_type(Some("image/PNG")), "image/png");
        assert_eq!(clean_content_type(Some("text/plain; charset=utf-8")), "text/plain");
        for bad in [None, Some(""), Some("text"), Some("text/html\r\nX: y"), Some("a b/c")] {
            assert_eq!(clean_content_type(bad), "application/octet-stream", "{bad:?}");
        }
    }
}
