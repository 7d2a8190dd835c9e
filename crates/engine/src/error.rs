use holt_storage::StoreError;
use thiserror::Error;

/// Why the engine could not do what it was asked.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The store failed; nothing was accepted.
    #[error(transparent)]
    Store(StoreError),
    /// The request conflicts with what is recorded (an idempotency key used for another
    /// request); nothing was done.
    #[error("{0}")]
    Conflict(String),
    /// The engine is shutting down and accepts no new jobs.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Too many jobs wait to run; nothing was recorded.
    #[error("too many jobs are waiting to run (at most {limit}); retry later")]
    QueueFull {
        /// The configured limit.
        limit: usize,
    },
    /// The template already runs its `max_concurrent` jobs and its policy is `reject`.
    #[error("template {template} already runs its limit of {limit} jobs at once")]
    AtLimit {
        /// The template.
        template: String,
        /// Its `max_concurrent`.
        limit: u32,
    },
    /// The store did not confirm the write in time; the job may or may not be recorded.
    #[error("the database did not confirm the write within {seconds} seconds; retry later")]
    StoreTimeout {
        /// How long the engine waited.
        seconds: u64,
    },
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(reason) => EngineError::Conflict(reason),
            e => EngineError::Store(e),
        }
    }
}
