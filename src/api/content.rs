//! `GET|HEAD /files/{id}/content` and the read grants of `/files/{id}/grants`.
//!
//! Downloads are always attachments served as `application/octet-stream` with `nosniff` and
//! `Content-Security-Policy: sandbox`: a stored HTML or SVG file can never run as a page of
//! this site. The ETag is the contents' SHA-256.

use poem::{Body, Request};
use poem_openapi::param::Path;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::failure::ApiFailure;
use super::range::{self, RangeAnswer};
use super::security::{BearerAuth, client_ip};
use super::{ApiTags, ErrorBody, rfc3339};
use crate::db::files::FileRow;
use crate::files::Files;

pub struct ContentApi {
    pub files: Files,
}

const SANDBOX: &str = "sandbox";

#[derive(ApiResponse)]
enum Download {
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

async fn open_at(files: &Files, file: &FileRow, start: u64, length: u64) -> Result<Body, ApiFailure> {
    let stream = files.store().read_range(&file.sha256, start, length).await.map_err(ApiFailure::internal)?;
    Ok(Body::from_bytes_stream(stream))
}

#[derive(Object)]
struct GrantRequest {
    /// Who may read the file.
    username: String,
}

#[derive(Object)]
struct GrantView {
    user_id: String,
    username: String,
    granted_at: String,
}

#[derive(ApiResponse)]
enum Granted {
    #[oai(status = 201)]
    Granted(Json<GrantView>),
}

#[derive(ApiResponse)]
enum Revoked {
    #[oai(status = 204)]
    Revoked,
}

#[OpenApi(tag = "ApiTags::Files")]
impl ContentApi {
    /// Download a file (HEAD for the headers only). Supports `If-None-Match`, one `Range`
    /// and `If-Range`.
    #[oai(path = "/files/:id/content", method = "get")]
    async fn content(&self, req: &Request, caller: BearerAuth, id: Path<String>) -> Result<Download, ApiFailure> {
        let (file, _) = self.files.readable(&caller.0, &id, &client_ip(req)).await?;
        let size = u64::try_from(file.size).unwrap_or(0);
        let etag = format!("\"{}\"", file.sha256);
        let modified =
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(file.modified_at).unwrap_or(0));
        let last_modified = httpdate::fmt_http_date(modified);
        if range::none_match(req.header("if-none-match"), &etag) {
            return Ok(Download::NotModified(etag));
        }
        let disposition = content_disposition(&file.name);
        let wanted = if range::if_range_holds(req.header("if-range"), &etag, &last_modified) {
            range::answer(req.header("range"), size)
        } else {
            RangeAnswer::Full
        };
        let accept = "bytes".to_owned();
        match wanted {
            RangeAnswer::Full => {
                let body = open_at(&self.files, &file, 0, size).await?;
                Ok(Download::Full(Binary(body), size, etag, last_modified, disposition, accept, SANDBOX.into()))
            }
            RangeAnswer::Partial { start, end } => {
                let length = end - start + 1;
                let body = open_at(&self.files, &file, start, length).await?;
                let content_range = format!("bytes {start}-{end}/{size}");
                Ok(Download::Partial(
                    Binary(body),
                    length,
                    content_range,
                    etag,
                    last_modified,
                    disposition,
                    accept,
                    SANDBOX.into(),
                ))
            }
            RangeAnswer::Unsatisfiable => {
                let message = format!("the range lies outside the file's {size} bytes");
                let body = ErrorBody { error: "range_not_satisfiable".into(), message, request_id: None };
                Ok(Download::Unsatisfiable(Json(body), format!("bytes */{size}")))
            }
        }
    }

    /// Let another user read a file you own.
    #[oai(path = "/files/:id/grants", method = "post")]
    async fn grant(
        &self,
        req: &Request,
        caller: BearerAuth,
        id: Path<String>,
        body: Json<GrantRequest>,
    ) -> Result<Granted, ApiFailure> {
        let user = self.files.grant(&caller.0, &id, &body.username, &client_ip(req)).await?;
        let grants = self.files.grants(&caller.0, &id).await?;
        let (user_id, username, at) = grants
            .into_iter()
            .find(|(grantee, ..)| *grantee == user.0)
            .ok_or_else(|| ApiFailure::not_found("grant"))?;
        Ok(Granted::Granted(Json(GrantView { user_id, username, granted_at: rfc3339(at) })))
    }

    /// Who may read a file you own.
    #[oai(path = "/files/:id/grants", method = "get")]
    async fn grants(&self, caller: BearerAuth, id: Path<String>) -> Result<Json<Vec<GrantView>>, ApiFailure> {
        let grants = self.files.grants(&caller.0, &id).await?;
        Ok(Json(
            grants
                .into_iter()
                .map(|(user_id, username, at)| GrantView { user_id, username, granted_at: rfc3339(at) })
                .collect(),
        ))
    }

    /// Stop letting a user read a file you own.
    #[oai(path = "/files/:id/grants/:user_id", method = "delete")]
    async fn revoke(&self, caller: BearerAuth, id: Path<String>, user_id: Path<String>) -> Result<Revoked, ApiFailure> {
        self.files.revoke_grant(&caller.0, &id, &user_id).await?;
        Ok(Revoked::Revoked)
    }
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
