//! The share-link key: seals tokens for storage and signs the cookies of the public side.
//!
//! One random 32-byte master key lives in `<state>/keys/share-links.key` (0600); a sealing key
//! (AES-256-GCM) and a cookie key (HMAC-SHA256) are derived from it for their one purpose
//! each. Losing the file makes stored links unshowable (they still work: lookup is by hash)
//! and ends outstanding cookies, nothing more.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::state_dir::load_or_create_secret;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write the share-link key {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(
        "the share-link key {path} is not 32 bytes; move it away to make a new one (existing links then cannot be shown again)"
    )]
    Invalid { path: String },
    #[error("the system's random number generator or cipher failed")]
    Crypto,
}

pub struct ShareKeys {
    seal: LessSafeKey,
    cookie: hmac::Key,
}

impl ShareKeys {
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let master = load_or_create_secret(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::InvalidData => KeyError::Invalid { path: path.display().to_string() },
            _ => KeyError::Io { path: path.display().to_string(), source },
        })?;
        Self::from_master(&master)
    }

    fn from_master(master: &[u8; 32]) -> Result<Self, KeyError> {
        let derive = |label: &[u8]| hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, master), label);
        let seal_key = derive(b"coffer share token sealing v1");
        let seal = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, seal_key.as_ref()).map_err(|_| KeyError::Crypto)?);
        let cookie = hmac::Key::new(hmac::HMAC_SHA256, derive(b"coffer share cookies v1").as_ref());
        Ok(Self { seal, cookie })
    }

    /// `nonce || ciphertext || tag`, bound to the share id.
    pub fn seal(&self, share_id: &str, token: &str) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| KeyError::Crypto)?;
        let mut sealed = token.as_bytes().to_vec();
        self.seal
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(share_id.as_bytes()), &mut sealed)
            .map_err(|_| KeyError::Crypto)?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// The token, or `None` if `sealed` was not made by this key for this share.
    pub fn open(&self, share_id: &str, sealed: &[u8]) -> Option<String> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = rest.to_vec();
        let plain = self.seal.open_in_place(nonce, Aad::from(share_id.as_bytes()), &mut buffer).ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }

    /// `payload.signature`; the payload must not contain secrets (it is readable).
    pub fn sign(&self, payload: &str) -> String {
        let tag = hmac::sign(&self.cookie, payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The payload of a value made by [`Self::sign`], if the signature holds.
    pub fn verify<'a>(&self, signed: &'a str) -> Option<&'a str> {
        let (payload, tag) = signed.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.cookie, payload.as_bytes(), &tag).ok()?;
        Some(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_open_only_for_their_share_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("share.key");
        let keys = ShareKeys::load_or_create(&path).unwrap();
        let sealed = keys.seal("share-1", "the-token").unwrap();
        assert_eq!(keys.open("share-1", &sealed).as_deref(), Some("the-token"));
        assert_eq!(keys.open("share-2", &sealed), None, "bound to the share id");
        let reloaded = ShareKeys::load_or_create(&path).unwrap();
        assert_eq!(reloaded.open("share-1", &sealed).as_deref(), Some("the-token"));
        let other = ShareKeys::from_master(&[7; 32]).unwrap();
        assert_eq!(other.open("share-1", &sealed), None);
        assert_ne!(keys.seal("share-1", "the-token").unwrap(), sealed, "a fresh nonce each time");
    }

    #[test]
    fn signatures_reject_any_change() {
        let keys = ShareKeys::from_master(&[1; 32]).unwrap();
        let signed = keys.sign("unlock.abc.0.1700000000");
        assert_eq!(keys.verify(&signed), Some("unlock.abc.0.1700000000"));
        assert_eq!(keys.verify(&signed.replace("abc", "abd")), None);
        assert_eq!(ShareKeys::from_master(&[2; 32]).unwrap().verify(&signed), None);
        assert_eq!(keys.verify("no-signature"), None);
    }
}
