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
    /// A change to the infrastructure model breaks one of its rules; nothing was changed.
    #[error(transparent)]
    Infra(holt_domain::InfraError),
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
    /// The engine's configuration is outside its sensible ranges; the message names each
    /// setting.
    #[error("{0}")]
    Config(String),
    /// The engine failed unexpectedly while doing what it was asked; the server's log has the
    /// details.
    #[error("internal error: {0}")]
    Internal(String),
    /// The store did not confirm the write in time; the job may or may not be recorded.
    #[error("the database did not confirm the write within {seconds} seconds; retry later")]
    StoreTimeout {
        /// How long the engine waited.
        seconds: u64,
    },
    /// The secrets key file cannot be used: unreadable, malformed, or open to other users.
    #[error("{}: {reason}", path.display())]
    SecretsKey {
        /// The key file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(reason) => EngineError::Conflict(reason),
            StoreError::Infra(e) => EngineError::Infra(e),
            e => EngineError::Store(e),
        }
    }
}
