//! Resumable uploads over tus 1.0.0 at `/api/v1/uploads/`: OPTIONS discovery, POST creation
//! (with upload), HEAD, PATCH, DELETE. Headers in, headers out; the rules live in `uploads/`.
//!
//! tus answers with its own statuses (204, 409 for an offset mismatch, 412 for another
//! protocol version, 423 while another request appends, 460 for a checksum mismatch), so these
//! operations have their own failure type listing them; bodies keep the one JSON error shape.

use poem::http::HeaderValue;
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use poem_openapi::param::{Header, Path};
use poem_openapi::{ApiResponse, OpenApi};
use std::sync::Arc;

use super::failure::ApiFailure;
use super::security::Caller;
use super::tus_headers::{TUS_EXTENSIONS, TUS_VERSION, parse_checksum, parse_metadata};
use super::tus_types::{FirstChunk, TusChunk, TusFailure, body};
use super::{API_PREFIX, ApiTags};
use crate::domain::{Description, FileName, FolderPath, UploadId};
use crate::files::{Files, OnConflict};
use crate::uploads::{Chunk, NewUpload, UploadError, UploadStatus, Uploads};

pub struct ResumableApi {
    pub uploads: Uploads,
    pub files: Files,
}

#[derive(ApiResponse)]
enum Discovery {
    /// What this server supports.
    #[oai(status = 204)]
    Supported(
        #[oai(header = "Tus-Version")] String,
        #[oai(header = "Tus-Extension")] String,
        #[oai(header = "Tus-Max-Size")] u64,
        #[oai(header = "Tus-Checksum-Algorithm")] String,
    ),
}

#[derive(ApiResponse)]
enum Created {
    /// Created: `Location` is the upload's URL. With creation-with-upload, `Upload-Offset`
    /// says how much of the first chunk is stored; `Coffer-File-Id` is set when that was all.
    #[oai(status = 201)]
    Created(
        #[oai(header = "Location")] String,
        #[oai(header = "Upload-Offset")] u64,
        #[oai(header = "Upload-Expires")] String,
        #[oai(header = "Coffer-File-Id")] Option<String>,
    ),
}

#[derive(ApiResponse)]
enum Offset {
    /// Where the upload stands; every byte before `Upload-Offset` is on disk.
    #[oai(status = 200)]
    Known(
        #[oai(header = "Upload-Offset")] u64,
        #[oai(header = "Upload-Length")] u64,
        #[oai(header = "Upload-Metadata")] Option<String>,
        #[oai(header = "Upload-Expires")] String,
        #[oai(header = "Coffer-File-Id")] Option<String>,
    ),
}

#[derive(ApiResponse)]
enum Appended {
    /// Appended and on disk. With the last byte the upload is stored as a file, named by
    /// `Coffer-File-Id`.
    #[oai(status = 204)]
    Stored(
        #[oai(header = "Upload-Offset")] u64,
        #[oai(header = "Upload-Expires")] String,
        #[oai(header = "Coffer-File-Id")] Option<String>,
    ),
}

#[derive(ApiResponse)]
enum Terminated {
    /// The upload and its stored bytes are gone; a file it already became stays.
    #[oai(status = 204)]
    Terminated,
}

fn expires(status: &UploadStatus) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(status.expires_at).unwrap_or(0));
    httpdate::fmt_http_date(at)
}

fn require_tus(version: &Header<Option<String>>) -> Result<(), TusFailure> {
    match version.0.as_deref() {
        Some(TUS_VERSION) => Ok(()),
        _ => Err(TusFailure::UnsupportedVersion(
            body(
                "unsupported_version",
                format!("send Tus-Resumable: {TUS_VERSION}, the only tus version Coffer speaks"),
            ),
            TUS_VERSION.to_owned(),
        )),
    }
}

/// Upload ids are 32 hex digits; anything else names no upload (and never a path).
fn upload_id(raw: &str) -> Result<UploadId, TusFailure> {
    if raw.len() == 32 && raw.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(UploadId(raw.to_owned()))
    } else {
        Err(UploadError::NotFound.into())
    }
}

fn declared_size(req: &Request) -> Result<Option<u64>, TusFailure> {
    req.header("content-length")
        .map(|value| value.parse().map_err(|_| ApiFailure::bad_request("invalid", "Content-Length is not a number")))
        .transpose()
        .map_err(Into::into)
}

/// The body as a byte stream the upload task can own.
type ChunkStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send>>;

fn chunk_of(req: &Request, offset: u64, checksum: Option<&str>, body: Body) -> Result<Chunk<ChunkStream>, TusFailure> {
    Ok(Chunk {
        offset,
        declared_size: declared_size(req)?,
        checksum: checksum.map(parse_checksum).transpose()?,
        body: Box::pin(body.into_bytes_stream()),
    })
}

#[OpenApi(tag = "ApiTags::Uploads")]
impl ResumableApi {
    /// tus discovery: the version, extensions, largest upload and checksum algorithm.
    #[oai(path = "/uploads", method = "options")]
    async fn discover(&self) -> Discovery {
        Discovery::Supported(
            TUS_VERSION.to_owned(),
            TUS_EXTENSIONS.to_owned(),
            self.files.max_file_size(),
            "sha256".to_owned(),
        )
    }

    /// Create a resumable upload of `Upload-Length` bytes, reserving that much of your quota.
    /// `Upload-Metadata` names it: `name` (or `filename`), and optionally `folder`,
    /// `on_conflict` (`fail`, `rename`, `replace`), `description` and `sha256` (hex, checked
    /// when the last byte is in). A body of type `application/offset+octet-stream` is the
    /// first chunk. `Upload-Defer-Length` is not supported.
    #[oai(path = "/uploads", method = "post")]
    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        req: &Request,
        caller: Caller,
        #[oai(name = "Tus-Resumable")] version: Header<Option<String>>,
        #[oai(name = "Upload-Length")] length: Header<Option<u64>>,
        #[oai(name = "Upload-Defer-Length")] defer: Header<Option<String>>,
        #[oai(name = "Upload-Metadata")] metadata: Header<Option<String>>,
        #[oai(name = "Upload-Checksum")] checksum: Header<Option<String>>,
        first: FirstChunk,
    ) -> Result<Created, TusFailure> {
        require_tus(&version)?;
        if defer.0.is_some() {
            return Err(ApiFailure::bad_request(
                "deferred_length_unsupported",
                "Coffer needs Upload-Length at creation (to check the size limit and reserve quota); deferred length is not supported",
            )
            .into());
        }
        let Some(length) = length.0 else {
            return Err(ApiFailure::bad_request("invalid", "Upload-Length is required").into());
        };
        let raw_metadata = metadata.0.unwrap_or_default();
        let parsed = parse_metadata(&raw_metadata)?;
        let name = parsed.name.ok_or_else(|| {
            ApiFailure::bad_request("invalid_metadata", "Upload-Metadata must name the file (`name` or `filename`)")
        })?;
        let on_conflict = match parsed.on_conflict.as_deref() {
            None | Some("fail") => OnConflict::Fail,
            Some("rename") => OnConflict::Rename,
            Some("replace") => OnConflict::Replace,
            Some(_) => {
                return Err(
                    ApiFailure::bad_request("invalid_metadata", "on_conflict is fail, rename or replace").into()
                );
            }
        };
        let new = NewUpload {
            folder: FolderPath::parse(parsed.folder.as_deref().unwrap_or("")).map_err(crate::files::FileError::from)?,
            name: FileName::parse(&name).map_err(crate::files::FileError::from)?,
            on_conflict,
            description: Description::parse(parsed.description.as_deref().unwrap_or(""))
                .map_err(crate::files::FileError::from)?,
            length,
            metadata: raw_metadata,
            expected_sha256: parsed.sha256,
        };
        let mut status = self.uploads.create(&caller.0, new).await?;
        if let Some(body) = first.0 {
            let chunk = chunk_of(req, 0, checksum.0.as_deref(), body)?;
            status = self.uploads.append(&caller.0, &status.id, chunk).await?;
        } else if length == 0 {
            let chunk = chunk_of(req, 0, None, Body::empty())?;
            status = self.uploads.append(&caller.0, &status.id, chunk).await?;
        }
        let location = format!("{API_PREFIX}/uploads/{}", status.id);
        let expires = expires(&status);
        Ok(Created::Created(location, status.offset, expires, status.file_id.map(|id| id.0)))
    }

    /// The upload's offset (every byte before it is on disk), length and metadata; once
    /// finished, `Coffer-File-Id` names the file it became.
    #[oai(path = "/uploads/:id", method = "head")]
    async fn offset(
        &self,
        caller: Caller,
        id: Path<String>,
        #[oai(name = "Tus-Resumable")] version: Header<Option<String>>,
    ) -> Result<Offset, TusFailure> {
        require_tus(&version)?;
        let status = self.uploads.status(&caller.0, &upload_id(&id)?).await?;
        let expires = expires(&status);
        let metadata = Some(status.metadata).filter(|metadata| !metadata.is_empty());
        Ok(Offset::Known(status.offset, status.length, metadata, expires, status.file_id.map(|id| id.0)))
    }

    /// Append a chunk at `Upload-Offset` (which must be the upload's offset). With
    /// `Upload-Checksum: sha256 <base64>` the chunk is appended only if it matches (else 460).
    /// The answer comes once the chunk is on disk; a connection lost midway keeps what arrived
    /// (without a checksum). One PATCH at a time per upload (else 423).
    #[oai(path = "/uploads/:id", method = "patch")]
    #[allow(clippy::too_many_arguments)]
    async fn append(
        &self,
        req: &Request,
        caller: Caller,
        id: Path<String>,
        #[oai(name = "Tus-Resumable")] version: Header<Option<String>>,
        #[oai(name = "Upload-Offset")] offset: Header<u64>,
        #[oai(name = "Upload-Checksum")] checksum: Header<Option<String>>,
        body: TusChunk,
    ) -> Result<Appended, TusFailure> {
        require_tus(&version)?;
        let id = upload_id(&id)?;
        let chunk = chunk_of(req, offset.0, checksum.0.as_deref(), body.0)?;
        let status = self.uploads.append(&caller.0, &id, chunk).await?;
        let expires = expires(&status);
        Ok(Appended::Stored(status.offset, expires, status.file_id.map(|id| id.0)))
    }

    /// End an upload (tus termination): its stored bytes and quota reservation are released.
    #[oai(path = "/uploads/:id", method = "delete")]
    async fn terminate(
        &self,
        caller: Caller,
        id: Path<String>,
        #[oai(name = "Tus-Resumable")] version: Header<Option<String>>,
    ) -> Result<Terminated, TusFailure> {
        require_tus(&version)?;
        self.uploads.terminate(&caller.0, &upload_id(&id)?).await?;
        Ok(Terminated::Terminated)
    }
}

/// Middleware: every answer under `/api/v1/uploads` carries `Tus-Resumable`, errors included.
pub async fn tus_resumable_header<E: Endpoint>(endpoint: Arc<E>, req: Request) -> poem::Result<Response> {
    let tus = req.uri().path().starts_with(&format!("{API_PREFIX}/uploads"));
    let mut response = match endpoint.call(req).await {
        Ok(response) => response.into_response(),
        Err(err) => err.into_response(),
    };
    if tus {
        response.headers_mut().insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    }
    Ok(response)
}
