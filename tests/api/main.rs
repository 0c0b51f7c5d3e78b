//! Black-box tests: the real `coffer` binary on 127.0.0.1:0 with a temp state dir, driven by
//! real HTTPS clients.

// A failing test should stop loudly at the line that failed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access_tokens;
mod accounts;
mod acme;
mod auth;
mod backup;
mod backup_drill;
mod backup_push;
mod blob_lifecycle;
mod browser_sessions;
mod cli;
mod config;
mod connections;
mod database;
mod docs;
mod durability;
mod file_access;
mod files;
mod folders;
mod fuzzing;
mod health;
mod helpers;
mod http;
mod mail_delivery;
mod mail_messages;
mod metrics;
mod multi_shares;
mod oidc;
mod oidc_support;
mod protection;
mod resumable;
mod resumable_rules;
mod retention;
mod search;
mod search_recovery;
mod share_downloads;
mod share_links;
mod shares;
mod shutdown;
mod smtp;
mod systemd;
mod throttling;
mod tls;
mod upload_links;
mod upload_refusals;
mod upload_rules;
mod users;
mod walkthrough;
mod web_app;
