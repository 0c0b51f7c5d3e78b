//! The media type stored with a file: from its name, else from its first bytes.
//!
//! A client's `Content-Type` is not trusted for this: clients send defaults that say nothing
//! (curl's `--data-binary` sends `application/x-www-form-urlencoded`). The stored type is
//! informational (listings, search filters, previews of a few raster types); downloads are
//! always served as attachments of `application/octet-stream` whatever it says.

use crate::domain::FileName;

pub const UNKNOWN: &str = "application/octet-stream";

/// The type of a file called `name` whose contents start with `head`.
pub fn media_type(name: &FileName, head: &[u8]) -> String {
    if let Some(guess) = mime_guess::from_path(name.as_str()).first() {
        return guess.essence_str().to_owned();
    }
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    if looks_like_text(head) { "text/plain".to_owned() } else { UNKNOWN.to_owned() }
}

/// Valid UTF-8 without NUL (a character cut at the end of `head` is allowed), and not empty.
fn looks_like_text(head: &[u8]) -> bool {
    if head.is_empty() || head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(err) => err.error_len().is_none() && head.len() - err.valid_up_to() < 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> FileName {
        FileName::parse(text).unwrap()
    }

    #[test]
    fn the_name_decides_then_the_contents() {
        assert_eq!(media_type(&name("report.pdf"), b""), "application/pdf");
        assert_eq!(media_type(&name("notes.txt"), b"\x00\x01"), "text/plain");
        assert_eq!(media_type(&name("photo"), b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "image/png");
        assert_eq!(media_type(&name("README"), "plain words, ünïcode".as_bytes()), "text/plain");
        assert_eq!(media_type(&name("README"), &"é".as_bytes()[..1]), "text/plain", "a cut character");
        assert_eq!(media_type(&name("blob"), b"\x00\x9f\x92\x96"), UNKNOWN);
        assert_eq!(media_type(&name("empty"), b""), UNKNOWN);
    }
}
