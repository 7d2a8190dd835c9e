//! End-to-end tests: a real holtd process, real SQLite files, real HTTP.

#![allow(
    clippy::disallowed_methods,
    reason = "the harness starts holtd, cargo and kill as a user would, outside any job"
)]

mod api;
mod beyond;
mod docs;
mod embed;
mod files;
mod hardening;
mod hostile;
mod infra;
mod jobs;
mod plans;
mod protocol;
mod reliability;
mod remote;
mod soak;
mod ssh;
mod targets;
mod templates;
mod tidy;
