//! The rules every upload path keeps: names that cannot look alike, bounded descriptions and
//! forms, every digest checked, types from names or contents, conditional writes, and nothing
//! stored for a credential that ended during the upload.

use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::accounts::call;
use crate::auth::login;
use crate::files::{PASSWORD, admin_token, put, sha256_hex, user_token};
use crate::helpers::{PATIENCE, TestApp, eventually, spawn_default};

const BOUNDARY: &str = "coffer-test-boundary";

/// A multipart body from (name, filename, headers, contents) parts, in order.
fn form(parts: &[(&str, Option<&str>, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, extra_headers, contents) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let filename = filename.map(|filename| format!("; filename=\"{filename}\"")).unwrap_or_default();
        body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"{filename}\r\n").as_bytes());
        body.extend_from_slice(extra_headers.as_bytes());
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(contents);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn post_form(app: &TestApp, token: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url("/api/v1/files"))
        .bearer_auth(token)
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn listing(app: &TestApp, token: &str) -> Vec<String> {
    let (_, page) = call(app, "GET", "/api/v1/files", token, None).await;
    page["files"].as_array().unwrap().iter().map(|file| file["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn names_that_could_look_alike_are_refused_on_every_path() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    for bad in [
        "bad%FFutf8",
        "zero%E2%80%8Bwidth",
        "%EF%BB%BFbom",
        "line%E2%80%A8sep",
        "%20%20%20",
        "trailing%20",
        "dot.",
        "NUL.txt",
        "com1",
    ] {
        let (status, body) = put(&app, &token, &format!("name={bad}"), b"x".to_vec()).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_name")), "{bad}: {body}");
    }
    let message = put(&app, &token, "name=aux.log", b"x".to_vec()).await.1["message"].as_str().unwrap().to_owned();
    assert!(message.contains("reserved device name on Windows"), "{message}");

    let (status, body) = post_form(&app, &token, form(&[("file", Some("report.pdf "), "", b"x")])).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_name")));
    let (_, file) = put(&app, &token, "name=fine.txt", b"x".to_vec()).await;
    let path = format!("/api/v1/files/{}", file["id"].as_str().unwrap());
    let (status, body) = call(&app, "PATCH", &path, &token, Some(json!({"name": "fine\u{200B}.txt"}))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_name")));
    assert_eq!(listing(&app, &token).await, vec!["fine.txt"]);
}

#[tokio::test]
async fn descriptions_have_one_limit_on_every_path_and_count_against_the_quota() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let long = "d".repeat(4097);
    let (status, body) = put(&app, &admin, &format!("name=a.txt&description={long}"), b"x".to_vec()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_description")));
    // A 200 KiB field in a form is refused, not stored.
    let huge = vec![b'd'; 200 << 10];
    let (status, _) =
        post_form(&app, &admin, form(&[("description", None, "", &huge), ("file", Some("b.txt"), "", b"x")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, file) = put(&app, &admin, "name=c.txt", b"x".to_vec()).await;
    let path = format!("/api/v1/files/{}", file["id"].as_str().unwrap());
    let (status, body) = call(&app, "PATCH", &path, &admin, Some(json!({"description": long}))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_description")));

    // Quota 100 bytes: 90 bytes of contents leave room for 10 bytes of description.
    let (status, carol) = call(
        &app,
        "POST",
        "/api/v1/users",
        &admin,
        Some(json!({"username": "carol", "password": PASSWORD, "quota_bytes": 100})),
    )
    .await;
    assert_eq!(status, 201, "{carol}");
    let carol = login(&app, "carol", PASSWORD).await.1["access_token"].as_str().unwrap().to_owned();
    let (status, body) = put(&app, &carol, &format!("name=n.txt&description={}", "x".repeat(20)), vec![1; 90]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::INSUFFICIENT_STORAGE, Some("quota_exceeded")));
    let (status, stored) = put(&app, &carol, "name=n.txt&description=ten%20bytes", vec![1; 90]).await;
    assert_eq!(status, 201, "{stored}");
    let path = format!("/api/v1/files/{}", stored["id"].as_str().unwrap());
    let (status, body) = call(&app, "PATCH", &path, &carol, Some(json!({"description": "x".repeat(11)}))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::INSUFFICIENT_STORAGE, Some("quota_exceeded")));
}

#[tokio::test]
async fn forms_are_bounded_outside_the_file_and_must_end_with_it() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    // A huge part header: refused without buffering it.
    let junk = format!("X-Junk: {}\r\n", "j".repeat(1 << 20));
    let (status, body) = post_form(&app, &token, form(&[("file", Some("a.txt"), &junk, b"x")])).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("form_too_large")), "{body}");
    // A field after the file, or a second file: nothing is stored.
    let after = form(&[("file", Some("b.txt"), "", b"b"), ("description", None, "", b"late")]);
    let (status, body) = post_form(&app, &token, after).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("last part"), "{body}");
    let second = form(&[("file", Some("c.txt"), "", b"c"), ("file", Some("d.txt"), "", b"d")]);
    assert_eq!(post_form(&app, &token, second).await.0, StatusCode::BAD_REQUEST);
    let twice = form(&[("folder", None, "", b"a"), ("folder", None, "", b"b"), ("file", Some("e.txt"), "", b"e")]);
    assert_eq!(post_form(&app, &token, twice).await.0, StatusCode::BAD_REQUEST);
    assert!(listing(&app, &token).await.is_empty());
    assert!(eventually(|| std::fs::read_dir(app.state_dir.join("tmp")).unwrap().count() == 0).await);
    // A proper form still works.
    let good = form(&[("description", None, "", b"fine"), ("file", Some("ok.txt"), "", b"ok")]);
    let (status, body) = post_form(&app, &token, good).await;
    assert_eq!((status, body["description"].as_str()), (StatusCode::CREATED, Some("fine")));
}

fn digest_header(algorithm: &str, digest: &[u8]) -> String {
    format!("{algorithm}=:{}:", base64::engine::general_purpose::STANDARD.encode(digest))
}

async fn put_with(
    app: &TestApp,
    token: &str,
    query: &str,
    data: &[u8],
    headers: &[(&str, String)],
) -> (StatusCode, Value) {
    let mut request =
        app.client.put(app.url(&format!("/api/v1/files/upload?{query}"))).bearer_auth(token).body(data.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_supported_digest_is_checked_and_unknown_only_digests_are_refused() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let data = b"check me";
    let sha512 = ring::digest::digest(&ring::digest::SHA512, data);
    let wrong512 = ring::digest::digest(&ring::digest::SHA512, b"something else");
    let md5ish = digest_header("md5", &[0u8; 16]);
    let (status, body) = put_with(&app, &token, "name=a", data, &[("content-digest", md5ish.clone())]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_digest")));
    let wrong = digest_header("sha-512", wrong512.as_ref());
    let (status, body) = put_with(&app, &token, "name=b", data, &[("content-digest", wrong)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("digest_mismatch")));
    let both = format!("{md5ish}, {}", digest_header("sha-512", sha512.as_ref()));
    let (status, body) = put_with(&app, &token, "name=c", data, &[("content-digest", both)]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(listing(&app, &token).await, vec!["c"]);
}

#[tokio::test]
async fn the_media_type_comes_from_the_name_or_the_contents_not_the_client() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    // What curl --data-binary sends by default.
    let form_type = [("content-type", "application/x-www-form-urlencoded".to_owned())];
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00";
    for (name, data, expected) in [
        ("notes.txt", &b"hello"[..], "text/plain"),
        ("report.pdf", &b"%PDF-1.7"[..], "application/pdf"),
        ("picture", &png[..], "image/png"),
        ("README", &b"plain words"[..], "text/plain"),
        ("blob", &b"\x00\x01\x02\xff"[..], "application/octet-stream"),
    ] {
        let (status, body) = put_with(&app, &token, &format!("name={name}"), data, &form_type).await;
        assert_eq!((status, body["content_type"].as_str()), (StatusCode::CREATED, Some(expected)), "{name}");
    }
}

#[tokio::test]
async fn conditional_writes_change_nothing_when_the_condition_fails() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let (_, first) = put(&app, &token, "name=doc.txt", b"version 1".to_vec()).await;
    let id = first["id"].as_str().unwrap();
    let stale = format!("\"{}\"", sha256_hex(b"version 0"));
    let current = format!("\"{}\"", sha256_hex(b"version 1"));
    let replace = "name=doc.txt&on_conflict=replace";
    let (status, body) = put_with(&app, &token, replace, b"version 2", &[("if-match", stale.clone())]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::PRECONDITION_FAILED, Some("precondition_failed")));
    let (status, body) = put_with(&app, &token, "name=doc.txt", b"x", &[("if-none-match", "*".into())]).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    let (status, body) = put_with(&app, &token, "name=doc.txt", b"x", &[("if-match", current.clone())]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid")), "If-Match needs replace");
    let (status, replaced) = put_with(&app, &token, replace, b"version 2", &[("if-match", current.clone())]).await;
    assert_eq!((status, replaced["id"].as_str()), (StatusCode::CREATED, Some(id)));

    let path = format!("/api/v1/files/{id}");
    let patch = |tag: String| {
        let (app, token, path) = (&app, token.clone(), path.clone());
        async move {
            let response = app
                .client
                .patch(app.url(&path))
                .bearer_auth(&token)
                .header("if-match", tag)
                .json(&json!({"name": "renamed.txt"}))
                .send()
                .await
                .unwrap();
            response.status()
        }
    };
    assert_eq!(patch(current.clone()).await, StatusCode::PRECONDITION_FAILED, "the contents changed since");
    let now = format!("\"{}\"", sha256_hex(b"version 2"));
    assert_eq!(patch(now.clone()).await, StatusCode::OK);
    let delete = |tag: String| {
        let (app, token, path) = (&app, token.clone(), path.clone());
        async move {
            app.client.delete(app.url(&path)).bearer_auth(&token).header("if-match", tag).send().await.unwrap().status()
        }
    };
    assert_eq!(delete(current).await, StatusCode::PRECONDITION_FAILED);
    assert_eq!(listing(&app, &token).await, vec!["renamed.txt"]);
    assert_eq!(delete(now).await, StatusCode::NO_CONTENT);
}

/// Starts an upload of two chunks, runs `meanwhile` once the first has reached the server,
/// then sends the second; returns the answer.
async fn upload_across<F: std::future::Future<Output = ()>>(
    app: &TestApp,
    token: &str,
    meanwhile: F,
) -> (StatusCode, Value) {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    let request = app
        .client
        .put(app.url("/api/v1/files/upload?name=midway.bin"))
        .bearer_auth(token)
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let answer = tokio::spawn(request);
    sender.send(Ok(vec![1u8; 64 << 10])).await.unwrap();
    let tmp = app.state_dir.join("tmp");
    assert!(eventually(|| std::fs::read_dir(&tmp).unwrap().count() > 0).await, "the upload reached the server");
    meanwhile.await;
    sender.send(Ok(vec![2u8; 64 << 10])).await.unwrap();
    drop(sender);
    let response = tokio::time::timeout(PATIENCE, answer).await.unwrap().unwrap().unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_upload_whose_session_or_account_ends_midway_stores_nothing() {
    let app = spawn_default();
    let admin = admin_token(&app).await;

    let (dave, dave_id) = user_token(&app, &admin, "dave").await;
    let user_path = format!("/api/v1/users/{dave_id}");
    let disable = call(&app, "PATCH", &user_path, &admin, Some(json!({"disabled": true})));
    let (status, body) = upload_across(&app, &dave, async {
        assert_eq!(disable.await.0, 200);
    })
    .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("session_ended")), "{body}");
    call(&app, "PATCH", &user_path, &admin, Some(json!({"disabled": false}))).await;
    let dave = login(&app, "dave", PASSWORD).await.1["access_token"].as_str().unwrap().to_owned();
    assert!(listing(&app, &dave).await.is_empty(), "disabled midway: nothing stored");

    let signed_out = dave.clone();
    let logout = async {
        let response = app.client.post(app.url("/api/v1/auth/logout")).bearer_auth(&signed_out).send().await.unwrap();
        assert_eq!(response.status(), 204);
    };
    let (status, _) = upload_across(&app, &dave, logout).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "signed out midway");
    let dave = login(&app, "dave", PASSWORD).await.1["access_token"].as_str().unwrap().to_owned();
    assert!(listing(&app, &dave).await.is_empty(), "signed out midway: nothing stored");

    let (erin, erin_id) = user_token(&app, &admin, "erin").await;
    let erin_path = format!("/api/v1/users/{erin_id}");
    let delete = call(&app, "DELETE", &erin_path, &admin, None);
    let (status, body) = upload_across(&app, &erin, async {
        assert_eq!(delete.await.0, 204);
    })
    .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("session_ended")), "{body}");
    assert!(!app.logs.text().contains("\"status\":500"), "no upload ended in a 500");
}

/// Sends `head` raw over HTTP/1.1 and returns the status line and the body.
async fn raw_request(app: &TestApp, head: &str) -> (String, String) {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from_pem_file(app.self_signed_cert()).unwrap()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(coffer::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap();
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test]
async fn requests_hyper_refuses_get_the_json_error_shape_and_an_impossible_length_is_413() {
    let app = spawn_default();
    let (status, body) = raw_request(
        &app,
        "PUT /api/v1/files/upload?name=x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 18446744073709551615\r\n\r\n",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "payload_too_large");
    let (status, body) =
        raw_request(&app, "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n").await;
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "bad_request");
    let huge = format!("GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n", "b".repeat(20 << 10));
    let (status, body) = raw_request(&app, &huge).await;
    assert!(status.starts_with("HTTP/1.1 431"), "{status}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "headers_too_large");
}
