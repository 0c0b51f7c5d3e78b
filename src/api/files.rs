//! `/files`: listing, metadata, rename and move, delete (uploads are in `upload.rs`).

use crate::api::strict::{Given, Text};
use base64::Engine;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::conditions::precondition;
use super::failure::ApiFailure;
use super::security::{BearerAuth, client_ip};
use super::upload::{self, Stored};
use super::upload_form::UploadForm;
use super::users::{given, next_cursor, page_size};
use super::{ApiTags, rfc3339};
use crate::db::files::{Cursor, FileRow, SortBy};
use crate::domain::{Description, FileName, FolderPath};
use crate::files::{Files, OnConflict};

pub struct FilesApi {
    pub files: Files,
}

#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "lowercase")]
pub enum Conflict {
    /// 409 when the name is taken (the default).
    Fail,
    /// Store as `name (2).ext`, `name (3).ext`, ...
    Rename,
    /// Give the existing file the new contents.
    Replace,
}

impl From<Option<Conflict>> for OnConflict {
    fn from(choice: Option<Conflict>) -> Self {
        match choice {
            None | Some(Conflict::Fail) => OnConflict::Fail,
            Some(Conflict::Rename) => OnConflict::Rename,
            Some(Conflict::Replace) => OnConflict::Replace,
        }
    }
}

#[derive(Enum, Clone, Copy)]
enum Sort {
    #[oai(rename = "name")]
    Name,
    #[oai(rename = "created")]
    Created,
}

#[derive(Object)]
pub struct FileView {
    pub id: String,
    pub name: String,
    /// The folder path, `""` for the top level.
    pub folder: String,
    pub size: i64,
    /// SHA-256 of the contents, hex; also the download's ETag.
    pub sha256: String,
    pub content_type: String,
    pub description: String,
    pub created_at: String,
    pub modified_at: String,
    /// The owner's user id.
    pub owner: String,
}

impl From<FileRow> for FileView {
    fn from(row: FileRow) -> Self {
        Self {
            id: row.id.0,
            name: row.name,
            folder: row.folder,
            size: row.size,
            sha256: row.sha256,
            content_type: row.content_type,
            description: row.description,
            created_at: rfc3339(row.created_at),
            modified_at: rfc3339(row.modified_at),
            owner: row.owner_id.0,
        }
    }
}

#[derive(Object)]
struct FilePage {
    /// Folders directly inside the folder listed (first page only).
    folders: Vec<String>,
    files: Vec<FileView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next_cursor: Option<String>,
}

#[derive(Object)]
struct FileChanges {
    /// New name.
    name: Given<Text>,
    /// New folder (moves the file); `""` is the top level.
    folder: Given<Text>,
    /// `""` removes the description.
    description: Given<Text>,
}

#[derive(ApiResponse)]
enum Deleted {
    #[oai(status = 204)]
    Deleted,
}

fn encode_cursor(sort: SortBy, row: &FileRow) -> String {
    let key = match sort {
        SortBy::Name => format!("n:{}:{}", row.id.0, row.name),
        SortBy::Created => format!("c:{}:{}", row.id.0, row.created_at),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_cursor(text: &str) -> Result<(SortBy, Cursor), ApiFailure> {
    let bad = || ApiFailure::bad_request("invalid", "cursor is not one this server gave out");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = raw.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("n"), Some(id), Some(name)) => Ok((SortBy::Name, Cursor::Name(name.to_owned(), id.to_owned()))),
        (Some("c"), Some(id), Some(at)) => {
            Ok((SortBy::Created, Cursor::Created(at.parse().map_err(|_| bad())?, id.to_owned())))
        }
        _ => Err(bad()),
    }
}

#[OpenApi(tag = "ApiTags::Files")]
impl FilesApi {
    /// List a folder (files and subfolders), or the files others shared with you.
    #[oai(path = "/files", method = "get")]
    async fn list(
        &self,
        caller: BearerAuth,
        folder: Query<Option<String>>,
        cursor: Query<Option<String>>,
        limit: Query<Option<u32>>,
        sort: Query<Option<Sort>>,
        shared_with_me: Query<Option<bool>>,
    ) -> Result<Json<FilePage>, ApiFailure> {
        let limit = page_size(limit.0)?;
        if shared_with_me.0 == Some(true) {
            let files = self.files.shared_with_me(&caller.0, limit).await?;
            return Ok(Json(FilePage {
                folders: Vec::new(),
                files: files.into_iter().map(FileView::from).collect(),
                next_cursor: None,
            }));
        }
        let folder = FolderPath::parse_existing(folder.0.as_deref().unwrap_or(""))?;
        let (sort, after) = match given(cursor.0) {
            Some(cursor) => {
                let (sort, after) = decode_cursor(&cursor)?;
                (sort, Some(after))
            }
            None => (if matches!(sort.0, Some(Sort::Created)) { SortBy::Created } else { SortBy::Name }, None),
        };
        let listing = self.files.list(&caller.0.user_id, folder, sort, after, limit).await?;
        let next_cursor = next_cursor(&listing.files, limit, |row| encode_cursor(sort, row));
        Ok(Json(FilePage {
            folders: listing.folders,
            files: listing.files.into_iter().map(FileView::from).collect(),
            next_cursor,
        }))
    }

    /// Upload with `multipart/form-data`: optional text fields `folder`, `description` and
    /// `on_conflict` first, then the `file` field (its filename names the file), which must be
    /// the last part. Fields and part headers may take at most 64 KiB besides the file.
    #[oai(path = "/files", method = "post")]
    async fn upload_form(&self, req: &Request, caller: BearerAuth, body: UploadForm) -> Result<Stored, ApiFailure> {
        upload::receive_form(&self.files, req, caller, body).await
    }

    /// One file's metadata.
    #[oai(path = "/files/:id", method = "get")]
    async fn get(&self, req: &Request, caller: BearerAuth, id: Path<String>) -> Result<Json<FileView>, ApiFailure> {
        let (row, _) = self.files.readable(&caller.0, &id, &client_ip(req)).await?;
        Ok(Json(row.into()))
    }

    /// Rename, move or describe a file you own. With `If-Match: "<sha256>"` only if its
    /// contents are still those.
    #[oai(path = "/files/:id", method = "patch")]
    async fn update(
        &self,
        req: &Request,
        caller: BearerAuth,
        id: Path<String>,
        body: Json<FileChanges>,
    ) -> Result<Json<FileView>, ApiFailure> {
        let body = body.0;
        let (name, folder, description) = (body.name.0, body.folder.0, body.description.0);
        let precondition = precondition(req)?;
        let target = if name.is_some() || folder.is_some() {
            let current = self.files.owned(&caller.0, &id).await?;
            let name = match name.as_deref() {
                Some(name) => FileName::parse(name)?,
                None => FileName::parse_existing(&current.name)?,
            };
            let folder = match folder.as_deref() {
                Some(folder) => FolderPath::parse(folder)?,
                None => FolderPath::parse_existing(&current.folder)?,
            };
            Some((folder, name))
        } else {
            None
        };
        let description = description.as_deref().map(Description::parse).transpose()?;
        Ok(Json(self.files.update(&caller.0, &id, target, description, precondition).await?.into()))
    }

    /// Delete a file you own. With `If-Match: "<sha256>"` only if its contents are still those.
    #[oai(path = "/files/:id", method = "delete")]
    async fn delete(&self, req: &Request, caller: BearerAuth, id: Path<String>) -> Result<Deleted, ApiFailure> {
        self.files.delete(&caller.0, &id, precondition(req)?).await?;
        Ok(Deleted::Deleted)
    }
}

impl From<crate::domain::NameError> for ApiFailure {
    fn from(err: crate::domain::NameError) -> Self {
        crate::files::FileError::InvalidName(err).into()
    }
}

impl From<crate::domain::DescriptionError> for ApiFailure {
    fn from(err: crate::domain::DescriptionError) -> Self {
        crate::files::FileError::InvalidDescription(err).into()
    }
}
