//! Commit notices for followers: per watched job, a watch the writer moves after each commit
//! that adds to the job's log.

use std::collections::HashMap;
use std::sync::Mutex;

use holt_domain::JobToken;
use tokio::sync::watch;

use super::writer::Command;

/// The watched jobs. Only jobs someone follows are here, so the writer's cost for every other
/// job is one look-up per commit (and none at all while nobody follows anything).
#[derive(Debug, Default)]
pub(crate) struct Committed {
    jobs: Mutex<HashMap<JobToken, watch::Sender<u64>>>,
}

impl Committed {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<JobToken, watch::Sender<u64>>> {
        // The map holds no invariant a panicking holder could break half-way.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A watch of `token`'s committed log. Watches nobody holds any more are dropped here, so
    /// the map never holds more than the jobs followed now.
    pub(crate) fn subscribe(&self, token: JobToken) -> watch::Receiver<u64> {
        let mut jobs = self.jobs();
        jobs.retain(|_, sender| sender.receiver_count() > 0);
        jobs.entry(token)
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    /// Tells the watchers of the jobs a committed batch wrote to. A terminal status closes its
    /// job's watch: nothing more will be committed to its log.
    pub(crate) fn publish(&self, batch: &[Command]) {
        let mut jobs = self.jobs();
        if jobs.is_empty() {
            return;
        }
        for command in batch {
            match command {
                Command::AppendLogs { token, entries, .. } => {
                    if let (Some(sender), Some(last)) = (jobs.get(token), entries.last()) {
                        sender.send_replace(last.seq + 1);
                    }
                }
                Command::SetStatus { token, status, .. } if status.is_terminal() => {
                    jobs.remove(token);
                }
                _ => {}
            }
        }
    }
}
