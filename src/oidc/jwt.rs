//! ID token checks: the compact JWS, its signature against the provider's keys (ring), and
//! the claims OpenID Connect Core 3.1.3.7 requires an RP to check.
//!
//! Hand-rolled on purpose: ring is already here, and the whole check fits on a page that a
//! reviewer can read. The algorithm comes from the token's header, so it is checked against
//! the provider's allow-list before any key is chosen; `none` and the HMAC algorithms are
//! never accepted (a client secret is not a signing key here).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

/// Clock skew tolerated on `exp` and `iat`, in seconds.
pub const LEEWAY: i64 = 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the ID token is not a signed JWT")]
    Malformed,
    #[error("the ID token is signed with {0}, which this provider is not allowed to use")]
    AlgNotAllowed(String),
    /// No key with the token's `kid` (and algorithm): a rotation may have happened.
    #[error("no signing key of the provider matches the ID token")]
    UnknownKey,
    #[error("the ID token's signature is wrong")]
    BadSignature,
    #[error("the ID token was issued by {0}, not this provider")]
    WrongIssuer(String),
    #[error("the ID token is meant for another client")]
    WrongAudience,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token was issued in the future")]
    IssuedInFuture,
    #[error("the ID token's nonce does not match this sign-in")]
    WrongNonce,
    #[error("the ID token lacks a subject")]
    NoSubject,
}

/// The parts of a compact JWS.
pub struct Parsed<'a> {
    pub alg: String,
    pub kid: Option<String>,
    signed: &'a str,
    signature: Vec<u8>,
    pub claims: Map<String, Value>,
}

pub fn parse(token: &str) -> Result<Parsed<'_>, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed);
    let header: Map<String, Value> = serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
    let claims: Map<String, Value> = serde_json::from_slice(&decode(payload)?).map_err(|_| TokenError::Malformed)?;
    // A `crit` header names extensions we would have to understand: we understand none.
    if header.contains_key("crit") {
        return Err(TokenError::Malformed);
    }
    let alg = header.get("alg").and_then(Value::as_str).ok_or(TokenError::Malformed)?.to_owned();
    let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
    let signed_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
    Ok(Parsed { alg, kid, signed: &token[..signed_len], signature: decode(signature)?, claims })
}

fn b64(jwk: &Map<String, Value>, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(jwk.get(name)?.as_str()?.trim_end_matches('=')).ok()
}

/// Whether `jwk` can verify `alg` (key type and curve match, not marked for encryption only).
fn fits(jwk: &Map<String, Value>, alg: &str) -> bool {
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or_default();
    let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or_default();
    let usable = jwk.get("use").and_then(Value::as_str).is_none_or(|usage| usage == "sig");
    let declared = jwk.get("alg").and_then(Value::as_str).is_none_or(|declared| declared == alg);
    let kind = match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => kty == "RSA",
        "ES256" => kty == "EC" && crv == "P-256",
        "ES384" => kty == "EC" && crv == "P-384",
        "EdDSA" => kty == "OKP" && crv == "Ed25519",
        _ => false,
    };
    usable && declared && kind
}

fn verify_with(jwk: &Map<String, Value>, alg: &str, message: &[u8], sig: &[u8]) -> bool {
    let rsa = |params: &'static signature::RsaParameters| {
        let (Some(n), Some(e)) = (b64(jwk, "n"), b64(jwk, "e")) else { return false };
        RsaPublicKeyComponents { n, e }.verify(params, message, sig).is_ok()
    };
    let ec = |params: &'static signature::EcdsaVerificationAlgorithm| {
        let (Some(x), Some(y)) = (b64(jwk, "x"), b64(jwk, "y")) else { return false };
        let point = [&[4u8][..], &x, &y].concat();
        UnparsedPublicKey::new(params, point).verify(message, sig).is_ok()
    };
    match alg {
        "RS256" => rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
        "RS384" => rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
        "RS512" => rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
        "PS256" => rsa(&signature::RSA_PSS_2048_8192_SHA256),
        "PS384" => rsa(&signature::RSA_PSS_2048_8192_SHA384),
        "PS512" => rsa(&signature::RSA_PSS_2048_8192_SHA512),
        "ES256" => ec(&signature::ECDSA_P256_SHA256_FIXED),
        "ES384" => ec(&signature::ECDSA_P384_SHA384_FIXED),
        "EdDSA" => {
            b64(jwk, "x").is_some_and(|x| UnparsedPublicKey::new(&signature::ED25519, x).verify(message, sig).is_ok())
        }
        _ => false,
    }
}

/// Checks the signature with the provider's keys (`keys`: the JWKS `keys` array). A token
/// naming a `kid` is checked only with that key; one without is tried with each fitting key.
pub fn verify_signature(parsed: &Parsed<'_>, allowed: &[String], keys: &[Value]) -> Result<(), TokenError> {
    if !allowed.contains(&parsed.alg) {
        return Err(TokenError::AlgNotAllowed(parsed.alg.clone()));
    }
    let candidates: Vec<&Map<String, Value>> = keys
        .iter()
        .filter_map(Value::as_object)
        .filter(|jwk| fits(jwk, &parsed.alg))
        .filter(|jwk| match &parsed.kid {
            Some(kid) => jwk.get("kid").and_then(Value::as_str) == Some(kid.as_str()),
            None => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(TokenError::UnknownKey);
    }
    let message = parsed.signed.as_bytes();
    if candidates.iter().any(|jwk| verify_with(jwk, &parsed.alg, message, &parsed.signature)) {
        Ok(())
    } else {
        Err(TokenError::BadSignature)
    }
}

/// What the claims must say for this sign-in.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub extra_audiences: &'a [String],
    pub nonce: &'a str,
    pub now: i64,
}

/// The claim checks of OIDC Core 3.1.3.7 (after the signature): issuer, audience (every
/// audience trusted, `azp` our client when present), expiry, issue time and nonce.
pub fn check_claims(claims: &Map<String, Value>, expected: &Expected<'_>) -> Result<(), TokenError> {
    let issuer = claims.get("iss").and_then(Value::as_str).unwrap_or_default();
    if issuer != expected.issuer {
        return Err(TokenError::WrongIssuer(issuer.chars().take(200).collect()));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let trusted = |aud: &&str| *aud == expected.client_id || expected.extra_audiences.iter().any(|extra| extra == aud);
    if !audiences.contains(&expected.client_id) || !audiences.iter().all(trusted) {
        return Err(TokenError::WrongAudience);
    }
    if let Some(azp) = claims.get("azp")
        && azp.as_str() != Some(expected.client_id)
    {
        return Err(TokenError::WrongAudience);
    }
    // NumericDate may have a fraction; whole seconds are enough here.
    let seconds = |value: &Value| value.as_i64().or_else(|| value.as_f64().map(|float| float as i64));
    let exp = claims.get("exp").and_then(seconds).ok_or(TokenError::Expired)?;
    if exp + LEEWAY <= expected.now {
        return Err(TokenError::Expired);
    }
    if claims.get("iat").and_then(seconds).is_some_and(|iat| iat > expected.now + LEEWAY) {
        return Err(TokenError::IssuedInFuture);
    }
    let nonce = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
    if !ring_eq(nonce.as_bytes(), expected.nonce.as_bytes()) {
        return Err(TokenError::WrongNonce);
    }
    if claims.get("sub").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(TokenError::NoSubject);
    }
    Ok(())
}

fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::json;

    fn encode(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    fn claims(now: i64) -> Value {
        json!({"iss": "https://idp.test", "aud": "coffer", "sub": "s1", "exp": now + 300, "iat": now, "nonce": "n1"})
    }

    fn expected(now: i64) -> Expected<'static> {
        Expected { issuer: "https://idp.test", client_id: "coffer", extra_audiences: &[], nonce: "n1", now }
    }

    /// An ES256 key pair: the signing function and its JWK.
    fn es256(kid: &str) -> (impl Fn(&[u8]) -> Vec<u8>, Value) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])});
        (move |message: &[u8]| pair.sign(&SystemRandom::new(), message).unwrap().as_ref().to_vec(), jwk)
    }

    fn token(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let signed = format!("{}.{}", encode(header), encode(claims));
        let signature = URL_SAFE_NO_PAD.encode(sign(signed.as_bytes()));
        format!("{signed}.{signature}")
    }

    fn algs(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn a_good_es256_token_passes_and_a_changed_byte_fails() {
        let (sign, jwk) = es256("k1");
        let jwt = token(&json!({"alg": "ES256", "kid": "k1"}), &claims(1000), &sign);
        let parsed = parse(&jwt).unwrap();
        assert_eq!(verify_signature(&parsed, &algs(&["ES256"]), std::slice::from_ref(&jwk)), Ok(()));
        check_claims(&parsed.claims, &expected(1000)).unwrap();

        let mut forged = claims(1000);
        forged["sub"] = json!("admin");
        let (header, _) = jwt.split_once('.').unwrap();
        let signature = jwt.rsplit('.').next().unwrap();
        let forged = format!("{header}.{}.{signature}", encode(&forged));
        let parsed = parse(&forged).unwrap();
        assert_eq!(verify_signature(&parsed, &algs(&["ES256"]), &[jwk]), Err(TokenError::BadSignature));
    }

    #[test]
    fn eddsa_tokens_verify_with_an_okp_key() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())});
        let jwt = token(&json!({"alg": "EdDSA"}), &claims(5), |message| pair.sign(message).as_ref().to_vec());
        assert_eq!(verify_signature(&parse(&jwt).unwrap(), &algs(&["EdDSA"]), &[jwk]), Ok(()));
    }

    #[test]
    fn algorithms_outside_the_allow_list_none_and_hmac_are_refused_before_any_key() {
        let (sign, jwk) = es256("k1");
        let jwt = token(&json!({"alg": "ES256", "kid": "k1"}), &claims(1), &sign);
        let parsed = parse(&jwt).unwrap();
        assert_eq!(
            verify_signature(&parsed, &algs(&["RS256"]), std::slice::from_ref(&jwk)),
            Err(TokenError::AlgNotAllowed("ES256".into()))
        );
        for alg in ["none", "HS256"] {
            let jwt = token(&json!({"alg": alg, "kid": "k1"}), &claims(1), |_| Vec::new());
            // Even if an admin listed it, no key fits it: nothing verifies.
            let result = verify_signature(&parse(&jwt).unwrap(), &algs(&[alg]), std::slice::from_ref(&jwk));
            assert_eq!(result, Err(TokenError::UnknownKey), "{alg}");
        }
    }

    #[test]
    fn an_unknown_kid_is_reported_as_such_so_keys_are_fetched_again() {
        let (sign, jwk) = es256("old");
        let jwt = token(&json!({"alg": "ES256", "kid": "new"}), &claims(1), &sign);
        assert_eq!(verify_signature(&parse(&jwt).unwrap(), &algs(&["ES256"]), &[jwk]), Err(TokenError::UnknownKey));
    }

    #[test]
    fn claims_are_checked_for_issuer_audience_expiry_nonce_and_subject() {
        let now = 10_000;
        let check = |change: &dyn Fn(&mut Value)| {
            let mut value = claims(now);
            change(&mut value);
            check_claims(value.as_object().unwrap(), &expected(now))
        };
        assert_eq!(check(&|_| {}), Ok(()));
        assert!(matches!(check(&|c| c["iss"] = json!("https://evil.test")), Err(TokenError::WrongIssuer(_))));
        assert_eq!(check(&|c| c["aud"] = json!("other")), Err(TokenError::WrongAudience));
        assert_eq!(check(&|c| c["aud"] = json!(["coffer", "other"])), Err(TokenError::WrongAudience));
        assert_eq!(check(&|c| c["azp"] = json!("other")), Err(TokenError::WrongAudience));
        assert_eq!(check(&|c| c["exp"] = json!(now - LEEWAY)), Err(TokenError::Expired));
        assert_eq!(check(&|c| c["exp"] = json!(now - 1)), Ok(()), "within the leeway");
        assert_eq!(check(&|c| c["exp"] = json!("soon")), Err(TokenError::Expired));
        assert_eq!(check(&|c| c["iat"] = json!(now + 3600)), Err(TokenError::IssuedInFuture));
        assert_eq!(check(&|c| c["nonce"] = json!("n2")), Err(TokenError::WrongNonce));
        assert_eq!(check(&|c| drop(c.as_object_mut().unwrap().remove("nonce"))), Err(TokenError::WrongNonce));
        assert_eq!(check(&|c| c["sub"] = json!("")), Err(TokenError::NoSubject));

        let extra = ["project".to_owned()];
        let mut value = claims(now);
        value["aud"] = json!(["coffer", "project"]);
        let expected = Expected { extra_audiences: &extra, ..expected(now) };
        assert_eq!(check_claims(value.as_object().unwrap(), &expected), Ok(()), "a trusted extra audience");
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.", "e30.e30.!!"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let crit = format!("{}.{}.", encode(&json!({"alg": "ES256", "crit": ["x"]})), encode(&json!({})));
        assert!(parse(&crit).is_err());
    }
}
