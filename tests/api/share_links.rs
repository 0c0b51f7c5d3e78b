//! The public side of share links: the page, passwords, limits, expiry and revocation.

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;

use crate::accounts::call;
use crate::files::admin_token;
use crate::helpers::{Options, TestApp, spawn_app, spawn_default};
use crate::shares::{audit_of, share, upload};

const PASSWORD: &str = "correct-horse-77";

/// `name=value` of each `Set-Cookie`, ready for a `Cookie` header.
pub fn cookies(headers: &HeaderMap) -> String {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

pub async fn fetch(app: &TestApp, method: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

pub async fn json_error(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    (status, body["error"].as_str().unwrap().to_owned())
}

pub async fn downloads(app: &TestApp, owner: &str, id: &str) -> u64 {
    call(app, "GET", &format!("/api/v1/shares/{id}"), owner, None).await.1["downloads"].as_u64().unwrap()
}

/// (views, refused views) audited for a share so far; views are written in batches.
async fn audited_views(app: &TestApp, admin: &str, id: &str) -> (u64, u64) {
    let field = |detail: &str, name: &str| -> u64 {
        detail.split(' ').find_map(|part| part.strip_prefix(name)?.parse().ok()).unwrap_or(0)
    };
    let entries = audit_of(app, admin, "share_viewed").await;
    entries.iter().filter(|entry| entry["subject"] == id).fold((0, 0), |(views, refused), entry| {
        let detail = entry["detail"].as_str().unwrap_or_default();
        (views + field(detail, "views="), refused + field(detail, "refused="))
    })
}

/// Waits (bounded) until the audited views of a share reach `expected`.
pub async fn wait_for_views(app: &TestApp, admin: &str, id: &str, expected: (u64, u64)) {
    let deadline = std::time::Instant::now() + crate::helpers::PATIENCE;
    loop {
        let seen = audited_views(app, admin, id).await;
        if seen == expected {
            return;
        }
        assert!(seen.0 <= expected.0 && seen.1 <= expected.1, "more views than made: {seen:?}");
        assert!(std::time::Instant::now() < deadline, "views audited: {seen:?}, expected {expected:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_landing_page_is_self_contained_and_shows_the_name_as_text() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let file = upload(&app, &admin, "<b onmouseover=alert(1)>x<script>.txt", vec![b'x'; 1536]).await;
    let made = share(&app, &admin, &file, json!({"max_downloads": 2})).await;
    let link = format!("/s/{}", made["token"].as_str().unwrap());

    for _ in 0..3 {
        let page = app.get(&link).await;
        assert_eq!(page.status(), 200);
        let headers = page.headers().clone();
        assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("script-src"), "{csp}");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        let html = page.text().await.unwrap();
        assert!(html.contains("&lt;b onmouseover=alert(1)&gt;x&lt;script&gt;.txt"), "{html}");
        assert!(!html.contains("<script") && !html.contains("<b "), "no markup from the name, no scripts at all");
        assert!(html.contains("name=\"viewport\""));
        assert!(html.contains("1.5 KiB") && html.contains("Downloads left: 2"));
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains("src="),
            "no external assets"
        );
        assert!(html.contains(&format!("href=\"{link}/download\"")));
    }
    let id = made["id"].as_str().unwrap();
    assert_eq!(downloads(&app, &admin, id).await, 0, "page views are not downloads");
    wait_for_views(&app, &admin, id, (3, 0)).await;
    let viewed = audit_of(&app, &admin, "share_viewed").await;
    assert!(viewed.iter().filter(|entry| entry["subject"] == id).count() < 3, "views are written in batches");
    let (_, listed) = call(&app, "GET", &format!("/api/v1/shares/{id}"), &admin, None).await;
    assert_eq!(listed["views"], 3);
}

#[tokio::test]
async fn downloads_have_the_owners_headers_and_only_bodies_count() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let data: Vec<u8> = (0..100_000u32).map(|index| (index % 251) as u8).collect();
    let file = upload(&app, &admin, "data.bin", data.clone()).await;
    let made = share(&app, &admin, &file, json!({})).await;
    let (id, link) = (made["id"].as_str().unwrap(), format!("/s/{}/download", made["token"].as_str().unwrap()));

    let head = fetch(&app, "HEAD", &link, &[]).await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "100000");
    let etag = head.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(fetch(&app, "GET", &link, &[("if-none-match", &etag)]).await.status(), 304);
    assert_eq!(downloads(&app, &admin, id).await, 0, "HEAD and 304 do not count");

    let full = app.get(&link).await;
    assert_eq!(full.status(), 200);
    for (name, value) in [("content-security-policy", "sandbox"), ("x-content-type-options", "nosniff")] {
        assert!(full.headers()[name].to_str().unwrap().contains(value), "{name}");
    }
    assert!(full.headers()["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"data.bin\""));
    assert_eq!(full.bytes().await.unwrap().as_ref(), data.as_slice());

    let part = fetch(&app, "GET", &link, &[("range", "bytes=10-19")]).await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 10-19/100000");
    assert_eq!(part.bytes().await.unwrap().as_ref(), &data[10..20]);
    let outside = fetch(&app, "GET", &link, &[("range", "bytes=200000-")]).await;
    assert_eq!(outside.status(), 416);
    assert_eq!(downloads(&app, &admin, id).await, 2, "a range without a resume cookie is a new download");

    let admin_view = audit_of(&app, &admin, "share_download").await;
    let complete = admin_view.iter().find(|entry| entry["detail"].as_str().unwrap().contains("range=0-99999")).unwrap();
    assert!(complete["detail"].as_str().unwrap().contains("outcome=complete bytes=100000"), "{complete}");
    assert_eq!(complete["ip"], "127.0.0.1");
}

#[tokio::test]
async fn a_protected_share_checks_the_password_on_every_path_to_the_bytes() {
    let app = spawn_app(Options { toml: "[auth]\nlogin_free_failures = 2\n".into(), ..Options::default() });
    let admin = admin_token(&app).await;
    let file = upload(&app, &admin, "secret-plans.txt", b"the plans".to_vec()).await;
    let made = share(&app, &admin, &file, json!({"password": PASSWORD})).await;
    let (id, page) = (made["id"].as_str().unwrap(), format!("/s/{}", made["token"].as_str().unwrap()));
    let link = format!("{page}/download");
    let json = ("accept", "application/json");

    let landing = app.get(&page).await;
    assert_eq!(landing.status(), 401);
    let html = landing.text().await.unwrap();
    assert!(html.contains("type=\"password\"") && !html.contains("secret-plans"), "the name stays hidden");
    for (method, headers) in [
        ("GET", vec![json]),
        ("HEAD", vec![]),
        ("GET", vec![json, ("range", "bytes=0-3")]),
        ("GET", vec![json, ("if-none-match", "*")]),
        ("GET", vec![json, ("cookie", "coffer_unlock_x=forged.sig")]),
    ] {
        let response = fetch(&app, method, &link, &headers).await;
        assert_eq!(response.status(), 401, "{method} {headers:?}");
        if method == "GET" {
            assert_eq!(json_error(response).await.1, "password_required");
        }
    }
    let wrong = fetch(&app, "GET", &link, &[json, ("x-share-password", "guess-guess")]).await;
    assert_eq!(json_error(wrong).await, (StatusCode::UNAUTHORIZED, "wrong_password".into()));

    // The right password by form: a cookie that serves ranges and HEAD without asking again.
    let unlocked = app
        .client
        .post(app.url(&page))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("password={PASSWORD}"))
        .send()
        .await
        .unwrap();
    assert_eq!(unlocked.status(), 303, "{:?}", unlocked.text().await);
    let set_cookie = unlocked.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("Secure") && set_cookie.contains("SameSite=Strict"));
    let cookie = cookies(unlocked.headers());
    let opened = fetch(&app, "GET", &page, &[("cookie", &cookie)]).await;
    assert_eq!(opened.status(), 200);
    assert!(opened.text().await.unwrap().contains("secret-plans.txt"));
    let part = fetch(&app, "GET", &link, &[("cookie", &cookie), ("range", "bytes=4-")]).await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.text().await.unwrap(), "plans");
    assert_eq!(fetch(&app, "HEAD", &link, &[("cookie", &cookie)]).await.status(), 200);
    let by_header = fetch(&app, "GET", &link, &[("x-share-password", PASSWORD)]).await;
    assert_eq!(by_header.text().await.unwrap(), "the plans");

    // A new password ends unlocks made with the old one.
    let change = json!({"password": "another-secret-99"});
    assert_eq!(call(&app, "PATCH", &format!("/api/v1/shares/{id}"), &admin, Some(change)).await.0, 200);
    assert_eq!(fetch(&app, "GET", &link, &[("cookie", &cookie)]).await.status(), 401);

    // Wrong guesses past the allowance wait, with Retry-After; the wait applies to the right
    // password too, so guessing cannot go faster.
    let mut throttled = None;
    for _ in 0..6 {
        let response = fetch(&app, "GET", &link, &[json, ("x-share-password", "still-guessing")]).await;
        if response.status() == 429 {
            throttled = Some(response);
            break;
        }
        assert_eq!(json_error(response).await.1, "wrong_password");
    }
    let throttled = throttled.expect("wrong passwords are throttled");
    let wait: u64 = throttled.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1);
    assert_eq!(json_error(throttled).await.1, "too_many_requests");
    let right = fetch(&app, "GET", &link, &[json, ("x-share-password", "another-secret-99")]).await;
    assert_eq!(right.status(), 429);
    let form = app.client.post(app.url(&page)).body("password=still-guessing").send().await.unwrap();
    assert_eq!(form.status(), 429, "the form is throttled the same way");
    assert!(form.headers().contains_key("retry-after"));
    assert_eq!(downloads(&app, &admin, id).await, 2, "only bodies sent count");
    let failures = audit_of(&app, &admin, "share_unlock_failed").await;
    assert!(failures.iter().filter(|entry| entry["subject"] == id).count() >= 3);
}

#[tokio::test]
async fn with_a_limit_of_n_exactly_n_of_fifty_concurrent_downloads_succeed() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let data = vec![42u8; 64 * 1024];
    let file = upload(&app, &admin, "popular.bin", data.clone()).await;
    let made = share(&app, &admin, &file, json!({"max_downloads": 7})).await;
    let link = format!("/s/{}/download", made["token"].as_str().unwrap());
    let attempts = (0..50).map(|_| async {
        let response = app.get(&link).await;
        let status = response.status();
        (status, response.bytes().await.unwrap())
    });
    let results = futures_util::future::join_all(attempts).await;
    let served: Vec<_> = results.iter().filter(|(status, _)| *status == StatusCode::OK).collect();
    assert_eq!(served.len(), 7);
    assert!(served.iter().all(|(_, body)| body.as_ref() == data.as_slice()));
    assert_eq!(results.iter().filter(|(status, _)| *status == StatusCode::GONE).count(), 43);
    assert_eq!(downloads(&app, &admin, made["id"].as_str().unwrap()).await, 7);
    let page = app.get(&format!("/s/{}", made["token"].as_str().unwrap())).await;
    assert_eq!(page.status(), 410, "the page says the link is used up");
    let exhausted = fetch(&app, "GET", &link, &[("accept", "application/json")]).await;
    assert_eq!(json_error(exhausted).await, (StatusCode::GONE, "share_exhausted".into()));
}

#[tokio::test]
async fn a_resumed_download_counts_once_and_revocation_stops_it_at_once() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let data: Vec<u8> = (0..48u32 << 20).map(|index| (index % 253) as u8).collect();
    let file = upload(&app, &admin, "big.bin", data.clone()).await;
    let made = share(&app, &admin, &file, json!({"max_downloads": 1})).await;
    let (id, link) = (made["id"].as_str().unwrap(), format!("/s/{}/download", made["token"].as_str().unwrap()));

    // The one download allowed starts; the client takes the first chunk and pauses.
    let first = app.get(&link).await;
    assert_eq!(first.status(), 200);
    let resume = cookies(first.headers());
    assert!(resume.starts_with("coffer_resume_"));
    let mut stream = first.bytes_stream();
    let got = stream.next().await.unwrap().unwrap().len();

    // It resumes with Range (as after a dropped connection): served, not counted again. Without
    // the cookie, the same range is a second download, which the limit refuses.
    let range = format!("bytes={got}-{}", got + 999);
    let resumed = fetch(&app, "GET", &link, &[("cookie", &resume), ("range", &range)]).await;
    assert_eq!(resumed.status(), 206);
    assert_eq!(resumed.bytes().await.unwrap().as_ref(), &data[got..got + 1000]);
    assert_eq!(fetch(&app, "GET", &link, &[("range", &range)]).await.status(), 410);
    assert_eq!(downloads(&app, &admin, id).await, 1);

    // Revoked: the resume is refused and the download in flight is cut short.
    assert_eq!(call(&app, "DELETE", &format!("/api/v1/shares/{id}"), &admin, None).await.0, 204);
    assert_eq!(fetch(&app, "GET", &link, &[("cookie", &resume), ("range", &range)]).await.status(), 404);
    let mut received = got;
    let mut cut = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => received += chunk.len(),
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(cut && received < data.len(), "received {received} of {} bytes after revocation", data.len());
    let stopped = app.logs.wait_for(|line| {
        line["event"] == "share_download"
            && line["detail"].as_str().is_some_and(|detail| detail.starts_with("outcome=revoked"))
    });
    assert!(stopped.is_some(), "the cut download is audited with the bytes sent");
}

#[tokio::test]
async fn expiry_follows_the_clock() {
    let app = spawn_app(Options { toml: "[auth]\naccess_token_ttl = \"30d\"\n".into(), ..Options::default() });
    let admin = admin_token(&app).await;
    let file = upload(&app, &admin, "soon.txt", b"soon".to_vec()).await;
    let made = share(&app, &admin, &file, json!({"expires_in": 3600})).await;
    let (id, page) = (made["id"].as_str().unwrap(), format!("/s/{}", made["token"].as_str().unwrap()));
    assert_eq!(app.get(&page).await.status(), 200);

    // The test clock runs on from the wall clock: leave a margin for a slow machine.
    app.advance_clock(3590);
    assert_eq!(app.get(&format!("{page}/download")).await.status(), 200, "ten seconds left");
    app.advance_clock(10);
    let gone = app.get(&page).await;
    assert_eq!(gone.status(), 410);
    assert!(gone.text().await.unwrap().contains("expired"));
    let download = fetch(&app, "GET", &format!("{page}/download"), &[("accept", "application/json")]).await;
    assert_eq!(json_error(download).await, (StatusCode::GONE, "share_expired".into()));
    let (_, listed) = call(&app, "GET", &format!("/api/v1/shares/{id}"), &admin, None).await;
    assert_eq!(listed["state"], "expired");

    // The owner extends it: it works again at once.
    let extend = json!({"expires_in": 86_400});
    assert_eq!(call(&app, "PATCH", &format!("/api/v1/shares/{id}"), &admin, Some(extend)).await.0, 200);
    assert_eq!(app.get(&page).await.status(), 200);
    // The views of the expired link were tallied as refused.
    wait_for_views(&app, &admin, id, (2, 2)).await;
}

#[tokio::test]
async fn unknown_tokens_get_the_same_not_found_page() {
    let app = spawn_default();
    for path in ["/s/short", "/s/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "/s/%3Cscript%3E/download"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(response.text().await.unwrap().contains("does not exist or was revoked"));
    }
    let response = fetch(&app, "GET", "/s/short/download", &[("accept", "application/json")]).await;
    assert_eq!(json_error(response).await, (StatusCode::NOT_FOUND, "not_found".into()));
    let response = fetch(&app, "DELETE", "/s/short/download", &[]).await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], HeaderValue::from_static("GET, HEAD"));
}

#[tokio::test]
async fn a_new_password_cuts_a_download_in_flight_so_only_the_new_one_goes_on() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let data: Vec<u8> = (0..48u32 << 20).map(|index| (index % 251) as u8).collect();
    let file = upload(&app, &admin, "big.bin", data.clone()).await;
    let made = share(&app, &admin, &file, json!({})).await;
    let (id, link) = (made["id"].as_str().unwrap(), format!("/s/{}/download", made["token"].as_str().unwrap()));

    let first = app.get(&link).await;
    assert_eq!(first.status(), 200);
    let mut stream = first.bytes_stream();
    let mut received = stream.next().await.unwrap().unwrap().len();

    // The owner sets a password: whoever had the link without it is cut off mid-download.
    let (status, _) =
        call(&app, "PATCH", &format!("/api/v1/shares/{id}"), &admin, Some(json!({"password": "a-new-secret-phrase"})))
            .await;
    assert_eq!(status, 200);
    let mut cut = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => received += chunk.len(),
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(cut && received < data.len(), "received {received} of {} bytes after the password changed", data.len());
    assert_eq!(app.get(&link).await.status(), StatusCode::UNAUTHORIZED, "and the link now asks for it");
}
