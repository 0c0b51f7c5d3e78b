//! The extracted-text cache, `<state>/search/text.db`: each content hash's extraction outcome
//! and text. Renames, grants, deduplicated uploads and rebuilds reuse it, so a file's contents
//! are extracted once, and a hostile file is tried once per extractor version.
//!
//! Derived data: it may be deleted at any time (texts are extracted again) and is never backed
//! up. Writes are not fsynced (`synchronous=NORMAL`): losing the last entries in a power cut
//! costs an extraction, nothing more.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

/// Bumped when extraction improves, so old failures are tried again and old texts replaced.
pub const EXTRACTOR_VERSION: i64 = 1;

/// How one content hash's extraction ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extracted {
    Text(String),
    /// Not a format whose text Coffer reads (images, archives, binaries).
    Unsupported,
    /// Larger than `search.max_extract_size`.
    TooLarge,
    /// The extractor gave up (a damaged or hostile file) or ran out of memory.
    Failed,
    /// It ran past `search.extract_timeout`.
    Timeout,
}

impl Extracted {
    pub fn status(&self) -> &'static str {
        match self {
            Self::Text(_) => "ok",
            Self::Unsupported => "unsupported",
            Self::TooLarge => "too_large",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
        }
    }

    fn from_status(status: &str, text: Option<String>) -> Self {
        match status {
            "ok" => Self::Text(text.unwrap_or_default()),
            "unsupported" => Self::Unsupported,
            "too_large" => Self::TooLarge,
            "timeout" => Self::Timeout,
            _ => Self::Failed,
        }
    }

    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            _ => None,
        }
    }
}

pub struct TextCache {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

impl TextCache {
    /// Opens (creating) the cache. Blocking.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = connect(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS extracted (
                sha256    TEXT PRIMARY KEY,
                extractor INTEGER NOT NULL,
                status    TEXT NOT NULL,
                text      TEXT
            ) STRICT;",
        )?;
        Ok(Self { path: path.to_owned(), idle: Mutex::new(vec![conn]) })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        let pooled = self.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
        let conn = match pooled {
            Some(conn) => conn,
            None => connect(&self.path)?,
        };
        let result = f(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < 4
        {
            idle.push(conn);
        }
        result
    }

    /// The outcome for a content hash by the current extractor, if there is one. Blocking.
    pub fn get(&self, sha256: &str) -> rusqlite::Result<Option<Extracted>> {
        self.with(|conn| {
            conn.prepare_cached("SELECT status, text FROM extracted WHERE sha256 = ?1 AND extractor = ?2")?
                .query_row(params![sha256, EXTRACTOR_VERSION], |row| {
                    Ok(Extracted::from_status(&row.get::<_, String>(0)?, row.get(1)?))
                })
                .optional()
        })
    }

    /// Records an outcome. Blocking.
    pub fn put(&self, sha256: &str, outcome: &Extracted) -> rusqlite::Result<()> {
        self.with(|conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO extracted (sha256, extractor, status, text) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![sha256, EXTRACTOR_VERSION, outcome.status(), outcome.text()])
            .map(|_| ())
        })
    }

    /// Records many outcomes in one transaction. Blocking.
    pub fn put_many(&self, outcomes: &[(String, Extracted)]) -> rusqlite::Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.with(|conn| {
            let tx = conn.unchecked_transaction()?;
            {
                let mut statement = tx.prepare_cached(
                    "INSERT OR REPLACE INTO extracted (sha256, extractor, status, text) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (sha256, outcome) in outcomes {
                    statement.execute(params![sha256, EXTRACTOR_VERSION, outcome.status(), outcome.text()])?;
                }
            }
            tx.commit()
        })
    }

    /// How many content hashes ended each way. Blocking.
    pub fn counts(&self) -> rusqlite::Result<Vec<(String, u64)>> {
        self.with(|conn| {
            let mut statement =
                conn.prepare("SELECT status, count(*) FROM extracted GROUP BY status ORDER BY status")?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)?)))?;
            rows.map(|row| row.map(|(status, count)| (status, u64::try_from(count).unwrap_or(0)))).collect()
        })
    }

    /// Forgets every hash not in `referenced` (contents no file has any more). Blocking.
    pub fn retain(&self, referenced: &HashSet<String>) -> rusqlite::Result<usize> {
        self.with(|conn| {
            let known: Vec<String> = {
                let mut statement = conn.prepare("SELECT sha256 FROM extracted")?;
                let rows = statement.query_map([], |row| row.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let mut removed = 0;
            for sha256 in known.iter().filter(|sha256| !referenced.contains(*sha256)) {
                removed += conn.execute("DELETE FROM extracted WHERE sha256 = ?1", [sha256])?;
            }
            Ok(removed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_and_unreferenced_hashes_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TextCache::open(&dir.path().join("text.db")).unwrap();
        cache.put("a", &Extracted::Text("hello".into())).unwrap();
        cache.put("b", &Extracted::Timeout).unwrap();
        assert_eq!(cache.get("a").unwrap(), Some(Extracted::Text("hello".into())));
        assert_eq!(cache.get("b").unwrap(), Some(Extracted::Timeout));
        assert_eq!(cache.get("c").unwrap(), None);
        assert_eq!(cache.counts().unwrap(), [("ok".to_owned(), 1), ("timeout".to_owned(), 1)]);
        assert_eq!(cache.retain(&HashSet::from(["a".to_owned()])).unwrap(), 1);
        assert_eq!(cache.get("b").unwrap(), None);
    }
}
