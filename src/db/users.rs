//! The `users` table. Plain functions over a connection; callers choose the transaction.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::DbError;
use crate::domain::{Role, UserId, Username};

#[derive(Clone, Debug)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub quota_bytes: Option<i64>,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
    /// Whether the user gets notices by e-mail (sign-ins, password changes).
    pub mail_notices: bool,
}

pub struct NewUser<'a> {
    pub username: &'a Username,
    pub email: Option<&'a str>,
    pub password_hash: &'a str,
    pub role: Role,
    pub quota_bytes: Option<i64>,
    pub now: i64,
}

const COLUMNS: &str =
    "id, username, email, password_hash, role, disabled, quota_bytes, created_at, last_login_at, mail_notices";

fn from_row(row: &Row<'_>) -> rusqlite::Result<UserRow> {
    let role: String = row.get(4)?;
    Ok(UserRow {
        id: UserId(row.get(0)?),
        username: row.get(1)?,
        email: row.get(2)?,
        password_hash: row.get(3)?,
        role: role.parse().unwrap_or(Role::User),
        disabled: row.get(5)?,
        quota_bytes: row.get(6)?,
        created_at: row.get(7)?,
        last_login_at: row.get(8)?,
        mail_notices: row.get(9)?,
    })
}

pub fn count(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn.query_row("SELECT count(*) FROM users", [], |row| row.get(0))?)
}

/// Inserts a user; `Ok(None)` when the username (case-insensitively) is taken.
pub fn insert(conn: &Connection, user: &NewUser<'_>) -> Result<Option<UserId>, DbError> {
    let id = UserId::generate();
    let inserted = conn.execute(
        "INSERT INTO users (id, username, username_key, email, password_hash, role, quota_bytes, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (username_key) DO NOTHING",
        params![
            id.0,
            user.username.as_str(),
            user.username.key(),
            user.email,
            user.password_hash,
            user.role.as_str(),
            user.quota_bytes,
            user.now
        ],
    )?;
    Ok((inserted == 1).then_some(id))
}

pub fn by_username(conn: &Connection, username: &Username) -> Result<Option<UserRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE username_key = ?1");
    Ok(conn.query_row(&sql, [username.key()], from_row).optional()?)
}

pub fn by_id(conn: &Connection, id: &UserId) -> Result<Option<UserRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = ?1");
    Ok(conn.query_row(&sql, [&id.0], from_row).optional()?)
}

pub fn set_password_hash(conn: &Connection, id: &UserId, hash: &str) -> Result<(), DbError> {
    conn.execute("UPDATE users SET password_hash = ?2 WHERE id = ?1", params![id.0, hash])?;
    Ok(())
}

pub fn record_login(conn: &Connection, id: &UserId, now: i64) -> Result<(), DbError> {
    conn.execute("UPDATE users SET last_login_at = ?2 WHERE id = ?1", params![id.0, now])?;
    Ok(())
}

/// Users ordered by username, after `after` (a username key) for keyset pagination.
pub fn list(conn: &Connection, after: Option<&str>, limit: u32) -> Result<Vec<UserRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE username_key > ?1 ORDER BY username_key LIMIT ?2");
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(params![after.unwrap_or(""), limit], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Enabled admins other than `except`.
pub fn other_enabled_admins(conn: &Connection, except: &UserId) -> Result<i64, DbError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0 AND id != ?1",
        [&except.0],
        |row| row.get(0),
    )?)
}

pub fn set_role(conn: &Connection, id: &UserId, role: Role) -> Result<(), DbError> {
    conn.execute("UPDATE users SET role = ?2 WHERE id = ?1", params![id.0, role.as_str()])?;
    Ok(())
}

pub fn set_disabled(conn: &Connection, id: &UserId, disabled: bool) -> Result<(), DbError> {
    conn.execute("UPDATE users SET disabled = ?2 WHERE id = ?1", params![id.0, disabled])?;
    Ok(())
}

pub fn set_quota(conn: &Connection, id: &UserId, quota_bytes: Option<i64>) -> Result<(), DbError> {
    conn.execute("UPDATE users SET quota_bytes = ?2 WHERE id = ?1", params![id.0, quota_bytes])?;
    Ok(())
}

pub fn set_email(conn: &Connection, id: &UserId, email: Option<&str>) -> Result<(), DbError> {
    conn.execute("UPDATE users SET email = ?2 WHERE id = ?1", params![id.0, email])?;
    Ok(())
}

pub fn delete(conn: &Connection, id: &UserId) -> Result<bool, DbError> {
    Ok(conn.execute("DELETE FROM users WHERE id = ?1", [&id.0])? == 1)
}

pub fn set_mail_notices(conn: &Connection, id: &UserId, on: bool) -> Result<(), DbError> {
    conn.execute("UPDATE users SET mail_notices = ?2 WHERE id = ?1", params![id.0, on])?;
    Ok(())
}

/// Enabled accounts with this e-mail address (compared without regard to ASCII case).
pub fn enabled_by_email(conn: &Connection, email: &str) -> Result<Vec<UserRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE lower(email) = lower(?1) AND disabled = 0");
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map([email], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
