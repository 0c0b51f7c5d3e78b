//! Failed sign-ins slow down the attacker, not everyone.

use crate::auth::{admin_password, login};
use crate::helpers::{Options, spawn_app};

#[tokio::test]
async fn repeated_failures_on_one_account_get_429_while_another_account_signs_in() {
    let app = spawn_app(Options { toml: "[auth]\nlogin_free_failures = 3\n".into(), ..Options::default() });
    let (status, _) = crate::accounts::call(
        &app,
        "POST",
        "/api/v1/users",
        crate::auth::login_admin(&app).await["access_token"].as_str().unwrap(),
        Some(serde_json::json!({"username": "bob", "password": "plum-quartz-ladder-71"})),
    )
    .await;
    assert_eq!(status, 201);

    for _ in 0..4 {
        assert_eq!(login(&app, "admin", "wrong-password-123").await.0, 401);
    }
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": admin_password(&app)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429, "even the right password waits");
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");

    assert_eq!(login(&app, "bob", "plum-quartz-ladder-71").await.0, 200, "another account is unaffected");
    app.logs.wait_for(|line| line["message"] == "audit" && line["event"] == "login_throttled").expect("audited");
}
