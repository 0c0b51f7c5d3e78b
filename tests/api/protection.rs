//! Protection of the public surface and the API: request-rate limits per client address and
//! per account, the client's address behind trusted proxies only, and CORS only for listed
//! origins.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::call;
use crate::auth::{admin_password, db};
use crate::files::{admin_token, user_token};
use crate::helpers::{Options, TestApp, spawn_app, spawn_default};
use crate::shares::{share, upload};

async fn sign_in(
    app: &TestApp,
    client: &reqwest::Client,
    password: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request =
        client.post(app.url("/api/v1/auth/login")).json(&json!({"username": "admin", "password": password}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_public_surface_is_rate_limited_per_client_address() {
    let toml = "[rate_limits]\npublic_per_minute = 60\npublic_burst = 4\n";
    let app = spawn_app(Options { toml: toml.into(), ..Options::default() });
    let admin = admin_token(&app).await;
    let file = upload(&app, &admin, "popular.txt", b"hi".to_vec()).await;
    let page = format!("/s/{}", share(&app, &admin, &file, json!({})).await["token"].as_str().unwrap());
    // The sign-in above took one of the four; three more requests of any public kind go.
    assert_eq!(app.get(&page).await.status(), 200);
    assert_eq!(app.get(&page).await.status(), 200);
    assert_eq!(sign_in(&app, &app.client, "wrong-password-1", &[]).await.status(), 401);
    let limited = app.get(&page).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(limited.json::<Value>().await.unwrap()["error"], "rate_limited");
    assert_eq!(sign_in(&app, &app.client, &admin_password(&app), &[]).await.status(), 429, "sign-in too");
    // Another address is not affected, nor are health checks or the authenticated API.
    assert_eq!(sign_in(&app, &app.client_from("127.0.0.2"), &admin_password(&app), &[]).await.status(), 200);
    assert_eq!(app.get("/api/v1/health").await.status(), 200);
    assert_eq!(call(&app, "GET", "/api/v1/me", &admin, None).await.0, 200);
    // Time passes: the address may go on.
    app.advance_clock(2);
    assert_eq!(app.get(&page).await.status(), 200);
}

#[tokio::test]
async fn the_api_is_rate_limited_per_account() {
    let toml = "[rate_limits]\napi_per_minute = 60\napi_burst = 5\n";
    let app = spawn_app(Options { toml: toml.into(), ..Options::default() });
    let admin = admin_token(&app).await;
    let (bob, _) = user_token(&app, &admin, "bob").await;
    for _ in 0..5 {
        assert_eq!(call(&app, "GET", "/api/v1/me", &bob, None).await.0, 200, "within the burst");
    }
    let (status, body) = call(&app, "GET", "/api/v1/me", &bob, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")));
    assert_eq!(call(&app, "GET", "/api/v1/me", &admin, None).await.0, 200, "another account is not affected");
}

#[tokio::test]
async fn the_client_address_comes_from_forwarding_headers_of_trusted_proxies_only() {
    let toml = "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n[rate_limits]\npublic_per_minute = 60\npublic_burst = 2\n";
    let app = spawn_app(Options { toml: toml.into(), ..Options::default() });
    let password = admin_password(&app);
    // Through the trusted proxy (127.0.0.1): the forwarded address is the client's.
    let proxied = sign_in(&app, &app.client, &password, &[("x-forwarded-for", "198.51.100.7, 203.0.113.9")]).await;
    let tokens: Value = proxied.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let forwarded =
        sign_in(&app, &app.client, "wrong-password-1", &[("forwarded", "for=\"[2001:db8::7]:4711\"")]).await;
    assert_eq!(forwarded.status(), 401);
    // From an untrusted peer (127.0.0.2) the header is ignored.
    let untrusted = app.client_from("127.0.0.2");
    let direct = sign_in(&app, &untrusted, "wrong-password-2", &[("x-forwarded-for", "192.0.2.99")]).await;
    assert_eq!(direct.status(), 401);

    let (_, sessions) = call(&app, "GET", "/api/v1/me/sessions", &access, None).await;
    assert_eq!(sessions[0]["client_ip"], "203.0.113.9", "the nearest address the proxy saw");
    let ips: Vec<String> = {
        let conn = db(&app);
        let mut statement = conn.prepare("SELECT ip FROM audit_log WHERE event LIKE 'login%' ORDER BY id").unwrap();
        statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(ips, vec!["203.0.113.9", "2001:db8::7", "127.0.0.2"]);
    let logged = app.logs.wait_for(|line| line["message"] == "request" && line["remote"] == "2001:db8::7");
    assert!(logged.is_some(), "the request log names the client, not the proxy");

    // Rate limits count the client behind the proxy, not the proxy.
    let behind = |address: &'static str| {
        let app = &app;
        async move { sign_in(app, &app.client, "wrong-password-3", &[("x-forwarded-for", address)]).await.status() }
    };
    assert_eq!(behind("192.0.2.1").await, 401);
    assert_eq!(behind("192.0.2.1").await, 401);
    assert_eq!(behind("192.0.2.1").await, 429);
    assert_eq!(behind("192.0.2.2").await, 401, "another client behind the same proxy");
}

#[tokio::test]
async fn cors_answers_only_listed_origins_and_never_with_credentials() {
    let toml = "[server]\ncors_origins = [\"https://app.example.org\"]\n";
    let app = spawn_app(Options { toml: toml.into(), ..Options::default() });
    let token = admin_token(&app).await;
    let get = |origin: &str| {
        app.client.get(app.url("/api/v1/me")).bearer_auth(&token).header("origin", origin.to_owned()).send()
    };
    let allowed = get("https://app.example.org").await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example.org");
    assert!(allowed.headers().get_all("vary").iter().any(|value| value == "Origin"));
    assert!(allowed.headers().get("access-control-allow-credentials").is_none());
    assert!(allowed.headers()["access-control-expose-headers"].to_str().unwrap().contains("etag"));
    let other = get("https://evil.example.net").await.unwrap();
    assert_eq!(other.status(), 200, "the server answers; the browser keeps the page from reading it");
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let preflight = |origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/files/upload"))
            .header("origin", origin.to_owned())
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "authorization, content-digest")
            .send()
    };
    let ok = preflight("https://app.example.org").await.unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert!(ok.headers()["access-control-allow-methods"].to_str().unwrap().contains("PUT"));
    assert!(ok.headers()["access-control-allow-headers"].to_str().unwrap().contains("content-digest"));
    let refused = preflight("https://evil.example.net").await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"], "cors_origin_not_allowed");
}

#[tokio::test]
async fn without_cors_origins_there_are_no_cors_headers_at_all() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let response =
        app.client.get(app.url("/api/v1/me")).bearer_auth(&token).header("origin", "https://app.example.org").send();
    let response = response.await.unwrap();
    assert!(response.headers().keys().all(|name| !name.as_str().starts_with("access-control-")));
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/me"))
        .header("origin", "https://app.example.org")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::METHOD_NOT_ALLOWED);
}
