//! The plain-HTTP listener: ACME HTTP-01 answers at `/.well-known/acme-challenge/<token>`,
//! and for everything else a 308 to the same path over HTTPS, so a browser typing the bare
//! domain lands on the real site and no request is ever served unencrypted.

use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::http::{StatusCode, header};
use poem::{EndpointExt, Request, Response};

use crate::acme::Http01Answers;

fn location(req: &Request, public_url: Option<&str>, https_port: u16) -> Option<String> {
    let path = req.uri().path_and_query().map_or("/", |path| path.as_str());
    if let Some(base) = public_url {
        return Some(format!("{base}{path}"));
    }
    let host = req.header(header::HOST).or_else(|| req.uri().host())?;
    let plain =
        |host: &str| !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b));
    if !plain(host) {
        return None;
    }
    // Drop any port the client used for plain HTTP; add the HTTPS one unless it is 443.
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']') => {
            name
        }
        _ => host,
    };
    let port = if https_port == 443 { String::new() } else { format!(":{https_port}") };
    Some(format!("https://{name}{port}{path}"))
}

const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

pub fn to_https(
    public_url: Option<String>,
    https_port: u16,
    http01: Arc<Http01Answers>,
) -> BoxEndpoint<'static, Response> {
    poem::endpoint::make_sync(move |req: Request| {
        if let Some(token) = req.uri().path().strip_prefix(CHALLENGE_PATH) {
            return match http01.get(token) {
                Some(answer) => Response::builder().content_type("text/plain").body(answer),
                None => super::error_response(StatusCode::NOT_FOUND, "not_found", "no such challenge", None),
            };
        }
        match location(&req, public_url.as_deref(), https_port) {
            Some(target) => {
                Response::builder().status(StatusCode::PERMANENT_REDIRECT).header(header::LOCATION, target).finish()
            }
            None => super::error_response(StatusCode::BAD_REQUEST, "bad_request", "a Host header is needed", None),
        }
    })
    .boxed()
}
