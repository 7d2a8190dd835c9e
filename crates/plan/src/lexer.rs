//! Character-level scanning shared by the parser and the printer.
//!
//! OtterScript cannot be cut into tokens ahead of parsing: whether `a (b)` is text or a name
//! followed by an argument list, and whether `#5` is a comment or text, depends on where it
//! appears. So instead of a token stream this module offers a [`Cursor`] that the parser drives,
//! and the small lexical rules (names, words, swim sentinels, where an unquoted string ends)
//! that the printer must agree with for its output to read back the same.

use crate::diag::{Diagnostic, Pos};

/// The longest variable (and function) name allowed.
pub(crate) const MAX_NAME_LEN: usize = 50;

/// The longest run of characters allowed between the `>`s of a swim sentinel.
const MAX_SENTINEL_EXTRA: usize = 5;

/// Whether `c` may start a variable or function name.
pub(crate) fn is_name_start(c: char) -> bool {
    c.is_alphabetic()
}

/// Whether `c` may continue a variable name, a keyword or an operation name.
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Whether `c` may start a word: a keyword, an operation, argument, directive or module name.
pub(crate) fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

/// The length of the swim-string sentinel at the start of `rest`, if one is there: `>>`, or
/// `>`, one to five characters, `>`.
///
/// The characters between the `>`s may not be whitespace, `` ` `` or `$`: that keeps text such
/// as `>$x>` or `> a >` from reading as the start of a swim string.
pub(crate) fn swim_sentinel_len(rest: &[char]) -> Option<usize> {
    if rest.first() != Some(&'>') {
        return None;
    }
    for (i, &c) in rest.iter().enumerate().skip(1).take(MAX_SENTINEL_EXTRA + 1) {
        if c == '>' {
            return Some(i + 1);
        }
        if c.is_whitespace() || c == '`' || c == '$' {
            return None;
        }
    }
    None
}

/// The character an escape sequence (backtick + `c`) stands for: `` `n `` is a newline, `` `t ``
/// a tab, and any other character stands for itself (`` `$ ``, `` `; ``, ``` `` ```).
pub(crate) fn unescape(c: char) -> char {
    match c {
        'n' => '\n',
        't' => '\t',
        c => c,
    }
}

/// Where a value is written, which decides where an implicit (unquoted) string ends.
///
/// An implicit string also always ends at a newline and at the end of the input. The printer
/// escapes any character at which [`Context::ends_at`] holds, so the two stay in agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    /// The value of `set` and the message of `throw`: ends at `;` or `}`.
    Statement,
    /// An operation's positional value: ends at `;`, `(` (the argument list) or `}`.
    Positional,
    /// A named argument, list element, map value, function or `call` argument: `,` or `)`.
    Args,
    /// An index `@list[...]`: ends at `]`.
    Index,
    /// The inside of `$(...)`: ends at `)`.
    Group,
    /// An operand of a condition: ends at `&&`, `||`, `==`, `!=`, `)` or `{`.
    Predicate,
    /// A `with` directive's value: ends at `,` or `{`.
    Directive,
    /// What `foreach ... in` iterates over: ends at `{`.
    Block,
    /// A module parameter's default: ends at `,` or `>`.
    Param,
}

impl Context {
    /// Whether an implicit string in this context ends at the start of `rest`.
    pub(crate) fn ends_at(self, rest: &[char]) -> bool {
        let Some(&c) = rest.first() else {
            return true;
        };
        let next = rest.get(1).copied();
        match self {
            Context::Statement => matches!(c, ';' | '}'),
            Context::Positional => matches!(c, ';' | '(' | '}'),
            Context::Args => matches!(c, ',' | ')'),
            Context::Index => c == ']',
            Context::Group => c == ')',
            Context::Predicate => {
                matches!(c, ')' | '{')
                    || matches!(
                        (c, next),
                        ('&', Some('&')) | ('|', Some('|')) | ('=', Some('=')) | ('!', Some('='))
                    )
            }
            Context::Directive => matches!(c, ',' | '{'),
            Context::Block => c == '{',
            Context::Param => matches!(c, ',' | '>'),
        }
    }
}

/// A saved cursor state, to look ahead and come back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    idx: usize,
    line: u32,
    column: u32,
    code_on_line: bool,
}

/// A position in the source, moved forward by the parser one character at a time.
#[derive(Debug)]
pub(crate) struct Cursor {
    chars: Vec<char>,
    idx: usize,
    line: u32,
    column: u32,
    /// Whether a character other than whitespace has been passed since the last newline; a
    /// comment only becomes a description when it starts on a line of its own.
    code_on_line: bool,
}

impl Cursor {
    pub(crate) fn new(src: &str) -> Self {
        // A byte-order mark is an encoding artefact, not part of the plan.
        let src = src.strip_prefix('\u{feff}').unwrap_or(src);
        Cursor {
            chars: src.chars().collect(),
            idx: 0,
            line: 1,
            column: 1,
            code_on_line: false,
        }
    }

    pub(crate) fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    /// An index into the source, only to tell whether the cursor moved.
    pub(crate) fn offset(&self) -> usize {
        self.idx
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark {
            idx: self.idx,
            line: self.line,
            column: self.column,
            code_on_line: self.code_on_line,
        }
    }

    pub(crate) fn reset(&mut self, mark: Mark) {
        self.idx = mark.idx;
        self.line = mark.line;
        self.column = mark.column;
        self.code_on_line = mark.code_on_line;
    }

    pub(crate) fn rest(&self) -> &[char] {
        self.chars.get(self.idx..).unwrap_or(&[])
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.chars.get(self.idx).copied()
    }

    pub(crate) fn peek_nth(&self, n: usize) -> Option<char> {
        self.chars.get(self.idx.saturating_add(n)).copied()
    }

    pub(crate) fn is_eof(&self) -> bool {
        self.idx >= self.chars.len()
    }

    /// Whether the source continues with `s`.
    pub(crate) fn at(&self, s: &str) -> bool {
        let mut rest = self.rest().iter();
        s.chars().all(|c| rest.next() == Some(&c))
    }

    /// Whether the source continues with `chars`.
    pub(crate) fn at_chars(&self, chars: &[char]) -> bool {
        self.rest().starts_with(chars)
    }

    pub(crate) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.idx += 1;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.column = 1;
            self.code_on_line = false;
        } else {
            self.column = self.column.saturating_add(1);
            if !c.is_whitespace() {
                self.code_on_line = true;
            }
        }
        Some(c)
    }

    pub(crate) fn bump_n(&mut self, n: usize) {
        for _ in 0..n {
            self.bump();
        }
    }

    pub(crate) fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.bump();
            true
        } else {
            false
        }
    }

    pub(crate) fn eat_str(&mut self, s: &str) -> bool {
        if self.at(s) {
            self.bump_n(s.chars().count());
            true
        } else {
            false
        }
    }

    /// Skips whitespace, newlines included.
    pub(crate) fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// Skips whitespace up to the end of the line.
    pub(crate) fn skip_inline_ws(&mut self) {
        while self.peek().is_some_and(|c| c != '\n' && c.is_whitespace()) {
            self.bump();
        }
    }

    fn word_len(&self) -> usize {
        match self.peek() {
            Some(c) if is_word_start(c) => {
                self.rest().iter().take_while(|&&c| is_name_char(c)).count()
            }
            _ => 0,
        }
    }

    /// The word at the cursor, without moving.
    pub(crate) fn peek_word(&self) -> Option<String> {
        let len = self.word_len();
        (len > 0).then(|| self.rest()[..len].iter().collect())
    }

    /// Consumes and returns the word at the cursor.
    pub(crate) fn word(&mut self) -> Option<String> {
        let word = self.peek_word()?;
        self.bump_n(word.chars().count());
        Some(word)
    }

    /// Consumes the keyword `kw` (any case) if the next word is exactly it.
    pub(crate) fn eat_keyword(&mut self, kw: &str) -> bool {
        match self.peek_word() {
            Some(w) if w.eq_ignore_ascii_case(kw) => {
                self.bump_n(w.chars().count());
                true
            }
            _ => false,
        }
    }

    /// Consumes and returns a variable name (without sigil) at the cursor.
    pub(crate) fn name(&mut self) -> Option<String> {
        if !self.peek().is_some_and(is_name_start) {
            return None;
        }
        let mut name = String::new();
        while let Some(c) = self.peek().filter(|&c| is_name_char(c)) {
            name.push(c);
            self.bump();
        }
        Some(name)
    }

    /// Skips whitespace and comments, and returns the description they make for a statement
    /// that follows: the comments written on lines of their own directly above it.
    ///
    /// A blank line between a comment and what follows detaches the comment, as does a
    /// `##AH:` header line; a comment after code on the same line is never a description.
    pub(crate) fn skip_trivia(&mut self) -> Result<Option<String>, Diagnostic> {
        let mut lines: Vec<String> = Vec::new();
        let mut own_line = !self.code_on_line;
        let mut newlines = 0u32;
        while let Some(c) = self.peek() {
            let next = self.peek_nth(1);
            if c == '\n' {
                self.bump();
                own_line = true;
                newlines = newlines.saturating_add(1);
                if newlines >= 2 {
                    lines.clear();
                }
            } else if c.is_whitespace() {
                self.bump();
            } else if c == '#' || (c == '/' && next == Some('/')) {
                let marker = if c == '#' { 1 } else { 2 };
                let mut text = String::new();
                while let Some(c) = self.peek().filter(|&c| c != '\n') {
                    text.push(c);
                    self.bump();
                }
                if text.starts_with("##AH:") {
                    lines.clear();
                } else if own_line {
                    // The markers are ASCII, so slicing after them is on a char boundary.
                    lines.push(text[marker..].trim().to_owned());
                }
                newlines = 0;
            } else if c == '/' && next == Some('*') {
                let start = self.pos();
                self.bump_n(2);
                let mut text = String::new();
                while !self.eat_str("*/") {
                    match self.bump() {
                        Some(c) => text.push(c),
                        None => {
                            return Err(Diagnostic::new(
                                start,
                                "unterminated comment starting here",
                            ));
                        }
                    }
                }
                if own_line {
                    lines.extend(text.split('\n').map(|l| l.trim().to_owned()));
                }
                newlines = 0;
            } else {
                break;
            }
        }
        let first = lines.iter().position(|l| !l.is_empty());
        let last = lines.iter().rposition(|l| !l.is_empty());
        Ok(match (first, last) {
            (Some(first), Some(last)) => Some(lines[first..=last].join("\n")),
            _ => None,
        })
    }

    /// How to name what is at the cursor in a diagnostic's "found ..." clause.
    pub(crate) fn describe(&self) -> String {
        const MAX_SHOWN: usize = 40;
        let rest = self.rest();
        let Some(&c) = rest.first() else {
            return "end of input".to_owned();
        };
        if c == '\n' {
            return "end of line".to_owned();
        }
        let run = |from: usize| {
            from + rest[from..]
                .iter()
                .take_while(|&&c| is_name_char(c))
                .count()
        };
        let len = if is_name_char(c) {
            run(0)
        } else if Some(c).and_then(crate::ast::Sigil::from_char).is_some()
            && rest.get(1).is_some_and(|&n| is_name_start(n))
        {
            run(1)
        } else if rest.len() >= 2
            && matches!(
                (c, rest[1]),
                ('=', '=')
                    | ('!', '=')
                    | ('&', '&')
                    | ('|', '|')
                    | ('=', '>')
                    | (':', ':')
                    | ('>', '>')
            )
        {
            2
        } else {
            1
        };
        let mut shown = String::new();
        for &c in &rest[..len.min(MAX_SHOWN)] {
            // Control characters would be invisible or break the one-line message.
            if c.is_control() {
                shown.extend(c.escape_debug());
            } else {
                shown.push(c);
            }
        }
        let ellipsis = if len > MAX_SHOWN { "..." } else { "" };
        format!("`{shown}{ellipsis}`")
    }
}
