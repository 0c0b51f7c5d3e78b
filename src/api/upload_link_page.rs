//! The public side of upload links, no account needed:
//!
//! - `GET /u/{token}`: a small page with the owner's note, the limits and a multi-file upload
//!   (progress shown by `/app/assets/uplink.js`), or a password form;
//! - `POST /u/{token}`: the password form, which sets a short-lived unlock cookie;
//! - `PUT /u/{token}/files?name=NAME`: one file as the raw body. A protected link takes the
//!   unlock cookie or `X-Upload-Password`. The answer is `201 {"name", "size"}`: the safe name
//!   the file was given before any renaming and its size, nothing about the folder.
//!
//! Errors are pages for browsers and the usual JSON for clients that accept it (the upload
//! always answers JSON). The token never reaches the log: the request line names the link's id.

use poem::http::{HeaderValue, StatusCode, header};
use poem::web::{Data, Json, Path, Query};
use poem::{Body, IntoResponse, Request, Response, handler};

use super::error::error_response;
use super::security::client_ip;
use super::share_page::{capitalized, cookie, is_https, plausible};
use super::upload_link_html;
use crate::db::upload_links::UploadLinkEntry;
use crate::files::FileError;
use crate::shares::public::IssuedCookie;
use crate::upload_links::public::{Upload, unlock_cookie_name};
use crate::upload_links::{LinkError, LinkState, UploadLinks};

/// The upload link a request was about, for the request log (in place of the token).
#[derive(Clone, Debug)]
pub struct LoggedUploadLink(pub String);

fn wants_json(req: &Request) -> bool {
    req.header(header::ACCEPT).is_some_and(|accept| accept.contains("application/json"))
}

fn set_cookie(response: &mut Response, cookie: &IssuedCookie, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{}={}; Path=/u/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        cookie.name, cookie.value, cookie.max_age
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// A refusal, as a page or as JSON.
fn refusal(req: &Request, err: &LinkError, link: Option<&UploadLinkEntry>, token: &str, json: bool) -> Response {
    let (status, code) = match err {
        LinkError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        LinkError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
        LinkError::Expired => (StatusCode::GONE, "upload_link_expired"),
        LinkError::Full => (StatusCode::CONFLICT, "upload_link_full"),
        LinkError::TooLarge { .. } | LinkError::File(FileError::TooLarge { .. }) => {
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        }
        LinkError::File(FileError::QuotaExceeded) => (StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded"),
        LinkError::File(FileError::NoSpace) => (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage"),
        LinkError::File(FileError::Aborted(_)) => (StatusCode::BAD_REQUEST, "upload_incomplete"),
        // A name numbered 999 times over: rare, and said without naming the folder's files.
        LinkError::File(FileError::NameTaken) => (StatusCode::CONFLICT, "name_taken"),
        LinkError::PasswordRequired => (StatusCode::UNAUTHORIZED, "password_required"),
        LinkError::WrongPassword => (StatusCode::UNAUTHORIZED, "wrong_password"),
        LinkError::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
        LinkError::Hash(crate::auth::password::HashError::Busy) => (StatusCode::SERVICE_UNAVAILABLE, "server_busy"),
        other => {
            tracing::error!(error = %other, "upload link request failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
        }
    };
    let message = match err {
        LinkError::NotFound => "This link does not exist or was revoked.".to_owned(),
        LinkError::Throttled(wait) => format!("Too many wrong passwords. Try again in {} s.", wait.as_secs().max(1)),
        LinkError::File(FileError::QuotaExceeded) => "The owner's storage is full; nothing was stored.".to_owned(),
        LinkError::File(FileError::NameTaken) => "Give the file another name and try again.".to_owned(),
        _ if status == StatusCode::INTERNAL_SERVER_ERROR => {
            "The server could not complete the request; it has been logged.".to_owned()
        }
        other => format!("{}.", capitalized(&other.to_string())),
    };
    let mut response = if json || wants_json(req) {
        error_response(status, code, message, None)
    } else if matches!(err, LinkError::PasswordRequired | LinkError::WrongPassword | LinkError::Throttled(_)) {
        let problem = (!matches!(err, LinkError::PasswordRequired)).then_some(message.as_str());
        upload_link_html::password_form(token, problem).with_status(status).into_response()
    } else {
        upload_link_html::notice(status, &message).with_status(status).into_response()
    };
    if let LinkError::Throttled(wait) = err {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("X-Upload-Password"));
    }
    if let Some(link) = link {
        response.extensions_mut().insert(LoggedUploadLink(link.link.id.clone()));
    }
    response
}

async fn open(links: &UploadLinks, req: &Request, token: &str, json: bool) -> Result<UploadLinkEntry, Response> {
    if !plausible(token) {
        return Err(refusal(req, &LinkError::NotFound, None, token, json));
    }
    links.open(token).await.map_err(|err| refusal(req, &err, None, token, json))
}

fn logged(mut response: Response, entry: &UploadLinkEntry) -> Response {
    response.extensions_mut().insert(LoggedUploadLink(entry.link.id.clone()));
    response
}

/// `GET /u/{token}`: the upload page.
#[handler]
pub async fn landing(req: &Request, Path(token): Path<String>, links: Data<&UploadLinks>) -> Response {
    let entry = match open(&links, req, &token, false).await {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    let refused = match links.state(&entry) {
        LinkState::Expired => Some(LinkError::Expired),
        LinkState::Full => Some(LinkError::Full),
        LinkState::Active | LinkState::Disabled => None,
    };
    if let Some(err) = refused {
        return refusal(req, &err, Some(&entry), &token, false);
    }
    let unlock_cookie = cookie(req, &unlock_cookie_name(&entry.link.id));
    let response = match links.authorize(&entry, None, unlock_cookie, &client_ip(req)).await {
        Ok(_) => upload_link_html::upload_page(&token, &entry).into_response(),
        Err(err) => refusal(req, &err, Some(&entry), &token, false),
    };
    logged(response, &entry)
}

/// `POST /u/{token}` with a form field `password`: unlocks the link in this browser.
#[handler]
pub async fn unlock(req: &Request, Path(token): Path<String>, body: Body, links: Data<&UploadLinks>) -> Response {
    let entry = match open(&links, req, &token, false).await {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    let form = body.into_vec().await.unwrap_or_default();
    let password = form_urlencoded::parse(&form).find(|(key, _)| key == "password").map(|(_, value)| value);
    let Some(password) = password.filter(|password| !password.is_empty()) else {
        return refusal(req, &LinkError::PasswordRequired, Some(&entry), &token, false);
    };
    match links.authorize(&entry, Some(&password), None, &client_ip(req)).await {
        Ok(issued) => {
            let mut response = if wants_json(req) {
                Response::builder().status(StatusCode::NO_CONTENT).finish()
            } else {
                Response::builder()
                    .status(StatusCode::SEE_OTHER)
                    .header(header::LOCATION, format!("/u/{token}"))
                    .finish()
            };
            if let Some(issued) = issued {
                set_cookie(&mut response, &issued, is_https(req));
            }
            logged(response, &entry)
        }
        Err(err) => refusal(req, &err, Some(&entry), &token, false),
    }
}

#[derive(serde::Deserialize)]
pub struct FileQuery {
    name: Option<String>,
}

#[derive(serde::Serialize)]
struct Stored {
    name: String,
    size: u64,
}

/// `PUT /u/{token}/files?name=NAME`: one file, as the raw body.
#[handler]
pub async fn receive(
    req: &Request,
    Path(token): Path<String>,
    Query(query): Query<FileQuery>,
    body: Body,
    links: Data<&UploadLinks>,
) -> Response {
    let entry = match open(&links, req, &token, true).await {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    let ip = client_ip(req);
    let unlock_cookie = cookie(req, &unlock_cookie_name(&entry.link.id));
    if let Err(err) = links.authorize(&entry, req.header("x-upload-password"), unlock_cookie, &ip).await {
        return refusal(req, &err, Some(&entry), &token, true);
    }
    let declared = match req.header(header::CONTENT_LENGTH).map(str::parse::<u64>).transpose() {
        Ok(declared) => declared,
        Err(_) => {
            return refusal(req, &LinkError::Invalid("Content-Length is not a number".into()), None, &token, true);
        }
    };
    let upload = Upload { name: query.name.as_deref().unwrap_or_default(), declared_size: declared, ip: &ip };
    match links.receive(&entry, upload, body.into_bytes_stream()).await {
        Ok(stored) => {
            let response = (StatusCode::CREATED, Json(Stored { name: stored.name, size: stored.size })).into_response();
            logged(response, &entry)
        }
        Err(err) => refusal(req, &err, Some(&entry), &token, true),
    }
}
