//! PostgreSQL's errors as the store's: which mean the database cannot be reached or written now
//! (retried, and new jobs refused meanwhile), which mean a transaction lost a race and is simply
//! run again, and which belong to one command.

use holt_storage::StoreError;
use tokio_postgres::error::SqlState;

/// A client error with the whole of its cause in its message (tokio-postgres's own message
/// stops at its kind, such as "db error").
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    source: tokio_postgres::Error,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The message of a client error and its causes, on one line. It names no password: neither
/// tokio-postgres nor the server puts one in an error.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    message
}

/// Whether an error means the database cannot be reached or written now, rather than that one
/// statement is wrong: the connection is gone, the server is shutting down or out of room, or
/// it accepts no writes (a standby).
pub(crate) fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection failed, closed or timed out, or (a bug) a value did not
        // convert.
        let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
        return e.is_closed() || io || e.to_string() == "timeout waiting for server";
    };
    let class = &code.code()[..2];
    // 08 connection exception, 53 insufficient resources, 57 operator intervention (shutdown),
    // 58 system error, XX internal error.
    matches!(class, "08" | "53" | "57" | "58" | "XX")
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
}

/// Whether a transaction failed only because it lost a race with another one (a deadlock or a
/// serialization failure): running it again is the answer.
pub(crate) fn is_race(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|code| {
        *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// A client error as the store's error.
pub(crate) fn db_error(e: tokio_postgres::Error) -> StoreError {
    if is_unavailable(&e) {
        StoreError::Unavailable(describe(&e))
    } else {
        StoreError::Database(Box::new(Failure {
            message: describe(&e),
            source: e,
        }))
    }
}

/// A client error as the store's error, its message said in `context`'s words.
pub(crate) fn failure(context: &str, e: tokio_postgres::Error) -> StoreError {
    StoreError::Database(Box::new(Failure {
        message: format!("{context}: {}", describe(&e)),
        source: e,
    }))
}

/// A pool error as the store's error: the pool could not hand out a connection in time, or
/// could not open one.
pub(crate) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error(e),
        other => StoreError::Unavailable(format!("no database connection: {other}")),
    }
}
