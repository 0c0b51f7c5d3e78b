//! The HTML of the public share pages: one small document, no scripts, styled by the web app's
//! stylesheet. The CSP allows styles from this origin only and nothing inline, so nothing a
//! page might contain (a file name, say) could ever style or script it; every interpolated
//! value is escaped anyway.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};

use crate::shares::Member;
use crate::shares::public::Opened;

/// The pages use the web app's stylesheet (`/app/assets/app.css`), so both look alike in light
/// and dark; nothing inline is allowed.
const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// A rendered page.
pub struct Page(String);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type("text/html; charset=utf-8")
            .header("content-security-policy", CSP)
            .header("referrer-policy", "no-referrer")
            .header("x-robots-tag", "noindex, nofollow")
            .body(self.0)
    }
}

pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn page(title: &str, content: &str) -> Page {
    Page(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex, nofollow\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{} · Coffer</title><link rel=\"stylesheet\" href=\"/app/assets/app.css\"></head>\
         <body><main class=\"share-page card\">{content}</main></body></html>\n",
        escape(title)
    ))
}

/// `1.5 MiB` and the like.
pub fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn human_time(unix: i64) -> String {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(unix) else { return String::new() };
    format!("{}-{:02}-{:02} {:02}:{:02} UTC", at.year(), u8::from(at.month()), at.day(), at.hour(), at.minute())
}

/// The file's name, size and expiry with a download button; for a link to several files or a
/// folder, each file (relative path, size, its own download) and "Download all" as a ZIP.
pub fn landing(token: &str, opened: &Opened, members: &[Member]) -> Page {
    let share = &opened.entry.share;
    let Some(file) = &opened.file else { return landing_files(token, opened, members) };
    let left = match share.max_downloads {
        Some(max) => format!("<p>Downloads left: {}</p>", (max - share.downloads).max(0)),
        None => String::new(),
    };
    let content = format!(
        "<h1>{name}</h1><p>{size}</p><p>Available until {expires}</p>{left}\
         <a class=\"button primary\" href=\"/s/{token}/download\">Download</a>",
        name = escape(&file.name),
        size = human_size(file.size),
        expires = human_time(share.expires_at),
        token = escape(token),
    );
    page(&file.name, &content)
}

fn landing_files(token: &str, opened: &Opened, members: &[Member]) -> Page {
    let share = &opened.entry.share;
    let token = escape(token);
    let total: i64 = members.iter().map(|member| member.file.size).sum();
    let left = match share.max_downloads {
        Some(max) => format!("<p>Each file can be downloaded {max} times, alone or in the ZIP.</p>"),
        None => String::new(),
    };
    let mut rows = String::new();
    for member in members {
        let used_up = member.downloads_left == Some(0);
        let action = if used_up {
            "<td>Used up</td>".to_owned()
        } else {
            format!(
                "<td><a href=\"/s/{token}/files/{}\" aria-label=\"Download {}\">Download</a></td>",
                escape(&member.file.id.0),
                escape(&member.path)
            )
        };
        rows.push_str(&format!(
            "<tr><td class=\"name\">{}</td><td>{}</td>{action}</tr>",
            escape(&member.path),
            human_size(member.file.size)
        ));
    }
    let all = if members.is_empty() {
        "<p>This link holds no files at the moment.</p>".to_owned()
    } else if members.iter().any(|member| member.downloads_left == Some(0)) {
        "<p>Some files are used up, so they cannot all be downloaded as one ZIP.</p>".to_owned()
    } else {
        format!("<a class=\"button primary\" href=\"/s/{token}/download\">Download all (ZIP)</a>")
    };
    let content = format!(
        "<h1>{name}</h1><p>{count} files, {size}</p><p>Available until {expires}</p>{left}{all}\
         <table class=\"share-files\"><thead><tr><th>Name</th><th>Size</th><th></th></tr></thead>\
         <tbody>{rows}</tbody></table>",
        name = escape(&opened.entry.file_name),
        count = members.len(),
        size = human_size(total),
        expires = human_time(share.expires_at),
    );
    page(&opened.entry.file_name, &content)
}

/// The password form, with what went wrong last time if anything did.
pub fn password_form(token: &str, problem: Option<&str>) -> Page {
    let problem = problem.map(|text| format!("<p class=\"problem\">{}</p>", escape(text))).unwrap_or_default();
    let content = format!(
        "<h1>This file is protected</h1><p>Enter the password you were given.</p>{problem}\
         <form method=\"post\" action=\"/s/{token}\"><input type=\"password\" name=\"password\" \
         autocomplete=\"current-password\" required autofocus aria-label=\"Password\">\
         <button type=\"submit\" class=\"primary\">Unlock</button></form>",
        token = escape(token),
    );
    page("Protected file", &content)
}

/// A link that leads nowhere (unknown, expired, used up).
pub fn notice(status: StatusCode, message: &str) -> Page {
    let title = match status {
        StatusCode::GONE => "Link no longer available",
        StatusCode::NOT_FOUND => "Link not found",
        _ => "Something went wrong",
    };
    page(title, &format!("<h1>{title}</h1><p>{}</p>", escape(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(0), "0 bytes");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
    }

    #[test]
    fn pages_use_the_apps_stylesheet_and_nothing_inline() {
        let page = landing_free_page();
        assert!(page.contains("<link rel=\"stylesheet\" href=\"/app/assets/app.css\">"));
        assert!(!page.contains("<style") && !page.contains(" style="));
        assert!(CSP.contains("style-src 'self'") && !CSP.contains("unsafe"));
    }

    fn landing_free_page() -> String {
        page("x", "<p>y</p>").0
    }
}
