//! `/files`: uploads, listing, metadata, rename and move, delete.

use base64::Engine;
use futures_util::TryStreamExt;
use poem::{Body, Request};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::failure::ApiFailure;
use super::security::{BearerAuth, client_ip};
use super::upload_form::UploadForm;
use super::users::{next_cursor, page_size};
use super::{ApiTags, rfc3339};
use crate::db::files::{Cursor, FileRow, SortBy};
use crate::domain::{FileName, FolderPath};
use crate::files::{Files, OnConflict, UploadRequest, clean_content_type};

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
    name: Option<String>,
    /// New folder (moves the file); `""` is the top level.
    folder: Option<String>,
    description: Option<String>,
}

#[derive(ApiResponse)]
enum Stored {
    /// Stored; nothing is acknowledged before the contents are on disk and the record committed.
    #[oai(status = 201)]
    Created(Json<FileView>),
}

#[derive(ApiResponse)]
enum Deleted {
    #[oai(status = 204)]
    Deleted,
}

/// The SHA-256 from `Content-Digest: sha-256=:<base64>:` (RFC 9530), if sent.
fn content_digest(req: &Request) -> Result<Option<[u8; 32]>, ApiFailure> {
    let Some(header) = req.header("content-digest") else { return Ok(None) };
    let bad = || ApiFailure::bad_request("invalid", "Content-Digest must be like sha-256=:<base64 of 32 bytes>:");
    for member in header.split(',').map(str::trim) {
        let Some(value) = member.strip_prefix("sha-256=") else { continue };
        let encoded = value.strip_prefix(':').and_then(|rest| rest.strip_suffix(':')).ok_or_else(bad)?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| bad())?;
        return bytes.try_into().map(Some).map_err(|_| bad());
    }
    Ok(None)
}

fn declared_size(req: &Request) -> Result<Option<u64>, ApiFailure> {
    req.header("content-length")
        .map(|value| value.parse().map_err(|_| ApiFailure::bad_request("invalid", "Content-Length is not a number")))
        .transpose()
}

fn body_stream(body: Body) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Unpin {
    body.into_bytes_stream()
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
    /// Upload a file as the raw request body. `Content-Length` is checked against the size
    /// limit before anything is read; `Content-Digest: sha-256=:...:` is verified.
    #[oai(path = "/files/upload", method = "put")]
    #[allow(clippy::too_many_arguments)]
    async fn upload(
        &self,
        req: &Request,
        caller: BearerAuth,
        name: Query<String>,
        folder: Query<Option<String>>,
        on_conflict: Query<Option<Conflict>>,
        description: Query<Option<String>>,
        body: Binary<Body>,
    ) -> Result<Stored, ApiFailure> {
        let request = UploadRequest {
            folder: FolderPath::parse(folder.0.as_deref().unwrap_or(""))?,
            name: FileName::parse(&name.0)?,
            on_conflict: on_conflict.0.into(),
            description: description.0.unwrap_or_default(),
            content_type: clean_content_type(req.content_type()),
            declared_size: declared_size(req)?,
            expected_sha256: content_digest(req)?,
        };
        let row = self.files.upload(&caller.0.user_id, request, body_stream(body.0)).await?;
        Ok(Stored::Created(Json(row.into())))
    }

    /// Upload with `multipart/form-data`: optional text fields `folder`, `description` and
    /// `on_conflict` first, then the `file` field (its filename names the file).
    #[oai(path = "/files", method = "post")]
    async fn upload_form(&self, req: &Request, caller: BearerAuth, body: UploadForm) -> Result<Stored, ApiFailure> {
        let boundary = req
            .content_type()
            .and_then(|kind| multer::parse_boundary(kind).ok())
            .ok_or_else(|| ApiFailure::bad_request("invalid", "expected multipart/form-data with a boundary"))?;
        let mut form = multer::Multipart::new(body.0.into_bytes_stream(), boundary);
        let (mut folder, mut description, mut on_conflict) = (String::new(), String::new(), None);
        let bad_form = |err: multer::Error| ApiFailure::bad_request("invalid", format!("malformed form: {err}"));
        while let Some(field) = form.next_field().await.map_err(bad_form)? {
            match field.name().unwrap_or_default() {
                "file" => {
                    let name = field.file_name().unwrap_or_default().to_owned();
                    let request = UploadRequest {
                        folder: FolderPath::parse(&folder)?,
                        name: FileName::parse(&name)?,
                        on_conflict: on_conflict.into(),
                        description,
                        content_type: clean_content_type(field.content_type().map(|mime| mime.essence_str())),
                        declared_size: None,
                        expected_sha256: None,
                    };
                    let stream = field.map_err(|err| std::io::Error::other(err.to_string()));
                    let row = self.files.upload(&caller.0.user_id, request, stream).await?;
                    return Ok(Stored::Created(Json(row.into())));
                }
                "folder" => folder = field.text().await.map_err(bad_form)?,
                "description" => description = field.text().await.map_err(bad_form)?,
                "on_conflict" => {
                    on_conflict = match field.text().await.map_err(bad_form)?.as_str() {
                        "fail" => Some(Conflict::Fail),
                        "rename" => Some(Conflict::Rename),
                        "replace" => Some(Conflict::Replace),
                        _ => return Err(ApiFailure::bad_request("invalid", "on_conflict is fail, rename or replace")),
                    }
                }
                other => return Err(ApiFailure::bad_request("invalid", format!("unknown form field `{other}`"))),
            }
        }
        Err(ApiFailure::bad_request("invalid", "the form has no `file` field"))
    }

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
        let folder = FolderPath::parse(folder.0.as_deref().unwrap_or(""))?;
        let (sort, after) = match cursor.0 {
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

    /// One file's metadata.
    #[oai(path = "/files/:id", method = "get")]
    async fn get(&self, req: &Request, caller: BearerAuth, id: Path<String>) -> Result<Json<FileView>, ApiFailure> {
        let (row, _) = self.files.readable(&caller.0, &id, &client_ip(req)).await?;
        Ok(Json(row.into()))
    }

    /// Rename, move or describe a file you own.
    #[oai(path = "/files/:id", method = "patch")]
    async fn update(
        &self,
        caller: BearerAuth,
        id: Path<String>,
        body: Json<FileChanges>,
    ) -> Result<Json<FileView>, ApiFailure> {
        let body = body.0;
        let target = if body.name.is_some() || body.folder.is_some() {
            let current = self.files.owned(&caller.0, &id).await?;
            let name = FileName::parse(body.name.as_deref().unwrap_or(&current.name))?;
            let folder = FolderPath::parse(body.folder.as_deref().unwrap_or(&current.folder))?;
            Some((folder, name))
        } else {
            None
        };
        Ok(Json(self.files.update(&caller.0, &id, target, body.description).await?.into()))
    }

    /// Delete a file you own.
    #[oai(path = "/files/:id", method = "delete")]
    async fn delete(&self, caller: BearerAuth, id: Path<String>) -> Result<Deleted, ApiFailure> {
        self.files.delete(&caller.0, &id).await?;
        Ok(Deleted::Deleted)
    }
}

impl From<crate::domain::NameError> for ApiFailure {
    fn from(err: crate::domain::NameError) -> Self {
        crate::files::FileError::InvalidName(err).into()
    }
}
