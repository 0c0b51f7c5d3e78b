//! Files under concurrency, interrupted uploads, and one user against another's files.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::call;
use crate::files::{admin_token, download, put, sha256_hex, user_token};
use crate::helpers::{Options, eventually, spawn_app, spawn_default};

#[tokio::test]
async fn parallel_uploads_cannot_overshoot_a_quota() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let (token, id) = user_token(&app, &admin, "quoted").await;
    call(&app, "PATCH", &format!("/api/v1/users/{id}"), &admin, Some(json!({"quota_bytes": 1_000_000}))).await;
    let queries: Vec<String> = (0..20).map(|index| format!("name=part{index}")).collect();
    let uploads = queries.iter().enumerate().map(|(index, query)| put(&app, &token, query, vec![index as u8; 100_000]));
    let results = futures_util::future::join_all(uploads).await;
    let stored = results.iter().filter(|(status, _)| *status == StatusCode::CREATED).count();
    assert!(results.iter().all(|(status, body)| *status == StatusCode::CREATED
        || (*status == StatusCode::INSUFFICIENT_STORAGE && body["error"] == "quota_exceeded")));
    assert_eq!(stored, 10, "exactly the quota's worth is stored");
    let (_, listing) = call(&app, "GET", "/api/v1/files?limit=100", &token, None).await;
    let used: u64 = listing["files"].as_array().unwrap().iter().map(|file| file["size"].as_u64().unwrap()).sum();
    assert!(used <= 1_000_000, "{used}");
}

#[tokio::test]
async fn fifty_parallel_uploads_of_one_name_store_one_file_and_refuse_the_rest_cleanly() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let inputs: Vec<Vec<u8>> = (0..50u8).map(|index| vec![index; 4096]).collect();
    let uploads = inputs.iter().map(|data| put(&app, &token, "name=same.txt", data.clone()));
    let results = futures_util::future::join_all(uploads).await;
    let created: Vec<&Value> =
        results.iter().filter(|(status, _)| *status == StatusCode::CREATED).map(|(_, body)| body).collect();
    assert_eq!(created.len(), 1);
    assert!(results.iter().all(|(status, body)| *status == StatusCode::CREATED
        || (*status == StatusCode::CONFLICT && body["error"] == "name_taken")));
    let stored = download(&app, &token, created[0]["id"].as_str().unwrap()).await.bytes().await.unwrap();
    assert!(
        inputs.iter().any(|input| input.as_slice() == stored.as_ref()),
        "the stored file is byte-identical to one input"
    );

    // With on_conflict=rename every one is kept, each intact.
    let uploads =
        inputs.iter().take(10).map(|data| put(&app, &token, "name=many.txt&on_conflict=rename", data.clone()));
    let renamed = futures_util::future::join_all(uploads).await;
    assert!(renamed.iter().all(|(status, _)| *status == StatusCode::CREATED));
    let mut names: Vec<String> = renamed.iter().map(|(_, body)| body["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 10);
    for (_, body) in &renamed {
        let data = download(&app, &token, body["id"].as_str().unwrap()).await.bytes().await.unwrap();
        assert_eq!(sha256_hex(&data), body["sha256"].as_str().unwrap());
    }
}

#[tokio::test]
async fn replace_gives_the_file_new_contents_without_touching_others_sharing_the_old_blob() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let (_, original) = put(&app, &token, "name=a.txt", b"version one".to_vec()).await;
    let (_, twin) = put(&app, &token, "name=b.txt", b"version one".to_vec()).await;
    assert_eq!(original["sha256"], twin["sha256"], "same contents share a blob");
    let (status, replaced) = put(&app, &token, "name=a.txt&on_conflict=replace", b"version two".to_vec()).await;
    assert_eq!(status, 201);
    assert_eq!(replaced["id"], original["id"]);
    let a = download(&app, &token, original["id"].as_str().unwrap()).await.bytes().await.unwrap();
    let b = download(&app, &token, twin["id"].as_str().unwrap()).await.bytes().await.unwrap();
    assert_eq!((a.as_ref(), b.as_ref()), (&b"version two"[..], &b"version one"[..]));
}

#[tokio::test]
async fn a_client_that_vanishes_mid_upload_leaves_no_temp_file_row_or_quota() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![1u8; 256 << 10]), Ok(vec![2u8; 256 << 10]), Err(std::io::Error::other("client died"))];
    let outcome = app
        .client
        .put(app.url("/api/v1/files/upload?name=partial"))
        .bearer_auth(&token)
        .header("content-length", (4u64 << 20).to_string())
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await;
    assert!(outcome.is_err() || outcome.unwrap().status() != StatusCode::CREATED);
    let line = app
        .logs
        .wait_for(|line| line["message"] == "request" && line["path"] == "/api/v1/files/upload")
        .expect("the abandoned request is logged");
    assert!([400, 499].contains(&line["status"].as_u64().unwrap()), "{line}");
    // After an HTTP/2 reset the writer thread removes the temp file on its own schedule.
    let tmp = app.state_dir.join("tmp");
    assert!(eventually(|| std::fs::read_dir(&tmp).unwrap().count() == 0).await, "a temp file was left");
    let (_, listing) = call(&app, "GET", "/api/v1/files", &token, None).await;
    assert_eq!(listing["files"], json!([]));
}

#[tokio::test]
async fn another_users_file_is_not_found_on_every_route() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let (alice, _) = user_token(&app, &admin, "alice").await;
    let (bob, _) = user_token(&app, &admin, "bob").await;
    let (_, file) = put(&app, &alice, "name=private.txt", b"alice only".to_vec()).await;
    let id = file["id"].as_str().unwrap();
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/api/v1/files/{id}"), None),
        ("GET", format!("/api/v1/files/{id}/content"), None),
        ("HEAD", format!("/api/v1/files/{id}/content"), None),
        ("PATCH", format!("/api/v1/files/{id}"), Some(json!({"name": "mine.txt"}))),
        ("DELETE", format!("/api/v1/files/{id}"), None),
        ("GET", format!("/api/v1/files/{id}/grants"), None),
        ("POST", format!("/api/v1/files/{id}/grants"), Some(json!({"username": "bob"}))),
        ("DELETE", format!("/api/v1/files/{id}/grants/someone"), None),
    ];
    for (method, path, body) in &routes {
        let (status, answer) = call(&app, method, path, &bob, body.clone()).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
        let (missing, _) =
            call(&app, method, &path.replace(id, "0123456789abcdef0123456789abcdef"), &bob, body.clone()).await;
        assert_eq!(missing, 404, "an absent file looks the same");
    }
    let (_, listing) = call(&app, "GET", "/api/v1/files", &bob, None).await;
    assert_eq!(listing["files"], json!([]));
    let still = download(&app, &alice, id).await;
    assert_eq!(still.bytes().await.unwrap().as_ref(), b"alice only", "nothing changed");

    // Admins may read, and that is audited.
    assert_eq!(download(&app, &admin, id).await.status(), 200);
    let (_, audit) = call(&app, "GET", "/api/v1/audit?event=admin_file_read", &admin, None).await;
    assert_eq!(audit["entries"][0]["subject"], id);
    assert_eq!(
        call(&app, "DELETE", &format!("/api/v1/files/{id}"), &admin, None).await.0,
        404,
        "admins read, not delete"
    );
}

#[tokio::test]
async fn grants_let_another_user_read_until_revoked() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let (alice, _) = user_token(&app, &admin, "alice").await;
    let (bob, bob_id) = user_token(&app, &admin, "bob").await;
    let (_, file) = put(&app, &alice, "name=shared.txt", b"for bob".to_vec()).await;
    let id = file["id"].as_str().unwrap();
    let (status, grant) =
        call(&app, "POST", &format!("/api/v1/files/{id}/grants"), &alice, Some(json!({"username": "bob"}))).await;
    assert_eq!(status, 204, "{grant}");
    // The owner can already read it: granting it again is a no-op, not a row.
    let (status, _) =
        call(&app, "POST", &format!("/api/v1/files/{id}/grants"), &alice, Some(json!({"username": "alice"}))).await;
    assert_eq!(status, 204);
    let (_, grants) = call(&app, "GET", &format!("/api/v1/files/{id}/grants"), &alice, None).await;
    assert_eq!(grants.as_array().unwrap().len(), 1, "{grants}");
    assert_eq!(grants[0]["user_id"], bob_id.as_str());
    assert_eq!(download(&app, &bob, id).await.bytes().await.unwrap().as_ref(), b"for bob");
    let (_, shared) = call(&app, "GET", "/api/v1/files?shared_with_me=true", &bob, None).await;
    assert_eq!(shared["files"][0]["id"], id);
    assert_eq!(
        call(&app, "PATCH", &format!("/api/v1/files/{id}"), &bob, Some(json!({"name": "x"}))).await.0,
        404,
        "read only"
    );
    assert_eq!(call(&app, "DELETE", &format!("/api/v1/files/{id}/grants/{bob_id}"), &alice, None).await.0, 204);
    assert_eq!(download(&app, &bob, id).await.status(), 404);
}

#[tokio::test]
async fn files_can_be_renamed_moved_and_deleted_and_names_stay_unique() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let (_, first) = put(&app, &token, "name=one.txt", b"1".to_vec()).await;
    put(&app, &token, "name=two.txt", b"2".to_vec()).await;
    let path = format!("/api/v1/files/{}", first["id"].as_str().unwrap());
    let (status, body) = call(&app, "PATCH", &path, &token, Some(json!({"name": "two.txt"}))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("name_taken")));
    let (status, moved) =
        call(&app, "PATCH", &path, &token, Some(json!({"folder": "archive", "description": "old"}))).await;
    assert_eq!(status, 200);
    assert_eq!(
        (moved["folder"].as_str(), moved["name"].as_str(), moved["description"].as_str()),
        (Some("archive"), Some("one.txt"), Some("old"))
    );
    assert_eq!(call(&app, "PATCH", &path, &token, Some(json!({"name": "../x"}))).await.0, 400);
    // A string field takes a JSON string only, as the API document says: no number turned
    // into a name.
    let (status, body) = call(&app, "PATCH", &path, &token, Some(json!({"folder": 5}))).await;
    assert_eq!(status, 400, "{body}");
    let (_, unchanged) = call(&app, "GET", &path, &token, None).await;
    assert_eq!(unchanged["folder"], "archive");
    assert_eq!(call(&app, "DELETE", &path, &token, None).await.0, 204);
    assert_eq!(call(&app, "GET", &path, &token, None).await.0, 404);
}

#[tokio::test]
async fn listing_pages_stay_correct_while_files_are_added() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    for index in 0..6 {
        put(&app, &token, &format!("name=f{index}"), vec![index]).await;
    }
    let (_, first) = call(&app, "GET", "/api/v1/files?limit=3", &token, None).await;
    // Files added before the cursor's position do not shift the next page.
    put(&app, &token, "name=a-early", b"x".to_vec()).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = call(&app, "GET", &format!("/api/v1/files?limit=3&cursor={cursor}"), &token, None).await;
    let names = |page: &Value| {
        page["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|file| file["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&first), ["f0", "f1", "f2"]);
    assert_eq!(names(&second), ["f3", "f4", "f5"]);
    assert_eq!(call(&app, "GET", "/api/v1/files?cursor=garbage", &token, None).await.0, 400);
}

#[tokio::test]
async fn restart_sweeps_interrupted_uploads_and_unreferenced_blobs() {
    let mut app = spawn_default();
    let token = admin_token(&app).await;
    let (_, kept) = put(&app, &token, "name=kept", b"kept".to_vec()).await;
    let (_, gone) = put(&app, &token, "name=gone", b"gone".to_vec()).await;
    call(&app, "DELETE", &format!("/api/v1/files/{}", gone["id"].as_str().unwrap()), &token, None).await;
    app.terminate();
    assert!(app.wait_exit().await.success());
    std::fs::write(app.state_dir.join("tmp/upload-leftover"), b"half an upload").unwrap();

    let restarted = spawn_app(Options { state_dir: Some(app.state_dir.clone()), ..Options::default() });
    assert_eq!(std::fs::read_dir(restarted.state_dir.join("tmp")).unwrap().count(), 0);
    let blob = |sha: &str| restarted.state_dir.join("blobs").join(&sha[..2]).join(&sha[2..4]).join(sha);
    assert!(blob(kept["sha256"].as_str().unwrap()).exists());
    assert!(!blob(gone["sha256"].as_str().unwrap()).exists(), "the deleted file's blob was collected");
    let token = admin_token(&restarted).await;
    assert_eq!(
        download(&restarted, &token, kept["id"].as_str().unwrap()).await.bytes().await.unwrap().as_ref(),
        b"kept"
    );
}

#[tokio::test]
async fn grants_do_not_reveal_which_accounts_exist_and_guessing_is_limited() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let (alice, _) = user_token(&app, &admin, "alice").await;
    user_token(&app, &admin, "bob").await;
    let (_, file) = put(&app, &alice, "name=secret.txt", b"mine".to_vec()).await;
    let grants = format!("/api/v1/files/{}/grants", file["id"].as_str().unwrap());
    let grant = |token: &str, username: &str| {
        let (token, username) = (token.to_owned(), username.to_owned());
        let (app, grants) = (&app, grants.clone());
        async move { call(app, "POST", &grants, &token, Some(json!({ "username": username }))).await }
    };
    let known = grant(&alice, "bob").await;
    let unknown = grant(&alice, "nobody-here").await;
    assert_eq!((known.0, unknown.0), (StatusCode::NO_CONTENT, StatusCode::NO_CONTENT), "the same answer");
    assert_eq!((known.1, unknown.1), (Value::Null, Value::Null), "and the same (empty) body");

    // Guessing many names runs into a wait, for known and unknown names alike.
    for guess in 0..10 {
        grant(&alice, &format!("guess{guess}")).await;
    }
    let (status, body) = grant(&alice, "bob").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_requests")));

    // Admins may list accounts anyway: they get a straight answer.
    let (_, own) = put(&app, &admin, "name=admin.txt", b"a".to_vec()).await;
    let path = format!("/api/v1/files/{}/grants", own["id"].as_str().unwrap());
    let (status, _) = call(&app, "POST", &path, &admin, Some(json!({"username": "nobody-here"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
