//! Reading, and following, a job's log: what the HTTP layer needs, so that it never reaches the
//! store itself.
//!
//! Followers are woken by the store's commit notices (see `JobStore::watch_committed`) and by
//! the job's status watch; nothing here re-checks on a timer.

use holt_domain::{JobStatus, JobToken, LogEntry};
use tokio::sync::watch;

use crate::{Engine, EngineError};

/// One page of a job's log in the Otter text form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextPage {
    /// The lines, each ended by a newline.
    pub text: String,
    /// The sequence number of the last entry in the page; `None` when the page is empty.
    pub last: Option<u64>,
}

impl Engine {
    /// The sequence number the job's next entry will get, as far as committed: a read from
    /// here on sees only entries written after this call.
    pub async fn log_end(&self, token: JobToken) -> Result<u64, EngineError> {
        Ok(self
            .store()
            .last_seq(token)
            .await?
            .map_or(0, |last| last + 1))
    }

    /// Entries `from..before` in the Otter text form, as many as fit in `max_bytes` (at least
    /// one, if there is one).
    pub async fn log_text_page(
        &self,
        token: JobToken,
        from: u64,
        before: u64,
        max_bytes: usize,
    ) -> Result<TextPage, EngineError> {
        let (text, last) = self
            .store()
            .logs_text(token, from, before, max_bytes)
            .await?;
        Ok(TextPage { text, last })
    }

    /// Entries from `from` on whose texts fit in `max_bytes` (at least one, if there is one).
    pub async fn log_entries(
        &self,
        token: JobToken,
        from: u64,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, EngineError> {
        Ok(self.store().logs_within(token, from, max_bytes).await?)
    }

    /// Follows a job's log while the job has not ended; `None` once it has (its whole log is
    /// then committed and a plain read gets all of it).
    pub async fn follow_log(&self, token: JobToken) -> Result<Option<LogFollower>, EngineError> {
        let Some(status) = self.status_watch(token).await? else {
            return Ok(None);
        };
        // Subscribed before the first read, so that no commit falls between a read and the wait
        // after it.
        let committed = self.store().watch_committed(token);
        Ok(Some(LogFollower {
            engine: self.clone(),
            token,
            status,
            committed,
            ended: false,
        }))
    }
}

/// A follower of one job's log: hands out its entries as they are committed, until the job
/// has ended and every entry is handed out.
#[derive(Debug)]
pub struct LogFollower {
    engine: Engine,
    token: JobToken,
    status: watch::Receiver<JobStatus>,
    committed: watch::Receiver<u64>,
    /// Set once the job's terminal status is known: every entry is committed, so the next
    /// empty read is the end.
    ended: bool,
}

impl LogFollower {
    /// The next entries from `from` on (as many as fit in `max_bytes`, at least one), waiting
    /// for their commit as long as the job runs; `None` when the job has ended and there is
    /// nothing from `from` on.
    pub async fn next(
        &mut self,
        from: u64,
        max_bytes: usize,
    ) -> Result<Option<Vec<LogEntry>>, EngineError> {
        loop {
            // Both watches are marked seen before the read: whatever changes after it wakes the
            // wait below.
            self.committed.borrow_and_update();
            self.ended |= self.status.borrow_and_update().is_terminal();
            let page = self.engine.log_entries(self.token, from, max_bytes).await?;
            if !page.is_empty() {
                return Ok(Some(page));
            }
            if self.ended {
                return Ok(None);
            }
            // A closed watch means the same as a terminal status: the status watch goes when the
            // job is forgotten after its end, the commit watch when the end is committed.
            tokio::select! {
                changed = self.committed.changed() => self.ended |= changed.is_err(),
                changed = self.status.changed() => self.ended |= changed.is_err(),
            }
        }
    }
}
