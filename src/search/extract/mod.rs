//! Getting the text out of a file's contents, without letting a hostile file hurt the server.
//!
//! A file's kind comes from its first bytes, then its media type and name. Plain text is
//! decoded in the server, reading only a bounded prefix. PDF, DOCX, ODT and HTML go to a child
//! process (`coffer extract`, the same binary) with the file on standard input; the child puts
//! limits on its own address space (`search.extract_memory`) and CPU time, file writes and
//! descriptors before it reads a byte, and the server kills it when the wall-clock time
//! (`search.extract_timeout`) runs out. The child sets its own limits so that no code has to
//! run between fork and exec: the child is started with `posix_spawn` (a vfork), not a fork
//! that copies the page tables of a large server on an async worker for every file. One child runs at a time. The outcome is cached per content
//! hash by the caller, so a file is tried once per extractor version.
//!
//! Never parses a document format in the server process, never passes the child anything but
//! the file's contents and a few numbers (its environment is emptied).

pub mod child;
pub mod formats;

use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::schema::TEXT_EXTENSIONS;
use super::text_cache::Extracted;
use crate::db::files::FileRow;
use crate::storage::BlobStore;

/// The formats whose text Coffer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Text,
    Html,
    Pdf,
    Docx,
    Odt,
}

impl Kind {
    fn as_arg(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Html => "html",
            Self::Pdf => "pdf",
            Self::Docx => "docx",
            Self::Odt => "odt",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_extract_size: u64,
    pub max_text_chars: usize,
    pub timeout: Duration,
    pub memory: u64,
}

impl Limits {
    pub fn from_settings(settings: &crate::config::SearchSettings) -> Self {
        Self {
            max_extract_size: settings.max_extract_size.0,
            max_text_chars: settings.max_text_chars as usize,
            timeout: settings.extract_timeout.0,
            memory: settings.extract_memory.0,
        }
    }
}

/// Bytes looked at to tell a file's kind.
const SNIFF_BYTES: usize = 8192;

fn extension(name: &str) -> String {
    name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default()
}

/// The kind of a file from its first bytes, media type and name; `None` when Coffer reads no
/// text from it.
pub fn detect(head: &[u8], content_type: &str, name: &str) -> Option<Kind> {
    let ext = extension(name);
    if head.starts_with(b"%PDF-") {
        return Some(Kind::Pdf);
    }
    if head.starts_with(b"PK\x03\x04") {
        if ext == "docx" || content_type.ends_with("wordprocessingml.document") {
            return Some(Kind::Docx);
        }
        if ext == "odt" || content_type == "application/vnd.oasis.opendocument.text" {
            return Some(Kind::Odt);
        }
        return None;
    }
    if !formats::looks_like_text(head) {
        return None;
    }
    if matches!(ext.as_str(), "html" | "htm" | "xhtml") || content_type == "text/html" {
        return Some(Kind::Html);
    }
    let textual = content_type.starts_with("text/")
        || matches!(content_type, "application/json" | "application/xml" | "application/octet-stream")
        || TEXT_EXTENSIONS.contains(&ext.as_str());
    textual.then_some(Kind::Text)
}

/// What to do for one file's contents.
pub enum Plan {
    /// Settled without a child: plain text read here, or nothing to read.
    Done(Extracted),
    /// Needs the isolated child.
    Isolated(Kind),
}

/// Decides, and for plain text extracts, reading only a bounded prefix of the blob. Blocking.
pub fn plan(store: &BlobStore, file: &FileRow, limits: &Limits) -> io::Result<Plan> {
    let blob = store.open(&file.sha256)?;
    // Four bytes per character is the most UTF-8 needs.
    let text_bytes = (limits.max_text_chars as u64).saturating_mul(4).max(SNIFF_BYTES as u64);
    let mut head = Vec::new();
    blob.take(text_bytes).read_to_end(&mut head)?;
    let kind = detect(&head[..head.len().min(SNIFF_BYTES)], &file.content_type, &file.name);
    Ok(match kind {
        None => Plan::Done(Extracted::Unsupported),
        Some(Kind::Text) => match formats::plain_text(&head, limits.max_text_chars) {
            Some(text) => Plan::Done(Extracted::Text(text)),
            None => Plan::Done(Extracted::Unsupported),
        },
        Some(_) if u64::try_from(file.size).unwrap_or(u64::MAX) > limits.max_extract_size => {
            Plan::Done(Extracted::TooLarge)
        }
        Some(kind) => Plan::Isolated(kind),
    })
}

/// Runs the child on one blob. `Err` means the child could not be run at all (not the
/// file's fault: nothing is to be recorded); every outcome of a run is an `Ok`.
pub async fn isolated(store: &BlobStore, sha256: &str, kind: Kind, limits: &Limits) -> io::Result<Extracted> {
    let path = store.blob_path(sha256).ok_or_else(|| io::Error::other("not a content hash"))?;
    let blob = tokio::fs::File::open(path).await?.into_std().await;
    let mut command = tokio::process::Command::new("/proc/self/exe");
    command
        .arg("extract")
        .arg(kind.as_arg())
        .arg("--max-chars")
        .arg(limits.max_text_chars.to_string())
        .arg("--max-bytes")
        .arg(limits.max_extract_size.to_string())
        .arg("--memory")
        .arg(limits.memory.to_string())
        .arg("--cpu-seconds")
        .arg(limits.timeout.as_secs().max(1).to_string())
        .env_clear()
        .stdin(Stdio::from(blob))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let mut stdout = child.stdout.take().ok_or_else(|| io::Error::other("no pipe to the child"))?;
    let cap = (limits.max_text_chars as u64).saturating_mul(4);
    let run = async {
        let mut text = Vec::new();
        (&mut stdout).take(cap + 1).read_to_end(&mut text).await?;
        let status = child.wait().await?;
        Ok::<_, io::Error>((text, status))
    };
    let outcome = tokio::time::timeout(limits.timeout, run).await;
    Ok(match outcome {
        Err(_elapsed) => {
            let _ = child.kill().await;
            Extracted::Timeout
        }
        Ok(Err(_)) => Extracted::Failed,
        Ok(Ok((text, status))) => match (status.code(), status.signal()) {
            (Some(0), _) if text.len() as u64 <= cap => Extracted::Text(String::from_utf8_lossy(&text).into_owned()),
            (Some(code), _) if code == i32::from(child::EXIT_TOO_LARGE) => Extracted::TooLarge,
            (_, Some(signal)) if signal == libc::SIGXCPU || signal == libc::SIGKILL => Extracted::Timeout,
            _ => Extracted::Failed,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_contents_first_then_type_and_name() {
        assert_eq!(detect(b"%PDF-1.7\n", "application/octet-stream", "x.bin"), Some(Kind::Pdf));
        assert_eq!(detect(b"PK\x03\x04rest", "application/octet-stream", "a.docx"), Some(Kind::Docx));
        assert_eq!(detect(b"PK\x03\x04rest", "application/vnd.oasis.opendocument.text", "a"), Some(Kind::Odt));
        assert_eq!(detect(b"PK\x03\x04rest", "application/zip", "a.zip"), None);
        assert_eq!(detect(b"<p>hi</p>", "application/octet-stream", "page.html"), Some(Kind::Html));
        assert_eq!(detect(b"fn main() {}", "application/octet-stream", "main.rs"), Some(Kind::Text));
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n\0\0", "image/png", "a.png"), None);
        assert_eq!(detect(b"just words", "image/svg+xml", "a.svg"), None);
    }
}
