//! A job's log: numbers entries in logged order, masks secrets, and hands entries to the store.

use std::sync::Arc;

use holt_domain::{JobToken, LogEntry, LogLevel, ScopePath, split_message};
use holt_storage::{JobStore, StoreError};
use tokio::sync::Mutex;

use crate::clock::now_ms;

/// The log of one running job. Concurrent writers (async blocks) are ordered by a lock held
/// while an entry is numbered and handed to the store, so sequence order is the order in which
/// the store receives entries and a committed log never has a gap.
#[derive(Debug)]
pub(crate) struct JobLog {
    token: JobToken,
    store: Arc<dyn JobStore>,
    next_seq: Mutex<u64>,
    secrets: Vec<String>,
}

impl JobLog {
    /// A log that starts at `next_seq` and replaces each of `secrets` with `***`.
    pub(crate) fn new(
        token: JobToken,
        store: Arc<dyn JobStore>,
        next_seq: u64,
        mut secrets: Vec<String>,
    ) -> Self {
        // Longer secrets first, so that a secret containing a shorter one is masked whole.
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        JobLog {
            token,
            store,
            next_seq: Mutex::new(next_seq),
            secrets,
        }
    }

    /// Writes a message; each of its lines becomes one entry.
    pub(crate) async fn write(
        &self,
        level: LogLevel,
        scope: &ScopePath,
        text: &str,
    ) -> Result<(), StoreError> {
        let masked = self.mask(text);
        let time_ms = now_ms();
        let mut next = self.next_seq.lock().await;
        let entries: Vec<LogEntry> = split_message(&masked)
            .map(|line| {
                let seq = *next;
                *next += 1;
                LogEntry {
                    seq,
                    level,
                    scope: scope.clone(),
                    time_ms,
                    text: line.to_owned(),
                }
            })
            .collect();
        self.store.append_logs(self.token, entries).await
    }

    fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}
