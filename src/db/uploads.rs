//! The `uploads` table: resumable (tus) uploads, their durable offset and quota reservation.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::DbError;
use crate::domain::{FileId, UploadId, UserId};

#[derive(Clone, Debug)]
pub struct UploadRow {
    pub id: UploadId,
    pub owner_id: UserId,
    pub folder: String,
    pub name: String,
    /// `fail`, `rename` or `replace`.
    pub on_conflict: String,
    pub description: String,
    pub length: i64,
    /// The durable offset: every byte before it is fsynced in the upload's part file.
    pub received: i64,
    pub reserved_bytes: i64,
    /// `Upload-Metadata` as the client sent it, echoed by HEAD.
    pub metadata: String,
    /// The SHA-256 (hex) the whole contents must have, when the client gave one.
    pub expected_sha256: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// The file the upload became, once finished.
    pub file_id: Option<FileId>,
}

const COLUMNS: &str = "id, owner_id, folder, name, on_conflict, description, length, received, reserved_bytes, \
                       metadata, expected_sha256, created_at, expires_at, file_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<UploadRow> {
    Ok(UploadRow {
        id: UploadId(row.get(0)?),
        owner_id: UserId(row.get(1)?),
        folder: row.get(2)?,
        name: row.get(3)?,
        on_conflict: row.get(4)?,
        description: row.get(5)?,
        length: row.get(6)?,
        received: row.get(7)?,
        reserved_bytes: row.get(8)?,
        metadata: row.get(9)?,
        expected_sha256: row.get(10)?,
        created_at: row.get(11)?,
        expires_at: row.get(12)?,
        file_id: row.get::<_, Option<String>>(13)?.map(FileId),
    })
}

pub fn insert(conn: &Connection, upload: &UploadRow) -> Result<(), DbError> {
    conn.execute(
        &format!(
            "INSERT INTO uploads ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ),
        params![
            upload.id.0,
            upload.owner_id.0,
            upload.folder,
            upload.name,
            upload.on_conflict,
            upload.description,
            upload.length,
            upload.received,
            upload.reserved_bytes,
            upload.metadata,
            upload.expected_sha256,
            upload.created_at,
            upload.expires_at,
            upload.file_id.as_ref().map(|id| id.0.clone()),
        ],
    )?;
    Ok(())
}

pub fn by_id(conn: &Connection, id: &UploadId) -> Result<Option<UploadRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM uploads WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([&id.0], from_row).optional()?)
}

/// Records a new durable offset and when the upload now expires. False when the row is gone.
pub fn set_received(conn: &Connection, id: &UploadId, received: i64, expires_at: i64) -> Result<bool, DbError> {
    let changed = conn.execute(
        "UPDATE uploads SET received = ?2, expires_at = ?3 WHERE id = ?1 AND file_id IS NULL",
        params![id.0, received, expires_at],
    )?;
    Ok(changed == 1)
}

/// Marks the upload finished as `file`: its reservation ends in the same transaction that
/// records the file. False when the row is gone or already finished.
pub fn finish(conn: &Connection, id: &UploadId, file: &FileId, expires_at: i64) -> Result<bool, DbError> {
    let changed = conn.execute(
        "UPDATE uploads SET file_id = ?2, expires_at = ?3 WHERE id = ?1 AND file_id IS NULL",
        params![id.0, file.0, expires_at],
    )?;
    Ok(changed == 1)
}

pub fn delete(conn: &Connection, id: &UploadId) -> Result<bool, DbError> {
    Ok(conn.execute("DELETE FROM uploads WHERE id = ?1", [&id.0])? == 1)
}

/// Uploads that expired at or before `now`.
pub fn expired(conn: &Connection, now: i64, limit: i64) -> Result<Vec<UploadId>, DbError> {
    let mut statement =
        conn.prepare_cached("SELECT id FROM uploads WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2")?;
    let ids = statement.query_map(params![now, limit], |row| Ok(UploadId(row.get(0)?)))?;
    Ok(ids.collect::<Result<_, _>>()?)
}

/// Every unfinished upload's id and durable offset: the part files that must be kept.
pub fn unfinished(conn: &Connection) -> Result<Vec<(UploadId, i64)>, DbError> {
    let mut statement = conn.prepare_cached("SELECT id, received FROM uploads WHERE file_id IS NULL")?;
    let ids = statement.query_map([], |row| Ok((UploadId(row.get(0)?), row.get(1)?)))?;
    Ok(ids.collect::<Result<_, _>>()?)
}
