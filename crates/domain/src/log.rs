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

/// Whether a character is written escaped in the Otter text form: every control character but
/// TAB (the C0 controls including LF, CR, VT, FF and ESC, DEL, and the C1 controls including
/// NEL) and the Unicode line and paragraph separators. Any of them could end a line or move a
/// terminal's cursor, and so forge a line that the job never wrote.
pub fn escaped_in_text(c: char) -> bool {
    (c.is_control() && c != '\t') || c == '\u{2028}' || c == '\u{2029}'
}

/// Whether a text holds a character that the Otter text form escapes. A byte scan: stored text
/// is checked on every read, so this must cost far less than copying it.
pub fn needs_escape(text: &str) -> bool {
    has_escaped(text, false)
}

/// Whether a text body (lines ended by LF) already is in the Otter text form's escaped shape:
/// no character but the line ends needs escaping. Bodies a store kept before escaping existed
/// fail this and are rendered again.
pub fn body_is_escaped(body: &str) -> bool {
    !has_escaped(body, true)
}

fn has_escaped(text: &str, lf_allowed: bool) -> bool {
    let bytes = text.as_bytes();
    let ok_control = if lf_allowed { b'\n' } else { b'\t' };
    let precise = |i: usize| match bytes[i] {
        b'\t' => false,
        b'\n' => !lf_allowed,
        0x00..=0x1f | 0x7f => true,
        // U+0080..U+009F (C1) are encoded as C2 80..C2 9F.
        0xc2 => bytes.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)),
        // U+2028 and U+2029 are encoded as E2 80 A8 and E2 80 A9.
        0xe2 => bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)),
        _ => false,
    };
    // Most text is printable ASCII: a block of it is passed over with a test without branches,
    // which the compiler vectorises; only a block holding another byte is looked at closely.
    let mut start = 0;
    for block in bytes.chunks(64) {
        let suspect = block.iter().fold(false, |acc, &b| {
            acc | ((b < 0x20) & (b != ok_control) & (b != b'\t')) | (b >= 0x7f)
        });
        if suspect && (start..start + block.len()).any(precise) {
            return true;
        }
        start += block.len();
    }
    false
}

/// Appends `text` with every character that [`escaped_in_text`] selects written visibly:
/// `\xHH` (two lowercase hex digits) for a code point below U+0100 and `\uHHHH` for U+2028
/// and U+2029. A backslash in the text is kept as it is, so the text form is for reading; the
/// exact text of an entry is in the `ndjson` form.
pub fn push_escaped(out: &mut String, text: &str) {
    use std::fmt::Write;
    if !needs_escape(text) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        if !escaped_in_text(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
    }
}

/// Appends the Otter text form of one entry: `LEVEL: text` and a newline, exactly one line
/// whatever the text holds (see [`push_escaped`]).
pub fn format_line(out: &mut String, level: LogLevel, text: &str) {
    out.push_str(level.as_str());
    out.push_str(": ");
    push_escaped(out, text);
    out.push('\n');
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
        check(&[(LogLevel::Info, "tab\tkept")], "INFO: tab\tkept\n");
        check(&[(LogLevel::Info, "C:\\dir\\x0d")], "INFO: C:\\dir\\x0d\n");
    }

    #[test]
    fn controls_are_escaped_visibly() {
        check(
            &[(LogLevel::Info, "ok\rERROR: forged")],
            "INFO: ok\\x0dERROR: forged\n",
        );
        check(
            &[(LogLevel::Info, "a\u{2028}ERROR: b\u{2029}c")],
            "INFO: a\\u2028ERROR: b\\u2029c\n",
        );
        check(
            &[(
                LogLevel::Warn,
                "\u{1b}[2K\u{1b}[1A\u{7}\u{0}\u{b}\u{c}\u{7f}\u{85}\u{9f}",
            )],
            "WARN: \\x1b[2K\\x1b[1A\\x07\\x00\\x0b\\x0c\\x7f\\x85\\x9f\n",
        );
        check(
            &[(LogLevel::Error, "one\r\ntwo\n")],
            "ERROR: one\\x0d\\x0atwo\\x0a\n",
        );
        check(&[(LogLevel::Info, "ü\u{a0}€ 𝄞")], "INFO: ü\u{a0}€ 𝄞\n");
    }

    #[test]
    fn the_byte_scan_agrees_with_the_character_rule() {
        for code in (0..0x3000).chain(0xfff0..0x10100) {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let text = format!("a{c}b");
            assert_eq!(needs_escape(&text), escaped_in_text(c), "U+{code:04X}");
            assert_eq!(
                body_is_escaped(&format!("{text}\n")),
                !escaped_in_text(c) || c == '\n',
                "U+{code:04X}"
            );
        }
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
        fn every_body_line_has_a_prefix(entries in prop::collection::vec((level(), "\\PC*|[a-z\r\n]*|.*|[\u{0}-\u{a0}\u{2028}\u{2029}a\\\\]*"), 0..20)) {
            let mut body = String::new();
            for (level, text) in &entries {
                format_line(&mut body, *level, text);
            }
            prop_assert!(body.is_empty() || body.ends_with('\n'));
            let prefixes = ["DEBUG: ", "INFO: ", "WARN: ", "ERROR: "];
            let lines: Vec<&str> = body.split_terminator('\n').collect();
            prop_assert_eq!(lines.len(), entries.len());
            for (line, (level, _)) in lines.iter().zip(&entries) {
                prop_assert!(prefixes.iter().any(|p| line.starts_with(p)), "line {:?}", line);
                prop_assert!(line.starts_with(level.as_str()), "line {:?}", line);
                prop_assert!(!line.chars().any(escaped_in_text), "line {:?}", line);
            }
        }

        #[test]
        fn level_codes_round_trip(level in level()) {
            prop_assert_eq!(LogLevel::from_code(level.code()).unwrap(), level);
            prop_assert_eq!(level.as_str().parse::<LogLevel>().unwrap(), level);
        }
    }
}
