use thiserror::Error;

/// Why a store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database was written by a newer schema than this build knows.
    #[error(
        "database schema version {found} is newer than this build of Holt understands (up to {known}); use a newer holtd"
    )]
    NewerSchema {
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A stored row does not hold valid domain values.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database cannot be written now (disk full, I/O error); new jobs are refused and
    /// other writes are retried until it can.
    #[error("the database cannot be written now: {0}")]
    Unavailable(String),
    /// The request conflicts with what is recorded (an idempotency key reused differently).
    #[error("{0}")]
    Conflict(String),
    /// A change to the infrastructure model breaks one of its rules; nothing was changed.
    #[error(transparent)]
    Infra(#[from] holt_domain::InfraError),
    /// The store has shut down and accepts no more writes.
    #[error("the store is closed")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if crate::sqlite::is_storage_failure(&e) {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Database(Box::new(e))
        }
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Database(Box::new(e))
    }
}

impl From<holt_domain::DomainError> for StoreError {
    fn from(e: holt_domain::DomainError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
