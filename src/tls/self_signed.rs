//! The self-signed certificate for `tls.mode = "self-signed"`: made at first start, then kept.
//!
//! Keeping it matters: a client that pinned or trusted it once keeps working after restarts.
//! It is made again only when it is missing, unreadable, close to expiry, or no longer covers
//! the configured names. Blocking: runs before the server starts serving.

use std::collections::BTreeSet;
use std::path::Path;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::sign::CertifiedKey;
use time::Duration;

use super::files::certified_key_from_pem;
use super::{TlsError, summarize};
use crate::clock::Clock;
use crate::state_dir::write_file_atomically;

const VALIDITY: Duration = Duration::days(5 * 365);
const RENEW_BEFORE: Duration = Duration::days(30);
pub const CERT_FILE: &str = "self-signed.crt";
pub const KEY_FILE: &str = "self-signed.key";

/// Returns the kept certificate when it is still good for `names`, otherwise makes a new one.
pub fn ensure_self_signed(tls_dir: &Path, names: &[String], clock: &Clock) -> Result<CertifiedKey, TlsError> {
    let cert_path = tls_dir.join(CERT_FILE);
    let key_path = tls_dir.join(KEY_FILE);
    match load_if_current(&cert_path, &key_path, names, clock) {
        Ok(Some(key)) => return Ok(key),
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(error = %err, "the stored self-signed certificate is unusable; making a new one")
        }
    }
    let (cert_pem, key_pem) = generate(names, clock)?;
    let store = |path: &Path, pem: &str| {
        write_file_atomically(path, pem.as_bytes(), 0o600)
            .map_err(|source| TlsError::Store { path: path.display().to_string(), source })
    };
    store(&key_path, &key_pem)?;
    store(&cert_path, &cert_pem)?;
    tracing::info!(cert = %cert_path.display(), names = ?names, "made a self-signed certificate");
    certified_key_from_pem(cert_pem.as_bytes(), key_pem.as_bytes(), &cert_path, &key_path)
}

fn load_if_current(
    cert_path: &Path,
    key_path: &Path,
    names: &[String],
    clock: &Clock,
) -> Result<Option<CertifiedKey>, TlsError> {
    if !cert_path.exists() && !key_path.exists() {
        return Ok(None);
    }
    let key = super::load_pem_pair(cert_path, key_path)?;
    let leaf = key
        .end_entity_cert()
        .map_err(|err| TlsError::Invalid { path: cert_path.display().to_string(), problem: err.to_string() })?;
    let summary =
        summarize(leaf).map_err(|problem| TlsError::Invalid { path: cert_path.display().to_string(), problem })?;
    let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let covered: BTreeSet<&str> = summary.names.iter().map(String::as_str).collect();
    let fresh = summary.not_after - clock.now_utc() > RENEW_BEFORE;
    Ok((fresh && wanted == covered).then_some(key))
}

fn generate(names: &[String], clock: &Clock) -> Result<(String, String), TlsError> {
    let failed = |err: rcgen::Error| TlsError::Generate(err.to_string());
    let key_pair = KeyPair::generate().map_err(failed)?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(failed)?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, "Coffer self-signed certificate");
    params.distinguished_name = subject;
    let now = clock.now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + VALIDITY;
    let cert = params.self_signed(&key_pair).map_err(failed)?;
    Ok((cert.pem(), key_pair.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn certificate_is_kept_across_starts_and_remade_when_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_self_signed(dir.path(), &names(&["localhost", "127.0.0.1"]), &Clock::system()).unwrap();
        let second = ensure_self_signed(dir.path(), &names(&["localhost", "127.0.0.1"]), &Clock::system()).unwrap();
        assert_eq!(first.cert, second.cert);
        let summary = summarize(&first.cert[0]).unwrap();
        assert!(summary.names.contains(&"127.0.0.1".to_owned()));
        let third = ensure_self_signed(dir.path(), &names(&["files.example.org"]), &Clock::system()).unwrap();
        assert_ne!(first.cert, third.cert);
    }

    #[test]
    fn a_corrupt_stored_pair_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CERT_FILE), "garbage").unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "garbage").unwrap();
        let key = ensure_self_signed(dir.path(), &names(&["localhost"]), &Clock::system()).unwrap();
        assert_eq!(summarize(&key.cert[0]).unwrap().names, names(&["localhost"]));
    }
}
