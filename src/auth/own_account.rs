//! What a signed-in user does to their own account: change the password, list and end their
//! sessions. Admins' changes to accounts are in `accounts.rs`.

use super::accounts::AccountError;
use super::password::Verdict;
use super::throttle::Keys;
use super::{Auth, AuthError, Principal, Tokens, start_session};
use crate::db::audit::{self, AuditEvent};
use crate::db::sessions::{self, SessionRow};
use crate::db::users;
use crate::domain::{Password, SessionId};
use crate::mail::messages::Notice;

impl Auth {
    /// Changes the caller's password after checking the current one. Every session of the
    /// user ends, the caller's included; the caller gets the tokens of a new session.
    pub async fn change_own_password(
        &self,
        principal: &Principal,
        current: &str,
        new: String,
        ip: &str,
        browser: bool,
    ) -> Result<Tokens, AccountError> {
        let user = self.user(&principal.user_id).await?.ok_or(AccountError::NotFound)?;
        let keys = Keys::for_account(&user.username, ip, self.throttle.policy().free_failures);
        self.throttle.check(&keys).map_err(AuthError::Throttled)?;
        let verdict = self.hasher.verify(current, Some(user.password_hash.clone())).await?;
        let (now, ip) = (self.now(), ip.to_owned());
        if verdict == Verdict::Mismatch {
            self.throttle.record_failure(&keys);
            let id = user.id.0.clone();
            self.db
                .write(move |tx| {
                    let event = AuditEvent {
                        event: "password_change_failed",
                        actor_id: Some(&id),
                        subject: Some(&id),
                        ip: &ip,
                        detail: "",
                    };
                    audit::record(tx, now, &event)
                })
                .await?;
            return Err(AccountError::WrongPassword);
        }
        if new == current {
            return Err(AccountError::PasswordUnchanged);
        }
        let hash = self.hasher.hash(&Password::parse(new)?).await?;
        let lifetime = self.lifetimes.refresh_absolute;
        let user_id = user.id.clone();
        let cookie = browser.then(super::browser::new_cookie_secret);
        let cookie_hash = cookie.as_ref().map(|(_, hash)| hash.clone());
        let mailer = self.mailer.clone();
        let (session, refresh_token, expires_at) = self
            .db
            .write(move |tx| {
                users::set_password_hash(tx, &user_id, &hash)?;
                super::queue_notice(
                    &mailer,
                    tx,
                    now,
                    &user_id,
                    &Notice::PasswordChanged { how: "by the account itself" },
                )?;
                let ended = sessions::revoke_all_for_user(tx, &user_id, None, now, "password_changed")?;
                let started = start_session(tx, &user_id, &ip, now, lifetime, cookie_hash.as_deref())?;
                let detail = format!("{ended} sessions ended");
                let event = AuditEvent {
                    event: "password_changed",
                    actor_id: Some(&user_id.0),
                    subject: Some(&user_id.0),
                    ip: &ip,
                    detail: &detail,
                };
                audit::record(tx, now, &event)?;
                Ok(started)
            })
            .await?;
        let mut tokens = self.tokens(&user.id, &session, user.role, refresh_token, now, expires_at);
        tokens.session_cookie = cookie.map(|(secret, _)| secret);
        Ok(tokens)
    }

    pub async fn own_sessions(&self, principal: &Principal) -> Result<Vec<SessionRow>, AccountError> {
        let (user, now) = (principal.user_id.clone(), self.now());
        Ok(self.db.read(move |conn| sessions::list_live(conn, &user, now)).await?)
    }

    /// Ends one of the caller's sessions; `false` if there is no such live session of theirs.
    pub async fn end_own_session(&self, principal: &Principal, session: &str, ip: &str) -> Result<bool, AccountError> {
        let (user, session, ip, now) =
            (principal.user_id.clone(), SessionId(session.to_owned()), ip.to_owned(), self.now());
        Ok(self
            .db
            .write(move |tx| {
                let ended = sessions::revoke_own(tx, &user, &session, now, "revoked_by_user")?;
                if ended {
                    let event = AuditEvent {
                        event: "session_revoked",
                        actor_id: Some(&user.0),
                        subject: Some(&session.0),
                        ip: &ip,
                        detail: "",
                    };
                    audit::record(tx, now, &event)?;
                }
                Ok(ended)
            })
            .await?)
    }
}
