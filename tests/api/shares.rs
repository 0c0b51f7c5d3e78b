//! Managing share links: create, list, change, revoke, and who may do what.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::call;
use crate::files::{admin_token, put, user_token};
use crate::helpers::{TestApp, spawn_default};

/// Uploads a small file and returns its id.
pub async fn upload(app: &TestApp, token: &str, name: &str, data: Vec<u8>) -> String {
    let (status, file) = put(app, token, &format!("name={}", urlencode(name)), data).await;
    assert_eq!(status, 201, "{file}");
    file["id"].as_str().unwrap().to_owned()
}

pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Creates a share with `settings` merged into `{file_id}`; returns its JSON.
pub async fn share(app: &TestApp, token: &str, file_id: &str, settings: Value) -> Value {
    let mut body = json!({"file_id": file_id});
    body.as_object_mut().unwrap().extend(settings.as_object().unwrap().clone());
    let (status, share) = call(app, "POST", "/api/v1/shares", token, Some(body)).await;
    assert_eq!(status, 201, "{share}");
    share
}

/// The events the audit log holds about `subject`, oldest first.
pub async fn audit_of(app: &TestApp, admin: &str, event: &str) -> Vec<Value> {
    let (status, page) = call(app, "GET", &format!("/api/v1/audit?event={event}&limit=1000"), admin, None).await;
    assert_eq!(status, 200, "{page}");
    let mut entries = page["entries"].as_array().unwrap().clone();
    entries.reverse();
    entries
}

#[tokio::test]
async fn a_share_is_created_listed_changed_and_revoked() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let file = upload(&app, &admin, "report.pdf", b"quarterly numbers".to_vec()).await;
    let created =
        share(&app, &admin, &file, json!({"password": "open-sesame-42", "max_downloads": 3, "note": "for Bob"})).await;
    let token = created["token"].as_str().unwrap();
    assert_eq!(created["url"], format!("{}/s/{token}", app.base_url));
    assert_eq!(created["file_name"], "report.pdf");
    assert_eq!(created["has_password"], true);
    assert_eq!(created["max_downloads"], 3);
    assert_eq!(created["downloads"], 0);
    assert_eq!(created["state"], "active");
    assert!(created.get("password").is_none() && !created.to_string().contains("open-sesame-42"));
    let id = created["id"].as_str().unwrap();

    let (status, listing) = call(&app, "GET", "/api/v1/shares", &admin, None).await;
    assert_eq!(status, 200);
    assert_eq!(listing["shares"][0]["id"], id);
    assert_eq!(listing["shares"][0]["url"], created["url"], "the link can be seen again");

    // Disabling makes the public link 404 until enabled again.
    let (status, changed) =
        call(&app, "PATCH", &format!("/api/v1/shares/{id}"), &admin, Some(json!({"disabled": true}))).await;
    assert_eq!((status, changed["state"].as_str()), (StatusCode::OK, Some("disabled")));
    assert_eq!(app.get(&format!("/s/{token}")).await.status(), 404);
    let changes = json!({"disabled": false, "max_downloads": null, "password": null, "expires_in": 60, "note": "x"});
    let (status, changed) = call(&app, "PATCH", &format!("/api/v1/shares/{id}"), &admin, Some(changes)).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["state"], "active");
    assert_eq!(changed["has_password"], false);
    assert!(changed.get("max_downloads").is_none());
    assert_eq!(changed["note"], "x");
    assert_ne!(changed["expires_at"], created["expires_at"]);
    assert_eq!(app.get(&format!("/s/{token}/download")).await.text().await.unwrap(), "quarterly numbers");
    let (_, again) = call(&app, "GET", &format!("/api/v1/shares/{id}"), &admin, None).await;
    assert_eq!(again["downloads"], 1);
    assert!(again["last_access_at"].is_string());

    let (status, _) = call(&app, "DELETE", &format!("/api/v1/shares/{id}"), &admin, None).await;
    assert_eq!(status, 204);
    assert_eq!(call(&app, "GET", &format!("/api/v1/shares/{id}"), &admin, None).await.0, 404);
    assert_eq!(app.get(&format!("/s/{token}")).await.status(), 404);
    assert_eq!(app.get(&format!("/s/{token}/download")).await.status(), 404);
}

#[tokio::test]
async fn bad_share_settings_are_refused_with_reasons() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let file = upload(&app, &admin, "a.txt", b"a".to_vec()).await;
    let in_a_year = (time::OffsetDateTime::now_utc() + time::Duration::days(400))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for settings in [
        json!({"expires_in": 0}),
        json!({"expires_in": -5}),
        json!({"expires_at": in_a_year}),
        json!({"expires_at": "tomorrow"}),
        json!({"expires_in": 60, "expires_at": "2030-01-01T00:00:00Z"}),
        json!({"password": "short"}),
        json!({"max_downloads": 0}),
        json!({"note": "n".repeat(1001)}),
    ] {
        let mut body = json!({"file_id": file});
        body.as_object_mut().unwrap().extend(settings.as_object().unwrap().clone());
        let (status, error) = call(&app, "POST", "/api/v1/shares", &admin, Some(body)).await;
        assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid")), "{settings}");
    }
    let (status, error) = call(&app, "POST", "/api/v1/shares", &admin, Some(json!({"file_id": "nope"}))).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (_, listing) = call(&app, "GET", "/api/v1/shares", &admin, None).await;
    assert_eq!(listing["shares"].as_array().unwrap().len(), 0, "nothing half-made");

    // Without an expiry the default (7 days) applies.
    let made = share(&app, &admin, &file, json!({})).await;
    let parse = |text: &Value| {
        time::OffsetDateTime::parse(text.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
    };
    assert_eq!((parse(&made["expires_at"]) - parse(&made["created_at"])).whole_days(), 7);
}

#[tokio::test]
async fn tokens_are_long_random_unique_and_never_logged() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let file = upload(&app, &admin, "a.txt", b"a".to_vec()).await;
    let mut tokens = Vec::new();
    for _ in 0..200 {
        let made = share(&app, &admin, &file, json!({})).await;
        tokens.push(made["token"].as_str().unwrap().to_owned());
    }
    let mut ones = 0u32;
    for token in &tokens {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).expect("URL-safe base64");
        assert_eq!(raw.len(), 32, "256 bits");
        ones += raw.iter().map(|byte| byte.count_ones()).sum::<u32>();
    }
    let mut unique = tokens.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), tokens.len());
    // 51,200 random bits: the share of ones is 0.5 within a few standard deviations (0.0022).
    let ratio = f64::from(ones) / (200.0 * 256.0);
    assert!((0.49..0.51).contains(&ratio), "bit balance {ratio}");

    // Visit a few links, then look for any token in the log.
    for token in tokens.iter().take(3) {
        assert_eq!(app.get(&format!("/s/{token}")).await.status(), 200);
        assert_eq!(app.get(&format!("/s/{token}/download")).await.status(), 200);
    }
    let line = app
        .logs
        .wait_for(|line| line["path"].as_str().is_some_and(|path| path.starts_with("/s/[share ")))
        .expect("share requests are logged by share id");
    assert!(line["path"].as_str().unwrap().len() > "/s/[share ]".len());
    assert_eq!(app.get("/s/not-a-real-token-but-long-enough/download").await.status(), 404);
    app.logs.wait_for(|line| line["path"] == "/s/[token]/download").expect("unknown tokens are hidden too");
    // Odd paths that carry a token elsewhere are hidden as well.
    for odd in [format!("/s//{}", tokens[3]), format!("/s/x/{}", tokens[4]), format!("/s/{}/{}", tokens[5], tokens[6])]
    {
        assert_eq!(app.get(&odd).await.status(), 404, "{odd}");
    }
    app.logs.wait_for(|line| line["path"] == "/s/[token]/[...]").expect("odd share paths are logged redacted");
    let log = app.logs.text();
    for token in &tokens {
        assert!(!log.contains(token.as_str()), "a share token reached the log");
    }
}

#[tokio::test]
async fn only_the_owner_or_an_admin_can_see_change_or_revoke_a_share() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let (alice, _) = user_token(&app, &admin, "alice").await;
    let (bob, _) = user_token(&app, &admin, "bob").await;
    let file = upload(&app, &alice, "alice.txt", b"mine".to_vec()).await;
    let made = share(&app, &alice, &file, json!({})).await;
    let id = made["id"].as_str().unwrap();
    let path = format!("/api/v1/shares/{id}");

    for (method, body) in [("GET", None), ("PATCH", Some(json!({"disabled": true}))), ("DELETE", None)] {
        let (status, error) = call(&app, method, &path, &bob, body).await;
        assert_eq!((status, error["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{method}");
    }
    let (_, listing) = call(&app, "GET", "/api/v1/shares", &bob, None).await;
    assert_eq!(listing["shares"].as_array().unwrap().len(), 0);
    let (status, _) = call(&app, "POST", "/api/v1/shares", &bob, Some(json!({"file_id": file}))).await;
    assert_eq!(status, 404, "nobody shares a file they do not own");
    let (status, _) = call(&app, "GET", "/api/v1/shares?all=true", &bob, None).await;
    assert_eq!(status, 403);
    assert_eq!(app.get(&format!("/s/{}", made["token"].as_str().unwrap())).await.status(), 200, "still there");

    // An admin sees everyone's shares and can revoke any, which is audited.
    let (_, everyone) = call(&app, "GET", "/api/v1/shares?all=true", &admin, None).await;
    assert!(everyone["shares"].as_array().unwrap().iter().any(|entry| entry["id"] == id));
    let (status, _) = call(&app, "DELETE", &path, &admin, None).await;
    assert_eq!(status, 204);
    let revoked = audit_of(&app, &admin, "share_revoked").await;
    assert!(
        revoked.iter().any(|entry| entry["subject"] == id && entry["detail"].as_str().unwrap().contains("by_admin"))
    );
}

#[tokio::test]
async fn deleting_a_file_revokes_its_shares() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let file = upload(&app, &admin, "gone.txt", b"soon gone".to_vec()).await;
    let made = share(&app, &admin, &file, json!({})).await;
    let link = format!("/s/{}/download", made["token"].as_str().unwrap());
    assert_eq!(app.get(&link).await.status(), 200);
    assert_eq!(call(&app, "DELETE", &format!("/api/v1/files/{file}"), &admin, None).await.0, 204);
    assert_eq!(app.get(&link).await.status(), 404);
    let (_, listing) = call(&app, "GET", "/api/v1/shares", &admin, None).await;
    assert_eq!(listing["shares"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn listing_pages_through_every_share_once() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let file = upload(&app, &admin, "a.txt", b"a".to_vec()).await;
    let mut made = Vec::new();
    for _ in 0..7 {
        made.push(share(&app, &admin, &file, json!({})).await["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v1/shares?limit=3{cursor}");
        let (status, page) = call(&app, "GET", &path, &admin, None).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(page["shares"].as_array().unwrap().iter().map(|entry| entry["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={}", urlencode(next)),
            None => break,
        }
    }
    seen.sort();
    made.sort();
    assert_eq!(seen, made);
}
