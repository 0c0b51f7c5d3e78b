//! Sign-in with an OpenID Provider, against a real one (panva's `oidc-provider`, see
//! oidc_support.rs): the whole code flow, linking and unlinking, the refusals an attacker or a
//! misbehaving provider gets, key rotation, e-mail takeover attempts, provisioning by group,
//! roles from groups, and password sign-in turned off.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::call;
use crate::auth::{admin_password, db, login, login_admin};
use crate::browser_sessions::browser_sign_in;
use crate::helpers::{Options, TestApp, spawn_app};
use crate::oidc_support::{
    OpServer, audit_rows, coffer_with_provider, deliver, provider_sign_in, sign_in_at_provider, start_sign_in,
};

const PASSWORD: &str = "correct horse battery staple";

async fn admin_bearer(app: &TestApp) -> String {
    login_admin(app).await["access_token"].as_str().unwrap().to_owned()
}

async fn make_user(app: &TestApp, admin: &str, username: &str, email: &str, role: &str) {
    let body = json!({"username": username, "password": PASSWORD, "email": email, "role": role});
    let (status, body) = call(app, "POST", "/api/v1/users", admin, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn get_with_cookie(app: &TestApp, path: &str, cookie: &str) -> (StatusCode, Value) {
    let response = app.client.get(app.url(path)).header("cookie", cookie).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn user_count(app: &TestApp) -> i64 {
    db(app).query_row("SELECT count(*) FROM users", [], |row| row.get(0)).unwrap()
}

fn refusals(app: &TestApp) -> Vec<String> {
    audit_rows(app, "oidc_refused").into_iter().map(|(_, detail)| detail).collect()
}

#[tokio::test]
async fn a_user_links_the_provider_with_the_password_then_signs_in_through_the_code_flow_and_can_unlink() {
    let (app, op) = coffer_with_provider("reauth_after = \"2h\"", "");
    let admin = admin_bearer(&app).await;
    make_user(&app, &admin, "alice", "alice@example.org", "user").await;

    // Not linked yet, auto-create off: refused with a page that says what to do, no loop.
    let landing = provider_sign_in(&app, &op, "alice").await;
    assert_eq!(landing.status, StatusCode::FORBIDDEN);
    assert!(landing.location.is_none() && landing.session.is_none());
    assert!(landing.page.contains("link it on your account page"), "{}", landing.page);

    // Linking needs the signed-in user's password.
    let (status, set) = browser_sign_in(&app, "alice", PASSWORD).await;
    assert_eq!(status, 204);
    let alice_cookie = set.unwrap().split(';').next().unwrap().to_owned();
    let link = |password: &str| {
        app.client
            .post(app.url("/api/v1/me/identities/test"))
            .header("cookie", &alice_cookie)
            .header("sec-fetch-site", "same-origin")
            .header("x-coffer-csrf", "1")
            .json(&json!({"password": password}))
            .send()
    };
    let wrong = link("not the password at all").await.unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(wrong.json::<Value>().await.unwrap()["error"], "wrong_password");
    let started = link(PASSWORD).await.unwrap();
    assert_eq!(started.status(), StatusCode::OK);
    let mut jar = crate::oidc_support::Jar::default();
    jar.take(&started);
    let binding = format!("__Host-coffer_oidc={}", jar.get("__Host-coffer_oidc").unwrap());
    let url = started.json::<Value>().await.unwrap()["authorization_url"].as_str().unwrap().to_owned();
    let callback = sign_in_at_provider(&op, &url, "alice").await;
    let linked = deliver(&app, &callback, &format!("{binding}; {alice_cookie}")).await;
    assert_eq!((linked.status, linked.location.as_deref()), (StatusCode::SEE_OTHER, Some("/app/account")));

    // Now the provider signs alice in: the web app's own cookie session.
    let landing = provider_sign_in(&app, &op, "alice").await;
    assert_eq!(
        (landing.status, landing.location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/app/")),
        "{}",
        landing.page
    );
    let set_cookie = landing.session_set_cookie.unwrap();
    for attribute in ["Max-Age=7200", "Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(set_cookie.split("; ").any(|part| part == attribute), "{attribute} missing in {set_cookie}");
    }
    let session = landing.session.expect("a session cookie");
    let (status, me) = get_with_cookie(&app, "/api/v1/me", &session).await;
    assert_eq!((status, me["username"].as_str()), (StatusCode::OK, Some("alice")));
    let (_, sessions) = get_with_cookie(&app, "/api/v1/me/sessions", &session).await;
    let current = sessions.as_array().unwrap().iter().find(|session| session["current"] == true).unwrap().clone();
    assert_eq!(current["method"], "oidc:test");
    let password_session = sessions.as_array().unwrap().iter().find(|session| session["current"] == false).unwrap();
    assert_eq!(password_session["method"], "password");
    // The provider's session ends after reauth_after (2 h), not auth.refresh_lifetime (30 d).
    let lifetime: i64 = db(&app)
        .query_row(
            "SELECT expires_at - created_at FROM sessions WHERE id = ?1",
            [current["id"].as_str().unwrap()],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(lifetime, 7200);

    let (status, mine) = get_with_cookie(&app, "/api/v1/me/identities", &session).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((mine[0]["provider"].as_str(), mine[0]["subject"].as_str()), (Some("test"), Some("alice")));
    assert_eq!(mine[0]["issuer"].as_str(), Some(op.issuer().as_str()));
    let (status, all) = call(&app, "GET", "/api/v1/identities", &admin, None).await;
    assert_eq!((status, all.as_array().unwrap().len()), (StatusCode::OK, 1));
    assert_eq!(all[0]["username"], "alice");
    let (status, _) = get_with_cookie(&app, "/api/v1/identities", &session).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only admins see everyone's identities");

    // Unlinking: the provider account no longer signs in as alice.
    let response = app
        .client
        .delete(app.url("/api/v1/me/identities/test"))
        .header("cookie", &session)
        .header("sec-fetch-site", "same-origin")
        .header("x-coffer-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let landing = provider_sign_in(&app, &op, "alice").await;
    assert_eq!(landing.status, StatusCode::FORBIDDEN);

    let alice: String =
        db(&app).query_row("SELECT id FROM users WHERE username = 'alice'", [], |row| row.get(0)).unwrap();
    let linked = audit_rows(&app, "oidc_linked");
    assert_eq!(linked, vec![(Some(alice.clone()), "oidc:test by the signed-in user".to_owned())]);
    assert_eq!(audit_rows(&app, "oidc_unlinked"), vec![(Some(alice.clone()), "oidc:test".to_owned())]);
    assert!(audit_rows(&app, "login_ok").contains(&(Some(alice), "oidc:test".to_owned())));
    let refused = refusals(&app);
    assert_eq!(
        refused.iter().filter(|detail| detail.contains("no Coffer account is linked")).count(),
        2,
        "{refused:?}"
    );
    assert!(refused.iter().any(|detail| detail.contains("wrong password")), "{refused:?}");
}

#[tokio::test]
async fn reused_unknown_and_other_browsers_states_and_a_replayed_code_are_refused_and_audited() {
    let (app, op) = coffer_with_provider("auto_create = true", "");
    let first = provider_sign_in(&app, &op, "bob").await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.page);

    // The same answer again: the state was used.
    let again = deliver(&app, &first.callback, &first.binding).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
    assert!(again.session.is_none() && again.page.contains("already used"), "{}", again.page);

    // A state Coffer never issued.
    let forged = first.callback.replace("state=", "state=forged");
    let landing = deliver(&app, &forged, &first.binding).await;
    assert!(landing.status == StatusCode::FORBIDDEN && landing.page.contains("unknown"), "{}", landing.page);

    // The provider's answer delivered to another browser (no binding cookie): login CSRF.
    let (url, _binding) = start_sign_in(&app).await;
    let callback = sign_in_at_provider(&op, &url, "bob").await;
    let landing = deliver(&app, &callback, "__Host-coffer_oidc=someone-elses").await;
    assert!(landing.status == StatusCode::FORBIDDEN && landing.page.contains("another browser"), "{}", landing.page);

    // A spent code replayed with a fresh, genuine state of this browser.
    let (fresh_url, fresh_binding) = start_sign_in(&app).await;
    let fresh_state =
        reqwest::Url::parse(&fresh_url).unwrap().query_pairs().find(|(key, _)| key == "state").unwrap().1.to_string();
    let old = reqwest::Url::parse(&first.callback).unwrap();
    let code = old.query_pairs().find(|(key, _)| key == "code").unwrap().1.to_string();
    let replay = format!(
        "{}?code={code}&state={fresh_state}&iss={}",
        app.url("/auth/oidc/callback"),
        form_urlencoded::byte_serialize(op.issuer().as_bytes()).collect::<String>()
    );
    let landing = deliver(&app, &replay, &fresh_binding).await;
    assert!(landing.status == StatusCode::FORBIDDEN && landing.page.contains("refused the code"), "{}", landing.page);

    // An answer naming another issuer (mix-up) is refused before the code is used.
    let (url, binding) = start_sign_in(&app).await;
    let callback = sign_in_at_provider(&op, &url, "bob").await;
    let mixed = callback.replace("iss=", "iss=https%3A%2F%2Fevil.example&was=");
    let landing = deliver(&app, &mixed, &binding).await;
    assert!(landing.status == StatusCode::FORBIDDEN && landing.page.contains("another provider"), "{}", landing.page);

    // An answer without `iss` from a provider that says it always sends one.
    let (url, binding) = start_sign_in(&app).await;
    let callback = sign_in_at_provider(&op, &url, "bob").await;
    let stripped = callback.replace("iss=", "was=");
    let landing = deliver(&app, &stripped, &binding).await;
    assert!(landing.status == StatusCode::FORBIDDEN && landing.page.contains("lacks the provider"), "{}", landing.page);

    let refused = refusals(&app);
    for reason in ["already used", "another browser", "refused the code", "another provider", "lacks the provider"] {
        assert!(refused.iter().any(|detail| detail.contains(reason)), "{reason} not audited in {refused:?}");
    }
}

#[tokio::test]
async fn id_tokens_with_a_foreign_audience_wrong_nonce_past_expiry_or_a_disallowed_alg_are_refused_and_audited() {
    // The provider misbehaves in one way at a time (provider.mjs OP_TAMPER: the real token,
    // changed in one claim or algorithm and re-signed with the provider's own key).
    let (app, mut op) = coffer_with_provider("auto_create = true\nallowed_algs = [\"RS256\"]", "");
    let callback = app.url("/auth/oidc/callback");
    let cases = [
        ("aud", "meant for another client"),
        ("nonce", "nonce does not match"),
        ("exp", "has expired"),
        ("alg", "signed with RS384"),
    ];
    for (tamper, reason) in cases {
        op.start(&callback, "key-1.json", "k1", tamper);
        let landing = provider_sign_in(&app, &op, "bob").await;
        assert_eq!(landing.status, StatusCode::FORBIDDEN, "{tamper}: {}", landing.page);
        assert!(landing.session.is_none(), "{tamper}");
        assert!(landing.page.contains(reason), "{tamper}: {}", landing.page);
        assert!(refusals(&app).iter().any(|detail| detail.contains(reason)), "{tamper} audited");
    }
    assert_eq!(user_count(&app), 1, "no account was made from a refused token");
    // The same provider, honest again: the same person gets in.
    op.start(&callback, "key-1.json", "k1", "");
    assert_eq!(provider_sign_in(&app, &op, "bob").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_key_rotation_at_the_provider_does_not_break_sign_in() {
    let (app, mut op) = coffer_with_provider("auto_create = true", "");
    assert_eq!(provider_sign_in(&app, &op, "bob").await.status, StatusCode::SEE_OTHER);
    // The provider restarts signing with a new key (kid k2); Coffer holds k1's keys.
    op.start(&app.url("/auth/oidc/callback"), "key-2.json", "k2", "");
    let landing = provider_sign_in(&app, &op, "bob").await;
    assert_eq!(landing.status, StatusCode::SEE_OTHER, "{}", landing.page);
    assert!(landing.session.is_some());
    let fetches = app.logs.text().matches("fetched the provider's signing keys").count();
    assert_eq!(fetches, 2, "keys fetched at first use and once more for the unknown kid");
    assert!(!app.logs.text().contains("userinfo"), "the ID token carried every claim");
}

#[tokio::test]
async fn an_unverified_same_email_never_links_and_a_verified_one_links_only_when_allowed_and_never_to_an_admin() {
    for link_by_email in [true, false] {
        let extra = format!("link_by_verified_email = {link_by_email}");
        let (app, op) = coffer_with_provider(&extra, "");
        let admin = admin_bearer(&app).await;
        make_user(&app, &admin, "carol", "carol@example.org", "user").await;
        make_user(&app, &admin, "root", "root@example.org", "admin").await;

        // mallory claims carol's address, unverified: never carol.
        let landing = provider_sign_in(&app, &op, "mallory").await;
        assert_eq!(landing.status, StatusCode::FORBIDDEN, "{}", landing.page);
        assert!(audit_rows(&app, "oidc_linked").is_empty());

        // An admin is never linked by address, verified or not.
        let landing = provider_sign_in(&app, &op, "root-at-idp").await;
        assert_eq!(landing.status, StatusCode::FORBIDDEN, "{}", landing.page);

        // The verified owner of the address: linked only when the setting allows it.
        let landing = provider_sign_in(&app, &op, "carol-at-idp").await;
        if link_by_email {
            assert_eq!(landing.status, StatusCode::SEE_OTHER, "{}", landing.page);
            let (_, me) = get_with_cookie(&app, "/api/v1/me", &landing.session.unwrap()).await;
            assert_eq!(me["username"], "carol");
            let linked = audit_rows(&app, "oidc_linked");
            assert_eq!(linked.len(), 1);
            assert_eq!(linked[0].1, "oidc:test by verified e-mail");
        } else {
            assert_eq!(landing.status, StatusCode::FORBIDDEN);
            assert!(audit_rows(&app, "oidc_linked").is_empty());
        }
        assert_eq!(user_count(&app), 3, "no account was made");
    }
}

#[tokio::test]
async fn auto_create_off_refuses_and_on_with_a_required_group_creates_only_members() {
    let (app, op) = coffer_with_provider("required_groups = [\"staff\"]", "");
    assert_eq!(provider_sign_in(&app, &op, "bob").await.status, StatusCode::FORBIDDEN);
    assert_eq!(user_count(&app), 1, "auto_create is off by default");
    drop((app, op));

    let (app, op) = coffer_with_provider("required_groups = [\"staff\"]\nauto_create = true", "");
    let landing = provider_sign_in(&app, &op, "eve").await;
    assert_eq!(landing.status, StatusCode::FORBIDDEN);
    assert!(landing.page.contains("not in a group allowed"), "{}", landing.page);
    assert_eq!(user_count(&app), 1, "a refused person never gets an account");

    let landing = provider_sign_in(&app, &op, "bob").await;
    assert_eq!(landing.status, StatusCode::SEE_OTHER, "{}", landing.page);
    let (_, me) = get_with_cookie(&app, "/api/v1/me", &landing.session.unwrap()).await;
    assert_eq!((me["username"].as_str(), me["role"].as_str()), (Some("bob"), Some("user")));
    assert_eq!(me["email"], "bob@example.org");
    assert_eq!(user_count(&app), 2);
    let created = audit_rows(&app, "user_created");
    assert_eq!(created.last().unwrap().1, "oidc:test at first sign-in");
    // Made without a password: a password sign-in as bob cannot work.
    let (status, _) = login(&app, "bob", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_role_follows_the_admin_groups_at_every_sign_in_so_a_demotion_takes_effect() {
    let (app, op) = coffer_with_provider("auto_create = true\nadmin_groups = [\"coffer-admins\"]", "");
    let landing = provider_sign_in(&app, &op, "alice").await;
    let (_, me) = get_with_cookie(&app, "/api/v1/me", &landing.session.unwrap()).await;
    assert_eq!(me["role"], "admin");

    let mut accounts = crate::oidc_support::default_accounts();
    accounts["alice"]["groups"] = json!(["staff"]);
    op.set_accounts(&accounts);
    let landing = provider_sign_in(&app, &op, "alice").await;
    let (_, me) = get_with_cookie(&app, "/api/v1/me", &landing.session.unwrap()).await;
    assert_eq!(me["role"], "user", "removed from the admin group at the provider: no longer an admin");
    let updates = audit_rows(&app, "user_updated");
    assert_eq!(updates.last().unwrap().1, "oidc:test: role user from the provider's groups");
}

#[tokio::test]
async fn password_sign_in_can_be_turned_off_except_for_break_glass_admins() {
    let toml = "[auth]\npassword_login = false\nbreak_glass_admins = [\"admin\", \"carol\"]";
    let app = spawn_app(Options { toml: toml.into(), ..Options::default() });
    let admin = admin_bearer(&app).await;
    make_user(&app, &admin, "bob", "bob@example.org", "user").await;
    make_user(&app, &admin, "carol", "carol@example.org", "user").await;

    let (status, body) = login(&app, "bob", PASSWORD).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("password_login_disabled")));
    let (status, _) = browser_sign_in(&app, "bob", PASSWORD).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Named as break-glass but not an admin: no way in by password.
    let (status, _) = login(&app, "carol", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = login(&app, "admin", &admin_password(&app)).await;
    assert_eq!(status, StatusCode::OK);

    let options: Value = app.get("/api/v1/auth/providers").await.json().await.unwrap();
    assert_eq!(options, json!({"password_login": false, "providers": []}));
    let refused = audit_rows(&app, "login_failed");
    assert!(
        refused.iter().filter(|(_, detail)| detail == "password sign-in is turned off").count() >= 2,
        "{refused:?}"
    );
}

#[tokio::test]
async fn an_unreachable_provider_and_an_unknown_one_end_on_a_readable_page() {
    let op = OpServer::prepare();
    let app = spawn_app(Options { toml: op.provider_toml(""), ..Options::default() });
    // The provider is not running.
    let response = app.get("/auth/oidc/test").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(response.text().await.unwrap().contains("cannot be reached"));
    let response = app.get("/auth/oidc/nope").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let options: Value = app.get("/api/v1/auth/providers").await.json().await.unwrap();
    assert_eq!(options["providers"], json!([{"id": "test", "label": "Test IdP", "sign_in_url": "/auth/oidc/test"}]));
}

#[tokio::test]
async fn e_mail_and_groups_missing_from_the_id_token_are_taken_from_userinfo() {
    let (app, mut op) = coffer_with_provider("auto_create = true\nrequired_groups = [\"staff\"]", "");
    op.start_with(&app.url("/auth/oidc/callback"), "key-1.json", "k1", "", true);
    let landing = provider_sign_in(&app, &op, "bob").await;
    assert_eq!(landing.status, StatusCode::SEE_OTHER, "{}", landing.page);
    let (_, me) = get_with_cookie(&app, "/api/v1/me", &landing.session.unwrap()).await;
    assert_eq!((me["username"].as_str(), me["email"].as_str()), (Some("bob"), Some("bob@example.org")));
    assert!(app.logs.text().contains("asked the provider's userinfo"), "the claims came from userinfo");
    let landing = provider_sign_in(&app, &op, "eve").await;
    assert_eq!(landing.status, StatusCode::FORBIDDEN, "eve's groups (from userinfo) are not allowed");
}

/// The password that starts a link is throttled like sign-in: a stolen session cannot guess the
/// account's password through it without limit (here the provider is not even running: the
/// password is checked before anything goes to it).
#[tokio::test]
async fn guessing_the_password_through_the_link_confirmation_is_throttled() {
    let op = OpServer::prepare();
    let toml = format!("[auth]\nlogin_free_failures = 3\n{}", op.provider_toml(""));
    let app = spawn_app(Options { toml, ..Options::default() });
    let admin = admin_bearer(&app).await;
    make_user(&app, &admin, "alice", "alice@example.org", "user").await;
    let (status, set) = browser_sign_in(&app, "alice", PASSWORD).await;
    assert_eq!(status, 204);
    let alice_cookie = set.unwrap().split(';').next().unwrap().to_owned();
    let link = |password: &str| {
        app.client
            .post(app.url("/api/v1/me/identities/test"))
            .header("cookie", &alice_cookie)
            .header("sec-fetch-site", "same-origin")
            .header("x-coffer-csrf", "1")
            .json(&json!({"password": password}))
            .send()
    };
    for _ in 0..4 {
        let wrong = link("not the password at all").await.unwrap();
        assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    }
    let right = link(PASSWORD).await.unwrap();
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(right.headers().contains_key("retry-after"));
    assert_eq!(right.json::<Value>().await.unwrap()["error"], "too_many_requests");
}
