use thiserror::Error;

/// Why a value from outside (a request, a file, a database row) is not a valid domain value.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DomainError {
    /// A template name is empty, too long, or has a character outside `[A-Za-z0-9_.-]`.
    #[error(
        "invalid template name {0:?}: use 1 to 100 letters, digits, '_', '-' or '.', starting with a letter or digit"
    )]
    InvalidTemplateName(String),
    /// A job token is not the canonical text of a token.
    #[error("invalid job token {0:?}")]
    InvalidToken(String),
    /// A status word or code is not one of the five statuses.
    #[error("invalid job status {0:?}")]
    InvalidStatus(String),
    /// A trigger source word or code is not one of `api`, `ui` or `schedule`.
    #[error("invalid trigger source {0:?}")]
    InvalidSource(String),
    /// A log level word or code is not one of the four levels.
    #[error("invalid log level {0:?}")]
    InvalidLevel(String),
    /// A variable name breaks the plan language's naming rule.
    #[error(
        "invalid variable name {0:?}: use up to 50 letters, digits, '_' or '-', starting with a letter"
    )]
    InvalidVariableName(String),
    /// An `api_key_sha256` value is not 64 hexadecimal digits.
    #[error("invalid api_key_sha256: expected 64 hexadecimal digits")]
    InvalidKeyHash,
}
