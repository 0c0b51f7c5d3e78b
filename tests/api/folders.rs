//! Folders: made empty, renamed and moved with their contents in one transaction, deleted
//! with their files only when asked to.

use serde_json::{Value, json};

use crate::accounts::call;
use crate::auth::db;
use crate::files::{admin_token, put, user_token};
use crate::helpers::{TestApp, spawn_default};

async fn listing(app: &TestApp, token: &str, folder: &str) -> Value {
    let (status, page) = call(app, "GET", &format!("/api/v1/files?folder={folder}"), token, None).await;
    assert_eq!(status, 200, "{page}");
    page
}

fn names(page: &Value) -> Vec<String> {
    page["files"].as_array().unwrap().iter().map(|file| file["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn an_empty_folder_exists_until_deleted_and_shows_first_among_its_siblings() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let (status, made) = call(&app, "POST", "/api/v1/folders", &token, Some(json!({"path": "/projects/2026/"}))).await;
    assert_eq!((status.as_u16(), made["path"].as_str()), (201, Some("projects/2026")));
    assert_eq!(listing(&app, &token, "").await["folders"], json!(["projects"]));
    assert_eq!(listing(&app, &token, "projects").await["folders"], json!(["2026"]));
    let (status, again) = call(&app, "POST", "/api/v1/folders", &token, Some(json!({"path": "projects/2026"}))).await;
    assert_eq!((status.as_u16(), again["error"].as_str()), (409, Some("folder_exists")));
    let (status, bad) = call(&app, "POST", "/api/v1/folders", &token, Some(json!({"path": "a/../b"}))).await;
    assert_eq!((status.as_u16(), bad["error"].as_str()), (400, Some("invalid_name")));
    let (status, _) = call(&app, "POST", "/api/v1/folders", &token, Some(json!({"path": ""}))).await;
    assert_eq!(status, 400);

    // Another user sees none of it and can make the same path.
    let (other, _) = user_token(&app, &token, "bob").await;
    assert_eq!(listing(&app, &other, "").await["folders"], json!([]));
    assert_eq!(call(&app, "POST", "/api/v1/folders", &other, Some(json!({"path": "projects"}))).await.0, 201);

    let (status, gone) = call(&app, "DELETE", "/api/v1/folders?path=projects", &token, None).await;
    assert_eq!((status.as_u16(), gone["files_deleted"].as_u64()), (200, Some(0)), "{gone}");
    assert_eq!(listing(&app, &token, "").await["folders"], json!([]));
    let (status, _) = call(&app, "DELETE", "/api/v1/folders?path=projects", &token, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn moving_a_folder_moves_everything_in_it_keeping_ids_and_refuses_taken_targets() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let (_, top) = put(&app, &token, "folder=a&name=top.txt", b"top".to_vec()).await;
    let (_, deep) = put(&app, &token, "folder=a/b&name=deep.txt", b"deep".to_vec()).await;
    put(&app, &token, "folder=ab&name=sibling.txt", b"not inside a".to_vec()).await;
    call(&app, "POST", "/api/v1/folders", &token, Some(json!({"path": "a/empty"}))).await;
    call(&app, "POST", "/api/v1/folders", &token, Some(json!({"path": "taken"}))).await;

    for (to, status, code) in [("taken", 409, "folder_exists"), ("ab", 409, "folder_exists"), ("a/b/c", 400, "invalid")]
    {
        let (got, body) =
            call(&app, "POST", "/api/v1/folders/move", &token, Some(json!({"from": "a", "to": to}))).await;
        assert_eq!((got.as_u16(), body["error"].as_str()), (status, Some(code)), "to {to}");
    }
    let (status, _) =
        call(&app, "POST", "/api/v1/folders/move", &token, Some(json!({"from": "nope", "to": "x"}))).await;
    assert_eq!(status, 404);

    let (status, moved) =
        call(&app, "POST", "/api/v1/folders/move", &token, Some(json!({"from": "a", "to": "archive/old"}))).await;
    assert_eq!((status.as_u16(), moved["files_moved"].as_u64()), (200, Some(2)), "{moved}");
    assert_eq!(listing(&app, &token, "").await["folders"], json!(["ab", "archive", "taken"]));
    assert_eq!(listing(&app, &token, "archive/old").await["folders"], json!(["b", "empty"]));
    assert_eq!(names(&listing(&app, &token, "archive/old/b").await), ["deep.txt"]);
    assert_eq!(names(&listing(&app, &token, "ab").await), ["sibling.txt"], "a prefix that is not a parent stays");
    for (file, folder) in [(&top, "archive/old"), (&deep, "archive/old/b")] {
        let (_, now) =
            call(&app, "GET", &format!("/api/v1/files/{}", file["id"].as_str().unwrap()), &token, None).await;
        assert_eq!(now["folder"], folder, "same file, same id");
    }
}

#[tokio::test]
async fn deleting_a_folder_with_files_needs_recursive_and_takes_their_shares_along() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let (_, file) = put(&app, &token, "folder=docs/inner&name=x.txt", b"x".to_vec()).await;
    put(&app, &token, "folder=docs&name=y.txt", b"y".to_vec()).await;
    put(&app, &token, "name=keep.txt", b"keep".to_vec()).await;
    let (status, share) =
        call(&app, "POST", "/api/v1/shares", &token, Some(json!({"file_id": file["id"], "expires_in": 3600}))).await;
    assert_eq!(status, 201, "{share}");

    let (status, refused) = call(&app, "DELETE", "/api/v1/folders?path=docs", &token, None).await;
    assert_eq!((status.as_u16(), refused["error"].as_str()), (409, Some("folder_not_empty")));
    assert_eq!(names(&listing(&app, &token, "docs").await), ["y.txt"], "nothing deleted");

    let (status, gone) = call(&app, "DELETE", "/api/v1/folders?path=docs&recursive=true", &token, None).await;
    assert_eq!((status.as_u16(), gone["files_deleted"].as_u64()), (200, Some(2)));
    assert_eq!(names(&listing(&app, &token, "").await), ["keep.txt"]);
    assert_eq!(listing(&app, &token, "").await["folders"], json!([]));
    let shares: i64 = db(&app).query_row("SELECT count(*) FROM shares", [], |row| row.get(0)).unwrap();
    assert_eq!(shares, 0, "the share link of a deleted file is gone");
    let link = app.client.get(share["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(link.status(), 404);
}

#[tokio::test]
async fn folder_operations_are_in_the_openapi_document_and_refused_to_read_only_tokens() {
    let app = spawn_default();
    let spec: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    assert!(spec["paths"]["/folders"]["post"].is_object());
    assert!(spec["paths"]["/folders"]["delete"].is_object());
    assert!(spec["paths"]["/folders/move"]["post"].is_object());
    assert!(spec["components"]["securitySchemes"]["SessionCookie"].is_object());
    let token = admin_token(&app).await;
    let (_, created) =
        call(&app, "POST", "/api/v1/me/tokens", &token, Some(json!({"name": "ro", "scope": "read-only"}))).await;
    let read_only = created["token"].as_str().unwrap();
    assert_eq!(call(&app, "POST", "/api/v1/folders", read_only, Some(json!({"path": "x"}))).await.0, 403);
}
