//! The HTML of the public upload-link pages: small documents styled by the web app's
//! stylesheet; the upload page loads one script from this origin (`/app/assets/uplink.js`).
//! Nothing inline is allowed, and every interpolated value is escaped.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};

use super::share_html::{escape, human_size};
use crate::db::upload_links::UploadLinkEntry;

/// Scripts, styles and requests only to this origin; no inline code; Trusted Types required.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
form-action 'self'; base-uri 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

pub struct Page(String);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type("text/html; charset=utf-8")
            .header("content-security-policy", CSP)
            .header("referrer-policy", "no-referrer")
            .header("x-robots-tag", "noindex, nofollow")
            .header("cache-control", "no-store")
            .body(self.0)
    }
}

fn page(title: &str, content: &str, script: bool) -> Page {
    let script = if script { "<script type=\"module\" src=\"/app/assets/uplink.js\"></script>" } else { "" };
    Page(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex, nofollow\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{} · Coffer</title><link rel=\"stylesheet\" href=\"/app/assets/app.css\">{script}</head>\
         <body><main class=\"share-page card\">{content}</main></body></html>\n",
        escape(title)
    ))
}

fn human_time(unix: i64) -> String {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(unix) else { return String::new() };
    format!("{}-{:02}-{:02} {:02}:{:02} UTC", at.year(), u8::from(at.month()), at.day(), at.hour(), at.minute())
}

/// The note, the limits and the upload form; `uplink.js` sends each chosen file with progress.
pub fn upload_page(token: &str, entry: &UploadLinkEntry) -> Page {
    let link = &entry.link;
    let note = if link.note.is_empty() {
        String::new()
    } else {
        format!("<p class=\"note\">{}</p>", escape(&link.note).replace('\n', "<br>"))
    };
    let files_left = (link.max_files - link.files_received).max(0);
    let bytes_left = (link.max_total_bytes - link.bytes_received).max(0);
    let content = format!(
        "<h1>Upload files</h1>{note}\
         <ul class=\"limits\"><li>Up to {files_left} more file(s), {bytes_left} in all</li>\
         <li>Each file at most {per_file}</li><li>Open until {expires}</li></ul>\
         <form id=\"upload-form\" data-token=\"{token}\" data-max-file=\"{max_file}\">\
         <input type=\"file\" id=\"upload-files\" name=\"file\" multiple required aria-label=\"Files to upload\">\
         <button type=\"submit\" class=\"primary\">Upload</button></form>\
         <ul id=\"upload-progress\" aria-live=\"polite\"></ul>\
         <noscript><p class=\"problem\">This page needs JavaScript to upload.</p></noscript>",
        bytes_left = human_size(bytes_left),
        per_file = human_size(link.max_file_bytes),
        max_file = link.max_file_bytes,
        expires = human_time(link.expires_at),
        token = escape(token),
    );
    page("Upload files", &content, true)
}

pub fn password_form(token: &str, problem: Option<&str>) -> Page {
    let problem = problem.map(|text| format!("<p class=\"problem\">{}</p>", escape(text))).unwrap_or_default();
    let content = format!(
        "<h1>This upload link is protected</h1><p>Enter the password you were given.</p>{problem}\
         <form method=\"post\" action=\"/u/{token}\"><input type=\"password\" name=\"password\" \
         autocomplete=\"current-password\" required autofocus aria-label=\"Password\">\
         <button type=\"submit\" class=\"primary\">Unlock</button></form>",
        token = escape(token),
    );
    page("Protected upload link", &content, false)
}

/// A link that takes nothing (unknown, expired, full).
pub fn notice(status: StatusCode, message: &str) -> Page {
    let title = match status {
        StatusCode::GONE => "Link no longer available",
        StatusCode::NOT_FOUND => "Link not found",
        StatusCode::CONFLICT => "This link takes no more files",
        _ => "Something went wrong",
    };
    page(title, &format!("<h1>{title}</h1><p>{}</p>", escape(message)), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_nothing_inline() {
        assert!(!CSP.contains("unsafe") && CSP.contains("script-src 'self'"));
        let page = page("<t>", "<p>x</p>", true).0;
        assert!(page.contains("&lt;t&gt;") && !page.contains(" style="));
    }
}
