//! Holt's engine: it runs jobs. Triggered jobs enter a first-in first-out queue; at most
//! `max_concurrent_jobs` execute at once and the rest stay `Pending`. A job's plan runs in the
//! interpreter, its log entries go to the store's batching writer in logged order, and its
//! terminal status is recorded only after every one of its entries, so a client that sees a
//! terminal status always gets the whole log. On start the engine recovers what a previous
//! process left: interrupted jobs become `Error`, pending jobs run. Templates with a schedule
//! are triggered by the engine itself at each slot, each slot once (the store records it).
//!
//! The engine holds `Arc<dyn JobStore>`, never a concrete store. It may depend on `holt-domain`,
//! `holt-plan`, `holt-storage` (for the traits) and tokio; it must not depend on the HTTP layer.

mod check;
mod clock;
mod cluster;
mod config;
mod engine;
mod error;
mod interp;
mod joblog;
mod logs;
mod metrics;
mod operators;
mod outputs;
mod process;
mod queue;
mod retention;
mod run;
mod schedule;
mod secrets;
mod ssh;
mod sync;
#[cfg(test)]
mod tests;
mod webhooks;

pub use check::{OPERATIONS, OperationSpec, check_plan, check_template};
pub use clock::Clock;
pub use config::{EngineConfig, MAX_DURATION};
pub use engine::{Canceled, Engine, INTERRUPTED_MESSAGE, Triggered};
pub use error::EngineError;
pub use interp::error::WORKER_STACK_BYTES;
pub use logs::{LogFollower, TextPage};
pub use metrics::Metrics;
pub use operators::JobView;
pub use process::adopt_escaped_processes;
pub use secrets::{SecretsKey, random_key_text};
pub use webhooks::WebhookSender;
