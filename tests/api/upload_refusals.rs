//! Refused uploads: what the server reads of a body it will not store, and that the client
//! gets the answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

use crate::files::{admin_token, put};
use crate::helpers::{TestApp, spawn_default};

const CHUNK: usize = 64 << 10;

/// Sends `chunks` chunks of 64 KiB announced in `Content-Length` to a taken name; returns the
/// answer and how many bytes the client was asked for.
async fn upload_announced(
    app: &TestApp,
    client: &reqwest::Client,
    token: &str,
    chunks: usize,
) -> (StatusCode, Value, usize) {
    let offered = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&offered);
    let body = futures_util::stream::iter(0..chunks).map(move |_| {
        counter.fetch_add(CHUNK, Ordering::SeqCst);
        Ok::<_, std::io::Error>(vec![3u8; CHUNK])
    });
    let response = client
        .put(app.url("/api/v1/files/upload?name=taken"))
        .bearer_auth(token)
        .header("content-length", (chunks * CHUNK).to_string())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("the client got an answer");
    let status = response.status();
    let answer = response.json().await.unwrap_or(Value::Null);
    (status, answer, offered.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_refused_upload_with_a_small_rest_is_read_to_its_end_so_the_client_sees_the_answer() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    assert_eq!(put(&app, &token, "name=taken", b"first".to_vec()).await.0, 201);
    // 6 MiB: more than the HTTP/2 window, so the client could not have sent it all unread.
    let chunks = 96;
    for (protocol, client) in [("HTTP/2", app.client.clone()), ("HTTP/1.1", app.http1_client())] {
        let (status, answer, offered) = upload_announced(&app, &client, &token, chunks).await;
        assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("name_taken")), "{protocol}");
        assert_eq!(offered, chunks * CHUNK, "{protocol}: the rest of the body was not read");
        let (status, _, offered) = upload_announced(&app, &client, "not-a-token", chunks).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{protocol}");
        assert_eq!(offered, chunks * CHUNK, "{protocol}: the rest of the body was not read");
    }
}

#[tokio::test]
async fn a_refused_upload_with_a_large_rest_is_answered_without_reading_it() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    assert_eq!(put(&app, &token, "name=taken", b"first".to_vec()).await.0, 201);
    // 40 MiB announced: more than the server reads for a refusal (16 MiB).
    let chunks = 640;
    let (status, answer, offered) = upload_announced(&app, &app.client, &token, chunks).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("name_taken")));
    assert!(offered <= (2 << 20) + (256 << 10), "{offered} bytes were taken for a refused upload");
}
