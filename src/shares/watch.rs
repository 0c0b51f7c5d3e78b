//! A share download in flight: it stops when the share is revoked or disabled (checked every
//! few MiB, so revocation cuts even a long download short; a ZIP also stops at expiry), and
//! when it ends, however it ends, the audit log gets the bytes actually sent.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::Shares;
use super::resume::Progress;
use crate::domain::FileId;

/// Bytes sent between two checks that the share still stands.
const RECHECK_EVERY: u64 = 4 << 20;

/// What the audit entry at the end says.
struct Tally {
    shares: Shares,
    share_id: String,
    ip: String,
    range: String,
    /// ` file=<id>` of the file served; empty for a ZIP.
    file: String,
    /// Bytes the answer should have; `None` for a ZIP, complete when its stream ended cleanly.
    expected: Option<u64>,
    sent: u64,
    ended: bool,
    outcome: Option<&'static str>,
}

impl Drop for Tally {
    fn drop(&mut self) {
        let complete = match self.expected {
            Some(expected) => self.sent == expected,
            None => self.ended,
        };
        let outcome = self.outcome.unwrap_or(if complete { "complete" } else { "interrupted" });
        let detail = format!("outcome={outcome} bytes={} range={}{}", self.sent, self.range, self.file);
        let (shares, id, ip) = (self.shares.clone(), std::mem::take(&mut self.share_id), std::mem::take(&mut self.ip));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(err) = shares.record(&id, &ip, "share_download", detail).await {
                    tracing::error!(share = %id, error = %err, "cannot record a share download");
                }
            });
        }
    }
}

pub struct Download {
    pub share_id: String,
    /// The file served (id, SHA-256); `None` for a ZIP of the share.
    pub file: Option<(FileId, String)>,
    pub ip: String,
    pub start: u64,
    /// Bytes to send; `None` for a ZIP (its length is known when it ends).
    pub length: Option<u64>,
    /// Where the counted download this request belongs to has got to (not for a ZIP).
    pub progress: Option<Arc<Progress>>,
    /// The share's password version when the download started: a new password (or one set or
    /// removed) ends it, so whoever knew only the old one is cut off.
    pub password_version: i64,
}

impl Shares {
    /// Wraps the byte stream of a share download.
    pub fn watch<S>(&self, download: Download, inner: S) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static
    where
        S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
    {
        let range = match download.length {
            None => "zip".to_owned(),
            Some(0) => "-".to_owned(),
            Some(length) => format!("{}-{}", download.start, download.start + length - 1),
        };
        let tally = Tally {
            shares: self.clone(),
            share_id: download.share_id,
            ip: download.ip,
            range,
            file: download.file.as_ref().map(|(id, _)| format!(" file={id}")).unwrap_or_default(),
            expected: download.length,
            sent: 0,
            ended: false,
            outcome: None,
        };
        let (start, progress, password_version) = (download.start, download.progress, download.password_version);
        let state = (inner, tally, download.file, 0u64, false);
        futures_util::stream::unfold(state, move |(mut inner, mut tally, file, mut unchecked, done)| {
            let progress = progress.clone();
            async move {
                if done {
                    return None;
                }
                if unchecked >= RECHECK_EVERY {
                    unchecked = 0;
                    let served = file.as_ref().map(|(id, sha256)| (id, sha256.as_str()));
                    if !tally.shares.still_served(&tally.share_id, served, password_version).await {
                        tally.outcome = Some("revoked");
                        let err = io::Error::other("the share was revoked or expired during the download");
                        return Some((Err(err), (inner, tally, file, unchecked, true)));
                    }
                }
                let Some(next) = inner.next().await else {
                    tally.ended = true;
                    drop(tally);
                    return None;
                };
                match next {
                    Ok(chunk) => {
                        tally.sent += chunk.len() as u64;
                        unchecked += chunk.len() as u64;
                        if let Some(progress) = &progress {
                            progress.reached(start + tally.sent);
                        }
                        Some((Ok(chunk), (inner, tally, file, unchecked, false)))
                    }
                    Err(err) => {
                        tally.outcome = Some("read_error");
                        Some((Err(err), (inner, tally, file, unchecked, true)))
                    }
                }
            }
        })
    }
}
