//! What the search index reads from and writes to the main database: the outbox the triggers
//! fill (schema 5), each file's latest change (`search_versions`), and files as documents.
//!
//! The indexer only ever reads a file's current state, never the event that named it, so
//! applying a change twice (a replay after a crash) gives the same document. It never writes
//! anything but the outbox's and versions' own bookkeeping.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::schema::FileDoc;
use crate::db::DbError;
use crate::db::files::{self, FileRow};
use crate::domain::FileId;

/// This database's instance id (it travels with backups, so it names the data's origin).
pub fn instance_id(conn: &Connection) -> Result<String, DbError> {
    Ok(conn.query_row("SELECT instance_id FROM instance", [], |row| row.get(0))?)
}

/// The highest change number ever handed out, pruned or not.
pub fn last_seq(conn: &Connection) -> Result<u64, DbError> {
    let seq: i64 = conn.query_row(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'search_outbox'), 0)",
        [],
        |row| row.get(0),
    )?;
    Ok(u64::try_from(seq).unwrap_or(0))
}

/// Up to `limit` changes after `after`, oldest first: (seq, file id).
pub fn changes_after(conn: &Connection, after: u64, limit: u32) -> Result<Vec<(u64, FileId)>, DbError> {
    let mut statement =
        conn.prepare_cached("SELECT seq, file_id FROM search_outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
    let rows = statement.query_map(params![after as i64, limit], |row| {
        Ok((u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0), FileId(row.get(1)?)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Changes recorded but not yet applied to the index.
pub fn pending_after(conn: &Connection, after: u64) -> Result<u64, DbError> {
    let count: i64 =
        conn.query_row("SELECT count(*) FROM search_outbox WHERE seq > ?1", [after as i64], |row| row.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

fn version(conn: &Connection, id: &FileId) -> Result<u64, DbError> {
    let mut statement = conn.prepare_cached("SELECT coalesce(max(seq), 0) FROM search_versions WHERE file_id = ?1")?;
    let seq: i64 = statement.query_row([&id.0], |row| row.get(0))?;
    Ok(u64::try_from(seq).unwrap_or(0))
}

/// A file as it is now, with its readers and version; `None` once it is gone. Call inside a
/// read transaction so the three agree.
pub fn file_doc(conn: &Connection, id: &FileId) -> Result<Option<FileDoc>, DbError> {
    let Some(row) = files::by_id(conn, id)? else { return Ok(None) };
    let mut readers = vec![row.owner_id.0.clone()];
    readers.extend(files::grants(conn, id)?.into_iter().map(|(user, _, _)| user));
    Ok(Some(FileDoc { version: version(conn, id)?, row, readers }))
}

/// The latest change of each of `ids` (0 when none is recorded).
pub fn versions(conn: &Connection, ids: &[FileId]) -> Result<HashMap<String, u64>, DbError> {
    let mut found = HashMap::with_capacity(ids.len());
    for id in ids {
        found.insert(id.0.clone(), version(conn, id)?);
    }
    Ok(found)
}

/// Ids of the files with these contents.
pub fn files_with_contents(conn: &Connection, sha256: &str) -> Result<Vec<FileId>, DbError> {
    let mut statement = conn.prepare_cached("SELECT id FROM files WHERE sha256 = ?1")?;
    let rows = statement.query_map([sha256], |row| Ok(FileId(row.get(0)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Calls `each` with every file as a document; for rebuilds. Call inside a read transaction
/// (one snapshot) together with [`last_seq`].
pub fn each_file_doc(conn: &Connection, mut each: impl FnMut(FileDoc)) -> Result<(), DbError> {
    let mut grants: HashMap<String, Vec<String>> = HashMap::new();
    {
        let mut statement = conn.prepare("SELECT file_id, user_id FROM file_grants")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            grants.entry(row.get(0)?).or_default().push(row.get(1)?);
        }
    }
    let mut versions: HashMap<String, u64> = HashMap::new();
    {
        let mut statement = conn.prepare("SELECT file_id, seq FROM search_versions")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            versions.insert(row.get(0)?, u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0));
        }
    }
    files::for_each(conn, |row: FileRow| {
        let mut readers = vec![row.owner_id.0.clone()];
        readers.extend(grants.remove(&row.id.0).unwrap_or_default());
        let version = versions.get(&row.id.0).copied().unwrap_or(0);
        each(FileDoc { row, readers, version });
    })
}

pub fn count_files(conn: &Connection) -> Result<u64, DbError> {
    let count: i64 = conn.query_row("SELECT count(*) FROM files", [], |row| row.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// After the index committed everything through `through`: drops those outbox rows, and the
/// versions of files that no longer exist (nothing can hit them any more).
pub fn prune(conn: &mut Connection, through: u64, removed: &[FileId]) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM search_outbox WHERE seq <= ?1", [through as i64])?;
    for id in removed {
        tx.execute(
            "DELETE FROM search_versions WHERE file_id = ?1 AND seq <= ?2
             AND NOT EXISTS (SELECT 1 FROM files WHERE id = ?1)",
            params![id.0, through as i64],
        )?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;
    use crate::domain::UserId;

    fn file(id: &str, owner: &str) -> FileRow {
        FileRow {
            id: FileId(id.into()),
            owner_id: UserId(owner.into()),
            folder: String::new(),
            name: format!("{id}.txt"),
            size: 1,
            sha256: "0".repeat(64),
            content_type: "text/plain".into(),
            description: String::new(),
            created_at: 0,
            modified_at: 0,
        }
    }

    fn add_user(conn: &Connection, id: &str) {
        conn.execute(
            "INSERT INTO users (id, username, username_key, password_hash, role, created_at)
             VALUES (?1, ?1, ?1, 'x', 'user', 0)",
            [id],
        )
        .unwrap();
    }

    #[test]
    fn every_change_to_files_and_grants_is_recorded_including_a_users_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.db");
        drop(Db::open(&path, std::time::Duration::from_secs(1), 1).unwrap());
        let mut conn = crate::db::connect(&path, std::time::Duration::from_secs(1)).unwrap();
        add_user(&conn, "alice");
        add_user(&conn, "bob");
        files::insert(&conn, &file("f1", "alice")).unwrap();
        files::insert(&conn, &file("f2", "bob")).unwrap();
        files::grant(&conn, &FileId("f1".into()), &UserId("bob".into()), 0).unwrap();
        let name = crate::domain::FileName::parse("new.txt").unwrap();
        files::rename(&conn, &FileId("f1".into()), &crate::domain::FolderPath::parse("").unwrap(), &name, 1).unwrap();
        let logged = |conn: &Connection, after| {
            changes_after(conn, after, 100).unwrap().into_iter().map(|(_, id)| id.0).collect::<Vec<_>>()
        };
        assert_eq!(logged(&conn, 0), ["f1", "f2", "f1", "f1"]);
        let mark = last_seq(&conn).unwrap();
        assert_eq!(version(&conn, &FileId("f1".into())).unwrap(), mark);

        // Deleting bob removes his file and his grant on f1 through ON DELETE CASCADE.
        conn.execute("DELETE FROM users WHERE id = 'bob'", []).unwrap();
        let mut after = logged(&conn, mark);
        after.sort();
        assert_eq!(after, ["f1", "f2"]);
        assert_eq!(file_doc(&conn, &FileId("f1".into())).unwrap().unwrap().readers, ["alice"]);
        assert!(file_doc(&conn, &FileId("f2".into())).unwrap().is_none());

        let last = last_seq(&conn).unwrap();
        prune(&mut conn, last, &[FileId("f2".into())]).unwrap();
        assert_eq!(pending_after(&conn, 0).unwrap(), 0);
        assert_eq!(last_seq(&conn).unwrap(), last, "a pruned seq is never handed out again");
        assert_eq!(version(&conn, &FileId("f2".into())).unwrap(), 0, "a gone file's version is dropped");
        assert!(
            version(&conn, &FileId("f1".into())).unwrap() > mark,
            "the lost grant made f1's earlier documents stale"
        );
    }
}
