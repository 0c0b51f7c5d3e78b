//! Failed sign-ins slow down the attacker, not the owner, and a flood of them cannot exhaust
//! the server.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::call;
use crate::auth::{admin_password, login, login_admin};
use crate::helpers::{Options, TestApp, spawn_app};

async fn login_from(
    app: &TestApp,
    client: &reqwest::Client,
    username: &str,
    password: &str,
    device: Option<&str>,
) -> (StatusCode, Value) {
    let mut body = json!({"username": username, "password": password});
    if let Some(device) = device {
        body["device_token"] = json!(device);
    }
    let response = client.post(app.url("/api/v1/auth/login")).json(&body).send().await.unwrap();
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn repeated_failures_on_one_account_get_429_while_another_account_signs_in() {
    let app = spawn_app(Options { toml: "[auth]\nlogin_free_failures = 3\n".into(), ..Options::default() });
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/users",
        login_admin(&app).await["access_token"].as_str().unwrap(),
        Some(json!({"username": "bob", "password": "plum-quartz-ladder-71"})),
    )
    .await;
    assert_eq!(status, 201);

    for _ in 0..4 {
        assert_eq!(login(&app, "admin", "wrong-password-123").await.0, 401);
    }
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": admin_password(&app)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429, "even the right password waits");
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");

    assert_eq!(login(&app, "bob", "plum-quartz-ladder-71").await.0, 200, "another account is unaffected");
    app.logs.wait_for(|line| line["message"] == "audit" && line["event"] == "login_throttled").expect("audited");
}

#[tokio::test]
async fn the_owner_signs_in_from_a_new_address_while_ten_addresses_attack_the_account() {
    let app = spawn_app(Options { toml: "[auth]\nlogin_free_failures = 3\n".into(), ..Options::default() });
    let password = admin_password(&app);
    // The owner signed in once before, from home, and kept the device token.
    let (status, first) = login_from(&app, &app.client_from("127.0.0.1"), "admin", &password, None).await;
    assert_eq!(status, 200);
    let device = first["device_token"].as_str().expect("a device token is handed out").to_owned();

    // Ten addresses guess until the account-wide allowance (ten times 3) is spent.
    let attackers: Vec<reqwest::Client> = (2..12).map(|host| app.client_from(&format!("127.0.0.{host}"))).collect();
    for round in 0..4 {
        for attacker in &attackers {
            let (status, _) = login_from(&app, attacker, "admin", &format!("guess-{round}-attempt"), None).await;
            assert!(status == 401 || status == 429, "{status}");
        }
    }
    // Someone without the device token, from yet another address, now waits...
    let stranger = app.client_from("127.0.0.50");
    let (status, _) = login_from(&app, &stranger, "admin", &password, None).await;
    assert_eq!(status, 429, "the account-wide wait is in force");

    // ...while the attack goes on, the owner's device signs in from a new address at once.
    let owner_elsewhere = app.client_from("127.0.0.60");
    let (attack, owner) = tokio::join!(
        login_from(&app, &attackers[0], "admin", "guess-during-owner-login", None),
        login_from(&app, &owner_elsewhere, "admin", &password, Some(&device)),
    );
    assert!(attack.0 == 401 || attack.0 == 429);
    assert_eq!(owner.0, 200, "{}", owner.1);

    // A token for another account, or a forged one, proves nothing.
    let forged = device.replacen("v1.", "v1.0", 1);
    let (status, _) = login_from(&app, &app.client_from("127.0.0.70"), "admin", "wrong-again-123", Some(&forged)).await;
    assert!(status == 401 || status == 429);
}

#[tokio::test]
async fn the_device_cookie_works_like_the_device_token() {
    let app = spawn_app(Options { toml: "[auth]\nlogin_free_failures = 2\n".into(), ..Options::default() });
    let password = admin_password(&app);
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["__Host-coffer_device=", "Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    for host in 2..12 {
        for _ in 0..3 {
            login_from(&app, &app.client_from(&format!("127.0.0.{host}")), "admin", "not-the-password", None).await;
        }
    }
    assert_eq!(login_from(&app, &app.client_from("127.0.0.40"), "admin", &password, None).await.0, 429);
    let with_cookie = app
        .client_from("127.0.0.41")
        .post(app.url("/api/v1/auth/login"))
        .header("cookie", pair)
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), 200);
}

#[tokio::test]
async fn malformed_usernames_are_refused_at_once_and_never_recorded() {
    let app = spawn_app(Options { toml: "[auth]\nlogin_free_failures = 2\n".into(), ..Options::default() });
    let admin = login_admin(&app).await["access_token"].as_str().unwrap().to_owned();
    // A password typed into the username field, and a huge made-up name.
    let typed_password = "Correct Horse Battery Staple!";
    assert_eq!(login(&app, typed_password, "whatever-password").await.0, 401);
    assert_eq!(login(&app, &"x".repeat(200_000), "whatever-password").await.0, 401);
    assert_eq!(login(&app, "nobody-with-this-name", "whatever-password").await.0, 401);
    let (_, audit) = call(&app, "GET", "/api/v1/audit?event=login_failed", &admin, None).await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{audit}");
    for entry in entries {
        assert!(entry["subject"].is_null() || entry["subject"] == "", "{entry}");
    }
    assert!(!app.logs.text().contains("Correct Horse"), "what was typed never reaches the log");
    assert!(!app.logs.text().contains("nobody-with-this-name"));

    // Malformed names count against the address: it waits, others do not.
    for _ in 0..6 {
        login(&app, "bad name!", "whatever-password").await;
    }
    assert_eq!(login(&app, "bad name!", "whatever-password").await.0, 429);
    let elsewhere = app.client_from("127.0.0.9");
    assert_eq!(login_from(&app, &elsewhere, "admin", &admin_password(&app), None).await.0, 200);
}

#[tokio::test]
async fn a_flood_of_sign_ins_gets_503_with_retry_after_instead_of_an_endless_queue() {
    // Real hash costs, one hash at a time, one waiting: the rest are turned away at once.
    let toml = "[auth]\nargon2_memory_kib = 19456\nargon2_iterations = 2\nmax_concurrent_hashes = 1\n\
                max_queued_hashes = 1\nlogin_free_failures = 1000\n";
    let app = spawn_app(Options { toml: toml.into(), ..Options::default() });
    let attempts = (0..12).map(|_| login(&app, "admin", "wrong-password-123"));
    let results = futures_util::future::join_all(attempts).await;
    let busy: Vec<&Value> = results.iter().filter(|(status, _)| *status == 503).map(|(_, body)| body).collect();
    assert!(!busy.is_empty(), "{results:?}");
    assert!(busy.iter().all(|body| body["error"] == "server_busy"));
    assert!(results.iter().all(|(status, _)| *status == 401 || *status == 503), "{results:?}");
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": admin_password(&app)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the flood is over, the owner signs in");
}
