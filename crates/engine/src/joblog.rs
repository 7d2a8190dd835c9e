//! A job's log: numbers entries in logged order, masks secrets, bounds its size, and hands
//! entries to the store.
//!
//! Masking comes before cutting: a line is masked whole (a secret that starts before the cut is
//! replaced whole), and only then cut to the line limit, so a cut never leaves the start of a
//! secret behind.

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
    /// The most bytes of text kept; later lines are dropped after one line saying so.
    pub(crate) max_bytes: u64,
}

/// Where the log stands, under its lock.
#[derive(Debug)]
struct Cursor {
    /// The sequence number of the next entry.
    next: u64,
    /// The bytes of text handed to the store so far (counting only capped entries).
    bytes: u64,
    /// Whether the byte limit was reached (and said so).
    bytes_full: bool,
}

/// A secret line shorter than this (in characters) is not masked on its own: it would turn
/// common words into `***`. The whole value is masked whatever its length.
const MIN_SECRET_LINE_CHARS: usize = 4;

/// What replaces a secret.
const MASK: &str = "***";

/// The log of one running job. Concurrent writers (async blocks) are ordered by a lock held
/// while an entry is numbered and handed to the store, so sequence order is the order in which
/// the store receives entries and a committed log never has a gap.
#[derive(Debug)]
pub(crate) struct JobLog {
    token: JobToken,
    store: Arc<dyn JobStore>,
    cursor: Mutex<Cursor>,
    /// The texts to mask, longest first: each secret value whole, and each line of a multi-line
    /// value on its own (a program prints such a value as several lines).
    secrets: Vec<String>,
    limits: LogLimits,
    /// Counts the lines written, for `/metrics`.
    metrics: Option<Arc<Metrics>>,
}

impl JobLog {
    /// A log that starts at `next_seq` and replaces each of `secrets` (and each line of a
    /// multi-line one) with `***`.
    pub(crate) fn new(
        token: JobToken,
        store: Arc<dyn JobStore>,
        next_seq: u64,
        secrets: Vec<String>,
        limits: LogLimits,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        let secrets = secret_patterns(secrets);
        JobLog {
            token,
            store,
            cursor: Mutex::new(Cursor {
                next: next_seq,
                bytes: 0,
                bytes_full: false,
            }),
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
        // Masked whole first, so a multi-line secret written whole is masked as one.
        let masked = mask(&self.secrets, text, None).0;
        self.write_lines(level, scope, split_message(&masked), true)
            .await
    }

    /// Writes several lines as separate entries in one hand-over to the store.
    pub(crate) async fn write_many(
        &self,
        level: LogLevel,
        scope: &ScopePath,
        lines: &[String],
    ) -> Result<(), StoreError> {
        self.write_lines(
            level,
            scope,
            lines.iter().flat_map(|l| split_message(l)),
            true,
        )
        .await
    }

    /// Writes the engine's own closing line, which is kept even past the line limit so that a
    /// log always says how its job ended.
    pub(crate) async fn write_final(&self, level: LogLevel, text: &str) -> Result<(), StoreError> {
        let masked = mask(&self.secrets, text, None).0;
        self.write_lines(level, &ScopePath::root(), split_message(&masked), false)
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
        let mut cursor = self.cursor.lock().await;
        let cursor = &mut *cursor;
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
            if !capped {
                // The engine's own closing line is short and must be read whole.
                push(&mut cursor.next, level, mask(&self.secrets, line, None).0);
                continue;
            }
            if cursor.next >= self.limits.max_lines {
                if cursor.next == self.limits.max_lines {
                    let notice = format!(
                        "This job's log reached its limit of {} lines; later lines are dropped.",
                        self.limits.max_lines
                    );
                    push(&mut cursor.next, LogLevel::Warn, notice);
                }
                break;
            }
            if cursor.bytes_full {
                break;
            }
            let (text, cut) = mask(&self.secrets, line, Some(self.limits.max_line_bytes));
            let text = if cut {
                format!("{text} [line truncated]")
            } else {
                text
            };
            if cursor.bytes + text.len() as u64 > self.limits.max_bytes {
                cursor.bytes_full = true;
                let notice = format!(
                    "This job's log reached its limit of {} bytes; later lines are dropped.",
                    self.limits.max_bytes
                );
                push(&mut cursor.next, LogLevel::Warn, notice);
                break;
            }
            cursor.bytes += text.len() as u64;
            push(&mut cursor.next, level, text);
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

    /// `text` with every secret masked, for text the log shows in another form than it is
    /// written (such as quoted), which masking the written line would no longer find.
    pub(crate) fn masked(&self, text: &str) -> String {
        mask(&self.secrets, text, None).0
    }

    /// How many bytes of an output line a reader must keep so that the line can be masked
    /// before it is cut: the line limit, the longest secret (one that starts just before the
    /// limit must be seen whole), and room for a character cut in the middle.
    pub(crate) fn keep_bytes(&self) -> usize {
        let longest = self.secrets.first().map_or(0, String::len);
        self.limits
            .max_line_bytes
            .saturating_add(longest)
            .saturating_add(4)
    }
}

/// What to mask for these secret values, longest first: each value whole, and each line of a
/// multi-line value on its own (a program prints such a value as several lines).
pub(crate) fn secret_patterns(mut secrets: Vec<String>) -> Vec<String> {
    let lines: Vec<String> = secrets
        .iter()
        .filter(|s| s.contains(['\n', '\r']))
        .flat_map(|s| split_message(s).map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| line.chars().count() >= MIN_SECRET_LINE_CHARS)
        .collect();
    secrets.extend(lines);
    secrets.retain(|s| !s.is_empty());
    // Longer secrets first, so that a secret containing a shorter one is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

/// `text` with every secret replaced by `***`, and, given a limit, cut so that only what
/// stood in its first `limit` bytes is kept: a secret starting before the limit is masked
/// whole, even where it runs past it. Also says whether anything was cut away.
pub(crate) fn mask(secrets: &[String], text: &str, limit: Option<usize>) -> (String, bool) {
    let limit = limit.unwrap_or(usize::MAX);
    // The next place each secret occurs, from `pos` on.
    let mut next: Vec<Option<usize>> = secrets.iter().map(|s| text.find(s.as_str())).collect();
    let mut out = String::new();
    let mut pos = 0;
    loop {
        // The earliest occurrence; at one place, the longest secret (they are sorted so).
        let found = next
            .iter()
            .enumerate()
            .filter_map(|(i, at)| at.map(|at| (at, i)))
            .min();
        match found {
            Some((at, i)) if at < limit => {
                out.push_str(&text[pos..at]);
                out.push_str(MASK);
                pos = at + secrets[i].len();
                for (secret, at) in secrets.iter().zip(next.iter_mut()) {
                    if at.is_some_and(|at| at < pos) {
                        *at = text[pos..].find(secret.as_str()).map(|found| pos + found);
                    }
                }
            }
            _ => break,
        }
    }
    let mut end = limit.min(text.len()).max(pos);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&text[pos.min(end)..end]);
    (out, end < text.len())
}

#[cfg(test)]
mod tests;
