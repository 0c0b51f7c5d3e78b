//! Device tokens: proof that a client signed in to an account before (OWASP's "device
//! cookie"), so an attack on the account from elsewhere does not make that client wait.
//!
//! A token is `v1.<user id>.<device id>.<issued at>.<HMAC-SHA256>` under a key kept in
//! `<state>/keys/device-tokens.key`. It grants nothing by itself: it only chooses which
//! throttle keys a sign-in attempt is counted under (see `throttle.rs`). It is handed out after
//! every successful password sign-in, as a JSON field and an HttpOnly cookie, and is valid for
//! [`DEVICE_TOKEN_LIFETIME`] seconds for that account only.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

use crate::domain::UserId;

/// A device token is honoured this long after it was issued (a year).
pub const DEVICE_TOKEN_LIFETIME: i64 = 365 * 86_400;
const VERSION: &str = "v1";

pub struct DeviceTokens {
    key: hmac::Key,
}

impl DeviceTokens {
    pub fn new(secret: &[u8; 32]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    /// A new token for `user`, naming a new device.
    pub fn issue(&self, user: &UserId, now: i64) -> String {
        let device = format!("{:032x}", rand::random::<u128>());
        let payload = format!("{VERSION}.{}.{device}.{now}", user.0);
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The device id inside `token` when it is genuine, for `user`, and not too old.
    pub fn device_of(&self, token: &str, user: &UserId, now: i64) -> Option<String> {
        if token.len() > 256 {
            return None;
        }
        let (payload, tag) = token.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.key, payload.as_bytes(), &tag).ok()?;
        let mut parts = payload.split('.');
        let (Some(VERSION), Some(owner), Some(device), Some(issued), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let issued: i64 = issued.parse().ok()?;
        let fresh = issued <= now && now - issued < DEVICE_TOKEN_LIFETIME;
        (owner == user.0 && fresh).then(|| device.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_device_only_for_its_account_and_lifetime() {
        let tokens = DeviceTokens::new(&[9; 32]);
        let (alice, bob) = (UserId("a1".into()), UserId("b2".into()));
        let token = tokens.issue(&alice, 1_000);
        let device = tokens.device_of(&token, &alice, 1_000).unwrap();
        assert_eq!(device.len(), 32);
        assert_eq!(tokens.device_of(&token, &bob, 1_000), None, "another account");
        assert_eq!(tokens.device_of(&token, &alice, 1_000 + DEVICE_TOKEN_LIFETIME), None, "too old");
        assert_eq!(DeviceTokens::new(&[8; 32]).device_of(&token, &alice, 1_000), None, "another key");
        let forged = token.replacen("a1", "b2", 1);
        assert_eq!(tokens.device_of(&forged, &bob, 1_000), None, "a changed payload");
        assert_ne!(tokens.issue(&alice, 1_000), token, "each sign-in names a new device");
    }
}
