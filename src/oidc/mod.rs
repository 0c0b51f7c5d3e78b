//! Sign-in with OpenID Connect providers: the authorization code flow with PKCE (S256),
//! `state` and `nonce` kept server-side (single use, ten minutes), bound to the browser that
//! started the sign-in, ID tokens checked (`jwt.rs`) against keys that follow the provider's
//! rotation (`provider.rs`), and the result handed to `auth` to decide which account it is.
//!
//! Knows nothing of HTTP serving; never logs a code, token, state, nonce or secret.

pub mod http;
pub mod jwt;
pub mod provider;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::auth::{Auth, AuthError, ProviderOutcome, VouchedIdentity};
use crate::clock::Clock;
use crate::config::OidcSettings;
use crate::db::{Db, oidc as store};
use crate::domain::UserId;
use http::HttpClient;
use jwt::TokenError;
use provider::Provider;

/// How long a started sign-in may take at the provider (seconds).
pub const PENDING_LIFETIME: i64 = 600;
/// Where providers send the browser back, under the public address.
pub const CALLBACK_PATH: &str = "/auth/oidc/callback";

fn random_text() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn sha256(text: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref().to_vec()
}

/// A sign-in just started: send the browser to `url`, and give it `browser_secret` as a
/// cookie; the callback must come back with both.
pub struct Started {
    pub url: String,
    pub browser_secret: String,
}

/// What the provider sent back to the callback.
#[derive(Default)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("no provider `{0}` is configured")]
    UnknownProvider(String),
    /// The provider could not be reached or answered wrongly (the text is for admins' logs).
    #[error("the provider cannot be reached: {0}")]
    Provider(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// How a callback ended, for the page the browser gets.
pub enum Finished {
    SignedIn {
        cookie: String,
        lifetime: i64,
    },
    Linked,
    /// A sentence for the person; the details are in the audit log.
    Refused(String),
}

pub struct Oidc {
    providers: Vec<Arc<Provider>>,
    http: HttpClient,
    db: Db,
    clock: Clock,
    auth: Arc<Auth>,
}

impl Oidc {
    /// Reads every provider's client secret file; fails (naming the file) if one cannot be read.
    pub fn new(settings: &OidcSettings, db: Db, clock: Clock, auth: Arc<Auth>) -> anyhow::Result<Self> {
        let mut providers = Vec::new();
        for provider in &settings.providers {
            let secret = match &provider.client_secret_file {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|err| {
                        anyhow::anyhow!(
                            "oidc provider `{}`: cannot read client_secret_file {}: {err}",
                            provider.id,
                            path.display()
                        )
                    })?;
                    Some(text.trim_end_matches(['\n', '\r']).to_owned())
                }
                None => None,
            };
            providers.push(Arc::new(Provider::new(provider.clone(), secret)));
        }
        Ok(Self { providers, http: HttpClient::new()?, db, clock, auth })
    }

    /// (id, label) of each provider, in the configured order.
    pub fn providers(&self) -> Vec<(String, String)> {
        self.providers.iter().map(|provider| (provider.settings.id.clone(), provider.settings.label.clone())).collect()
    }

    fn provider(&self, id: &str) -> Result<&Arc<Provider>, OidcError> {
        self.providers
            .iter()
            .find(|provider| provider.settings.id == id)
            .ok_or_else(|| OidcError::UnknownProvider(id.to_owned()))
    }

    /// Starts a sign-in (or, with `link_user`, a link) at `provider_id`; `base_url` is this
    /// server's public address, the redirect URI is under it.
    pub async fn start(
        &self,
        provider_id: &str,
        base_url: &str,
        link_user: Option<UserId>,
    ) -> Result<Started, OidcError> {
        let provider = self.provider(provider_id)?;
        let metadata = provider.metadata(&self.http).await.map_err(OidcError::Provider)?;
        let (state, nonce, verifier, browser_secret) = (random_text(), random_text(), random_text(), random_text());
        let challenge = URL_SAFE_NO_PAD.encode(sha256(&verifier));
        let redirect_uri = format!("{base_url}{CALLBACK_PATH}");
        let now = self.clock.now();
        let pending_provider = provider.settings.id.clone();
        let (state_hash, browser_hash) = (sha256(&state), sha256(&browser_secret));
        let (stored_nonce, stored_verifier, stored_redirect) = (nonce.clone(), verifier, redirect_uri.clone());
        self.db
            .write(move |tx| {
                store::add_pending(
                    tx,
                    &store::NewPending {
                        state_hash: &state_hash,
                        provider: &pending_provider,
                        nonce: &stored_nonce,
                        pkce_verifier: &stored_verifier,
                        redirect_uri: &stored_redirect,
                        browser_hash: &browser_hash,
                        link_user: link_user.as_ref(),
                        now,
                        expires_at: now + PENDING_LIFETIME,
                    },
                )
            })
            .await
            .map_err(AuthError::from)?;
        let settings = &provider.settings;
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &settings.client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("scope", &settings.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let separator = if metadata.authorization_endpoint.contains('?') { '&' } else { '?' };
        Ok(Started { url: format!("{}{separator}{query}", metadata.authorization_endpoint), browser_secret })
    }

    /// Finishes a sign-in. Every refusal is audited and answered with a sentence; only an
    /// internal failure (the database) is an error.
    pub async fn finish(
        &self,
        callback: Callback,
        browser_secret: Option<&str>,
        ip: &str,
    ) -> Result<Finished, OidcError> {
        let refused = |provider: &str, reason: String, user: Option<UserId>| {
            let provider = provider.to_owned();
            async move {
                self.auth.record_provider_refusal(&provider, &reason, user, ip).await?;
                Ok::<_, OidcError>(Finished::Refused(reason))
            }
        };
        let Some(state) = callback.state.filter(|state| !state.is_empty() && state.len() <= 256) else {
            return refused("-", "the answer from the provider has no sign-in state".into(), None).await;
        };
        let state_hash = sha256(&state);
        let pending = self.db.write(move |tx| store::take_pending(tx, &state_hash)).await.map_err(AuthError::from)?;
        let Some(pending) = pending else {
            return refused("-", "this sign-in is unknown or was already used; start again".into(), None).await;
        };
        let (id, user) = (pending.provider.clone(), pending.link_user.clone());
        if pending.expires_at <= self.clock.now() {
            return refused(&id, "this sign-in took longer than ten minutes; start again".into(), user).await;
        }
        let same_browser = browser_secret.is_some_and(|secret| sha256(secret) == pending.browser_hash);
        if !same_browser {
            return refused(&id, "this sign-in was started in another browser; start again here".into(), user).await;
        }
        let Ok(provider) = self.provider(&id).map(Arc::clone) else {
            return refused(&id, "this provider is no longer configured".into(), user).await;
        };
        if let Some(error) = callback.error {
            let error: String = error.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
            return refused(&id, format!("the provider did not sign you in ({error})"), user).await;
        }
        let metadata = provider.metadata(&self.http).await.map_err(OidcError::Provider)?;
        // RFC 9207: the answer must come from the provider this sign-in went to (mix-up).
        match callback.iss.as_deref() {
            Some(iss) if iss != provider.settings.issuer => {
                return refused(&id, "the answer came from another provider than the one asked".into(), user).await;
            }
            None if metadata.sends_iss => {
                return refused(&id, "the answer lacks the provider's name (iss)".into(), user).await;
            }
            _ => {}
        }
        let Some(code) = callback.code.filter(|code| !code.is_empty() && code.len() <= 2048) else {
            return refused(&id, "the answer from the provider has no code".into(), user).await;
        };
        let identity = match self.redeem(&provider, &metadata, &code, &pending).await {
            Ok(identity) => identity,
            Err(reason) => return refused(&id, reason, user).await,
        };
        Ok(match self.auth.provider_sign_in(&provider.settings, identity, user, ip).await? {
            ProviderOutcome::SignedIn { cookie, lifetime } => Finished::SignedIn { cookie, lifetime },
            ProviderOutcome::Linked => Finished::Linked,
            ProviderOutcome::Refused(reason) => Finished::Refused(reason),
        })
    }

    /// Exchanges the code and checks the ID token; `Err` is the refusal's reason.
    async fn redeem(
        &self,
        provider: &Provider,
        metadata: &provider::Metadata,
        code: &str,
        pending: &store::Pending,
    ) -> Result<VouchedIdentity, String> {
        let settings = &provider.settings;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", pending.redirect_uri.as_str()),
            ("code_verifier", pending.pkce_verifier.as_str()),
        ];
        let basic = provider.client_secret.as_deref().map(|secret| (settings.client_id.as_str(), secret));
        if basic.is_none() {
            form.push(("client_id", settings.client_id.as_str()));
        }
        let answer = self
            .http
            .post_form(&metadata.token_endpoint, &form, basic)
            .await
            .map_err(|err| format!("the provider refused the code: {err}"))?;
        let id_token = answer.get("id_token").and_then(Value::as_str).ok_or("the provider sent no ID token")?;
        let claims = self.verify(provider, id_token, &pending.nonce).await.map_err(|err| err.to_string())?;
        let mut identity = vouched(settings, &claims);
        // Some providers (Zitadel, some Entra set-ups) keep e-mail and groups out of the ID
        // token: ask userinfo, which must be about the same subject.
        let lacking = identity.email.is_none() || !claims.contains_key(&settings.groups_claim);
        if let (true, Some(userinfo), Some(access)) =
            (lacking, &metadata.userinfo_endpoint, answer.get("access_token").and_then(Value::as_str))
        {
            let info = self.http.get_json(userinfo, Some(access)).await.map_err(|err| format!("userinfo: {err}"))?;
            tracing::info!(provider = %settings.id, "the ID token lacks claims; asked the provider's userinfo");
            if info.get("sub").and_then(Value::as_str) != Some(identity.subject.as_str()) {
                return Err("userinfo is about another subject than the ID token".into());
            }
            if let Some(info) = info.as_object() {
                let extra = vouched(settings, info);
                if identity.email.is_none() {
                    (identity.email, identity.email_verified) = (extra.email, extra.email_verified);
                }
                if !claims.contains_key(&settings.groups_claim) {
                    identity.groups = extra.groups;
                }
                identity.preferred_username = identity.preferred_username.or(extra.preferred_username);
            }
        }
        Ok(identity)
    }

    /// The ID token's claims after the signature and claim checks; an unknown key (or a bad
    /// signature from a key that may have been replaced) refetches the keys once, rate-limited.
    async fn verify(
        &self,
        provider: &Provider,
        id_token: &str,
        nonce: &str,
    ) -> Result<serde_json::Map<String, Value>, TokenError> {
        let settings = &provider.settings;
        let parsed = jwt::parse(id_token)?;
        let keys = |force| async move { provider.keys(&self.http, &self.clock, force).await };
        let (known, fresh) = keys(false).await.map_err(|_| TokenError::UnknownKey)?;
        let mut result = jwt::verify_signature(&parsed, &settings.allowed_algs, &known);
        if matches!(result, Err(TokenError::UnknownKey | TokenError::BadSignature)) && !fresh {
            let (refetched, _) = keys(true).await.map_err(|_| TokenError::UnknownKey)?;
            result = jwt::verify_signature(&parsed, &settings.allowed_algs, &refetched);
        }
        result?;
        let expected = jwt::Expected {
            issuer: &settings.issuer,
            client_id: &settings.client_id,
            extra_audiences: &settings.extra_audiences,
            nonce,
            now: self.clock.now(),
        };
        jwt::check_claims(&parsed.claims, &expected)?;
        Ok(parsed.claims)
    }

    /// Refreshes every used provider's keys every `KEYS_TTL`, until shutdown.
    pub async fn refresh_keys_until(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let period = std::time::Duration::from_secs(provider::KEYS_TTL as u64);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
            for provider in &self.providers {
                provider.refresh_if_used(&self.http, &self.clock).await;
            }
        }
    }
}

/// The claims Coffer uses. `email_verified` must be `true` (or the string `"true"`, as AWS
/// Cognito sends it); missing counts as unverified. Groups may be a list or one string.
fn vouched(settings: &crate::config::OidcProvider, claims: &serde_json::Map<String, Value>) -> VouchedIdentity {
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let email_verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)))
        || claims.get("email_verified").and_then(Value::as_str) == Some("true");
    let groups = match claims.get(&settings.groups_claim) {
        Some(Value::Array(groups)) => groups.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(group)) => vec![group.clone()],
        _ => Vec::new(),
    };
    VouchedIdentity {
        issuer: text("iss").unwrap_or_default(),
        subject: text("sub").unwrap_or_default(),
        email: text("email").filter(|email| email.contains('@') && email.len() <= 254),
        email_verified,
        groups,
        preferred_username: text("preferred_username"),
    }
}
