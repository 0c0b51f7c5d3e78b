//! Keeping an upload's durable write running behind it, so the fsync before the 201 is short.
//!
//! Page-cache writes are cheap; making them durable is not, and a single fsync after the last
//! byte pays for the whole file at once (about 0.7 s per GiB on a virtual disk whose host
//! flushes its own cache on every guest flush). Instead, every [`WINDOW`] bytes the window's
//! write-back is started (`sync_file_range`, which does not wait) and, when none is running,
//! an `fdatasync` is started on a blocking-pool thread while the writer carries on. The final
//! fsync then has at most the last stretch left. None of this replaces that final fsync: it is
//! what makes the upload durable, the background flushes only spread its work.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// Bytes written between two write-back starts.
const WINDOW: u64 = 8 << 20;

pub(super) struct WriteBehind {
    runtime: Handle,
    written: u64,
    started: u64,
    flush: Option<JoinHandle<io::Result<()>>>,
    /// Where `written` stood when the running flush began.
    flush_covers: u64,
    /// Every byte before this is durable (a background flush that covered it has finished).
    durable: u64,
}

/// Linux `sync_file_range(fd, offset, len, SYNC_FILE_RANGE_WRITE)`: starts write-back of
/// the range's dirty pages without waiting for it.
fn start_write_back(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let (offset, len) = (offset as libc::off64_t, len as libc::off64_t);
    // SAFETY: the descriptor is valid for the duration of the call, which reads no memory.
    let status = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
    if status == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

impl WriteBehind {
    /// `runtime` runs the background flushes on its blocking pool.
    pub(super) fn new(runtime: Handle) -> Self {
        Self { runtime, written: 0, started: 0, flush: None, flush_covers: 0, durable: 0 }
    }

    /// For a file written from `offset` on (appending to a resumable upload's part file).
    pub(super) fn starting_at(runtime: Handle, offset: u64) -> Self {
        Self { runtime, written: offset, started: offset, flush: None, flush_covers: offset, durable: offset }
    }

    /// Records `len` more bytes written to `file`; at each window's end, starts its write-back
    /// and, unless one is still running, a background `fdatasync`. A failed background flush
    /// fails the upload here or in [`WriteBehind::finish`].
    pub(super) fn advance(&mut self, file: &File, len: usize) -> io::Result<()> {
        self.written += len as u64;
        if self.written - self.started < WINDOW {
            return Ok(());
        }
        start_write_back(file, self.started, self.written - self.started)?;
        self.started = self.written;
        if self.flush.as_ref().is_none_or(JoinHandle::is_finished) {
            self.wait_for_flush()?;
            let file = file.try_clone()?;
            self.flush_covers = self.written;
            self.flush = Some(self.runtime.spawn_blocking(move || file.sync_data()));
        }
        Ok(())
    }

    /// Waits for the background flush, then makes the whole file durable.
    pub(super) fn finish(mut self, file: &File) -> io::Result<()> {
        self.wait_for_flush()?;
        file.sync_all()
    }

    /// The file position before which every byte is known to be durable: what the background
    /// flushes finished so far have covered (a resumable upload records it as its offset).
    pub(super) fn durable(&mut self) -> io::Result<u64> {
        if self.flush.as_ref().is_some_and(JoinHandle::is_finished) {
            self.wait_for_flush()?;
        }
        Ok(self.durable)
    }

    fn wait_for_flush(&mut self) -> io::Result<()> {
        match self.flush.take() {
            None => Ok(()),
            // Called on a blocking-pool thread, where blocking on the runtime is allowed.
            Some(flush) => {
                self.runtime.block_on(flush).map_err(|err| io::Error::other(err.to_string()))??;
                self.durable = self.flush_covers;
                Ok(())
            }
        }
    }
}
