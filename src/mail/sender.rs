//! The `mail` task: delivers the outbox, one message at a time, until shutdown.
//!
//! A due message is claimed (`sending`, attempt counted), sent under the transport's time
//! limit, then marked `sent`, put back with a later `next_attempt_at`, or marked `failed`
//! (a permanent refusal, or its expiry passed). The task runs beside the request handlers and
//! holds no database lock while it talks to the mail server, so a stalled server delays only
//! mail. Waits are 1, 2, 4 ... minutes (at most an hour) plus up to a tenth more at random, so
//! messages queued together do not retry in lockstep. Times are the injected clock's; the task
//! looks at the outbox every second, and at once when a message is queued.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::transport::{Envelope, SendFailure};
use super::{Mailer, Transport};
use crate::clock::Clock;
use crate::db::audit::{self, AuditEvent};
use crate::db::mail::{self, OutgoingMail};
use crate::db::{Db, DbError};

/// How often the outbox is looked at when nothing woke the task.
const POLL: Duration = Duration::from_secs(1);
const FIRST_RETRY: i64 = 60;
const LONGEST_RETRY: i64 = 3600;

/// Seconds until the next attempt after `attempts` failed ones.
fn backoff(attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 10)).unwrap_or(10);
    let wait = FIRST_RETRY.saturating_mul(1 << doublings).min(LONGEST_RETRY);
    wait + rand::random_range(0..=wait / 10)
}

enum Outcome {
    Sent(String),
    Retry(SendFailure),
    Failed(String),
}

pub async fn run_sender(db: Db, clock: Clock, mailer: Mailer, transport: Arc<Transport>, shutdown: CancellationToken) {
    match db.write(|tx| mail::release_claims(tx)).await {
        Ok(0) => {}
        Ok(released) => {
            tracing::info!(task = "mail", messages = released, "messages interrupted mid-send are queued again")
        }
        Err(err) => tracing::error!(task = "mail", error = %err, "cannot look at the mail outbox"),
    }
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let now = clock.now();
        let claimed = db.write(move |tx| mail::claim_due(tx, now)).await;
        let mail = match claimed {
            Ok(Some(mail)) => mail,
            Ok(None) => {
                tokio::select! {
                    () = mailer.wait_for_queued() => {}
                    () = tokio::time::sleep(POLL) => {}
                    () = shutdown.cancelled() => return,
                }
                continue;
            }
            Err(err) => {
                tracing::error!(task = "mail", error = %err, "cannot read the mail outbox; will try again");
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    () = shutdown.cancelled() => return,
                }
                continue;
            }
        };
        // Stopping mid-send leaves the message `sending`; the next start queues it again.
        let outcome = tokio::select! {
            outcome = deliver(&transport, &mail, now) => outcome,
            () = shutdown.cancelled() => return,
        };
        if let Err(err) = record(&db, &clock, &mail, outcome).await {
            tracing::error!(task = "mail", error = %err, mail = %mail.id, "cannot record a delivery attempt");
        }
    }
}

async fn deliver(transport: &Transport, mail: &OutgoingMail, now: i64) -> Outcome {
    if mail.expires_at <= now {
        return Outcome::Failed("expired before it could be delivered".to_owned());
    }
    let envelope = Envelope {
        id: &mail.id,
        recipient: &mail.recipient,
        subject: &mail.subject,
        text: &mail.body_text,
        html: &mail.body_html,
    };
    match transport.send(&envelope).await {
        Ok(reply) => Outcome::Sent(reply),
        Err(failure) if failure.permanent => Outcome::Failed(failure.message),
        Err(failure) => Outcome::Retry(failure),
    }
}

async fn record(db: &Db, clock: &Clock, mail: &OutgoingMail, outcome: Outcome) -> Result<(), DbError> {
    let now = clock.now();
    let (id, kind, attempts) = (mail.id.clone(), mail.kind.clone(), mail.attempts + 1);
    match outcome {
        Outcome::Sent(reply) => {
            let logged = (id.clone(), kind.clone());
            db.write(move |tx| mail::mark_sent(tx, &id, now)).await?;
            crate::metrics::get().mail_sent.with(["sent"]).inc();
            tracing::info!(task = "mail", mail = %logged.0, kind = %logged.1, attempts, %reply, "mail sent");
            Ok(())
        }
        Outcome::Retry(failure) => {
            let at = now + backoff(attempts);
            let retry_in = at - now;
            let message = failure.message.clone();
            db.write(move |tx| mail::retry_at(tx, &id, at, &failure.message)).await?;
            crate::metrics::get().mail_sent.with(["retry"]).inc();
            tracing::warn!(task = "mail", mail = %mail.id, kind = %kind, attempts, retry_in, error = %message, "mail not delivered; will try again");
            Ok(())
        }
        Outcome::Failed(reason) => {
            let logged = reason.clone();
            db.write(move |tx| {
                mail::mark_failed(tx, &id, &reason)?;
                let detail = format!("kind={kind} attempts={attempts}: {reason}");
                let event =
                    AuditEvent { event: "mail_failed", actor_id: None, subject: Some(&id), ip: "", detail: &detail };
                audit::record(tx, now, &event)
            })
            .await?;
            crate::metrics::get().mail_sent.with(["failed"]).inc();
            tracing::error!(task = "mail", mail = %mail.id, kind = %mail.kind, attempts, error = %logged, "mail given up");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn waits_double_from_a_minute_to_an_hour_with_a_little_jitter() {
        for (attempts, base) in [(1, 60), (2, 120), (3, 240), (6, 1920), (7, 3600), (40, 3600)] {
            let wait = backoff(attempts);
            assert!((base..=base + base / 10).contains(&wait), "attempt {attempts}: {wait}");
        }
    }
}
