//! The pretty-printer: a [`Plan`] back to source text that parses to the same tree.
//!
//! Strings keep their kind; text is escaped only where the parser would otherwise read it
//! differently, by the same rules the parser uses ([`Context::ends_at`], the swim sentinel).
//! Layout is fixed: four spaces per level, one statement per line, descriptions as `#` lines
//! directly above their statement, and no blank lines (a blank line would detach a
//! description).

use crate::ast::{
    ArgValue, Block, CmpOp, DirectiveKind, Else, Expr, FnCall, If, InterpString, Part, Plan,
    Predicate, SetScope, Sigil, Statement, StatementKind, StrKind, VarRef,
};
use crate::lexer::{Context, is_name_char};

/// The width past which an operation's arguments go one per line.
const MAX_LINE: usize = 100;

pub(crate) fn print_plan(plan: &Plan) -> String {
    let mut printer = Printer {
        out: String::new(),
        indent: 0,
    };
    printer.statements(&plan.body.statements);
    printer.out
}

#[derive(Debug)]
struct Printer {
    out: String,
    indent: usize,
}

impl Printer {
    fn line_start(&mut self) {
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
    }

    fn current_line_len(&self) -> usize {
        self.out.len() - self.out.rfind('\n').map_or(0, |i| i + 1)
    }

    fn statements(&mut self, statements: &[Statement]) {
        for statement in statements {
            self.statement(statement);
        }
    }

    fn statement(&mut self, statement: &Statement) {
        if let Some(description) = &statement.description {
            for line in description.split('\n') {
                self.line_start();
                self.out.push('#');
                if !line.is_empty() {
                    self.out.push(' ');
                    self.out.push_str(line);
                }
                self.out.push('\n');
            }
        }
        self.line_start();
        self.kind(&statement.kind);
        self.out.push('\n');
    }

    fn kind(&mut self, kind: &StatementKind) {
        match kind {
            StatementKind::Operation(op) => {
                if let Some(namespace) = &op.namespace {
                    self.out.push_str(namespace);
                    self.out.push_str("::");
                }
                self.out.push_str(&op.name);
                if let Some(positional) = &op.positional {
                    self.out.push(' ');
                    expr(&mut self.out, positional, Context::Positional);
                }
                let args: Vec<String> = op
                    .args
                    .iter()
                    .map(|arg| match &arg.value {
                        ArgValue::Input(value) => {
                            format!("{}: {}", arg.name, expr_string(value, Context::Args))
                        }
                        ArgValue::Output(var) => format!("{} => {var}", arg.name),
                    })
                    .collect();
                self.args(&args);
                self.out.push(';');
            }
            StatementKind::Set {
                scope,
                target,
                value,
            } => {
                self.out.push_str(match scope {
                    SetScope::Default => "set ",
                    SetScope::Local => "set local ",
                    SetScope::Global => "set global ",
                });
                self.out.push_str(&format!("{target} = "));
                expr(&mut self.out, value, Context::Statement);
                self.out.push(';');
            }
            StatementKind::Block(block) => self.block(block),
            StatementKind::With { directives, body } => {
                self.out.push_str("with ");
                for (i, directive) in directives.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    let (name, value) = match &directive.kind {
                        DirectiveKind::Async(None) => ("async", None),
                        DirectiveKind::Async(Some(name)) => {
                            self.out.push_str("async=");
                            self.out.push_str(name);
                            continue;
                        }
                        DirectiveKind::Retry(value) => ("retry", Some(value)),
                        DirectiveKind::Timeout(value) => ("timeout", Some(value)),
                        DirectiveKind::Lock(value) => ("lock", Some(value)),
                        DirectiveKind::Unsupported(name) => (name.as_str(), None),
                    };
                    self.out.push_str(name);
                    if let Some(value) = value {
                        self.out.push('=');
                        expr(&mut self.out, value, Context::Directive);
                    }
                }
                self.out.push(' ');
                self.block(body);
            }
            StatementKind::Await(None) => self.out.push_str("await;"),
            StatementKind::Await(Some(name)) => self.out.push_str(&format!("await {name};")),
            StatementKind::If(branch) => self.if_chain(branch),
            StatementKind::Foreach { var, source, body } => {
                self.out.push_str(&format!("foreach {var} in "));
                expr(&mut self.out, source, Context::Block);
                self.out.push(' ');
                self.block(body);
            }
            StatementKind::Target {
                kind,
                each,
                target,
                body,
            } => {
                let keyword = if *each { "foreach" } else { "for" };
                self.out.push_str(&format!("{keyword} {}", kind.word()));
                self.out.push_str(if *each { " in " } else { " " });
                expr(&mut self.out, target, Context::Block);
                self.out.push(' ');
                self.block(body);
            }
            StatementKind::Unsupported { construct, body } => {
                // The target is not kept; `...` stands in for it so the output still parses
                // to the same construct.
                self.out.push_str(construct);
                if construct.starts_with("foreach ") {
                    self.out.push_str(" in");
                }
                self.out.push_str(" ... ");
                self.block(body);
            }
            StatementKind::Break => self.out.push_str("break;"),
            StatementKind::Continue => self.out.push_str("continue;"),
            StatementKind::Return => self.out.push_str("return;"),
            StatementKind::Try { body, catch } => {
                self.out.push_str("try ");
                self.block(body);
                self.out.push_str(" catch ");
                self.block(catch);
            }
            StatementKind::Throw(None) => self.out.push_str("throw;"),
            StatementKind::Throw(Some(message)) => {
                self.out.push_str("throw ");
                expr(&mut self.out, message, Context::Statement);
                self.out.push(';');
            }
            StatementKind::Fail => self.out.push_str("fail;"),
            StatementKind::Error => self.out.push_str("error;"),
            StatementKind::Warn => self.out.push_str("warn;"),
            StatementKind::ForceWarn => self.out.push_str("force warn;"),
            StatementKind::ForceNormal => self.out.push_str("force normal;"),
            StatementKind::Module { name, params, body } => {
                self.out.push_str("module ");
                self.out.push_str(name);
                if !params.is_empty() {
                    self.out.push('<');
                    for (i, param) in params.iter().enumerate() {
                        if i > 0 {
                            self.out.push_str(", ");
                        }
                        self.out.push_str(&param.var.to_string());
                        if let Some(default) = &param.default {
                            self.out.push_str(" = ");
                            expr(&mut self.out, default, Context::Param);
                        }
                    }
                    self.out.push('>');
                }
                self.out.push(' ');
                self.block(body);
            }
            StatementKind::Call { name, args } => {
                self.out.push_str("call ");
                self.out.push_str(name);
                self.out.push('(');
                for (i, (arg, value)) in args.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.out.push_str(arg);
                    self.out.push_str(": ");
                    expr(&mut self.out, value, Context::Args);
                }
                self.out.push_str(");");
            }
        }
    }

    /// An operation's argument list: on the operation's line when it fits, else one per line.
    fn args(&mut self, args: &[String]) {
        if args.is_empty() {
            return;
        }
        let width: usize = args.iter().map(|a| a.len() + 2).sum();
        if width + self.current_line_len() + 2 <= MAX_LINE && args.iter().all(|a| !a.contains('\n'))
        {
            self.out.push_str(" (");
            self.out.push_str(&args.join(", "));
            self.out.push(')');
            return;
        }
        self.out.push_str(" (\n");
        self.indent += 1;
        for (i, arg) in args.iter().enumerate() {
            self.line_start();
            self.out.push_str(arg);
            if i + 1 < args.len() {
                self.out.push(',');
            }
            self.out.push('\n');
        }
        self.indent -= 1;
        self.line_start();
        self.out.push(')');
    }

    /// A block, from its `{` to its `}`, starting mid-line.
    fn block(&mut self, block: &Block) {
        if block.statements.is_empty() {
            self.out.push_str("{ }");
            return;
        }
        self.out.push_str("{\n");
        self.indent += 1;
        self.statements(&block.statements);
        self.indent -= 1;
        self.line_start();
        self.out.push('}');
    }

    fn if_chain(&mut self, branch: &If) {
        self.out.push_str("if ");
        predicate(&mut self.out, &branch.cond, 0);
        self.out.push(' ');
        self.block(&branch.then);
        match branch.otherwise.as_deref() {
            None => {}
            Some(Else::If { branch, .. }) => {
                self.out.push_str(" else ");
                self.if_chain(branch);
            }
            Some(Else::Block(block)) => {
                self.out.push_str(" else ");
                self.block(block);
            }
        }
    }
}

/// Binding strength of a condition's operators, loosest first.
fn precedence(p: &Predicate) -> u8 {
    match p {
        Predicate::Or(..) => 1,
        Predicate::And(..) => 2,
        Predicate::Not(_) => 3,
        Predicate::Compare { .. } | Predicate::Value(_) => 4,
    }
}

/// Writes `p`, in parentheses if it binds more loosely than `min` requires. Operators group to
/// the left, so a right operand of the same precedence needs parentheses to keep its shape.
fn predicate(out: &mut String, p: &Predicate, min: u8) {
    let parens = precedence(p) < min;
    if parens {
        out.push('(');
    }
    match p {
        Predicate::Or(a, b) => {
            predicate(out, a, 1);
            out.push_str(" || ");
            predicate(out, b, 2);
        }
        Predicate::And(a, b) => {
            predicate(out, a, 2);
            out.push_str(" && ");
            predicate(out, b, 3);
        }
        Predicate::Not(a) => {
            out.push('!');
            predicate(out, a, 3);
        }
        Predicate::Compare { left, op, right } => {
            expr(out, left, Context::Predicate);
            out.push_str(match op {
                CmpOp::Eq => " == ",
                CmpOp::Ne => " != ",
            });
            expr(out, right, Context::Predicate);
        }
        Predicate::Value(value) => expr(out, value, Context::Predicate),
    }
    if parens {
        out.push(')');
    }
}

fn expr_string(e: &Expr, ctx: Context) -> String {
    let mut out = String::new();
    expr(&mut out, e, ctx);
    out
}

/// Writes a value as it would appear in `ctx`.
fn expr(out: &mut String, e: &Expr, ctx: Context) {
    match e {
        Expr::Str(s) => string(out, s, ctx),
        Expr::List(items) => {
            out.push_str("@(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                expr(out, item, Context::Args);
            }
            out.push(')');
        }
        Expr::Map(entries) => {
            out.push_str("%(");
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                map_key(out, key);
                out.push_str(": ");
                expr(out, value, Context::Args);
            }
            out.push(')');
        }
        Expr::Var(var) => out.push_str(&var.to_string()),
        Expr::Index { target, index } => {
            out.push_str(&target.to_string());
            out.push('[');
            expr(out, index, Context::Index);
            out.push(']');
        }
        Expr::Call(call) => fn_call(out, call),
    }
}

fn fn_call(out: &mut String, call: &FnCall) {
    out.push(call.sigil.as_char());
    out.push_str(&call.name);
    out.push('(');
    for (i, arg) in call.args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        expr(out, arg, Context::Args);
    }
    out.push(')');
}

/// A map key: bare when it is plainly a name, else double-quoted.
fn map_key(out: &mut String, key: &str) {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        out.push_str(key);
    } else {
        quoted(out, &[Part::Text(key.to_owned())], '"');
    }
}

fn string(out: &mut String, s: &InterpString, ctx: Context) {
    match &s.kind {
        StrKind::Implicit => implicit(out, &s.parts, ctx),
        StrKind::Double => quoted(out, &s.parts, '"'),
        StrKind::Single => quoted(out, &s.parts, '\''),
        StrKind::Swim { sentinel } => swim(out, &s.parts, sentinel),
    }
}

/// Writes `c`, escaped with a backtick if `escape`; newlines and tabs always as `` `n `` and
/// `` `t `` (strings that may span lines do not come through here).
fn one_line_char(out: &mut String, c: char, escape: bool) {
    match c {
        '\n' => out.push_str("`n"),
        '\t' => out.push_str("`t"),
        c => {
            if escape {
                out.push('`');
            }
            out.push(c);
        }
    }
}

/// Characters that would make the start of an implicit string read as something else: a
/// quoted or swim string, a list or map, a negation or group in a condition, an operator.
fn special_at_start(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '>' | '@' | '%' | '!' | '(' | '=')
}

fn implicit(out: &mut String, parts: &[Part], ctx: Context) {
    if parts.is_empty() {
        // Empty text cannot be written unquoted; the parser never produces this.
        out.push_str("\"\"");
        return;
    }
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::Text(text) => {
                let chars: Vec<char> = text.chars().collect();
                for (j, &c) in chars.iter().enumerate() {
                    let first = i == 0 && j == 0;
                    let last = i + 1 == parts.len() && j + 1 == chars.len();
                    let escape = c == '`'
                        || c == '$'
                        || ctx.ends_at(&chars[j..])
                        || (first && special_at_start(c))
                        || (last && c.is_whitespace());
                    one_line_char(out, c, escape);
                }
            }
            Part::Var(var) => interpolated_var(out, var, parts.get(i + 1)),
            Part::Expr(e) => interpolated_expr(out, e),
        }
    }
}

fn quoted(out: &mut String, parts: &[Part], quote: char) {
    out.push(quote);
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::Text(text) => {
                for c in text.chars() {
                    one_line_char(out, c, c == '`' || c == '$' || c == quote);
                }
            }
            Part::Var(var) => interpolated_var(out, var, parts.get(i + 1)),
            Part::Expr(e) => interpolated_expr(out, e),
        }
    }
    out.push(quote);
}

fn swim(out: &mut String, parts: &[Part], sentinel: &str) {
    let sentinel_chars: Vec<char> = sentinel.chars().collect();
    out.push_str(sentinel);
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::Text(text) => {
                // A `>` must be escaped where the sentinel would otherwise be read, counting
                // the closing sentinel after the text (escaping one more `>` than strictly
                // needed is harmless).
                let chars: Vec<char> = text.chars().chain(sentinel.chars()).collect();
                for j in 0..chars.len() - sentinel_chars.len() {
                    let c = chars[j];
                    if c == '`' || c == '$' || chars[j..].starts_with(&sentinel_chars) {
                        out.push('`');
                    }
                    out.push(c);
                }
            }
            Part::Var(var) => interpolated_var(out, var, parts.get(i + 1)),
            Part::Expr(e) => interpolated_expr(out, e),
        }
    }
    out.push_str(sentinel);
}

/// `$name` in a string, or `${name}` when the text after it would otherwise lengthen the name
/// or turn it into a function call.
fn interpolated_var(out: &mut String, var: &VarRef, next: Option<&Part>) {
    if var.sigil != Sigil::Scalar {
        interpolated_expr(out, &Expr::Var(var.clone()));
        return;
    }
    let braces =
        matches!(next, Some(Part::Text(t)) if t.starts_with(|c: char| is_name_char(c) || c == '('));
    if braces {
        out.push_str(&format!("${{{}}}", var.name));
    } else {
        out.push_str(&format!("${}", var.name));
    }
}

/// `$Fn(args)` for a `$` function call, `$(expr)` for anything else.
fn interpolated_expr(out: &mut String, e: &Expr) {
    match e {
        Expr::Call(call) if call.sigil == Sigil::Scalar => fn_call(out, call),
        _ => {
            out.push_str("$(");
            expr(out, e, Context::Group);
            out.push(')');
        }
    }
}
