//! What Coffer mails, as a real SMTP server (STARTTLS and AUTH required) receives it: share
//! links, password resets, security notices; addresses, opt-out, and no secret in any log.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::call;
use crate::auth::{admin_password, login, me_status, refresh};
use crate::files::{PASSWORD, admin_token};
use crate::helpers::{Options, TestApp, spawn_app, spawn_default};
use crate::shares::{audit_of, share, upload};
use crate::smtp::{PUBLIC_URL, SMTP_PASSWORD, Smtp};

const SHARE_PASSWORD: &str = "violet-anchor-58";

pub fn mail_app(smtp: &Smtp) -> TestApp {
    spawn_app(Options { toml: smtp.toml(), ..Options::default() })
}

/// Sends share `id`'s link to `recipients`; returns the status and body.
pub async fn send_share(
    app: &TestApp,
    token: &str,
    id: &str,
    recipients: &[&str],
    message: &str,
) -> (StatusCode, Value) {
    let body = json!({"recipients": recipients, "message": message});
    call(app, "POST", &format!("/api/v1/shares/{id}/send"), token, Some(body)).await
}

pub fn assert_no_secrets(app: &TestApp, secrets: &[&str]) {
    let logs = app.logs.text();
    for secret in [SMTP_PASSWORD].iter().chain(secrets) {
        assert!(!logs.contains(secret), "the log holds a secret ({secret})");
    }
}

#[tokio::test]
async fn a_share_link_arrives_with_the_link_message_and_expiry_but_never_the_password() {
    let smtp = Smtp::start();
    let app = mail_app(&smtp);
    let admin = admin_token(&app).await;
    let file = upload(&app, &admin, "report Q3.pdf", b"quarterly numbers".to_vec()).await;
    let created = share(&app, &admin, &file, json!({"password": SHARE_PASSWORD, "note": "private note"})).await;
    let (id, token) = (created["id"].as_str().unwrap(), created["token"].as_str().unwrap());
    assert!(created["url"].as_str().unwrap().starts_with(PUBLIC_URL));

    let recipients = ["carol@example.test", "Carol@example.test", "dave@mail.example.test"];
    let (status, body) = send_share(&app, &admin, id, &recipients, "Here are the <numbers>.\nCall me.").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["queued"], json!(["carol@example.test", "dave@mail.example.test"]), "duplicates dropped");

    let received = smtp.wait_for(2).await;
    let mut to: Vec<&str> = received.iter().map(|mail| mail["to"].as_str().unwrap()).collect();
    to.sort_unstable();
    assert_eq!(to, ["carol@example.test", "dave@mail.example.test"]);
    let link = format!("{PUBLIC_URL}/s/{token}");
    for mail in &received {
        assert_eq!(mail["content_type"], "multipart/alternative");
        assert_eq!(mail["from"], "Coffer <coffer@example.test>");
        assert_eq!(mail["subject"], "admin shared \"report Q3.pdf\" with you");
        let text = mail["text"].as_str().unwrap();
        let html = mail["html"].as_str().unwrap();
        assert!(text.contains(&link) && text.contains("Here are the <numbers>.\nCall me."), "{text}");
        assert!(text.contains("The link works until 20") && text.contains("needs a password"), "{text}");
        assert!(html.contains(&format!("<a href=\"{link}\">")) && html.contains("Here are the &lt;numbers&gt;."));
        assert!(!html.contains("<img") && !html.contains("<script"), "{html}");
        let raw = mail["raw"].as_str().unwrap();
        assert!(!raw.contains(SHARE_PASSWORD) && !raw.contains("private note"), "{raw}");
        let message_id = mail["message_id"].as_str().unwrap();
        assert!(message_id.starts_with('<') && message_id.ends_with("@files.example.test>"), "{message_id}");
    }
    assert_ne!(received[0]["message_id"], received[1]["message_id"]);
    let sent = audit_of(&app, &admin, "share_sent").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["subject"], id);

    // Refusals: bad addresses, too many, someone else's share, a revoked one.
    for bad in [json!([]), json!(["not-an-address"]), json!(["x@example.test\r\nBcc: y@example.test"])] {
        let body = json!({"recipients": bad});
        let (status, error) = call(&app, "POST", &format!("/api/v1/shares/{id}/send"), &admin, Some(body)).await;
        assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid")), "{bad}");
    }
    let many: Vec<String> = (0..21).map(|n| format!("r{n}@example.test")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(send_share(&app, &admin, id, &many, "").await.0, 400);
    let (bob, _) = crate::files::user_token(&app, &admin, "bob").await;
    assert_eq!(send_share(&app, &bob, id, &["e@example.test"], "").await.0, 404);
    assert_eq!(call(&app, "DELETE", &format!("/api/v1/shares/{id}"), &admin, None).await.0, 204);
    assert_eq!(send_share(&app, &admin, id, &["e@example.test"], "").await.0, 404);
    assert_no_secrets(&app, &[SHARE_PASSWORD, token]);
}

#[tokio::test]
async fn without_mail_settings_nothing_is_queued_and_mail_features_say_so() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let file = upload(&app, &admin, "a.txt", b"a".to_vec()).await;
    let id = share(&app, &admin, &file, json!({})).await["id"].as_str().unwrap().to_owned();
    let (status, body) = send_share(&app, &admin, &id, &["carol@example.test"], "").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("mail_off")), "{body}");
    let reset = json!({"email": "admin@example.test"});
    let (status, body) = call(&app, "POST", "/api/v1/auth/password-reset", "", Some(reset)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("mail_off")), "{body}");
}

#[tokio::test]
async fn users_set_their_address_and_get_security_notices_unless_they_opt_out() {
    let smtp = Smtp::start();
    let app = mail_app(&smtp);
    let first = crate::auth::login_admin(&app).await;
    let admin = first["access_token"].as_str().unwrap().to_owned();

    for bad in ["admin", "admin@localhost", "a b@example.test", "Admin <admin@example.test>"] {
        let (status, body) = call(&app, "PATCH", "/api/v1/me", &admin, Some(json!({"email": bad}))).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid")), "{bad}: {body}");
    }
    let (status, me) = call(&app, "PATCH", "/api/v1/me", &admin, Some(json!({"email": " admin@example.test "}))).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!((me["email"].as_str(), me["mail_notices"].as_bool()), (Some("admin@example.test"), Some(true)));

    // A sign-in from an address this account has not used: a notice naming it. The same
    // address again: none.
    let password = admin_password(&app);
    let elsewhere = app.client_from("127.0.0.7");
    let response = elsewhere
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let notice = &smtp.wait_for(1).await[0];
    assert_eq!(notice["subject"], "New sign-in to your Coffer account");
    assert!(notice["text"].as_str().unwrap().contains("127.0.0.7"), "{notice}");
    assert_eq!(login(&app, "admin", &password).await.0, 200);

    // A spent refresh token presented again ends the session and says so.
    let spent = first["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&app, spent).await.0, 200);
    assert_eq!(refresh(&app, spent).await.0, 401);
    let received = smtp.wait_for(2).await;
    assert_eq!(received[1]["subject"], "A Coffer session of yours was ended");

    // Password changed: a notice. Then notices off: a second change sends none (the share
    // mail queued after it arrives, and nothing else did).
    let (_, tokens) = login(&app, "admin", &password).await;
    let session = tokens["access_token"].as_str().unwrap().to_owned();
    let new_password = "granite-meadow-lantern-4";
    let change = json!({"current_password": password, "new_password": new_password});
    let (status, tokens) = call(&app, "PUT", "/api/v1/me/password", &session, Some(change)).await;
    assert_eq!(status, 200, "{tokens}");
    let received = smtp.wait_for(3).await;
    assert_eq!(received[2]["subject"], "Your Coffer password was changed");
    assert!(received[2]["text"].as_str().unwrap().contains("by the account itself"));
    let session = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, me) = call(&app, "PATCH", "/api/v1/me", &session, Some(json!({"mail_notices": false}))).await;
    assert_eq!((status, me["mail_notices"].as_bool()), (StatusCode::OK, Some(false)));
    let change = json!({"current_password": new_password, "new_password": "another-granite-lantern-5"});
    let (status, tokens) = call(&app, "PUT", "/api/v1/me/password", &session, Some(change)).await;
    assert_eq!(status, 200);
    let session = tokens["access_token"].as_str().unwrap().to_owned();
    let file = upload(&app, &session, "marker.txt", b"m".to_vec()).await;
    let id = share(&app, &session, &file, json!({})).await["id"].as_str().unwrap().to_owned();
    assert_eq!(send_share(&app, &session, &id, &["marker@example.test"], "").await.0, 202);
    let received = smtp.wait_for(4).await;
    assert_eq!(received.len(), 4);
    assert_eq!(received[3]["to"], "marker@example.test", "no notice while they are off");

    // An admin sets another user's address; an API token cannot change its own.
    let (status, bob) = call(
        &app,
        "POST",
        "/api/v1/users",
        &session,
        Some(json!({"username": "bob", "password": PASSWORD, "email": "bob@example.test"})),
    )
    .await;
    assert_eq!((status, bob["email"].as_str()), (StatusCode::CREATED, Some("bob@example.test")), "{bob}");
    let bob_id = bob["id"].as_str().unwrap();
    let bad = json!({"email": "bob@nowhere"});
    let (status, body) = call(&app, "PATCH", &format!("/api/v1/users/{bob_id}"), &session, Some(bad)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid")), "{body}");
    let (status, created) =
        call(&app, "POST", "/api/v1/me/tokens", &session, Some(json!({"name": "script", "scope": "read-write"}))).await;
    assert_eq!(status, 201, "{created}");
    let api_token = created["token"].as_str().unwrap();
    let (status, body) =
        call(&app, "PATCH", "/api/v1/me", api_token, Some(json!({"email": "evil@example.test"}))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{body}");
    assert_no_secrets(&app, &[&password, new_password, spent]);
}

/// The token in a reset mail's link.
fn reset_token(mail: &Value) -> String {
    let text = mail["text"].as_str().unwrap();
    let start = text.find(&format!("{PUBLIC_URL}/app/reset-password#")).expect("a reset link") + PUBLIC_URL.len() + 20;
    text[start..].split_whitespace().next().unwrap().to_owned()
}

#[tokio::test]
async fn a_password_reset_link_works_once_for_an_hour_and_ends_every_session() {
    let smtp = Smtp::start();
    let app = mail_app(&smtp);
    let admin = admin_token(&app).await;
    let bob = json!({"username": "bob", "password": PASSWORD, "email": "Bob@Example.test"});
    assert_eq!(call(&app, "POST", "/api/v1/users", &admin, Some(bob)).await.0, 201);
    let (_, tokens) = login(&app, "bob", PASSWORD).await;
    let bob_session = tokens["access_token"].as_str().unwrap().to_owned();

    let ask = |email: &str| {
        let body = json!({"email": email});
        let request = app.client.post(app.url("/api/v1/auth/password-reset")).json(&body).send();
        async move {
            let response = request.await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let known = ask("bob@example.test").await;
    let unknown = ask("nobody@example.test").await;
    assert_eq!(known.0, 202);
    assert_eq!(known, unknown, "the same answer whether or not the address has an account");
    assert_eq!(ask("bob").await.0, 400);

    let mail = &smtp.wait_for(1).await[0];
    assert_eq!(
        (mail["to"].as_str(), mail["subject"].as_str()),
        (Some("Bob@Example.test"), Some("Reset your Coffer password"))
    );
    assert!(
        mail["text"].as_str().unwrap().contains("\"bob\"") && mail["text"].as_str().unwrap().contains("60 minutes")
    );
    let token = reset_token(mail);

    let confirm = |token: &str, password: &str| {
        let body = json!({"token": token, "new_password": password});
        call(&app, "POST", "/api/v1/auth/password-reset/confirm", "", Some(body))
    };
    let (status, body) = confirm(&token, "short").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("weak_password")), "{body}");
    let new_password = "copper-orchard-kettle-12";
    assert_eq!(confirm(&token, new_password).await.0, 204);
    assert_eq!(me_status(&app, &bob_session).await, 401, "every session ended");
    assert_eq!(login(&app, "bob", PASSWORD).await.0, 401);
    assert_eq!(login(&app, "bob", new_password).await.0, 200);
    let (status, body) = confirm(&token, "another-copper-kettle-13").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_token")), "used once");
    let received = smtp.wait_for(2).await;
    assert_eq!(received[1]["subject"], "Your Coffer password was changed");
    assert!(received[1]["text"].as_str().unwrap().contains("reset link"));

    // A link older than an hour no longer works.
    assert_eq!(ask("bob@example.test").await.0, 202);
    let late = reset_token(&smtp.wait_for(3).await[2]);
    let audited = audit_of(&app, &admin, "password_reset").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audit_of(&app, &admin, "password_reset_requested").await.len(), 2, "none for the unknown address");
    app.advance_clock(3601);
    assert_eq!(confirm(&late, "late-copper-kettle-14").await.1["error"], "invalid_token");
    assert_no_secrets(&app, &[&token, &late, new_password]);
}

#[tokio::test]
async fn an_owner_who_asked_hears_of_each_counted_download_and_no_more() {
    let smtp = Smtp::start();
    let app = mail_app(&smtp);
    let admin = admin_token(&app).await;
    let (status, _) = call(&app, "PATCH", "/api/v1/me", &admin, Some(json!({"email": "owner@example.test"}))).await;
    assert_eq!(status, 200);
    let file = upload(&app, &admin, "slides.pdf", b"0123456789".to_vec()).await;
    let quiet = share(&app, &admin, &file, json!({})).await;
    let watched = share(&app, &admin, &file, json!({"notify_downloads": true, "max_downloads": 2})).await;
    assert_eq!((quiet["notify_downloads"].as_bool(), watched["notify_downloads"].as_bool()), (Some(false), Some(true)));
    let download = |share: &Value, range: Option<&str>| {
        let mut request = app.client.get(app.url(&format!("/s/{}/download", share["token"].as_str().unwrap())));
        if let Some(range) = range {
            request = request.header("range", range);
        }
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(download(&quiet, None).await, 200);
    assert_eq!(download(&watched, Some("bytes=0-3")).await, 206);
    assert_eq!(download(&watched, None).await, 200);
    assert_eq!(download(&watched, None).await, 410, "used up: not a download");
    let received = smtp.wait_for(2).await;
    assert_eq!(received.len(), 2);
    for (mail, count) in received.iter().zip(["download 1 of 2", "download 2 of 2"]) {
        assert_eq!(
            (mail["to"].as_str(), mail["subject"].as_str()),
            (Some("owner@example.test"), Some("\"slides.pdf\" was downloaded"))
        );
        assert!(mail["text"].as_str().unwrap().contains(&format!("from 127.0.0.1 ({count})")), "{mail}");
    }
    let id = watched["id"].as_str().unwrap();
    let (status, changed) = call(
        &app,
        "PATCH",
        &format!("/api/v1/shares/{id}"),
        &admin,
        Some(json!({"notify_downloads": false, "max_downloads": null})),
    )
    .await;
    assert_eq!((status, changed["notify_downloads"].as_bool()), (StatusCode::OK, Some(false)));
    assert_eq!(download(&watched, None).await, 200);
    assert_eq!(send_share(&app, &admin, id, &["marker@example.test"], "").await.0, 202);
    let received = smtp.wait_for(3).await;
    assert_eq!(received[2]["to"], "marker@example.test", "no notice once turned off");
    assert_no_secrets(&app, &[watched["token"].as_str().unwrap()]);
}

#[tokio::test]
async fn a_multi_file_link_tells_its_owner_of_each_counted_zip_and_file_and_no_more() {
    let smtp = Smtp::start();
    let app = mail_app(&smtp);
    let admin = admin_token(&app).await;
    let (status, _) = call(&app, "PATCH", "/api/v1/me", &admin, Some(json!({"email": "owner@example.test"}))).await;
    assert_eq!(status, 200);
    let first = upload(&app, &admin, "one.txt", b"one".to_vec()).await;
    let second = upload(&app, &admin, "two.txt", b"two".to_vec()).await;
    let body = json!({"file_ids": [first, second], "notify_downloads": true, "max_downloads": 2});
    let (status, made) = call(&app, "POST", "/api/v1/shares", &admin, Some(body)).await;
    assert_eq!(status, 201, "{made}");
    let token = made["token"].as_str().unwrap();
    let get = |path: String| {
        let request = app.client.get(app.url(&path));
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(get(format!("/s/{token}/download")).await, 200);
    assert_eq!(get(format!("/s/{token}/files/{first}")).await, 200);
    assert_eq!(get(format!("/s/{token}/download")).await, 410, "one.txt is used up: no ZIP, no notice");
    let id = made["id"].as_str().unwrap();
    assert_eq!(send_share(&app, &admin, id, &["marker@example.test"], "").await.0, 202);
    let received = smtp.wait_for(3).await;
    assert_eq!(received.len(), 3);
    for (mail, count) in received.iter().zip(["download 1)", "download 2)"]) {
        assert_eq!(
            (mail["to"].as_str(), mail["subject"].as_str()),
            (Some("owner@example.test"), Some("\"2 files\" was downloaded"))
        );
        assert!(mail["text"].as_str().unwrap().contains(&format!("from 127.0.0.1 ({count}")), "{mail}");
    }
    assert_eq!(received[2]["to"], "marker@example.test", "nothing for the refused ZIP");
}
