//! Serving the web app: `/` redirects, every `/app/...` path is the shell, assets are
//! compressed and revalidated by content-hash ETags, and every answer carries the strict
//! policy.

use std::io::Read;

use crate::helpers::spawn_default;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
require-trusted-types-for 'script'; trusted-types 'none'";

#[tokio::test]
async fn the_root_redirects_and_every_app_path_is_the_shell_under_the_strict_policy() {
    let app = spawn_default();
    let root = app.get("/").await;
    assert_eq!(root.status(), 302);
    assert_eq!(root.headers()["location"], "/app/");
    let mut shell = None;
    for path in ["/app/", "/app/files", "/app/files/a/b%20c", "/app/admin/users"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        assert_eq!(headers["content-security-policy"], CSP, "{path}");
        assert_eq!(headers["cross-origin-opener-policy"], "same-origin");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["cache-control"], "no-store");
        let body = response.text().await.unwrap();
        assert!(body.contains("<script type=\"module\" src=\"/app/assets/main.js\"></script>"));
        assert!(!body.contains("<style") && !body.contains(" style=") && !body.contains("<script>"), "nothing inline");
        shell.get_or_insert(body.clone());
        assert_eq!(Some(&body), shell.as_ref(), "the same shell everywhere");
    }
    assert_eq!(app.client.post(app.url("/app/files")).send().await.unwrap().status(), 405);
    assert_eq!(app.get("/app/assets/nope.js").await.status(), 404);
}

#[tokio::test]
async fn assets_are_gzipped_for_clients_that_accept_it_and_revalidated_by_their_content_hash() {
    let app = spawn_default();
    let plain = app.client.get(app.url("/app/assets/main.js")).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(plain.headers()["cache-control"], "no-cache");
    assert_eq!(plain.headers()["content-security-policy"], CSP);
    let etag = plain.headers()["etag"].to_str().unwrap().to_owned();
    let source = plain.bytes().await.unwrap();
    assert_eq!(etag, format!("\"{}\"", crate::files::sha256_hex(&source)));

    let zipped = app.client.get(app.url("/app/assets/main.js")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["vary"], "Accept-Encoding");
    let compressed = zipped.bytes().await.unwrap();
    assert!(compressed.len() < source.len());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..]).read_to_end(&mut unzipped).unwrap();
    assert_eq!(unzipped, source);

    let again = app.client.get(app.url("/app/assets/main.js")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());

    let mut total = 0;
    for name in [
        "app.css",
        "main.js",
        "dom.js",
        "api.js",
        "signin.js",
        "files.js",
        "file-actions.js",
        "upload.js",
        "shares.js",
        "account.js",
        "admin.js",
    ] {
        let response = app.get(&format!("/app/assets/{name}")).await;
        assert_eq!(response.status(), 200, "{name}");
        total += response.bytes().await.unwrap().len();
    }
    assert!(total < 100 * 1024, "the app's scripts and styles weigh {total} bytes");
}
