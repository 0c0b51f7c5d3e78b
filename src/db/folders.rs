//! The `folders` table, and folder-wide operations on `files`.
//!
//! A folder exists while a file lies in it or below it, or while it has a row here (a folder a
//! user made, which may be empty). Paths are `/`-separated, without leading or trailing `/`.

use rusqlite::{Connection, params};

use super::DbError;
use crate::domain::{FolderPath, UserId};

/// `path` itself or anything below it, for a column `column` (SQL; `?2` is the path).
fn within(column: &str) -> String {
    format!("({column} = ?2 OR substr({column}, 1, length(?2) + 1) = ?2 || '/')")
}

/// Whether the folder exists (made, or holding files at any depth).
pub fn exists(conn: &Connection, owner: &UserId, path: &FolderPath) -> Result<bool, DbError> {
    if path.is_root() {
        return Ok(true);
    }
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM folders WHERE owner_id = ?1 AND {})
             OR EXISTS (SELECT 1 FROM files WHERE owner_id = ?1 AND {})",
        within("path"),
        within("folder")
    );
    Ok(conn.query_row(&sql, params![owner.0, path.as_str()], |row| row.get(0))?)
}

/// Records a folder the user made; `false` when a row for it is already there.
pub fn create(conn: &Connection, owner: &UserId, path: &FolderPath, now: i64) -> Result<bool, DbError> {
    let changed = conn.execute(
        "INSERT INTO folders (owner_id, path, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![owner.0, path.as_str(), now],
    )?;
    Ok(changed == 1)
}

/// Every folder path at or below `path` (made ones and those of files), for checking a move.
pub fn paths_within(conn: &Connection, owner: &UserId, path: &FolderPath) -> Result<Vec<String>, DbError> {
    let sql = format!(
        "SELECT path FROM folders WHERE owner_id = ?1 AND {}
         UNION SELECT DISTINCT folder FROM files WHERE owner_id = ?1 AND {}",
        within("path"),
        within("folder")
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(params![owner.0, path.as_str()], |row| row.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Moves a folder with everything in it to `to` (which must not exist); returns how many files
/// moved. The caller's transaction makes it all-or-nothing.
pub fn relocate(
    conn: &Connection,
    owner: &UserId,
    from: &FolderPath,
    to: &FolderPath,
    now: i64,
) -> Result<usize, DbError> {
    let moved = conn.execute(
        &format!(
            "UPDATE files SET folder = ?3 || substr(folder, length(?2) + 1), modified_at = ?4
             WHERE owner_id = ?1 AND {}",
            within("folder")
        ),
        params![owner.0, from.as_str(), to.as_str(), now],
    )?;
    conn.execute(
        &format!(
            "UPDATE folders SET path = ?3 || substr(path, length(?2) + 1) WHERE owner_id = ?1 AND {}",
            within("path")
        ),
        params![owner.0, from.as_str(), to.as_str()],
    )?;
    // Links to the folder or to one below it follow it.
    conn.execute(
        &format!(
            "UPDATE shares SET folder = ?3 || substr(folder, length(?2) + 1)
             WHERE owner_id = ?1 AND kind = 'folder' AND {}",
            within("folder")
        ),
        params![owner.0, from.as_str(), to.as_str()],
    )?;
    // So do upload links: strangers' files must not land at the old path, where a folder of
    // the same name may later be made for something else.
    conn.execute(
        &format!(
            "UPDATE upload_links SET folder = ?3 || substr(folder, length(?2) + 1) WHERE owner_id = ?1 AND {}",
            within("folder")
        ),
        params![owner.0, from.as_str(), to.as_str()],
    )?;
    Ok(moved)
}

/// How many files lie in the folder or below it.
pub fn file_count(conn: &Connection, owner: &UserId, path: &FolderPath) -> Result<i64, DbError> {
    let sql = format!("SELECT count(*) FROM files WHERE owner_id = ?1 AND {}", within("folder"));
    Ok(conn.query_row(&sql, params![owner.0, path.as_str()], |row| row.get(0))?)
}

/// Deletes a folder, the folders in it and every file in them (their grants and share links
/// go with them), with the links to those folders and the upload links into them; returns how
/// many files were deleted.
pub fn remove(conn: &Connection, owner: &UserId, path: &FolderPath) -> Result<usize, DbError> {
    let deleted = conn.execute(
        &format!("DELETE FROM files WHERE owner_id = ?1 AND {}", within("folder")),
        params![owner.0, path.as_str()],
    )?;
    // A link to a folder names it by path: left behind, it would serve any folder made later
    // under the same name. The same holds for upload links, which would fill it.
    conn.execute(
        &format!("DELETE FROM shares WHERE owner_id = ?1 AND kind = 'folder' AND {}", within("folder")),
        params![owner.0, path.as_str()],
    )?;
    conn.execute(
        &format!("DELETE FROM upload_links WHERE owner_id = ?1 AND {}", within("folder")),
        params![owner.0, path.as_str()],
    )?;
    conn.execute(
        &format!("DELETE FROM folders WHERE owner_id = ?1 AND {}", within("path")),
        params![owner.0, path.as_str()],
    )?;
    Ok(deleted)
}
