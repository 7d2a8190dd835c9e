//! End-to-end tests: a real holtd process, real SQLite files (and a real PostgreSQL server),
//! real HTTP.

#![allow(
    clippy::disallowed_methods,
    reason = "the harness starts holtd, cargo and kill as a user would, outside any job"
)]

mod api;
mod beyond;
mod cli;
mod client;
mod cluster;
mod docs;
mod embed;
mod files;
mod hardening;
mod hostile;
mod infra;
mod jobs;
mod listing;
mod outputs;
mod plans;
mod postgres;
mod protocol;
mod reliability;
mod remote;
mod schedules;
mod soak;
mod ssh;
mod targets;
mod templates;
mod tidy;
mod ui;
mod webhooks;
