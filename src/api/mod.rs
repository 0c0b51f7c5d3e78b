//! The HTTP layer: routes, the OpenAPI document and the middleware stack.
//!
//! Handlers parse requests and call plain functions of the modules below; rules live there,
//! not here. Every response passes through the same stack, outermost first: request id and
//! log line, security headers, JSON errors, body limit.

mod app;
mod audit;
mod auth;
mod conditions;
mod content;
mod cors;
mod download;
mod drain;
mod error;
mod error_codes;
mod failure;
mod files;
mod folders;
mod health;
mod me;
mod middleware;
mod oidc;
mod range;
mod rate_limits;
mod redirect;
mod resumable;
mod search;
mod security;
mod share_html;
mod share_listing;
mod share_page;
mod shares;
mod strict;
mod tokens;
mod tus_headers;
mod tus_types;
mod upload;
mod upload_form;
mod upload_link_html;
mod upload_link_page;
mod upload_links;
mod users;

use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::{EndpointExt, Response, Route, get};
use poem_openapi::{OpenApiService, Tags};

pub use error::{AllowTable, ErrorBody, code_for_status, error_response};
pub use middleware::{ClientIp, RequestId};
pub use rate_limits::RateLimits;
pub use redirect::to_https;

use crate::auth::Auth;
use crate::readiness::Readiness;

/// Where the versioned JSON API is mounted.
pub const API_PREFIX: &str = "/api/v1";

/// Routes whose bodies are file contents: limited by `storage.max_file_size` while streaming,
/// not by `server.max_body_size`.
const UPLOAD_ROUTES: &[(&str, &str)] = &[("PUT", "/api/v1/files/upload"), ("POST", "/api/v1/files")];
/// Resumable upload routes that carry file contents (limited by their `Upload-Length`).
const RESUMABLE_ROUTES: &[(&str, &str)] = &[("POST", "/api/v1/uploads"), ("PATCH", "/api/v1/uploads/")];

#[derive(Tags)]
pub enum ApiTags {
    /// Liveness and readiness.
    Health,
    /// Signing in and out, refreshing tokens.
    Auth,
    /// The signed-in user's own account, sessions and API tokens.
    Account,
    /// Managing accounts and reading the audit log (admins only).
    Users,
    /// Uploading, listing, downloading and sharing files with users.
    Files,
    /// Public links to files, for people without an account.
    Shares,
    /// Links through which people without an account upload files into a folder.
    UploadLinks,
    /// Finding files by words in their names, descriptions and contents.
    Search,
    /// Resumable uploads (tus 1.0.0): an upload that survives dropped connections and
    /// server restarts, ending as a file like a plain upload.
    Uploads,
}

/// Unix seconds as an RFC 3339 UTC timestamp.
pub fn rfc3339(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// What the handlers need from the rest of the application.
pub struct ApiContext {
    pub readiness: Arc<Readiness>,
    pub auth: Arc<Auth>,
    pub files: crate::files::Files,
    pub uploads: crate::uploads::Uploads,
    pub shares: crate::shares::Shares,
    pub upload_links: crate::upload_links::UploadLinks,
    /// Full-text search, unless `search.enabled` is false.
    pub search: Option<crate::search::Search>,
    /// `server.max_body_size`, changed by a reload.
    pub max_body_size: Arc<std::sync::atomic::AtomicU64>,
    /// `server.public_url`, the base of share links.
    pub public_url: Option<String>,
    /// `server.trusted_proxies`: whose forwarding headers name the client.
    pub trusted_proxies: Arc<crate::client_address::TrustedProxies>,
    pub rate_limits: Arc<RateLimits>,
    /// `server.cors_origins`; empty: no CORS.
    pub cors_origins: Vec<String>,
    /// Sign-in with OpenID Connect providers.
    pub oidc: Arc<crate::oidc::Oidc>,
}

type Apis = (
    health::HealthApi,
    auth::AuthApi,
    me::MeApi,
    tokens::TokensApi,
    users::UsersApi,
    audit::AuditApi,
    files::FilesApi,
    folders::FoldersApi,
    upload::UploadApi,
    resumable::ResumableApi,
    content::ContentApi,
    shares::SharesApi,
    upload_links::UploadLinksApi,
    search::SearchApi,
    oidc::OidcApi,
);

fn openapi(context: &ApiContext) -> OpenApiService<Apis, ()> {
    let apis = (
        health::HealthApi { readiness: Arc::clone(&context.readiness) },
        auth::AuthApi { auth: Arc::clone(&context.auth) },
        me::MeApi { auth: Arc::clone(&context.auth) },
        tokens::TokensApi { auth: Arc::clone(&context.auth) },
        users::UsersApi { auth: Arc::clone(&context.auth) },
        audit::AuditApi { auth: Arc::clone(&context.auth) },
        files::FilesApi { files: context.files.clone() },
        folders::FoldersApi { files: context.files.clone() },
        upload::UploadApi { files: context.files.clone() },
        resumable::ResumableApi { uploads: context.uploads.clone(), files: context.files.clone() },
        content::ContentApi { files: context.files.clone() },
        shares::SharesApi {
            shares: context.shares.clone(),
            auth: Arc::clone(&context.auth),
            public_url: context.public_url.clone(),
        },
        upload_links::UploadLinksApi {
            links: context.upload_links.clone(),
            auth: Arc::clone(&context.auth),
            public_url: context.public_url.clone(),
        },
        search::SearchApi { search: context.search.clone(), auth: Arc::clone(&context.auth) },
        oidc::OidcApi {
            oidc: Arc::clone(&context.oidc),
            auth: Arc::clone(&context.auth),
            public_url: context.public_url.clone(),
        },
    );
    OpenApiService::new(apis, "Coffer", env!("CARGO_PKG_VERSION"))
        .description(
            "Self-hosted secure file sharing. Errors always have the shape {\"error\": code, \"message\": text}.",
        )
        .server(API_PREFIX)
}

/// Builds the whole application endpoint.
pub fn build(context: ApiContext) -> BoxEndpoint<'static, Response> {
    let service = openapi(&context);
    let spec_json = service.spec();
    let mut allow = AllowTable::from_spec(&spec_json, API_PREFIX);
    allow.add(&format!("{API_PREFIX}/openapi.json"), vec!["GET".into()]);
    allow.add("/docs", vec!["GET".into()]);
    allow.add("/s/{token}", vec!["GET".into(), "POST".into()]);
    allow.add("/s/{token}/download", vec!["GET".into()]);
    allow.add("/s/{token}/files/{file_id}", vec!["GET".into()]);
    allow.add("/u/{token}", vec!["GET".into(), "POST".into()]);
    allow.add("/u/{token}/files", vec!["PUT".into()]);
    allow.add("/", vec!["GET".into(), "HEAD".into()]);
    allow.add("/app", vec!["GET".into(), "HEAD".into()]);
    allow.add("/app/{path}", vec!["GET".into(), "HEAD".into()]);
    allow.add("/auth/oidc/{provider}", vec!["GET".into()]);
    let allow = Arc::new(allow);
    let routes = Arc::new(middleware::RouteNames::from_spec(&spec_json, API_PREFIX));
    let limit = Arc::clone(&context.max_body_size);

    let docs = service.swagger_ui();
    let spec = service.spec_endpoint();
    let rate_limits = Arc::clone(&context.rate_limits);
    let routed = Route::new()
        .at(format!("{API_PREFIX}/openapi.json"), get(spec))
        .nest(API_PREFIX, service)
        .nest("/docs", get(docs))
        .at("/", get(app::root).head(app::root))
        .at("/app", get(app::root).head(app::root))
        .at("/app/", get(app::shell).head(app::shell))
        .at("/app/assets/:name", get(app::asset_file).head(app::asset_file))
        .at("/app/*path", get(app::shell).head(app::shell))
        .at("/s/:token", get(share_page::landing).post(share_page::unlock))
        .at("/s/:token/download", get(share_page::download).head(share_page::download))
        .at("/s/:token/files/:file_id", get(share_page::one_file).head(share_page::one_file))
        .at("/auth/oidc/callback", get(oidc::callback))
        .at("/auth/oidc/:provider", get(oidc::start))
        .at("/u/:token", get(upload_link_page::landing).post(upload_link_page::unlock))
        .at("/u/:token/files", poem::put(upload_link_page::receive))
        .data(Arc::clone(&context.oidc))
        .data(oidc::PublicUrl(context.public_url.clone()))
        .data(context.shares.clone())
        .data(context.upload_links.clone())
        .data(Arc::clone(&context.auth))
        .data(Arc::clone(&context.rate_limits))
        .around(move |endpoint, req| {
            let limit = limit.load(std::sync::atomic::Ordering::Relaxed);
            middleware::body_limit(endpoint, req, limit, UPLOAD_ROUTES, RESUMABLE_ROUTES)
        })
        .around(move |endpoint, req| rate_limits::public(endpoint, req, Arc::clone(&rate_limits)))
        .boxed();
    let routed = if context.cors_origins.is_empty() {
        routed
    } else {
        let policy = Arc::new(cors::CorsPolicy::new(context.cors_origins.clone()));
        routed.around(move |endpoint, req| cors::cors(endpoint, req, Arc::clone(&policy))).boxed()
    };
    let trusted = Arc::clone(&context.trusted_proxies);
    routed
        .around(move |endpoint, req| error::json_errors(endpoint, req, Arc::clone(&allow)))
        .around(resumable::tus_resumable_header)
        .around(middleware::security_headers)
        .around(move |endpoint, req| middleware::request_log(endpoint, req, Arc::clone(&routes), Arc::clone(&trusted)))
        .boxed()
}
