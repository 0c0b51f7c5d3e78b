//! Names for files that strangers upload: whatever they send becomes a name that passes every
//! rule of [`FileName::parse`], instead of a refusal they could not act on.

use crate::domain::FileName;

/// Bytes kept of a name; the rules allow more, but a stranger's name needs no more than this.
const MAX_BYTES: usize = 200;
/// The name given when nothing usable is left.
const FALLBACK: &str = "upload";

/// The last path segment of `sent` (browsers on Windows send `C:\...\name`), without control,
/// invisible and bidirectional characters, trimmed of spaces and dots at the edges, at most
/// [`MAX_BYTES`] bytes; a Windows device name gets a `_` in front. Never fails.
pub fn safe_name(sent: &str) -> FileName {
    let last = sent.rsplit(['/', '\\']).next().unwrap_or_default();
    let kept: String = last
        .chars()
        .take(4 * MAX_BYTES)
        .filter(|c| !c.is_control() && FileName::parse(&format!("a{c}b")).is_ok())
        .collect();
    let mut name = kept.trim_matches(|c: char| c.is_whitespace() || c == '.').to_owned();
    while name.len() > MAX_BYTES {
        name.pop();
    }
    let name = name.trim_end_matches(|c: char| c.is_whitespace() || c == '.');
    if let Ok(parsed) = FileName::parse(name) {
        return parsed;
    }
    if !name.is_empty()
        && let Ok(prefixed) = FileName::parse(&format!("_{name}"))
    {
        return prefixed;
    }
    FileName::parse(FALLBACK).unwrap_or_else(|_| unreachable!("the fallback name is valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_plain_safe_names() {
        let cases = [
            ("report.pdf", "report.pdf"),
            ("../../etc/passwd", "passwd"),
            ("C:\\Users\\eve\\secret.txt", "secret.txt"),
            ("..", "upload"),
            ("", "upload"),
            ("   .hidden. ", "hidden"),
            ("a\u{202e}gpj.exe", "agpj.exe"),
            ("line\nbreak\u{0}.txt", "linebreak.txt"),
            ("CON", "_CON"),
            ("zero\u{200b}width.txt", "zerowidth.txt"),
        ];
        for (sent, expected) in cases {
            assert_eq!(safe_name(sent).as_str(), expected, "{sent:?}");
        }
        assert!(safe_name(&"é".repeat(500)).as_str().len() <= MAX_BYTES);
    }
}
