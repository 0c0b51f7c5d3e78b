//! Authentication: passwords, sessions, access and refresh tokens.
//!
//! A login creates a session. The client gets a short-lived access token (a signed JWT naming
//! the session) and an opaque refresh token (256 random bits, stored only as its SHA-256).
//! Every request re-checks that the access token's session is live and the user enabled with
//! the same role, so logout, revocation, disabling and role changes take effect on the very
//! next request. Each refresh spends its token and issues the next; presenting a spent token
//! again is taken as theft and revokes the whole session. Refreshes run in IMMEDIATE
//! transactions, so two racing refreshes with one token cannot both succeed.
//!
//! This module knows nothing of HTTP; it never logs a password or a token.

mod accounts;
mod api_tokens;
pub mod browser;
pub mod device;
mod mail_account;
mod own_account;
pub mod password;
mod password_login;
mod provider_sign_in;
mod sign_in;
pub mod throttle;
pub mod token;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::clock::Clock;
use crate::db::audit::{self, AuditEvent};
use crate::db::{Db, DbError, sessions, users};
use crate::domain::{Password, Role, SessionId, UserId, Username};
use crate::mail::Mailer;
use crate::mail::messages::Notice;
pub use accounts::{AccountChanges, AccountError, Actor, NewAccount};
pub use api_tokens::{API_TOKEN_PREFIX, CreatedApiToken};
use device::DeviceTokens;
pub use mail_account::{MailChanges, RESET_LIFETIME};
use password::{PasswordHasherPool, Verdict};
pub use password_login::PasswordLogin;
pub use provider_sign_in::{ProviderOutcome, VouchedIdentity};
use throttle::{Keys, Throttle, ThrottlePolicy};
use token::{AccessClaims, TokenSigner};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user, wrong password or disabled account: deliberately indistinguishable.
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("the token is invalid, expired or revoked")]
    InvalidToken,
    #[error("too many failed sign-ins; try again in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    /// Too many password checks are already waiting (a flood); nothing was counted.
    #[error("the server is busy checking passwords; try again in a second")]
    Busy,
    /// `auth.password_login = false` and the account is not a break-glass admin.
    #[error("password sign-in is turned off here; sign in with your organisation's provider")]
    PasswordLoginDisabled,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Hash(password::HashError),
}

impl From<password::HashError> for AuthError {
    fn from(err: password::HashError) -> Self {
        match err {
            password::HashError::Busy => Self::Busy,
            other => Self::Hash(other),
        }
    }
}

/// Lifetimes, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub access: i64,
    pub refresh_idle: i64,
    pub refresh_absolute: i64,
}

/// What a successful login or refresh hands the client.
pub struct Tokens {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: String,
    pub refresh_expires_in: i64,
    /// After a password sign-in: proof for later sign-ins that this client signed in before.
    pub device_token: Option<String>,
    /// For a browser: the secret of the session's cookie (`__Host-coffer_session`).
    pub session_cookie: Option<String>,
}

/// A password sign-in attempt.
pub struct LoginAttempt<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub ip: &'a str,
    /// The device token this client got at an earlier sign-in, if it kept one.
    pub device_token: Option<&'a str>,
    /// A browser signing in: the session gets a cookie secret (see `browser.rs`).
    pub browser: bool,
}

/// How the caller of a request proved who they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// An access token from a password sign-in.
    Session(SessionId),
    /// A personal API token.
    ApiToken { id: String, read_only: bool },
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user_id: UserId,
    pub role: Role,
    pub credential: Credential,
}

impl Principal {
    /// Whether the credential this caller was authorized with still stands, in the caller's
    /// transaction: the account exists and is enabled and the session or API token was not
    /// ended. Expiry is not checked, so work authorized at its start (a long upload) finishes
    /// when an access token runs out meanwhile, but not after a sign-out, a revocation, or the
    /// account being disabled or deleted.
    pub fn still_authorized(&self, conn: &rusqlite::Connection) -> Result<bool, DbError> {
        match &self.credential {
            Credential::Session(session) => sessions::not_ended(conn, session, &self.user_id),
            Credential::ApiToken { id, .. } => crate::db::api_tokens::not_revoked(conn, id, &self.user_id),
        }
    }

    pub fn session(&self) -> Option<&SessionId> {
        match &self.credential {
            Credential::Session(session) => Some(session),
            Credential::ApiToken { .. } => None,
        }
    }

    pub fn read_only(&self) -> bool {
        matches!(self.credential, Credential::ApiToken { read_only: true, .. })
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

fn token_hash(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref().to_vec()
}

fn new_refresh_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

pub struct Auth {
    db: Db,
    clock: Clock,
    hasher: PasswordHasherPool,
    signer: Arc<TokenSigner>,
    devices: DeviceTokens,
    lifetimes: Lifetimes,
    throttle: Throttle,
    mailer: Mailer,
    password_login: PasswordLogin,
}

/// What `Auth::new` is made of.
pub struct AuthParts {
    pub db: Db,
    pub clock: Clock,
    pub hasher: PasswordHasherPool,
    pub signer: TokenSigner,
    pub devices: DeviceTokens,
    pub lifetimes: Lifetimes,
    pub throttle: ThrottlePolicy,
    pub mailer: Mailer,
    pub password_login: PasswordLogin,
}

/// A new session row and the refresh token that opens it (and, for a browser, the hash of its
/// cookie's secret); the caller's transaction commits both.
fn start_session(
    tx: &rusqlite::Connection,
    user: &UserId,
    ip: &str,
    now: i64,
    lifetime: i64,
    cookie_hash: Option<&[u8]>,
) -> Result<(SessionId, String, i64), DbError> {
    let session = SessionId::generate();
    let refresh_token = new_refresh_token();
    let expires_at = now + lifetime;
    sessions::create(tx, &sessions::NewSession { id: &session, user_id: user, now, expires_at, client_ip: ip })?;
    sessions::add_refresh_token(tx, &token_hash(&refresh_token), &session, now)?;
    if let Some(hash) = cookie_hash {
        sessions::set_cookie_hash(tx, &session, hash)?;
    }
    Ok((session, refresh_token, expires_at))
}

impl Auth {
    pub fn new(parts: AuthParts) -> Self {
        let AuthParts { db, clock, hasher, signer, devices, lifetimes, throttle, mailer, password_login } = parts;
        let throttle = Throttle::new(throttle, clock.clone());
        Self { db, clock, hasher, signer: Arc::new(signer), devices, lifetimes, throttle, mailer, password_login }
    }

    pub fn mailer(&self) -> &Mailer {
        &self.mailer
    }

    pub fn hasher(&self) -> &PasswordHasherPool {
        &self.hasher
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn access_token(&self, user: &UserId, session: &SessionId, role: Role, now: i64) -> String {
        self.signer.sign(&AccessClaims {
            sub: user.0.clone(),
            sid: session.0.clone(),
            role: role.as_str().to_owned(),
            iat: now,
            exp: now + self.lifetimes.access,
            iss: token::ISSUER.to_owned(),
            aud: token::AUDIENCE.to_owned(),
            typ: token::ACCESS_TYPE.to_owned(),
        })
    }

    fn tokens(
        &self,
        user: &UserId,
        session: &SessionId,
        role: Role,
        refresh_token: String,
        now: i64,
        expires_at: i64,
    ) -> Tokens {
        Tokens {
            access_token: self.access_token(user, session, role, now),
            expires_in: self.lifetimes.access,
            refresh_token,
            refresh_expires_in: self.lifetimes.refresh_idle.min(expires_at - now),
            device_token: None,
            session_cookie: None,
        }
    }

    /// Checks a bearer token (an access token or a personal API token) and that the session or
    /// token, the user and the role are still current.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        let now = self.now();
        if bearer.starts_with(API_TOKEN_PREFIX) {
            let hash = token_hash(bearer);
            let found = self.db.read(move |conn| crate::db::api_tokens::authenticate(conn, &hash, now)).await?;
            let (id, user_id, role, read_only) = found.ok_or(AuthError::InvalidToken)?;
            return Ok(Principal { user_id, role, credential: Credential::ApiToken { id, read_only } });
        }
        let claims = self.signer.verify(bearer, now).map_err(|_| AuthError::InvalidToken)?;
        let session = SessionId(claims.sid);
        let lookup = session.clone();
        let live = self.db.read(move |conn| sessions::live_session_user(conn, &lookup, now)).await?;
        match live {
            Some((user_id, role)) if user_id.0 == claims.sub && role.as_str() == claims.role => {
                Ok(Principal { user_id, role, credential: Credential::Session(session) })
            }
            _ => Err(AuthError::InvalidToken),
        }
    }

    pub async fn user(&self, id: &UserId) -> Result<Option<users::UserRow>, AuthError> {
        let id = id.clone();
        Ok(self.db.read(move |conn| users::by_id(conn, &id)).await?)
    }
}

/// Queues a security notice to `user` in the caller's transaction, if the account has an
/// address and has not turned notices off.
pub(crate) fn queue_notice(
    mailer: &Mailer,
    tx: &rusqlite::Connection,
    now: i64,
    user: &UserId,
    notice: &Notice<'_>,
) -> Result<(), DbError> {
    if !mailer.enabled() {
        return Ok(());
    }
    let Some(row) = users::by_id(tx, user)? else { return Ok(()) };
    let Some(email) = row.email.as_deref().filter(|_| row.mail_notices) else { return Ok(()) };
    let settings = format!("{}/", mailer.public_url());
    let message = crate::mail::messages::security_notice(&row.username, notice, &settings);
    mailer.queue(tx, now, Some(&user.0), email, &message)
}

/// First start with no users: makes `admin` with a random password, written to
/// `password_file` (0600) before the account exists, so a crash never leaves an admin whose
/// password nobody has. Returns whether it made one.
pub async fn ensure_initial_admin(auth: &Auth, password_file: &Path) -> Result<bool, anyhow::Error> {
    let (db, hasher) = (&auth.db, &auth.hasher);
    if db.read(users::count).await? > 0 {
        return Ok(false);
    }
    let password = Password::trusted(URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>()));
    let hash = hasher.hash(&password).await?;
    let file = password_file.to_owned();
    let contents = format!("{}\n", password.expose());
    tokio::task::spawn_blocking(move || crate::state_dir::write_file_atomically(&file, contents.as_bytes(), 0o600))
        .await??;
    let now = auth.now();
    let created = db
        .write(move |tx| {
            if users::count(tx)? > 0 {
                return Ok(false);
            }
            let username = Username::parse("admin").map_err(|err| DbError::Task(err.to_string()))?;
            let new = users::NewUser {
                username: &username,
                email: None,
                password_hash: &hash,
                role: Role::Admin,
                quota_bytes: None,
                now,
            };
            let id = users::insert(tx, &new)?;
            let event = AuditEvent {
                event: "initial_admin_created",
                actor_id: None,
                subject: id.as_ref().map(|id| id.0.as_str()),
                ip: "",
                detail: "",
            };
            audit::record(tx, now, &event)?;
            Ok(id.is_some())
        })
        .await?;
    if created {
        tracing::warn!(file = %password_file.display(), "created the user `admin`; its password is in this file: sign in, change it, then delete the file");
    }
    Ok(created)
}
