//! The `oidc_identities` and `oidc_pending` tables.
//!
//! An identity is the pair (issuer, subject) the provider vouches for; it belongs to one
//! account. A pending sign-in is found by the SHA-256 of its `state` and deleted by the same
//! statement that reads it, so a state works once.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;
use crate::domain::UserId;

pub struct NewPending<'a> {
    pub state_hash: &'a [u8],
    pub provider: &'a str,
    pub nonce: &'a str,
    pub pkce_verifier: &'a str,
    pub redirect_uri: &'a str,
    pub browser_hash: &'a [u8],
    pub link_user: Option<&'a UserId>,
    pub now: i64,
    pub expires_at: i64,
}

pub fn add_pending(conn: &Connection, pending: &NewPending<'_>) -> Result<(), DbError> {
    conn.execute("DELETE FROM oidc_pending WHERE expires_at <= ?1", [pending.now])?;
    conn.execute(
        "INSERT INTO oidc_pending (state_hash, provider, nonce, pkce_verifier, redirect_uri, browser_hash,
                                   link_user_id, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            pending.state_hash,
            pending.provider,
            pending.nonce,
            pending.pkce_verifier,
            pending.redirect_uri,
            pending.browser_hash,
            pending.link_user.map(|user| user.0.as_str()),
            pending.now,
            pending.expires_at
        ],
    )?;
    Ok(())
}

/// A pending sign-in, taken out of the table.
pub struct Pending {
    pub provider: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub redirect_uri: String,
    pub browser_hash: Vec<u8>,
    pub link_user: Option<UserId>,
    pub expires_at: i64,
}

/// Removes and returns the pending sign-in with this state hash (expired or not: the caller
/// judges, and either way it cannot be used again).
pub fn take_pending(conn: &Connection, state_hash: &[u8]) -> Result<Option<Pending>, DbError> {
    Ok(conn
        .query_row(
            "DELETE FROM oidc_pending WHERE state_hash = ?1
             RETURNING provider, nonce, pkce_verifier, redirect_uri, browser_hash, link_user_id, expires_at",
            [state_hash],
            |row| {
                Ok(Pending {
                    provider: row.get(0)?,
                    nonce: row.get(1)?,
                    pkce_verifier: row.get(2)?,
                    redirect_uri: row.get(3)?,
                    browser_hash: row.get(4)?,
                    link_user: row.get::<_, Option<String>>(5)?.map(UserId),
                    expires_at: row.get(6)?,
                })
            },
        )
        .optional()?)
}

pub fn user_of(conn: &Connection, issuer: &str, subject: &str) -> Result<Option<UserId>, DbError> {
    Ok(conn
        .query_row(
            "SELECT user_id FROM oidc_identities WHERE issuer = ?1 AND subject = ?2",
            params![issuer, subject],
            |row| row.get(0).map(UserId),
        )
        .optional()?)
}

pub struct NewIdentity<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub provider: &'a str,
    pub user: &'a UserId,
    pub email: Option<&'a str>,
    pub now: i64,
}

pub fn link(conn: &Connection, identity: &NewIdentity<'_>) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO oidc_identities (issuer, subject, provider, user_id, email, linked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![identity.issuer, identity.subject, identity.provider, identity.user.0, identity.email, identity.now],
    )?;
    Ok(())
}

pub fn record_login(
    conn: &Connection,
    issuer: &str,
    subject: &str,
    email: Option<&str>,
    now: i64,
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE oidc_identities SET last_login_at = ?3, email = coalesce(?4, email) WHERE issuer = ?1 AND subject = ?2",
        params![issuer, subject, now, email],
    )?;
    Ok(())
}

/// Removes `user`'s identity at `provider`; `true` if there was one.
pub fn unlink(conn: &Connection, user: &UserId, provider: &str) -> Result<bool, DbError> {
    Ok(conn.execute("DELETE FROM oidc_identities WHERE user_id = ?1 AND provider = ?2", params![user.0, provider])? > 0)
}

pub struct IdentityRow {
    pub user_id: UserId,
    pub username: String,
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub linked_at: i64,
    pub last_login_at: Option<i64>,
}

/// Linked identities, of one user or (for admins) of everyone, by username then provider.
pub fn list(conn: &Connection, user: Option<&UserId>) -> Result<Vec<IdentityRow>, DbError> {
    let mut statement = conn.prepare(
        "SELECT i.user_id, u.username, i.provider, i.issuer, i.subject, i.email, i.linked_at, i.last_login_at
         FROM oidc_identities i JOIN users u ON u.id = i.user_id
         WHERE ?1 IS NULL OR i.user_id = ?1 ORDER BY u.username_key, i.provider",
    )?;
    let rows = statement.query_map([user.map(|user| user.0.as_str())], |row| {
        Ok(IdentityRow {
            user_id: UserId(row.get(0)?),
            username: row.get(1)?,
            provider: row.get(2)?,
            issuer: row.get(3)?,
            subject: row.get(4)?,
            email: row.get(5)?,
            linked_at: row.get(6)?,
            last_login_at: row.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
