//! The bodies and the failures of the tus operations (`api/resumable.rs`): a chunk is
//! `application/offset+octet-stream`, streamed to disk; the failures list tus's own statuses.

use poem::{Body, Request, RequestBody};
use poem_openapi::payload::{Json, ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef};
use poem_openapi::{ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions};

use super::ErrorBody;
use super::failure::ApiFailure;
use crate::uploads::UploadError;

/// A chunk of a resumable upload, `application/offset+octet-stream`, streamed to disk.
pub struct TusChunk(pub Body);

const CHUNK_TYPE: &str = "application/offset+octet-stream";

fn chunk_schema() -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema { format: Some("binary"), ..MetaSchema::new("string") }))
}

fn is_chunk_type(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case(CHUNK_TYPE))
}

impl Payload for TusChunk {
    const CONTENT_TYPE: &'static str = CHUNK_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        is_chunk_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        chunk_schema()
    }
}

impl ParsePayload for TusChunk {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Ok(Self(<Body as poem::FromRequest>::from_request(request, body).await?))
    }
}

poem_openapi::impl_apirequest_for_payload!(TusChunk,);

/// The first chunk sent with the creation request (creation-with-upload), if any.
pub struct FirstChunk(pub Option<Body>);

impl<'a> ApiExtractor<'a> for FirstChunk {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: Some("Optional: the first bytes of the contents (creation-with-upload)."),
            content: vec![MetaMediaType { content_type: CHUNK_TYPE, schema: chunk_schema() }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match request.content_type() {
            None => Ok(Self(None)),
            Some(kind) if is_chunk_type(kind) => Ok(Self(Some(body.take()?))),
            Some(kind) => {
                Err(poem_openapi::error::ContentTypeError::NotSupported { content_type: kind.to_owned() }.into())
            }
        }
    }
}

/// The failures of the tus operations.
#[derive(ApiResponse)]
pub enum TusFailure {
    /// `invalid`, `invalid_metadata`, `invalid_name`, `invalid_description`,
    /// `deferred_length_unsupported`, `unsupported_checksum`, `upload_incomplete`.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `session_ended`: the session, API token or account ended meanwhile.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// `forbidden`: a read-only API token.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `not_found`: no such upload, another user's, or expired.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// `offset_mismatch` (Upload-Offset is not the upload's offset: ask HEAD) or `name_taken`.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// `unsupported_version`: Tus-Resumable is missing or not 1.0.0.
    #[oai(status = 412)]
    UnsupportedVersion(Json<ErrorBody>, #[oai(header = "Tus-Version")] String),
    /// `payload_too_large`: Upload-Length over `storage.max_file_size`, or a chunk past it.
    #[oai(status = 413)]
    TooLarge(Json<ErrorBody>),
    /// `unsupported_media_type`: a PATCH whose body is not `application/offset+octet-stream`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// `upload_locked`: another request is appending to this upload.
    #[oai(status = 423)]
    Locked(Json<ErrorBody>),
    /// `too_many_requests`.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// `checksum_mismatch` (the chunk was not appended) or `digest_mismatch` (the whole
    /// contents differ from the sha256 given at creation; the upload was removed).
    #[oai(status = 460)]
    ChecksumMismatch(Json<ErrorBody>),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `server_busy`.
    #[oai(status = 503)]
    Busy(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// `quota_exceeded` or `insufficient_storage` (the chunk was not appended: resume later).
    #[oai(status = 507)]
    InsufficientStorage(Json<ErrorBody>),
}

pub(super) fn body(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody { error: code.into(), message: message.into(), request_id: None })
}

impl From<ApiFailure> for TusFailure {
    fn from(failure: ApiFailure) -> Self {
        match failure {
            ApiFailure::BadRequest(body) => Self::BadRequest(body),
            ApiFailure::Unauthorized(body) => Self::Unauthorized(body),
            ApiFailure::Forbidden(body) => Self::Forbidden(body),
            ApiFailure::NotFound(body) => Self::NotFound(body),
            ApiFailure::Conflict(body) => Self::Conflict(body),
            ApiFailure::PreconditionFailed(body) => Self::Conflict(body),
            ApiFailure::TooLarge(body) => Self::TooLarge(body),
            ApiFailure::UnsupportedMediaType(body) => Self::UnsupportedMediaType(body),
            ApiFailure::TooManyRequests(body, wait) => Self::TooManyRequests(body, wait),
            ApiFailure::InsufficientStorage(body) => Self::InsufficientStorage(body),
            ApiFailure::Busy(body, wait) => Self::Busy(body, wait),
            ApiFailure::Internal(body) => Self::Internal(body),
        }
    }
}

impl From<crate::files::FileError> for TusFailure {
    fn from(err: crate::files::FileError) -> Self {
        ApiFailure::from(err).into()
    }
}

impl From<UploadError> for TusFailure {
    fn from(err: UploadError) -> Self {
        let message = err.to_string();
        match err {
            UploadError::NotFound => Self::NotFound(body("not_found", message)),
            UploadError::Locked => Self::Locked(body("upload_locked", message)),
            UploadError::OffsetMismatch { .. } => Self::Conflict(body("offset_mismatch", message)),
            UploadError::ChecksumMismatch => Self::ChecksumMismatch(body("checksum_mismatch", message)),
            UploadError::DigestMismatch => Self::ChecksumMismatch(body("digest_mismatch", message)),
            UploadError::Incomplete => Self::BadRequest(body("upload_incomplete", message)),
            UploadError::PastLength { .. } => Self::TooLarge(body("payload_too_large", message)),
            UploadError::File(err) => err.into(),
        }
    }
}
