//! Files: uploads, downloads, limits, names and who may see what.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::call;
use crate::auth::{login, login_admin};
use crate::helpers::{Options, TestApp, spawn_app, spawn_default};
use crate::upload_refusals::offer_upload;

pub const PASSWORD: &str = "plum-quartz-ladder-71";

pub fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().iter().map(|byte| format!("{byte:02x}")).collect()
}

pub async fn admin_token(app: &TestApp) -> String {
    login_admin(app).await["access_token"].as_str().unwrap().to_owned()
}

/// Creates a user and returns its access token and id.
pub async fn user_token(app: &TestApp, admin: &str, username: &str) -> (String, String) {
    let (status, user) =
        call(app, "POST", "/api/v1/users", admin, Some(json!({"username": username, "password": PASSWORD}))).await;
    assert_eq!(status, 201, "{user}");
    let (_, tokens) = login(app, username, PASSWORD).await;
    (tokens["access_token"].as_str().unwrap().to_owned(), user["id"].as_str().unwrap().to_owned())
}

pub async fn put(app: &TestApp, token: &str, query: &str, data: Vec<u8>) -> (StatusCode, Value) {
    let response = app
        .client
        .put(app.url(&format!("/api/v1/files/upload?{query}")))
        .bearer_auth(token)
        .body(data)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub async fn download(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.client.get(app.url(&format!("/api/v1/files/{id}/content"))).bearer_auth(token).send().await.unwrap()
}

pub fn pseudo_random(length: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn state_entries(app: &TestApp, dir: &str) -> usize {
    std::fs::read_dir(app.state_dir.join(dir)).map(|entries| entries.count()).unwrap_or(0)
}

#[tokio::test]
async fn round_trips_of_empty_tiny_and_large_files_keep_every_byte() {
    // COFFER_TEST_LARGE_MIB sizes the large file (multi-GiB runs are for capable machines).
    let large_mib: usize = std::env::var("COFFER_TEST_LARGE_MIB").ok().and_then(|mib| mib.parse().ok()).unwrap_or(48);
    let toml = format!("[storage]\nmax_file_size = \"{} MiB\"\n", large_mib + 1);
    let app = spawn_app(Options { toml, ..Options::default() });
    let token = admin_token(&app).await;
    for (name, data) in [("empty", Vec::new()), ("one", vec![42u8]), ("large", pseudo_random(large_mib << 20, 7))] {
        let (status, meta) = put(&app, &token, &format!("name={name}"), data.clone()).await;
        assert_eq!(status, 201, "{meta}");
        assert_eq!(meta["size"], data.len());
        assert_eq!(meta["sha256"], sha256_hex(&data));
        let response = download(&app, &token, meta["id"].as_str().unwrap()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-length"], data.len().to_string().as_str());
        assert_eq!(response.headers()["etag"], format!("\"{}\"", sha256_hex(&data)).as_str());
        let body = response.bytes().await.unwrap();
        assert!(body.as_ref() == data.as_slice(), "{name} came back different");
    }
    assert_eq!(state_entries(&app, "tmp"), 0);
}

#[tokio::test]
async fn multipart_upload_stores_into_the_given_folder() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let form = reqwest::multipart::Form::new().text("folder", "projects/2026").text("description", "the plan").part(
        "file",
        reqwest::multipart::Part::bytes(b"plan contents".to_vec())
            .file_name("plan.txt")
            .mime_str("text/plain")
            .unwrap(),
    );
    let response = app.client.post(app.url("/api/v1/files")).bearer_auth(&token).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let meta: Value = response.json().await.unwrap();
    assert_eq!((meta["folder"].as_str(), meta["name"].as_str()), (Some("projects/2026"), Some("plan.txt")));
    assert_eq!(meta["description"], "the plan");
    assert_eq!(meta["content_type"], "text/plain");
    let (_, top) = call(&app, "GET", "/api/v1/files", &token, None).await;
    assert_eq!(top["folders"], json!(["projects"]));
    let (_, inner) = call(&app, "GET", "/api/v1/files?folder=projects/2026", &token, None).await;
    assert_eq!(inner["files"][0]["id"], meta["id"]);
}

#[tokio::test]
async fn ranges_and_conditional_requests_follow_rfc_9110() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let data = pseudo_random(1000, 3);
    let (_, meta) = put(&app, &token, "name=r.bin", data.clone()).await;
    let url = app.url(&format!("/api/v1/files/{}/content", meta["id"].as_str().unwrap()));
    let etag = format!("\"{}\"", sha256_hex(&data));
    let get = |headers: Vec<(&'static str, String)>| {
        let mut request = app.client.get(&url).bearer_auth(&token);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    for (range, start, end) in
        [("bytes=0-99", 0, 99), ("bytes=900-", 900, 999), ("bytes=-10", 990, 999), ("bytes=990-5000", 990, 999)]
    {
        let response = get(vec![("range", range.into())]).await.unwrap();
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(response.headers()["content-range"], format!("bytes {start}-{end}/1000").as_str());
        assert_eq!(response.bytes().await.unwrap().as_ref(), &data[start..=end]);
    }
    let unsatisfiable = get(vec![("range", "bytes=1000-".into())]).await.unwrap();
    assert_eq!(unsatisfiable.status(), 416);
    assert_eq!(unsatisfiable.headers()["content-range"], "bytes */1000");
    let many = get(vec![("range", "bytes=0-1,500-501,900-901".into())]).await.unwrap();
    assert_eq!(many.status(), 200, "disjoint ranges get the file once");
    assert_eq!(many.bytes().await.unwrap().len(), 1000);
    let cached = get(vec![("if-none-match", etag.clone())]).await.unwrap();
    assert_eq!(cached.status(), 304);
    let changed = get(vec![("range", "bytes=0-9".into()), ("if-range", "\"stale\"".into())]).await.unwrap();
    assert_eq!(changed.status(), 200, "If-Range with an old ETag gets the whole file");
    let resumed = get(vec![("range", "bytes=10-19".into()), ("if-range", etag.clone())]).await.unwrap();
    assert_eq!(resumed.status(), 206);
    let head = app.client.head(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "1000");
    let headers = head.headers();
    assert_eq!(headers["content-security-policy"].to_str().unwrap().split(';').next(), Some("sandbox"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"r.bin\""));
}

#[tokio::test]
async fn hostile_names_never_escape_the_store_and_download_with_a_safe_filename() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let long = "a".repeat(300);
    for bad in ["../../x", "..%5Cx", "..", "nul%00byte", long.as_str(), "evil%E2%80%AEfdp.exe", "a%2Fb", "CON"] {
        let (status, body) = put(&app, &token, &format!("name={bad}"), b"x".to_vec()).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_name")), "{bad}");
    }
    let (status, _) = put(&app, &token, "name=x&folder=../etc", b"x".to_vec()).await;
    assert_eq!(status, 400);
    for odd in ["%252e%252e", "CONFIG", "quote%22semi%3B.txt"] {
        let (status, meta) = put(&app, &token, &format!("name={odd}"), b"odd".to_vec()).await;
        assert_eq!(status, 201, "{odd}: {meta}");
        let response = download(&app, &token, meta["id"].as_str().unwrap()).await;
        let disposition = response.headers()["content-disposition"].to_str().unwrap().to_owned();
        let fallback = disposition.split("filename=\"").nth(1).unwrap().split('"').next().unwrap();
        assert!(!fallback.contains(['/', '\\', '"', '%']), "{disposition}");
    }
    let mut entries: Vec<String> = std::fs::read_dir(&app.state_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    let expected = [
        "blobs",
        "coffer.db",
        "coffer.db-shm",
        "coffer.db-wal",
        "gc.lock",
        "initial-admin-password",
        "keys",
        "search",
        "tls",
        "tmp",
        "uploads",
    ];
    assert!(entries.iter().all(|entry| expected.contains(&entry.as_str())), "{entries:?}");
}

#[tokio::test]
async fn over_limit_uploads_get_413_and_store_nothing() {
    let app = spawn_app(Options { toml: "[storage]\nmax_file_size = \"1 MiB\"\n".into(), ..Options::default() });
    let token = admin_token(&app).await;
    let (status, body) = put(&app, &token, "name=big", vec![0u8; (1 << 20) + 1]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));
    // Without Content-Length the limit is found while streaming: 16 MiB offered, and the
    // server stops taking bytes soon after the first 1 MiB: at most the HTTP/2 stream window
    // (2 MiB) more can be in flight when it answers.
    let offered = offer_upload(&app, &app.client, &token, "streamed", 256, false).await;
    assert_eq!(offered.status, 413);
    let taken = offered.taken;
    assert!(taken <= (1 << 20) + (2 << 20) + (256 << 10), "{taken} bytes were read for a 1 MiB limit");
    // What reached the disk before the refusal: never more than the limit and 1 MiB.
    let removed = app
        .logs
        .wait_for(|line| line["message"] == "an upload ended before its last byte; its temp file is removed")
        .expect("the refused upload's temp file was removed");
    let written = removed["bytes_written"].as_u64().expect("the log line says how much was written");
    assert!(written <= 2 << 20, "{written} bytes were written for a 1 MiB limit");
    let (_, listing) = call(&app, "GET", "/api/v1/files", &token, None).await;
    assert_eq!(listing["files"], json!([]));
    assert_eq!(state_entries(&app, "tmp"), 0);
    assert_eq!(state_entries(&app, "blobs"), 0);
}

#[tokio::test]
async fn a_mismatched_content_digest_gets_400_and_stores_nothing() {
    use base64::Engine;
    let app = spawn_default();
    let token = admin_token(&app).await;
    let digest = |data: &[u8]| {
        let hash = ring::digest::digest(&ring::digest::SHA256, data);
        format!("sha-256=:{}:", base64::engine::general_purpose::STANDARD.encode(hash.as_ref()))
    };
    let send = |name: &str, header: String| {
        app.client
            .put(app.url(&format!("/api/v1/files/upload?name={name}")))
            .bearer_auth(&token)
            .header("content-digest", header)
            .body(b"payload".to_vec())
            .send()
    };
    let wrong = send("wrong", digest(b"something else")).await.unwrap();
    assert_eq!(wrong.status(), 400);
    assert_eq!(wrong.json::<Value>().await.unwrap()["error"], "digest_mismatch");
    assert_eq!(send("right", digest(b"payload")).await.unwrap().status(), 201);
    let (_, listing) = call(&app, "GET", "/api/v1/files", &token, None).await;
    assert_eq!(listing["files"].as_array().unwrap().len(), 1);
    assert_eq!(state_entries(&app, "tmp"), 0);
}
