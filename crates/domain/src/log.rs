use std::fmt;
use std::str::FromStr;

use crate::DomainError;

/// The level of a log entry; the Otter endpoint prefixes each line with its word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogLevel {
    /// `DEBUG: `
    Debug,
    /// `INFO: `
    Info,
    /// `WARN: `
    Warn,
    /// `ERROR: `
    Error,
}

impl LogLevel {
    /// Every level, least severe first.
    pub const ALL: [LogLevel; 4] = [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ];

    /// The word before the colon in a log body line.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }

    /// The stable integer a store keeps for this level.
    pub fn code(self) -> i64 {
        match self {
            LogLevel::Debug => 0,
            LogLevel::Info => 1,
            LogLevel::Warn => 2,
            LogLevel::Error => 3,
        }
    }

    /// The level a stored code stands for.
    pub fn from_code(code: i64) -> Result<Self, DomainError> {
        LogLevel::ALL
            .into_iter()
            .find(|l| l.code() == code)
            .ok_or_else(|| DomainError::InvalidLevel(code.to_string()))
    }
}

impl FromStr for LogLevel {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogLevel::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| DomainError::InvalidLevel(s.to_owned()))
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in a plan an entry was written: the names of the enclosing log scopes, outermost first.
///
/// Kept in the text form a store keeps (segments joined with the ASCII unit separator, which a
/// scope name never contains because control characters are removed from names), behind an
/// `Arc`: every entry of a scope shares one allocation, and storing it copies nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopePath(Option<std::sync::Arc<str>>);

impl ScopePath {
    const SEPARATOR: char = '\u{1f}';

    /// The root scope: an entry written outside every named block.
    pub fn root() -> Self {
        ScopePath(None)
    }

    /// This path with one more scope inside it.
    pub fn child(&self, name: &str) -> Self {
        let clean: String = name.chars().filter(|c| !c.is_control()).collect();
        let text = match &self.0 {
            None => clean,
            Some(outer) => format!("{outer}{}{clean}", Self::SEPARATOR),
        };
        ScopePath(Some(text.into()))
    }

    /// The scope names, outermost first.
    pub fn segments(&self) -> Vec<&str> {
        match &self.0 {
            None => Vec::new(),
            Some(text) => text.split(Self::SEPARATOR).collect(),
        }
    }

    /// The text form a store keeps.
    pub fn encode(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// The path a stored text stands for.
    pub fn decode(text: &str) -> Self {
        if text.is_empty() {
            ScopePath::root()
        } else {
            ScopePath(Some(text.into()))
        }
    }
}

/// One entry of a job's log, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Position in the job's log, from 0, without gaps: the logged order.
    pub seq: u64,
    /// Severity.
    pub level: LogLevel,
    /// The log scope it was written in.
    pub scope: ScopePath,
    /// When it was written, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// One line of text, without a line break.
    pub text: String,
}

/// Splits a message into the lines that become separate entries, so that every line of a log
/// body keeps its level prefix. A trailing `\r` is dropped from each line, which makes CRLF
/// output read the same as LF output.
pub fn split_message(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
}

/// Appends the Otter text form of one entry: `LEVEL: text` and a newline. Should the text hold a
/// line break anyway, each of its lines gets the prefix, so the body invariant holds whatever a
/// store returns.
pub fn format_line(out: &mut String, level: LogLevel, text: &str) {
    for line in split_message(text) {
        out.push_str(level.as_str());
        out.push_str(": ");
        out.push_str(line);
        out.push('\n');
    }
}

/// Appends the Otter text form of a stored entry.
pub fn format_entry(out: &mut String, entry: &LogEntry) {
    format_line(out, entry.level, &entry.text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn level() -> impl Strategy<Value = LogLevel> {
        prop::sample::select(LogLevel::ALL.to_vec())
    }

    #[track_caller]
    fn check(entries: &[(LogLevel, &str)], expect: &str) {
        let mut body = String::new();
        for (level, text) in entries {
            format_line(&mut body, *level, text);
        }
        assert_eq!(body, expect);
    }

    #[test]
    fn body_text() {
        check(&[(LogLevel::Info, "hello")], "INFO: hello\n");
        check(
            &[
                (LogLevel::Debug, "a"),
                (LogLevel::Warn, "b"),
                (LogLevel::Error, "c"),
            ],
            "DEBUG: a\nWARN: b\nERROR: c\n",
        );
        check(&[(LogLevel::Info, "")], "INFO: \n");
        check(
            &[(LogLevel::Error, "one\r\ntwo\n")],
            "ERROR: one\nERROR: two\nERROR: \n",
        );
    }

    #[test]
    fn scope_paths_round_trip() {
        let path = ScopePath::root().child("Deploy").child("server\u{1f}1");
        assert_eq!(path.segments(), ["Deploy", "server1"]);
        assert_eq!(ScopePath::root().child("").segments(), [""]);
        assert_eq!(ScopePath::decode(path.encode()), path);
        assert_eq!(ScopePath::decode(""), ScopePath::root());
    }

    proptest! {
        #[test]
        fn every_body_line_has_a_prefix(entries in prop::collection::vec((level(), "\\PC*|[a-z\r\n]*"), 0..20)) {
            let mut body = String::new();
            for (level, text) in &entries {
                format_line(&mut body, *level, text);
            }
            prop_assert!(body.is_empty() || body.ends_with('\n'));
            let prefixes = ["DEBUG: ", "INFO: ", "WARN: ", "ERROR: "];
            for line in body.split_terminator('\n') {
                prop_assert!(prefixes.iter().any(|p| line.starts_with(p)), "line {:?}", line);
            }
            let expected_lines: usize = entries.iter().map(|(_, t)| split_message(t).count()).sum();
            prop_assert_eq!(body.split_terminator('\n').count(), expected_lines);
        }

        #[test]
        fn level_codes_round_trip(level in level()) {
            prop_assert_eq!(LogLevel::from_code(level.code()).unwrap(), level);
            prop_assert_eq!(level.as_str().parse::<LogLevel>().unwrap(), level);
        }
    }
}
