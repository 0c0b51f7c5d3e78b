//! A user's own account: password change, sessions, personal API tokens.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::auth::{admin_password, login, login_admin, me_status, refresh};
use crate::helpers::{TestApp, spawn_default};

pub async fn call(app: &TestApp, method: &str, path: &str, bearer: &str, body: Option<Value>) -> (StatusCode, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.client.request(method, app.url(path)).bearer_auth(bearer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

#[tokio::test]
async fn password_change_needs_the_current_password_and_ends_every_session() {
    let app = spawn_default();
    let old_password = admin_password(&app);
    let here = login_admin(&app).await;
    let elsewhere = login_admin(&app).await;

    let change = |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let (status, body) = call(
        &app,
        "PUT",
        "/api/v1/me/password",
        access(&here),
        Some(change("wrong-password-1", "a-new-long-passphrase")),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("wrong_password")));
    let (status, body) =
        call(&app, "PUT", "/api/v1/me/password", access(&here), Some(change(&old_password, "1234567890"))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("weak_password")));
    assert_eq!(me_status(&app, access(&here)).await, 200, "failed attempts change nothing");

    let (status, fresh) =
        call(&app, "PUT", "/api/v1/me/password", access(&here), Some(change(&old_password, "a-new-long-passphrase")))
            .await;
    assert_eq!(status, 200, "{fresh}");
    for old in [&here, &elsewhere] {
        assert_eq!(me_status(&app, access(old)).await, 401, "an old access token still works");
        assert_eq!(
            refresh(&app, old["refresh_token"].as_str().unwrap()).await.0,
            401,
            "an old refresh token still works"
        );
    }
    assert_eq!(me_status(&app, access(&fresh)).await, 200, "the new session works");
    assert_eq!(login(&app, "admin", &old_password).await.0, 401);
    assert_eq!(login(&app, "admin", "a-new-long-passphrase").await.0, 200);
}

#[tokio::test]
async fn sessions_are_listed_and_one_can_be_ended() {
    let app = spawn_default();
    let phone = login_admin(&app).await;
    let laptop = login_admin(&app).await;
    let (status, sessions) = call(&app, "GET", "/api/v1/me/sessions", access(&laptop), None).await;
    assert_eq!(status, 200);
    let sessions = sessions.as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|session| session["current"] == true).count(), 1);
    let phone_session =
        sessions.iter().find(|session| session["current"] == false).unwrap()["id"].as_str().unwrap().to_owned();

    let path = format!("/api/v1/me/sessions/{phone_session}");
    assert_eq!(call(&app, "DELETE", &path, access(&laptop), None).await.0, 204);
    assert_eq!(me_status(&app, access(&phone)).await, 401);
    assert_eq!(me_status(&app, access(&laptop)).await, 200);
    assert_eq!(call(&app, "DELETE", &path, access(&laptop), None).await.0, 404, "already ended");
    assert_eq!(call(&app, "DELETE", "/api/v1/me/sessions/nope", access(&laptop), None).await.0, 404);
}

#[tokio::test]
async fn api_tokens_are_shown_once_scoped_and_revocable() {
    let app = spawn_default();
    let session = login_admin(&app).await;
    let new_token = |scope: &str| json!({"name": format!("{scope} script"), "scope": scope, "expires_in_days": 30});
    let (status, read_only) =
        call(&app, "POST", "/api/v1/me/tokens", access(&session), Some(new_token("read-only"))).await;
    assert_eq!(status, 201, "{read_only}");
    let (_, read_write) =
        call(&app, "POST", "/api/v1/me/tokens", access(&session), Some(new_token("read-write"))).await;
    let ro = read_only["token"].as_str().unwrap();
    let rw = read_write["token"].as_str().unwrap();
    assert!(ro.starts_with("cfr_") && ro.len() >= 4 + 43, "at least 256 bits");
    assert!(read_only["expires_at"].is_string());

    let (_, listed) = call(&app, "GET", "/api/v1/me/tokens", access(&session), None).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains(ro) && !listed.to_string().contains(rw), "listing shows token values");
    let stored: Vec<Vec<u8>> = {
        let db = rusqlite::Connection::open(app.state_dir.join("coffer.db")).unwrap();
        let mut statement = db.prepare("SELECT token_hash FROM api_tokens").unwrap();
        statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert!(
        stored.iter().all(|hash| hash.len() == 32 && !ro.as_bytes().windows(32).any(|part| part == hash.as_slice()))
    );

    assert_eq!(me_status(&app, ro).await, 200, "a read-only token reads");
    let (status, body) = call(&app, "POST", "/api/v1/auth/logout", ro, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "a read-only token may not write"
    );
    let (status, body) = call(&app, "POST", "/api/v1/auth/logout", rw, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("not_a_session")));
    let (status, _) = call(&app, "POST", "/api/v1/me/tokens", rw, Some(new_token("read-write"))).await;
    assert_eq!(status, 403, "a token cannot mint tokens");
    let change = json!({"current_password": admin_password(&app), "new_password": "a-new-long-passphrase"});
    assert_eq!(
        call(&app, "PUT", "/api/v1/me/password", rw, Some(change)).await.0,
        403,
        "a token cannot change the password"
    );

    let id = read_write["id"].as_str().unwrap();
    assert_eq!(call(&app, "DELETE", &format!("/api/v1/me/tokens/{id}"), access(&session), None).await.0, 204);
    assert_eq!(me_status(&app, rw).await, 401, "a revoked token still works");
    assert_eq!(me_status(&app, ro).await, 200);
    assert_eq!(call(&app, "DELETE", &format!("/api/v1/me/tokens/{id}"), access(&session), None).await.0, 404);
}

#[tokio::test]
async fn bad_token_requests_get_clear_400s() {
    let app = spawn_default();
    let session = login_admin(&app).await;
    for body in [
        json!({"name": "", "scope": "read-only"}),
        json!({"name": "x", "scope": "everything"}),
        json!({"name": "x", "scope": "read-only", "expires_in_days": 0}),
        json!({"name": "x"}),
    ] {
        let (status, answer) = call(&app, "POST", "/api/v1/me/tokens", access(&session), Some(body.clone())).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
}

#[tokio::test]
async fn a_new_password_must_differ_from_the_old_one_and_not_repeat_one_character() {
    let app = spawn_default();
    let current = admin_password(&app);
    let tokens = login_admin(&app).await;
    let change = |new: &str| json!({"current_password": current, "new_password": new});
    for (new, code) in [(current.as_str(), "password_unchanged"), ("zzzzzzzzzzzzzzzz", "weak_password")] {
        let (status, body) = call(&app, "PUT", "/api/v1/me/password", access(&tokens), Some(change(new))).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{body}");
    }
    assert_eq!(me_status(&app, access(&tokens)).await, 200, "a refused change ends no session");

    // An admin setting someone's password is held to the same rules.
    let (_, bob) = call(
        &app,
        "POST",
        "/api/v1/users",
        access(&tokens),
        Some(json!({"username": "bob", "password": "plum-quartz-ladder-71"})),
    )
    .await;
    let path = format!("/api/v1/users/{}", bob["id"].as_str().unwrap());
    let same = json!({"password": "plum-quartz-ladder-71"});
    let (status, body) = call(&app, "PATCH", &path, access(&tokens), Some(same)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("password_unchanged")));
    assert_eq!(login(&app, "bob", "plum-quartz-ladder-71").await.0, 200);
}
