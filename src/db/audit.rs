//! The `audit_log` table: who did what, when, from where. Rows are only ever added.

use rusqlite::{Connection, params};

use super::DbError;

/// One audit event. `detail` must never hold a secret.
#[derive(Clone, Debug, Default)]
pub struct AuditEvent<'a> {
    pub event: &'a str,
    pub actor_id: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub ip: &'a str,
    pub detail: &'a str,
}

/// Writes the event to the table (in the caller's transaction) and to the log.
pub fn record(conn: &Connection, now: i64, event: &AuditEvent<'_>) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO audit_log (at, event, actor_id, subject, ip, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![now, event.event, event.actor_id, event.subject, event.ip, event.detail],
    )?;
    tracing::info!(
        target: "coffer::audit",
        event = event.event,
        actor = event.actor_id.unwrap_or(""),
        subject = event.subject.unwrap_or(""),
        ip = event.ip,
        detail = event.detail,
        "audit"
    );
    Ok(())
}

pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub event: String,
    pub actor_id: Option<String>,
    pub subject: Option<String>,
    pub ip: String,
    pub detail: String,
}

/// Newest first, before id `before` (keyset pagination), optionally filtered.
pub fn list(
    conn: &Connection,
    before: Option<i64>,
    limit: u32,
    actor_id: Option<&str>,
    event: Option<&str>,
) -> Result<Vec<AuditRow>, DbError> {
    let mut statement = conn.prepare(
        "SELECT id, at, event, actor_id, subject, ip, detail FROM audit_log
         WHERE id < ?1 AND (?2 IS NULL OR actor_id = ?2 OR subject = ?2) AND (?3 IS NULL OR event = ?3)
         ORDER BY id DESC LIMIT ?4",
    )?;
    let rows = statement.query_map(params![before.unwrap_or(i64::MAX), actor_id, event, limit], |row| {
        Ok(AuditRow {
            id: row.get(0)?,
            at: row.get(1)?,
            event: row.get(2)?,
            actor_id: row.get(3)?,
            subject: row.get(4)?,
            ip: row.get(5)?,
            detail: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
