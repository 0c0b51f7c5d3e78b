//! The `shares` table: public links to files.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::DbError;
use crate::domain::{FileId, UserId};

#[derive(Clone, Debug)]
pub struct ShareRow {
    pub id: String,
    pub token_hash: Vec<u8>,
    pub sealed_token: Vec<u8>,
    pub file_id: FileId,
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
}

/// A share with what the owner's listing shows of its file and the owner's standing.
#[derive(Clone, Debug)]
pub struct ShareEntry {
    pub share: ShareRow,
    pub file_name: String,
    pub file_size: i64,
    pub owner_disabled: bool,
}

const COLUMNS: &str = "s.id, s.token_hash, s.sealed_token, s.file_id, s.owner_id, s.created_at, s.expires_at, \
     s.password_hash, s.password_version, s.max_downloads, s.downloads, s.last_access_at, s.note, s.disabled, \
     f.name, f.size, u.disabled, s.views, s.notify_downloads";

const FROM: &str = "FROM shares s JOIN files f ON f.id = s.file_id JOIN users u ON u.id = s.owner_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<ShareEntry> {
    Ok(ShareEntry {
        share: ShareRow {
            id: row.get(0)?,
            token_hash: row.get(1)?,
            sealed_token: row.get(2)?,
            file_id: FileId(row.get(3)?),
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
        },
        file_name: row.get(14)?,
        file_size: row.get(15)?,
        owner_disabled: row.get(16)?,
    })
}

pub fn insert(conn: &Connection, share: &ShareRow) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO shares (id, token_hash, sealed_token, file_id, owner_id, created_at, expires_at, password_hash,
             password_version, max_downloads, downloads, last_access_at, note, disabled, notify_downloads)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            share.id,
            share.token_hash,
            share.sealed_token,
            share.file_id.0,
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
        ],
    )?;
    Ok(())
}

pub fn by_id(conn: &Connection, id: &str) -> Result<Option<ShareEntry>, DbError> {
    let sql = format!("SELECT {COLUMNS} {FROM} WHERE s.id = ?1");
    Ok(conn.query_row(&sql, [id], from_row).optional()?)
}

pub fn by_token_hash(conn: &Connection, hash: &[u8]) -> Result<Option<ShareEntry>, DbError> {
    let sql = format!("SELECT {COLUMNS} {FROM} WHERE s.token_hash = ?1");
    Ok(conn.query_row(&sql, [hash], from_row).optional()?)
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
        "SELECT {COLUMNS} {FROM}
         WHERE (?1 IS NULL OR s.owner_id = ?1)
           AND (s.created_at < ?2 OR (s.created_at = ?2 AND s.id < ?3) OR ?3 = '')
         ORDER BY s.created_at DESC, s.id DESC LIMIT ?4"
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
