//! Answers for file downloads, shared by owners' downloads and share links: conditional
//! requests, one range, and the headers that keep a stored file from ever running as a page.
//!
//! Downloads are always attachments served as `application/octet-stream` with `nosniff` and
//! `Content-Security-Policy: sandbox`. The ETag is the contents' SHA-256.

use poem::{Body, Request};
use poem_openapi::ApiResponse;
use poem_openapi::payload::{Binary, Json};

use super::ErrorBody;
use super::range::{self, RangeAnswer};
use crate::db::files::FileRow;

const SANDBOX: &str = "sandbox";

#[derive(ApiResponse)]
pub enum Download {
    /// The whole file.
    #[oai(status = 200)]
    Full(
        Binary<Body>,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "ETag")] String,
        #[oai(header = "Last-Modified")] String,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Accept-Ranges")] String,
        #[oai(header = "Content-Security-Policy")] String,
    ),
    /// The requested range.
    #[oai(status = 206)]
    Partial(
        Binary<Body>,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "Content-Range")] String,
        #[oai(header = "ETag")] String,
        #[oai(header = "Last-Modified")] String,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Accept-Ranges")] String,
        #[oai(header = "Content-Security-Policy")] String,
    ),
    /// `If-None-Match` matched.
    #[oai(status = 304)]
    NotModified(#[oai(header = "ETag")] String),
    /// The range lies outside the file; `Content-Range: bytes */<size>`.
    #[oai(status = 416)]
    Unsatisfiable(Json<ErrorBody>, #[oai(header = "Content-Range")] String),
}

/// What a request asks of a file, decided from its conditional and range headers.
pub struct DownloadPlan {
    size: u64,
    etag: String,
    last_modified: String,
    disposition: String,
    answer: Answer,
}

enum Answer {
    NotModified,
    Unsatisfiable,
    /// Bytes `start..start + length`; `partial` for a 206.
    Send {
        start: u64,
        length: u64,
        partial: bool,
    },
}

impl DownloadPlan {
    pub fn new(file: &FileRow, req: &Request) -> Self {
        let size = u64::try_from(file.size).unwrap_or(0);
        let etag = format!("\"{}\"", file.sha256);
        let modified =
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(file.modified_at).unwrap_or(0));
        let last_modified = httpdate::fmt_http_date(modified);
        let answer = if range::none_match(req.header("if-none-match"), &etag) {
            Answer::NotModified
        } else {
            let wanted = if range::if_range_holds(req.header("if-range"), &etag, &last_modified) {
                range::answer(req.header("range"), size)
            } else {
                RangeAnswer::Full
            };
            match wanted {
                RangeAnswer::Full => Answer::Send { start: 0, length: size, partial: false },
                RangeAnswer::Partial { start, end } => Answer::Send { start, length: end - start + 1, partial: true },
                RangeAnswer::Unsatisfiable => Answer::Unsatisfiable,
            }
        };
        Self { size, etag, last_modified, disposition: content_disposition(&file.name), answer }
    }

    /// The bytes to send, if the answer carries any: `(start, length, partial)`.
    pub fn sends(&self) -> Option<(u64, u64, bool)> {
        match self.answer {
            Answer::Send { start, length, partial } => Some((start, length, partial)),
            _ => None,
        }
    }

    /// The response; `body` holds the bytes [`Self::sends`] asked for (empty for a HEAD).
    pub fn respond(self, body: Body) -> Download {
        let Self { size, etag, last_modified, disposition, answer } = self;
        let accept = "bytes".to_owned();
        match answer {
            Answer::NotModified => Download::NotModified(etag),
            Answer::Unsatisfiable => {
                let message = format!("the range lies outside the file's {size} bytes");
                let body = ErrorBody { error: "range_not_satisfiable".into(), message, request_id: None };
                Download::Unsatisfiable(Json(body), format!("bytes */{size}"))
            }
            Answer::Send { length, partial: false, .. } => {
                Download::Full(Binary(body), length, etag, last_modified, disposition, accept, SANDBOX.into())
            }
            Answer::Send { start, length, partial: true } => {
                let content_range = format!("bytes {start}-{}/{size}", start + length - 1);
                Download::Partial(
                    Binary(body),
                    length,
                    content_range,
                    etag,
                    last_modified,
                    disposition,
                    accept,
                    SANDBOX.into(),
                )
            }
        }
    }
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>` (RFC 6266).
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' && c != '%' || c == ' ' { c } else { '_' })
        .collect();
    let fallback = match fallback.trim_matches(|c| c == '.' || c == ' ') {
        "" => "download".to_owned(),
        trimmed => trimmed.to_owned(),
    };
    let encoded: String = name
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn disposition_has_a_safe_fallback_and_the_exact_name() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        let tricky = content_disposition("a\"b\\c;%d é.txt");
        assert!(
            tricky
                .starts_with("attachment; filename=\"a_b_c;_d _.txt\"; filename*=UTF-8''a%22b%5Cc%3B%25d%20%C3%A9.txt"),
            "{tricky}"
        );
        assert_eq!(content_disposition("名前"), "attachment; filename=\"__\"; filename*=UTF-8''%E5%90%8D%E5%89%8D");
        assert!(content_disposition("..").contains("filename=\"download\""));
        let rtl = content_disposition("evil\u{202E}fdp.exe");
        assert!(rtl.is_ascii() && !rtl.contains('\u{202E}'));
    }
}
