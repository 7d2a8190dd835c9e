//! Building an `SHExec` script whose interpolated values stay data, whatever the quoting around
//! them.
//!
//! A value's text never enters the script. Each value is handed to `/bin/sh` out of band, as an
//! environment variable (`HOLT_VALUE_1`, `HOLT_VALUE_2`, ...), and the script refers to it with a
//! parameter expansion, whose result the shell never reads as code. The reference is written to
//! suit the shell context the script's own text puts it in, which a small scanner tracks:
//!
//! - in commands (the script itself, `$( )`, backticks, subshells): `"${HOLT_VALUE_n}"`, one word,
//!   neither split nor globbed;
//! - inside double quotes and unquoted heredocs: `${HOLT_VALUE_n}`;
//! - inside single quotes: `'"${HOLT_VALUE_n}"'`, which closes the quotes, expands, and reopens;
//! - in a comment: the command form, which the shell ignores.
//!
//! Where no reference can work, the script is refused: inside a quoted heredoc (`<<'EOF'`), which
//! expands nothing; inside `${...}` and arithmetic (`$((...))`, `((...))`), which read their
//! contents as expressions; in a heredoc's delimiter; and right after a `\` or a `$`, which would
//! change what the reference means.
//!
//! The scanner fails safe: each reference is balanced in its quoting, so if it misreads the
//! context, the shell sees the reference as literal text or as an unquoted expansion, never the
//! value as code, and the script keeps the shape its author wrote.

use std::collections::VecDeque;

/// The prefix of the environment variables that carry a script's values. The job's own marks
/// (`HOLT_INSTANCE`, `HOLT_JOB_TOKEN`) do not start with it.
pub(crate) const VALUE_ENV_PREFIX: &str = "HOLT_VALUE_";

/// A piece of an `SHExec` script: the plan's own text, or an interpolated value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Script text, as the plan wrote it.
    Text(String),
    /// A value to pass as data.
    Value(String),
}

/// A script ready to run: its text, and the environment variables holding its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Script {
    pub(crate) text: String,
    pub(crate) env: Vec<(String, String)>,
}

/// The scanner's contexts, innermost last.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    /// Commands: the script itself, `$( )`, a subshell `( )` or backticks.
    Command(CommandKind),
    /// `"..."`.
    Double,
    /// `'...'`.
    Single,
    /// `${...}`, with the braces opened inside it.
    Brace(u32),
    /// `$((...))` or `((...))`, with the parentheses opened inside it.
    Arith(u32),
    /// `# ...` to the end of the line.
    Comment,
    /// The word after `<<` or `<<-`.
    Delimiter(Heredoc, Option<char>),
    /// A heredoc's body, up to its delimiter line.
    Body(Heredoc),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommandKind {
    Top,
    Substitution,
    Subshell,
    Backtick,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Heredoc {
    delimiter: String,
    /// `<<-`: leading tabs are stripped from the body and the delimiter line.
    strip_tabs: bool,
    /// Any part of the delimiter was quoted, so the body expands nothing.
    quoted: bool,
    /// The delimiter word has begun (blanks before it are skipped).
    started: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    Value(usize),
}

/// Builds the script: the plan's text as written, each value replaced by a reference to the
/// environment variable that carries it. The error says why a value cannot be placed where it is.
pub(crate) fn build(pieces: &[Piece]) -> Result<Script, String> {
    let mut tokens = Vec::new();
    let mut env = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => tokens.extend(text.chars().map(Token::Char)),
            Piece::Value(value) => {
                env.push((
                    format!("{VALUE_ENV_PREFIX}{}", env.len() + 1),
                    value.clone(),
                ));
                tokens.push(Token::Value(env.len()));
            }
        }
    }
    let text = Scanner::new(&tokens).run()?;
    Ok(Script { text, env })
}

struct Scanner<'a> {
    tokens: &'a [Token],
    at: usize,
    out: String,
    stack: Vec<Frame>,
    /// The last character was a `\` that escapes the next one.
    escaped: bool,
    /// The last character, for telling a comment's `#` from one inside a word or `$#`.
    prev: Option<char>,
    /// Heredocs whose bodies begin at the next newline.
    pending: VecDeque<Heredoc>,
    /// The current line's text, and whether a value is on it, for finding a heredoc's end.
    line: String,
    line_has_value: bool,
}

impl<'a> Scanner<'a> {
    fn new(tokens: &'a [Token]) -> Self {
        Scanner {
            tokens,
            at: 0,
            out: String::new(),
            stack: vec![Frame::Command(CommandKind::Top)],
            escaped: false,
            prev: None,
            pending: VecDeque::new(),
            line: String::new(),
            line_has_value: false,
        }
    }

    fn peek(&self, n: usize) -> Option<Token> {
        self.tokens.get(self.at + n).copied()
    }

    fn peek_char(&self, n: usize) -> Option<char> {
        match self.peek(n) {
            Some(Token::Char(c)) => Some(c),
            _ => None,
        }
    }

    /// Copies the next `n` characters to the script.
    fn take(&mut self, n: usize) {
        for _ in 0..n {
            let Some(Token::Char(c)) = self.peek(0) else {
                return;
            };
            self.out.push(c);
            self.at += 1;
            self.prev = Some(c);
            if c == '\n' {
                self.line.clear();
                self.line_has_value = false;
            } else {
                self.line.push(c);
            }
        }
    }

    /// Writes the reference to value `n` in the form `form` gives it.
    fn reference(&mut self, n: usize, form: fn(&str) -> String) {
        let name = format!("{VALUE_ENV_PREFIX}{n}");
        self.out.push_str(&form(&name));
        self.at += 1;
        self.prev = Some('x');
        self.line_has_value = true;
    }

    fn run(mut self) -> Result<String, String> {
        while let Some(token) = self.peek(0) {
            let frame = self
                .stack
                .last()
                .cloned()
                .unwrap_or(Frame::Command(CommandKind::Top));
            match frame {
                Frame::Command(kind) => self.command(kind, token)?,
                Frame::Double => self.double(token)?,
                Frame::Single => match token {
                    Token::Value(n) => self.reference(n, |v| format!("'\"${{{v}}}\"'")),
                    Token::Char('\'') => {
                        self.stack.pop();
                        self.take(1);
                    }
                    Token::Char(_) => self.take(1),
                },
                Frame::Brace(depth) => match token {
                    Token::Value(_) => {
                        return Err(refused("inside `${...}`", "put it in a variable first"));
                    }
                    Token::Char('{') => {
                        self.set_top(Frame::Brace(depth + 1));
                        self.take(1);
                    }
                    Token::Char('}') => {
                        match depth.checked_sub(1) {
                            Some(depth) => self.set_top(Frame::Brace(depth)),
                            None => {
                                self.stack.pop();
                            }
                        }
                        self.take(1);
                    }
                    Token::Char(_) => self.take(1),
                },
                Frame::Arith(depth) => match token {
                    Token::Value(_) => {
                        return Err(refused(
                            "inside shell arithmetic",
                            "the shell would read the value as an expression",
                        ));
                    }
                    Token::Char('(') => {
                        self.set_top(Frame::Arith(depth + 1));
                        self.take(1);
                    }
                    Token::Char(')') => {
                        match depth.checked_sub(1) {
                            Some(depth) => self.set_top(Frame::Arith(depth)),
                            None => {
                                self.stack.pop();
                                if self.peek_char(1) == Some(')') {
                                    self.take(1);
                                }
                            }
                        }
                        self.take(1);
                    }
                    Token::Char(_) => self.take(1),
                },
                Frame::Comment => match token {
                    Token::Value(n) => self.reference(n, |v| format!("\"${{{v}}}\"")),
                    // The newline ends the comment and then counts in the frame below, where it
                    // may begin a heredoc's body.
                    Token::Char('\n') => {
                        self.stack.pop();
                    }
                    Token::Char(_) => self.take(1),
                },
                Frame::Delimiter(heredoc, quote) => self.delimiter(heredoc, quote, token)?,
                Frame::Body(heredoc) => self.body(&heredoc, token)?,
            }
        }
        Ok(self.out)
    }

    fn set_top(&mut self, frame: Frame) {
        if let Some(top) = self.stack.last_mut() {
            *top = frame;
        }
    }

    /// A `\` escapes the next character; a value right after it is refused, since the reference's
    /// first character would be escaped instead.
    fn after_backslash(&mut self, token: Token) -> Result<(), String> {
        match token {
            Token::Value(_) => Err(refused(
                "right after a `\\`",
                "the backslash would change the reference's meaning",
            )),
            Token::Char(_) => {
                self.escaped = false;
                self.take(1);
                Ok(())
            }
        }
    }

    /// A `$` in a context that expands: `$(`, `$((` and `${` open contexts; a value right after
    /// a lone `$` is refused.
    fn dollar(&mut self) -> Result<(), String> {
        match (self.peek(1), self.peek_char(2)) {
            (Some(Token::Value(_)), _) => Err(refused(
                "right after a `$`",
                "write `` `$ `` only where the shell's own `$` is meant",
            )),
            (Some(Token::Char('(')), Some('(')) => {
                self.stack.push(Frame::Arith(0));
                self.take(3);
                Ok(())
            }
            (Some(Token::Char('(')), _) => {
                self.stack.push(Frame::Command(CommandKind::Substitution));
                self.take(2);
                Ok(())
            }
            (Some(Token::Char('{')), _) => {
                self.stack.push(Frame::Brace(0));
                self.take(2);
                Ok(())
            }
            _ => {
                self.take(1);
                Ok(())
            }
        }
    }

    fn command(&mut self, kind: CommandKind, token: Token) -> Result<(), String> {
        if self.escaped {
            return self.after_backslash(token);
        }
        let c = match token {
            Token::Value(n) => {
                self.reference(n, |v| format!("\"${{{v}}}\""));
                return Ok(());
            }
            Token::Char(c) => c,
        };
        match c {
            '\\' => {
                self.escaped = true;
                self.take(1);
            }
            '\'' => {
                self.stack.push(Frame::Single);
                self.take(1);
            }
            '"' => {
                self.stack.push(Frame::Double);
                self.take(1);
            }
            '`' if kind == CommandKind::Backtick => {
                self.stack.pop();
                self.take(1);
            }
            '`' => {
                self.stack.push(Frame::Command(CommandKind::Backtick));
                self.take(1);
            }
            '$' => self.dollar()?,
            '(' if self.peek_char(1) == Some('(') => {
                self.stack.push(Frame::Arith(0));
                self.take(2);
            }
            '(' => {
                self.stack.push(Frame::Command(CommandKind::Subshell));
                self.take(1);
            }
            ')' if kind == CommandKind::Substitution => {
                self.stack.pop();
                self.take(1);
                // The word a substitution stands in goes on: a `#` right after it is text.
                self.prev = Some('x');
            }
            ')' if kind == CommandKind::Subshell => {
                self.stack.pop();
                self.take(1);
            }
            '#' if self
                .prev
                .is_none_or(|p| p.is_whitespace() || ";&|()<>".contains(p)) =>
            {
                self.stack.push(Frame::Comment);
                self.take(1);
            }
            '<' if self.peek_char(1) == Some('<') && self.peek_char(2) == Some('<') => {
                // `<<<` is a here-string: a word, not a heredoc.
                self.take(3);
            }
            '<' if self.peek_char(1) == Some('<') => {
                let strip_tabs = self.peek_char(2) == Some('-');
                self.take(if strip_tabs { 3 } else { 2 });
                self.stack.push(Frame::Delimiter(
                    Heredoc {
                        strip_tabs,
                        ..Heredoc::default()
                    },
                    None,
                ));
            }
            '\n' => {
                self.take(1);
                if let Some(heredoc) = self.pending.pop_front() {
                    self.stack.push(Frame::Body(heredoc));
                }
            }
            _ => self.take(1),
        }
        Ok(())
    }

    fn double(&mut self, token: Token) -> Result<(), String> {
        if self.escaped {
            return self.after_backslash(token);
        }
        match token {
            Token::Value(n) => self.reference(n, |v| format!("${{{v}}}")),
            Token::Char('"') => {
                self.stack.pop();
                self.take(1);
            }
            Token::Char('\\') => {
                self.escaped = true;
                self.take(1);
            }
            Token::Char('`') => {
                self.stack.push(Frame::Command(CommandKind::Backtick));
                self.take(1);
            }
            Token::Char('$') => self.dollar()?,
            Token::Char(_) => self.take(1),
        }
        Ok(())
    }

    fn delimiter(
        &mut self,
        mut heredoc: Heredoc,
        quote: Option<char>,
        token: Token,
    ) -> Result<(), String> {
        let c = match token {
            Token::Value(_) => {
                return Err(refused(
                    "as a heredoc's delimiter",
                    "write the delimiter in the script",
                ));
            }
            Token::Char(c) => c,
        };
        let mut quote = quote;
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => heredoc.delimiter.push(c),
            None if (c == ' ' || c == '\t') && !heredoc.started => {}
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                heredoc.quoted = true;
                heredoc.started = true;
            }
            None if c == '\\' => {
                heredoc.quoted = true;
                heredoc.started = true;
                match self.peek(1) {
                    Some(Token::Value(_)) => {
                        return Err(refused(
                            "as a heredoc's delimiter",
                            "write the delimiter in the script",
                        ));
                    }
                    Some(Token::Char(next)) => {
                        heredoc.delimiter.push(next);
                        self.take(1);
                    }
                    None => {}
                }
            }
            None if c.is_whitespace() || ";&|<>()".contains(c) => {
                // The word ends here; the character counts in the command around it.
                self.stack.pop();
                self.pending.push_back(heredoc);
                return Ok(());
            }
            None => {
                heredoc.delimiter.push(c);
                heredoc.started = true;
            }
        }
        self.take(1);
        self.set_top(Frame::Delimiter(heredoc, quote));
        Ok(())
    }

    fn body(&mut self, heredoc: &Heredoc, token: Token) -> Result<(), String> {
        if let Token::Char('\n') = token {
            let line = if heredoc.strip_tabs {
                self.line.trim_start_matches('\t')
            } else {
                self.line.as_str()
            };
            let ends = !self.line_has_value && line == heredoc.delimiter;
            self.escaped = false;
            self.take(1);
            if ends {
                self.stack.pop();
                if let Some(next) = self.pending.pop_front() {
                    self.stack.push(Frame::Body(next));
                }
            }
            return Ok(());
        }
        if heredoc.quoted {
            return match token {
                Token::Value(_) => Err(
                    "SHExec: a value cannot be interpolated into a quoted heredoc (<<'EOF'), \
                     which expands nothing; use an unquoted one (<<EOF)"
                        .to_owned(),
                ),
                Token::Char(_) => {
                    self.take(1);
                    Ok(())
                }
            };
        }
        if self.escaped {
            return self.after_backslash(token);
        }
        match token {
            Token::Value(n) => self.reference(n, |v| format!("${{{v}}}")),
            Token::Char('\\') => {
                self.escaped = true;
                self.take(1);
            }
            Token::Char('`') => {
                self.stack.push(Frame::Command(CommandKind::Backtick));
                self.take(1);
            }
            Token::Char('$') => self.dollar()?,
            Token::Char(_) => self.take(1),
        }
        Ok(())
    }
}

fn refused(place: &str, why: &str) -> String {
    format!("SHExec: a value cannot be interpolated {place}: {why}")
}

#[cfg(test)]
mod tests;
