//! The web app: `/` redirects to `/app/`, every `/app/...` path answers the HTML shell (so
//! deep links and reloads work; the page's own script routes), and `/app/assets/<name>` serves
//! the embedded scripts and stylesheet from `src/web/`.
//!
//! Assets carry a SHA-256 ETag and `Cache-Control: no-cache`, so browsers keep them and ask
//! again cheaply (304); they are gzip-compressed once, at first use, for clients that accept
//! it. Every app response has the strict policy below: scripts and styles only from this
//! origin, no inline code, no eval, and Trusted Types required, so no script can turn a string
//! into HTML; user content only ever reaches the page as text.

use std::collections::HashMap;
use std::io::Write;
use std::sync::LazyLock;

use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Path;
use poem::{Request, Response, handler};

/// The policy of every app response.
pub const APP_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
require-trusted-types-for 'script'; trusted-types 'none'";

const SHELL: &[u8] = include_bytes!("../web/index.html");

/// (name under `/app/assets/`, media type, contents).
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("app.css", "text/css; charset=utf-8", include_bytes!("../web/app.css")),
    ("main.js", "text/javascript; charset=utf-8", include_bytes!("../web/main.js")),
    ("dom.js", "text/javascript; charset=utf-8", include_bytes!("../web/dom.js")),
    ("api.js", "text/javascript; charset=utf-8", include_bytes!("../web/api.js")),
    ("signin.js", "text/javascript; charset=utf-8", include_bytes!("../web/signin.js")),
    ("files.js", "text/javascript; charset=utf-8", include_bytes!("../web/files.js")),
    ("file-actions.js", "text/javascript; charset=utf-8", include_bytes!("../web/file-actions.js")),
    ("upload.js", "text/javascript; charset=utf-8", include_bytes!("../web/upload.js")),
    ("resumable.js", "text/javascript; charset=utf-8", include_bytes!("../web/resumable.js")),
    ("shares.js", "text/javascript; charset=utf-8", include_bytes!("../web/shares.js")),
    ("uplink.js", "text/javascript; charset=utf-8", include_bytes!("../web/uplink.js")),
    ("upload-links.js", "text/javascript; charset=utf-8", include_bytes!("../web/upload-links.js")),
    ("account.js", "text/javascript; charset=utf-8", include_bytes!("../web/account.js")),
    ("admin.js", "text/javascript; charset=utf-8", include_bytes!("../web/admin.js")),
    ("icon.svg", "image/svg+xml", include_bytes!("../web/icon.svg")),
];

/// An asset ready to serve.
struct Prepared {
    media_type: &'static str,
    raw: &'static [u8],
    gzip: Option<Vec<u8>>,
    etag: String,
}

fn prepare(media_type: &'static str, raw: &'static [u8]) -> Prepared {
    let digest = ring::digest::digest(&ring::digest::SHA256, raw);
    let etag = format!("\"{}\"", digest.as_ref().iter().map(|byte| format!("{byte:02x}")).collect::<String>());
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let gzip = encoder.write_all(raw).ok().and_then(|()| encoder.finish().ok()).filter(|gzip| gzip.len() < raw.len());
    Prepared { media_type, raw, gzip, etag }
}

static PREPARED: LazyLock<HashMap<&'static str, Prepared>> =
    LazyLock::new(|| ASSETS.iter().map(|(name, media_type, raw)| (*name, prepare(media_type, raw))).collect());

static PREPARED_SHELL: LazyLock<Prepared> = LazyLock::new(|| prepare("text/html; charset=utf-8", SHELL));

/// Total bytes of the app's scripts and stylesheet, uncompressed (kept under 100 KB by a test).
#[cfg(test)]
pub fn script_and_style_bytes() -> usize {
    ASSETS
        .iter()
        .filter(|(name, ..)| name.ends_with(".js") || name.ends_with(".css"))
        .map(|(_, _, raw)| raw.len())
        .sum()
}

fn accepts_gzip(req: &Request) -> bool {
    req.headers().get_all(header::ACCEPT_ENCODING).iter().filter_map(|value| value.to_str().ok()).any(|value| {
        value.split(',').any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts
                .any(|param| matches!(param.trim().replace(' ', "").as_str(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
    })
}

fn app_headers(builder: poem::ResponseBuilder) -> poem::ResponseBuilder {
    builder
        .header(header::CONTENT_SECURITY_POLICY, APP_CSP)
        .header("cross-origin-opener-policy", "same-origin")
        .header("cross-origin-resource-policy", "same-origin")
}

fn serve(req: &Request, prepared: &Prepared, cache_control: &'static str) -> Response {
    let builder = app_headers(Response::builder())
        .header(header::CACHE_CONTROL, cache_control)
        .header(header::ETAG, prepared.etag.as_str())
        .header(header::VARY, "Accept-Encoding");
    let matches = req
        .header(header::IF_NONE_MATCH)
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim().trim_start_matches("W/") == prepared.etag));
    if matches {
        return builder.status(StatusCode::NOT_MODIFIED).finish();
    }
    let builder = builder.content_type(prepared.media_type);
    match &prepared.gzip {
        Some(gzip) if accepts_gzip(req) => builder.header(header::CONTENT_ENCODING, "gzip").body(gzip.clone()),
        _ => builder.body(prepared.raw),
    }
}

/// `GET /`: the app.
#[handler]
pub fn root() -> Response {
    Response::builder().status(StatusCode::FOUND).header(header::LOCATION, HeaderValue::from_static("/app/")).finish()
}

/// `GET /app/...`: the shell, whatever the path (the page routes by it). Never cached: it
/// names the assets, which are revalidated by their ETags.
#[handler]
pub fn shell(req: &Request) -> Response {
    serve(req, &PREPARED_SHELL, "no-store")
}

/// `GET /app/assets/:name`.
#[handler]
pub fn asset_file(req: &Request, Path(name): Path<String>) -> Response {
    match PREPARED.get(name.as_str()) {
        Some(prepared) => serve(req, prepared, "no-cache"),
        None => Response::builder().status(StatusCode::NOT_FOUND).finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apps_scripts_and_styles_stay_under_100_kb() {
        assert!(script_and_style_bytes() < 100 * 1024, "{} bytes", script_and_style_bytes());
    }

    #[test]
    fn every_asset_compresses_and_has_a_content_hash_etag() {
        for (name, ..) in ASSETS {
            let prepared = &PREPARED[name];
            assert_eq!(prepared.etag.len(), 66, "{name}");
            if name.ends_with(".js") && prepared.raw.len() > 2048 {
                assert!(prepared.gzip.is_some(), "{name} compresses");
            }
        }
    }
}
