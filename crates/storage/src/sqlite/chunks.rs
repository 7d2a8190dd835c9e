//! Log chunks: runs of consecutive entries of one job, stored as one row with their Otter text
//! form and their entries packed as JSON.

use holt_domain::{LogEntry, LogLevel, ScopePath};

use crate::StoreError;

/// The most entries one chunk holds, so that reading from an offset in its middle unpacks a
/// bounded amount.
pub(crate) const MAX_CHUNK: usize = 4096;

/// The most text one chunk holds (but for a single longer entry), so that writing a chunk
/// (which SQLite copies) and reading one back cost a bounded amount of memory however long the
/// lines are.
pub(crate) const MAX_CHUNK_BYTES: usize = 1024 * 1024;

/// One packed entry: level code, time, encoded scope, text.
pub(crate) type Packed = (i64, i64, String, String);

impl IntoEntry for Packed {
    fn into_entry(self, seq: u64) -> Result<LogEntry, StoreError> {
        Ok(LogEntry {
            seq,
            level: LogLevel::from_code(self.0)?,
            scope: ScopePath::decode(&self.2),
            time_ms: self.1,
            text: self.3,
        })
    }
}

/// Turns a packed entry back into an entry.
pub(crate) trait IntoEntry {
    fn into_entry(self, seq: u64) -> Result<LogEntry, StoreError>;
}

/// The Otter text form and the packed form of consecutive entries.
pub(crate) fn pack(entries: &[&LogEntry]) -> (String, String) {
    let mut body = String::with_capacity(entries.len() * 32);
    for entry in entries {
        holt_domain::format_entry(&mut body, entry);
    }
    let packed: Vec<(i64, i64, &str, &str)> = entries
        .iter()
        .map(|e| (e.level.code(), e.time_ms, e.scope.encode(), e.text.as_str()))
        .collect();
    let json =
        serde_json::to_string(&packed).expect("tuples of numbers and strings always serialize");
    (body, json)
}

/// The entries of a chunk, in order.
pub(crate) fn unpack(json: &str) -> Result<Vec<Packed>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("log chunk: {e}")))
}
