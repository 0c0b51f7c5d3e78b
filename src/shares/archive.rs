//! "Download all": a multi-file share as one ZIP, streamed as it is made.
//!
//! One blocking thread writes the archive with `zip`'s streaming writer into a bounded channel
//! (a few chunks of [`CHUNK`] bytes), and the response body reads from it: no temporary file,
//! never more than a few hundred KiB of the archive in memory, and a slow client slows the
//! writer down instead of filling memory. Entries are stored, not deflated: most of what people
//! share in bulk (photos, video, archives, PDFs) is compressed already, and storing costs the
//! server no CPU. An entry of 4 GiB or more carries a ZIP64 extra field; the archive gets
//! ZIP64 end records by itself once it passes 4 GiB or 65,535 entries.
//!
//! The ZIP counts one download of every file in it, all or nothing, before a byte is sent (see
//! `members.rs`). It is watched like any share download (`watch.rs`): revoking, disabling or
//! expiring the share cuts it with an error, so a client never gets a truncated archive that
//! looks complete (the central directory comes last).

use std::io::{self, Read, Write};

use bytes::Bytes;
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::download::{ByteStream, Refused, Visitor};
use super::public::{IssuedCookie, Opened};
use super::watch::Download;
use super::{Member, ShareError, Shares};
use crate::db::shares as table;

/// Bytes per chunk sent to the client.
const CHUNK: usize = 64 << 10;
/// Chunks buffered between the writer thread and the client.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Entries this large or larger get a ZIP64 extra field (their sizes do not fit 32 bits).
pub const ZIP64_FROM: u64 = u32::MAX as u64;

/// A ZIP download about to stream.
pub struct Archive {
    pub opened: Opened,
    /// `None` for a request without a body (HEAD).
    pub body: Option<ByteStream>,
    pub cookies: Vec<IssuedCookie>,
    /// The name offered for saving: the folder's name or `files`, with `.zip`.
    pub name: String,
}

impl Shares {
    /// "Download all" of a multi-file share: checks it like any download, counts one download of
    /// each file (or refuses with `Exhausted`), and streams the ZIP. `head`: checks only.
    pub async fn public_archive(&self, token: &str, visitor: Visitor<'_>, head: bool) -> Result<Archive, Refused> {
        let (opened, cookies) = self.open_unlocked(token, &visitor).await?;
        let refuse = |error: ShareError, opened: &Opened| Refused::of(error, Some(opened));
        if opened.file.is_some() {
            return Err(refuse(ShareError::NotFound, &opened));
        }
        let name = match &opened.entry.share.contents {
            crate::db::shares::Contents::Folder(_) => format!("{}.zip", opened.entry.file_name),
            _ => "files.zip".to_owned(),
        };
        if head {
            self.note_view(opened.id(), visitor.ip, false);
            return Ok(Archive { opened, body: None, cookies, name });
        }
        let members = self.members(&opened).await.map_err(|err| refuse(err, &opened))?;
        let (id, now, ip) = (opened.id().to_owned(), self.now(), visitor.ip.to_owned());
        let ids: Vec<_> = members.iter().map(|member| member.file.id.clone()).collect();
        let notice = opened.entry.share.notify_downloads.then(|| self.inner.mailer.clone());
        let counted = self
            .inner
            .db
            .write(move |tx| {
                let counted = table::take_file_downloads(tx, &id, &ids, now)?;
                if let (true, Some(mailer)) = (counted, &notice) {
                    super::send::queue_download_notice(mailer, tx, now, &id, &ip)?;
                }
                Ok(counted)
            })
            .await
            .map_err(|err| refuse(err.into(), &opened))?;
        let kinds = &crate::metrics::get().share_requests;
        if !counted {
            kinds.with(["refused"]).inc();
            let _ = self.record(opened.id(), visitor.ip, "share_refused", "outcome=exhausted archive".into()).await;
            return Err(refuse(ShareError::Exhausted, &opened));
        }
        kinds.with(["download"]).inc();
        let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let store = self.files().store().clone();
        tokio::task::spawn_blocking(move || {
            let mut sink = ChannelSink { sender: sender.clone(), buffer: Vec::with_capacity(CHUNK) };
            let outcome = write_zip(&mut sink, &members, ZIP64_FROM, |sha256| store.open(sha256));
            let outcome = outcome.and_then(|()| sink.send_buffer());
            if let Err(err) = outcome {
                // The client sees the stream fail rather than end: an archive cut short must not
                // look whole.
                let _ = sender.blocking_send(Err(err));
            }
        });
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|chunk| (chunk, receiver))
        });
        let download = Download {
            share_id: opened.id().to_owned(),
            file: None,
            ip: visitor.ip.to_owned(),
            start: 0,
            length: None,
            progress: None,
            password_version: opened.entry.share.password_version,
        };
        let body: ByteStream = Box::pin(self.watch(download, Box::pin(stream)));
        Ok(Archive { opened, body: Some(body), cookies, name })
    }
}

/// The writer thread's end of the channel, in chunks of [`CHUNK`] bytes.
struct ChannelSink {
    sender: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl ChannelSink {
    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK)));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buffer.len();
        let taken = data.len().min(room);
        self.buffer.extend_from_slice(&data[..taken]);
        if self.buffer.len() >= CHUNK {
            self.send_buffer()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn modified(unix: i64) -> DateTime {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|at| {
            DateTime::from_date_and_time(
                u16::try_from(at.year()).ok()?,
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second(),
            )
            .ok()
        })
        .unwrap_or_default()
}

/// Writes the ZIP of `members` to `sink`, reading each file's contents from `open`. Entries of
/// `zip64_from` bytes or more get a ZIP64 extra field (a parameter so tests can force it).
pub fn write_zip<W: Write, R: Read>(
    sink: W,
    members: &[Member],
    zip64_from: u64,
    open: impl Fn(&str) -> io::Result<R>,
) -> io::Result<()> {
    let mut zip = ZipWriter::new_stream(sink);
    for member in members {
        let size = u64::try_from(member.file.size).unwrap_or(0);
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(modified(member.file.modified_at))
            .unix_permissions(0o644)
            .large_file(size >= zip64_from);
        let mut contents = open(&member.file.sha256)?;
        zip.start_file(member.path.as_str(), options).map_err(io::Error::other)?;
        let copied = io::copy(&mut contents, &mut zip)?;
        if copied != size {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a file's contents are not its recorded size"));
        }
    }
    zip.finish().map_err(io::Error::other)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::files::FileRow;
    use crate::domain::{FileId, UserId};

    fn member(path: &str, contents: &[u8]) -> Member {
        let file = FileRow {
            id: FileId(path.to_owned()),
            owner_id: UserId("u".into()),
            folder: String::new(),
            name: path.to_owned(),
            size: i64::try_from(contents.len()).unwrap(),
            sha256: String::from_utf8(contents.to_vec()).unwrap(),
            content_type: "text/plain".into(),
            description: String::new(),
            created_at: 1_700_000_000,
            modified_at: 1_700_000_000,
        };
        Member { file, path: path.to_owned(), downloads_left: None }
    }

    /// The writer's own output, with the ZIP64 threshold forced down to every entry, is an
    /// archive the real `unzip` accepts, and its entries carry the ZIP64 extra field (0x0001).
    /// A genuine 4 GiB entry would take minutes; the threshold is the only difference.
    #[test]
    fn forced_zip64_entries_carry_the_extra_field_and_unzip_accepts_them() {
        let members = [member("one.txt", b"first file"), member("dir/two.txt", b"second")];
        let mut archive = Vec::new();
        write_zip(&mut archive, &members, 0, |contents: &str| Ok(io::Cursor::new(contents.as_bytes().to_vec())))
            .unwrap();
        let local = archive.windows(4).position(|window| window == b"PK\x03\x04").unwrap();
        let name_length = usize::from(u16::from_le_bytes([archive[local + 26], archive[local + 27]]));
        let extra_length = usize::from(u16::from_le_bytes([archive[local + 28], archive[local + 29]]));
        let extra = &archive[local + 30 + name_length..][..extra_length];
        assert!(extra.len() >= 4 && extra[..2] == [1, 0], "first entry's extra field: {extra:?}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forced.zip");
        std::fs::write(&path, &archive).unwrap();
        let output = std::process::Command::new("unzip").arg("-t").arg(&path).output().expect("unzip is installed");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && text.contains("No errors detected"), "{text}");
        let mut plain = Vec::new();
        write_zip(&mut plain, &members, ZIP64_FROM, |contents: &str| Ok(io::Cursor::new(contents.as_bytes().to_vec())))
            .unwrap();
        assert!(plain.len() < archive.len(), "small entries carry no ZIP64 field by default");
    }
}
