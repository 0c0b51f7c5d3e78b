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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A provider's discovery and JWKS on loopback; counts the JWKS fetches.
    async fn fake_provider() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let fetches = Arc::new(AtomicUsize::new(0));
        let (base, counter) = (issuer.clone(), Arc::clone(&fetches));
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = vec![0u8; 4096];
                let read = stream.read(&mut request).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&request[..read]).into_owned();
                let body = if head.starts_with("GET /jwks") {
                    counter.fetch_add(1, Ordering::SeqCst);
                    r#"{"keys":[]}"#.to_owned()
                } else {
                    format!(
                        r#"{{"issuer":"{base}","authorization_endpoint":"{base}/auth","token_endpoint":"{base}/token","jwks_uri":"{base}/jwks"}}"#
                    )
                };
                let answer =
                    format!("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (issuer, fetches)
    }

    #[tokio::test]
    async fn keys_are_refetched_when_stale_and_for_an_unknown_kid_at_most_once_a_minute() {
        let (issuer, fetches) = fake_provider().await;
        let settings: OidcProvider =
            toml::from_str(&format!("id = \"p\"\nlabel = \"P\"\nissuer = \"{issuer}\"\nclient_id = \"c\"")).unwrap();
        let provider = Provider::new(settings, None);
        let (http, clock) = (HttpClient::new().unwrap(), Clock::manual(1_000_000));
        let fetched = |force| {
            let (provider, http, clock) = (&provider, &http, &clock);
            async move { provider.keys(http, clock, force).await.unwrap().1 }
        };
        assert!(fetched(false).await, "first use fetches");
        assert!(!fetched(false).await, "then the cache answers");
        assert!(fetched(true).await, "an unknown kid refetches");
        for _ in 0..20 {
            assert!(!fetched(true).await, "a flood of unknown kids costs one fetch a minute");
        }
        clock.advance(Duration::from_secs(FORCED_REFETCH_GAP as u64));
        assert!(fetched(true).await);
        clock.advance(Duration::from_secs(KEYS_TTL as u64));
        assert!(fetched(false).await, "stale keys are fetched again");
        assert_eq!(fetches.load(Ordering::SeqCst), 4);
    }
}
