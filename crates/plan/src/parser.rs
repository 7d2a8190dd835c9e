//! The recursive-descent parser: source text to a [`Plan`], with every error found.
//!
//! Each statement either parses completely or yields one diagnostic, after which the parser
//! skips to the end of the broken statement (see [`Parser::recover`]) and goes on. Errors that
//! do not disturb the structure (an unknown directive, an over-long name, a misplaced `global`)
//! are recorded without stopping at all.

use crate::ast::{
    Arg, ArgValue, Block, CmpOp, Directive, DirectiveKind, Else, Expr, FnCall, If, InterpString,
    Operation, Param, Part, Plan, Predicate, SetScope, Sigil, Statement, StatementKind, StrKind,
    TargetKind, VarRef,
};
use crate::diag::{Diagnostic, Pos};
use crate::lexer::{
    Context, Cursor, MAX_NAME_LEN, is_name_start, is_word_start, swim_sentinel_len, unescape,
};

/// How deeply blocks, conditions and values may nest. Real plans stay far below this; the limit
/// exists so that hostile input yields a diagnostic instead of exhausting the stack.
const MAX_DEPTH: u32 = 64;

type PResult<T> = Result<T, Diagnostic>;

/// Parses a whole plan, returning the tree and every diagnostic (in the order found).
pub(crate) fn parse_plan(src: &str) -> (Plan, Vec<Diagnostic>) {
    let mut parser = Parser {
        cur: Cursor::new(src),
        diags: Vec::new(),
        depth: 0,
        globals_allowed: true,
        parsed_global_decl: false,
    };
    let statements = parser.statements(None);
    (
        Plan {
            body: Block { statements },
        },
        parser.diags,
    )
}

#[derive(Debug)]
struct Parser {
    cur: Cursor,
    diags: Vec<Diagnostic>,
    depth: u32,
    /// Whether a `global $x = v;` declaration may appear where the parser is: only at the top
    /// level, before any other statement.
    globals_allowed: bool,
    /// Set when the statement just parsed was a `global` declaration, so the top-level loop
    /// knows declarations may still follow.
    parsed_global_decl: bool,
}

/// Accumulates the parts of a string as it is scanned.
#[derive(Debug, Default)]
struct PartsBuilder {
    parts: Vec<Part>,
    text: String,
    /// How many bytes at the end of `text` are unescaped whitespace, which an implicit string
    /// drops: an escaped space (`` `  ``) is kept, so that any text can be written unquoted.
    trailing_ws: usize,
}

impl PartsBuilder {
    fn raw(&mut self, c: char) {
        self.text.push(c);
        if c.is_whitespace() {
            self.trailing_ws += c.len_utf8();
        } else {
            self.trailing_ws = 0;
        }
    }

    fn escaped(&mut self, c: char) {
        self.text.push(c);
        self.trailing_ws = 0;
    }

    fn part(&mut self, part: Part) {
        self.flush();
        self.parts.push(part);
    }

    fn flush(&mut self) {
        if !self.text.is_empty() {
            self.parts.push(Part::Text(std::mem::take(&mut self.text)));
        }
        self.trailing_ws = 0;
    }

    fn finish(mut self) -> Vec<Part> {
        self.flush();
        self.parts
    }

    fn finish_trimmed(mut self) -> Vec<Part> {
        let keep = self.text.len() - self.trailing_ws;
        self.text.truncate(keep);
        self.finish()
    }
}

impl Parser {
    // ---------------------------------------------------------------- helpers

    /// A diagnostic at the cursor: "expected {what}, found {what is there}".
    fn expected(&self, what: &str) -> Diagnostic {
        Diagnostic::new(
            self.cur.pos(),
            format!("expected {what}, found {}", self.cur.describe()),
        )
    }

    /// Skips whitespace and comments where no description can start.
    fn trivia(&mut self) -> PResult<()> {
        self.cur.skip_trivia().map(drop)
    }

    /// Runs `f` one nesting level deeper, refusing to go beyond [`MAX_DEPTH`].
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        if self.depth >= MAX_DEPTH {
            return Err(Diagnostic::new(
                self.cur.pos(),
                format!("nesting too deep (more than {MAX_DEPTH} levels)"),
            ));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn semi(&mut self, after: &str) -> PResult<()> {
        self.trivia()?;
        if self.cur.eat(';') {
            Ok(())
        } else {
            Err(self.expected(&format!("`;` after {after}")))
        }
    }

    fn check_name_len(&mut self, pos: Pos, name: &str, what: &str) {
        if name.chars().count() > MAX_NAME_LEN {
            self.diags.push(Diagnostic::new(
                pos,
                format!("{what} name longer than {MAX_NAME_LEN} characters"),
            ));
        }
    }

    /// Skips to the end of a broken statement: past the next `;` or the `}` of a block that
    /// opened after the error, or up to a `}` that closes an enclosing block, whichever comes
    /// first, passing over whole strings so their contents cannot end the skip early.
    fn recover(&mut self) {
        let mut depth = 0usize;
        while let Some(c) = self.cur.peek() {
            match c {
                ';' if depth == 0 => {
                    self.cur.bump();
                    return;
                }
                '{' => {
                    self.cur.bump();
                    depth += 1;
                }
                '}' => {
                    if depth == 0 {
                        return;
                    }
                    self.cur.bump();
                    depth -= 1;
                    if depth == 0 {
                        // A balanced block ends the broken statement, unless the statement
                        // goes on with `else` or `catch`.
                        let mark = self.cur.mark();
                        self.cur.skip_ws();
                        if !(self.cur.eat_keyword("else") || self.cur.eat_keyword("catch")) {
                            self.cur.reset(mark);
                            return;
                        }
                    }
                }
                '`' => self.cur.bump_n(2),
                '"' | '\'' => self.skip_quoted(c),
                '>' => match swim_sentinel_len(self.cur.rest()) {
                    Some(len) => self.skip_swim(len),
                    None => {
                        self.cur.bump();
                    }
                },
                _ => {
                    self.cur.bump();
                }
            }
        }
    }

    /// During recovery: passes over a quoted string if it closes on its line, else over its
    /// opening quote only.
    fn skip_quoted(&mut self, quote: char) {
        let rest = self.cur.rest();
        let mut i = 1;
        while let Some(&c) = rest.get(i) {
            match c {
                '\n' => break,
                '`' => i += 2,
                c if c == quote => {
                    self.cur.bump_n(i + 1);
                    return;
                }
                _ => i += 1,
            }
        }
        self.cur.bump();
    }

    /// During recovery: passes over a swim string, to the end of the input if it never closes.
    fn skip_swim(&mut self, len: usize) {
        let sentinel: Vec<char> = self.cur.rest()[..len].to_vec();
        self.cur.bump_n(len);
        while !self.cur.is_eof() {
            if self.cur.eat('`') {
                self.cur.bump();
            } else if self.cur.at_chars(&sentinel) {
                self.cur.bump_n(len);
                return;
            } else {
                self.cur.bump();
            }
        }
    }

    // ---------------------------------------------------------------- statements

    /// Parses statements up to the `}` that closes the block opened at `open`, or to the end of
    /// the input for the top level (`open` is `None`).
    fn statements(&mut self, open: Option<Pos>) -> Vec<Statement> {
        let top = open.is_none();
        let mut decls_allowed = top;
        let mut statements = Vec::new();
        loop {
            let description = match self.cur.skip_trivia() {
                Ok(description) => description,
                Err(d) => {
                    self.diags.push(d);
                    None
                }
            };
            match (self.cur.peek(), open) {
                (None, None) => break,
                (None, Some(open)) => {
                    self.diags.push(Diagnostic::new(
                        self.cur.pos(),
                        format!(
                            "expected `}}` to close the block opened at {open}, found end of input"
                        ),
                    ));
                    break;
                }
                (Some('}'), Some(_)) => {
                    self.cur.bump();
                    break;
                }
                (Some('}'), None) => {
                    self.diags.push(self.expected("a statement"));
                    self.cur.bump();
                    continue;
                }
                (Some(_), _) => {}
            }
            self.globals_allowed = decls_allowed;
            self.parsed_global_decl = false;
            let start = self.cur.offset();
            match self.statement(description) {
                Ok(statement) => statements.push(statement),
                Err(d) => {
                    self.diags.push(d);
                    self.recover();
                    if self.cur.offset() == start {
                        self.cur.bump();
                    }
                }
            }
            decls_allowed &= self.parsed_global_decl;
        }
        statements
    }

    fn statement(&mut self, description: Option<String>) -> PResult<Statement> {
        let pos = self.cur.pos();
        let kind = match self.cur.peek() {
            Some('{') => StatementKind::Block(self.block()?),
            Some(c) if is_word_start(c) => self.word_statement(pos)?,
            _ => return Err(self.expected("a statement")),
        };
        Ok(Statement {
            pos,
            description,
            kind,
        })
    }

    /// A statement that starts with a word: a keyword statement or an operation.
    fn word_statement(&mut self, pos: Pos) -> PResult<StatementKind> {
        let word = self.cur.word().unwrap_or_default();
        // `Namespace::Name` is always an operation, even when the namespace reads as a keyword.
        if self.cur.at("::") {
            return Ok(StatementKind::Operation(self.operation(pos, word)?));
        }
        let simple = |parser: &mut Self, kind| parser.semi("statement").map(|()| kind);
        match word.to_ascii_lowercase().as_str() {
            "set" => {
                self.trivia()?;
                let scope = if self.cur.eat_keyword("local") {
                    SetScope::Local
                } else if self.cur.eat_keyword("global") {
                    SetScope::Global
                } else {
                    SetScope::Default
                };
                self.assignment(scope, "after `set`")
            }
            "global" => {
                self.parsed_global_decl = true;
                if !self.globals_allowed {
                    self.diags.push(Diagnostic::new(
                        pos,
                        "`global` declarations must come before any other statement of the plan",
                    ));
                }
                self.assignment(SetScope::Global, "after `global`")
            }
            "with" => self.with(),
            "await" => {
                self.trivia()?;
                let name = self.cur.word();
                self.semi("statement")?;
                Ok(StatementKind::Await(name))
            }
            "if" => Ok(StatementKind::If(self.if_rest()?)),
            "else" => Err(Diagnostic::new(pos, "`else` without a matching `if`")),
            "catch" => Err(Diagnostic::new(pos, "`catch` without a matching `try`")),
            "foreach" => self.foreach(),
            "for" => self.for_unsupported(),
            "try" => {
                let body = self.expect_block("after `try`")?;
                self.trivia()?;
                if !self.cur.eat_keyword("catch") {
                    return Err(self.expected("`catch` after the `try` block"));
                }
                let catch = self.expect_block("after `catch`")?;
                Ok(StatementKind::Try { body, catch })
            }
            "throw" => {
                // The message is optional, so it must start on the keyword's line: otherwise a
                // forgotten `;` would swallow the next statement as the message.
                self.cur.skip_inline_ws();
                let message = match self.cur.peek() {
                    None | Some('\n' | ';' | '}') => None,
                    Some(_) => Some(self.value(Context::Statement)?),
                };
                self.semi("statement")?;
                Ok(StatementKind::Throw(message))
            }
            "fail" => simple(self, StatementKind::Fail),
            "error" => simple(self, StatementKind::Error),
            "warn" => simple(self, StatementKind::Warn),
            "break" => simple(self, StatementKind::Break),
            "continue" => simple(self, StatementKind::Continue),
            "return" => simple(self, StatementKind::Return),
            "force" => {
                self.trivia()?;
                let kind = if self.cur.eat_keyword("warn") {
                    StatementKind::ForceWarn
                } else if self.cur.eat_keyword("normal") {
                    StatementKind::ForceNormal
                } else {
                    return Err(self.expected("`warn` or `normal` after `force`"));
                };
                simple(self, kind)
            }
            "module" => self.module(),
            "call" => self.call(),
            _ => Ok(StatementKind::Operation(self.operation(pos, word)?)),
        }
    }

    /// The rest of `set $x = v;` after the scope keywords (`after` names what came before the
    /// variable, for the diagnostic).
    fn assignment(&mut self, scope: SetScope, after: &str) -> PResult<StatementKind> {
        self.trivia()?;
        let target = self.var_ref(&format!("a variable {after}"))?;
        self.trivia()?;
        if !self.cur.eat('=') {
            return Err(self.expected(&format!("`=` after `{target}`")));
        }
        let value = self.value(Context::Statement)?;
        self.semi("statement")?;
        Ok(StatementKind::Set {
            scope,
            target,
            value,
        })
    }

    fn operation(&mut self, pos: Pos, first: String) -> PResult<Operation> {
        let (namespace, name) = if self.cur.eat_str("::") {
            match self.cur.word() {
                Some(name) => (Some(first), name),
                None => return Err(self.expected("an operation name after `::`")),
            }
        } else {
            (None, first)
        };
        // The positional value is optional, so it must start on the name's line, for the same
        // reason as `throw`'s message.
        self.cur.skip_inline_ws();
        let positional = match self.cur.peek() {
            None | Some('\n' | ';' | '(' | '}') => None,
            Some(_) => Some(self.value(Context::Positional)?),
        };
        self.trivia()?;
        let args = if self.cur.eat('(') {
            self.operation_args()?
        } else {
            Vec::new()
        };
        self.semi("operation")?;
        Ok(Operation {
            pos,
            namespace,
            name,
            positional,
            args,
        })
    }

    /// `Name: value, Out => $var )`, after the `(`.
    fn operation_args(&mut self) -> PResult<Vec<Arg>> {
        let mut args = Vec::new();
        loop {
            self.trivia()?;
            if self.cur.eat(')') {
                return Ok(args);
            }
            let Some(name) = self.cur.word() else {
                return Err(self.expected("an argument name"));
            };
            self.trivia()?;
            let value = if self.cur.eat_str("=>") {
                self.trivia()?;
                ArgValue::Output(self.var_ref("a variable after `=>`")?)
            } else if self.cur.eat(':') {
                ArgValue::Input(self.value(Context::Args)?)
            } else {
                return Err(self.expected(&format!("`:` or `=>` after argument `{name}`")));
            };
            args.push(Arg { name, value });
            self.trivia()?;
            if self.cur.eat(')') {
                return Ok(args);
            }
            if !self.cur.eat(',') {
                return Err(self.expected("`,` or `)` after the argument"));
            }
        }
    }

    fn with(&mut self) -> PResult<StatementKind> {
        let mut directives = Vec::new();
        loop {
            self.trivia()?;
            directives.push(self.directive()?);
            self.trivia()?;
            if !self.cur.eat(',') {
                break;
            }
        }
        if self.cur.peek() != Some('{') {
            return Err(self.expected("`,` or `{` after the directive"));
        }
        let body = self.block()?;
        Ok(StatementKind::With { directives, body })
    }

    fn directive(&mut self) -> PResult<Directive> {
        let pos = self.cur.pos();
        let Some(name) = self.cur.word() else {
            return Err(self.expected("a directive"));
        };
        self.trivia()?;
        let has_value = self.cur.eat('=');
        let kind = match name.to_ascii_lowercase().as_str() {
            "async" if has_value => {
                self.trivia()?;
                match self.cur.word() {
                    Some(block_name) => DirectiveKind::Async(Some(block_name)),
                    None => return Err(self.expected("a name after `async=`")),
                }
            }
            "async" => DirectiveKind::Async(None),
            "retry" | "timeout" | "lock" if !has_value => {
                return Err(self.expected(&format!("`=` after `{name}`")));
            }
            "retry" => DirectiveKind::Retry(self.value(Context::Directive)?),
            "timeout" => DirectiveKind::Timeout(self.value(Context::Directive)?),
            "lock" => DirectiveKind::Lock(self.value(Context::Directive)?),
            lower => {
                if !matches!(lower, "credentials" | "isolation" | "executionpolicy") {
                    // Not fatal: the rest of the statement still parses, and the loader would
                    // reject the plan anyway.
                    self.diags
                        .push(Diagnostic::new(pos, format!("unknown directive `{name}`")));
                }
                if has_value {
                    self.value(Context::Directive)?;
                }
                DirectiveKind::Unsupported(name)
            }
        };
        Ok(Directive { pos, kind })
    }

    fn if_rest(&mut self) -> PResult<If> {
        let cond = self.predicate()?;
        let then = self.expect_block("after the condition")?;
        let mark = self.cur.mark();
        let has_else = self.trivia().is_ok() && self.cur.eat_keyword("else");
        if !has_else {
            // Whatever follows belongs to the next statement, its description included.
            self.cur.reset(mark);
            return Ok(If {
                cond,
                then,
                otherwise: None,
            });
        }
        self.trivia()?;
        let pos = self.cur.pos();
        let otherwise = if self.cur.eat_keyword("if") {
            Else::If {
                pos,
                branch: self.nested(Self::if_rest)?,
            }
        } else {
            Else::Block(self.expect_block("or `if` after `else`")?)
        };
        Ok(If {
            cond,
            then,
            otherwise: Some(Box::new(otherwise)),
        })
    }

    fn foreach(&mut self) -> PResult<StatementKind> {
        self.trivia()?;
        if let Some(kind) = self.unsupported_target_kind() {
            self.trivia()?;
            if !self.cur.eat_keyword("in") {
                return Err(self.expected(&format!("`in` after `foreach {kind}`")));
            }
            let target = self.value(Context::Block)?;
            let body = self.expect_block("after the list to loop over")?;
            return Ok(match target_kind(&kind) {
                Some(kind) => StatementKind::Target {
                    kind,
                    each: true,
                    target,
                    body,
                },
                None => StatementKind::Unsupported {
                    construct: format!("foreach {kind}"),
                    body,
                },
            });
        }
        let var = self.var_ref("a variable after `foreach`")?;
        self.trivia()?;
        if !self.cur.eat_keyword("in") {
            return Err(self.expected("`in` after the loop variable"));
        }
        let source = self.value(Context::Block)?;
        let body = self.expect_block("after the list to loop over")?;
        Ok(StatementKind::Foreach { var, source, body })
    }

    /// `for server|role X { }`, and `for directory X { }`, which Holt parses but does not run.
    fn for_unsupported(&mut self) -> PResult<StatementKind> {
        self.trivia()?;
        let Some(kind) = self.unsupported_target_kind() else {
            return Err(self.expected("`server`, `role` or `directory` after `for`"));
        };
        self.cur.skip_ws();
        let target_kind = target_kind(&kind);
        let target = if self.cur.peek() != Some('{') {
            Some(self.value(Context::Block)?)
        } else if target_kind.is_some() {
            return Err(self.expected(&format!("a {kind} name after `for {kind}`")));
        } else {
            None
        };
        let body = self.expect_block(&format!("after `for {kind}`"))?;
        Ok(match (target_kind, target) {
            (Some(kind), Some(target)) => StatementKind::Target {
                kind,
                each: false,
                target,
                body,
            },
            _ => StatementKind::Unsupported {
                construct: format!("for {kind}"),
                body,
            },
        })
    }

    /// Consumes `server`, `role` or `directory` and returns it lowercased.
    fn unsupported_target_kind(&mut self) -> Option<String> {
        let kind = self.cur.peek_word()?.to_ascii_lowercase();
        if matches!(kind.as_str(), "server" | "role" | "directory") {
            self.cur.word();
            Some(kind)
        } else {
            None
        }
    }

    fn module(&mut self) -> PResult<StatementKind> {
        self.trivia()?;
        let Some(name) = self.cur.word() else {
            return Err(self.expected("a module name after `module`"));
        };
        self.trivia()?;
        let mut params = Vec::new();
        if self.cur.eat('<') {
            loop {
                self.trivia()?;
                if self.cur.eat('>') {
                    break;
                }
                let var = self.var_ref("a module parameter")?;
                self.trivia()?;
                let default = if self.cur.eat('=') {
                    Some(self.value(Context::Param)?)
                } else {
                    None
                };
                params.push(Param { var, default });
                self.trivia()?;
                if self.cur.eat('>') {
                    break;
                }
                if !self.cur.eat(',') {
                    return Err(self.expected("`,` or `>` after the module parameter"));
                }
            }
        }
        let body = self.expect_block("after the module's name and parameters")?;
        Ok(StatementKind::Module { name, params, body })
    }

    fn call(&mut self) -> PResult<StatementKind> {
        self.trivia()?;
        let Some(mut name) = self.cur.word() else {
            return Err(self.expected("a module name after `call`"));
        };
        if self.cur.eat_str("::") {
            let Some(rest) = self.cur.word() else {
                return Err(self.expected("a module name after `::`"));
            };
            name = format!("{name}::{rest}");
        }
        self.trivia()?;
        let mut args = Vec::new();
        if self.cur.eat('(') {
            loop {
                self.trivia()?;
                if self.cur.eat(')') {
                    break;
                }
                let Some(arg) = self.cur.word() else {
                    return Err(self.expected("an argument name"));
                };
                self.trivia()?;
                if !self.cur.eat(':') {
                    return Err(self.expected(&format!("`:` after argument `{arg}`")));
                }
                args.push((arg, self.value(Context::Args)?));
                self.trivia()?;
                if self.cur.eat(')') {
                    break;
                }
                if !self.cur.eat(',') {
                    return Err(self.expected("`,` or `)` after the argument"));
                }
            }
        }
        self.semi("statement")?;
        Ok(StatementKind::Call { name, args })
    }

    /// Skips trivia and parses a block, or reports "expected `{` {after}".
    fn expect_block(&mut self, after: &str) -> PResult<Block> {
        self.trivia()?;
        if self.cur.peek() != Some('{') {
            return Err(self.expected(&format!("`{{` {after}")));
        }
        self.block()
    }

    /// A block, at its `{`.
    fn block(&mut self) -> PResult<Block> {
        let open = self.cur.pos();
        self.nested(|parser| {
            parser.cur.bump();
            Ok(Block {
                statements: parser.statements(Some(open)),
            })
        })
    }

    // ---------------------------------------------------------------- conditions

    fn predicate(&mut self) -> PResult<Predicate> {
        self.nested(Self::or)
    }

    fn or(&mut self) -> PResult<Predicate> {
        let mut left = self.and()?;
        loop {
            self.trivia()?;
            if !self.cur.eat_str("||") {
                return Ok(left);
            }
            let right = self.and()?;
            left = Predicate::Or(Box::new(left), Box::new(right));
        }
    }

    fn and(&mut self) -> PResult<Predicate> {
        let mut left = self.unary()?;
        loop {
            self.trivia()?;
            if !self.cur.eat_str("&&") {
                return Ok(left);
            }
            let right = self.unary()?;
            left = Predicate::And(Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> PResult<Predicate> {
        self.cur.skip_ws();
        if self.cur.peek() == Some('!') && self.cur.peek_nth(1) != Some('=') {
            self.cur.bump();
            let inner = self.nested(Self::unary)?;
            return Ok(Predicate::Not(Box::new(inner)));
        }
        if self.cur.eat('(') {
            let inner = self.predicate()?;
            self.trivia()?;
            if !self.cur.eat(')') {
                return Err(self.expected("`)` to close `(`"));
            }
            return Ok(inner);
        }
        let left = self.value(Context::Predicate)?;
        self.trivia()?;
        let op = if self.cur.eat_str("==") {
            CmpOp::Eq
        } else if self.cur.eat_str("!=") {
            CmpOp::Ne
        } else {
            return Ok(Predicate::Value(left));
        };
        let right = self.value(Context::Predicate)?;
        Ok(Predicate::Compare { left, op, right })
    }

    // ---------------------------------------------------------------- values

    /// A variable in code (not in a string): `$x`, `@l`, `%m` or the explicit `${x}`.
    fn var_ref(&mut self, expected: &str) -> PResult<VarRef> {
        let start = self.cur.pos();
        let mark = self.cur.mark();
        let Some(sigil) = self.cur.peek().and_then(Sigil::from_char) else {
            return Err(self.expected(expected));
        };
        self.cur.bump();
        let explicit = self.cur.eat('{');
        let Some(name) = self.cur.name() else {
            self.cur.reset(mark);
            return Err(self.expected(expected));
        };
        self.check_name_len(start, &name, "variable");
        if explicit && !self.cur.eat('}') {
            return Err(self.expected("`}` after the variable name"));
        }
        Ok(VarRef { sigil, name })
    }

    /// A value in the given context, after skipping whitespace (but not comments: `#` and `//`
    /// often start text, such as `#5` or `//server/share`).
    fn value(&mut self, ctx: Context) -> PResult<Expr> {
        self.cur.skip_ws();
        self.nested(|parser| parser.value_here(ctx))
    }

    fn value_here(&mut self, ctx: Context) -> PResult<Expr> {
        let (first, second) = (self.cur.peek(), self.cur.peek_nth(1));
        if let Some(len) = swim_sentinel_len(self.cur.rest()) {
            return Ok(Expr::Str(self.swim(len)?));
        }
        match (first, second) {
            (Some('"'), _) => Ok(Expr::Str(self.quoted('"', StrKind::Double)?)),
            (Some('\''), _) => Ok(Expr::Str(self.quoted('\'', StrKind::Single)?)),
            (Some('@'), Some('(')) => self.list_literal(),
            (Some('%'), Some('(')) => self.map_literal(),
            (Some(c @ ('@' | '%')), Some(n)) if n == '{' || is_name_start(n) => {
                let sigil = if c == '@' { Sigil::List } else { Sigil::Map };
                self.collection_var(sigil)
            }
            // Anything else, including `@` or `%` followed by other text, is an implicit
            // string; a leading `$x` that stands alone becomes a variable reference.
            _ => {
                let parts = self.implicit(ctx)?;
                let mut parts = parts.into_iter();
                match (parts.next(), parts.next()) {
                    (None, _) => Err(self.expected("a value")),
                    (Some(Part::Var(var)), None) => Ok(Expr::Var(var)),
                    (Some(Part::Expr(Expr::Call(call))), None) if call.sigil == Sigil::Scalar => {
                        Ok(Expr::Call(call))
                    }
                    (Some(first), second) => Ok(Expr::Str(InterpString {
                        kind: StrKind::Implicit,
                        parts: [first].into_iter().chain(second).chain(parts).collect(),
                    })),
                }
            }
        }
    }

    /// `@name`, `@name[index]`, `@Fn(args)` and the same with `%`.
    fn collection_var(&mut self, sigil: Sigil) -> PResult<Expr> {
        let what = if sigil == Sigil::List {
            "a list variable"
        } else {
            "a map variable"
        };
        let target = self.var_ref(what)?;
        if self.cur.eat('[') {
            let index = self.value(Context::Index)?;
            self.cur.skip_ws();
            if !self.cur.eat(']') {
                return Err(self.expected("`]` after the index"));
            }
            Ok(Expr::Index {
                target,
                index: Box::new(index),
            })
        } else if self.cur.eat('(') {
            Ok(Expr::Call(FnCall {
                sigil,
                name: target.name,
                args: self.call_args()?,
            }))
        } else {
            Ok(Expr::Var(target))
        }
    }

    /// A function's arguments, after the `(`.
    fn call_args(&mut self) -> PResult<Vec<Expr>> {
        let mut args = Vec::new();
        loop {
            self.cur.skip_ws();
            if self.cur.eat(')') {
                return Ok(args);
            }
            args.push(self.value(Context::Args)?);
            self.cur.skip_ws();
            if self.cur.eat(')') {
                return Ok(args);
            }
            if !self.cur.eat(',') {
                return Err(self.expected("`,` or `)` after the function argument"));
            }
        }
    }

    fn list_literal(&mut self) -> PResult<Expr> {
        self.cur.bump_n(2);
        let mut items = Vec::new();
        loop {
            self.cur.skip_ws();
            if self.cur.eat(')') {
                return Ok(Expr::List(items));
            }
            items.push(self.value(Context::Args)?);
            self.cur.skip_ws();
            if self.cur.eat(')') {
                return Ok(Expr::List(items));
            }
            if !self.cur.eat(',') {
                return Err(self.expected("`,` or `)` in the list"));
            }
        }
    }

    fn map_literal(&mut self) -> PResult<Expr> {
        self.cur.bump_n(2);
        let mut entries = Vec::new();
        loop {
            self.cur.skip_ws();
            if self.cur.eat(')') {
                return Ok(Expr::Map(entries));
            }
            let key = self.map_key()?;
            self.cur.skip_ws();
            if !self.cur.eat(':') {
                return Err(self.expected("`:` after the map key"));
            }
            entries.push((key, self.value(Context::Args)?));
            self.cur.skip_ws();
            if self.cur.eat(')') {
                return Ok(Expr::Map(entries));
            }
            if !self.cur.eat(',') {
                return Err(self.expected("`,` or `)` in the map"));
            }
        }
    }

    /// A map key: bare text up to the `:`, or a quoted string without interpolation.
    fn map_key(&mut self) -> PResult<String> {
        let start = self.cur.pos();
        let quoted = match self.cur.peek() {
            Some('"') => Some(self.quoted('"', StrKind::Double)?),
            Some('\'') => Some(self.quoted('\'', StrKind::Single)?),
            _ => None,
        };
        if let Some(quoted) = quoted {
            return quoted
                .literal()
                .ok_or_else(|| Diagnostic::new(start, "a map key cannot contain variables"));
        }
        let mut key = String::new();
        while let Some(c) = self.cur.peek().filter(|&c| {
            !matches!(
                c,
                ':' | ',' | '(' | ')' | '[' | ']' | '{' | '}' | ';' | '$' | '`' | '"' | '\'' | '\n'
            )
        }) {
            key.push(c);
            self.cur.bump();
        }
        let key = key.trim_end();
        if key.is_empty() {
            return Err(self.expected("a map key"));
        }
        Ok(key.to_owned())
    }

    // ---------------------------------------------------------------- strings

    /// Unquoted text up to the end of the context (see [`Context`]) or of the line, trimmed.
    fn implicit(&mut self, ctx: Context) -> PResult<Vec<Part>> {
        let mut parts = PartsBuilder::default();
        while let Some(c) = self.cur.peek() {
            if c == '\n' || ctx.ends_at(self.cur.rest()) {
                break;
            }
            match c {
                '`' => {
                    self.cur.bump();
                    let Some(escaped) = self.cur.bump() else {
                        return Err(self.expected("a character after the escape backtick"));
                    };
                    parts.escaped(unescape(escaped));
                }
                '$' => parts.part(self.interpolation()?),
                _ => {
                    self.cur.bump();
                    parts.raw(c);
                }
            }
        }
        Ok(parts.finish_trimmed())
    }

    /// `"..."` or `'...'`, on one line.
    fn quoted(&mut self, quote: char, kind: StrKind) -> PResult<InterpString> {
        let start = self.cur.pos();
        let unterminated = || Diagnostic::new(start, "unterminated string starting here");
        self.cur.bump();
        let mut parts = PartsBuilder::default();
        loop {
            match self.cur.peek() {
                None | Some('\n') => return Err(unterminated()),
                Some(c) if c == quote => {
                    self.cur.bump();
                    break;
                }
                Some('`') => {
                    self.cur.bump();
                    let escaped = self.cur.bump().ok_or_else(unterminated)?;
                    parts.escaped(unescape(escaped));
                }
                Some('$') => parts.part(self.interpolation()?),
                Some(c) => {
                    self.cur.bump();
                    parts.raw(c);
                }
            }
        }
        Ok(InterpString {
            kind,
            parts: parts.finish(),
        })
    }

    /// A swim string whose sentinel (`len` characters) is at the cursor.
    fn swim(&mut self, len: usize) -> PResult<InterpString> {
        let start = self.cur.pos();
        let sentinel: Vec<char> = self.cur.rest()[..len].to_vec();
        let sentinel_text: String = sentinel.iter().collect();
        let unterminated = || {
            Diagnostic::new(
                start,
                format!(
                    "unterminated swim string starting here, expected a closing `{sentinel_text}`"
                ),
            )
        };
        self.cur.bump_n(len);
        let mut parts = PartsBuilder::default();
        loop {
            if self.cur.at_chars(&sentinel) {
                self.cur.bump_n(len);
                break;
            }
            match self.cur.peek() {
                None => return Err(unterminated()),
                Some('`') => {
                    self.cur.bump();
                    let escaped = self.cur.bump().ok_or_else(unterminated)?;
                    parts.escaped(unescape(escaped));
                }
                Some('$') => parts.part(self.interpolation()?),
                Some(c) => {
                    self.cur.bump();
                    parts.raw(c);
                }
            }
        }
        Ok(InterpString {
            kind: StrKind::Swim {
                sentinel: sentinel_text,
            },
            parts: parts.finish(),
        })
    }

    /// An interpolation in a string, at its `$`: `$name`, `${name}`, `$(expr)`, `$Fn(args)`.
    fn interpolation(&mut self) -> PResult<Part> {
        let start = self.cur.pos();
        self.cur.bump();
        match self.cur.peek() {
            Some('{') => {
                self.cur.bump();
                let Some(name) = self.cur.name() else {
                    return Err(self.expected("a variable name after `${`"));
                };
                self.check_name_len(start, &name, "variable");
                if !self.cur.eat('}') {
                    return Err(self.expected("`}` after the variable name"));
                }
                Ok(Part::Var(VarRef {
                    sigil: Sigil::Scalar,
                    name,
                }))
            }
            Some('(') => {
                self.cur.bump();
                let expr = self.value(Context::Group)?;
                self.cur.skip_ws();
                if !self.cur.eat(')') {
                    return Err(self.expected("`)` to close `$(`"));
                }
                Ok(Part::Expr(expr))
            }
            Some(c) if is_name_start(c) => {
                let name = self.cur.name().unwrap_or_default();
                if self.cur.eat('(') {
                    self.check_name_len(start, &name, "function");
                    Ok(Part::Expr(Expr::Call(FnCall {
                        sigil: Sigil::Scalar,
                        name,
                        args: self.call_args()?,
                    })))
                } else {
                    self.check_name_len(start, &name, "variable");
                    Ok(Part::Var(VarRef {
                        sigil: Sigil::Scalar,
                        name,
                    }))
                }
            }
            _ => Err(Diagnostic::new(
                start,
                format!(
                    "expected a variable name after `$` (write `` `$ `` for a literal `$`), found {}",
                    self.cur.describe()
                ),
            )),
        }
    }
}

/// The targeting kind a `for`/`foreach` keyword names, if Holt runs it.
fn target_kind(word: &str) -> Option<TargetKind> {
    match word {
        "server" => Some(TargetKind::Server),
        "role" => Some(TargetKind::Role),
        _ => None,
    }
}
