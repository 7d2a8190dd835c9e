//! The webhook outbox: completion webhooks of ended jobs, kept until delivered or given up, so
//! that delivery survives restarts and is done by one node at a time.

use holt_domain::JobToken;

/// A webhook to add to the outbox for a job that has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    /// Where to POST.
    pub url: String,
    /// The environment variable holding the signing key, if the body is signed.
    pub secret_env: Option<String>,
}

/// A webhook taken from the outbox for one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its row, which the attempt's outcome is recorded against.
    pub id: i64,
    /// The job it reports.
    pub token: JobToken,
    /// Where to POST.
    pub url: String,
    /// The environment variable holding the signing key, if the body is signed.
    pub secret_env: Option<String>,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When it was added to the outbox, in milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// What came of a delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempted {
    /// The receiver answered 2xx: the webhook leaves the outbox.
    Delivered,
    /// It failed; the next attempt is due at this time.
    Retry {
        /// When, in milliseconds since the Unix epoch.
        next_ms: i64,
    },
    /// It failed and its time is up: it leaves the outbox undelivered.
    GaveUp,
}

impl Attempted {
    /// The stored state: 0 waiting, 1 delivered, 2 given up.
    pub fn code(self) -> i64 {
        match self {
            Attempted::Retry { .. } => 0,
            Attempted::Delivered => 1,
            Attempted::GaveUp => 2,
        }
    }
}
