//! A user's e-mail settings and password reset by e-mail.
//!
//! A reset token is 256 random bits, stored only as its SHA-256, valid for [`RESET_LIFETIME`]
//! and once: using it spends every open token of the account. Asking for a reset answers the
//! same whether or not an account has the address; at most [`RESETS_PER_HOUR`] reset mails go
//! to one account per hour. The link carries the token after `#`, so it never reaches a
//! server's access log or a `Referer` header.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::accounts::check_email;
use super::{AccountError, Auth, Principal, queue_notice, token_hash};
use crate::db::audit::{self, AuditEvent};
use crate::db::mail;
use crate::db::sessions;
use crate::db::users::{self, UserRow};
use crate::domain::{Password, UserId};
use crate::mail::messages::{self, Notice};

/// How long a reset link works.
pub const RESET_LIFETIME: i64 = 3600;
/// Reset mails one account gets per hour at most.
pub const RESETS_PER_HOUR: i64 = 3;

/// What the signed-in user changes about their mail.
#[derive(Default)]
pub struct MailChanges {
    /// `Some(None)` removes the address.
    pub email: Option<Option<String>>,
    pub notices: Option<bool>,
}

impl Auth {
    /// Sets the caller's own address and whether they get notices; audited.
    pub async fn update_own_mail(
        &self,
        principal: &Principal,
        changes: MailChanges,
        ip: &str,
    ) -> Result<UserRow, AccountError> {
        let email = changes.email.map(|email| check_email(email.as_deref())).transpose()?;
        let (user, ip, now) = (principal.user_id.clone(), ip.to_owned(), self.now());
        self.db
            .write(move |tx| {
                let mut changed = Vec::new();
                if let Some(email) = &email {
                    users::set_email(tx, &user, email.as_deref())?;
                    changed.push("email");
                }
                if let Some(on) = changes.notices {
                    users::set_mail_notices(tx, &user, on)?;
                    changed.push(if on { "mail_notices=on" } else { "mail_notices=off" });
                }
                if !changed.is_empty() {
                    let detail = changed.join(" ");
                    let event = AuditEvent {
                        event: "account_mail_changed",
                        actor_id: Some(&user.0),
                        subject: Some(&user.0),
                        ip: &ip,
                        detail: &detail,
                    };
                    audit::record(tx, now, &event)?;
                }
                users::by_id(tx, &user).map(|row| row.ok_or(AccountError::NotFound))
            })
            .await?
    }

    /// Mails a reset link to every enabled account with this address. The outcome is the same
    /// whether there is one or not (only a malformed address or mail being off is an error).
    pub async fn request_password_reset(&self, email: &str, ip: &str) -> Result<(), AccountError> {
        if !self.mailer.enabled() {
            return Err(AccountError::MailOff);
        }
        let email = crate::mail::parse_address(email).map_err(AccountError::Invalid)?;
        let (mailer, ip, now) = (self.mailer.clone(), ip.to_owned(), self.now());
        self.db
            .write(move |tx| {
                for user in users::enabled_by_email(tx, &email)? {
                    let Some(address) = user.email.as_deref() else { continue };
                    if mail::resets_since(tx, &user.id.0, now - 3600)? >= RESETS_PER_HOUR {
                        continue;
                    }
                    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
                    mail::insert_reset(tx, &token_hash(&token), &user.id.0, now, now + RESET_LIFETIME)?;
                    let url = format!("{}/app/reset-password#{token}", mailer.public_url());
                    let message = messages::password_reset(&user.username, &url, RESET_LIFETIME);
                    mailer.queue(tx, now, Some(&user.id.0), address, &message)?;
                    let event = AuditEvent {
                        event: "password_reset_requested",
                        actor_id: None,
                        subject: Some(&user.id.0),
                        ip: &ip,
                        detail: "",
                    };
                    audit::record(tx, now, &event)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Sets a new password with a reset token: the token is spent, every session ends.
    pub async fn reset_password(&self, token: &str, new_password: String, ip: &str) -> Result<(), AccountError> {
        let password = Password::parse(new_password)?;
        let hash = self.hasher.hash(&password).await?;
        let (mailer, ip, now, token_hash) = (self.mailer.clone(), ip.to_owned(), self.now(), token_hash(token));
        self.db
            .write(move |tx| {
                let Some(user) = mail::spend_reset(tx, &token_hash, now)? else {
                    return Ok(Err(AccountError::InvalidResetToken));
                };
                let user = UserId(user);
                if users::by_id(tx, &user)?.is_none_or(|row| row.disabled) {
                    return Ok(Err(AccountError::InvalidResetToken));
                }
                users::set_password_hash(tx, &user, &hash)?;
                let ended = sessions::revoke_all_for_user(tx, &user, None, now, "password_reset")?;
                let detail = format!("{ended} sessions ended");
                let event = AuditEvent {
                    event: "password_reset",
                    actor_id: Some(&user.0),
                    subject: Some(&user.0),
                    ip: &ip,
                    detail: &detail,
                };
                audit::record(tx, now, &event)?;
                queue_notice(
                    &mailer,
                    tx,
                    now,
                    &user,
                    &Notice::PasswordChanged { how: "with a reset link sent by e-mail" },
                )?;
                Ok(Ok(()))
            })
            .await?
    }
}
