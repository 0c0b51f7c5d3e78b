//! Links to several files or a folder: what they hold, the streamed ZIP (checked by the real
//! `unzip`), Range on single files, the per-file limit, revocation and expiry cutting a ZIP, the
//! password on every path, and hostile names.

use std::path::Path;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::call;
use crate::files::{admin_token, put, user_token};
use crate::helpers::{TestApp, spawn_default};
use crate::share_links::{cookies, downloads, fetch, json_error};
use crate::shares::urlencode;

const PASSWORD: &str = "correct-horse-77";

/// Uploads `data` as `name` into `folder`; returns the file's id.
async fn upload_to(app: &TestApp, token: &str, folder: &str, name: &str, data: &[u8]) -> String {
    let query = format!("name={}&folder={}", urlencode(name), urlencode(folder));
    let (status, file) = put(app, token, &query, data.to_vec()).await;
    assert_eq!(status, 201, "{file}");
    file["id"].as_str().unwrap().to_owned()
}

async fn create(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    call(app, "POST", "/api/v1/shares", token, Some(body)).await
}

async fn made(app: &TestApp, token: &str, body: Value) -> (String, String) {
    let (status, share) = create(app, token, body).await;
    assert_eq!(status, 201, "{share}");
    (share["id"].as_str().unwrap().to_owned(), share["token"].as_str().unwrap().to_owned())
}

/// The JSON listing of a share's page.
async fn listing(app: &TestApp, token: &str, headers: &[(&str, &str)]) -> Value {
    let mut all = vec![("accept", "application/json")];
    all.extend_from_slice(headers);
    let response = fetch(app, "GET", &format!("/s/{token}"), &all).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn paths(listing: &Value) -> Vec<String> {
    listing["files"].as_array().unwrap().iter().map(|file| file["path"].as_str().unwrap().to_owned()).collect()
}

/// Runs `unzip` with `args` on `archive`; returns (success, stdout + stderr).
fn unzip(archive: &Path, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new("unzip").args(args).arg(archive).output().expect("unzip is installed");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Saves a ZIP, checks it with `unzip -t` and returns its entry names (`unzip -Z1`).
fn checked_zip(dir: &Path, bytes: &[u8]) -> Vec<String> {
    let archive = dir.join("all.zip");
    std::fs::write(&archive, bytes).unwrap();
    let (ok, text) = unzip(&archive, &["-t"]);
    assert!(ok && text.contains("No errors detected"), "{text}");
    let (ok, names) = unzip(&archive, &["-Z1"]);
    assert!(ok, "{names}");
    names.lines().map(str::to_owned).collect()
}

async fn zip_of(app: &TestApp, token: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    fetch(app, "GET", &format!("/s/{token}/download"), headers).await
}

#[tokio::test]
async fn a_folder_link_holds_its_contents_at_download_time_and_zips_them_for_unzip() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    upload_to(&app, &admin, "trip", "plan.txt", b"day one: walk").await;
    let photo = upload_to(&app, &admin, "trip/day1", "photo.jpg", &[7u8; 5000]).await;
    upload_to(&app, &admin, "tripping", "outside.txt", b"not in the folder").await;
    upload_to(&app, &admin, "", "root.txt", b"not in the folder").await;
    let (status, created) = create(&app, &admin, json!({"folder": "trip", "max_downloads": 5})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["kind"].as_str(), created["folder"].as_str()), (Some("folder"), Some("trip")));
    assert_eq!((created["file_count"].as_i64(), created["file_size"].as_i64()), (Some(2), Some(5013)));
    assert!(created.get("file_id").is_none());
    let (id, token) = (created["id"].as_str().unwrap(), created["token"].as_str().unwrap());
    assert_eq!(paths(&listing(&app, token, &[]).await), ["plan.txt", "day1/photo.jpg"]);

    // Contents at download time: a file added later is in, a deleted one is out.
    upload_to(&app, &admin, "trip/day2", "later.txt", b"added after the link").await;
    let (status, _) = call(&app, "DELETE", &format!("/api/v1/files/{photo}"), &admin, None).await;
    assert_eq!(status, 204);
    let listed = listing(&app, token, &[]).await;
    assert_eq!(paths(&listed), ["plan.txt", "day2/later.txt"]);
    assert_eq!(listed["kind"], "folder");
    assert_eq!(listed["download_all_url"], format!("/s/{token}/download"));
    let page = fetch(&app, "GET", &format!("/s/{token}"), &[]).await.text().await.unwrap();
    assert!(page.contains("day2/later.txt") && page.contains("Download all (ZIP)"), "{page}");

    let response = zip_of(&app, token, &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains("trip.zip"));
    let temp = tempfile::tempdir().unwrap();
    let names = checked_zip(temp.path(), &response.bytes().await.unwrap());
    assert_eq!(names, ["plan.txt", "day2/later.txt"]);
    let out = temp.path().join("out");
    let (ok, text) = unzip(&temp.path().join("all.zip"), &["-q", "-d", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert_eq!(std::fs::read(out.join("day2/later.txt")).unwrap(), b"added after the link");
    assert_eq!(downloads(&app, &admin, id).await, 1, "one ZIP, one download");

    // The link follows its folder when it moves.
    let (status, moved) =
        call(&app, "POST", "/api/v1/folders/move", &admin, Some(json!({"from": "trip", "to": "archive/trip"}))).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(paths(&listing(&app, token, &[]).await), ["plan.txt", "day2/later.txt"]);
    let (_, info) = call(&app, "GET", &format!("/api/v1/shares/{id}"), &admin, None).await;
    assert_eq!((info["folder"].as_str(), info["file_name"].as_str()), (Some("archive/trip"), Some("trip")));
}

#[tokio::test]
async fn a_list_link_takes_only_the_owners_files_and_deleted_ones_drop_out() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let (bob, _) = user_token(&app, &admin, "bob").await;
    let first = upload_to(&app, &admin, "a", "same.txt", b"first").await;
    let second = upload_to(&app, &admin, "b", "same.txt", b"second").await;
    let third = upload_to(&app, &admin, "", "third.txt", b"third").await;
    let bobs = upload_to(&app, &bob, "", "bobs.txt", b"bob's").await;

    for body in [json!({"file_ids": [first, bobs]}), json!({"folder": "nowhere"})] {
        let (status, answer) = create(&app, &admin, body).await;
        assert_eq!(status, 404, "{answer}");
    }
    for body in [json!({"file_ids": []}), json!({"file_id": first, "folder": "a"}), json!({}), json!({"folder": ""})] {
        let (status, answer) = create(&app, &admin, body.clone()).await;
        assert_eq!((status, answer["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid")), "{body}");
    }
    // Single-file links are made exactly as before.
    let (status, single) = create(&app, &admin, json!({"file_id": first})).await;
    assert_eq!(
        (status, single["kind"].as_str(), single["file_id"].as_str()),
        (StatusCode::CREATED, Some("file"), Some(first.as_str()))
    );

    let (status, created) = create(&app, &admin, json!({"file_ids": [first, second, third, first]})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["kind"], "files");
    assert_eq!(created["file_count"], 3, "duplicates are listed once");
    let (id, token) = (created["id"].as_str().unwrap(), created["token"].as_str().unwrap());
    // Two files of the same name: distinct names on the page and in the ZIP.
    assert_eq!(paths(&listing(&app, token, &[]).await), ["third.txt", "same.txt", "same (2).txt"]);

    let (status, _) = call(&app, "DELETE", &format!("/api/v1/files/{third}"), &admin, None).await;
    assert_eq!(status, 204);
    assert_eq!(paths(&listing(&app, token, &[]).await), ["same.txt", "same (2).txt"]);
    let (status, changed) =
        call(&app, "PATCH", &format!("/api/v1/shares/{id}"), &admin, Some(json!({"max_downloads": 2}))).await;
    assert_eq!(
        (status, changed["max_downloads"].as_i64(), changed["file_count"].as_i64()),
        (StatusCode::OK, Some(2), Some(2))
    );
    let (status, page) = call(&app, "GET", "/api/v1/shares", &admin, None).await;
    assert_eq!(status, 200);
    let mut kinds: Vec<&str> =
        page["shares"].as_array().unwrap().iter().map(|share| share["kind"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["file", "files"]);
    // Bob cannot reach the admin's list share's files through his own link either.
    let (status, _) = create(&app, &bob, json!({"file_ids": [second]})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn single_files_of_a_link_serve_ranges_and_head_and_resume_without_counting_twice() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let data: Vec<u8> = (0..100_000u32).map(|index| (index % 251) as u8).collect();
    let big = upload_to(&app, &admin, "set", "big.bin", &data).await;
    upload_to(&app, &admin, "set", "small.txt", b"small").await;
    let (id, token) = made(&app, &admin, json!({"folder": "set", "max_downloads": 1})).await;
    let link = format!("/s/{token}/files/{big}");

    let head = fetch(&app, "HEAD", &link, &[]).await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "100000");
    assert_eq!(head.headers()["accept-ranges"], "bytes");
    let part = fetch(&app, "GET", &link, &[("range", "bytes=0-999")]).await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    let cookie = cookies(part.headers());
    assert!(cookie.contains(&format!("coffer_resume_{id}_{big}")), "{cookie}");
    let mut received = part.bytes().await.unwrap().to_vec();
    let rest = fetch(&app, "GET", &link, &[("range", "bytes=1000-"), ("cookie", &cookie)]).await;
    assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
    received.extend_from_slice(&rest.bytes().await.unwrap());
    assert_eq!(received, data);
    assert_eq!(downloads(&app, &admin, id.as_str()).await, 1, "HEAD and the resume did not count");
    // The file is used up (limit 1 per file); the other one is not.
    let again = fetch(&app, "GET", &link, &[("accept", "application/json")]).await;
    assert_eq!(json_error(again).await, (StatusCode::GONE, "share_exhausted".into()));
    let left: Vec<Option<i64>> = listing(&app, &token, &[]).await["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["downloads_left"].as_i64())
        .collect();
    assert_eq!(left, [Some(0), Some(1)]);
    // A file that is not in the link, even the owner's own, is not served through it.
    let outside = upload_to(&app, &admin, "", "outside.txt", b"private").await;
    let response = fetch(&app, "GET", &format!("/s/{token}/files/{outside}"), &[("accept", "application/json")]).await;
    assert_eq!(json_error(response).await, (StatusCode::NOT_FOUND, "not_found".into()));
}

#[tokio::test]
async fn the_limit_holds_per_file_alone_or_in_the_zip_even_under_concurrent_downloads() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let mut ids = Vec::new();
    for name in ["one.txt", "two.txt", "three.txt"] {
        ids.push(upload_to(&app, &admin, "", name, name.as_bytes()).await);
    }
    let (id, token) = made(&app, &admin, json!({"file_ids": ids, "max_downloads": 2})).await;

    // Ten ZIPs at once: exactly two get through, as each file may leave twice.
    let attempts = (0..10).map(|_| async {
        let response = zip_of(&app, &token, &[("accept", "application/json")]).await;
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        (status, bytes)
    });
    let outcomes = futures_util::future::join_all(attempts).await;
    let served: Vec<_> = outcomes.iter().filter(|(status, _)| *status == StatusCode::OK).collect();
    assert_eq!(served.len(), 2, "{:?}", outcomes.iter().map(|(status, _)| *status).collect::<Vec<_>>());
    assert!(outcomes.iter().all(|(status, _)| [StatusCode::OK, StatusCode::GONE].contains(status)));
    let temp = tempfile::tempdir().unwrap();
    assert_eq!(checked_zip(temp.path(), &served[0].1).len(), 3);
    assert_eq!(downloads(&app, &admin, &id).await, 2);
    // Every file is used up: alone too, and the link says so.
    for file in &ids {
        let response = fetch(&app, "GET", &format!("/s/{token}/files/{file}"), &[("accept", "application/json")]).await;
        assert_eq!(json_error(response).await, (StatusCode::GONE, "share_exhausted".into()));
    }
    let (_, info) = call(&app, "GET", &format!("/api/v1/shares/{id}"), &admin, None).await;
    assert_eq!(info["state"], "exhausted");

    // One file fetched alone uses up that file: the ZIP, which needs it, is refused whole.
    let (_, token) = made(&app, &admin, json!({"file_ids": ids, "max_downloads": 1})).await;
    let alone = fetch(&app, "GET", &format!("/s/{token}/files/{}", ids[0]), &[]).await;
    assert_eq!(alone.bytes().await.unwrap().as_ref(), b"one.txt");
    let refused = zip_of(&app, &token, &[("accept", "application/json")]).await;
    assert_eq!(json_error(refused).await, (StatusCode::GONE, "share_exhausted".into()));
    let other = fetch(&app, "GET", &format!("/s/{token}/files/{}", ids[1]), &[]).await;
    assert_eq!(other.status(), 200, "the refused ZIP took nothing from the other files");
}

/// A ZIP large enough that the server re-checks the share while it streams.
async fn large_folder(app: &TestApp, admin: &str) -> (String, String) {
    for index in 0..4u8 {
        let data: Vec<u8> = (0..(6u32 << 20)).map(|at| (at.wrapping_mul(2_654_435_761) >> 13) as u8 ^ index).collect();
        upload_to(app, admin, "big", &format!("part{index}.bin"), &data).await;
    }
    made(app, admin, json!({"folder": "big", "expires_in": 3600})).await
}

/// Reads a little of a ZIP, does `cut`, then reads on: the stream must fail, never end clean.
async fn cut_while_reading(app: &TestApp, token: &str, cut: impl AsyncFnOnce()) {
    let response = zip_of(app, token, &[]).await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut received = body.next().await.unwrap().unwrap().len();
    cut().await;
    let mut failed = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => received += chunk.len(),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the ZIP ended cleanly after {received} bytes");
    assert!(received < 24 << 20, "the ZIP was not cut: {received} bytes");
}

#[tokio::test]
async fn revoking_or_expiring_a_link_cuts_its_zip_download_with_an_error() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let (id, token) = large_folder(&app, &admin).await;
    cut_while_reading(&app, &token, async || {
        let (status, _) = call(&app, "DELETE", &format!("/api/v1/shares/{id}"), &admin, None).await;
        assert_eq!(status, 204);
    })
    .await;

    let (_, token) = made(&app, &admin, json!({"folder": "big", "expires_in": 60})).await;
    cut_while_reading(&app, &token, async || app.advance_clock(120)).await;
}

#[tokio::test]
async fn a_new_password_cuts_a_running_zip_download() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let (id, token) = large_folder(&app, &admin).await;
    cut_while_reading(&app, &token, async || {
        let body = json!({"password": "a-new-secret-phrase"});
        let (status, _) = call(&app, "PATCH", &format!("/api/v1/shares/{id}"), &admin, Some(body)).await;
        assert_eq!(status, 200);
    })
    .await;
}

#[tokio::test]
async fn a_protected_multi_file_link_asks_for_the_password_on_every_path() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let file = upload_to(&app, &admin, "locked", "secret.txt", b"the secret").await;
    let (_, token) = made(&app, &admin, json!({"folder": "locked", "password": PASSWORD})).await;
    let json = ("accept", "application/json");
    let paths = [
        ("GET", format!("/s/{token}")),
        ("GET", format!("/s/{token}/download")),
        ("HEAD", format!("/s/{token}/download")),
        ("GET", format!("/s/{token}/files/{file}")),
        ("HEAD", format!("/s/{token}/files/{file}")),
    ];
    for (method, path) in &paths {
        for headers in [vec![json], vec![json, ("range", "bytes=0-3")]] {
            let response = fetch(&app, method, path, &headers).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {path} {headers:?}");
            assert!(response.headers().get("content-disposition").is_none());
        }
    }
    for (method, path) in [&paths[1], &paths[3]] {
        let response = fetch(&app, method, path, &[json, ("x-share-password", "wrong-password-1")]).await;
        assert_eq!(json_error(response).await, (StatusCode::UNAUTHORIZED, "wrong_password".into()), "{path}");
    }
    let page = fetch(&app, "GET", &format!("/s/{token}"), &[]).await;
    assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
    assert!(!page.text().await.unwrap().contains("secret.txt"), "the page names nothing before the password");

    // The password in the header opens each path; the unlock cookie it earns does too.
    let ranged = fetch(&app, "GET", &paths[3].1, &[("x-share-password", PASSWORD), ("range", "bytes=4-9")]).await;
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    let cookie = cookies(ranged.headers());
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), b"secret");
    for (method, path) in &paths {
        let response = fetch(&app, method, path, &[json, ("cookie", &cookie)]).await;
        assert!(response.status().is_success(), "{method} {path}: {}", response.status());
    }
    let zip = zip_of(&app, &token, &[("x-share-password", PASSWORD)]).await;
    assert_eq!(zip.status(), 200);
    let temp = tempfile::tempdir().unwrap();
    assert_eq!(checked_zip(temp.path(), &zip.bytes().await.unwrap()), ["secret.txt"]);
}

#[tokio::test]
async fn hostile_names_come_out_of_the_zip_safe_and_distinct() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    for (folder, name) in [
        ("drop", "what?.txt"),
        ("drop", "a:b|c*.txt"),
        ("drop", "Report.txt"),
        ("drop", "report.txt"),
        ("drop", "sub"),
        ("drop/sub", "inner.txt"),
        ("drop", "legacy-one"),
        ("drop", "legacy-two"),
    ] {
        upload_to(&app, &admin, folder, name, name.as_bytes()).await;
    }
    // Names stored before today's rules (or by a bug) must not escape either.
    let db = rusqlite::Connection::open(app.state_dir.join("coffer.db")).unwrap();
    db.execute("UPDATE files SET name = '..' WHERE name = 'legacy-one'", []).unwrap();
    db.execute("UPDATE files SET folder = 'drop/../..', name = 'C:\\evil\u{1}.txt' WHERE name = 'legacy-two'", [])
        .unwrap();
    drop(db);
    let (_, token) = made(&app, &admin, json!({"folder": "drop"})).await;
    let response = zip_of(&app, &token, &[]).await;
    assert_eq!(response.status(), 200);
    let temp = tempfile::tempdir().unwrap();
    let mut names = checked_zip(temp.path(), &response.bytes().await.unwrap());
    names.sort();
    assert_eq!(
        names,
        [
            "Report.txt",
            "_ (2)",
            "_/_/C__evil_.txt",
            "a_b_c_.txt",
            "report (2).txt",
            "sub (2)",
            "sub/inner.txt",
            "what_.txt"
        ]
    );
    let out = temp.path().join("out");
    let (ok, text) = unzip(&temp.path().join("all.zip"), &["-q", "-d", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    let mut extracted = 0;
    for entry in walk(&out) {
        assert!(entry.starts_with(&out), "{entry:?} escaped");
        extracted += 1;
    }
    assert_eq!(extracted, 8);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

/// A folder link ends with its folder: deleting the folder revokes it, so a new folder made
/// later under the same name (with other, private files) is never served through the old link.
#[tokio::test]
async fn deleting_a_folder_ends_its_links_so_a_new_folder_of_that_name_stays_private() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    upload_to(&app, &admin, "party", "invite.txt", b"come along").await;
    let (id, token) = made(&app, &admin, json!({"folder": "party"})).await;
    assert_eq!(paths(&listing(&app, &token, &[]).await), ["invite.txt"]);

    let (status, deleted) = call(&app, "DELETE", "/api/v1/folders?path=party&recursive=true", &admin, None).await;
    assert_eq!(status, 200, "{deleted}");
    upload_to(&app, &admin, "party", "private-budget.txt", b"not for the guests").await;

    for path in [format!("/s/{token}"), format!("/s/{token}/download")] {
        let response = fetch(&app, "GET", &path, &[("accept", "application/json")]).await;
        assert_eq!(response.status(), 404, "{path} still answers for the deleted folder");
    }
    let (status, _) = call(&app, "GET", &format!("/api/v1/shares/{id}"), &admin, None).await;
    assert_eq!(status, 404, "the link went with its folder");
}
