//! Access tokens: JWTs signed with Ed25519, the one algorithm accepted.
//!
//! Pinning an asymmetric algorithm closes the classic confusions: `alg: none` and an HS256
//! token "signed" with the public key are rejected by the header check before any signature
//! is looked at. Claims are parsed strictly: `sub`, `sid`, `role`, `iat`, `exp`, `iss`, `aud`
//! and `typ` are all required, numbers must be numbers, and `iss`, `aud` and `typ` must be
//! exactly ours. The signing key is made at first start (`<state>/keys/`, 0600) and kept.
//!
//! A client sends the same token for minutes, and checking its Ed25519 signature was about a
//! tenth of the CPU an authenticated listing cost: a token whose signature and claims passed is
//! remembered by its SHA-256 with its claims. Only the identical token hits; expiry is checked
//! on every use; the session behind it is still checked by the caller on every request.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::state_dir::write_file_atomically;

pub const ISSUER: &str = "coffer";
pub const AUDIENCE: &str = "coffer-api";
pub const ACCESS_TYPE: &str = "access";
const HEADER_JSON: &str = r#"{"alg":"EdDSA","typ":"JWT"}"#;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    pub sub: String,
    pub sid: String,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    pub typ: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("token algorithm not accepted")]
    Algorithm,
    #[error("bad token signature")]
    Signature,
    #[error("token claims are missing or wrong")]
    Claims,
    #[error("token expired")]
    Expired,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write the token signing key {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(
        "the token signing key {path} is not a valid Ed25519 key; move it away to make a new one (this signs everyone out)"
    )]
    Invalid { path: String },
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Tokens remembered at most; when full, the expired ones go, and if that is not enough, all.
const VERIFIED_CAPACITY: usize = 4096;

pub struct TokenSigner {
    key_pair: Ed25519KeyPair,
    verified: Mutex<HashMap<[u8; 32], AccessClaims>>,
}

fn token_digest(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

impl TokenSigner {
    /// Loads the key at `path`, making it first if it does not exist. Blocking.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io { path: path.display().to_string(), source };
        let pkcs8 = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| io(std::io::Error::other("no randomness for the key")))?;
                write_file_atomically(path, document.as_ref(), 0o600).map_err(io)?;
                document.as_ref().to_vec()
            }
            Err(err) => return Err(io(err)),
        };
        let key_pair =
            Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| KeyError::Invalid { path: path.display().to_string() })?;
        Ok(Self { key_pair, verified: Mutex::new(HashMap::new()) })
    }

    pub fn public_key(&self) -> &[u8] {
        self.key_pair.public_key().as_ref()
    }

    pub fn sign(&self, claims: &AccessClaims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER_JSON), URL_SAFE_NO_PAD.encode(payload));
        let signature = self.key_pair.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    /// Checks the token fully (or finds it checked before); `now` is Unix seconds.
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        let key = token_digest(token);
        let known = self.verified.lock().ok().and_then(|verified| verified.get(&key).cloned());
        let claims = match known {
            Some(claims) => claims,
            None => {
                let claims = self.check(token)?;
                self.remember(key, &claims, now);
                claims
            }
        };
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    fn remember(&self, key: [u8; 32], claims: &AccessClaims, now: i64) {
        let Ok(mut verified) = self.verified.lock() else { return };
        if verified.len() >= VERIFIED_CAPACITY {
            verified.retain(|_, known| known.exp > now);
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(key, claims.clone());
    }

    /// The signature and the claims, except expiry.
    fn check(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed);
        let header: Header = serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
        if header.alg != "EdDSA" || header.crit.is_some() || header.typ.as_deref().is_some_and(|typ| typ != "JWT") {
            return Err(TokenError::Algorithm);
        }
        let signing_input_len = token.len() - signature.len() - 1;
        UnparsedPublicKey::new(&ED25519, self.public_key())
            .verify(&token.as_bytes()[..signing_input_len], &decode(signature)?)
            .map_err(|_| TokenError::Signature)?;
        let claims: AccessClaims = serde_json::from_slice(&decode(payload)?).map_err(|_| TokenError::Claims)?;
        if claims.iss != ISSUER || claims.aud != AUDIENCE || claims.typ != ACCESS_TYPE || claims.sub.is_empty() {
            return Err(TokenError::Claims);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            sub: "u1".into(),
            sid: "s1".into(),
            role: "user".into(),
            iat: 1000,
            exp,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            typ: ACCESS_TYPE.into(),
        }
    }

    #[test]
    fn signed_token_verifies_until_it_expires_and_the_key_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.key");
        let signer = TokenSigner::load_or_create(&path).unwrap();
        let token = signer.sign(&claims(2000));
        assert_eq!(signer.verify(&token, 1999).unwrap(), claims(2000));
        assert_eq!(signer.verify(&token, 2000).unwrap_err(), TokenError::Expired);
        let reloaded = TokenSigner::load_or_create(&path).unwrap();
        assert_eq!(reloaded.verify(&token, 1500).unwrap().sub, "u1");
    }

    #[test]
    fn tampered_payload_fails_the_signature() {
        let dir = tempfile::tempdir().unwrap();
        let signer = TokenSigner::load_or_create(&dir.path().join("token.key")).unwrap();
        let token = signer.sign(&claims(2000));
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims(2000);
        forged.role = "admin".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let forged_token = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(signer.verify(&forged_token, 1500).unwrap_err(), TokenError::Signature);
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_near_copy_is_checked_in_full() {
        let dir = tempfile::tempdir().unwrap();
        let signer = TokenSigner::load_or_create(&dir.path().join("token.key")).unwrap();
        let token = signer.sign(&claims(2000));
        assert_eq!(signer.verify(&token, 1000).unwrap(), claims(2000));
        assert_eq!(signer.verify(&token, 1999).unwrap(), claims(2000), "remembered");
        assert_eq!(signer.verify(&token, 2000).unwrap_err(), TokenError::Expired, "remembered, still expires");
        // The same header and payload with another signature is another token: checked in full.
        let (input, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[0] ^= 1;
        let altered = format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(signer.verify(&altered, 1000).unwrap_err(), TokenError::Signature);
        // A token from another key is never taken for a remembered one.
        let other = TokenSigner::load_or_create(&dir.path().join("other.key")).unwrap();
        assert_eq!(signer.verify(&other.sign(&claims(2000)), 1000).unwrap_err(), TokenError::Signature);
    }

    #[test]
    fn the_remembered_tokens_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let signer = TokenSigner::load_or_create(&dir.path().join("token.key")).unwrap();
        for n in 0..(VERIFIED_CAPACITY as i64 + 10) {
            let mut live = claims(5000);
            live.iat = n;
            signer.verify(&signer.sign(&live), 1000).unwrap();
        }
        let held = signer.verified.lock().unwrap().len();
        assert!(held <= VERIFIED_CAPACITY && held > 0, "{held} remembered");
    }
}
