//! The `sessions` and `refresh_tokens` tables.
//!
//! A session is one login; each refresh spends its token and issues the next one in the same
//! session. Spent tokens are kept so that a second use can be recognised as theft.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;
use crate::domain::{Role, SessionId, UserId};

pub struct NewSession<'a> {
    pub id: &'a SessionId,
    pub user_id: &'a UserId,
    pub now: i64,
    pub expires_at: i64,
    pub client_ip: &'a str,
}

pub fn create(conn: &Connection, session: &NewSession<'_>) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, client_ip)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
        params![session.id.0, session.user_id.0, session.now, session.expires_at, session.client_ip],
    )?;
    Ok(())
}

pub fn add_refresh_token(conn: &Connection, hash: &[u8], session: &SessionId, now: i64) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, issued_at) VALUES (?1, ?2, ?3)",
        params![hash, session.0, now],
    )?;
    Ok(())
}

/// A refresh token as found by its hash, with the state of its session and user.
pub struct RefreshLookup {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub role: Role,
    pub spent: bool,
    pub session_usable: bool,
    pub last_used_at: i64,
}

/// Looks up a refresh token; `now` decides whether its session is still usable (not revoked,
/// within its absolute lifetime, user enabled). The idle timeout is the caller's to judge.
pub fn find_refresh_token(conn: &Connection, hash: &[u8], now: i64) -> Result<Option<RefreshLookup>, DbError> {
    Ok(conn
        .query_row(
            "SELECT s.id, s.user_id, u.role, t.spent_at IS NOT NULL,
                    s.revoked_at IS NULL AND s.expires_at > ?2 AND u.disabled = 0, s.last_used_at
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id
             WHERE t.token_hash = ?1",
            params![hash, now],
            |row| {
                let role: String = row.get(2)?;
                Ok(RefreshLookup {
                    session_id: SessionId(row.get(0)?),
                    user_id: UserId(row.get(1)?),
                    role: role.parse().unwrap_or(Role::User),
                    spent: row.get(3)?,
                    session_usable: row.get(4)?,
                    last_used_at: row.get(5)?,
                })
            },
        )
        .optional()?)
}

pub fn spend_refresh_token(conn: &Connection, hash: &[u8], session: &SessionId, now: i64) -> Result<(), DbError> {
    conn.execute("UPDATE refresh_tokens SET spent_at = ?2 WHERE token_hash = ?1", params![hash, now])?;
    conn.execute("UPDATE sessions SET last_used_at = ?2 WHERE id = ?1", params![session.0, now])?;
    Ok(())
}

/// Ends a session; its access and refresh tokens stop working at once. `true` if it was live.
pub fn revoke(conn: &Connection, session: &SessionId, now: i64, reason: &str) -> Result<bool, DbError> {
    let changed = conn.execute(
        "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at IS NULL",
        params![session.0, now, reason],
    )?;
    Ok(changed == 1)
}

/// Who an access token's session belongs to, if the session is still live.
pub fn live_session_user(conn: &Connection, session: &SessionId, now: i64) -> Result<Option<(UserId, Role)>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT u.id, u.role FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2 AND u.disabled = 0",
        )?
        .query_row(params![session.0, now], |row| {
            let role: String = row.get(1)?;
            Ok((UserId(row.get(0)?), role.parse().unwrap_or(Role::User)))
        })
        .optional()?)
}

/// Ends every live session of a user, except `keep`. Returns how many ended.
pub fn revoke_all_for_user(
    conn: &Connection,
    user: &UserId,
    keep: Option<&SessionId>,
    now: i64,
    reason: &str,
) -> Result<usize, DbError> {
    Ok(conn.execute(
        "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
         WHERE user_id = ?1 AND revoked_at IS NULL AND id != ?4",
        params![user.0, now, reason, keep.map(|session| session.0.as_str()).unwrap_or("")],
    )?)
}

pub struct SessionRow {
    pub id: SessionId,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub client_ip: String,
    /// `password` or `oidc:<provider>`.
    pub method: String,
}

/// A user's live sessions, newest first.
pub fn list_live(conn: &Connection, user: &UserId, now: i64) -> Result<Vec<SessionRow>, DbError> {
    let mut statement = conn.prepare(
        "SELECT id, created_at, last_used_at, expires_at, client_ip, method FROM sessions
         WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2 ORDER BY created_at DESC, id",
    )?;
    let rows = statement.query_map(params![user.0, now], |row| {
        Ok(SessionRow {
            id: SessionId(row.get(0)?),
            created_at: row.get(1)?,
            last_used_at: row.get(2)?,
            expires_at: row.get(3)?,
            client_ip: row.get(4)?,
            method: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Ends one of `user`'s sessions; `false` if it is not theirs or already ended.
pub fn revoke_own(
    conn: &Connection,
    user: &UserId,
    session: &SessionId,
    now: i64,
    reason: &str,
) -> Result<bool, DbError> {
    Ok(conn.execute(
        "UPDATE sessions SET revoked_at = ?3, revoked_reason = ?4 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        params![session.0, user.0, now, reason],
    )? == 1)
}

/// Whether `session` of `user` was not ended and the user is enabled, whatever the time: a
/// long upload authorized at its start may outlive the session's expiry, never its revocation.
pub fn not_ended(conn: &Connection, session: &SessionId, user: &UserId) -> Result<bool, DbError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = ?1 AND u.id = ?2 AND s.revoked_at IS NULL AND u.disabled = 0",
            params![session.0, user.0],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Records how a session was made (`password`, the default, or `oidc:<provider>`).
pub fn set_method(conn: &Connection, session: &SessionId, method: &str) -> Result<(), DbError> {
    conn.execute("UPDATE sessions SET method = ?2 WHERE id = ?1", params![session.0, method])?;
    Ok(())
}

/// Gives a session the hash of its browser cookie's secret.
pub fn set_cookie_hash(conn: &Connection, session: &SessionId, hash: &[u8]) -> Result<(), DbError> {
    conn.execute("UPDATE sessions SET cookie_hash = ?2 WHERE id = ?1", params![session.0, hash])?;
    Ok(())
}

/// A live session found by its browser cookie.
pub struct CookieSession {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub role: Role,
    pub last_used_at: i64,
}

/// The live session (not revoked, within its absolute lifetime, user enabled) whose cookie
/// secret hashes to `hash`. The idle timeout is the caller's to judge.
pub fn find_by_cookie(conn: &Connection, hash: &[u8], now: i64) -> Result<Option<CookieSession>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT s.id, u.id, u.role, s.last_used_at FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.cookie_hash = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2 AND u.disabled = 0",
        )?
        .query_row(params![hash, now], |row| {
            let role: String = row.get(2)?;
            Ok(CookieSession {
                session_id: SessionId(row.get(0)?),
                user_id: UserId(row.get(1)?),
                role: role.parse().unwrap_or(Role::User),
                last_used_at: row.get(3)?,
            })
        })
        .optional()?)
}

/// Records that a session was used (the idle timeout counts from here).
pub fn touch(conn: &Connection, session: &SessionId, now: i64) -> Result<(), DbError> {
    conn.execute("UPDATE sessions SET last_used_at = max(last_used_at, ?2) WHERE id = ?1", params![session.0, now])?;
    Ok(())
}

/// Whether the user had any session before, and whether one came from `client_ip` (sessions
/// are kept 30 days after they end): a sign-in from an address not among them is new.
pub fn address_history(conn: &Connection, user: &UserId, client_ip: &str) -> Result<(bool, bool), DbError> {
    Ok(conn.query_row(
        "SELECT count(*) > 0, coalesce(sum(client_ip = ?2), 0) > 0 FROM sessions WHERE user_id = ?1",
        params![user.0, client_ip],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?)
}
