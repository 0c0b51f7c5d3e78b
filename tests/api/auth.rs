//! Sign-in, tokens and sessions, attacked the ways real attackers do.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, spawn_app, spawn_default};

pub fn admin_password(app: &TestApp) -> String {
    std::fs::read_to_string(app.state_dir.join("initial-admin-password")).unwrap().trim().to_owned()
}

pub async fn login(app: &TestApp, username: &str, password: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

pub async fn login_admin(app: &TestApp) -> Value {
    let (status, body) = login(app, "admin", &admin_password(app)).await;
    assert_eq!(status, 200, "{body}");
    body
}

pub async fn refresh(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let response =
        app.client.post(app.url("/api/v1/auth/refresh")).json(&json!({"refresh_token": token})).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

pub async fn me_status(app: &TestApp, bearer: &str) -> StatusCode {
    app.client.get(app.url("/api/v1/me")).bearer_auth(bearer).send().await.unwrap().status()
}

pub fn db(app: &TestApp) -> rusqlite::Connection {
    rusqlite::Connection::open(app.state_dir.join("coffer.db")).unwrap()
}

#[tokio::test]
async fn first_start_creates_admin_with_a_private_password_file_and_logs_only_its_path() {
    let app = spawn_default();
    let file = app.state_dir.join("initial-admin-password");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let password = admin_password(&app);
    assert!(password.len() >= 20);
    let logs = app.logs.text();
    assert!(logs.contains(&file.display().to_string()), "the log names the file");
    assert!(!logs.contains(&password), "the log holds the password");

    let tokens = login_admin(&app).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    assert_eq!(tokens["refresh_expires_in"], 7 * 86_400);
    let me: Value = app
        .client
        .get(app.url("/api/v1/me"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "admin");
    assert_eq!(me["role"], "admin");
    assert!(me["last_login_at"].is_string());
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_401() {
    let app = spawn_default();
    let (wrong_status, mut wrong) = login(&app, "admin", "not the password at all").await;
    let (unknown_status, mut unknown) = login(&app, "nobody-here", "not the password at all").await;
    let (invalid_status, mut invalid) = login(&app, "in valid/name", "not the password at all").await;
    assert_eq!(wrong_status, 401);
    assert_eq!(unknown_status, 401);
    assert_eq!(invalid_status, 401);
    for body in [&mut wrong, &mut unknown, &mut invalid] {
        assert!(body.as_object_mut().unwrap().remove("request_id").is_some());
    }
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, invalid);
    assert_eq!(wrong["error"], "invalid_credentials");
}

#[tokio::test]
async fn refresh_rotates_and_reusing_a_spent_token_revokes_the_session() {
    let app = spawn_default();
    let first = login_admin(&app).await;
    let (status, second) = refresh(&app, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let (status, third) = refresh(&app, second["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(me_status(&app, third["access_token"].as_str().unwrap()).await, 200);

    // The first token again: theft. The whole session ends, including the newest tokens.
    let (status, body) = refresh(&app, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(me_status(&app, third["access_token"].as_str().unwrap()).await, 401);
    assert_eq!(refresh(&app, third["refresh_token"].as_str().unwrap()).await.0, 401);
    app.logs.wait_for(|line| line["message"] == "audit" && line["event"] == "refresh_token_reuse").expect("audited");
    let events: i64 = db(&app)
        .query_row("SELECT count(*) FROM audit_log WHERE event = 'refresh_token_reuse'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(events, 1);
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_succeed_at_most_once() {
    let app = spawn_default();
    let tokens = login_admin(&app).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let attempts = (0..10).map(|_| refresh(&app, &refresh_token));
    let results = futures_util::future::join_all(attempts).await;
    let succeeded = results.iter().filter(|(status, _)| *status == 200).count();
    assert!(succeeded <= 1, "{succeeded} refreshes succeeded with one token");
    assert!(results.iter().all(|(status, _)| *status == 200 || *status == 401));
}

#[tokio::test]
async fn logout_ends_the_session_for_access_and_refresh_tokens() {
    let app = spawn_default();
    let tokens = login_admin(&app).await;
    let access = tokens["access_token"].as_str().unwrap();
    let response = app.client.post(app.url("/api/v1/auth/logout")).bearer_auth(access).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(me_status(&app, access).await, 401);
    assert_eq!(refresh(&app, tokens["refresh_token"].as_str().unwrap()).await.0, 401);
}

#[tokio::test]
async fn idle_and_expired_sessions_cannot_be_used() {
    let app = spawn_default();
    let idle = login_admin(&app).await;
    let active = login_admin(&app).await;
    let mut active_refresh = active["refresh_token"].as_str().unwrap().to_owned();
    // Four weeks pass; one session refreshes every six days, the other never does.
    for _ in 0..4 {
        app.advance_clock(6 * 86_400);
        let (status, renewed) = refresh(&app, &active_refresh).await;
        assert_eq!(status, 200, "a session used within its idle timeout lives on");
        active_refresh = renewed["refresh_token"].as_str().unwrap().to_owned();
    }
    assert_eq!(refresh(&app, idle["refresh_token"].as_str().unwrap()).await.0, 401, "idle for 24 days");

    // Past the 30-day absolute lifetime even an active session ends.
    app.advance_clock(7 * 86_400);
    assert_eq!(refresh(&app, &active_refresh).await.0, 401, "past the absolute lifetime");
}

#[tokio::test]
async fn production_argon2_parameters_are_the_default_and_old_hashes_upgrade_at_login() {
    let production = "[auth]\nargon2_memory_kib = 19456\nargon2_iterations = 2\nargon2_parallelism = 1\n";
    let mut app = spawn_app(Options { toml: production.into(), ..Options::default() });
    let hash = |app: &TestApp| -> String {
        db(app).query_row("SELECT password_hash FROM users WHERE username = 'admin'", [], |row| row.get(0)).unwrap()
    };
    assert!(hash(&app).starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", hash(&app));
    assert_eq!(coffer::config::Settings::default().auth.argon2_memory_kib, 19_456);
    login_admin(&app).await;
    app.terminate();
    assert!(app.wait_exit().await.success());

    let cheaper = spawn_app(Options { state_dir: Some(app.state_dir.clone()), ..Options::default() });
    let before = hash(&cheaper);
    login_admin(&cheaper).await;
    let after = hash(&cheaper);
    assert_ne!(before, after);
    assert!(after.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{after}");
    login_admin(&cheaper).await;
}

#[tokio::test]
async fn passwords_and_tokens_never_reach_the_log() {
    let app = spawn_default();
    let password = admin_password(&app);
    let tokens = login_admin(&app).await;
    let (_, rotated) = refresh(&app, tokens["refresh_token"].as_str().unwrap()).await;
    login(&app, "admin", "a-wrong-password-123").await;
    me_status(&app, rotated["access_token"].as_str().unwrap()).await;
    app.logs.wait_for(|line| line["message"] == "request" && line["path"] == "/api/v1/me").unwrap();
    let logs = app.logs.text();
    for secret in [
        password.as_str(),
        "a-wrong-password-123",
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
        rotated["access_token"].as_str().unwrap(),
        rotated["refresh_token"].as_str().unwrap(),
    ] {
        assert!(!logs.contains(secret), "a secret reached the log");
    }
    assert!(logs.contains("login_failed") && logs.contains("login_ok"), "the attempts were audited");
}
