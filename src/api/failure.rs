//! `ApiFailure`: the error outcomes of account operations, typed so the OpenAPI document lists
//! them, each with a stable code. Internal errors are logged and answered generically.

use poem_openapi::ApiResponse;
use poem_openapi::payload::Json;

use super::ErrorBody;
use crate::auth::password::HashError;
use crate::auth::{AccountError, AuthError};

#[derive(ApiResponse)]
pub enum ApiFailure {
    /// The request is not valid: `invalid`, `invalid_username`, `weak_password`,
    /// `wrong_password`, `password_unchanged`, `not_a_session`, `invalid_token`, `invalid_name`,
    /// `invalid_description`, `digest_mismatch`, `unsupported_digest`, `form_too_large`,
    /// `upload_incomplete`.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `unauthorized`: no valid access token or API token was sent (or it expired, or was
    /// revoked). `session_ended`: the session, API token or account ended while the request
    /// ran (a sign-out during an upload); nothing was stored.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// `forbidden`: the caller may not do this (admin only, or a read-only token).
    /// `cross_site_request`: a request made with the session cookie did not come from this
    /// site's own pages (see the `SessionCookie` scheme).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `not_found`.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// `username_taken`, `last_admin`, `name_taken`, `folder_exists`, `folder_not_empty`, or
    /// `mail_off` (this needs e-mail and the server sends none: `mail.host` is not set).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// `precondition_failed`: `If-Match` or `If-None-Match` does not hold; nothing changed.
    #[oai(status = 412)]
    PreconditionFailed(Json<ErrorBody>),
    /// `payload_too_large`: over `storage.max_file_size`.
    #[oai(status = 413)]
    TooLarge(Json<ErrorBody>),
    /// `unsupported_media_type`: the body is not of the type the operation takes (JSON, or
    /// a form for `POST /files`), or `Content-Type` is missing.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// `too_many_requests` (or `too_many_recipients` for share mails): wait the given seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// `quota_exceeded` or `insufficient_storage`.
    #[oai(status = 507)]
    InsufficientStorage(Json<ErrorBody>),
    /// `server_busy`: too many password checks are waiting; try again after the given seconds.
    #[oai(status = 503)]
    Busy(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// `internal_error`: logged on the server under the request id.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}

fn body(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    debug_assert!(super::error_codes::is_listed(code), "error code `{code}` is not in ERROR_CODES");
    Json(ErrorBody { error: code.into(), message: message.into(), request_id: None })
}

impl ApiFailure {
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::BadRequest(body(code, message))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(body("forbidden", message))
    }

    pub fn cross_site(message: &str) -> Self {
        Self::Forbidden(body("cross_site_request", message))
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(body("not_found", format!("no such {what}")))
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        Self::Internal(body("internal_error", "the server could not complete the request; it has been logged"))
    }

    pub fn busy() -> Self {
        Self::Busy(body("server_busy", "the server is busy checking passwords; try again in a second"), 1)
    }

    pub fn throttled(wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self::TooManyRequests(
            body("too_many_requests", format!("too many failed attempts; try again in {seconds} s")),
            seconds.max(1),
        )
    }
}

impl From<AccountError> for ApiFailure {
    fn from(err: AccountError) -> Self {
        let message = err.to_string();
        match err {
            AccountError::NotFound => Self::not_found("user"),
            AccountError::UsernameTaken(_) => Self::Conflict(body("username_taken", message)),
            AccountError::LastAdmin => Self::Conflict(body("last_admin", message)),
            AccountError::InvalidUsername(_) => Self::bad_request("invalid_username", message),
            AccountError::WeakPassword(_) => Self::bad_request("weak_password", message),
            AccountError::WrongPassword => Self::bad_request("wrong_password", message),
            AccountError::PasswordUnchanged => Self::bad_request("password_unchanged", message),
            AccountError::Auth(AuthError::Busy) | AccountError::Hash(HashError::Busy) => Self::busy(),
            AccountError::Invalid(_) => Self::bad_request("invalid", message),
            AccountError::InvalidResetToken => Self::bad_request("invalid_token", message),
            AccountError::MailOff => Self::Conflict(body("mail_off", message)),
            AccountError::Auth(AuthError::Throttled(wait)) => Self::throttled(wait),
            other => Self::internal(other),
        }
    }
}

impl From<crate::files::FileError> for ApiFailure {
    fn from(err: crate::files::FileError) -> Self {
        use crate::files::FileError;
        let message = err.to_string();
        match err {
            FileError::NotFound => Self::not_found("file"),
            FileError::NameTaken => Self::Conflict(body("name_taken", message)),
            FileError::InvalidName(_) => Self::bad_request("invalid_name", message),
            FileError::TooLarge { .. } => Self::TooLarge(body("payload_too_large", message)),
            FileError::QuotaExceeded => Self::InsufficientStorage(body("quota_exceeded", message)),
            FileError::NoSpace => Self::InsufficientStorage(body("insufficient_storage", message)),
            FileError::DigestMismatch => Self::bad_request("digest_mismatch", message),
            FileError::Aborted(_) => Self::bad_request("upload_incomplete", message),
            FileError::InvalidDescription(_) => Self::bad_request("invalid_description", message),
            FileError::PreconditionFailed => Self::PreconditionFailed(body("precondition_failed", message)),
            FileError::CredentialsEnded => Self::Unauthorized(body("session_ended", message)),
            FileError::NoSuchUser => Self::not_found("user"),
            FileError::NoSuchFolder => Self::not_found("folder"),
            FileError::FolderExists => Self::Conflict(body("folder_exists", message)),
            FileError::FolderNotEmpty => Self::Conflict(body("folder_not_empty", message)),
            FileError::Throttled(wait) => Self::throttled(wait),
            FileError::Invalid(_) => Self::bad_request("invalid", message),
            FileError::LinkFull => Self::Conflict(body("upload_link_full", message)),
            other => Self::internal(other),
        }
    }
}

impl From<AuthError> for ApiFailure {
    fn from(err: AuthError) -> Self {
        AccountError::from(err).into()
    }
}
