//! Access tokens an attacker might forge or replay, each refused with 401.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::auth::{login_admin, me_status};
use crate::helpers::spawn_default;

/// Builds a token from raw parts: `header` and `claims` as JSON, signed by `sign`.
fn token(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[tokio::test]
async fn forged_and_wrong_access_tokens_get_401() {
    let app = spawn_default();
    let tokens = login_admin(&app).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(me_status(&app, access).await, 200);

    // The server's own key, as an attacker who stole nothing does not have it: used here to
    // prove each rejection is about the claim or algorithm, not the signature.
    let pkcs8 = std::fs::read(app.state_dir.join("keys/token-signing.key")).unwrap();
    let key = ring::signature::Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap();
    let public = ring::signature::KeyPair::public_key(&key).as_ref().to_vec();
    let eddsa = |input: &[u8]| key.sign(input).as_ref().to_vec();
    let hs256 = |secret: Vec<u8>| {
        move |input: &[u8]| {
            ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret), input).as_ref().to_vec()
        }
    };
    let payload = access.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let good_header = json!({"alg": "EdDSA", "typ": "JWT"});
    let with = |key: &str, value: Value| {
        let mut changed = claims.clone();
        changed[key] = value;
        changed
    };
    let without = |key: &str| {
        let mut changed = claims.clone();
        changed.as_object_mut().unwrap().remove(key);
        changed
    };

    // Control: a token we build the same way with untouched claims is accepted.
    assert_eq!(me_status(&app, &token(&good_header, &claims, eddsa)).await, 200);

    let exp = claims["exp"].as_i64().unwrap();
    let cases = [
        ("alg none", token(&json!({"alg": "none", "typ": "JWT"}), &claims, |_| Vec::new())),
        (
            "HS256 keyed with the public key",
            token(&json!({"alg": "HS256", "typ": "JWT"}), &claims, hs256(public.clone())),
        ),
        (
            "HS256 with a guessed secret",
            token(&json!({"alg": "HS256", "typ": "JWT"}), &claims, hs256(b"secret".to_vec())),
        ),
        ("wrong iss", token(&good_header, &with("iss", json!("someone-else")), eddsa)),
        ("wrong aud", token(&good_header, &with("aud", json!("other-api")), eddsa)),
        ("aud as a list", token(&good_header, &with("aud", json!(["coffer-api"])), eddsa)),
        ("wrong typ", token(&good_header, &with("typ", json!("refresh")), eddsa)),
        ("exp missing", token(&good_header, &without("exp"), eddsa)),
        ("exp as a string", token(&good_header, &with("exp", json!(exp.to_string())), eddsa)),
        ("expired", token(&good_header, &with("exp", json!(claims["iat"].as_i64().unwrap() - 1)), eddsa)),
        ("sub missing", token(&good_header, &without("sub"), eddsa)),
        ("role raised", token(&good_header, &with("role", json!("user")), eddsa)),
        ("unknown session", token(&good_header, &with("sid", json!("0".repeat(32))), eddsa)),
        ("refresh token as access token", tokens["refresh_token"].as_str().unwrap().to_owned()),
        ("signature stripped", format!("{}.", access.rsplit_once('.').unwrap().0)),
        ("garbage", "not-a-token".to_owned()),
    ];
    for (case, bad) in cases {
        let response = app.client.get(app.url("/api/v1/me")).bearer_auth(&bad).send().await.unwrap();
        assert_eq!(response.status(), 401, "{case}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{case}");
    }
    let missing = app.client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
}
