use holt_storage::StoreError;
use thiserror::Error;

/// Why the engine could not do what it was asked.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The store failed; nothing was accepted.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine is shutting down and accepts no new jobs.
    #[error("the server is shutting down")]
    ShuttingDown,
}
