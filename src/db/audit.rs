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
