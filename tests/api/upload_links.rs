//! Upload links: strangers upload into an owner's folder within the link's limits (checked while
//! the body streams, and against parallel uploads), can neither list, read nor overwrite
//! anything, and are stopped by expiry, revocation and the password on every path.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::accounts::call;
use crate::files::{admin_token, put, user_token};
use crate::helpers::{TestApp, spawn_default};
use crate::mail_messages::{assert_no_secrets, mail_app};
use crate::shares::{audit_of, urlencode};
use crate::smtp::Smtp;

const LINK_PASSWORD: &str = "amber-kettle-93";

/// Makes an upload link with `settings` (merged over roomy limits into the top level).
async fn link(app: &TestApp, token: &str, settings: Value) -> Value {
    let mut body = json!({"max_files": 10, "max_total_bytes": 1_000_000});
    body.as_object_mut().unwrap().extend(settings.as_object().unwrap().clone());
    let (status, link) = call(app, "POST", "/api/v1/upload-links", token, Some(body)).await;
    assert_eq!(status, 201, "{link}");
    link
}

fn token_of(link: &Value) -> &str {
    link["token"].as_str().unwrap()
}

/// Sends `data` through the link as `name`; returns the status and the answer.
async fn send(app: &TestApp, link: &Value, name: &str, data: Vec<u8>, password: Option<&str>) -> (StatusCode, Value) {
    let url = app.url(&format!("/u/{}/files?name={}", token_of(link), urlencode(name)));
    let mut request = app.client.put(url).body(data);
    if let Some(password) = password {
        request = request.header("x-upload-password", password);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A body without a `Content-Length` whose chunks the test hands over one by one.
fn streamed(app: &TestApp, link: &Value, name: &str) -> (mpsc::Sender<Vec<u8>>, reqwest::RequestBuilder) {
    let (sender, receiver) = mpsc::channel::<Vec<u8>>(1);
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (Ok::<_, std::io::Error>(chunk), receiver))
    });
    let url = app.url(&format!("/u/{}/files?name={}", token_of(link), urlencode(name)));
    (sender, app.client.put(url).body(reqwest::Body::wrap_stream(body)))
}

async fn names(app: &TestApp, token: &str, folder: &str) -> Vec<String> {
    let (status, page) = call(app, "GET", &format!("/api/v1/files?folder={folder}"), token, None).await;
    assert_eq!(status, 200, "{page}");
    let mut names: Vec<String> =
        page["files"].as_array().unwrap().iter().map(|file| file["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

/// Files in the temp directory of uploads: none once a refused upload was cleaned up.
fn temp_files(app: &TestApp) -> usize {
    std::fs::read_dir(app.state_dir.join("tmp")).map(|entries| entries.count()).unwrap_or(0)
}

#[tokio::test]
async fn an_upload_link_is_created_listed_changed_and_revoked_with_audit_entries() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let (status, _) = call(&app, "POST", "/api/v1/folders", &admin, Some(json!({"path": "inbox"}))).await;
    assert_eq!(status, 201);
    let (status, refused) = call(
        &app,
        "POST",
        "/api/v1/upload-links",
        &admin,
        Some(json!({"folder": "nowhere", "max_files": 1, "max_total_bytes": 10})),
    )
    .await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid")), "{refused}");
    let created = link(&app, &admin, json!({"folder": "inbox", "note": "Scans <b>please</b>", "max_files": 3})).await;
    let token = token_of(&created);
    assert_eq!(created["url"], format!("{}/u/{token}", app.base_url));
    assert_eq!((created["state"].as_str(), created["files_received"].as_i64()), (Some("active"), Some(0)));
    assert_eq!(created["max_file_bytes"], 1_000_000, "the total bounds the file size when none is given");
    let id = created["id"].as_str().unwrap();

    let page = app.get(&format!("/u/{token}")).await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("Scans &lt;b&gt;please&lt;/b&gt;") && html.contains("/app/assets/uplink.js"), "{html}");
    assert!(!html.contains("<script>") && !html.contains(" style="), "nothing inline");
    assert_eq!(app.get("/app/assets/uplink.js").await.status(), 200);

    let (status, listing) = call(&app, "GET", "/api/v1/upload-links", &admin, None).await;
    assert_eq!((status, &listing["upload_links"][0]["url"]), (StatusCode::OK, &created["url"]));
    let (status, changed) = call(
        &app,
        "PATCH",
        &format!("/api/v1/upload-links/{id}"),
        &admin,
        Some(json!({"max_files": 4, "disabled": true, "note": "later"})),
    )
    .await;
    assert_eq!(
        (status, changed["state"].as_str(), changed["max_files"].as_i64()),
        (StatusCode::OK, Some("disabled"), Some(4))
    );
    assert_eq!(app.get(&format!("/u/{token}")).await.status(), 404, "disabled");
    let (status, _) =
        call(&app, "PATCH", &format!("/api/v1/upload-links/{id}"), &admin, Some(json!({"disabled": false}))).await;
    assert_eq!(status, 200);
    assert_eq!(send(&app, &created, "a.txt", b"one".to_vec(), None).await.0, 201);

    // Someone else cannot see or revoke it.
    let (bob, _) = user_token(&app, &admin, "bob").await;
    assert_eq!(call(&app, "GET", &format!("/api/v1/upload-links/{id}"), &bob, None).await.0, 404);
    assert_eq!(call(&app, "DELETE", &format!("/api/v1/upload-links/{id}"), &bob, None).await.0, 404);
    let (status, _) = call(&app, "DELETE", &format!("/api/v1/upload-links/{id}"), &admin, None).await;
    assert_eq!(status, 204);
    assert_eq!(app.get(&format!("/u/{token}")).await.status(), 404);
    let (status, answer) = send(&app, &created, "b.txt", b"two".to_vec(), None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    assert_eq!(names(&app, &admin, "inbox").await, ["a.txt"], "received files stay");

    for event in ["upload_link_created", "upload_link_updated", "upload_link_revoked", "upload_link_received"] {
        let entries = audit_of(&app, &admin, event).await;
        assert!(entries.iter().any(|entry| entry["subject"] == id), "{event}: {entries:?}");
    }
    let received = audit_of(&app, &admin, "upload_link_received").await;
    assert!(received[0]["detail"].as_str().unwrap().contains("size=3"), "{received:?}");
    assert!(!app.logs.text().contains(token), "the token is never logged");
}

#[tokio::test]
async fn uploaders_cannot_list_download_or_overwrite_and_learn_nothing_of_the_folder() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    assert_eq!(put(&app, &admin, "name=report.pdf", b"the owner's own".to_vec()).await.0, 201);
    let created = link(&app, &admin, json!({})).await;
    let token = token_of(&created);
    let first = send(&app, &created, "report.pdf", b"from a stranger".to_vec(), None).await;
    let second = send(&app, &created, "report.pdf", b"from another".to_vec(), None).await;
    for (status, answer) in [&first, &second] {
        assert_eq!(*status, 201);
        assert_eq!(answer, &json!({"name": "report.pdf", "size": answer["size"]}), "only what was sent");
    }
    assert_eq!(names(&app, &admin, "").await, ["report (2).pdf", "report (3).pdf", "report.pdf"]);
    let (_, page) = call(&app, "GET", "/api/v1/files?folder=", &admin, None).await;
    let original = page["files"].as_array().unwrap().iter().find(|file| file["name"] == "report.pdf").unwrap().clone();
    let body = crate::files::download(&app, &admin, original["id"].as_str().unwrap()).await.text().await.unwrap();
    assert_eq!(body, "the owner's own", "never overwritten");

    for path in [
        format!("/u/{token}/files"),
        format!("/u/{token}/report.pdf"),
        format!("/u/{token}/files/report.pdf"),
        format!("/u/{token}/download"),
    ] {
        let response = app.get(&path).await;
        assert!(matches!(response.status().as_u16(), 404 | 405), "{path}: {}", response.status());
        let text = response.text().await.unwrap();
        assert!(!text.contains("report (2)") && !text.contains("the owner's own"), "{path} tells nothing: {text}");
    }
    let html = app.get(&format!("/u/{token}")).await.text().await.unwrap();
    assert!(!html.contains("report"), "the page shows nothing of the folder");
    let (status, _) = call(&app, "GET", "/api/v1/files", token, None).await;
    assert_eq!(status, 401, "the link's token is no credential");
}

#[tokio::test]
async fn hostile_names_are_made_safe_and_stay_in_the_links_folder() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    call(&app, "POST", "/api/v1/folders", &admin, Some(json!({"path": "drop"}))).await;
    let created = link(&app, &admin, json!({"folder": "drop"})).await;
    for (sent, stored) in [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\eve\\evil.txt", "evil.txt"),
        ("..", "upload"),
        ("", "upload (2)"),
        ("CON", "_CON"),
        ("bidi\u{202e}txt.exe", "biditxt.exe"),
        (" .hidden. ", "hidden"),
    ] {
        let (status, answer) = send(&app, &created, sent, b"x".to_vec(), None).await;
        assert_eq!(status, 201, "{sent:?}: {answer}");
        assert!(!answer["name"].as_str().unwrap().contains(['/', '\\', '\u{202e}']), "{answer}");
        assert!(names(&app, &admin, "drop").await.contains(&stored.to_owned()), "{sent:?} -> {stored}");
    }
    assert_eq!(names(&app, &admin, "").await, Vec::<String>::new(), "nothing outside the folder");
}

#[tokio::test]
async fn count_file_size_total_and_quota_limits_hold_while_streaming_and_store_nothing_over_them() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let (carol, carol_id) = user_token(&app, &admin, "carol").await;
    let created =
        link(&app, &carol, json!({"max_files": 3, "max_total_bytes": 300_000, "max_file_bytes": 200_000})).await;

    // Over the size per file, announced: refused before reading.
    let (status, answer) = send(&app, &created, "big.bin", vec![1; 200_001], None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));
    // Over it while streaming (no length announced): refused mid-stream, nothing kept.
    let (sender, request) = streamed(&app, &created, "streamed.bin");
    let feeder = tokio::spawn(async move {
        // Stops when the server stops reading: the channel's receiver is dropped.
        while sender.send(vec![2; 64 << 10]).await.is_ok() {}
    });
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    feeder.abort();
    assert_eq!(names(&app, &carol, "").await, Vec::<String>::new());
    assert!(crate::helpers::eventually(|| temp_files(&app) == 0).await, "the refused upload's temp file is gone");

    // The total: 150 kB stored, then 160 kB more is over what is left.
    assert_eq!(send(&app, &created, "one.bin", vec![3; 150_000], None).await.0, 201);
    let (status, _) = send(&app, &created, "two.bin", vec![4; 160_000], None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(send(&app, &created, "two.bin", vec![4; 100_000], None).await.0, 201);
    // The count: a third file fits, a fourth does not.
    assert_eq!(send(&app, &created, "three.bin", vec![5; 10], None).await.0, 201);
    let (status, answer) = send(&app, &created, "four.bin", vec![6; 10], None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("upload_link_full")), "{answer}");
    assert_eq!(names(&app, &carol, "").await, ["one.bin", "three.bin", "two.bin"]);
    let (_, info) =
        call(&app, "GET", &format!("/api/v1/upload-links/{}", created["id"].as_str().unwrap()), &carol, None).await;
    assert_eq!((info["files_received"].as_i64(), info["bytes_received"].as_i64()), (Some(3), Some(250_010)));
    assert_eq!(info["state"], "full");

    // The owner's quota applies, also to a streamed body.
    let path = format!("/api/v1/users/{carol_id}");
    let (status, _) = call(&app, "PATCH", &path, &admin, Some(json!({"quota_bytes": 300_000}))).await;
    assert_eq!(status, 200);
    let roomy = link(&app, &carol, json!({})).await;
    let (sender, request) = streamed(&app, &roomy, "over-quota.bin");
    let feeder = tokio::spawn(async move { while sender.send(vec![7; 64 << 10]).await.is_ok() {} });
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "quota_exceeded");
    feeder.abort();
    assert_eq!(names(&app, &carol, "").await.len(), 3, "nothing stored over the quota");
    let refused = audit_of(&app, &admin, "upload_link_refused").await;
    let reasons: Vec<&str> = refused.iter().map(|entry| entry["detail"].as_str().unwrap()).collect();
    for reason in ["reason=too_large", "reason=full", "reason=quota_exceeded"] {
        assert!(reasons.contains(&reason), "{reason} in {reasons:?}");
    }
}

#[tokio::test]
async fn a_file_in_flight_holds_its_place_so_parallel_uploads_cannot_overrun_the_count() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let created = link(&app, &admin, json!({"max_files": 1})).await;
    let (sender, request) = streamed(&app, &created, "first.bin");
    let first = tokio::spawn(request.send());
    sender.send(b"first part ".to_vec()).await.unwrap();
    // Its temp file exists once the server has reserved its place and begun writing.
    assert!(crate::helpers::eventually(|| temp_files(&app) == 1).await, "the first upload started");
    // The first upload holds the only place while it streams: a second is refused.
    let (status, refused) = send(&app, &created, "second.bin", b"second".to_vec(), None).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::CONFLICT, Some("upload_link_full")), "{refused}");
    sender.send(b"and the end".to_vec()).await.unwrap();
    drop(sender);
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 201);
    assert_eq!(names(&app, &admin, "").await, ["first.bin"]);
}

#[tokio::test]
async fn revoking_a_link_cuts_its_uploads_in_flight_and_stores_nothing() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let created = link(&app, &admin, json!({})).await;
    let (sender, request) = streamed(&app, &created, "cut.bin");
    let upload = tokio::spawn(request.send());
    sender.send(vec![1; 64 << 10]).await.unwrap();
    assert!(crate::helpers::eventually(|| temp_files(&app) == 1).await, "the upload started");
    let id = created["id"].as_str().unwrap();
    let (status, _) = call(&app, "DELETE", &format!("/api/v1/upload-links/{id}"), &admin, None).await;
    assert_eq!(status, 204);
    // The server answers without waiting for the rest of the body, which never comes.
    let response = upload.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    drop(sender);
    assert_eq!(names(&app, &admin, "").await, Vec::<String>::new());
    assert!(crate::helpers::eventually(|| temp_files(&app) == 0).await);
}

#[tokio::test]
async fn an_expired_link_takes_nothing() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let created = link(&app, &admin, json!({"expires_in": 60})).await;
    assert_eq!(send(&app, &created, "in-time.txt", b"ok".to_vec(), None).await.0, 201);
    app.advance_clock(61);
    let (status, answer) = send(&app, &created, "late.txt", b"late".to_vec(), None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::GONE, Some("upload_link_expired")));
    assert_eq!(app.get(&format!("/u/{}", token_of(&created))).await.status(), 410);
    let (_, info) = call(&app, "GET", "/api/v1/upload-links", &admin, None).await;
    assert_eq!(info["upload_links"][0]["state"], "expired");
    assert_eq!(names(&app, &admin, "").await, ["in-time.txt"]);
}

#[tokio::test]
async fn the_password_guards_every_path_and_a_new_one_ends_old_unlocks() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let created = link(&app, &admin, json!({"password": LINK_PASSWORD})).await;
    let token = token_of(&created);
    assert_eq!(created["has_password"], true);
    assert!(!created.to_string().contains(LINK_PASSWORD));
    let page = app.get(&format!("/u/{token}")).await;
    assert_eq!(page.status(), 401);
    let html = page.text().await.unwrap();
    assert!(html.contains("type=\"password\"") && !html.contains("uplink.js"), "a password form only");

    let (status, answer) = send(&app, &created, "a.txt", b"a".to_vec(), None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("password_required")));
    let (status, answer) = send(&app, &created, "a.txt", b"a".to_vec(), Some("wrong-guess-123")).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("wrong_password")));
    assert_eq!(send(&app, &created, "a.txt", b"a".to_vec(), Some(LINK_PASSWORD)).await.0, 201);

    // The form sets an unlock cookie for the page and the uploads.
    let unlock =
        app.client.post(app.url(&format!("/u/{token}"))).form(&[("password", LINK_PASSWORD)]).send().await.unwrap();
    assert_eq!(unlock.status(), 303);
    let cookie = unlock.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let with_cookie = |path: String| app.client.get(app.url(&path)).header("cookie", cookie.clone()).send();
    assert_eq!(with_cookie(format!("/u/{token}")).await.unwrap().status(), 200);
    let put_with_cookie = || {
        app.client
            .put(app.url(&format!("/u/{token}/files?name=b.txt")))
            .header("cookie", cookie.clone())
            .body("b")
            .send()
    };
    assert_eq!(put_with_cookie().await.unwrap().status(), 201);

    let id = created["id"].as_str().unwrap();
    let change = json!({"password": "another-secret-44"});
    assert_eq!(call(&app, "PATCH", &format!("/api/v1/upload-links/{id}"), &admin, Some(change)).await.0, 200);
    assert_eq!(put_with_cookie().await.unwrap().status(), 401, "the old unlock ended");
    assert_eq!(names(&app, &admin, "").await, ["a.txt", "b.txt"]);
    let failed = audit_of(&app, &admin, "upload_link_unlock_failed").await;
    assert_eq!(failed.len(), 1);
    assert!(!app.logs.text().contains(LINK_PASSWORD));
}

#[tokio::test]
async fn an_owner_who_asked_hears_of_each_file_received() {
    let smtp = Smtp::start();
    let app = mail_app(&smtp);
    let admin = admin_token(&app).await;
    let (status, _) = call(&app, "PATCH", "/api/v1/me", &admin, Some(json!({"email": "owner@example.test"}))).await;
    assert_eq!(status, 200);
    let quiet = link(&app, &admin, json!({})).await;
    let watched = link(&app, &admin, json!({"notify_uploads": true})).await;
    assert_eq!(send(&app, &quiet, "quiet.txt", b"q".to_vec(), None).await.0, 201);
    assert_eq!(send(&app, &watched, "scan <1>.pdf", b"0123456789".to_vec(), None).await.0, 201);
    let received = smtp.wait_for(1).await;
    assert_eq!(received.len(), 1, "no notice for the quiet link");
    let mail = &received[0];
    assert_eq!(mail["to"], "owner@example.test");
    assert_eq!(mail["subject"], "\"scan <1>.pdf\" was uploaded through your link");
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains("(10 bytes) from 127.0.0.1"), "{text}");
    assert!(!mail["html"].as_str().unwrap().contains("<1>"), "escaped in HTML");
    assert_no_secrets(&app, &[token_of(&watched), token_of(&quiet)]);
}

#[tokio::test]
async fn the_page_and_the_uploads_are_rate_limited_per_client_address_like_share_links() {
    let toml = "[rate_limits]\npublic_per_minute = 60\npublic_burst = 4\n";
    let app = crate::helpers::spawn_app(crate::helpers::Options { toml: toml.into(), ..Default::default() });
    let admin = admin_token(&app).await;
    let created = link(&app, &admin, json!({})).await;
    let page = format!("/u/{}", token_of(&created));
    // The sign-in took one of the four; three more public requests of any kind go.
    assert_eq!(app.get(&page).await.status(), 200);
    assert_eq!(send(&app, &created, "one.txt", b"1".to_vec(), None).await.0, 201);
    assert_eq!(app.get(&page).await.status(), 200);
    let (status, answer) = send(&app, &created, "two.txt", b"2".to_vec(), None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")));
    assert_eq!(app.get(&page).await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(names(&app, &admin, "").await, ["one.txt"]);
    app.advance_clock(2);
    assert_eq!(send(&app, &created, "two.txt", b"2".to_vec(), None).await.0, 201);
}

#[tokio::test]
async fn admins_list_everyones_upload_links_and_users_only_their_own() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let (bob, _) = user_token(&app, &admin, "bob").await;
    let bobs = link(&app, &bob, json!({})).await;
    link(&app, &admin, json!({})).await;
    let (status, own) = call(&app, "GET", "/api/v1/upload-links", &bob, None).await;
    assert_eq!((status, own["upload_links"].as_array().unwrap().len()), (StatusCode::OK, 1));
    assert_eq!(own["upload_links"][0]["id"], bobs["id"]);
    assert_eq!(call(&app, "GET", "/api/v1/upload-links?all=true", &bob, None).await.0, 403);
    let (status, all) = call(&app, "GET", "/api/v1/upload-links?all=true", &admin, None).await;
    assert_eq!((status, all["upload_links"].as_array().unwrap().len()), (StatusCode::OK, 2));
    let id = bobs["id"].as_str().unwrap();
    assert_eq!(call(&app, "DELETE", &format!("/api/v1/upload-links/{id}"), &admin, None).await.0, 204);
    let revoked = audit_of(&app, &admin, "upload_link_revoked").await;
    assert!(revoked[0]["detail"].as_str().unwrap().starts_with("by_admin"), "{revoked:?}");
}

/// A link writes into its folder wherever the owner moves it, and ends when the folder is
/// deleted: strangers' files never land at the folder's old path, nor in a new folder made
/// there later.
#[tokio::test]
async fn a_link_follows_its_folder_when_moved_and_ends_when_it_is_deleted() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    call(&app, "POST", "/api/v1/folders", &admin, Some(json!({"path": "inbox"}))).await;
    let created = link(&app, &admin, json!({"folder": "inbox"})).await;
    let id = created["id"].as_str().unwrap();

    let (status, moved) =
        call(&app, "POST", "/api/v1/folders/move", &admin, Some(json!({"from": "inbox", "to": "done/inbox"}))).await;
    assert_eq!(status, 200, "{moved}");
    let (status, answer) = send(&app, &created, "after-move.txt", b"x".to_vec(), None).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(names(&app, &admin, "done/inbox").await, ["after-move.txt"]);
    let (_, top) = call(&app, "GET", "/api/v1/files?folder=", &admin, None).await;
    let folders: Vec<&str> = top["folders"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(!folders.contains(&"inbox"), "nothing recreated the old path: {top}");
    let (_, info) = call(&app, "GET", &format!("/api/v1/upload-links/{id}"), &admin, None).await;
    assert_eq!(info["folder"], "done/inbox", "{info}");

    let (status, deleted) = call(&app, "DELETE", "/api/v1/folders?path=done&recursive=true", &admin, None).await;
    assert_eq!(status, 200, "{deleted}");
    call(&app, "POST", "/api/v1/folders", &admin, Some(json!({"path": "done/inbox"}))).await;
    let (status, answer) = send(&app, &created, "after-delete.txt", b"x".to_vec(), None).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(names(&app, &admin, "done/inbox").await, Vec::<String>::new());
    let (status, _) = call(&app, "GET", &format!("/api/v1/upload-links/{id}"), &admin, None).await;
    assert_eq!(status, 404, "the link went with its folder");
}
