//! `/upload-links`: making, listing, changing and revoking links through which people without
//! an account upload files into one of your folders. The public side is `upload_link_page.rs`.

use std::sync::Arc;

use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::failure::ApiFailure;
use super::security::{Caller, client_ip, require_admin};
use super::shares::{base_url, change, expiry};
use super::strict::{Given, Text};
use super::users::page_size;
use super::{ApiTags, rfc3339};
use crate::auth::Auth;
use crate::upload_links::{Expiry, LinkChanges, LinkError, LinkView, NewLink, UploadLinks};

pub struct UploadLinksApi {
    pub links: UploadLinks,
    pub auth: Arc<Auth>,
    /// `server.public_url`, without a trailing slash.
    pub public_url: Option<String>,
}

#[derive(Object)]
struct CreateUploadLink {
    /// The folder files go into (it must exist); empty or absent for the top level.
    #[oai(default)]
    folder: Text,
    /// Seconds from now until the link stops taking files. Give this or `expires_at`, or
    /// neither for `shares.default_expiry`.
    expires_in: Given<i64>,
    /// When the link stops taking files (RFC 3339).
    expires_at: Given<Text>,
    /// Uploaders must give this password (8 to 1024 characters).
    password: Given<Text>,
    /// Files the link takes in all (1 to 10000).
    max_files: i64,
    /// Bytes the link takes in all.
    max_total_bytes: i64,
    /// Largest file in bytes; at most `max_total_bytes` and `storage.max_file_size`. Absent:
    /// the smaller of the two.
    max_file_bytes: Given<i64>,
    /// Shown to uploaders (at most 2000 characters).
    #[oai(default)]
    note: Text,
    /// Mail you (at your account's address) at each file received; `false` when absent.
    notify_uploads: Given<bool>,
}

#[derive(Object)]
struct UpdateUploadLink {
    expires_in: Given<i64>,
    expires_at: Given<Text>,
    /// A new password; `null` removes it. Either stops uploads in flight and ends every
    /// unlock made with the old one.
    password: MaybeUndefined<Text>,
    max_files: Given<i64>,
    max_total_bytes: Given<i64>,
    max_file_bytes: Given<i64>,
    note: Given<Text>,
    /// A disabled link answers 404 until enabled again; disabling stops uploads in flight.
    disabled: Given<bool>,
    notify_uploads: Given<bool>,
}

#[derive(Object)]
struct UploadLinkInfo {
    id: String,
    /// The public link; absent if the share-link key was replaced since it was made.
    #[oai(skip_serializing_if_is_none)]
    url: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    token: Option<String>,
    owner: String,
    folder: String,
    created_at: String,
    expires_at: String,
    has_password: bool,
    max_files: i64,
    max_total_bytes: i64,
    max_file_bytes: i64,
    files_received: i64,
    bytes_received: i64,
    #[oai(skip_serializing_if_is_none)]
    last_upload_at: Option<String>,
    note: String,
    disabled: bool,
    notify_uploads: bool,
    /// `active`, `expired`, `full` or `disabled`.
    state: String,
}

#[derive(Object)]
struct UploadLinkList {
    upload_links: Vec<UploadLinkInfo>,
}

#[derive(ApiResponse)]
enum Created {
    #[oai(status = 201)]
    Created(Json<UploadLinkInfo>),
}

#[derive(ApiResponse)]
enum Revoked {
    #[oai(status = 204)]
    Revoked,
}

impl From<LinkError> for ApiFailure {
    fn from(err: LinkError) -> Self {
        match err {
            LinkError::NotFound => Self::not_found("upload link"),
            LinkError::Invalid(message) => Self::bad_request("invalid", message),
            LinkError::Hash(crate::auth::password::HashError::Busy) => Self::busy(),
            LinkError::File(err) => err.into(),
            other => Self::internal(other),
        }
    }
}

impl UploadLinksApi {
    fn info(&self, view: LinkView, req: &Request) -> UploadLinkInfo {
        let link = view.entry.link;
        let base = base_url(self.public_url.as_deref(), req);
        UploadLinkInfo {
            id: link.id,
            url: view.token.as_ref().map(|token| format!("{base}/u/{token}")),
            token: view.token,
            owner: link.owner_id.0,
            folder: link.folder,
            created_at: rfc3339(link.created_at),
            expires_at: rfc3339(link.expires_at),
            has_password: link.password_hash.is_some(),
            max_files: link.max_files,
            max_total_bytes: link.max_total_bytes,
            max_file_bytes: link.max_file_bytes,
            files_received: link.files_received,
            bytes_received: link.bytes_received,
            last_upload_at: link.last_upload_at.map(rfc3339),
            note: link.note,
            disabled: link.disabled,
            notify_uploads: link.notify_uploads,
            state: view.state.as_str().to_owned(),
        }
    }
}

#[OpenApi(tag = "ApiTags::UploadLinks")]
impl UploadLinksApi {
    /// Make a link through which people without an account upload files into one of your
    /// folders, within the limits given. The response holds the link; the listing shows it again.
    #[oai(path = "/upload-links", method = "post")]
    async fn create(&self, req: &Request, caller: Caller, body: Json<CreateUploadLink>) -> Result<Created, ApiFailure> {
        let body = body.0;
        let request = NewLink {
            folder: body.folder.into_inner(),
            expiry: expiry(body.expires_in.0, body.expires_at.0)?.unwrap_or(Expiry::Default),
            password: body.password.0.map(String::from),
            max_files: body.max_files,
            max_total_bytes: body.max_total_bytes,
            max_file_bytes: body.max_file_bytes.0,
            note: body.note.into_inner(),
            notify_uploads: body.notify_uploads.0.unwrap_or(false),
        };
        let view = self.links.create(&caller.0, request, &client_ip(req)).await?;
        Ok(Created::Created(Json(self.info(view, req))))
    }

    /// Your upload links, newest first, with what each received; `all=true` lists everyone's
    /// (admins only).
    #[oai(path = "/upload-links", method = "get")]
    async fn list(
        &self,
        req: &Request,
        caller: Caller,
        all: Query<Option<bool>>,
        limit: Query<Option<u32>>,
    ) -> Result<Json<UploadLinkList>, ApiFailure> {
        let everyone = all.0.unwrap_or(false);
        if everyone {
            require_admin(&self.auth, &caller.0, req).await?;
        }
        let views = self.links.list(&caller.0, everyone, page_size(limit.0)?).await?;
        Ok(Json(UploadLinkList { upload_links: views.into_iter().map(|view| self.info(view, req)).collect() }))
    }

    /// One of your upload links (admins: any).
    #[oai(path = "/upload-links/:id", method = "get")]
    async fn get(&self, req: &Request, caller: Caller, id: Path<String>) -> Result<Json<UploadLinkInfo>, ApiFailure> {
        let view = self.links.get(&caller.0, &id).await?;
        Ok(Json(self.info(view, req)))
    }

    /// Change an upload link's expiry, limits, password, note or notices, or disable it.
    /// Limits below what was already received only stop further files.
    #[oai(path = "/upload-links/:id", method = "patch")]
    async fn update(
        &self,
        req: &Request,
        caller: Caller,
        id: Path<String>,
        body: Json<UpdateUploadLink>,
    ) -> Result<Json<UploadLinkInfo>, ApiFailure> {
        let body = body.0;
        let changes = LinkChanges {
            expiry: expiry(body.expires_in.0, body.expires_at.0)?,
            password: change(body.password),
            max_files: body.max_files.0,
            max_total_bytes: body.max_total_bytes.0,
            max_file_bytes: body.max_file_bytes.0,
            note: body.note.0.map(String::from),
            disabled: body.disabled.0,
            notify_uploads: body.notify_uploads.0,
        };
        let view = self.links.update(&caller.0, &id, changes, &client_ip(req)).await?;
        Ok(Json(self.info(view, req)))
    }

    /// Revoke an upload link: it answers 404 at once, and uploads in flight stop and store
    /// nothing. Files already received stay in your folder.
    #[oai(path = "/upload-links/:id", method = "delete")]
    async fn revoke(&self, req: &Request, caller: Caller, id: Path<String>) -> Result<Revoked, ApiFailure> {
        self.links.revoke(&caller.0, &id, &client_ip(req)).await?;
        Ok(Revoked::Revoked)
    }
}
