use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the unit every stored time uses.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The wall clock schedules are read by.
#[derive(Debug, Clone, Copy, Default)]
pub enum Clock {
    /// The system's clock.
    #[default]
    System,
    /// A clock for tests: it read `start_ms` when it was made, and moves with tokio's clock,
    /// which a test pauses and advances at will (`tokio::time::pause`), so that a schedule's
    /// slots come without waiting for them.
    FollowsTokio {
        /// The wall time when the clock was made, in milliseconds since the Unix epoch.
        start_ms: i64,
        /// tokio's time then.
        start: tokio::time::Instant,
    },
}

impl Clock {
    /// A test clock reading `start_ms` now and moving with tokio's clock.
    pub fn follows_tokio(start_ms: i64) -> Clock {
        Clock::FollowsTokio {
            start_ms,
            start: tokio::time::Instant::now(),
        }
    }

    /// Milliseconds since the Unix epoch, by this clock.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => now_ms(),
            Clock::FollowsTokio { start_ms, start } => {
                start_ms + start.elapsed().as_millis() as i64
            }
        }
    }
}
