//! End-to-end tests: a real holtd process, real SQLite files, real HTTP.

mod api;
mod jobs;
mod templates;
mod tidy;
