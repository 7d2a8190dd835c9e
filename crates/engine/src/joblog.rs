//! A job's log: numbers entries in logged order, masks secrets, bounds its size, and hands
//! entries to the store.

use std::sync::Arc;

use holt_domain::{JobToken, LogEntry, LogLevel, ScopePath, split_message};
use holt_storage::{JobStore, StoreError};
use tokio::sync::Mutex;

use crate::clock::now_ms;
use crate::metrics::Metrics;

/// How big a job's log may grow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogLimits {
    /// The most entries kept; later ones are dropped after one line saying so.
    pub(crate) max_lines: u64,
    /// The longest entry kept, in bytes; longer ones are cut and marked.
    pub(crate) max_line_bytes: usize,
}

/// The log of one running job. Concurrent writers (async blocks) are ordered by a lock held
/// while an entry is numbered and handed to the store, so sequence order is the order in which
/// the store receives entries and a committed log never has a gap.
#[derive(Debug)]
pub(crate) struct JobLog {
    token: JobToken,
    store: Arc<dyn JobStore>,
    next_seq: Mutex<u64>,
    secrets: Vec<String>,
    limits: LogLimits,
    /// Counts the lines written, for `/metrics`.
    metrics: Option<Arc<Metrics>>,
}

impl JobLog {
    /// A log that starts at `next_seq` and replaces each of `secrets` with `***`.
    pub(crate) fn new(
        token: JobToken,
        store: Arc<dyn JobStore>,
        next_seq: u64,
        mut secrets: Vec<String>,
        limits: LogLimits,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        // Longer secrets first, so that a secret containing a shorter one is masked whole.
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        JobLog {
            token,
            store,
            next_seq: Mutex::new(next_seq),
            secrets,
            limits,
            metrics,
        }
    }

    /// Writes a message; each of its lines becomes one entry, within the log's limits.
    pub(crate) async fn write(
        &self,
        level: LogLevel,
        scope: &ScopePath,
        text: &str,
    ) -> Result<(), StoreError> {
        self.write_lines(level, scope, split_message(&self.mask(text)), true)
            .await
    }

    /// Writes several lines as separate entries in one hand-over to the store.
    pub(crate) async fn write_many(
        &self,
        level: LogLevel,
        scope: &ScopePath,
        lines: &[String],
    ) -> Result<(), StoreError> {
        let masked: Vec<String> = lines.iter().map(|l| self.mask(l)).collect();
        self.write_lines(
            level,
            scope,
            masked.iter().flat_map(|l| split_message(l)),
            true,
        )
        .await
    }

    /// Writes the engine's own closing line, which is kept even past the line limit so that a
    /// log always says how its job ended.
    pub(crate) async fn write_final(&self, level: LogLevel, text: &str) -> Result<(), StoreError> {
        self.write_lines(
            level,
            &ScopePath::root(),
            split_message(&self.mask(text)),
            false,
        )
        .await
    }

    async fn write_lines<'a>(
        &self,
        level: LogLevel,
        scope: &ScopePath,
        lines: impl Iterator<Item = &'a str>,
        capped: bool,
    ) -> Result<(), StoreError> {
        let time_ms = now_ms();
        let mut next = self.next_seq.lock().await;
        let mut entries = Vec::new();
        let mut push = |next: &mut u64, level, text: String| {
            entries.push(LogEntry {
                seq: *next,
                level,
                scope: scope.clone(),
                time_ms,
                text,
            });
            *next += 1;
        };
        for line in lines {
            if capped && *next >= self.limits.max_lines {
                if *next == self.limits.max_lines {
                    let notice = format!(
                        "This job's log reached its limit of {} lines; later lines are dropped.",
                        self.limits.max_lines
                    );
                    push(&mut next, LogLevel::Warn, notice);
                }
                break;
            }
            // The engine's own closing line is short and must be read whole.
            let text = if capped {
                self.cut(line)
            } else {
                line.to_owned()
            };
            push(&mut next, level, text);
        }
        if entries.is_empty() {
            return Ok(());
        }
        let count = entries.len() as u64;
        self.store.append_logs(self.token, entries).await?;
        if let Some(metrics) = &self.metrics {
            metrics.logged(count);
        }
        Ok(())
    }

    /// A line within the byte limit, cut at a character boundary and marked when it was longer.
    fn cut(&self, line: &str) -> String {
        let max = self.limits.max_line_bytes;
        if line.len() <= max {
            return line.to_owned();
        }
        let mut end = max;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{} [line truncated]", &line[..end])
    }

    /// The instance id of the store the log is written to.
    pub(crate) fn instance(&self) -> &str {
        self.store.instance_id()
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
