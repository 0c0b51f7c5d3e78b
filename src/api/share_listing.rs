//! What the public side says of a share's contents: the JSON listing of `GET /s/{token}` (for
//! `Accept: application/json`) and the ZIP of `GET|HEAD /s/{token}/download` for a link to
//! several files or a folder. The sequences live in `shares`; this only shapes answers.

use poem::http::{StatusCode, header};
use poem::{Body, IntoResponse, Request, Response};
use serde_json::json;

use super::download::content_disposition;
use super::rfc3339;
use super::security::client_ip;
use super::share_page::{LoggedShare, cookies, is_https, refused_answer, set_cookie};
use crate::shares::public::Opened;
use crate::shares::{Member, Shares, Visitor};

/// The share's listing: each file's relative path, size and own download link, and the link
/// that downloads them all as a ZIP (multi-file shares).
pub fn listing(token: &str, opened: &Opened, members: &[Member]) -> Response {
    let share = &opened.entry.share;
    let single = opened.file.is_some();
    let files: Vec<_> = members
        .iter()
        .map(|member| {
            let url =
                if single { format!("/s/{token}/download") } else { format!("/s/{token}/files/{}", member.file.id) };
            json!({
                "id": member.file.id.0,
                "path": member.path,
                "size": member.file.size,
                "content_type": member.file.content_type,
                "modified_at": rfc3339(member.file.modified_at),
                "downloads_left": member.downloads_left,
                "url": url,
            })
        })
        .collect();
    let body = json!({
        "kind": share.contents.kind(),
        "name": opened.entry.file_name,
        "expires_at": rfc3339(share.expires_at),
        "max_downloads": share.max_downloads,
        "files": files,
        "download_all_url": (!single).then(|| format!("/s/{token}/download")),
    });
    let mut response = Response::builder()
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-robots-tag", "noindex, nofollow")
        .body(body.to_string());
    response.extensions_mut().insert(LoggedShare(opened.id().to_owned()));
    response
}

/// `GET|HEAD /s/{token}/download` of a multi-file share: the ZIP of all its files.
pub async fn archive(req: &Request, token: &str, shares: &Shares) -> Response {
    let ip = client_ip(req);
    let visitor = Visitor { ip: &ip, password: req.header("x-share-password"), cookies: cookies(req) };
    let head = req.method() == poem::http::Method::HEAD;
    let archive = match shares.public_archive(token, visitor, head).await {
        Ok(archive) => archive,
        Err(refused) => return refused_answer(req, refused, token),
    };
    let body = archive.body.map_or_else(Body::empty, Body::from_bytes_stream);
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .content_type("application/zip")
        .header(header::CONTENT_DISPOSITION, content_disposition(&archive.name))
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-content-type-options", "nosniff")
        .body(body);
    for issued in &archive.cookies {
        set_cookie(&mut response, issued, is_https(req));
    }
    response.extensions_mut().insert(LoggedShare(archive.opened.id().to_owned()));
    response.into_response()
}
