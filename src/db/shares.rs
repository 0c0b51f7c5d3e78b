//! The `shares` table: public links to one file, a list of files or a folder, with the files
//! of list shares (`share_files`) and the per-file counts of multi-file shares
//! (`share_file_downloads`).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::DbError;
use crate::domain::{FileId, UserId};

#[derive(Clone, Debug)]
pub struct ShareRow {
    pub id: String,
    pub token_hash: Vec<u8>,
    pub sealed_token: Vec<u8>,
    /// The one file of a single-file share; `None` for a list or a folder.
    pub file_id: Option<FileId>,
    pub owner_id: UserId,
    pub created_at: i64,
    pub expires_at: i64,
    pub password_hash: Option<String>,
    pub password_version: i64,
    pub max_downloads: Option<i64>,
    pub downloads: i64,
    pub last_access_at: Option<i64>,
    pub note: String,
    pub disabled: bool,
    /// Page views (and body-less probes), counted in batches.
    pub views: i64,
    /// Mail the owner at each counted download.
    pub notify_downloads: bool,
    /// What the link holds.
    pub contents: Contents,
}

/// What a share holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contents {
    /// The file `file_id`.
    File,
    /// The owner's files named in `share_files` (those still there).
    Files(Vec<FileId>),
    /// Everything below this folder of the owner's, at download time.
    Folder(String),
}

impl Contents {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Files(_) => "files",
            Self::Folder(_) => "folder",
        }
    }
}

/// A share with what the owner's listing shows of its file and the owner's standing.
#[derive(Clone, Debug)]
pub struct ShareEntry {
    pub share: ShareRow,
    /// The file's name; for a multi-file share, the folder's last segment or "N files".
    pub file_name: String,
    /// The file's size, or the sum of a multi-file share's files.
    pub file_size: i64,
    pub owner_disabled: bool,
    /// Files the link holds now (1 for a single-file share).
    pub file_count: i64,
    /// Of those, files with downloads left (multi-file shares count per file).
    pub files_left: i64,
}

/// The files a multi-file share `s` holds, as a condition on `g` (a row of `files`): the owner's
/// own files, named in `share_files` or lying at or below the shared folder.
pub const MEMBER: &str = "g.owner_id = s.owner_id AND (g.id IN (SELECT file_id FROM share_files WHERE share_id = s.id) \
     OR (s.folder IS NOT NULL AND (g.folder = s.folder OR substr(g.folder, 1, length(s.folder) + 1) = s.folder || '/')))";

fn columns() -> String {
    format!(
        "s.id, s.token_hash, s.sealed_token, s.file_id, s.owner_id, s.created_at, s.expires_at, \
         s.password_hash, s.password_version, s.max_downloads, s.downloads, s.last_access_at, s.note, s.disabled, \
         f.name, f.size, u.disabled, s.views, s.notify_downloads, s.kind, s.folder, \
         {count}, {bytes}, {left}, \
         (SELECT group_concat(file_id, '/') FROM share_files WHERE share_id = s.id)",
        count = over_members("count(*)", "", ""),
        bytes = over_members("coalesce(sum(g.size), 0)", "", ""),
        left = over_members(
            "count(*)",
            "LEFT JOIN share_file_downloads d ON d.share_id = s.id AND d.file_id = g.id",
            "AND (s.max_downloads IS NULL OR coalesce(d.downloads, 0) < s.max_downloads)"
        ),
    )
}

/// `what` over the share's member files (as [`MEMBER`] has them), `join`ed and filtered by
/// `filter`. A share without a folder is driven from its listed files, so looking up a
/// single file's or a few files' link costs the same however many files the owner has; only
/// a folder link looks through the owner's files.
fn over_members(what: &str, join: &str, filter: &str) -> String {
    format!(
        "CASE WHEN s.folder IS NULL \
         THEN (SELECT {what} FROM share_files sf JOIN files g ON g.id = sf.file_id {join} \
               WHERE sf.share_id = s.id AND g.owner_id = s.owner_id {filter}) \
         ELSE (SELECT {what} FROM files g {join} WHERE {MEMBER} {filter}) END"
    )
}

const FROM: &str = "FROM shares s LEFT JOIN files f ON f.id = s.file_id JOIN users u ON u.id = s.owner_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<ShareEntry> {
    let kind: String = row.get(19)?;
    let folder: Option<String> = row.get(20)?;
    let listed: Option<String> = row.get(24)?;
    let contents = match (kind.as_str(), folder) {
        ("folder", Some(folder)) => Contents::Folder(folder),
        ("files", _) => {
            let mut ids: Vec<FileId> = listed
                .unwrap_or_default()
                .split('/')
                .filter(|id| !id.is_empty())
                .map(|id| FileId(id.to_owned()))
                .collect();
            ids.sort_by(|a, b| a.0.cmp(&b.0));
            Contents::Files(ids)
        }
        _ => Contents::File,
    };
    let single = contents == Contents::File;
    let (count, bytes, left): (i64, i64, i64) = (row.get(21)?, row.get(22)?, row.get(23)?);
    let name: Option<String> = row.get(14)?;
    let file_name = match (&contents, name) {
        (Contents::File, name) => name.unwrap_or_default(),
        (Contents::Folder(folder), _) => folder.rsplit('/').next().unwrap_or_default().to_owned(),
        (Contents::Files(_), _) => format!("{count} files"),
    };
    Ok(ShareEntry {
        share: ShareRow {
            id: row.get(0)?,
            token_hash: row.get(1)?,
            sealed_token: row.get(2)?,
            file_id: row.get::<_, Option<String>>(3)?.map(FileId),
            owner_id: UserId(row.get(4)?),
            created_at: row.get(5)?,
            expires_at: row.get(6)?,
            password_hash: row.get(7)?,
            password_version: row.get(8)?,
            max_downloads: row.get(9)?,
            downloads: row.get(10)?,
            last_access_at: row.get(11)?,
            note: row.get(12)?,
            disabled: row.get(13)?,
            views: row.get(17)?,
            notify_downloads: row.get(18)?,
            contents,
        },
        file_name,
        file_size: if single { row.get::<_, Option<i64>>(15)?.unwrap_or_default() } else { bytes },
        owner_disabled: row.get(16)?,
        file_count: if single { 1 } else { count },
        files_left: if single { 1 } else { left },
    })
}

pub fn insert(conn: &Connection, share: &ShareRow) -> Result<(), DbError> {
    let folder = match &share.contents {
        Contents::Folder(folder) => Some(folder.as_str()),
        _ => None,
    };
    conn.execute(
        "INSERT INTO shares (id, token_hash, sealed_token, file_id, owner_id, created_at, expires_at, password_hash,
             password_version, max_downloads, downloads, last_access_at, note, disabled, notify_downloads, kind, folder)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            share.id,
            share.token_hash,
            share.sealed_token,
            share.file_id.as_ref().map(|id| &id.0),
            share.owner_id.0,
            share.created_at,
            share.expires_at,
            share.password_hash,
            share.password_version,
            share.max_downloads,
            share.downloads,
            share.last_access_at,
            share.note,
            share.disabled,
            share.notify_downloads,
            share.contents.kind(),
            folder,
        ],
    )?;
    if let Contents::Files(ids) = &share.contents {
        let mut statement = conn.prepare("INSERT INTO share_files (share_id, file_id) VALUES (?1, ?2)")?;
        for id in ids {
            statement.execute(params![share.id, id.0])?;
        }
    }
    Ok(())
}

pub fn by_id(conn: &Connection, id: &str) -> Result<Option<ShareEntry>, DbError> {
    let sql = format!("SELECT {} {FROM} WHERE s.id = ?1", columns());
    Ok(conn.query_row(&sql, [id], from_row).optional()?)
}

pub fn by_token_hash(conn: &Connection, hash: &[u8]) -> Result<Option<ShareEntry>, DbError> {
    let sql = format!("SELECT {} {FROM} WHERE s.token_hash = ?1", columns());
    Ok(conn.prepare_cached(&sql)?.query_row([hash], from_row).optional()?)
}

/// Newest first, continuing after `(created_at, id)`; `owner = None` lists everyone's.
pub fn list(
    conn: &Connection,
    owner: Option<&UserId>,
    after: Option<(i64, String)>,
    limit: u32,
) -> Result<Vec<ShareEntry>, DbError> {
    let (after_at, after_id) = after.unwrap_or((i64::MAX, String::new()));
    let sql = format!(
        "SELECT {columns} {FROM}
         WHERE (?1 IS NULL OR s.owner_id = ?1)
           AND (s.created_at < ?2 OR (s.created_at = ?2 AND s.id < ?3) OR ?3 = '')
         ORDER BY s.created_at DESC, s.id DESC LIMIT ?4",
        columns = columns()
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(params![owner.map(|owner| &owner.0), after_at, after_id, limit], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Writes the settings an owner can change.
pub fn update_settings(conn: &Connection, share: &ShareRow) -> Result<(), DbError> {
    conn.execute(
        "UPDATE shares SET expires_at = ?2, password_hash = ?3, password_version = ?4, max_downloads = ?5,
             note = ?6, disabled = ?7, notify_downloads = ?8
         WHERE id = ?1",
        params![
            share.id,
            share.expires_at,
            share.password_hash,
            share.password_version,
            share.max_downloads,
            share.note,
            share.disabled,
            share.notify_downloads,
        ],
    )?;
    Ok(())
}

pub fn delete(conn: &Connection, id: &str) -> Result<bool, DbError> {
    Ok(conn.execute("DELETE FROM shares WHERE id = ?1", [id])? == 1)
}

/// Counts one download if the limit allows it; false when the share is used up. One
/// statement, so concurrent downloads can never count past the limit.
pub fn take_download(conn: &Connection, id: &str, now: i64) -> Result<bool, DbError> {
    let changed = conn.execute(
        "UPDATE shares SET downloads = downloads + 1, last_access_at = ?2
         WHERE id = ?1 AND (max_downloads IS NULL OR downloads < max_downloads)",
        params![id, now],
    )?;
    Ok(changed == 1)
}

/// The files a multi-file share holds now, by folder and name.
pub fn members(conn: &Connection, id: &str) -> Result<Vec<crate::db::files::FileRow>, DbError> {
    let sql = format!(
        "SELECT g.id, g.owner_id, g.folder, g.name, g.size, g.sha256, g.content_type, g.description, g.created_at, \
             g.modified_at
         FROM shares s JOIN files g ON {MEMBER} WHERE s.id = ?1 ORDER BY g.folder, g.name, g.id"
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map([id], crate::db::files::from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Whether multi-file share `id` holds the file `file` now.
pub fn holds(conn: &Connection, id: &str, file: &FileId) -> Result<bool, DbError> {
    let sql = format!("SELECT EXISTS (SELECT 1 FROM shares s JOIN files g ON {MEMBER} WHERE s.id = ?1 AND g.id = ?2)");
    Ok(conn.query_row(&sql, params![id, file.0], |row| row.get(0))?)
}

/// Takes one download of each of `files` (of multi-file share `id`) if every one has a download
/// left, and counts one download of the share; false, counting nothing, when any is used up.
/// One transaction (the caller's), so concurrent downloads can never count past the limit.
pub fn take_file_downloads(conn: &Connection, id: &str, files: &[FileId], now: i64) -> Result<bool, DbError> {
    let max: Option<i64> =
        conn.query_row("SELECT max_downloads FROM shares WHERE id = ?1", [id], |row| row.get(0)).optional()?.flatten();
    let mut count = conn.prepare("SELECT downloads FROM share_file_downloads WHERE share_id = ?1 AND file_id = ?2")?;
    if let Some(max) = max {
        for file in files {
            let taken: Option<i64> = count.query_row(params![id, file.0], |row| row.get(0)).optional()?;
            if taken.unwrap_or(0) >= max {
                return Ok(false);
            }
        }
    }
    let mut take = conn.prepare(
        "INSERT INTO share_file_downloads (share_id, file_id, downloads) VALUES (?1, ?2, 1)
         ON CONFLICT (share_id, file_id) DO UPDATE SET downloads = downloads + 1",
    )?;
    for file in files {
        take.execute(params![id, file.0])?;
    }
    conn.execute("UPDATE shares SET downloads = downloads + 1, last_access_at = ?2 WHERE id = ?1", params![id, now])?;
    Ok(true)
}

/// Downloads taken of each file of a multi-file share, by file id.
pub fn file_downloads(conn: &Connection, id: &str) -> Result<std::collections::HashMap<String, i64>, DbError> {
    let mut statement = conn.prepare("SELECT file_id, downloads FROM share_file_downloads WHERE share_id = ?1")?;
    let rows = statement.query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Adds a batch of page views.
pub fn add_views(conn: &Connection, id: &str, views: u64, last_at: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE shares SET views = views + ?2, last_access_at = max(coalesce(last_access_at, 0), ?3) WHERE id = ?1",
        params![id, i64::try_from(views).unwrap_or(i64::MAX), last_at],
    )?;
    Ok(())
}

pub fn touch(conn: &Connection, id: &str, now: i64) -> Result<(), DbError> {
    conn.execute("UPDATE shares SET last_access_at = ?2 WHERE id = ?1", params![id, now])?;
    Ok(())
}
