//! The `mail_outbox` and `password_resets` tables.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;

/// A message to write to the outbox, in the transaction of the action that causes it.
pub struct NewMail<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    /// The account whose action or whose security the message is about.
    pub user_id: Option<&'a str>,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body_text: &'a str,
    pub body_html: &'a str,
    pub now: i64,
    /// Not delivered by then: given up.
    pub expires_at: i64,
}

/// A message the sender has claimed.
#[derive(Clone, Debug)]
pub struct OutgoingMail {
    pub id: String,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub attempts: i64,
    pub expires_at: i64,
}

pub fn insert(conn: &Connection, mail: &NewMail<'_>) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO mail_outbox (id, kind, user_id, recipient, subject, body_text, body_html, status,
             next_attempt_at, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8, ?9)",
        params![
            mail.id,
            mail.kind,
            mail.user_id,
            mail.recipient,
            mail.subject,
            mail.body_text,
            mail.body_html,
            mail.now,
            mail.expires_at
        ],
    )?;
    Ok(())
}

/// Messages of `kind` written for `user_id` since `since`, for per-user hourly caps.
pub fn count_since(conn: &Connection, user_id: &str, kind: &str, since: i64) -> Result<i64, DbError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM mail_outbox WHERE user_id = ?1 AND kind = ?2 AND created_at >= ?3",
        params![user_id, kind, since],
        |row| row.get(0),
    )?)
}

/// Start of the sender: a message left `sending` by a process that stopped mid-send goes back
/// to the queue (delivery is at least once; its Message-ID lets receivers drop a duplicate).
pub fn release_claims(conn: &Connection) -> Result<usize, DbError> {
    Ok(conn.execute("UPDATE mail_outbox SET status = 'pending' WHERE status = 'sending'", [])?)
}

/// Claims the oldest due message: marks it `sending` and counts the attempt.
pub fn claim_due(conn: &Connection, now: i64) -> Result<Option<OutgoingMail>, DbError> {
    let found = conn
        .query_row(
            "SELECT id, kind, recipient, subject, body_text, body_html, attempts, expires_at FROM mail_outbox
             WHERE status = 'pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, created_at LIMIT 1",
            [now],
            |row| {
                Ok(OutgoingMail {
                    id: row.get(0)?,
                    kind: row.get(1)?,
                    recipient: row.get(2)?,
                    subject: row.get(3)?,
                    body_text: row.get(4)?,
                    body_html: row.get(5)?,
                    attempts: row.get(6)?,
                    expires_at: row.get(7)?,
                })
            },
        )
        .optional()?;
    if let Some(mail) = &found {
        conn.execute("UPDATE mail_outbox SET status = 'sending', attempts = attempts + 1 WHERE id = ?1", [&mail.id])?;
    }
    Ok(found)
}

/// Delivered: the contents are wiped (they may hold a link).
pub fn mark_sent(conn: &Connection, id: &str, now: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE mail_outbox SET status = 'sent', sent_at = ?2, last_error = '', subject = '', body_text = '',
             body_html = ''
         WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// Given up: the contents are wiped, the reason kept.
pub fn mark_failed(conn: &Connection, id: &str, error: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE mail_outbox SET status = 'failed', last_error = ?2, subject = '', body_text = '', body_html = ''
         WHERE id = ?1",
        params![id, error],
    )?;
    Ok(())
}

pub fn retry_at(conn: &Connection, id: &str, at: i64, error: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE mail_outbox SET status = 'pending', next_attempt_at = ?2, last_error = ?3 WHERE id = ?1",
        params![id, at, error],
    )?;
    Ok(())
}

pub fn insert_reset(
    conn: &Connection,
    token_hash: &[u8],
    user_id: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![token_hash, user_id, now, expires_at],
    )?;
    Ok(())
}

/// Resets requested for `user_id` since `since` (a cap against flooding one inbox).
pub fn resets_since(conn: &Connection, user_id: &str, since: i64) -> Result<i64, DbError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM password_resets WHERE user_id = ?1 AND created_at >= ?2",
        params![user_id, since],
        |row| row.get(0),
    )?)
}

/// Spends a reset token: the account it resets, if the token is unused and unexpired. Every
/// other open token of that account is spent with it.
pub fn spend_reset(conn: &Connection, token_hash: &[u8], now: i64) -> Result<Option<String>, DbError> {
    let user: Option<String> = conn
        .query_row(
            "SELECT user_id FROM password_resets WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
            params![token_hash, now],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(user) = &user {
        conn.execute(
            "UPDATE password_resets SET used_at = ?2 WHERE user_id = ?1 AND used_at IS NULL",
            params![user, now],
        )?;
    }
    Ok(user)
}
