//! The `retention` task: deletes what nobody needs any more, so no table grows for ever.
//!
//! Audit entries older than `audit.retention`; sessions (with their refresh tokens, spent or
//! not) that ended, by revocation or expiry, more than [`ENDED_KEPT`] ago; API tokens revoked
//! or expired that long ago; e-mail sent or given up, and password-reset tokens expired, that
//! long ago. Spent refresh tokens of live sessions stay: they are what
//! recognises a stolen token presented again. Deletes run in small batches, each its own short
//! transaction, so sign-ins and uploads never wait long for the write lock. Runs at start and
//! every [`EVERY`].

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::db::{Db, DbError};

/// How long ended sessions and dead API tokens are kept (they show who had access lately).
pub const ENDED_KEPT: i64 = 30 * 86_400;
pub const EVERY: Duration = Duration::from_secs(3600);
/// Rows deleted per transaction.
const BATCH: i64 = 5_000;

/// What one run deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub audit_entries: usize,
    pub sessions: usize,
    pub api_tokens: usize,
    pub mail: usize,
}

/// Deletes, `BATCH` rows at a time, what `sql` (taking a cutoff and a limit) selects.
async fn delete_in_batches(db: &Db, sql: &'static str, cutoff: i64) -> Result<usize, DbError> {
    let mut total = 0;
    loop {
        let deleted = db.write(move |tx| Ok(tx.execute(sql, rusqlite::params![cutoff, BATCH])?)).await?;
        total += deleted;
        if deleted < usize::try_from(BATCH).unwrap_or(usize::MAX) {
            return Ok(total);
        }
    }
}

pub async fn prune(db: &Db, clock: &Clock, audit_retention: Duration) -> Result<Pruned, DbError> {
    let now = clock.now();
    let audit_cutoff = now.saturating_sub(i64::try_from(audit_retention.as_secs()).unwrap_or(i64::MAX));
    let ended_cutoff = now.saturating_sub(ENDED_KEPT);
    Ok(Pruned {
        audit_entries: delete_in_batches(
            db,
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ?1 ORDER BY at LIMIT ?2)",
            audit_cutoff,
        )
        .await?,
        sessions: delete_in_batches(
            db,
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions
                WHERE (revoked_at IS NOT NULL AND revoked_at < ?1) OR expires_at < ?1 LIMIT ?2)",
            ended_cutoff,
        )
        .await?,
        api_tokens: delete_in_batches(
            db,
            "DELETE FROM api_tokens WHERE id IN (SELECT id FROM api_tokens
                WHERE (revoked_at IS NOT NULL AND revoked_at < ?1) OR (expires_at IS NOT NULL AND expires_at < ?1) LIMIT ?2)",
            ended_cutoff,
        )
        .await?,
        mail: delete_in_batches(
            db,
            "DELETE FROM mail_outbox WHERE id IN (SELECT id FROM mail_outbox
                WHERE status IN ('sent', 'failed') AND created_at < ?1 LIMIT ?2)",
            ended_cutoff,
        )
        .await?
            + delete_in_batches(
                db,
                "DELETE FROM password_resets WHERE token_hash IN (SELECT token_hash FROM password_resets
                    WHERE expires_at < ?1 LIMIT ?2)",
                ended_cutoff,
            )
            .await?,
    })
}

/// Prunes now and every [`EVERY`] until `shutdown`.
pub async fn run(db: Db, clock: Clock, audit_retention: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match prune(&db, &clock, audit_retention).await {
            Ok(pruned) if pruned != Pruned::default() => tracing::info!(
                task = "retention",
                audit_entries = pruned.audit_entries,
                sessions = pruned.sessions,
                api_tokens = pruned.api_tokens,
                mail = pruned.mail,
                "deleted what is past its retention"
            ),
            Ok(_) => {}
            Err(err) => tracing::error!(task = "retention", error = %err, "cannot delete old rows; will try again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn old_rows_go_recent_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("coffer.db"), Duration::from_secs(5), 2).unwrap();
        let now = 400 * 86_400;
        db.write(move |tx| {
            tx.execute_batch(&format!(
                "INSERT INTO users (id, username, username_key, password_hash, role, created_at)
                   VALUES ('u', 'u', 'u', 'h', 'user', 0);
                 INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, revoked_at)
                   VALUES ('live', 'u', {recent}, {recent}, {future}, NULL),
                          ('ended-long-ago', 'u', 0, 0, {future}, {old}),
                          ('ended-lately', 'u', 0, 0, {future}, {recent}),
                          ('expired-long-ago', 'u', 0, 0, {old}, NULL);
                 INSERT INTO refresh_tokens (token_hash, session_id, issued_at, spent_at)
                   VALUES (x'01', 'live', 0, 1), (x'02', 'ended-long-ago', 0, 1);
                 INSERT INTO api_tokens (id, user_id, name, token_hash, scope, created_at, expires_at, revoked_at)
                   VALUES ('keep', 'u', 'a', x'03', 'read-only', 0, NULL, NULL),
                          ('dead', 'u', 'b', x'04', 'read-only', 0, {old}, NULL);
                 INSERT INTO audit_log (at, event) VALUES (10, 'old'), ({recent}, 'recent');
                 INSERT INTO mail_outbox (id, kind, recipient, subject, body_text, body_html, status,
                     next_attempt_at, created_at, expires_at)
                   VALUES ('sent-long-ago', 'test', 'a@example.org', '', '', '', 'sent', 0, {old}, {old}),
                          ('pending-long', 'test', 'a@example.org', 's', 't', 'h', 'pending', 0, {old}, {future}),
                          ('sent-lately', 'test', 'a@example.org', '', '', '', 'sent', 0, {recent}, {future});
                 INSERT INTO password_resets (token_hash, user_id, created_at, expires_at)
                   VALUES (x'05', 'u', 0, {old}), (x'06', 'u', {recent}, {recent});",
                recent = now - 86_400,
                old = now - 31 * 86_400,
                future = now + 86_400,
            ))?;
            Ok(())
        })
        .await
        .unwrap();
        let pruned = prune(&db, &Clock::manual(now), Duration::from_secs(365 * 86_400)).await.unwrap();
        assert_eq!(pruned, Pruned { audit_entries: 1, sessions: 2, api_tokens: 1, mail: 2 });
        let left = db
            .read(|conn| {
                let names = |sql: &str| -> Result<Vec<String>, DbError> {
                    let mut statement = conn.prepare(sql)?;
                    let rows = statement.query_map([], |row| row.get(0))?;
                    Ok(rows.collect::<Result<_, _>>()?)
                };
                Ok((
                    names("SELECT id FROM sessions ORDER BY id")?,
                    names("SELECT id FROM api_tokens")?,
                    names("SELECT event FROM audit_log")?,
                    names("SELECT hex(token_hash) FROM refresh_tokens")?,
                    names("SELECT id FROM mail_outbox ORDER BY id")?,
                    names("SELECT hex(token_hash) FROM password_resets")?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(left.0, vec!["ended-lately", "live"]);
        assert_eq!(left.1, vec!["keep"]);
        assert_eq!(left.2, vec!["recent"]);
        assert_eq!(left.3, vec!["01"], "a live session keeps its spent tokens; an ended one's went with it");
        assert_eq!(left.4, vec!["pending-long", "sent-lately"], "mail still to send stays, however old");
        assert_eq!(left.5, vec!["06"]);
    }
}
