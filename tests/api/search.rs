//! Search: nobody sees what they may not read, changes show at once, words are found the way
//! people write them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::call;
use crate::files::{admin_token, user_token};
use crate::helpers::{Options, PATIENCE, TestApp, spawn_app};

/// The debug-build test hooks: a file whose existence holds the indexer back, and one that
/// makes the server abort right after an index commit.
pub struct Hooks {
    dir: tempfile::TempDir,
}

impl Hooks {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn pause_file(&self) -> PathBuf {
        self.dir.path().join("pause")
    }

    pub fn crash_file(&self) -> PathBuf {
        self.dir.path().join("crash")
    }

    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("TESTING_COFFER_SEARCH_PAUSE_FILE".into(), self.pause_file().display().to_string()),
            ("TESTING_COFFER_SEARCH_CRASH_FILE".into(), self.crash_file().display().to_string()),
        ]
    }

    pub fn pause(&self) {
        std::fs::write(self.pause_file(), b"").unwrap();
    }

    pub fn resume(&self) {
        std::fs::remove_file(self.pause_file()).unwrap();
    }
}

pub fn spawn_with(hooks: &Hooks, toml: &str) -> TestApp {
    spawn_app(Options { env: hooks.env(), toml: toml.into(), ..Options::default() })
}

/// Uploads `data` as `name` (query values encoded by the client).
pub async fn upload(app: &TestApp, token: &str, params: &[(&str, &str)], data: impl Into<Vec<u8>>) -> Value {
    let response = app
        .client
        .put(app.url("/api/v1/files/upload"))
        .query(params)
        .bearer_auth(token)
        .body(data.into())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

/// (status, parsed body, raw body text) of a search.
pub async fn search(app: &TestApp, token: &str, params: &[(&str, &str)]) -> (StatusCode, Value, String) {
    let response = app.client.get(app.url("/api/v1/search")).query(params).bearer_auth(token).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), text)
}

pub fn ids(body: &Value) -> Vec<String> {
    body["results"].as_array().map_or_else(Vec::new, |results| {
        results.iter().map(|result| result["file"]["id"].as_str().unwrap().to_owned()).collect()
    })
}

pub fn id(file: &Value) -> String {
    file["id"].as_str().unwrap().to_owned()
}

/// Whether searching `q` returns `file` within `within`, asking every 20 ms.
pub async fn found_within(app: &TestApp, token: &str, q: &str, file: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let (status, body, _) = search(app, token, &[("q", q)]).await;
        if status == 200 && ids(&body).iter().any(|found| found == file) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn status(app: &TestApp, admin: &str) -> Value {
    let (code, body) = call(app, "GET", "/api/v1/admin/search", admin, None).await;
    assert_eq!(code, 200, "{body}");
    body
}

/// Waits (bounded) until the index is ready with nothing pending and nothing being extracted.
pub async fn settled(app: &TestApp, admin: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let body = status(app, admin).await;
        if body["state"] == "ready" && body["pending"] == 0 && body["extraction"]["queued"] == 0 {
            return body;
        }
        assert!(Instant::now() < deadline, "search did not settle: {body}\n{}", app.logs.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn another_users_files_never_show_through_any_query_filter_scope_or_cursor() {
    let hooks = Hooks::new();
    // Room in the request head for 10 KiB of brackets, percent-encoded.
    let app = spawn_with(&hooks, "[server]\nmax_header_size = \"64 KiB\"\n");
    let admin = admin_token(&app).await;
    let (alice, alice_id) = user_token(&app, &admin, "alice").await;
    let (bob, _) = user_token(&app, &admin, "bob").await;
    let secret_words = ["zanzibarite", "quillonous", "mervaptic"];
    let private = upload(
        &app,
        &alice,
        &[("name", "zanzibarite-plans.txt"), ("folder", "vault/deep"), ("description", "quillonous notes")],
        "the mervaptic contents nobody else may read",
    )
    .await;
    upload(&app, &alice, &[("name", "zanzibarite-copy.txt")], "mervaptic again").await;
    // Bob has a file of his own with the same words, so his searches have something to return.
    let own = upload(&app, &bob, &[("name", "bob quillonous.txt")], "mervaptic quillonous too").await;
    // One edit from a word of Alice's file name: whether Bob's search forgives the typo must
    // not depend on what Alice's names hold.
    let near = upload(&app, &bob, &[("name", "zanzibarits.txt")], "x").await;
    settled(&app, &admin).await;
    let (_, mine, _) = search(&app, &alice, &[("q", "mervaptic nobody")]).await;
    assert_eq!(ids(&mine), [id(&private)], "the owner finds it: the index does hold it");

    let mut bodies = Vec::new();
    for q in secret_words.iter().copied().chain(["zanzibarite plans", "quill", "zanzibarte", "notes"]) {
        for scope in ["all", "mine", "shared"] {
            for extra in [vec![], vec![("folder", "vault")], vec![("folder", "vault/deep")], vec![("type", "text")]] {
                let mut params = vec![("q", q), ("scope", scope)];
                params.extend(extra);
                let (status, body, raw) = search(&app, &bob, &params).await;
                assert!(status == 200 || status == 400, "{status} {raw}");
                assert!(!ids(&body).contains(&id(&private)), "bob found alice's file: {raw}");
                bodies.push(raw);
            }
        }
    }
    // A cursor from Alice's search is refused, never replayed as hers.
    let (_, page, _) = search(&app, &alice, &[("q", "mervaptic"), ("limit", "1")]).await;
    let alice_cursor = page["next_cursor"].as_str().expect("alice has a second page").to_owned();
    for cursor in [alice_cursor.as_str(), "AAAAAAAAAAAAAAAA", "////", "AAAAAQ"] {
        let (status, body, raw) = search(&app, &bob, &[("q", "mervaptic"), ("cursor", cursor), ("limit", "1")]).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")), "{raw}");
        bodies.push(raw);
    }
    let brackets = "(".repeat(10_240);
    let injections = [
        format!("readers:{alice_id}"),
        format!("owner:{alice_id} mervaptic"),
        "file_id:*".to_owned(),
        "x OR readers:*".to_owned(),
        "mervaptic OR readers:*".to_owned(),
        "* AND NOT readers:nobody".to_owned(),
        brackets,
    ];
    for q in &injections {
        let (status, body, raw) = search(&app, &bob, &[("q", q)]).await;
        assert!(status == 200 || status == 400, "{}: {status} {raw}", &q[..q.len().min(40)]);
        if status == 400 {
            assert_eq!(body["error"], "invalid_query");
        }
        bodies.push(raw);
    }
    for raw in &bodies {
        for word in ["plans", "nobody else", "notes", "vault"] {
            assert!(!raw.contains(word), "alice's words leaked to bob: {raw}");
        }
    }
    let (_, own_results, _) = search(&app, &bob, &[("q", "mervaptic")]).await;
    assert_eq!(ids(&own_results), [id(&own)], "bob's search works and finds only his");
    let (_, near_results, raw) = search(&app, &bob, &[("q", "zanzibarite")]).await;
    assert_eq!(ids(&near_results), [id(&near)], "alice's name changed bob's typo tolerance: {raw}");
}

#[tokio::test]
async fn new_files_grants_and_contents_are_searchable_within_two_seconds() {
    let hooks = Hooks::new();
    let app = spawn_with(&hooks, "");
    let admin = admin_token(&app).await;
    let (alice, _) = user_token(&app, &admin, "alice").await;
    let (bob, _) = user_token(&app, &admin, "bob").await;
    settled(&app, &admin).await;
    let file = upload(&app, &alice, &[("name", "harbourmaster-roster.md")], "# Shifts\nlighthouse keeper rota").await;
    let start = Instant::now();
    assert!(found_within(&app, &alice, "harbourmaster", &id(&file), Duration::from_secs(2)).await, "by name");
    assert!(found_within(&app, &alice, "lighthouse", &id(&file), Duration::from_secs(2)).await, "by contents");
    assert!(start.elapsed() < Duration::from_secs(2));

    let (_, bob_before, _) = search(&app, &bob, &[("q", "lighthouse")]).await;
    assert!(ids(&bob_before).is_empty());
    let grant = format!("/api/v1/files/{}/grants", id(&file));
    assert_eq!(call(&app, "POST", &grant, &alice, Some(json!({"username": "bob"}))).await.0, 204);
    assert!(found_within(&app, &bob, "lighthouse", &id(&file), Duration::from_secs(2)).await, "the grantee finds it");
    let (_, shared, _) = search(&app, &bob, &[("q", "lighthouse"), ("scope", "shared")]).await;
    assert_eq!(ids(&shared), [id(&file)]);
    assert_eq!(shared["results"][0]["access"], "grantee");
    let (_, mine, _) = search(&app, &bob, &[("q", "lighthouse"), ("scope", "mine")]).await;
    assert!(ids(&mine).is_empty());
}

#[tokio::test]
async fn revoke_delete_rename_and_user_deletion_apply_to_the_very_next_search_even_with_the_indexer_held() {
    let hooks = Hooks::new();
    let app = spawn_with(&hooks, "");
    let admin = admin_token(&app).await;
    let (alice, alice_id) = user_token(&app, &admin, "alice").await;
    let (bob, _) = user_token(&app, &admin, "bob").await;
    let shared = upload(&app, &alice, &[("name", "granite-ledger.txt")], "granite").await;
    let doomed = upload(&app, &alice, &[("name", "granite-doomed.txt")], "granite").await;
    let renamed = upload(&app, &alice, &[("name", "obsidianfile.txt")], "granite").await;
    let (carol, _) = user_token(&app, &admin, "carol").await;
    let for_carol = upload(&app, &alice, &[("name", "granite-carol.txt")], "granite").await;
    let grant_carol = format!("/api/v1/files/{}/grants", id(&for_carol));
    call(&app, "POST", &grant_carol, &alice, Some(json!({"username": "carol"}))).await;
    let grant = format!("/api/v1/files/{}/grants", id(&shared));
    call(&app, "POST", &grant, &alice, Some(json!({"username": "bob"}))).await;
    let bob_own = upload(&app, &bob, &[("name", "granite-bob.txt")], "granite").await;
    settled(&app, &admin).await;
    let (_, before, _) = search(&app, &bob, &[("q", "granite")]).await;
    assert_eq!(ids(&before).len(), 2, "{before}");
    let (_, before, _) = search(&app, &carol, &[("q", "granite")]).await;
    assert_eq!(ids(&before), [id(&for_carol)]);

    hooks.pause();
    let docs_before = status(&app, &admin).await["docs"].as_u64().unwrap();
    let (_, bob_id) = call(&app, "GET", "/api/v1/me", &bob, None).await;
    let revoke = format!("/api/v1/files/{}/grants/{}", id(&shared), bob_id["id"].as_str().unwrap());
    assert_eq!(call(&app, "DELETE", &revoke, &alice, None).await.0, 204);
    let (_, after, raw) = search(&app, &bob, &[("q", "granite")]).await;
    assert_eq!(ids(&after), [id(&bob_own)], "a revoked grant still shows: {raw}");
    assert!(!raw.contains("ledger"));

    assert_eq!(call(&app, "DELETE", &format!("/api/v1/files/{}", id(&doomed)), &alice, None).await.0, 204);
    let (_, after, _) = search(&app, &alice, &[("q", "doomed")]).await;
    assert!(ids(&after).is_empty(), "a deleted file still shows");

    let rename = format!("/api/v1/files/{}", id(&renamed));
    assert_eq!(call(&app, "PATCH", &rename, &alice, Some(json!({"name": "basaltfile.txt"}))).await.0, 200);
    let (_, old_name, _) = search(&app, &alice, &[("q", "obsidianfile")]).await;
    assert!(ids(&old_name).is_empty(), "the old name still finds the file");

    assert_eq!(call(&app, "DELETE", &format!("/api/v1/users/{alice_id}"), &admin, None).await.0, 204);
    let (_, carol_view, _) = search(&app, &carol, &[("q", "granite")]).await;
    assert!(ids(&carol_view).is_empty(), "a deleted user's files still show");
    assert_eq!(status(&app, &admin).await["docs"].as_u64().unwrap(), docs_before, "the indexer was held back");

    hooks.resume();
    let settled = settled(&app, &admin).await;
    assert_eq!(settled["docs"], 1, "the index dropped the deleted user's files: {settled}");
    assert!(found_within(&app, &bob, "granite", &id(&bob_own), PATIENCE).await);
}

#[tokio::test]
async fn renamed_and_replaced_files_are_found_by_their_new_name_and_contents_only() {
    let hooks = Hooks::new();
    let app = spawn_with(&hooks, "");
    let token = admin_token(&app).await;
    let file = upload(&app, &token, &[("name", "draft.txt")], "tangerine orchard").await;
    settled(&app, &token).await;
    call(&app, "PATCH", &format!("/api/v1/files/{}", id(&file)), &token, Some(json!({"name": "final-cut.txt"}))).await;
    assert!(found_within(&app, &token, "final", &id(&file), Duration::from_secs(2)).await);
    upload(&app, &token, &[("name", "final-cut.txt"), ("on_conflict", "replace")], "pomegranate grove").await;
    assert!(found_within(&app, &token, "pomegranate", &id(&file), Duration::from_secs(2)).await);
    let (_, old, raw) = search(&app, &token, &[("q", "tangerine")]).await;
    assert!(ids(&old).is_empty() && !raw.contains("orchard"), "old contents or their snippet came back: {raw}");
}

#[tokio::test]
async fn accents_cjk_and_normalization_forms_are_found_and_typos_and_prefixes_forgiven_in_names() {
    let hooks = Hooks::new();
    let app = spawn_with(&hooks, "");
    let token = admin_token(&app).await;
    let cafe = upload(&app, &token, &[("name", "menu.txt")], "Le café de la Straße").await;
    let chinese = upload(&app, &token, &[("name", "greeting.txt")], "祝你们新年快乐").await;
    let japanese = upload(&app, &token, &[("name", "address.txt")], "東京都に住む").await;
    let composed = upload(&app, &token, &[("name", "r\u{e9}sum\u{e9}-one.txt")], "x").await;
    let decomposed = upload(&app, &token, &[("name", "re\u{301}sume\u{301}-two.txt")], "x").await;
    let report = upload(&app, &token, &[("name", "quarterly-report.pdf")], "plain words").await;
    settled(&app, &token).await;
    for (q, expected) in [
        ("cafe", vec![&cafe]),
        ("CAFÉ", vec![&cafe]),
        ("strasse", vec![&cafe]),
        ("快乐", vec![&chinese]),
        ("新年", vec![&chinese]),
        ("東京", vec![&japanese]),
        ("quartely", vec![&report]),
        ("quar", vec![&report]),
        ("report quar", vec![&report]),
    ] {
        let (_, body, raw) = search(&app, &token, &[("q", q)]).await;
        let expected: Vec<String> = expected.into_iter().map(id).collect();
        assert_eq!(ids(&body), expected, "{q}: {raw}");
    }
    for q in ["r\u{e9}sum\u{e9}", "re\u{301}sume\u{301}", "resume"] {
        let (_, body, _) = search(&app, &token, &[("q", q)]).await;
        let mut found = ids(&body);
        found.sort();
        let mut both = vec![id(&composed), id(&decomposed)];
        both.sort();
        assert_eq!(found, both, "{q}");
    }
    let (_, body, _) = search(&app, &token, &[("q", "快乐")]).await;
    let content = &body["results"][0]["highlights"]["content"];
    assert!(content.as_array().unwrap().iter().any(|part| part["hit"] == true && part["text"] == "快乐"), "{content}");
    let (_, body, _) = search(&app, &token, &[("q", "quartely")]).await;
    assert_eq!(body["results"][0]["highlights"]["name"][0], json!({"text": "quarterly", "hit": true}));
}
