//! Keeps the write-ahead log bounded when reads never pause.
//!
//! SQLite's automatic checkpoints are passive: they copy what no reader still needs, and the
//! log starts over from its beginning only when a write finds it fully copied and no reader
//! in it. Under steady traffic some read always overlaps, so the log only grows (a 5-minute
//! mixed load took it to 370 MiB, and every read slowed down with it, searching a longer log
//! index). Once a second this task checkpoints passively on a connection of its own; when the
//! log has passed [`RESTART_FRAMES`], it asks for a RESTART checkpoint, which holds new writes
//! back for at most [`WAIT_FOR_READERS`] while the readers in the log finish, so the next write
//! starts the log over. A long reader (a search index build, a backup) makes it give up and
//! wait longer before the next attempt, rather than stall writes every second.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use tokio_util::sync::CancellationToken;

use super::connect;

const EVERY: Duration = Duration::from_secs(1);
/// Log length (pages) from which the log is made to start over: 16 MiB of 4 KiB pages.
pub const RESTART_FRAMES: i64 = 4096;
/// How long a RESTART checkpoint waits for readers, holding writes back meanwhile.
const WAIT_FOR_READERS: Duration = Duration::from_millis(200);
/// Most rounds skipped after RESTART checkpoints that found readers which would not finish.
const MAX_BACKOFF_ROUNDS: u32 = 64;

/// What a checkpoint round did.
#[derive(Debug, PartialEq, Eq)]
pub enum Round {
    /// The log was short: a passive checkpoint was enough.
    Passive,
    /// The log was long and is fully copied: the next write starts it over.
    Restarted,
    /// The log was long, but readers stayed in it past the wait.
    ReadersStayed,
}

/// Opens the checkpointer's own connection. Blocking.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    connect(path, WAIT_FOR_READERS)
}

/// One round; `restart` says whether a long log may be restarted this time. Blocking.
pub fn round(conn: &Connection, restart: bool) -> rusqlite::Result<Round> {
    let checkpoint = |mode: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })
    };
    let (_, log) = checkpoint("PASSIVE")?;
    if log < RESTART_FRAMES || !restart {
        return Ok(Round::Passive);
    }
    let (busy, _) = checkpoint("RESTART")?;
    Ok(if busy == 0 { Round::Restarted } else { Round::ReadersStayed })
}

/// Runs a round every [`EVERY`] until `shutdown`.
pub async fn run(path: PathBuf, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut conn: Option<Connection> = None;
    let (mut skip, mut backoff) = (0u32, 1u32);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let restart = skip == 0;
        skip = skip.saturating_sub(1);
        let (taken, path) = (conn.take(), path.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let conn = match taken {
                Some(conn) => conn,
                None => open(&path)?,
            };
            let done = round(&conn, restart)?;
            Ok::<_, rusqlite::Error>((conn, done))
        })
        .await;
        match outcome {
            Ok(Ok((kept, done))) => {
                conn = Some(kept);
                match done {
                    Round::ReadersStayed => {
                        skip = backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF_ROUNDS);
                    }
                    Round::Restarted => backoff = 1,
                    Round::Passive => {}
                }
            }
            Ok(Err(err)) => {
                tracing::warn!(task = "checkpoint", error = %err, "cannot checkpoint the database; will try again")
            }
            Err(err) => tracing::error!(task = "checkpoint", error = %err, "the checkpoint task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    fn log_frames(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1)).unwrap()
    }

    #[test]
    fn a_long_log_is_made_to_start_over_once_its_readers_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.db");
        drop(Db::open(&path, Duration::from_secs(1), 1).unwrap());
        let writer = connect(&path, Duration::from_secs(5)).unwrap();
        writer.execute_batch("CREATE TABLE filler (data BLOB)").unwrap();
        let reader = connect(&path, Duration::from_secs(5)).unwrap();
        let read = |reader: &Connection| {
            reader.execute_batch("BEGIN").unwrap();
            let count: i64 = reader.query_row("SELECT count(*) FROM filler", [], |row| row.get(0)).unwrap();
            assert!(count >= 0);
        };
        // An old snapshot held open: nothing can be copied past it, so the log grows.
        read(&reader);
        for _ in 0..50 {
            writer.execute("INSERT INTO filler VALUES (zeroblob(400000))", []).unwrap();
        }
        assert!(log_frames(&writer) > RESTART_FRAMES);
        let checkpointer = open(&path).unwrap();
        assert_eq!(round(&checkpointer, true).unwrap(), Round::ReadersStayed);
        assert_eq!(round(&checkpointer, false).unwrap(), Round::Passive, "no restart when told to wait");
        reader.execute_batch("COMMIT").unwrap();

        assert_eq!(round(&checkpointer, true).unwrap(), Round::Restarted);
        writer.execute("INSERT INTO filler VALUES (zeroblob(4000))", []).unwrap();
        let after = log_frames(&writer);
        assert!(after < 100, "the log went on at frame {after} instead of starting over");
    }
}
