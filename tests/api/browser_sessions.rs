//! The web app's cookie session: sign-in, CSRF checks, idle and absolute lifetimes, rotation,
//! sign-out, and the rule that a bearer token wins over the cookie.

use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::auth::{admin_password, db, login_admin};
use crate::helpers::{TestApp, spawn_default};

const COOKIE: &str = "__Host-coffer_session";

/// What the app's own page sends with a state-changing request.
fn same_origin(request: RequestBuilder) -> RequestBuilder {
    request.header("sec-fetch-site", "same-origin").header("x-coffer-csrf", "1")
}

/// Signs in as the web app does; returns the `Set-Cookie` header of the session cookie.
pub async fn browser_sign_in(app: &TestApp, username: &str, password: &str) -> (StatusCode, Option<String>) {
    let response = same_origin(app.client.post(app.url("/api/v1/auth/session")))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    let set = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(COOKIE))
        .map(str::to_owned);
    (response.status(), set)
}

/// The `name=value` pair of a `Set-Cookie` header, to send back.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

pub async fn admin_cookie(app: &TestApp) -> String {
    let (status, set) = browser_sign_in(app, "admin", &admin_password(app)).await;
    assert_eq!(status, 204);
    pair(&set.unwrap())
}

async fn me(app: &TestApp, cookie: &str) -> (StatusCode, Value, Option<String>) {
    let response = app.client.get(app.url("/api/v1/me")).header("cookie", cookie).send().await.unwrap();
    let cache = response.headers().get("cache-control").map(|value| value.to_str().unwrap().to_owned());
    (response.status(), response.json().await.unwrap_or(Value::Null), cache)
}

#[tokio::test]
async fn a_browser_sign_in_sets_a_host_only_http_only_strict_cookie_that_is_one_of_the_sessions() {
    let app = spawn_default();
    let (status, _) = browser_sign_in(&app, "admin", "wrong-password-here").await;
    assert_eq!(status, 401);
    let response = same_origin(app.client.post(app.url("/api/v1/auth/session")))
        .json(&json!({"username": "admin", "password": admin_password(&app)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let cookies: Vec<String> =
        response.headers().get_all("set-cookie").iter().map(|value| value.to_str().unwrap().to_owned()).collect();
    let session = cookies.iter().find(|value| value.starts_with(COOKIE)).expect("session cookie");
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict", "Max-Age=2592000"] {
        assert!(session.split("; ").any(|part| part == attribute), "{attribute} missing in {session}");
    }
    assert!(!session.contains("Domain"), "{session}");
    assert!(cookies.iter().any(|value| value.starts_with("__Host-coffer_device=")), "device cookie too");
    assert_eq!(response.text().await.unwrap(), "", "no token reaches the page");

    let cookie = pair(session);
    let (status, body, cache) = me(&app, &cookie).await;
    assert_eq!((status, body["username"].as_str()), (StatusCode::OK, Some("admin")));
    assert_eq!(cache.as_deref(), Some("no-store"), "account data is never cached");
    let response = app.client.get(app.url("/api/v1/me/sessions")).header("cookie", &cookie).send().await.unwrap();
    let sessions: Value = response.json().await.unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 1);
    assert_eq!(sessions[0]["current"], true, "the cookie's session is listed as the current one");
    let stored: Option<Vec<u8>> = db(&app).query_row("SELECT cookie_hash FROM sessions", [], |row| row.get(0)).unwrap();
    let secret = cookie.split_once('=').unwrap().1;
    assert_ne!(stored.as_deref(), Some(secret.as_bytes()), "only a hash is stored");
    assert_eq!(stored.unwrap().len(), 32);

    for forged in [format!("{COOKIE}=x"), format!("{COOKIE}={}", "A".repeat(43))] {
        assert_eq!(me(&app, &forged).await.0, 401);
    }
}

#[tokio::test]
async fn state_changing_cookie_requests_must_come_from_the_apps_own_origin_with_the_custom_header() {
    let app = spawn_default();
    let cookie = admin_cookie(&app).await;
    let folder = |site: Option<&str>, origin: Option<&str>, header: bool| {
        let mut request = app.client.post(app.url("/api/v1/folders")).header("cookie", &cookie);
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if header {
            request = request.header("x-coffer-csrf", "1");
        }
        request.json(&json!({"path": "made"}))
    };
    let own = app.base_url.trim_end_matches('/').to_owned();
    let refused = [
        (Some("same-site"), None, true),
        (Some("cross-site"), None, true),
        (Some("none"), None, true),
        (Some("same-origin"), None, false),
        (None, None, true),
        (None, Some("https://127.0.0.1:1"), true),
        (None, Some(own.as_str()), false),
    ];
    for (site, origin, header) in refused {
        let response = folder(site, origin, header).send().await.unwrap();
        assert_eq!(response.status(), 403, "{site:?} {origin:?} {header}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "cross_site_request");
    }
    let listing = app.client.get(app.url("/api/v1/files")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(listing.json::<Value>().await.unwrap()["folders"], json!([]), "nothing was made");

    assert_eq!(
        folder(None, Some(own.as_str()), true).send().await.unwrap().status(),
        201,
        "Origin without fetch metadata"
    );
    assert_eq!(folder(Some("same-origin"), None, true).send().await.unwrap().status(), 409, "exists now");

    // The cookie-issuing sign-in is checked the same way (login CSRF).
    let response = app
        .client
        .post(app.url("/api/v1/auth/session"))
        .header("sec-fetch-site", "same-site")
        .header("x-coffer-csrf", "1")
        .json(&json!({"username": "admin", "password": admin_password(&app)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.headers().get("set-cookie").is_none());

    // Bearer clients never need any of this.
    let token = login_admin(&app).await["access_token"].as_str().unwrap().to_owned();
    let response = app
        .client
        .post(app.url("/api/v1/folders"))
        .bearer_auth(&token)
        .json(&json!({"path": "other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_bearer_token_wins_over_the_cookie_when_both_are_sent() {
    let app = spawn_default();
    let cookie = admin_cookie(&app).await;
    let response = app
        .client
        .get(app.url("/api/v1/me"))
        .header("cookie", &cookie)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "a bad bearer token is not rescued by a good cookie");
    let token = login_admin(&app).await["access_token"].as_str().unwrap().to_owned();
    // A bearer request needs no CSRF header even when the browser's cookie rides along.
    let response = app
        .client
        .post(app.url("/api/v1/folders"))
        .header("cookie", &cookie)
        .bearer_auth(&token)
        .json(&json!({"path": "by-token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn sign_out_revocation_and_password_change_end_the_cookie_and_a_new_one_is_issued_on_change() {
    let app = spawn_default();
    let cookie = admin_cookie(&app).await;
    let response =
        same_origin(app.client.post(app.url("/api/v1/auth/logout"))).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let cleared = response.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(cleared.starts_with(&format!("{COOKIE}=;")) && cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(me(&app, &cookie).await.0, 401, "signed out at once");

    // Revoked from another session (a bearer client): the cookie stops at once.
    let cookie = admin_cookie(&app).await;
    let token = login_admin(&app).await["access_token"].as_str().unwrap().to_owned();
    let sessions: Value =
        app.client.get(app.url("/api/v1/me/sessions")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let browser = sessions.as_array().unwrap().iter().find(|session| session["current"] == false).unwrap();
    let path = format!("/api/v1/me/sessions/{}", browser["id"].as_str().unwrap());
    assert_eq!(app.client.delete(app.url(&path)).bearer_auth(&token).send().await.unwrap().status(), 204);
    assert_eq!(me(&app, &cookie).await.0, 401, "revoked at once");

    // A password change from the browser ends every session and rotates the cookie.
    let cookie = admin_cookie(&app).await;
    let response = same_origin(app.client.put(app.url("/api/v1/me/password")))
        .header("cookie", &cookie)
        .json(&json!({"current_password": admin_password(&app), "new_password": "a-new-long-passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let rotated = pair(response.headers().get("set-cookie").unwrap().to_str().unwrap());
    assert_ne!(rotated, cookie);
    assert_eq!(me(&app, &cookie).await.0, 401, "the old cookie ended");
    assert_eq!(me(&app, &rotated).await.0, 200, "the new cookie works");
    assert_eq!(me_status_bearer(&app, &token).await, 401, "the other sessions ended");
}

async fn me_status_bearer(app: &TestApp, token: &str) -> StatusCode {
    app.client.get(app.url("/api/v1/me")).bearer_auth(token).send().await.unwrap().status()
}

#[tokio::test]
async fn a_cookie_session_ends_after_the_idle_timeout_and_the_absolute_lifetime() {
    let app = spawn_default();
    let idle = admin_cookie(&app).await;
    let active = admin_cookie(&app).await;
    // Four weeks pass; one browser is used every six days, the other never.
    for _ in 0..4 {
        app.advance_clock(6 * 86_400);
        assert_eq!(me(&app, &active).await.0, 200, "used within the idle timeout of 7 days");
    }
    assert_eq!(me(&app, &idle).await.0, 401, "idle for 24 days");
    let reason: String = db(&app)
        .query_row("SELECT revoked_reason FROM sessions WHERE revoked_at IS NOT NULL", [], |row| row.get(0))
        .unwrap();
    assert_eq!(reason, "idle_timeout");
    app.advance_clock(7 * 86_400 - 60);
    assert_eq!(me(&app, &active).await.0, 401, "past the 30-day absolute lifetime");
}
