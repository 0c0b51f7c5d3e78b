//! Black-box tests: the real `coffer` binary on 127.0.0.1:0 with a temp state dir, driven by
//! real HTTPS clients.

mod access_tokens;
mod accounts;
mod acme;
mod auth;
mod cli;
mod config;
mod connections;
mod database;
mod durability;
mod file_access;
mod files;
mod health;
mod helpers;
mod http;
mod search;
mod search_recovery;
mod share_links;
mod shares;
mod shutdown;
mod systemd;
mod throttling;
mod tls;
mod upload_refusals;
mod users;
