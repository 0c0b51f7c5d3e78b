//! Personal API tokens for scripts: `cfr_` plus 256 random bits, shown once at creation and
//! stored only as SHA-256. A read-only token may only read (GET and HEAD). Tokens belong to a
//! user and stop working when the user is disabled or deleted; they survive a password change,
//! being separate credentials the user lists and revokes.

use super::accounts::AccountError;
use super::{Auth, Principal, token_hash};
use crate::db::api_tokens::{self, ApiTokenRow, NewApiToken};
use crate::db::audit::{self, AuditEvent};
use crate::domain::random_id;

pub const API_TOKEN_PREFIX: &str = "cfr_";
/// Longest lifetime a token can be given, in days.
pub const MAX_TOKEN_DAYS: u32 = 3650;

pub struct CreatedApiToken {
    pub row: ApiTokenRow,
    /// The token itself; this is the only time it is available.
    pub token: String,
}

impl Auth {
    pub async fn create_api_token(
        &self,
        principal: &Principal,
        name: &str,
        read_only: bool,
        expires_in_days: Option<u32>,
        ip: &str,
    ) -> Result<CreatedApiToken, AccountError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(AccountError::Invalid(
                "a token name is 1 to 100 characters, without control characters".into(),
            ));
        }
        if expires_in_days.is_some_and(|days| days == 0 || days > MAX_TOKEN_DAYS) {
            return Err(AccountError::Invalid(format!("expires_in_days must be 1 to {MAX_TOKEN_DAYS}")));
        }
        let token = format!(
            "{API_TOKEN_PREFIX}{}",
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, rand::random::<[u8; 32]>())
        );
        let hash = token_hash(&token);
        let now = self.now();
        let expires_at = expires_in_days.map(|days| now + i64::from(days) * 86_400);
        let row = ApiTokenRow {
            id: random_id(),
            name: name.to_owned(),
            read_only,
            created_at: now,
            expires_at,
            last_used_at: None,
        };
        let (user, ip, id, name) = (principal.user_id.clone(), ip.to_owned(), row.id.clone(), row.name.clone());
        self.db
            .write(move |tx| {
                let new = NewApiToken { id: &id, user_id: &user, name: &name, hash: &hash, read_only, now, expires_at };
                api_tokens::insert(tx, &new)?;
                let detail = format!("name={name} scope={}", if read_only { "read-only" } else { "read-write" });
                let event = AuditEvent {
                    event: "api_token_created",
                    actor_id: Some(&user.0),
                    subject: Some(&id),
                    ip: &ip,
                    detail: &detail,
                };
                audit::record(tx, now, &event)
            })
            .await?;
        Ok(CreatedApiToken { row, token })
    }

    pub async fn api_tokens(&self, principal: &Principal) -> Result<Vec<ApiTokenRow>, AccountError> {
        let (user, now) = (principal.user_id.clone(), self.now());
        Ok(self.db.read(move |conn| api_tokens::list_live(conn, &user, now)).await?)
    }

    /// Revokes one of the caller's API tokens; `false` if they have no such live token.
    pub async fn revoke_api_token(&self, principal: &Principal, id: &str, ip: &str) -> Result<bool, AccountError> {
        let (user, id, ip, now) = (principal.user_id.clone(), id.to_owned(), ip.to_owned(), self.now());
        Ok(self
            .db
            .write(move |tx| {
                let revoked = api_tokens::revoke(tx, &user, &id, now)?;
                if revoked {
                    let event = AuditEvent {
                        event: "api_token_revoked",
                        actor_id: Some(&user.0),
                        subject: Some(&id),
                        ip: &ip,
                        detail: "",
                    };
                    audit::record(tx, now, &event)?;
                }
                Ok(revoked)
            })
            .await?)
    }
}
