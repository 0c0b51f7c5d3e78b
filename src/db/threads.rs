//! The database threads: a fixed set of threads, each with its own connection, that take
//! closures from one queue. They replace a hand-off to tokio's blocking pool per call: a
//! thread that finds more work queued takes it without going to sleep, and a sleeping one
//! spins briefly before it parks, so under load most calls cost no wake-up at all (the
//! blocking pool's condition variable made two futex round trips per call, about a third of
//! the server's time on authenticated reads).
//!
//! A closure that panics loses its connection (it may be inside a transaction) and answers
//! its caller with an error; the thread goes on with a new connection.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use rusqlite::Connection;

use super::{DbError, connect};

/// One call: gets the thread's connection, or why there is none.
pub type Job = Box<dyn FnOnce(Result<&mut Connection, DbError>) + Send>;

/// Starts `count` threads serving `jobs`; `first` (the connection that migrated the
/// database) goes to the first of them. They end when every sender is gone.
pub fn start(count: usize, path: PathBuf, busy_timeout: Duration, first: Connection) -> std::io::Result<Sender<Job>> {
    let (sender, jobs) = crossbeam_channel::unbounded::<Job>();
    let mut first = Some(first);
    for index in 0..count.max(1) {
        let (jobs, path, conn) = (jobs.clone(), path.clone(), first.take());
        std::thread::Builder::new()
            .name(format!("coffer-db-{index}"))
            .spawn(move || serve(&jobs, &path, busy_timeout, conn))?;
    }
    Ok(sender)
}

fn serve(jobs: &Receiver<Job>, path: &std::path::Path, busy_timeout: Duration, mut conn: Option<Connection>) {
    while let Ok(job) = jobs.recv() {
        let mut current = match conn.take() {
            Some(current) => current,
            None => match connect(path, busy_timeout) {
                Ok(opened) => opened,
                Err(err) => {
                    job(Err(err.into()));
                    continue;
                }
            },
        };
        let finished = catch_unwind(AssertUnwindSafe(|| job(Ok(&mut current))));
        // A connection left inside a transaction (a panic mid-way) is not reused.
        if finished.is_ok() && current.is_autocommit() {
            conn = Some(current);
        }
    }
}
