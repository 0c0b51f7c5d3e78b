//! Refused uploads: what the server reads of a body it will not store, and that the client
//! gets the answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

use crate::files::{admin_token, put};
use crate::helpers::{Options, TestApp, spawn_app, spawn_default};

const CHUNK: usize = 64 << 10;

/// What came of offering an upload chunk by chunk.
pub struct Offered {
    pub status: StatusCode,
    pub version: reqwest::Version,
    pub answer: Value,
    /// Bytes the client was asked for before the answer came.
    pub taken: usize,
}

/// Offers `chunks` chunks of 64 KiB as `name`, announced in `Content-Length` when `announce`.
pub async fn offer_upload(
    app: &TestApp,
    client: &reqwest::Client,
    token: &str,
    name: &str,
    chunks: usize,
    announce: bool,
) -> Offered {
    let taken = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&taken);
    let body = futures_util::stream::iter(0..chunks).map(move |_| {
        counter.fetch_add(CHUNK, Ordering::SeqCst);
        Ok::<_, std::io::Error>(vec![3u8; CHUNK])
    });
    let mut request = client.put(app.url(&format!("/api/v1/files/upload?name={name}"))).bearer_auth(token);
    if announce {
        request = request.header("content-length", (chunks * CHUNK).to_string());
    }
    let response = request.body(reqwest::Body::wrap_stream(body)).send().await.expect("the client got an answer");
    let (status, version) = (response.status(), response.version());
    let answer = response.json().await.unwrap_or(Value::Null);
    Offered { status, version, answer, taken: taken.load(Ordering::SeqCst) }
}

#[tokio::test]
async fn a_refused_upload_with_a_small_rest_is_read_to_its_end_so_the_client_sees_the_answer() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    assert_eq!(put(&app, &token, "name=taken", b"first".to_vec()).await.0, 201);
    // 6 MiB: more than the HTTP/2 window, so the client could not have sent it all unread.
    let chunks = 96;
    for (protocol, client) in [("HTTP/2", app.client.clone()), ("HTTP/1.1", app.http1_client())] {
        let Offered { status, answer, taken: offered, .. } =
            offer_upload(&app, &client, &token, "taken", chunks, true).await;
        assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("name_taken")), "{protocol}");
        assert_eq!(offered, chunks * CHUNK, "{protocol}: the rest of the body was not read");
        let Offered { status, taken: offered, .. } =
            offer_upload(&app, &client, "not-a-token", "taken", chunks, true).await;
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
    let Offered { status, answer, taken: offered, .. } =
        offer_upload(&app, &app.client, &token, "taken", chunks, true).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("name_taken")));
    assert!(offered <= (2 << 20) + (256 << 10), "{offered} bytes were taken for a refused upload");
}

#[tokio::test]
async fn the_http2_window_bounds_what_a_client_sends_ahead_of_a_refusal() {
    // An unannounced upload over the limit with a 256 KiB window instead of the default
    // 2 MiB: the client can get only the window (and a chunk it holds) past what the server read.
    let toml = "[server]\nhttp2_window = \"256 KiB\"\n[storage]\nmax_file_size = \"1 MiB\"\n";
    let app = spawn_app(Options { toml: toml.into(), ..Options::default() });
    let token = admin_token(&app).await;
    let offered = offer_upload(&app, &app.client, &token, "streamed", 256, false).await;
    assert_eq!(offered.version, reqwest::Version::HTTP_2);
    assert_eq!(offered.status, 413);
    let taken = offered.taken;
    assert!(taken <= (1 << 20) + (256 << 10) + (256 << 10), "{taken} bytes were read with a 256 KiB window");
}
