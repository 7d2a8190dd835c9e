//! Holt's storage: the traits the engine and the HTTP layer hold, the SQLite implementation
//! that is the embedded default, and `MemoryStore`, which keeps everything in memory for tests
//! and embedders.
//!
//! Consumers hold `Arc<dyn JobStore>`; only the server binary constructs a concrete store (test
//! code and the embedding example may build one). The SQLite store keeps one writer thread that
//! commits whatever is queued in one transaction and acknowledges each caller after that commit
//! (group commit), and serves reads from an r2d2 pool. Every store passes the same conformance
//! suite, compiled for this crate's tests and with the `conformance` feature. Nothing outside
//! this crate names rusqlite or r2d2. This crate may depend on `holt-domain`; it must not depend
//! on the engine or the HTTP layer. Template files are read here too: they are the other thing
//! Holt keeps on disk. `backend` holds what every database backend shares (how variables and log
//! chunks are kept in a row, how entries are cut into chunks and pages read back from them, the
//! log budget), so that the PostgreSQL store in `holt-storage-postgres` keeps the same rows.

pub mod backend;
mod cluster;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod credentials;
pub mod dump;
mod error;
mod memory;
mod outbox;
mod sqlite;
mod store;
pub mod templates;

pub use cluster::{Admitted, CancelRequest, ClusterStore, Lease, Policy};
pub use error::StoreError;
pub use memory::MemoryStore;
pub use outbox::{Attempted, NewWebhook, Webhook};
pub use sqlite::{Durability, SqliteConfig, SqliteStore};
pub use store::{
    Created, FIRING_HISTORY_MS, Firing, Idempotency, JobRecord, JobStore, NewJob, Recovery,
    RetentionRule,
};
