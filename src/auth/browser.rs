//! Browser sessions: the web app signs in with a password and gets an HttpOnly cookie,
//! `__Host-coffer_session`, instead of tokens a script could read.
//!
//! The cookie holds 256 random bits; the session row keeps only their SHA-256
//! (`sessions.cookie_hash`), so it is one of the user's sessions like any other: listed at
//! `/me/sessions`, ended by sign-out, revocation, a password change or disabling the account,
//! at once. It lasts at most `auth.refresh_lifetime` from sign-in and ends after
//! `auth.refresh_idle_timeout` without use. Use is recorded at most once a minute, so reading
//! pages does not take the database's write lock on every request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Auth, AuthError, Credential, Principal, token_hash};
use crate::db::sessions;

/// The session cookie's name. `__Host-` makes browsers insist on `Secure`, `Path=/` and no
/// `Domain`, so no other host or plain-HTTP page can set or shadow it.
pub const SESSION_COOKIE: &str = "__Host-coffer_session";

/// Use of a session is written down at most this often (seconds).
const TOUCH_INTERVAL: i64 = 60;

/// A new cookie secret and the hash its session row keeps.
pub(super) fn new_cookie_secret() -> (String, Vec<u8>) {
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = token_hash(&secret);
    (secret, hash)
}

impl Auth {
    /// The caller behind a session cookie: the session must be live, its user enabled, and
    /// it must have been used within the idle timeout (a session idle for longer is ended).
    pub async fn authenticate_cookie(&self, secret: &str) -> Result<Principal, AuthError> {
        // Anything but our own 43-character secrets cannot match: no lookup for them.
        if secret.len() != 43 {
            return Err(AuthError::InvalidToken);
        }
        let hash = token_hash(secret);
        let now = self.now();
        let found = self.db.read(move |conn| sessions::find_by_cookie(conn, &hash, now)).await?;
        let found = found.ok_or(AuthError::InvalidToken)?;
        let session = found.session_id.clone();
        if now - found.last_used_at > self.lifetimes.refresh_idle {
            self.db.write(move |tx| sessions::revoke(tx, &session, now, "idle_timeout").map(|_| ())).await?;
            return Err(AuthError::InvalidToken);
        }
        if now - found.last_used_at >= TOUCH_INTERVAL {
            self.db.write(move |tx| sessions::touch(tx, &session, now)).await?;
        }
        Ok(Principal { user_id: found.user_id, role: found.role, credential: Credential::Session(found.session_id) })
    }

    /// How long a browser keeps the session cookie (seconds): the sessions' absolute lifetime.
    pub fn session_cookie_max_age(&self) -> i64 {
        self.lifetimes.refresh_absolute
    }
}
