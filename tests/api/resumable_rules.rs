//! Resumable uploads (tus 1.0) over raw HTTP: the protocol's edges, ownership, quota
//! reservations, checksums, concurrency, termination and expiry.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::call;
use crate::auth::login;
use crate::files::{PASSWORD, admin_token, download, put, sha256_hex, user_token};
use crate::helpers::{Options, spawn_app, spawn_default};
use crate::resumable::{TUS, create, created, fed_body, file_len, head, header, offset, part_file, patch};

fn sha256_base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(ring::digest::digest(&ring::digest::SHA256, data))
}

async fn error_of(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn the_protocol_is_discoverable_and_its_edges_get_clear_answers() {
    let app = spawn_app(Options { toml: "[storage]\nmax_file_size = \"1 MiB\"\n".into(), ..Options::default() });
    let token = admin_token(&app).await;
    let options = app.client.request(reqwest::Method::OPTIONS, app.url("/api/v1/uploads")).send().await.unwrap();
    assert_eq!(options.status(), 204);
    assert_eq!(header(&options, "tus-version"), "1.0.0");
    assert_eq!(header(&options, "tus-resumable"), "1.0.0");
    assert_eq!(header(&options, "tus-max-size"), (1u64 << 20).to_string());
    assert_eq!(header(&options, "tus-checksum-algorithm"), "sha256");
    for extension in ["creation", "creation-with-upload", "termination", "expiration", "checksum"] {
        assert!(header(&options, "tus-extension").split(',').any(|listed| listed == extension), "{extension}");
    }

    let unversioned = app.client.post(app.url("/api/v1/uploads")).bearer_auth(&token).header("Upload-Length", "5");
    let response = unversioned.send().await.unwrap();
    assert_eq!(header(&response, "tus-version"), "1.0.0");
    assert_eq!(error_of(response).await, (StatusCode::PRECONDITION_FAILED, "unsupported_version".into()));
    let deferred = app.client.post(app.url("/api/v1/uploads")).bearer_auth(&token).header(TUS.0, TUS.1);
    let deferred = deferred.header("Upload-Defer-Length", "1").header("Upload-Metadata", "name YQ==");
    assert_eq!(
        error_of(deferred.send().await.unwrap()).await,
        (StatusCode::BAD_REQUEST, "deferred_length_unsupported".into())
    );
    let nameless = create(&app, &token, 5, &[("folder", "x")]).await;
    assert_eq!(error_of(nameless).await, (StatusCode::BAD_REQUEST, "invalid_metadata".into()));
    let bad_name = create(&app, &token, 5, &[("name", "../etc/passwd")]).await;
    assert_eq!(error_of(bad_name).await, (StatusCode::BAD_REQUEST, "invalid_name".into()));
    let too_large = create(&app, &token, (1 << 20) + 1, &[("name", "big")]).await;
    assert_eq!(error_of(too_large).await, (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into()));
    assert_eq!(std::fs::read_dir(app.state_dir.join("uploads")).unwrap().count(), 0, "refused creations left nothing");

    // creation-with-upload: the first chunk comes with the POST.
    let response = app
        .client
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(&token)
        .header(TUS.0, TUS.1)
        .header("Upload-Length", "11")
        .header("Upload-Metadata", crate::resumable::metadata(&[("filename", "hello.txt"), ("filetype", "text/plain")]))
        .header("Content-Type", "application/offset+octet-stream")
        .body("hello ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(header(&response, "upload-offset"), "6");
    assert!(header(&response, "upload-expires").ends_with("GMT"));
    let location = header(&response, "location");
    assert!(location.starts_with("/api/v1/uploads/"));
    let status = head(&app, &token, &location).await;
    assert_eq!((header(&status, "upload-offset"), header(&status, "upload-length")), ("6".into(), "11".into()));
    assert_eq!(header(&status, "cache-control"), "no-store");
    assert!(header(&status, "upload-metadata").contains("filename aGVsbG8udHh0"));
    assert_eq!(header(&status, "coffer-file-id"), "");
    let wrong_type = app.client.patch(app.url(&location)).bearer_auth(&token).header(TUS.0, TUS.1);
    let wrong_type = wrong_type.header("Upload-Offset", "6").header("Content-Type", "text/plain").body("world");
    assert_eq!(wrong_type.send().await.unwrap().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let past_end = patch(&app, &token, &location, 6).body("world and more");
    assert_eq!(
        error_of(past_end.send().await.unwrap()).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );
    let last = patch(&app, &token, &location, 6).body("world").send().await.unwrap();
    assert_eq!(last.status(), 204);
    assert_eq!(header(&last, "upload-offset"), "11");
    let id = header(&last, "coffer-file-id");
    assert_eq!(download(&app, &token, &id).await.text().await.unwrap(), "hello world");
    assert_eq!(header(&head(&app, &token, &location).await, "coffer-file-id"), id);

    // An empty file is stored at creation.
    let empty = create(&app, &token, 0, &[("name", "empty.txt")]).await;
    assert_eq!(empty.status(), 201);
    let empty_id = header(&empty, "coffer-file-id");
    let (_, file) = call(&app, "GET", &format!("/api/v1/files/{empty_id}"), &token, None).await;
    assert_eq!(file["size"], 0);

    // A whole-file digest given at creation is checked with the last byte.
    let digest = sha256_hex(b"expected");
    let response = create(&app, &token, 5, &[("name", "checked.txt"), ("sha256", &digest)]).await;
    let location = header(&response, "location");
    let wrong = patch(&app, &token, &location, 0).body("other").send().await.unwrap();
    assert_eq!(error_of(wrong).await, (StatusCode::from_u16(460).unwrap(), "digest_mismatch".into()));
    assert_eq!(head(&app, &token, &location).await.status(), 404, "a mismatching upload is removed");

    let spec: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let patch_op = &spec["paths"]["/uploads/{id}"]["patch"];
    assert!(patch_op["requestBody"]["content"]["application/offset+octet-stream"].is_object());
    for status in ["204", "409", "423", "460", "507"] {
        assert!(patch_op["responses"][status].is_object(), "PATCH documents {status}");
    }
    assert!(spec["paths"]["/uploads/{id}"]["head"]["responses"]["200"]["headers"]["UPLOAD-OFFSET"].is_object());
    assert!(spec["paths"]["/uploads"]["options"]["responses"]["204"]["headers"]["TUS-EXTENSION"].is_object());
}

#[tokio::test]
async fn a_chunk_with_a_wrong_checksum_gets_460_and_is_not_appended() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let location = created(&app, &token, 10, "sum.txt").await;
    let good =
        patch(&app, &token, &location, 0).header("Upload-Checksum", format!("sha256 {}", sha256_base64(b"01234")));
    assert_eq!(good.body("01234").send().await.unwrap().status(), 204);
    let bad =
        patch(&app, &token, &location, 5).header("Upload-Checksum", format!("sha256 {}", sha256_base64(b"56789")));
    let response = bad.body("5678X").send().await.unwrap();
    assert_eq!(error_of(response).await, (StatusCode::from_u16(460).unwrap(), "checksum_mismatch".into()));
    assert_eq!(offset(&app, &token, &location).await, 5, "the bad chunk was not appended");
    let sha1 = patch(&app, &token, &location, 5).header("Upload-Checksum", "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
    assert_eq!(
        error_of(sha1.body("56789").send().await.unwrap()).await,
        (StatusCode::BAD_REQUEST, "unsupported_checksum".into())
    );
    let good =
        patch(&app, &token, &location, 5).header("Upload-Checksum", format!("sha256 {}", sha256_base64(b"56789")));
    let done = good.body("56789").send().await.unwrap();
    assert_eq!(done.status(), 204);
    let id = header(&done, "coffer-file-id");
    assert_eq!(download(&app, &token, &id).await.text().await.unwrap(), "0123456789");
}

#[tokio::test]
async fn an_offset_mismatch_and_a_concurrent_patch_are_refused_and_change_nothing() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let location = created(&app, &token, data.len() as u64, "busy.bin").await;
    let ahead = patch(&app, &token, &location, 7).body(data[7..20].to_vec()).send().await.unwrap();
    assert_eq!(error_of(ahead).await, (StatusCode::CONFLICT, "offset_mismatch".into()));

    // A slow PATCH holds the upload; a second one meanwhile is refused.
    let (feed, body) = fed_body();
    let first = tokio::spawn(patch(&app, &token, &location, 0).body(body).send());
    feed.send(Ok(data[..100_000].to_vec())).await.unwrap();
    let part = part_file(&app, &location);
    assert!(crate::helpers::eventually(|| file_len(&part) == 100_000).await, "the first PATCH is writing");
    let second = patch(&app, &token, &location, 0).body(data[..50_000].to_vec()).send().await.unwrap();
    assert_eq!(error_of(second).await, (StatusCode::LOCKED, "upload_locked".into()));
    assert_eq!(offset(&app, &token, &location).await, 0, "nothing acknowledged yet");
    feed.send(Ok(data[100_000..150_000].to_vec())).await.unwrap();
    drop(feed);
    let first = first.await.unwrap().unwrap();
    assert_eq!((first.status(), header(&first, "upload-offset")), (StatusCode::NO_CONTENT, "150000".into()));
    let stale = patch(&app, &token, &location, 100_000).body(data[100_000..].to_vec()).send().await.unwrap();
    assert_eq!(error_of(stale).await, (StatusCode::CONFLICT, "offset_mismatch".into()));
    let last = patch(&app, &token, &location, 150_000).body(data[150_000..].to_vec()).send().await.unwrap();
    let id = header(&last, "coffer-file-id");
    let stored = download(&app, &token, &id).await.bytes().await.unwrap();
    assert_eq!(sha256_hex(&stored), sha256_hex(&data), "nothing from the refused requests got in");
}

#[tokio::test]
async fn another_users_upload_is_not_found() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let (alice, _) = user_token(&app, &admin, "alice").await;
    let (bob, _) = user_token(&app, &admin, "bob").await;
    let location = created(&app, &alice, 10, "mine.txt").await;
    assert_eq!(head(&app, &bob, &location).await.status(), 404);
    let (status, code) = error_of(patch(&app, &bob, &location, 0).body("0123456789").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"));
    let delete = app.client.delete(app.url(&location)).bearer_auth(&bob).header(TUS.0, TUS.1).send().await.unwrap();
    assert_eq!(delete.status(), 404);
    assert_eq!(head(&app, &admin, &location).await.status(), 404, "not even an admin's");
    let odd = head(&app, &alice, "/api/v1/uploads/..%2F..%2Fcoffer.db").await;
    assert_eq!(odd.status(), 404);
    assert_eq!(patch(&app, &alice, &location, 0).body("0123456789").send().await.unwrap().status(), 204);
}

#[tokio::test]
async fn quota_is_reserved_at_creation_so_twenty_parallel_creations_cannot_overrun_it() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let (carol, carol_id) = user_token(&app, &admin, "carol").await;
    let path = format!("/api/v1/users/{carol_id}");
    let (status, _) = call(&app, "PATCH", &path, &admin, Some(json!({"quota_bytes": 10_000_000}))).await;
    assert_eq!(status, 200);
    let creations = (0..20).map(|index| {
        let (app, carol) = (&app, carol.clone());
        async move { create(app, &carol, 1_000_000, &[("name", &format!("part{index}.bin"))]).await }
    });
    let responses = futures_util::future::join_all(creations).await;
    let mut locations = Vec::new();
    let mut refused = 0;
    for response in responses {
        match response.status() {
            StatusCode::CREATED => locations.push(header(&response, "location")),
            status => {
                let body = response.text().await.unwrap();
                assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
                assert!(body.contains("quota_exceeded"), "{body}");
                refused += 1;
            }
        }
    }
    assert_eq!((locations.len(), refused), (10, 10), "exactly the quota was reserved");
    let (status, body) = put(&app, &carol, "name=plain.txt", b"x".to_vec()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::INSUFFICIENT_STORAGE, Some("quota_exceeded")));

    // Terminating one gives its reservation back.
    let delete = app.client.delete(app.url(&locations[0])).bearer_auth(&carol).header(TUS.0, TUS.1);
    assert_eq!(delete.send().await.unwrap().status(), 204);
    assert_eq!(head(&app, &carol, &locations[0]).await.status(), 404);
    assert!(!part_file(&app, &locations[0]).exists(), "termination removed the stored bytes");
    let (status, _) = put(&app, &carol, "name=plain.txt", vec![1u8; 1_000_000]).await;
    assert_eq!(status, 201);
    // A finished upload's reservation becomes its file's size, not both.
    let location = &locations[1];
    let done = patch(&app, &carol, location, 0).body(vec![2u8; 1_000_000]).send().await.unwrap();
    assert_eq!(done.status(), 204);
    let (status, _) = put(&app, &carol, "name=one-more.txt", b"x".to_vec()).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "the quota is exactly used");
}

#[tokio::test]
async fn expired_uploads_are_removed_with_their_bytes_and_reservation() {
    let app = spawn_app(Options {
        toml: "[storage]\ngc_interval = \"1s\"\n[uploads]\nresumable_expiry = \"1h\"\n".into(),
        ..Options::default()
    });
    let admin = admin_token(&app).await;
    let (dave, dave_id) = user_token(&app, &admin, "dave").await;
    call(&app, "PATCH", &format!("/api/v1/users/{dave_id}"), &admin, Some(json!({"quota_bytes": 100_000}))).await;
    let location = created(&app, &dave, 100_000, "stale.bin").await;
    assert_eq!(patch(&app, &dave, &location, 0).body(vec![3u8; 40_000]).send().await.unwrap().status(), 204);
    let (status, _) = put(&app, &dave, "name=small.txt", b"x".to_vec()).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "the reservation holds");

    // An account deleted with an upload in progress: its part file goes too, within the hour.
    let (erin, erin_id) = user_token(&app, &admin, "erin").await;
    let erin_upload = created(&app, &erin, 1000, "gone.bin").await;
    assert_eq!(patch(&app, &erin, &erin_upload, 0).body(vec![4u8; 500]).send().await.unwrap().status(), 204);
    let (status, _) = call(&app, "DELETE", &format!("/api/v1/users/{erin_id}"), &admin, None).await;
    assert_eq!(status, 204);
    let erin_part = part_file(&app, &erin_upload);
    assert!(erin_part.exists(), "a fresh part file is left alone");

    // Access tokens live 15 minutes: sign in again after each jump.
    let sign_in = || async { login(&app, "dave", PASSWORD).await.1["access_token"].as_str().unwrap().to_owned() };
    app.advance_clock(30 * 60);
    let dave = sign_in().await;
    assert_eq!(offset(&app, &dave, &location).await, 40_000, "not expired before its time");
    app.advance_clock(31 * 60);
    let dave = sign_in().await;
    let part = part_file(&app, &location);
    assert!(crate::helpers::eventually(|| !part.exists()).await, "the expired upload's bytes were removed");
    assert_eq!(head(&app, &dave, &location).await.status(), 404);
    let (status, _) = put(&app, &dave, "name=small.txt", b"x".to_vec()).await;
    assert_eq!(status, 201, "the reservation was released");
    assert!(crate::helpers::eventually(|| !erin_part.exists()).await, "the deleted account's part file was removed");
}
