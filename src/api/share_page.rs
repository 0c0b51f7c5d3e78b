//! The public side of share links, no account needed:
//!
//! - `GET /s/{token}`: a small HTML page (file name, size, expiry, download button, or a
//!   password form), served from the binary with a strict CSP and no external assets;
//! - `POST /s/{token}`: the password form, which sets a short-lived unlock cookie;
//! - `GET|HEAD /s/{token}/download`: the file, with the headers, ETag and Range support of
//!   owners' downloads; for a link to several files or a folder, all of them as one streamed
//!   ZIP (no Range). A protected share takes the unlock cookie or `X-Share-Password`;
//! - `GET|HEAD /s/{token}/files/{file_id}`: one file of a multi-file link, like a single file.
//!
//! The landing page answers `Accept: application/json` with the share's listing.
//!
//! Every path to the bytes, HEAD and Range included, passes the same checks. Errors are pages
//! for browsers and the usual JSON for clients that accept `application/json`. The token never
//! reaches the log: the request line names the share's id instead (see `middleware.rs`).

use poem::http::{HeaderValue, StatusCode, header};
use poem::web::{Data, Path};
use poem::{Body, IntoResponse, Request, Response, handler};

use super::download::DownloadPlan;
use super::error::error_response;
use super::security::client_ip;
use super::{share_html, share_listing};
use crate::shares::public::{IssuedCookie, Opened, unlock_cookie_name};
use crate::shares::{Refused, ShareError, ShareState, Shares, Visitor, Wanted};

/// The share a request was about, for the request log (in place of the token).
#[derive(Clone, Debug)]
pub struct LoggedShare(pub String);

/// Tokens are 43 URL-safe base64 characters; anything else is not worth a database lookup.
pub(super) fn plausible(token: &str) -> bool {
    (20..=100).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(super) fn wants_json(req: &Request) -> bool {
    req.header(header::ACCEPT).is_some_and(|accept| accept.contains("application/json"))
}

/// Every cookie of the request, as (name, value).
pub(super) fn cookies(req: &Request) -> Vec<(&str, &str)> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .collect()
}

pub(super) fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    cookies(req).into_iter().find_map(|(key, value)| (key == name).then_some(value))
}

pub(super) fn set_cookie(response: &mut Response, cookie: &IssuedCookie, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{}={}; Path=/s/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        cookie.name, cookie.value, cookie.max_age
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

pub(super) fn is_https(req: &Request) -> bool {
    req.scheme() == &poem::http::uri::Scheme::HTTPS
}

/// A refusal, as a page or as JSON.
fn refusal(req: &Request, err: &ShareError, share: Option<&Opened>, token: &str) -> Response {
    let (status, code) = match err {
        ShareError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ShareError::Expired => (StatusCode::GONE, "share_expired"),
        ShareError::Exhausted => (StatusCode::GONE, "share_exhausted"),
        ShareError::PasswordRequired => (StatusCode::UNAUTHORIZED, "password_required"),
        ShareError::WrongPassword => (StatusCode::UNAUTHORIZED, "wrong_password"),
        ShareError::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
        other => {
            tracing::error!(error = %other, "share request failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
        }
    };
    let message = match err {
        ShareError::NotFound => "This link does not exist or was revoked.".to_owned(),
        ShareError::Throttled(wait) => format!("Too many wrong passwords. Try again in {} s.", wait.as_secs().max(1)),
        ShareError::Expired | ShareError::Exhausted | ShareError::PasswordRequired | ShareError::WrongPassword => {
            format!("{}.", capitalized(&err.to_string()))
        }
        _ => "The server could not complete the request; it has been logged.".to_owned(),
    };
    let mut response = if wants_json(req) {
        error_response(status, code, message, None)
    } else if matches!(err, ShareError::PasswordRequired | ShareError::WrongPassword | ShareError::Throttled(_)) {
        let problem = (!matches!(err, ShareError::PasswordRequired)).then_some(message.as_str());
        share_html::password_form(token, problem).with_status(status).into_response()
    } else {
        share_html::notice(status, &message).with_status(status).into_response()
    };
    if let ShareError::Throttled(wait) = err {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("X-Share-Password"));
    }
    if let Some(share) = share {
        response.extensions_mut().insert(LoggedShare(share.id().to_owned()));
    }
    response
}

pub(super) fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Finds the share and turns away unknown and expired ones.
async fn open(shares: &Shares, req: &Request, token: &str) -> Result<Opened, Response> {
    if !plausible(token) {
        return Err(refusal(req, &ShareError::NotFound, None, token));
    }
    shares.open_public(token, &client_ip(req)).await.map_err(|refused| refused_answer(req, refused, token))
}

pub(super) fn refused_answer(req: &Request, refused: Refused, token: &str) -> Response {
    let mut response = refusal(req, &refused.error, None, token);
    if let Some(id) = refused.share_id {
        response.extensions_mut().insert(LoggedShare(id));
    }
    response
}

/// `GET /s/{token}`: the landing page. Views are tallied in batches, never counted as downloads.
#[handler]
pub async fn landing(req: &Request, Path(token): Path<String>, shares: Data<&Shares>) -> Response {
    let opened = match open(&shares, req, &token).await {
        Ok(opened) => opened,
        Err(response) => return response,
    };
    let ip = client_ip(req);
    let mut response = if shares.state(&opened) == ShareState::Exhausted {
        shares.note_view(opened.id(), &ip, true);
        refusal(req, &ShareError::Exhausted, Some(&opened), &token)
    } else {
        shares.note_view(opened.id(), &ip, false);
        let password = if wants_json(req) { req.header("x-share-password") } else { None };
        match shares.authorize(&opened, password, cookie(req, &unlock_cookie_name(opened.id())), &ip).await {
            Ok(issued) => match shares.members(&opened).await {
                Ok(members) if wants_json(req) => {
                    let mut response = share_listing::listing(&token, &opened, &members).into_response();
                    if let Some(issued) = issued {
                        set_cookie(&mut response, &issued, is_https(req));
                    }
                    response
                }
                Ok(members) => share_html::landing(&token, &opened, &members).into_response(),
                Err(err) => refusal(req, &err, Some(&opened), &token),
            },
            Err(err) => refusal(req, &err, Some(&opened), &token),
        }
    };
    response.extensions_mut().insert(LoggedShare(opened.id().to_owned()));
    response
}

/// `POST /s/{token}` with a form field `password`: unlocks the share in this browser.
#[handler]
pub async fn unlock(req: &Request, Path(token): Path<String>, body: Body, shares: Data<&Shares>) -> Response {
    let opened = match open(&shares, req, &token).await {
        Ok(opened) => opened,
        Err(response) => return response,
    };
    let form = body.into_vec().await.unwrap_or_default();
    let password = form_urlencoded::parse(&form).find(|(key, _)| key == "password").map(|(_, value)| value);
    let Some(password) = password.filter(|password| !password.is_empty()) else {
        return refusal(req, &ShareError::PasswordRequired, Some(&opened), &token);
    };
    let ip = client_ip(req);
    match shares.authorize(&opened, Some(&password), None, &ip).await {
        Ok(issued) => {
            let mut response = if wants_json(req) {
                Response::builder().status(StatusCode::NO_CONTENT).finish()
            } else {
                Response::builder()
                    .status(StatusCode::SEE_OTHER)
                    .header(header::LOCATION, format!("/s/{token}"))
                    .finish()
            };
            if let Some(issued) = issued {
                set_cookie(&mut response, &issued, is_https(req));
            }
            response.extensions_mut().insert(LoggedShare(opened.id().to_owned()));
            response
        }
        Err(err) => refusal(req, &err, Some(&opened), &token),
    }
}

/// `GET|HEAD /s/{token}/download`: the share's file, or the ZIP of a multi-file share.
#[handler]
pub async fn download(req: &Request, Path(token): Path<String>, shares: Data<&Shares>) -> Response {
    if !plausible(&token) {
        return refusal(req, &ShareError::NotFound, None, &token);
    }
    // One lookup to tell the kinds apart; each sequence then checks the share afresh.
    match shares.open(&token).await {
        Ok(opened) if opened.file.is_none() => share_listing::archive(req, &token, &shares).await,
        _ => serve_file(req, &token, None, &shares).await,
    }
}

/// `GET|HEAD /s/{token}/files/{file_id}`: one file of a multi-file share.
#[handler]
pub async fn one_file(
    req: &Request,
    Path((token, file_id)): Path<(String, String)>,
    shares: Data<&Shares>,
) -> Response {
    if !plausible(&token) {
        return refusal(req, &ShareError::NotFound, None, &token);
    }
    serve_file(req, &token, Some(&file_id), &shares).await
}

/// The sequence is `Shares::public_download`; this turns the request's headers into what it
/// wants and the outcome into an answer.
async fn serve_file(req: &Request, token: &str, member: Option<&str>, shares: &Shares) -> Response {
    let token = token.to_owned();
    let ip = client_ip(req);
    let visitor = Visitor { ip: &ip, password: req.header("x-share-password"), cookies: cookies(req) };
    let mut plan = None;
    let head = req.method() == poem::http::Method::HEAD;
    let served = shares
        .public_download(&token, member, visitor, |file| {
            let decided = DownloadPlan::new(file, req);
            let wanted = match decided.sends() {
                Some((start, length, partial)) if !head => Wanted::Bytes { start, length, partial },
                _ => Wanted::Nothing,
            };
            plan = Some(decided);
            wanted
        })
        .await;
    let (served, plan) = match (served, plan) {
        (Ok(served), Some(plan)) => (served, plan),
        (Ok(served), None) => {
            return refusal(req, &ShareError::Invalid("no download plan".into()), Some(&served.opened), &token);
        }
        (Err(refused), _) => return refused_answer(req, refused, &token),
    };
    let body = served.body.map_or_else(Body::empty, Body::from_bytes_stream);
    let mut response = plan.respond(body).into_response();
    for issued in &served.cookies {
        set_cookie(&mut response, issued, is_https(req));
    }
    response.extensions_mut().insert(LoggedShare(served.opened.id().to_owned()));
    response
}
