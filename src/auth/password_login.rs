//! `auth.password_login = false`: password sign-in only for the named break-glass admins, for
//! when every other account signs in through an OpenID Connect provider.

use super::{Auth, AuthError};
use crate::db::audit::{self, AuditEvent};

/// Who may sign in with a password (`auth.password_login`, `auth.break_glass_admins`).
#[derive(Clone, Debug)]
pub struct PasswordLogin {
    pub enabled: bool,
    /// Username keys (lowercase) of the admins who may anyway.
    pub break_glass: Vec<String>,
}

impl Default for PasswordLogin {
    fn default() -> Self {
        Self { enabled: true, break_glass: Vec::new() }
    }
}

impl Auth {
    pub(super) async fn record_password_login_refusal(&self, ip: &str) -> Result<(), AuthError> {
        let (now, ip) = (self.now(), ip.to_owned());
        self.db
            .write(move |tx| {
                let event = AuditEvent {
                    event: "login_failed",
                    actor_id: None,
                    subject: None,
                    ip: &ip,
                    detail: "password sign-in is turned off",
                };
                audit::record(tx, now, &event)
            })
            .await?;
        Ok(())
    }

    /// Whether password sign-in is on for everyone (the web app hides the form otherwise).
    pub fn password_login_enabled(&self) -> bool {
        self.password_login.enabled
    }
}
