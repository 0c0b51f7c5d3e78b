//! The `files` and `file_grants` tables.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::DbError;
use crate::domain::{FileId, FileName, FolderPath, UserId};

#[derive(Clone, Debug)]
pub struct FileRow {
    pub id: FileId,
    pub owner_id: UserId,
    pub folder: String,
    pub name: String,
    pub size: i64,
    pub sha256: String,
    pub content_type: String,
    pub description: String,
    pub created_at: i64,
    pub modified_at: i64,
}

const COLUMNS: &str = "id, owner_id, folder, name, size, sha256, content_type, description, created_at, modified_at";

pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<FileRow> {
    Ok(FileRow {
        id: FileId(row.get(0)?),
        owner_id: UserId(row.get(1)?),
        folder: row.get(2)?,
        name: row.get(3)?,
        size: row.get(4)?,
        sha256: row.get(5)?,
        content_type: row.get(6)?,
        description: row.get(7)?,
        created_at: row.get(8)?,
        modified_at: row.get(9)?,
    })
}

pub fn by_id(conn: &Connection, id: &FileId) -> Result<Option<FileRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM files WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([&id.0], from_row).optional()?)
}

pub fn by_name(
    conn: &Connection,
    owner: &UserId,
    folder: &FolderPath,
    name: &FileName,
) -> Result<Option<FileRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM files WHERE owner_id = ?1 AND folder = ?2 AND name = ?3");
    Ok(conn.query_row(&sql, params![owner.0, folder.as_str(), name.as_str()], from_row).optional()?)
}

/// Bytes a user's files take against the quota: each file's size (not each blob: two files
/// with the same contents count twice) plus the bytes of its description.
///
/// Unfinished resumable uploads count with what they reserved at creation, so neither plain
/// uploads nor other resumable ones can take the quota they were promised.
pub fn used_bytes(conn: &Connection, owner: &UserId) -> Result<i64, DbError> {
    Ok(conn.query_row(
        "SELECT coalesce((SELECT sum(size + length(CAST(description AS BLOB))) FROM files WHERE owner_id = ?1), 0)
              + coalesce((SELECT sum(reserved_bytes) FROM uploads WHERE owner_id = ?1 AND file_id IS NULL), 0)",
        [&owner.0],
        |row| row.get(0),
    )?)
}

pub fn insert(conn: &Connection, file: &FileRow) -> Result<(), DbError> {
    conn.execute(
        &format!("INSERT INTO files ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        params![
            file.id.0,
            file.owner_id.0,
            file.folder,
            file.name,
            file.size,
            file.sha256,
            file.content_type,
            file.description,
            file.created_at,
            file.modified_at
        ],
    )?;
    Ok(())
}

/// Points an existing file at new contents (`on_conflict=replace`).
pub fn replace_contents(
    conn: &Connection,
    id: &FileId,
    size: i64,
    sha256: &str,
    content_type: &str,
    now: i64,
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE files SET size = ?2, sha256 = ?3, content_type = ?4, modified_at = ?5 WHERE id = ?1",
        params![id.0, size, sha256, content_type, now],
    )?;
    Ok(())
}

/// Renames or moves a file; `Ok(false)` when the target name is taken.
pub fn rename(conn: &Connection, id: &FileId, folder: &FolderPath, name: &FileName, now: i64) -> Result<bool, DbError> {
    let changed = conn.execute(
        "UPDATE OR IGNORE files SET folder = ?2, name = ?3, modified_at = ?4 WHERE id = ?1",
        params![id.0, folder.as_str(), name.as_str(), now],
    )?;
    Ok(changed == 1)
}

pub fn set_description(conn: &Connection, id: &FileId, description: &str, now: i64) -> Result<(), DbError> {
    conn.execute("UPDATE files SET description = ?2, modified_at = ?3 WHERE id = ?1", params![id.0, description, now])?;
    Ok(())
}

pub fn delete(conn: &Connection, id: &FileId) -> Result<bool, DbError> {
    Ok(conn.execute("DELETE FROM files WHERE id = ?1", [&id.0])? == 1)
}

/// Sort orders for listing; keyset pagination continues after (key, id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    Name,
    Created,
}

pub enum Cursor {
    Name(String, String),
    Created(i64, String),
}

/// One page of the files directly in `folder`.
pub fn list_folder(
    conn: &Connection,
    owner: &UserId,
    folder: &FolderPath,
    sort: SortBy,
    after: Option<&Cursor>,
    limit: u32,
) -> Result<Vec<FileRow>, DbError> {
    let (order, condition) = match sort {
        SortBy::Name => ("name, id", "(name, id) > (?3, ?4)"),
        SortBy::Created => ("created_at, id", "(created_at, id) > (?3, ?4)"),
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM files WHERE owner_id = ?1 AND folder = ?2 AND (?5 OR {condition}) ORDER BY {order} LIMIT ?6"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let (key, id, first): (rusqlite::types::Value, String, bool) = match after {
        None => (rusqlite::types::Value::Null, String::new(), true),
        Some(Cursor::Name(name, id)) => (name.clone().into(), id.clone(), false),
        Some(Cursor::Created(at, id)) => ((*at).into(), id.clone(), false),
    };
    let rows = statement.query_map(params![owner.0, folder.as_str(), key, id, first, limit], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Names of the folders directly inside `folder`: those holding files (at any depth) and
/// those a user made (`folders`).
pub fn subfolders(conn: &Connection, owner: &UserId, folder: &FolderPath) -> Result<Vec<String>, DbError> {
    let prefix = if folder.is_root() { String::new() } else { format!("{}/", folder.as_str()) };
    let mut names: Vec<String> = Vec::new();
    let mut add = |path: &str| {
        let first = path[prefix.len()..].split('/').next().unwrap_or_default();
        if !first.is_empty() && !names.iter().any(|name| name == first) {
            names.push(first.to_owned());
        }
    };
    // One index seek per subfolder, jumping over each one's subtree, instead of reading every
    // file of the owner: a listing costs the same with ten files or a million in subfolders.
    // In byte order a subtree `a/...` comes after every sibling that extends `a` with a
    // character before `/` (`a-x`, `a.b`), and ends before `a0`.
    // (bound, whether the bound itself is excluded)
    let mut bound = (prefix.clone(), true);
    loop {
        let sql = if bound.1 {
            "SELECT folder FROM files WHERE owner_id = ?1 AND folder > ?2 ORDER BY folder LIMIT 1"
        } else {
            "SELECT folder FROM files WHERE owner_id = ?1 AND folder >= ?2 ORDER BY folder LIMIT 1"
        };
        let found = conn.prepare_cached(sql)?.query_row(params![owner.0, bound.0], |row| row.get::<_, String>(0));
        let Some(found) = found.optional()? else { break };
        if !found.starts_with(&prefix) {
            break;
        }
        add(&found);
        let first = found[prefix.len()..].split('/').next().unwrap_or_default();
        bound =
            if found.len() > prefix.len() + first.len() { (format!("{prefix}{first}0"), false) } else { (found, true) };
    }
    let mut explicit = conn.prepare_cached(
        "SELECT path FROM folders WHERE owner_id = ?1 AND path != ?3 AND substr(path, 1, length(?2)) = ?2",
    )?;
    let rows = explicit.query_map(params![owner.0, prefix, folder.as_str()], |row| row.get::<_, String>(0))?;
    for path in rows {
        add(&path?);
    }
    names.sort();
    Ok(names)
}

/// Files other users granted `user` read access to, by name.
pub fn shared_with(conn: &Connection, user: &UserId, limit: u32) -> Result<Vec<FileRow>, DbError> {
    let columns = COLUMNS.split(", ").map(|column| format!("f.{column}")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT {columns} FROM files f JOIN file_grants g ON g.file_id = f.id WHERE g.user_id = ?1 ORDER BY f.name, f.id LIMIT ?2"
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(params![user.0, limit], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn has_grant(conn: &Connection, file: &FileId, user: &UserId) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM file_grants WHERE file_id = ?1 AND user_id = ?2")?
        .query_row(params![file.0, user.0], |_| Ok(()))
        .optional()?
        .is_some())
}

pub fn grant(conn: &Connection, file: &FileId, user: &UserId, now: i64) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO file_grants (file_id, user_id, granted_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![file.0, user.0, now],
    )?;
    Ok(())
}

pub fn revoke_grant(conn: &Connection, file: &FileId, user: &UserId) -> Result<bool, DbError> {
    Ok(conn.execute("DELETE FROM file_grants WHERE file_id = ?1 AND user_id = ?2", params![file.0, user.0])? == 1)
}

/// (user id, username, granted at) for each grant on a file.
pub fn grants(conn: &Connection, file: &FileId) -> Result<Vec<(String, String, i64)>, DbError> {
    let mut statement = conn.prepare(
        "SELECT u.id, u.username, g.granted_at FROM file_grants g JOIN users u ON u.id = g.user_id
         WHERE g.file_id = ?1 ORDER BY u.username_key",
    )?;
    let rows = statement.query_map([&file.0], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Calls `each` with every file row, in id order.
pub fn for_each(conn: &Connection, mut each: impl FnMut(FileRow)) -> Result<(), DbError> {
    let mut statement = conn.prepare(&format!("SELECT {COLUMNS} FROM files ORDER BY id"))?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        each(from_row(row)?);
    }
    Ok(())
}

/// Every blob hash some file row references.
pub fn referenced_blobs(conn: &Connection) -> Result<std::collections::HashSet<String>, DbError> {
    let mut statement = conn.prepare("SELECT DISTINCT sha256 FROM files")?;
    let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A file row as `coffer check` and backup verification see it: what to find in the blob
/// store, and how to name the file and its owner to an admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentRef {
    pub id: String,
    pub sha256: String,
    pub size: i64,
    pub owner: String,
    /// `folder/name`.
    pub path: String,
}

impl std::fmt::Display for ContentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "file {} {:?} of {}", self.id, self.path, self.owner)
    }
}

/// Every file row with its owner's username, in blob order.
pub fn content_refs(conn: &Connection) -> Result<Vec<ContentRef>, DbError> {
    let mut statement = conn.prepare(
        "SELECT f.id, f.sha256, f.size, coalesce(u.username, f.owner_id), f.folder, f.name
         FROM files f LEFT JOIN users u ON u.id = f.owner_id ORDER BY f.sha256, f.id",
    )?;
    let rows = statement.query_map([], |row| {
        let folder: String = row.get(4)?;
        let name: String = row.get(5)?;
        Ok(ContentRef {
            id: row.get(0)?,
            sha256: row.get(1)?,
            size: row.get(2)?,
            owner: row.get(3)?,
            path: if folder.is_empty() { name } else { format!("{folder}/{name}") },
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Whether any file row references the blob (inside the collector's write transaction).
pub fn is_referenced(conn: &Connection, sha256: &str) -> Result<bool, DbError> {
    Ok(conn.query_row("SELECT 1 FROM files WHERE sha256 = ?1 LIMIT 1", [sha256], |_| Ok(())).optional()?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subfolders_are_each_first_component_once_including_names_around_the_slash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.db");
        drop(crate::db::Db::open(&path, std::time::Duration::from_secs(1), 1).unwrap());
        let conn = crate::db::connect(&path, std::time::Duration::from_secs(1)).unwrap();
        conn.execute(
            "INSERT INTO users (id, username, username_key, password_hash, role, created_at)
             VALUES ('u', 'u', 'u', 'x', 'user', 0)",
            [],
        )
        .unwrap();
        // `a-x` and `a.b` sort between `a` and `a/...`; `a0` right after the subtree of `a`.
        let folders = ["", "a", "a-x", "a.b", "a/b", "a/b/c", "a/z", "a0", "b/c/d", "é"];
        for (index, folder) in folders.iter().enumerate() {
            let row = FileRow {
                id: FileId(format!("f{index}")),
                owner_id: UserId("u".into()),
                folder: (*folder).into(),
                name: "n.txt".into(),
                size: 1,
                sha256: "0".repeat(64),
                content_type: "text/plain".into(),
                description: String::new(),
                created_at: 0,
                modified_at: 0,
            };
            insert(&conn, &row).unwrap();
        }
        let owner = UserId("u".into());
        let list = |folder: &str| subfolders(&conn, &owner, &FolderPath::parse(folder).unwrap()).unwrap();
        assert_eq!(list(""), ["a", "a-x", "a.b", "a0", "b", "é"]);
        assert_eq!(list("a"), ["b", "z"]);
        assert_eq!(list("a/b"), ["c"]);
        assert_eq!(list("b"), ["c"]);
        assert!(list("a-x").is_empty());
        assert!(list("nothing").is_empty());
    }
}
