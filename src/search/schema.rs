//! The index's schema and how a file becomes a document.
//!
//! Exact-match fields (`file_id`, `owner`, `readers`, `folder`, `media`, `family`,
//! `text_state`) hold identifiers and are only ever matched by queries built in code; text
//! fields (`name`, `description`, `body`) use the [`analyzer`](super::analyzer). Nothing is
//! stored but the file id and the version it was indexed at: results are always read back
//! from SQLite, so the index never serves a name or text of its own.

use tantivy::TantivyDocument;
use tantivy::schema::{Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions};

use super::analyzer::ANALYZER;
use crate::db::files::FileRow;

/// Bumped whenever fields or analysis change; an index of another version is rebuilt.
pub const SCHEMA_VERSION: u32 = 1;

/// `text_state` of a document whose contents are still being extracted.
pub const TEXT_PENDING: &str = "pending";
/// `text_state` of a document whose contents are indexed, or known to have no text.
pub const TEXT_DONE: &str = "done";

#[derive(Clone, Copy, Debug)]
pub struct Fields {
    pub file_id: Field,
    pub owner: Field,
    pub readers: Field,
    pub folder: Field,
    pub media: Field,
    pub family: Field,
    pub text_state: Field,
    pub version: Field,
    pub name: Field,
    /// The starts (2 to 12 characters) of every word of the name: the last query word's
    /// prefix match is then one term lookup, not a scan of the name dictionary.
    pub name_prefix: Field,
    pub description: Field,
    pub body: Field,
}

pub fn schema() -> Schema {
    let mut builder = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default().set_tokenizer(ANALYZER).set_index_option(IndexRecordOption::WithFreqs),
    );
    builder.add_text_field("file_id", STRING | STORED);
    for name in ["owner", "readers", "folder", "media", "family", "text_state", "name_prefix"] {
        builder.add_text_field(name, STRING);
    }
    builder.add_u64_field("version", STORED | INDEXED);
    for name in ["name", "description", "body"] {
        builder.add_text_field(name, text.clone());
    }
    builder.build()
}

impl Fields {
    pub fn of(schema: &Schema) -> tantivy::Result<Self> {
        let field = |name: &str| schema.get_field(name);
        Ok(Self {
            file_id: field("file_id")?,
            owner: field("owner")?,
            readers: field("readers")?,
            folder: field("folder")?,
            media: field("media")?,
            family: field("family")?,
            text_state: field("text_state")?,
            version: field("version")?,
            name: field("name")?,
            name_prefix: field("name_prefix")?,
            description: field("description")?,
            body: field("body")?,
        })
    }
}

/// A file as the indexer reads it from SQLite: its row, who may read it, and the latest
/// change recorded for it.
#[derive(Clone, Debug)]
pub struct FileDoc {
    pub row: FileRow,
    /// The owner and every grantee.
    pub readers: Vec<String>,
    pub version: u64,
}

/// What the index holds of a file's contents.
pub enum Body<'a> {
    Text(&'a str),
    /// Known to have no indexable text (unsupported, failed, too large, empty).
    None,
    /// Extraction is under way; the document is indexed again when it ends.
    Pending,
}

pub fn document(fields: &Fields, file: &FileDoc, body: Body<'_>) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    let row = &file.row;
    doc.add_text(fields.file_id, &row.id.0);
    doc.add_text(fields.owner, &row.owner_id.0);
    for reader in &file.readers {
        doc.add_text(fields.readers, reader);
    }
    for ancestor in folder_ancestors(&row.folder) {
        doc.add_text(fields.folder, ancestor);
    }
    doc.add_text(fields.media, &row.content_type);
    doc.add_text(fields.family, family(&row.content_type, &row.name));
    doc.add_u64(fields.version, file.version);
    doc.add_text(fields.name, &row.name);
    for prefix in name_prefixes(&row.name) {
        doc.add_text(fields.name_prefix, prefix);
    }
    doc.add_text(fields.description, &row.description);
    let state = match body {
        Body::Text(text) => {
            doc.add_text(fields.body, text);
            TEXT_DONE
        }
        Body::None => TEXT_DONE,
        Body::Pending => TEXT_PENDING,
    };
    doc.add_text(fields.text_state, state);
    doc
}

/// Longest word start indexed for prefix matches; longer query words fall back to a scan.
pub const MAX_PREFIX_CHARS: usize = 12;

thread_local! {
    static NAME_ANALYZER: std::cell::RefCell<tantivy::tokenizer::TextAnalyzer> =
        std::cell::RefCell::new(super::analyzer::analyzer());
}

/// Every start of 2 to [`MAX_PREFIX_CHARS`] characters of the name's analyzed words.
pub fn name_prefixes(name: &str) -> std::collections::BTreeSet<String> {
    let words = NAME_ANALYZER.with(|analyzer| super::analyzer::terms(&mut analyzer.borrow_mut(), name));
    let mut prefixes = std::collections::BTreeSet::new();
    for word in words {
        let ends: Vec<usize> = word.text.char_indices().map(|(at, c)| at + c.len_utf8()).collect();
        for end in ends.iter().skip(1).take(MAX_PREFIX_CHARS - 1) {
            prefixes.insert(word.text[..*end].to_owned());
        }
    }
    prefixes
}

/// `a/b/c` → `a`, `a/b`, `a/b/c`: a folder filter matches its whole subtree.
pub fn folder_ancestors(folder: &str) -> impl Iterator<Item = &str> {
    folder.match_indices('/').map(|(at, _)| &folder[..at]).chain((!folder.is_empty()).then_some(folder))
}

/// The kinds of file the `type` filter knows, besides exact media types.
pub const FAMILIES: &[&str] = &["pdf", "image", "text", "office", "audio", "video", "archive", "other"];

fn extension(name: &str) -> String {
    name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default()
}

/// A file's family, from its media type or, when that says nothing, its name's extension.
pub fn family(content_type: &str, name: &str) -> &'static str {
    let (kind, sub) = content_type.split_once('/').unwrap_or((content_type, ""));
    match kind {
        "image" => return "image",
        "audio" => return "audio",
        "video" => return "video",
        "text" => return "text",
        _ => {}
    }
    if sub == "pdf" {
        return "pdf";
    }
    if sub.contains("officedocument") || sub.contains("opendocument") || sub == "msword" || sub == "rtf" {
        return "office";
    }
    if matches!(sub, "json" | "xml" | "javascript" | "toml" | "yaml" | "x-yaml" | "sql") {
        return "text";
    }
    if matches!(sub, "zip" | "gzip" | "x-tar" | "x-7z-compressed" | "vnd.rar" | "x-bzip2" | "x-xz" | "zstd") {
        return "archive";
    }
    match extension(name).as_str() {
        "pdf" => "pdf",
        "png" | "jpg" | "jpeg" | "gif" | "webp" | "svg" | "heic" | "tif" | "tiff" | "bmp" => "image",
        "mp3" | "flac" | "ogg" | "wav" | "m4a" | "opus" => "audio",
        "mp4" | "mkv" | "webm" | "mov" | "avi" => "video",
        "doc" | "docx" | "odt" | "xls" | "xlsx" | "ods" | "ppt" | "pptx" | "odp" | "rtf" => "office",
        "zip" | "tar" | "gz" | "tgz" | "7z" | "rar" | "bz2" | "xz" | "zst" => "archive",
        ext if TEXT_EXTENSIONS.contains(&ext) => "text",
        _ => "other",
    }
}

/// Extensions of plain-text formats (prose, data and source code).
pub const TEXT_EXTENSIONS: &[&str] = &[
    "txt", "md", "markdown", "rst", "csv", "tsv", "json", "jsonl", "xml", "yaml", "yml", "toml", "ini", "cfg", "conf",
    "log", "sql", "html", "htm", "css", "js", "mjs", "ts", "tsx", "jsx", "rs", "py", "rb", "go", "java", "kt", "c",
    "h", "cc", "cpp", "hpp", "cs", "php", "pl", "sh", "bash", "zsh", "lua", "swift", "scala", "r", "tex", "org",
    "adoc", "srt", "vtt",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_prefixes_are_word_starts_of_two_to_twelve_characters() {
        let prefixes: Vec<String> = name_prefixes("Q3-Résumé_x.md").into_iter().collect();
        assert_eq!(prefixes, ["md", "q3", "re", "res", "resu", "resum", "resume"]);
        assert_eq!(name_prefixes("abcdefghijklmnop").len(), 11);
    }

    #[test]
    fn folders_match_their_whole_subtree() {
        assert_eq!(folder_ancestors("a/b/c").collect::<Vec<_>>(), ["a", "a/b", "a/b/c"]);
        assert_eq!(folder_ancestors("top").collect::<Vec<_>>(), ["top"]);
        assert_eq!(folder_ancestors("").count(), 0);
    }

    #[test]
    fn families_come_from_the_media_type_else_the_extension() {
        assert_eq!(family("application/pdf", "x"), "pdf");
        assert_eq!(family("application/octet-stream", "Report.PDF"), "pdf");
        assert_eq!(family("image/png", "x.txt"), "image");
        assert_eq!(family("application/octet-stream", "notes.md"), "text");
        assert_eq!(family("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "a"), "office");
        assert_eq!(family("application/octet-stream", "blob"), "other");
    }
}
