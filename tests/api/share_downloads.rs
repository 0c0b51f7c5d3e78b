//! Share downloads cannot be multiplied: a resume continues a counted download and fetches
//! nothing twice, a missing blob uses up no download, and page views are counted in batches.

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

use crate::accounts::call;
use crate::files::{admin_token, sha256_hex};
use crate::helpers::spawn_default;
use crate::share_links::{cookies, downloads, fetch, json_error, wait_for_views};
use crate::shares::{audit_of, share, upload};

#[tokio::test]
async fn a_resume_cookie_cannot_fetch_a_second_copy_whoever_holds_it() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let data: Vec<u8> = (0..(2u32 << 20)).map(|index| (index % 253) as u8).collect();
    let file = upload(&app, &admin, "once.bin", data.clone()).await;
    let made = share(&app, &admin, &file, json!({"max_downloads": 1})).await;
    let (id, link) = (made["id"].as_str().unwrap(), format!("/s/{}/download", made["token"].as_str().unwrap()));

    let first = fetch(&app, "GET", &link, &[]).await;
    assert_eq!(first.status(), 200);
    let cookie = cookies(first.headers());
    assert!(cookie.contains("coffer_resume_"), "{cookie}");
    assert_eq!(first.bytes().await.unwrap().as_ref(), data.as_slice());

    // The whole file again "as a resume", by the downloader or by anyone it forwards the
    // cookie to: a new download, and the limit is reached.
    for range in ["bytes=0-", "bytes=1-", "bytes=0-1048575"] {
        let again =
            fetch(&app, "GET", &link, &[("range", range), ("cookie", &cookie), ("accept", "application/json")]).await;
        assert_eq!(json_error(again).await, (StatusCode::GONE, "share_exhausted".into()), "{range}");
    }
    assert_eq!(downloads(&app, &admin, id).await, 1);
}

#[tokio::test]
async fn an_interrupted_download_resumes_where_it_stopped_without_counting_again() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let data: Vec<u8> = (0..(64u32 << 20)).map(|index| (index.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let file = upload(&app, &admin, "big.bin", data.clone()).await;
    let made = share(&app, &admin, &file, json!({"max_downloads": 1})).await;
    let (id, link) = (made["id"].as_str().unwrap(), format!("/s/{}/download", made["token"].as_str().unwrap()));

    // Read about 1 MiB, then drop the connection's stream, as a lost network would.
    let first = fetch(&app, "GET", &link, &[]).await;
    let cookie = cookies(first.headers());
    let mut received = Vec::new();
    let mut body = first.bytes_stream();
    while received.len() < (1 << 20) {
        received.extend_from_slice(&body.next().await.unwrap().unwrap());
    }
    drop(body);
    let range = format!("bytes={}-", received.len());
    let rest = fetch(&app, "GET", &link, &[("range", &range), ("cookie", &cookie)]).await;
    assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
    received.extend_from_slice(&rest.bytes().await.unwrap());
    assert_eq!(received.len(), data.len());
    assert_eq!(sha256_hex(&received), sha256_hex(&data), "the resumed download is the file");
    assert_eq!(downloads(&app, &admin, id).await, 1, "a resume is not a new download");
    // Finished: nothing is left to continue, so even the tail again would count (and fails).
    let tail = fetch(&app, "GET", &link, &[("range", "bytes=67108000-"), ("cookie", &cookie)]).await;
    assert_eq!(tail.status(), StatusCode::GONE);
}

#[tokio::test]
async fn a_missing_blob_uses_up_no_download() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let data = b"precious".to_vec();
    let file = upload(&app, &admin, "precious.txt", data.clone()).await;
    let made = share(&app, &admin, &file, json!({"max_downloads": 1})).await;
    let (id, link) = (made["id"].as_str().unwrap(), format!("/s/{}/download", made["token"].as_str().unwrap()));
    let hash = sha256_hex(&data);
    let blob = app.state_dir.join("blobs").join(&hash[..2]).join(&hash[2..4]).join(&hash);
    let aside = app.state_dir.join("aside");
    std::fs::rename(&blob, &aside).unwrap();
    let failed = fetch(&app, "GET", &link, &[("accept", "application/json")]).await;
    assert!(failed.status().is_server_error(), "{}", failed.status());
    assert_eq!(downloads(&app, &admin, id).await, 0, "the failed attempt was not counted");
    std::fs::rename(&aside, &blob).unwrap();
    let ok = fetch(&app, "GET", &link, &[]).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.bytes().await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test]
async fn a_flood_of_page_views_is_counted_in_a_few_batched_writes() {
    let app = spawn_default();
    let admin = admin_token(&app).await;
    let file = upload(&app, &admin, "popular.txt", b"hi".to_vec()).await;
    let made = share(&app, &admin, &file, json!({})).await;
    let (id, page) = (made["id"].as_str().unwrap(), format!("/s/{}", made["token"].as_str().unwrap()));
    let views = (0..60).map(|_| app.get(&page));
    for response in futures_util::future::join_all(views).await {
        assert_eq!(response.status(), 200);
    }
    wait_for_views(&app, &admin, id, (60, 0)).await;
    let entries = audit_of(&app, &admin, "share_viewed").await;
    let written = entries.iter().filter(|entry| entry["subject"] == id).count();
    assert!((1..=10).contains(&written), "60 views took {written} audit rows");
    let (_, listed) = call(&app, "GET", &format!("/api/v1/shares/{id}"), &admin, None).await;
    assert_eq!((listed["views"].as_i64(), listed["downloads"].as_i64()), (Some(60), Some(0)));
}
