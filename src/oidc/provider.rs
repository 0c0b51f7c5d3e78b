//! One configured provider: its discovery document and signing keys, cached and refreshed.
//!
//! openidconnect-rs fetches keys once and never again, so every sign-in fails after the
//! provider rotates its keys (openidconnect-rs#232). Here keys are refetched when older than
//! `KEYS_TTL` (a timer task also does it), and at once when a token names a key id we do not
//! know, at most once per `FORCED_REFETCH_GAP`, so a flood of forged `kid`s cannot make
//! Coffer hammer the provider.

use serde_json::Value;
use tokio::sync::Mutex;

use super::http::{HttpClient, HttpError};
use crate::clock::Clock;
use crate::config::{OidcProvider, acceptable_issuer};

/// Keys older than this are fetched again before use (seconds).
pub const KEYS_TTL: i64 = 3600;
/// At most one refetch forced by an unknown key per this long (seconds).
pub const FORCED_REFETCH_GAP: i64 = 60;

/// What discovery says, the parts Coffer uses.
#[derive(Clone, Debug)]
pub struct Metadata {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: String,
    /// RFC 9207: the provider adds `iss` to its answers, so an answer without one is refused.
    pub sends_iss: bool,
}

#[derive(Default)]
struct Cache {
    metadata: Option<Metadata>,
    keys: Vec<Value>,
    keys_fetched_at: Option<i64>,
    last_forced: Option<i64>,
}

pub struct Provider {
    pub settings: OidcProvider,
    pub client_secret: Option<String>,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("id", &self.settings.id).finish_non_exhaustive()
    }
}

fn endpoint(document: &Value, name: &str) -> Result<String, String> {
    let url = document.get(name).and_then(Value::as_str).ok_or_else(|| format!("discovery lacks `{name}`"))?;
    if !acceptable_issuer(url) {
        return Err(format!("discovery's `{name}` {url} is not https://"));
    }
    Ok(url.to_owned())
}

impl Provider {
    pub fn new(settings: OidcProvider, client_secret: Option<String>) -> Self {
        Self { settings, client_secret, cache: Mutex::new(Cache::default()) }
    }

    /// The discovery document (fetched at first use, then kept).
    pub async fn metadata(&self, http: &HttpClient) -> Result<Metadata, String> {
        let mut cache = self.cache.lock().await;
        if let Some(metadata) = &cache.metadata {
            return Ok(metadata.clone());
        }
        let issuer = self.settings.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let document = http.get_json(&url, None).await.map_err(|err| err.to_string())?;
        // OIDC Discovery 4.3: the document must name exactly the issuer we asked.
        if document.get("issuer").and_then(Value::as_str) != Some(self.settings.issuer.as_str()) {
            return Err(format!("{url} names another issuer than `{}`", self.settings.issuer));
        }
        let methods = document.get("code_challenge_methods_supported").and_then(Value::as_array);
        if methods.is_some_and(|methods| !methods.iter().any(|method| method == "S256")) {
            return Err(format!("{url}: the provider does not support PKCE with S256"));
        }
        let metadata = Metadata {
            authorization_endpoint: endpoint(&document, "authorization_endpoint")?,
            token_endpoint: endpoint(&document, "token_endpoint")?,
            userinfo_endpoint: endpoint(&document, "userinfo_endpoint").ok(),
            jwks_uri: endpoint(&document, "jwks_uri")?,
            sends_iss: document.get("authorization_response_iss_parameter_supported") == Some(&Value::Bool(true)),
        };
        cache.metadata = Some(metadata.clone());
        Ok(metadata)
    }

    /// The signing keys; fetched again when stale, or when `unknown_kid` and the last forced
    /// fetch is long enough ago. Returns whether they were fetched now.
    pub async fn keys(
        &self,
        http: &HttpClient,
        clock: &Clock,
        unknown_kid: bool,
    ) -> Result<(Vec<Value>, bool), String> {
        let metadata = self.metadata(http).await?;
        let mut cache = self.cache.lock().await;
        let now = clock.now();
        let stale = cache.keys_fetched_at.is_none_or(|at| now - at >= KEYS_TTL);
        let may_force = unknown_kid && cache.last_forced.is_none_or(|at| now - at >= FORCED_REFETCH_GAP);
        if !stale && !may_force {
            return Ok((cache.keys.clone(), false));
        }
        if may_force {
            cache.last_forced = Some(now);
        }
        let document = http.get_json(&metadata.jwks_uri, None).await.map_err(|err: HttpError| err.to_string())?;
        let keys = document.get("keys").and_then(Value::as_array).cloned().unwrap_or_default();
        tracing::info!(provider = %self.settings.id, keys = keys.len(), "fetched the provider's signing keys");
        cache.keys = keys;
        cache.keys_fetched_at = Some(now);
        Ok((cache.keys.clone(), true))
    }

    /// The timer's refresh: only for a provider already in use (no sign-in, no calls out).
    pub async fn refresh_if_used(&self, http: &HttpClient, clock: &Clock) {
        if self.cache.lock().await.metadata.is_none() {
            return;
        }
        if let Err(err) = self.keys(http, clock, false).await {
            tracing::warn!(provider = %self.settings.id, error = %err, "cannot refresh the provider's signing keys");
        }
    }
}
