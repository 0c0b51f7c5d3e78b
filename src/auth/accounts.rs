//! Account management: what admins (or the `coffer user` command on the server) do to accounts.
//!
//! The rules live here, not in the API: the last enabled admin cannot be demoted, disabled or
//! deleted; a new password, a role change or disabling ends the user's sessions. Every change
//! is audited in the same transaction that makes it, and the checks come before any write.

use super::password::Verdict;
use super::{Auth, AuthError, Principal};
use crate::db::DbError;
use crate::db::audit::{self, AuditEvent, AuditRow};
use crate::db::sessions;
use crate::db::users::{self, NewUser, UserRow};
use crate::domain::{Password, PasswordError, Role, UserId, Username, UsernameError};
use crate::mail::messages::Notice;

/// Who makes a change: a signed-in user, or the server's own command line.
#[derive(Clone, Debug)]
pub struct Actor {
    pub user_id: Option<UserId>,
    pub ip: String,
}

impl Actor {
    pub fn cli() -> Self {
        Self { user_id: None, ip: "cli".into() }
    }

    pub fn of(principal: &Principal, ip: &str) -> Self {
        Self { user_id: Some(principal.user_id.clone()), ip: ip.into() }
    }

    fn id(&self) -> Option<&str> {
        self.user_id.as_ref().map(|id| id.0.as_str())
    }

    /// Audits something this actor did to `subject`, in the caller's transaction.
    fn record(
        &self,
        tx: &rusqlite::Connection,
        now: i64,
        event: &str,
        subject: &str,
        detail: &str,
    ) -> Result<(), DbError> {
        let entry = AuditEvent { event, actor_id: self.id(), subject: Some(subject), ip: &self.ip, detail };
        audit::record(tx, now, &entry)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no such user")]
    NotFound,
    #[error("the username `{0}` is taken")]
    UsernameTaken(String),
    #[error(transparent)]
    InvalidUsername(#[from] UsernameError),
    #[error(transparent)]
    WeakPassword(#[from] PasswordError),
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("the new password is the same as the current one; choose a different one")]
    PasswordUnchanged,
    #[error("this would leave no enabled admin; make another user an admin first")]
    LastAdmin,
    #[error("{0}")]
    Invalid(String),
    #[error("this server sends no e-mail (mail.host is not set); ask an administrator")]
    MailOff,
    #[error("the reset link is invalid, already used or expired; ask for a new one")]
    InvalidResetToken,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Hash(#[from] super::password::HashError),
}

pub struct NewAccount {
    pub username: String,
    pub password: String,
    pub email: Option<String>,
    pub role: Role,
    pub quota_bytes: Option<i64>,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Default)]
pub struct AccountChanges {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub quota_bytes: Option<Option<i64>>,
    pub email: Option<Option<String>>,
    pub password: Option<String>,
}

fn check_quota(quota: Option<i64>) -> Result<(), AccountError> {
    match quota {
        Some(bytes) if bytes < 0 => Err(AccountError::Invalid("the quota must be zero or more bytes".into())),
        _ => Ok(()),
    }
}

/// A valid address as it is stored (trimmed), or a 400 naming the problem.
pub(super) fn check_email(email: Option<&str>) -> Result<Option<String>, AccountError> {
    email.map(|email| crate::mail::parse_address(email).map_err(AccountError::Invalid)).transpose()
}

impl Auth {
    pub async fn list_users(&self, after: Option<String>, limit: u32) -> Result<Vec<UserRow>, AccountError> {
        Ok(self.db.read(move |conn| users::list(conn, after.as_deref(), limit)).await?)
    }

    pub async fn find_user(&self, username: &str) -> Result<UserRow, AccountError> {
        let username = Username::parse(username)?;
        self.db.read(move |conn| users::by_username(conn, &username)).await?.ok_or(AccountError::NotFound)
    }

    pub async fn create_user(&self, actor: &Actor, account: NewAccount) -> Result<UserRow, AccountError> {
        let username = Username::parse(&account.username)?;
        check_quota(account.quota_bytes)?;
        let email = check_email(account.email.as_deref())?;
        let hash = self.hasher.hash(&Password::parse(account.password)?).await?;
        let (actor, now) = (actor.clone(), self.now());
        self.db
            .write(move |tx| {
                let new = NewUser {
                    username: &username,
                    email: email.as_deref(),
                    password_hash: &hash,
                    role: account.role,
                    quota_bytes: account.quota_bytes,
                    now,
                };
                let Some(id) = users::insert(tx, &new)? else {
                    return Ok(Err(AccountError::UsernameTaken(username.to_string())));
                };
                let detail = format!("username={username} role={}", account.role);
                actor.record(tx, now, "user_created", &id.0, &detail)?;
                users::by_id(tx, &id).map(|user| user.ok_or(AccountError::NotFound))
            })
            .await?
    }

    pub async fn update_user(
        &self,
        actor: &Actor,
        id: &UserId,
        mut changes: AccountChanges,
    ) -> Result<UserRow, AccountError> {
        if let Some(quota) = changes.quota_bytes {
            check_quota(quota)?;
        }
        if let Some(email) = changes.email.take() {
            changes.email = Some(check_email(email.as_deref())?);
        }
        let hash = match changes.password {
            Some(password) => {
                let password = Password::parse(password)?;
                let current = self.user(id).await?.map(|user| user.password_hash);
                if current.is_some() && self.hasher.verify(password.expose(), current).await? != Verdict::Mismatch {
                    return Err(AccountError::PasswordUnchanged);
                }
                Some(self.hasher.hash(&password).await?)
            }
            None => None,
        };
        let (actor, id, now) = (actor.clone(), id.clone(), self.now());
        let mailer = self.mailer.clone();
        self.db
            .write(move |tx| {
                let Some(user) = users::by_id(tx, &id)? else { return Ok(Err(AccountError::NotFound)) };
                let loses_admin = changes.role == Some(Role::User) || changes.disabled == Some(true);
                if user.role == Role::Admin
                    && !user.disabled
                    && loses_admin
                    && users::other_enabled_admins(tx, &id)? == 0
                {
                    return Ok(Err(AccountError::LastAdmin));
                }
                let mut changed = Vec::new();
                if let Some(role) = changes.role.filter(|role| *role != user.role) {
                    users::set_role(tx, &id, role)?;
                    changed.push(format!("role={role}"));
                }
                if let Some(disabled) = changes.disabled.filter(|disabled| *disabled != user.disabled) {
                    users::set_disabled(tx, &id, disabled)?;
                    changed.push(format!("disabled={disabled}"));
                }
                if let Some(quota) = changes.quota_bytes {
                    users::set_quota(tx, &id, quota)?;
                    changed.push(format!("quota_bytes={}", quota.map_or("none".into(), |bytes| bytes.to_string())));
                }
                if let Some(email) = &changes.email {
                    users::set_email(tx, &id, email.as_deref())?;
                    changed.push("email".into());
                }
                if let Some(hash) = &hash {
                    users::set_password_hash(tx, &id, hash)?;
                    changed.push("password".into());
                    super::queue_notice(
                        &mailer,
                        tx,
                        now,
                        &id,
                        &Notice::PasswordChanged { how: "by an administrator" },
                    )?;
                }
                let ends_sessions = changed
                    .iter()
                    .any(|change| change.starts_with("role=") || change == "disabled=true" || change == "password");
                if ends_sessions {
                    let ended = sessions::revoke_all_for_user(tx, &id, None, now, "account_changed")?;
                    changed.push(format!("{ended} sessions ended"));
                }
                if !changed.is_empty() {
                    let detail = changed.join(" ");
                    actor.record(tx, now, "user_updated", &id.0, &detail)?;
                }
                users::by_id(tx, &id).map(|user| user.ok_or(AccountError::NotFound))
            })
            .await?
    }

    pub async fn delete_user(&self, actor: &Actor, id: &UserId) -> Result<(), AccountError> {
        let (actor, id, now) = (actor.clone(), id.clone(), self.now());
        self.db
            .write(move |tx| {
                let Some(user) = users::by_id(tx, &id)? else { return Ok(Err(AccountError::NotFound)) };
                if user.role == Role::Admin && !user.disabled && users::other_enabled_admins(tx, &id)? == 0 {
                    return Ok(Err(AccountError::LastAdmin));
                }
                users::delete(tx, &id)?;
                let detail = format!("username={}", user.username);
                actor.record(tx, now, "user_deleted", &id.0, &detail)?;
                Ok(Ok(()))
            })
            .await?
    }

    /// Ends every session of a user; returns how many.
    pub async fn end_user_sessions(&self, actor: &Actor, id: &UserId) -> Result<usize, AccountError> {
        let (actor, id, now) = (actor.clone(), id.clone(), self.now());
        self.db
            .write(move |tx| {
                if users::by_id(tx, &id)?.is_none() {
                    return Ok(Err(AccountError::NotFound));
                }
                let ended = sessions::revoke_all_for_user(tx, &id, None, now, "revoked_by_admin")?;
                let detail = format!("{ended} sessions ended");
                actor.record(tx, now, "sessions_revoked", &id.0, &detail)?;
                Ok(Ok(ended))
            })
            .await?
    }

    /// Records that `principal` tried something it may not do.
    pub async fn record_denial(&self, principal: &Principal, what: &str, ip: &str) -> Result<(), AccountError> {
        let (user, what, ip, now) = (principal.user_id.clone(), what.to_owned(), ip.to_owned(), self.now());
        self.db
            .write(move |tx| {
                let event = AuditEvent {
                    event: "authorization_denied",
                    actor_id: Some(&user.0),
                    subject: None,
                    ip: &ip,
                    detail: &what,
                };
                audit::record(tx, now, &event)
            })
            .await?;
        Ok(())
    }

    pub async fn audit_log(
        &self,
        before: Option<i64>,
        limit: u32,
        user: Option<String>,
        event: Option<String>,
    ) -> Result<Vec<AuditRow>, AccountError> {
        Ok(self.db.read(move |conn| audit::list(conn, before, limit, user.as_deref(), event.as_deref())).await?)
    }
}
