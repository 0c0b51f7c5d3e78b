//! The public side's sequence for a request to a share, in one place and free of HTTP:
//! find the share, turn away what is expired, check the password, open the contents, count
//! the download (or continue a counted one), watch it while it streams, and audit.
//!
//! The order matters: the blob is opened before anything is counted, so a missing or
//! unreadable blob never uses up a download; and nothing is counted for a request that sends no
//! body (HEAD, 304, 416), which is tallied as a view instead.

use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

use super::public::{CookieKind, IssuedCookie, Opened, resume_cookie_name, unlock_cookie_name};
use super::resume::RESUME_LIFETIME;
use super::watch::Download;
use super::{ShareError, ShareState, Shares};
use crate::db::files::FileRow;
use crate::db::shares as table;

/// What a request asks of the file, decided from its headers by the HTTP layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// No body: HEAD, or an answer of 304 or 416.
    Nothing,
    /// Bytes `start..start + length`; `partial` for a Range request.
    Bytes { start: u64, length: u64, partial: bool },
}

/// The credentials a public request may carry.
#[derive(Clone, Debug, Default)]
pub struct Visitor<'a> {
    pub ip: &'a str,
    /// `X-Share-Password`.
    pub password: Option<&'a str>,
    /// Every cookie sent, as (name, value); the share's own are picked by name once it is found.
    pub cookies: Vec<(&'a str, &'a str)>,
}

impl Visitor<'_> {
    pub(super) fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find_map(|(key, value)| (*key == name).then_some(*value))
    }
}

/// A refused request, with the share it was about when one was found (for the request log).
pub struct Refused {
    pub error: ShareError,
    pub share_id: Option<String>,
}

impl Refused {
    pub(super) fn of(error: ShareError, opened: Option<&Opened>) -> Self {
        Self { error, share_id: opened.map(|opened| opened.id().to_owned()) }
    }
}

pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// What to answer a download with.
pub struct Served {
    pub opened: Opened,
    /// The file served; `None` for a ZIP.
    pub file: Option<FileRow>,
    /// The bytes asked for; `None` when the answer has no body.
    pub body: Option<ByteStream>,
    /// Cookies to set: a new unlock, a resume.
    pub cookies: Vec<IssuedCookie>,
}

impl Shares {
    /// The share behind `token`, refusing unknown, revoked and disabled ones (404) and expired
    /// ones (410, counted as a refused view).
    pub async fn open_public(&self, token: &str, ip: &str) -> Result<Opened, Refused> {
        let opened = self.open(token).await.map_err(|err| Refused::of(err, None))?;
        if self.state(&opened) == ShareState::Expired {
            self.note_view(opened.id(), ip, true);
            return Err(Refused::of(ShareError::Expired, Some(&opened)));
        }
        Ok(opened)
    }

    /// The share behind `token`, past its password: the unlock cookie or `X-Share-Password`
    /// (which earns a new cookie, returned to be set).
    pub async fn open_unlocked(
        &self,
        token: &str,
        visitor: &Visitor<'_>,
    ) -> Result<(Opened, Vec<IssuedCookie>), Refused> {
        let opened = self.open_public(token, visitor.ip).await?;
        let unlock_cookie = visitor.cookie(&unlock_cookie_name(opened.id()));
        match self.authorize(&opened, visitor.password, unlock_cookie, visitor.ip).await {
            Ok(issued) => Ok((opened, issued.into_iter().collect())),
            Err(err) => Err(Refused::of(err, Some(&opened))),
        }
    }

    /// A request for a share's bytes, whole or in part: the share's one file (`member`
    /// `None`), or the file `member` of a multi-file share. `wanted` decides, from the file,
    /// what the request asks for (its conditional and range headers).
    pub async fn public_download(
        &self,
        token: &str,
        member: Option<&str>,
        visitor: Visitor<'_>,
        wanted: impl FnOnce(&FileRow) -> Wanted,
    ) -> Result<Served, Refused> {
        let (opened, mut cookies) = self.open_unlocked(token, &visitor).await?;
        let refuse = |error: ShareError, opened: &Opened| Refused::of(error, Some(opened));
        let file = match (&opened.file, member) {
            (Some(file), None) => file.clone(),
            (None, Some(member)) => self.member(&opened, member).await.map_err(|err| refuse(err, &opened))?,
            _ => return Err(refuse(ShareError::NotFound, &opened)),
        };
        let multi = opened.file.is_none();
        let Wanted::Bytes { start, length, partial } = wanted(&file) else {
            self.note_view(opened.id(), visitor.ip, false);
            return Ok(Served { opened, file: Some(file), body: None, cookies });
        };
        // Opened before counting: a blob that is gone or unreadable uses up no download.
        let stream = self
            .files()
            .store()
            .read_range(&file.sha256, start, length)
            .await
            .map_err(|err| refuse(ShareError::File(err.into()), &opened))?;
        let size = u64::try_from(file.size).unwrap_or(0);
        let (id, now) = (opened.id().to_owned(), self.now());
        // A multi-file share's downloads are remembered per file, under their own cookies.
        let (progress_key, cookie_name) = match multi {
            true => (format!("{id}/{}", file.id), resume_cookie_name(&id, Some(&file.id))),
            false => (id.clone(), resume_cookie_name(&id, None)),
        };
        let notice = opened.entry.share.notify_downloads.then(|| (self.inner.mailer.clone(), visitor.ip.to_owned()));
        let resume_cookie = visitor.cookie(&cookie_name);
        let continued = match self.read_cookie(CookieKind::Resume, &opened, resume_cookie) {
            Some(download) if partial => self.inner.resumes.resume(&download, &progress_key, start, now),
            _ => None,
        };
        let kinds = &crate::metrics::get().share_requests;
        let progress = match continued {
            Some(progress) => {
                kinds.with(["resume"]).inc();
                self.inner
                    .db
                    .write(move |tx| table::touch(tx, &id, now))
                    .await
                    .map_err(|err| refuse(err.into(), &opened))?;
                progress
            }
            None => {
                let file_id = file.id.clone();
                let counted = self
                    .inner
                    .db
                    .write(move |tx| {
                        let counted = match multi {
                            true => table::take_file_downloads(tx, &id, std::slice::from_ref(&file_id), now)?,
                            false => table::take_download(tx, &id, now)?,
                        };
                        if let (true, Some((mailer, ip))) = (counted, &notice) {
                            super::send::queue_download_notice(mailer, tx, now, &id, ip)?;
                        }
                        Ok(counted)
                    })
                    .await
                    .map_err(|err| refuse(err.into(), &opened))?;
                if !counted {
                    kinds.with(["refused"]).inc();
                    let _ = self.record(opened.id(), visitor.ip, "share_refused", "outcome=exhausted".into()).await;
                    return Err(refuse(ShareError::Exhausted, &opened));
                }
                kinds.with(["download"]).inc();
                let (download, progress) = self.inner.resumes.start(&progress_key, size, start, now);
                cookies.push(self.issue(CookieKind::Resume, &opened, RESUME_LIFETIME, Some(&download), cookie_name));
                progress
            }
        };
        let download = Download {
            share_id: opened.id().to_owned(),
            file: Some((file.id.clone(), file.sha256.clone())),
            ip: visitor.ip.to_owned(),
            start,
            length: Some(length),
            progress: Some(progress),
            password_version: opened.entry.share.password_version,
        };
        let body: ByteStream = Box::pin(self.watch(download, Box::pin(stream)));
        Ok(Served { opened, file: Some(file), body: Some(body), cookies })
    }
}
