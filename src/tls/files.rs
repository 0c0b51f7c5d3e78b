//! Loading a certificate chain and private key from PEM files (`tls.mode = "files"`).
//!
//! A pair is accepted only when the chain parses, the key parses, and the key belongs to the
//! leaf certificate, so a half-updated pair on disk is rejected instead of served.

use std::path::Path;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{TlsError, crypto_provider};

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.display().to_string(), source })
}

fn invalid(path: &Path, problem: impl Into<String>) -> TlsError {
    TlsError::Invalid { path: path.display().to_string(), problem: problem.into() }
}

/// Parses a chain and key given as PEM text; `cert_origin` and `key_origin` name them in errors.
pub fn certified_key_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_origin: &Path,
    key_origin: &Path,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| invalid(cert_origin, format!("not a PEM certificate chain: {err}")))?;
    if chain.is_empty() {
        return Err(invalid(cert_origin, "holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|err| invalid(key_origin, format!("not a PEM private key: {err}")))?;
    CertifiedKey::from_der(chain, key, &crypto_provider())
        .map_err(|err| invalid(key_origin, format!("does not fit certificate {}: {err}", cert_origin.display())))
}

/// Loads and checks the pair at `cert_path` and `key_path`.
pub fn load_pem_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    certified_key_from_pem(&read(cert_path)?, &read(key_path)?, cert_path, key_path)
}
