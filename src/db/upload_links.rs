//! The `upload_links` table: links through which people without an account upload files into
//! one of the owner's folders.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::DbError;
use crate::domain::UserId;

#[derive(Clone, Debug)]
pub struct UploadLinkRow {
    pub id: String,
    pub token_hash: Vec<u8>,
    pub sealed_token: Vec<u8>,
    pub owner_id: UserId,
    pub folder: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub password_hash: Option<String>,
    /// Raised at each password change; unlock cookies name the version they were made for.
    pub password_version: i64,
    pub max_files: i64,
    pub max_total_bytes: i64,
    pub max_file_bytes: i64,
    pub files_received: i64,
    pub bytes_received: i64,
    pub note: String,
    /// Mail the owner at each file received.
    pub notify_uploads: bool,
    pub disabled: bool,
    pub last_upload_at: Option<i64>,
}

/// A link with its owner's standing.
#[derive(Clone, Debug)]
pub struct UploadLinkEntry {
    pub link: UploadLinkRow,
    pub owner_disabled: bool,
}

const COLUMNS: &str = "l.id, l.token_hash, l.sealed_token, l.owner_id, l.folder, l.created_at, l.expires_at, \
     l.password_hash, l.password_version, l.max_files, l.max_total_bytes, l.max_file_bytes, l.files_received, \
     l.bytes_received, l.note, l.notify_uploads, l.disabled, l.last_upload_at, u.disabled";

const FROM: &str = "FROM upload_links l JOIN users u ON u.id = l.owner_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<UploadLinkEntry> {
    Ok(UploadLinkEntry {
        link: UploadLinkRow {
            id: row.get(0)?,
            token_hash: row.get(1)?,
            sealed_token: row.get(2)?,
            owner_id: UserId(row.get(3)?),
            folder: row.get(4)?,
            created_at: row.get(5)?,
            expires_at: row.get(6)?,
            password_hash: row.get(7)?,
            password_version: row.get(8)?,
            max_files: row.get(9)?,
            max_total_bytes: row.get(10)?,
            max_file_bytes: row.get(11)?,
            files_received: row.get(12)?,
            bytes_received: row.get(13)?,
            note: row.get(14)?,
            notify_uploads: row.get(15)?,
            disabled: row.get(16)?,
            last_upload_at: row.get(17)?,
        },
        owner_disabled: row.get(18)?,
    })
}

pub fn insert(conn: &Connection, link: &UploadLinkRow) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO upload_links (id, token_hash, sealed_token, owner_id, folder, created_at, expires_at,
             password_hash, password_version, max_files, max_total_bytes, max_file_bytes, files_received,
             bytes_received, note, notify_uploads, disabled, last_upload_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        params![
            link.id,
            link.token_hash,
            link.sealed_token,
            link.owner_id.0,
            link.folder,
            link.created_at,
            link.expires_at,
            link.password_hash,
            link.password_version,
            link.max_files,
            link.max_total_bytes,
            link.max_file_bytes,
            link.files_received,
            link.bytes_received,
            link.note,
            link.notify_uploads,
            link.disabled,
            link.last_upload_at,
        ],
    )?;
    Ok(())
}

/// Writes what an owner may change; the counters are left alone.
pub fn update_settings(conn: &Connection, link: &UploadLinkRow) -> Result<(), DbError> {
    conn.execute(
        "UPDATE upload_links SET expires_at = ?2, password_hash = ?3, password_version = ?4, max_files = ?5,
             max_total_bytes = ?6, max_file_bytes = ?7, note = ?8, notify_uploads = ?9, disabled = ?10
         WHERE id = ?1",
        params![
            link.id,
            link.expires_at,
            link.password_hash,
            link.password_version,
            link.max_files,
            link.max_total_bytes,
            link.max_file_bytes,
            link.note,
            link.notify_uploads,
            link.disabled,
        ],
    )?;
    Ok(())
}

pub fn by_id(conn: &Connection, id: &str) -> Result<Option<UploadLinkEntry>, DbError> {
    Ok(conn.query_row(&format!("SELECT {COLUMNS} {FROM} WHERE l.id = ?1"), [id], from_row).optional()?)
}

pub fn by_token_hash(conn: &Connection, hash: &[u8]) -> Result<Option<UploadLinkEntry>, DbError> {
    Ok(conn.query_row(&format!("SELECT {COLUMNS} {FROM} WHERE l.token_hash = ?1"), [hash], from_row).optional()?)
}

/// The owner's links (or everyone's), newest first.
pub fn list(conn: &Connection, owner: Option<&UserId>, limit: u32) -> Result<Vec<UploadLinkEntry>, DbError> {
    let mut statement = conn.prepare(&format!(
        "SELECT {COLUMNS} {FROM} WHERE (?1 IS NULL OR l.owner_id = ?1)
         ORDER BY l.created_at DESC, l.id DESC LIMIT ?2"
    ))?;
    let rows = statement.query_map(params![owner.map(|owner| owner.0.as_str()), limit], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Counts one received file of `size` bytes.
pub fn count_received(conn: &Connection, id: &str, size: i64, now: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE upload_links SET files_received = files_received + 1, bytes_received = bytes_received + ?2,
             last_upload_at = ?3 WHERE id = ?1",
        params![id, size, now],
    )?;
    Ok(())
}

pub fn delete(conn: &Connection, id: &str) -> Result<(), DbError> {
    conn.execute("DELETE FROM upload_links WHERE id = ?1", [id])?;
    Ok(())
}
