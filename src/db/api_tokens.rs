//! The `api_tokens` table: personal tokens for scripts, stored only as SHA-256 hashes.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;
use crate::domain::{Role, UserId};

pub struct ApiTokenRow {
    pub id: String,
    pub name: String,
    pub read_only: bool,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

pub struct NewApiToken<'a> {
    pub id: &'a str,
    pub user_id: &'a UserId,
    pub name: &'a str,
    pub hash: &'a [u8],
    pub read_only: bool,
    pub now: i64,
    pub expires_at: Option<i64>,
}

fn scope(read_only: bool) -> &'static str {
    if read_only { "read-only" } else { "read-write" }
}

pub fn insert(conn: &Connection, token: &NewApiToken<'_>) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO api_tokens (id, user_id, name, token_hash, scope, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![token.id, token.user_id.0, token.name, token.hash, scope(token.read_only), token.now, token.expires_at],
    )?;
    Ok(())
}

/// A user's tokens that are neither revoked nor expired, newest first.
pub fn list_live(conn: &Connection, user: &UserId, now: i64) -> Result<Vec<ApiTokenRow>, DbError> {
    let mut statement = conn.prepare(
        "SELECT id, name, scope, created_at, expires_at, last_used_at FROM api_tokens
         WHERE user_id = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)
         ORDER BY created_at DESC, id",
    )?;
    let rows = statement.query_map(params![user.0, now], |row| {
        Ok(ApiTokenRow {
            id: row.get(0)?,
            name: row.get(1)?,
            read_only: row.get::<_, String>(2)? == "read-only",
            created_at: row.get(3)?,
            expires_at: row.get(4)?,
            last_used_at: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn revoke(conn: &Connection, user: &UserId, id: &str, now: i64) -> Result<bool, DbError> {
    Ok(conn.execute(
        "UPDATE api_tokens SET revoked_at = ?3 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        params![id, user.0, now],
    )? == 1)
}

/// The live token with this hash and its enabled owner: (token id, owner, owner's role, read-only).
pub fn authenticate(conn: &Connection, hash: &[u8], now: i64) -> Result<Option<(String, UserId, Role, bool)>, DbError> {
    let found = conn
        .prepare_cached(
            "SELECT t.id, u.id, u.role, t.scope FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = ?1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?2)
               AND u.disabled = 0",
        )?
        .query_row(params![hash, now], |row| {
            let role: String = row.get(2)?;
            let scope: String = row.get(3)?;
            Ok((row.get(0)?, UserId(row.get(1)?), role.parse().unwrap_or(Role::User), scope == "read-only"))
        })
        .optional()?;
    if let Some((id, ..)) = &found {
        // Recorded at most once a minute, so a busy script does not turn reads into writes.
        conn.execute(
            "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2 - 60)",
            params![id, now],
        )?;
    }
    Ok(found)
}

/// Whether token `id` of `user` was not revoked and the user is enabled, whatever the time
/// (see `sessions::not_ended`).
pub fn not_revoked(conn: &Connection, id: &str, user: &UserId) -> Result<bool, DbError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.id = ?1 AND u.id = ?2 AND t.revoked_at IS NULL AND u.disabled = 0",
            params![id, user.0],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}
