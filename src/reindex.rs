//! `coffer reindex`: rebuilds the search index from the database on the server's machine,
//! with progress and an estimate of the time left, then swaps it in.
//!
//! Refuses (exit 75) while another process, normally the running server, holds the search
//! directory's lock: the server rebuilds by itself on `POST /api/v1/admin/search/rebuild`.
//! Contents not yet in the text cache are read at once when they are plain text; other
//! formats are left for the server to extract when it starts (their files are findable by
//! name meanwhile).

use std::io::Write;
use std::time::Instant;

use crate::config::Settings;
use crate::search::extract::Limits;
use crate::search::index_dir::{self, LockError, SearchLock, SearchPaths};
use crate::search::rebuild::{self, Sources};
use crate::search::state::Progress;
use crate::search::text_cache::TextCache;
use crate::state_dir::StateDir;
use crate::storage::BlobStore;

#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    #[error(
        "the server is running and holds the search index; ask it to rebuild instead: POST /api/v1/admin/search/rebuild (as an admin), or stop it first"
    )]
    ServerRunning,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn progress_line(progress: &Progress) -> String {
    let elapsed = progress.started.elapsed().as_secs_f64().max(0.001);
    let percent = (progress.done * 100).checked_div(progress.total).unwrap_or(100);
    let eta = progress.eta_seconds().map_or_else(|| "?".to_owned(), |seconds| format!("{seconds}s"));
    format!(
        "indexed {}/{} ({percent}%) {} files/s ETA {eta}",
        thousands(progress.done),
        thousands(progress.total),
        thousands((progress.done as f64 / elapsed) as u64)
    )
}

pub fn run(settings: &Settings) -> Result<(), ReindexError> {
    crate::cli::check_owner(settings)?;
    let state_dir = StateDir::new(&settings.storage.state_dir);
    if !state_dir.database().exists() {
        return Err(
            anyhow::anyhow!("no database at {}; check storage.state_dir", state_dir.database().display()).into()
        );
    }
    let paths = SearchPaths::new(state_dir.search_dir());
    let _lock = match SearchLock::acquire(&paths) {
        Ok(lock) => lock,
        Err(LockError::Busy) => return Err(ReindexError::ServerRunning),
        Err(err) => return Err(anyhow::Error::from(err).into()),
    };
    let busy_timeout = settings.database.busy_timeout.0;
    // Opening through Db applies any pending migration (the outbox tables among them).
    drop(crate::db::Db::open(&state_dir.database(), busy_timeout, 1).map_err(anyhow::Error::from)?);
    let mut conn = crate::db::connect(&state_dir.database(), busy_timeout).map_err(anyhow::Error::from)?;
    let cache = TextCache::open(&paths.text_cache()).map_err(anyhow::Error::from)?;
    let blobs = BlobStore::new(state_dir.blobs_dir(), state_dir.tmp_dir(), crate::clock::Clock::system());
    let limits = Limits::from_settings(&settings.search);
    let sources = Sources {
        blobs: &blobs,
        cache: &cache,
        limits: &limits,
        writer_memory: usize::try_from(settings.search.writer_memory.0).unwrap_or(usize::MAX),
    };
    let started = Instant::now();
    let mut last_line = Instant::now();
    let mut report = |progress: &Progress| {
        if last_line.elapsed().as_millis() >= 500 || progress.done == progress.total {
            eprint!("\r{}   ", progress_line(progress));
            let _ = std::io::stderr().flush();
            last_line = Instant::now();
        }
    };
    let mut left_for_server = 0u64;
    let mut queue = |_: &str, _| left_for_server += 1;
    let built = rebuild::build_aside(&paths, &mut conn, &sources, &mut report, &mut queue);
    eprintln!();
    let seq = built.map_err(anyhow::Error::from)?;
    index_dir::swap_in(&paths).map_err(|err| anyhow::anyhow!("cannot swap the new index in: {err}"))?;
    println!(
        "search index rebuilt in {:.1} s (through change {seq}); {} files' contents wait for extraction when the server starts",
        started.elapsed().as_secs_f64(),
        thousands(left_for_server)
    );
    Ok(())
}
