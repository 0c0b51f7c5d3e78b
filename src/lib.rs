//! Coffer: self-hosted secure file sharing in one binary.
//!
//! `startup` builds the application from `config::Settings`; `api` is the HTTP layer over the
//! plain modules (`db`, `tls`, `readiness`, `state_dir`); `server` owns connections.

pub mod acme;
pub mod api;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod client_address;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod files;
pub mod mail;
pub mod metrics;
pub mod oidc;
pub mod rate_limit;
pub mod readiness;
pub mod reindex;
pub mod reload;
pub mod retention;
pub mod search;
pub mod server;
pub mod shares;
pub mod startup;
pub mod state_dir;
pub mod storage;
pub mod systemd;
pub mod telemetry;
pub mod tls;
pub mod upload_links;
pub mod uploads;
