use thiserror::Error;

/// Why a call did not give what it asked for. The variants are what a caller decides on:
/// fix the request (`Refused`), retry later or elsewhere (`Unreachable`), or report a bug.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered and refused: a bad parameter, a wrong key, an unknown token or
    /// template, a full queue. `reason` is the server's one line.
    #[error("{reason} (HTTP {status})")]
    Refused {
        /// The HTTP status code.
        status: u16,
        /// The server's one-line reason.
        reason: String,
    },
    /// The server could not be reached, or the connection broke before the answer was whole.
    #[error("{reason}")]
    Unreachable {
        /// What failed, naming the address.
        reason: String,
        /// The underlying failure.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The server's URL is not one this client can use.
    #[error("invalid server URL {0}")]
    InvalidUrl(String),
    /// The server answered something the API does not promise (not a Holt server, or another
    /// version).
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl Error {
    pub(crate) fn unreachable(
        what: &str,
        source: Box<dyn std::error::Error + Send + Sync>,
    ) -> Error {
        Error::Unreachable {
            reason: format!("{what}: {source}"),
            source: Some(source),
        }
    }
}
