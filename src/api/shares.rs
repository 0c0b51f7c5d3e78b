//! `/shares`: making, listing, changing and revoking public links to a file, several files or
//! a folder.

use crate::api::strict::{Given, Text};
use std::sync::Arc;

use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::failure::ApiFailure;
use super::security::{Caller, client_ip, require_admin};
use super::users::{given, next_cursor, page_size};
use super::{ApiTags, rfc3339};
use crate::auth::Auth;
use crate::db::shares::Contents;
use crate::shares::{Change, Expiry, NewContents, NewShare, SendRequest, ShareChanges, ShareError, ShareView, Shares};

pub struct SharesApi {
    pub shares: Shares,
    pub auth: Arc<Auth>,
    /// `server.public_url`, without a trailing slash.
    pub public_url: Option<String>,
}

/// Give exactly one of `file_id`, `file_ids` and `folder`.
#[derive(Object)]
struct CreateShare {
    /// The one file to share (a single-file link).
    file_id: Given<Text>,
    /// Several of your files in one link (1 to 1000 ids).
    file_ids: Given<Vec<Text>>,
    /// One of your folders: the link holds whatever lies at or below it when a visitor asks.
    folder: Given<Text>,
    /// Seconds from now until the link stops working. Give this or `expires_at`, or neither
    /// for `shares.default_expiry`.
    expires_in: Given<i64>,
    /// When the link stops working (RFC 3339).
    expires_at: Given<Text>,
    /// Visitors must give this password (8 to 1024 characters).
    password: Given<Text>,
    /// Downloads allowed in all; a resumed download counts once. For a link to several files
    /// or a folder, downloads allowed of each file, alone or in the ZIP (which takes one of
    /// each file it holds).
    max_downloads: Given<i64>,
    /// For you (at most 1000 characters); visitors never see it.
    #[oai(default)]
    note: Text,
    /// Mail you (at your account's address) at each counted download; `false` when absent.
    notify_downloads: Given<bool>,
}

#[derive(Object)]
struct UpdateShare {
    expires_in: Given<i64>,
    expires_at: Given<Text>,
    /// A new password; `null` removes it. Either ends every unlock made with the old one.
    password: MaybeUndefined<Text>,
    /// A new limit; `null` removes it.
    max_downloads: MaybeUndefined<i64>,
    note: Given<Text>,
    /// A disabled link answers 404 until enabled again.
    disabled: Given<bool>,
    notify_downloads: Given<bool>,
}

#[derive(Object)]
struct SendShare {
    /// E-mail addresses to send the link to (1 to 20).
    recipients: Vec<Text>,
    /// Your message to them, shown in the mail (at most 2000 characters). The share's own
    /// `note` stays private.
    #[oai(default)]
    message: Text,
}

#[derive(Object)]
struct SentShare {
    /// The addresses the link is queued for (checked, duplicates removed).
    queued: Vec<String>,
}

#[derive(ApiResponse)]
enum Sent {
    /// Queued: the messages go out as soon as the mail server takes them.
    #[oai(status = 202)]
    Queued(Json<SentShare>),
}

#[derive(Object)]
struct ShareInfo {
    id: String,
    /// The public link; absent if the share-link key was replaced since it was made.
    #[oai(skip_serializing_if_is_none)]
    url: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    token: Option<String>,
    /// `file` (one file), `files` (a list) or `folder`.
    kind: String,
    /// The shared file; absent for a list or a folder.
    #[oai(skip_serializing_if_is_none)]
    file_id: Option<String>,
    /// The files named at creation (a list share); those deleted since no longer show.
    #[oai(skip_serializing_if_is_none)]
    file_ids: Option<Vec<String>>,
    /// The shared folder (a folder share).
    #[oai(skip_serializing_if_is_none)]
    folder: Option<String>,
    /// The file's name; for a list `N files`, for a folder its last segment.
    file_name: String,
    /// The file's size, or the total of the files the link holds now.
    file_size: i64,
    /// Files the link holds now.
    file_count: i64,
    owner: String,
    created_at: String,
    expires_at: String,
    has_password: bool,
    #[oai(skip_serializing_if_is_none)]
    max_downloads: Option<i64>,
    /// Downloads counted so far (page views, HEAD requests and resumed downloads are not); for
    /// a multi-file link, each ZIP and each single file downloaded counts one.
    downloads: i64,
    /// Page views and body-less requests, counted in batches (a few seconds behind).
    views: i64,
    #[oai(skip_serializing_if_is_none)]
    last_access_at: Option<String>,
    note: String,
    disabled: bool,
    notify_downloads: bool,
    /// `active`, `expired`, `exhausted` or `disabled`.
    state: String,
}

#[derive(Object)]
struct SharePage {
    shares: Vec<ShareInfo>,
    #[oai(skip_serializing_if_is_none)]
    next_cursor: Option<String>,
}

#[derive(ApiResponse)]
enum Created {
    #[oai(status = 201)]
    Created(Json<ShareInfo>),
}

#[derive(ApiResponse)]
enum Revoked {
    #[oai(status = 204)]
    Revoked,
}

impl From<ShareError> for ApiFailure {
    fn from(err: ShareError) -> Self {
        match err {
            ShareError::NotFound => Self::not_found("share"),
            ShareError::Invalid(message) => Self::bad_request("invalid", message),
            ShareError::MailOff => crate::auth::AccountError::MailOff.into(),
            ShareError::TooManyRecipients => Self::TooManyRequests(
                Json(super::ErrorBody {
                    error: "too_many_recipients".into(),
                    message: ShareError::TooManyRecipients.to_string(),
                    request_id: None,
                }),
                3600,
            ),
            ShareError::File(err) => err.into(),
            other => Self::internal(other),
        }
    }
}

/// The base of public links: `server.public_url`, else the scheme and host this request used.
pub(super) fn base_url(configured: Option<&str>, req: &Request) -> String {
    if let Some(url) = configured {
        return url.to_owned();
    }
    let host = req.header("host").map(str::to_owned).or_else(|| req.uri().authority().map(|a| a.to_string()));
    let plain = |host: &str| host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    match host.filter(|host| !host.is_empty() && plain(host)) {
        Some(host) => format!("{}://{host}", req.scheme()),
        None => String::new(),
    }
}

pub(super) fn expiry(expires_in: Option<i64>, expires_at: Option<Text>) -> Result<Option<Expiry>, ApiFailure> {
    match (expires_in, expires_at) {
        (Some(_), Some(_)) => Err(ApiFailure::bad_request("invalid", "give expires_in or expires_at, not both")),
        (Some(seconds), None) => Ok(Some(Expiry::In(seconds))),
        (None, Some(at)) => {
            let parsed = time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                .map_err(|_| ApiFailure::bad_request("invalid", "expires_at must be an RFC 3339 time"))?;
            Ok(Some(Expiry::At(parsed.unix_timestamp())))
        }
        (None, None) => Ok(None),
    }
}

pub(super) fn change<T, U: From<T>>(value: MaybeUndefined<T>) -> Change<U> {
    match value {
        MaybeUndefined::Undefined => Change::Keep,
        MaybeUndefined::Null => Change::Clear,
        MaybeUndefined::Value(value) => Change::Set(value.into()),
    }
}

fn cursor_of(info: &ShareInfo, created_at: i64) -> String {
    format!("{created_at}.{}", info.id)
}

fn decode_cursor(text: &str) -> Result<(i64, String), ApiFailure> {
    let bad = || ApiFailure::bad_request("invalid", "cursor is not one this server gave out");
    let (at, id) = text.split_once('.').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_owned()))
}

impl SharesApi {
    fn info(&self, view: ShareView, req: &Request) -> ShareInfo {
        let share = view.entry.share;
        let base = base_url(self.public_url.as_deref(), req);
        let (file_ids, folder) = match &share.contents {
            Contents::Files(ids) => (Some(ids.iter().map(|id| id.0.clone()).collect()), None),
            Contents::Folder(folder) => (None, Some(folder.clone())),
            Contents::File => (None, None),
        };
        ShareInfo {
            id: share.id,
            url: view.token.as_ref().map(|token| format!("{base}/s/{token}")),
            token: view.token,
            kind: share.contents.kind().to_owned(),
            file_id: share.file_id.map(|id| id.0),
            file_ids,
            folder,
            file_name: view.entry.file_name,
            file_size: view.entry.file_size,
            file_count: view.entry.file_count,
            owner: share.owner_id.0,
            created_at: rfc3339(share.created_at),
            expires_at: rfc3339(share.expires_at),
            has_password: share.password_hash.is_some(),
            max_downloads: share.max_downloads,
            downloads: share.downloads,
            views: share.views,
            last_access_at: share.last_access_at.map(rfc3339),
            note: share.note,
            disabled: share.disabled,
            notify_downloads: share.notify_downloads,
            state: view.state.as_str().to_owned(),
        }
    }
}

#[OpenApi(tag = "ApiTags::Shares")]
impl SharesApi {
    /// Make a public link to a file, several files or a folder you own. The response holds the
    /// link; you can see it again in the listing.
    #[oai(path = "/shares", method = "post")]
    async fn create(&self, req: &Request, caller: Caller, body: Json<CreateShare>) -> Result<Created, ApiFailure> {
        let body = body.0;
        let contents = match (body.file_id.0, body.file_ids.0, body.folder.0) {
            (Some(id), None, None) => NewContents::File(id.into_inner()),
            (None, Some(ids), None) => NewContents::Files(ids.into_iter().map(Text::into_inner).collect()),
            (None, None, Some(folder)) => NewContents::Folder(folder.into_inner()),
            _ => return Err(ApiFailure::bad_request("invalid", "give exactly one of file_id, file_ids and folder")),
        };
        let request = NewShare {
            contents,
            expiry: expiry(body.expires_in.0, body.expires_at.0)?.unwrap_or(Expiry::Default),
            password: body.password.0.map(String::from),
            max_downloads: body.max_downloads.0,
            note: body.note.into_inner(),
            notify_downloads: body.notify_downloads.0.unwrap_or(false),
        };
        let view = self.shares.create(&caller.0, request, &client_ip(req)).await?;
        Ok(Created::Created(Json(self.info(view, req))))
    }

    /// Your shares, newest first, with their download counts; `all=true` lists everyone's
    /// (admins only).
    #[oai(path = "/shares", method = "get")]
    async fn list(
        &self,
        req: &Request,
        caller: Caller,
        all: Query<Option<bool>>,
        cursor: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> Result<Json<SharePage>, ApiFailure> {
        let everyone = all.0.unwrap_or(false);
        if everyone {
            require_admin(&self.auth, &caller.0, req).await?;
        }
        let limit = page_size(limit.0)?;
        let after = given(cursor.0).as_deref().map(decode_cursor).transpose()?;
        let views = self.shares.list(&caller.0, everyone, after, limit).await?;
        let created: Vec<i64> = views.iter().map(|view| view.entry.share.created_at).collect();
        let shares: Vec<ShareInfo> = views.into_iter().map(|view| self.info(view, req)).collect();
        let next_cursor =
            next_cursor(&shares, limit, |last| cursor_of(last, created.last().copied().unwrap_or_default()));
        Ok(Json(SharePage { shares, next_cursor }))
    }

    /// One of your shares (admins: any share).
    #[oai(path = "/shares/:id", method = "get")]
    async fn get(&self, req: &Request, caller: Caller, id: Path<String>) -> Result<Json<ShareInfo>, ApiFailure> {
        let view = self.shares.get(&caller.0, &id).await?;
        Ok(Json(self.info(view, req)))
    }

    /// Change a share's expiry, download limit, password, note, or disable it.
    #[oai(path = "/shares/:id", method = "patch")]
    async fn update(
        &self,
        req: &Request,
        caller: Caller,
        id: Path<String>,
        body: Json<UpdateShare>,
    ) -> Result<Json<ShareInfo>, ApiFailure> {
        let body = body.0;
        let changes = ShareChanges {
            expiry: expiry(body.expires_in.0, body.expires_at.0)?,
            password: change(body.password),
            max_downloads: change(body.max_downloads),
            note: body.note.0.map(String::from),
            disabled: body.disabled.0,
            notify_downloads: body.notify_downloads.0,
        };
        let view = self.shares.update(&caller.0, &id, changes, &client_ip(req)).await?;
        Ok(Json(self.info(view, req)))
    }

    /// Send the link by e-mail to the people named: the link, your message and the expiry,
    /// never the password. Only the share's owner can, while the link works.
    #[oai(path = "/shares/:id/send", method = "post")]
    async fn send(
        &self,
        req: &Request,
        caller: Caller,
        id: Path<String>,
        body: Json<SendShare>,
    ) -> Result<Sent, ApiFailure> {
        let body = body.0;
        let recipients = body.recipients.into_iter().map(String::from).collect();
        let request = SendRequest { recipients, message: body.message.into_inner() };
        let queued = self.shares.send(&caller.0, &id, request, &client_ip(req)).await?;
        Ok(Sent::Queued(Json(SentShare { queued })))
    }

    /// Revoke a share: its link answers 404 at once and downloads in flight stop.
    #[oai(path = "/shares/:id", method = "delete")]
    async fn revoke(&self, req: &Request, caller: Caller, id: Path<String>) -> Result<Revoked, ApiFailure> {
        self.shares.revoke(&caller.0, &id, &client_ip(req)).await?;
        Ok(Revoked::Revoked)
    }
}
