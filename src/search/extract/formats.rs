//! Reading the text out of each format. These parsers meet hostile input, so they run in the
//! extraction child (see [`super::child`]), never in the server, except [`plain_text`], which
//! only decodes a bounded prefix.
//!
//! Every reader stops once it has `max_chars` characters and never expands XML entities other
//! than the five predefined ones and character references (billion-laughs documents stay
//! inert); HTML is stripped by a linear scan with no tree, so nesting depth costs nothing.

use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::Event;

/// Why a file's text could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not a document of this kind: {0}")]
    Malformed(String),
    #[error("the document is too large once unpacked")]
    TooLarge,
}

/// Collects text up to a number of characters.
pub struct TextSink {
    text: String,
    room: usize,
}

impl TextSink {
    pub fn new(max_chars: usize) -> Self {
        Self { text: String::new(), room: max_chars }
    }

    pub fn is_full(&self) -> bool {
        self.room == 0
    }

    pub fn push(&mut self, part: &str) {
        for c in part.chars() {
            if self.room == 0 {
                return;
            }
            self.text.push(c);
            self.room -= 1;
        }
    }

    /// A space between words, unless there is one already (or nothing yet).
    pub fn word_break(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with(char::is_whitespace) {
            self.push(" ");
        }
    }

    /// A separator between blocks (paragraphs, cells), without doubling.
    pub fn boundary(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with(['\n', ' ']) {
            self.push("\n");
        }
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

/// Whether a file's first bytes look like text: no NUL, and at most 1% of characters that
/// are not valid UTF-8 (a character cut at the end of the sample does not count).
pub fn looks_like_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    let decoded = String::from_utf8_lossy(head);
    let trimmed = decoded.trim_end_matches('\u{FFFD}');
    let bad = trimmed.chars().filter(|c| *c == '\u{FFFD}').count();
    bad * 100 <= trimmed.chars().count()
}

/// Text, Markdown, CSV, JSON, source code: the bytes decoded as UTF-8 (lossily), up to
/// `max_chars`; `None` when it is not text after all.
pub fn plain_text(bytes: &[u8], max_chars: usize) -> Option<String> {
    if !looks_like_text(bytes) {
        return None;
    }
    let mut sink = TextSink::new(max_chars);
    sink.push(String::from_utf8_lossy(bytes).trim_start_matches('\u{FEFF}'));
    Some(sink.into_text())
}

/// PDF, through pdf-extract (which can panic or loop on damaged files: the child's limits
/// are what stop it).
pub fn pdf(bytes: &[u8], max_chars: usize) -> Result<String, FormatError> {
    #[cfg(debug_assertions)]
    if bytes.windows(TEST_HANG_MARKER.len()).any(|window| window == TEST_HANG_MARKER) {
        test_hang();
    }
    let text = pdf_extract::extract_text_from_mem(bytes).map_err(|err| FormatError::Malformed(err.to_string()))?;
    let mut sink = TextSink::new(max_chars);
    sink.push(&text);
    Ok(sink.into_text())
}

/// Debug builds only: a PDF holding this comment makes the extractor spin forever, standing
/// in for the PDFs that hang real parsers, so tests can prove the time limits.
#[cfg(debug_assertions)]
pub const TEST_HANG_MARKER: &[u8] = b"%coffer-test-hang";

#[cfg(debug_assertions)]
fn test_hang() -> ! {
    let mut spin: u64 = 0;
    loop {
        spin = std::hint::black_box(spin.wrapping_add(1));
    }
}

/// Most entries an office document may have, and most bytes its text part may unpack to.
const MAX_ZIP_ENTRIES: usize = 10_000;
const MAX_UNPACKED_XML: u64 = 64 << 20;

/// DOCX (`word/document.xml`) or ODT (`content.xml`): the text of the document's body.
pub fn office(bytes: Vec<u8>, part: &str, max_chars: usize) -> Result<String, FormatError> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|err| FormatError::Malformed(err.to_string()))?;
    if archive.len() > MAX_ZIP_ENTRIES {
        return Err(FormatError::Malformed(format!("{} entries", archive.len())));
    }
    let entry = archive.by_name(part).map_err(|err| FormatError::Malformed(format!("{part}: {err}")))?;
    let mut reader = Reader::from_reader(std::io::BufReader::new(entry.take(MAX_UNPACKED_XML + 1)));
    reader.config_mut().check_end_names = false;
    xml_text(&mut reader, max_chars)
}

/// Ends of these elements separate blocks of text (paragraphs, headings, cells, line breaks).
fn is_block(local_name: &str) -> bool {
    matches!(local_name, "p" | "h" | "br" | "tab" | "tc" | "line-break" | "table-cell" | "s" | "list-item")
}

fn xml_text<R: std::io::BufRead>(reader: &mut Reader<R>, max_chars: usize) -> Result<String, FormatError> {
    let mut sink = TextSink::new(max_chars);
    let mut buffer = Vec::new();
    loop {
        let event = match reader.read_event_into(&mut buffer) {
            Ok(event) => event,
            // A document cut short (by the size cap) or damaged late still gives what it had.
            Err(_) if !sink.text.is_empty() => break,
            Err(err) => return Err(FormatError::Malformed(err.to_string())),
        };
        match event {
            // Whitespace between elements is layout, not text: at most a word break.
            Event::Text(text) if text.trim().is_empty() => sink.word_break(),
            Event::Text(text) => sink.push(&text),
            Event::CData(data) => sink.push(&data),
            Event::GeneralRef(reference) => {
                let resolved = match &*reference {
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "amp" => Some('&'),
                    "apos" => Some('\''),
                    "quot" => Some('"'),
                    _ => reference.resolve_char_ref().ok().flatten(),
                };
                if let Some(c) = resolved {
                    sink.push(c.encode_utf8(&mut [0; 4]));
                }
            }
            Event::End(end) if is_block(end.local_name().as_ref()) => sink.boundary(),
            Event::Empty(empty) if is_block(empty.local_name().as_ref()) => sink.boundary(),
            Event::Eof => break,
            _ => {}
        }
        if sink.is_full() {
            break;
        }
        buffer.clear();
    }
    Ok(sink.into_text())
}

/// HTML: the text outside tags, comments, scripts and styles, with common entities decoded.
pub fn html(bytes: &[u8], max_chars: usize) -> String {
    let source = String::from_utf8_lossy(bytes);
    let lower = source.to_ascii_lowercase();
    let mut sink = TextSink::new(max_chars);
    let mut at = 0;
    while at < source.len() && !sink.is_full() {
        let Some(open) = source[at..].find('<').map(|offset| at + offset) else {
            push_decoded(&mut sink, &source[at..]);
            break;
        };
        push_decoded(&mut sink, &source[at..open]);
        let rest = &lower[open..];
        let skip_to = if rest.starts_with("<!--") {
            lower[open..].find("-->").map_or(source.len(), |end| open + end + 3)
        } else if let Some(element) = ["script", "style", "noscript", "template"]
            .into_iter()
            .find(|name| rest[1..].starts_with(name) && !rest[1 + name.len()..].starts_with(char::is_alphanumeric))
        {
            let close = format!("</{element}");
            lower[open..].find(&close).map_or(source.len(), |end| {
                let after = open + end;
                lower[after..].find('>').map_or(source.len(), |gt| after + gt + 1)
            })
        } else {
            lower[open..].find('>').map_or(source.len(), |end| open + end + 1)
        };
        sink.boundary();
        at = skip_to;
    }
    sink.into_text()
}

fn push_decoded(sink: &mut TextSink, text: &str) {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        sink.push(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.char_indices().take(12).find(|(_, c)| *c == ';').map(|(at, _)| at);
        let decoded = end.and_then(|end| decode_entity(&after[..end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                sink.push(c.encode_utf8(&mut [0; 4]));
                rest = &after[end + 1..];
            }
            None => {
                sink.push("&");
                rest = after;
            }
        }
    }
    sink.push(rest);
}

fn decode_entity(name: &str) -> Option<char> {
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        return char::from_u32(code).filter(|c| *c != '\0');
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "eacute" => 'é',
        "egrave" => 'è',
        "agrave" => 'à',
        "uuml" => 'ü',
        "ouml" => 'ö',
        "auml" => 'ä',
        "szlig" => 'ß',
        "ccedil" => 'ç',
        "copy" => '©',
        "mdash" => '—',
        "ndash" => '–',
        "hellip" => '…',
        _ => return None,
    })
}

/// Reads at most `limit` bytes; `TooLarge` if there were more.
pub fn read_capped(mut input: impl Read, limit: u64) -> Result<Vec<u8>, FormatError> {
    let mut bytes = Vec::new();
    input.by_ref().take(limit + 1).read_to_end(&mut bytes).map_err(|err| FormatError::Malformed(err.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(FormatError::TooLarge);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn html_keeps_text_and_drops_tags_scripts_styles_and_comments() {
        let page = "<html><head><style>p{color:red}</style><script>var secret = 1;</script></head>\
                    <body><!-- hidden --><h1>Caf&eacute; &amp; Co</h1><p>Open <b>daily</b>&#x21;</p></body></html>";
        let text = html(page.as_bytes(), 1000);
        assert!(text.contains("Café & Co"), "{text}");
        assert!(text.contains("Open") && text.contains("daily") && text.contains('!'), "{text}");
        for hidden in ["secret", "color", "hidden", "<"] {
            assert!(!text.contains(hidden), "{hidden} in {text}");
        }
    }

    #[test]
    fn deeply_nested_html_is_stripped_in_linear_time() {
        let depth = 200_000;
        let page = format!("{}deep words{}", "<div>".repeat(depth), "</div>".repeat(depth));
        assert_eq!(html(page.as_bytes(), 100).trim(), "deep words");
    }

    fn docx(document_xml: &[u8]) -> Vec<u8> {
        let mut buffer = Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("word/document.xml", options).unwrap();
        zip.write_all(document_xml).unwrap();
        zip.finish().unwrap();
        buffer.into_inner()
    }

    #[test]
    fn docx_paragraphs_become_lines_and_entities_stay_unexpanded() {
        let xml = br#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>
            <w:document xmlns:w="w"><w:body><w:p><w:r><w:t>Quarterly &amp; final</w:t></w:r></w:p>
            <w:p><w:r><w:t>second &lol2; line</w:t></w:r></w:p></w:body></w:document>"#;
        let text = office(docx(xml), "word/document.xml", 1000).unwrap();
        assert!(text.starts_with("Quarterly & final\n"), "{text:?}");
        assert_eq!(text.split_whitespace().collect::<Vec<_>>(), ["Quarterly", "&", "final", "second", "line"]);
    }

    #[test]
    fn a_zip_bomb_is_read_only_up_to_the_cap() {
        let mut xml = b"<w:document><w:body><w:p><w:t>".to_vec();
        xml.extend(std::iter::repeat_n(b'a', 8 << 20));
        let text = office(docx(&xml), "word/document.xml", 500).unwrap();
        assert_eq!(text.len(), 500);
    }

    #[test]
    fn binary_is_not_text_but_a_cut_character_at_the_end_is_fine() {
        assert!(!looks_like_text(b"PNG\0\0\x01"));
        assert!(looks_like_text("résumé".as_bytes()));
        assert!(looks_like_text(&"é".as_bytes()[..1]));
        assert_eq!(plain_text("\u{FEFF}hello".as_bytes(), 3).as_deref(), Some("hel"));
    }
}
