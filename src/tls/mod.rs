//! TLS: the rustls server configuration and the certificate it serves.
//!
//! Certificates are served through [`CertResolver`], whose certificate can be replaced while the
//! server runs (files reload, ACME renewal) without touching open connections. Only TLS 1.2 and
//! 1.3 are offered, with ALPN `h2` and `http/1.1`. This module never sees HTTP.

mod files;
mod self_signed;
mod watch;

use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

pub use files::load_pem_pair;
pub use self_signed::ensure_self_signed;
pub use watch::watch_pair;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
    #[error("cannot generate the self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot store {path}: {source}")]
    Store { path: String, source: std::io::Error },
}

/// The crypto provider used for every TLS connection Coffer makes or accepts.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What an admin wants to know about the certificate being served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSummary {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub names: Vec<String>,
}

/// Reads expiry and subject alternative names from a DER certificate.
pub fn summarize(der: &[u8]) -> Result<CertSummary, String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).map_err(|err| format!("not a valid certificate: {err}"))?;
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => names
                        .push(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*bytes).unwrap_or_default()).to_string()),
                    16 => names
                        .push(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*bytes).unwrap_or_default()).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(CertSummary { not_before, not_after, names })
}

/// The ALPN protocol of ACME's TLS-ALPN-01 challenge (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Serves whichever certificate was stored last, and, to a client asking for `acme-tls/1`,
/// the challenge certificate for the name it asks about.
#[derive(Debug, Default)]
pub struct CertResolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    challenges: RwLock<std::collections::HashMap<String, Arc<CertifiedKey>>>,
}

impl CertResolver {
    pub fn new(key: CertifiedKey) -> Self {
        Self { current: RwLock::new(Some(Arc::new(key))), challenges: RwLock::default() }
    }

    pub fn set_challenge(&self, domain: &str, key: CertifiedKey) {
        if let Ok(mut challenges) = self.challenges.write() {
            challenges.insert(domain.to_ascii_lowercase(), Arc::new(key));
        }
    }

    pub fn clear_challenges(&self) {
        if let Ok(mut challenges) = self.challenges.write() {
            challenges.clear();
        }
    }

    /// Replaces the served certificate; handshakes already done keep theirs.
    pub fn set(&self, key: CertifiedKey) {
        if let Ok(mut current) = self.current.write() {
            *current = Some(Arc::new(key));
        }
    }

    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().and_then(|current| current.clone())
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let wants_challenge = client_hello.alpn().is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if wants_challenge {
            let name = client_hello.server_name()?.to_ascii_lowercase();
            return self.challenges.read().ok()?.get(&name).cloned();
        }
        self.current()
    }
}

/// The server configuration: TLS 1.3 and 1.2 only, ALPN h2 then http/1.1.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    Ok(Arc::new(config))
}
