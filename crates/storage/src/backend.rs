//! What every database backend shares, so that a row means the same in each and the bounds are
//! the same: how a job's variables are kept, the log chunk format (a run of a job's consecutive
//! entries as one row, with their Otter text form and the entries packed as JSON), how entries
//! are cut into chunks, how pages are read back from chunks, and the log budget.
//!
//! The SQLite store in this crate and the PostgreSQL store in `holt-storage-postgres` write and
//! read through these functions, so a chunk copied from one to the other reads back the same.

use holt_domain::{JobToken, LogEntry, LogLevel, ScopePath, Variables};

use crate::StoreError;

/// The most entries one chunk holds, so that reading from an offset in its middle unpacks a
/// bounded amount.
pub const MAX_CHUNK: usize = 4096;

/// The most text one chunk holds (but for a single longer entry), so that writing a chunk
/// and reading one back cost a bounded amount of memory however long the lines are.
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;

/// The most bytes of log entries that may be handed to a store's writer and not yet committed,
/// all jobs together. A count of commands alone does not bound memory (one command may hold one
/// short line or thousands of long ones), so an append first takes its size from this budget
/// and waits while it is spent: a job printing faster than the database takes is held back, and
/// through its pipe so is its program. The writer gives the bytes back as it commits.
pub const LOG_BUDGET_BYTES: usize = 8 * 1024 * 1024;

/// What an entry costs the budget besides its text: the entry itself and its allocation.
const ENTRY_OVERHEAD: usize = 96;

/// What handing `entries` to the writer costs the log budget. An append larger than the whole
/// budget takes all of it, so it still goes through, alone.
pub fn log_cost(entries: &[LogEntry]) -> u32 {
    let cost = entries
        .iter()
        .map(|e| e.text.len() + ENTRY_OVERHEAD)
        .sum::<usize>()
        .min(LOG_BUDGET_BYTES);
    // The budget is far below `u32::MAX`.
    cost as u32
}

/// One packed entry: level code, time, encoded scope, text.
type Packed = (i64, i64, String, String);

fn into_entry(packed: Packed, seq: u64) -> Result<LogEntry, StoreError> {
    Ok(LogEntry {
        seq,
        level: LogLevel::from_code(packed.0)?,
        scope: ScopePath::decode(&packed.2),
        time_ms: packed.1,
        text: packed.3,
    })
}

/// The Otter text form and the packed form of consecutive entries.
pub fn pack(entries: &[&LogEntry]) -> (String, String) {
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

/// The packed entries of a chunk, in order.
fn unpack(json: &str) -> Result<Vec<Packed>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("log chunk: {e}")))
}

/// Splits a job's entries into runs of consecutive sequence numbers of at most `MAX_CHUNK`
/// entries and `MAX_CHUNK_BYTES` of text each (a longer entry makes a run of its own): one
/// chunk each.
pub fn runs<'a, 'b>(entries: &'b [&'a LogEntry]) -> impl Iterator<Item = &'b [&'a LogEntry]> {
    let mut rest = entries;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = 1;
        let mut bytes = rest[0].text.len();
        while end < rest.len()
            && end < MAX_CHUNK
            && rest[end].seq == rest[end - 1].seq + 1
            && bytes + rest[end].text.len() <= MAX_CHUNK_BYTES
        {
            bytes += rest[end].text.len();
            end += 1;
        }
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some(run)
    })
}

/// Variables are kept as one form-encoded text: a format the HTTP layer speaks already, that
/// keeps every value byte for byte.
pub fn encode_variables(vars: &Variables) -> String {
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v)).collect();
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// The variables [`encode_variables`] wrote.
pub fn decode_variables(text: &str) -> Result<Variables, StoreError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("job variables: {e}")))?;
    pairs
        .into_iter()
        .map(|(k, v)| Ok((k.parse()?, v)))
        .collect()
}

/// A job's outputs are kept as a JSON array of `[name, value]` pairs, in declaration order.
pub fn encode_outputs(outputs: &holt_domain::Outputs) -> String {
    let pairs: Vec<(&str, &str)> = outputs.iter().map(|(k, v)| (k.as_str(), v)).collect();
    serde_json::to_string(&pairs).unwrap_or_default()
}

/// The outputs [`encode_outputs`] wrote.
pub fn decode_outputs(text: &str) -> Result<holt_domain::Outputs, StoreError> {
    let pairs: Vec<(String, String)> =
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("job outputs: {e}")))?;
    pairs
        .into_iter()
        .map(|(k, v)| Ok((k.parse()?, v)))
        .collect()
}

/// A page of entries gathered from a job's chunks, read in order of their last sequence
/// number: up to `limit` entries from `from_seq` on whose texts add up to at most `max_bytes`
/// (at least one).
#[derive(Debug)]
pub struct EntryPage {
    from_seq: u64,
    limit: usize,
    max_bytes: usize,
    size: usize,
    entries: Vec<LogEntry>,
}

impl EntryPage {
    /// An empty page.
    pub fn new(from_seq: u64, limit: usize, max_bytes: usize) -> EntryPage {
        EntryPage {
            from_seq,
            limit,
            max_bytes,
            size: 0,
            entries: Vec::new(),
        }
    }

    /// Adds the entries of the next chunk (its first sequence number and packed entries);
    /// false once the page is full and no further chunk is needed.
    pub fn push_chunk(&mut self, first_seq: u64, packed: &str) -> Result<bool, StoreError> {
        for (i, entry) in unpack(packed)?.into_iter().enumerate() {
            let seq = first_seq + i as u64;
            if seq < self.from_seq {
                continue;
            }
            self.size += entry.3.len();
            if self.entries.len() >= self.limit
                || (self.size > self.max_bytes && !self.entries.is_empty())
            {
                return Ok(false);
            }
            self.entries.push(into_entry(entry, seq)?);
        }
        Ok(true)
    }

    /// The entries gathered.
    pub fn into_entries(self) -> Vec<LogEntry> {
        self.entries
    }
}

/// A page of a job's log in the Otter text form, gathered from its chunks read in order of
/// their last sequence number: entries `from_seq..before_seq`, as many as fit in `max_bytes`
/// (at least one), and the last one's sequence number. A chunk's stored text is copied as it
/// is, whole or cut at line ends (each entry is one line); a chunk stored before control
/// characters were escaped is rendered again from its entries, so every body has the same form.
#[derive(Debug)]
pub struct TextPage {
    token: JobToken,
    from_seq: u64,
    before_seq: u64,
    max_bytes: usize,
    body: String,
    last: Option<u64>,
}

impl TextPage {
    /// An empty page.
    pub fn new(token: JobToken, from_seq: u64, before_seq: u64, max_bytes: usize) -> TextPage {
        TextPage {
            token,
            from_seq,
            before_seq,
            max_bytes,
            body: String::new(),
            last: None,
        }
    }

    /// Adds the next chunk: its first and last sequence numbers, its stored text and its packed
    /// entries (`packed` is called only for a chunk stored unescaped). False once the page is
    /// full and no further chunk is needed.
    pub fn push_chunk<'a>(
        &mut self,
        first: u64,
        chunk_last: u64,
        stored: &str,
        packed: impl FnOnce() -> Result<&'a str, StoreError>,
    ) -> Result<bool, StoreError> {
        let rendered;
        let text = if holt_domain::body_is_escaped(stored) {
            stored
        } else {
            let mut out = String::with_capacity(stored.len() + 64);
            for entry in unpack(packed()?)? {
                holt_domain::format_line(&mut out, LogLevel::from_code(entry.0)?, &entry.3);
            }
            rendered = out;
            rendered.as_str()
        };
        let wanted_last = chunk_last.min(self.before_seq.saturating_sub(1));
        if first >= self.from_seq
            && chunk_last == wanted_last
            && self.body.len() + text.len() <= self.max_bytes
        {
            self.body.push_str(text);
            self.last = Some(chunk_last);
            return Ok(self.body.len() < self.max_bytes);
        }
        // Part of the chunk: its lines from `from_seq` up to `before_seq` or the byte limit.
        let mut seq = first;
        let mut full = false;
        for line in text.split_inclusive('\n') {
            if seq > wanted_last {
                break;
            }
            if seq >= self.from_seq {
                if self.body.len() + line.len() > self.max_bytes && self.last.is_some() {
                    full = true;
                    break;
                }
                self.body.push_str(line);
                self.last = Some(seq);
            }
            seq += 1;
        }
        if seq <= wanted_last && !full {
            return Err(StoreError::Corrupt(format!(
                "log chunk of job {} from {first} has fewer lines than entries",
                self.token
            )));
        }
        Ok(!(full || chunk_last > wanted_last))
    }

    /// The text gathered and the sequence number of its last entry.
    pub fn finish(self) -> (String, Option<u64>) {
        (self.body, self.last)
    }
}
