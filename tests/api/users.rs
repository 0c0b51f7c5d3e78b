//! The admin API over accounts, and who may use it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::call;
use crate::auth::{db, login, login_admin, me_status, refresh};
use crate::helpers::{TestApp, spawn_default};

const PASSWORD: &str = "plum-quartz-ladder-71";

async fn create_user(app: &TestApp, admin: &str, username: &str, role: &str) -> Value {
    let body = json!({"username": username, "password": PASSWORD, "role": role});
    let (status, user) = call(app, "POST", "/api/v1/users", admin, Some(body)).await;
    assert_eq!(status, 201, "{user}");
    user
}

async fn sign_in(app: &TestApp, username: &str) -> Value {
    let (status, tokens) = login(app, username, PASSWORD).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

#[tokio::test]
async fn a_user_gets_403_on_every_admin_route_and_the_denial_is_audited() {
    let app = spawn_default();
    let admin = login_admin(&app).await;
    let target = create_user(&app, access(&admin), "target", "user").await;
    create_user(&app, access(&admin), "mallory", "user").await;
    let mallory = sign_in(&app, "mallory").await;
    let id = target["id"].as_str().unwrap();
    let routes = [
        ("GET", "/api/v1/users".to_owned(), None),
        ("POST", "/api/v1/users".to_owned(), Some(json!({"username": "x2", "password": PASSWORD}))),
        ("GET", format!("/api/v1/users/{id}"), None),
        ("PATCH", format!("/api/v1/users/{id}"), Some(json!({"role": "admin"}))),
        ("DELETE", format!("/api/v1/users/{id}"), None),
        ("DELETE", format!("/api/v1/users/{id}/sessions"), None),
        ("GET", "/api/v1/users/no-such-id".to_owned(), None),
        ("GET", "/api/v1/audit".to_owned(), None),
    ];
    for (method, path, body) in routes {
        let (status, answer) = call(&app, method, &path, access(&mallory), body).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert_eq!(answer["error"], "forbidden");
    }
    let (_, still) = call(&app, "GET", &format!("/api/v1/users/{id}"), access(&admin), None).await;
    assert_eq!(still["role"], "user", "nothing changed");
    let denials: i64 = db(&app)
        .query_row("SELECT count(*) FROM audit_log WHERE event = 'authorization_denied'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(denials, 8);
}

#[tokio::test]
async fn the_last_enabled_admin_cannot_be_demoted_disabled_or_deleted() {
    let app = spawn_default();
    let admin = login_admin(&app).await;
    let (_, me) = call(&app, "GET", "/api/v1/me", access(&admin), None).await;
    let path = format!("/api/v1/users/{}", me["id"].as_str().unwrap());
    for (method, body) in
        [("PATCH", Some(json!({"role": "user"}))), ("PATCH", Some(json!({"disabled": true}))), ("DELETE", None)]
    {
        let (status, answer) = call(&app, method, &path, access(&admin), body).await;
        assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("last_admin")), "{method}");
    }
    // With a second admin, the first may step down.
    create_user(&app, access(&admin), "second", "admin").await;
    let (status, demoted) = call(&app, "PATCH", &path, access(&admin), Some(json!({"role": "user"}))).await;
    assert_eq!((status, demoted["role"].as_str()), (StatusCode::OK, Some("user")));
    assert_eq!(me_status(&app, access(&admin)).await, 401, "a role change ends the sessions");
}

#[tokio::test]
async fn disabling_a_user_kills_their_tokens_at_once_and_blocks_sign_in() {
    let app = spawn_default();
    let admin = login_admin(&app).await;
    let user = create_user(&app, access(&admin), "carol", "user").await;
    let carol = sign_in(&app, "carol").await;
    let path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());

    let (status, _) = call(&app, "PATCH", &path, access(&admin), Some(json!({"disabled": true}))).await;
    assert_eq!(status, 200);
    assert_eq!(me_status(&app, access(&carol)).await, 401);
    assert_eq!(refresh(&app, carol["refresh_token"].as_str().unwrap()).await.0, 401);
    let (status, body) = login(&app, "carol", PASSWORD).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_credentials")));

    call(&app, "PATCH", &path, access(&admin), Some(json!({"disabled": false}))).await;
    sign_in(&app, "carol").await;
}

#[tokio::test]
async fn admin_can_set_quota_and_password_and_end_sessions() {
    let app = spawn_default();
    let admin = login_admin(&app).await;
    let user = create_user(&app, access(&admin), "dave", "user").await;
    let path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());
    let dave = sign_in(&app, "dave").await;

    let (_, updated) =
        call(&app, "PATCH", &path, access(&admin), Some(json!({"quota_bytes": 1048576, "email": "dave@example.org"})))
            .await;
    assert_eq!(updated["quota_bytes"], 1_048_576);
    assert_eq!(updated["email"], "dave@example.org");
    assert_eq!(me_status(&app, access(&dave)).await, 200, "a quota change keeps sessions");
    let (_, cleared) = call(&app, "PATCH", &path, access(&admin), Some(json!({"quota_bytes": null}))).await;
    assert!(cleared.get("quota_bytes").is_none(), "{cleared}");
    let (status, _) = call(&app, "PATCH", &path, access(&admin), Some(json!({"quota_bytes": -1}))).await;
    assert_eq!(status, 400);

    let (_, ended) = call(&app, "DELETE", &format!("{path}/sessions"), access(&admin), None).await;
    assert_eq!(ended["sessions_ended"], 1);
    assert_eq!(me_status(&app, access(&dave)).await, 401);

    let (status, _) =
        call(&app, "PATCH", &path, access(&admin), Some(json!({"password": "another-fine-passphrase"}))).await;
    assert_eq!(status, 200);
    assert_eq!(login(&app, "dave", "another-fine-passphrase").await.0, 200);
    assert_eq!(call(&app, "DELETE", &path, access(&admin), None).await.0, 204);
    assert_eq!(call(&app, "GET", &path, access(&admin), None).await.0, 404);
    assert_eq!(login(&app, "dave", "another-fine-passphrase").await.0, 401);
}

#[tokio::test]
async fn usernames_are_unique_ignoring_case_and_validated() {
    let app = spawn_default();
    let admin = login_admin(&app).await;
    create_user(&app, access(&admin), "Erin", "user").await;
    let body = json!({"username": "erin", "password": PASSWORD});
    let (status, answer) = call(&app, "POST", "/api/v1/users", access(&admin), Some(body)).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("username_taken")));
    assert_eq!(sign_in(&app, "ERIN").await["token_type"], "Bearer", "sign-in ignores case");
    for (username, password, code) in [
        ("bad name", PASSWORD, "invalid_username"),
        ("../etc", PASSWORD, "invalid_username"),
        ("frank", "short", "weak_password"),
    ] {
        let body = json!({"username": username, "password": password});
        let (status, answer) = call(&app, "POST", "/api/v1/users", access(&admin), Some(body)).await;
        assert_eq!((status, answer["error"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{username}");
    }
}

#[tokio::test]
async fn users_page_through_without_gaps_and_audit_filters_by_user_and_event() {
    let app = spawn_default();
    let admin = login_admin(&app).await;
    for name in ["u1", "u2", "u3", "u4", "u5"] {
        create_user(&app, access(&admin), name, "user").await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/v1/users?limit=2&cursor={cursor}"),
            None => "/api/v1/users?limit=2".to_owned(),
        };
        let (status, page) = call(&app, "GET", &path, access(&admin), None).await;
        assert_eq!(status, 200);
        seen.extend(page["users"].as_array().unwrap().iter().map(|user| user["username"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["admin", "u1", "u2", "u3", "u4", "u5"]);
    assert_eq!(call(&app, "GET", "/api/v1/users?limit=1001", access(&admin), None).await.0, 400);

    let (_, created) = call(&app, "GET", "/api/v1/audit?event=user_created&limit=3", access(&admin), None).await;
    let entries = created["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(entries.iter().all(|entry| entry["event"] == "user_created"));
    assert!(entries[0]["id"].as_i64() > entries[1]["id"].as_i64(), "newest first");
    let next = created["next_cursor"].as_str().unwrap();
    let (_, older) =
        call(&app, "GET", &format!("/api/v1/audit?event=user_created&cursor={next}"), access(&admin), None).await;
    assert_eq!(older["entries"].as_array().unwrap().len(), 2);

    sign_in(&app, "u3").await;
    let (_, u3) = call(&app, "GET", "/api/v1/users?limit=10", access(&admin), None).await;
    let u3_id = u3["users"].as_array().unwrap().iter().find(|user| user["username"] == "u3").unwrap()["id"].clone();
    let (_, mine) =
        call(&app, "GET", &format!("/api/v1/audit?user={}", u3_id.as_str().unwrap()), access(&admin), None).await;
    let events: Vec<&str> =
        mine["entries"].as_array().unwrap().iter().map(|entry| entry["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["login_ok", "user_created"]);
}
