//! One ACME order, start to finish: the account (made once, kept in `<state>/acme/`), the
//! order for `tls.domains`, the TLS-ALPN-01 challenges answered through the resolver, the
//! finalization and the certificate chain.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountBuilder, AccountCredentials, AuthorizationStatus, BodyWrapper, ChallengeType, Identifier,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};

use super::Http01Answers;
use crate::config::{AcmeChallenge, AcmeSettings};
use crate::state_dir::write_file_atomically;
use crate::tls::CertResolver;

const ACCOUNT_UNKNOWN: &str = "urn:ietf:params:acme:error:accountDoesNotExist";

/// A new certificate: the PEM chain and its private key.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|err| anyhow::anyhow!("a blocking task failed: {err}"))?
}

/// The HTTP client for the CA: the system's trusted roots, plus `acme.ca_root` if set.
async fn client(settings: &AcmeSettings) -> anyhow::Result<AccountBuilder> {
    let Some(root) = settings.ca_root.clone() else {
        return Account::builder().map_err(|err| anyhow::anyhow!("cannot set up the ACME client: {err}"));
    };
    let roots = blocking(move || {
        use rustls_pki_types::pem::PemObject;
        let roots: Result<Vec<_>, _> = rustls_pki_types::CertificateDer::pem_file_iter(&root)
            .map_err(|err| anyhow::anyhow!("acme.ca_root {}: {err}", root.display()))?
            .collect();
        roots.map_err(|err| anyhow::anyhow!("acme.ca_root {}: {err}", root.display()))
    })
    .await?;
    let provider = crate::tls::crypto_provider();
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(roots, Arc::clone(&provider))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, BodyWrapper<bytes::Bytes>>(connector);
    Ok(Account::builder_with_http(Box::new(client)))
}

/// The stored account, or a new one (stored before it is used).
async fn account(settings: &AcmeSettings, dir: &Path) -> anyhow::Result<Account> {
    let builder = client(settings).await?;
    let path = dir.join("account.json");
    let stored = {
        let path = path.clone();
        blocking(move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(anyhow::anyhow!("cannot read {}: {err}", path.display())),
        })
        .await?
    };
    if let Some(bytes) = stored {
        let credentials: AccountCredentials = serde_json::from_slice(&bytes)
            .map_err(|err| anyhow::anyhow!("{} is not an ACME account: {err}", path.display()))?;
        return builder.from_credentials(credentials).await.map_err(|err| anyhow::anyhow!("ACME account: {err}"));
    }
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let new = NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false };
    let (account, credentials) = builder
        .create(&new, settings.directory_url.clone(), None)
        .await
        .map_err(|err| anyhow::anyhow!("cannot create an ACME account at {}: {err}", settings.directory_url))?;
    let json = serde_json::to_vec(&credentials)?;
    blocking(move || Ok(write_file_atomically(&path, &json, 0o600)?)).await?;
    tracing::info!(target: "coffer::acme", id = account.id(), "created an ACME account");
    Ok(account)
}

/// A self-signed certificate carrying the challenge's key authorization digest (RFC 8737).
fn challenge_certificate(domain: &str, digest: &[u8]) -> anyhow::Result<rustls::sign::CertifiedKey> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key)?;
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing_key = crate::tls::crypto_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|err| anyhow::anyhow!("challenge key: {err}"))?;
    Ok(rustls::sign::CertifiedKey::new(vec![cert.der().clone()], signing_key))
}

/// Orders and fetches a certificate for `domains`, answering TLS-ALPN-01 through `resolver`
/// or HTTP-01 through `http01`, as `acme.challenge` says.
pub async fn obtain(
    settings: &AcmeSettings,
    dir: &Path,
    domains: &[String],
    resolver: &CertResolver,
    http01: &Http01Answers,
) -> anyhow::Result<Issued> {
    let identifiers: Vec<Identifier> = domains.iter().map(|domain| Identifier::Dns(domain.clone())).collect();
    let mut order = match account(settings, dir).await?.new_order(&NewOrder::new(&identifiers)).await {
        Ok(order) => order,
        // The CA forgot the account (or it is another CA now): make a new one, once.
        Err(instant_acme::Error::Api(problem)) if problem.r#type.as_deref() == Some(ACCOUNT_UNKNOWN) => {
            tracing::warn!(target: "coffer::acme", "the CA does not know the stored account; creating a new one");
            let path = dir.join("account.json");
            blocking(move || Ok(std::fs::remove_file(path)?)).await?;
            let account = account(settings, dir).await?;
            account.new_order(&NewOrder::new(&identifiers)).await.map_err(|err| anyhow::anyhow!("new order: {err}"))?
        }
        Err(err) => anyhow::bail!("new order: {err}"),
    };
    tracing::info!(target: "coffer::acme", domains = %domains.join(","), "ordering a certificate");
    let outcome = async {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(|err| anyhow::anyhow!("authorization: {err}"))?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => anyhow::bail!("an authorization is {other:?}"),
            }
            let kind = match settings.challenge {
                AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
                AcmeChallenge::Http01 => ChallengeType::Http01,
            };
            let mut challenge = authorization
                .challenge(kind.clone())
                .ok_or_else(|| anyhow::anyhow!("the CA offers no {kind:?} challenge"))?;
            let domain = challenge.identifier().to_string();
            match settings.challenge {
                AcmeChallenge::TlsAlpn01 => {
                    let digest = challenge.key_authorization().digest();
                    resolver.set_challenge(&domain, challenge_certificate(&domain, digest.as_ref())?);
                }
                AcmeChallenge::Http01 => http01.set(&challenge.token, challenge.key_authorization().as_str()),
            }
            challenge.set_ready().await.map_err(|err| anyhow::anyhow!("challenge: {err}"))?;
        }
        // Validation takes from milliseconds (a nearby CA) to seconds: poll soon, then back off.
        let retries =
            RetryPolicy::new().initial_delay(Duration::from_millis(20)).backoff(1.5).timeout(Duration::from_secs(90));
        let status = order.poll_ready(&retries).await.map_err(|err| anyhow::anyhow!("order: {err}"))?;
        if status != OrderStatus::Ready {
            anyhow::bail!("the order is {status:?}, not ready: validation failed");
        }
        let key_pem = order.finalize().await.map_err(|err| anyhow::anyhow!("finalize: {err}"))?;
        let chain_pem = order.poll_certificate(&retries).await.map_err(|err| anyhow::anyhow!("certificate: {err}"))?;
        Ok(Issued { chain_pem, key_pem })
    }
    .await;
    resolver.clear_challenges();
    http01.clear();
    outcome
}
