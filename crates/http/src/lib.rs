//! Holt's HTTP layer, on raw hyper: the accept loop, routing, parameter parsing, API keys and
//! responses for Otter's Job Orchestration API (`/api/jobs/trigger`, `/status`, `/logs`),
//! the operators' listings behind an admin key (`/api/jobs/list`, `/api/templates/list`) and
//! `/healthz`.
//!
//! It holds an `Engine` and reads and follows logs through it; it names no storage type. It may
//! depend on `holt-domain`, `holt-engine`, hyper and tokio. It must not reach the database or
//! run plans itself. Errors answer with a precise status code and
//! one plain-text line; keys and query strings never reach the server's own logs.

mod body;
mod infra;
mod jobs;
mod limits;
mod listing;
mod metrics;
mod outputs;
mod params;
mod routes;
mod server;
mod ui;
mod webhook;

pub use body::{Body, BodyError};
pub use routes::routes;
pub use server::{HttpConfig, serve};
pub use ui::UI_OFF;
pub use webhook::WebhookClient;
