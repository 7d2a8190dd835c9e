//! The syntax tree of a plan.
//!
//! The tree records what a plan says, not every detail of how it was spelled: comments other
//! than descriptions, whitespace and the choice between equivalent spellings (`${x}` and `$x`,
//! `global $x = 1;` and `set global $x = 1;`) are gone, but every name keeps the case it was
//! written in, and every string keeps its kind and its exact text, because both can matter when
//! the plan runs (see [`InterpString`]).
//!
//! Positions are kept where a later stage reports against them: on statements, operations,
//! directives and `else if` branches. Expressions carry none; a diagnostic about a value points
//! at its statement.

use crate::diag::Pos;
use std::fmt;

/// A whole plan: the statements at its top level.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// The top-level statements. Global declarations (`global $x = v;`) come first and are
    /// [`StatementKind::Set`] with [`SetScope::Global`].
    pub body: Block,
}

/// A sequence of statements between `{` and `}` (or the whole plan).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Block {
    /// The statements, in order.
    pub statements: Vec<Statement>,
}

/// One statement with its position and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The position of the statement's first token (its keyword, operation name or `{`).
    pub pos: Pos,
    /// The comment written directly above the statement, without its markers and trimmed;
    /// consecutive comment lines are joined with `\n`. For a block, the first line names the log
    /// scope the block opens.
    pub description: Option<String>,
    /// What the statement does.
    pub kind: StatementKind,
}

/// The kinds of statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementKind {
    /// `Name positional (Arg: value, Out => $var);`, e.g. `Log-Information "text";`.
    Operation(Operation),
    /// `set [local|global] $x = value;`, and `global $x = value;` declarations.
    Set {
        /// Which scope the assignment writes to.
        scope: SetScope,
        /// The variable assigned.
        target: VarRef,
        /// The value assigned.
        value: Expr,
    },
    /// An anonymous block `{ ... }`; its description's first line names its log scope.
    Block(Block),
    /// `with async, retry=3 { ... }`.
    With {
        /// The directives, in the order written.
        directives: Vec<Directive>,
        /// The block they apply to.
        body: Block,
    },
    /// `await;` (all async blocks started so far) or `await name;`.
    Await(Option<String>),
    /// `if cond { } else if cond { } else { }`.
    If(If),
    /// `foreach $item in @list { ... }`.
    Foreach {
        /// The loop variable.
        var: VarRef,
        /// What is iterated over.
        source: Expr,
        /// The loop body.
        body: Block,
    },
    /// A construct of the full OtterScript grammar that Holt parses but does not run:
    /// `for server X { }`, `for role X { }`, `foreach server in LIST { }` and
    /// `foreach role in LIST { }`: the body runs with each server named (or each server of each
    /// role named) in context.
    Target {
        /// Whether servers or roles are named.
        kind: TargetKind,
        /// `foreach ... in LIST` rather than `for ... X`.
        each: bool,
        /// The name, or the list of names.
        target: Expr,
        /// What runs on each server.
        body: Block,
    },
    /// `for directory X { }` and `foreach directory in ... { }`. The loader rejects it at the
    /// statement's position.
    Unsupported {
        /// The construct's keywords, lowercase: `"for server"`, `"foreach role"`, ...
        construct: String,
        /// Its body, parsed so that errors inside it are reported too. The target (`X`, the
        /// list after `in`) is not kept.
        body: Block,
    },
    /// `break;`
    Break,
    /// `continue;`
    Continue,
    /// `return;`
    Return,
    /// `try { ... } catch { ... }`.
    Try {
        /// The guarded block.
        body: Block,
        /// The block run when `body` raises an error.
        catch: Block,
    },
    /// `throw;` or `throw message;`.
    Throw(Option<Expr>),
    /// `fail;`
    Fail,
    /// `error;`
    Error,
    /// `warn;`
    Warn,
    /// `force warn;`
    ForceWarn,
    /// `force normal;`
    ForceNormal,
    /// `module Name<$a, $b = default> { ... }`.
    Module {
        /// The module's name as written.
        name: String,
        /// Its parameters, in order.
        params: Vec<Param>,
        /// Its body.
        body: Block,
    },
    /// `call Name(a: 1, b: 2);`.
    Call {
        /// The module's name as written, including a `Namespace::` prefix if any.
        name: String,
        /// The arguments, in order, as (parameter name, value).
        args: Vec<(String, Expr)>,
    },
}

/// An operation statement. The parser does not know which operations exist: `Log-Information`,
/// `Exec`, `SHExec` and `InedoCore::Exec` are all just operations, resolved later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The position of the operation's name (of its namespace, if written).
    pub pos: Pos,
    /// The namespace before `::`, as written (`InedoCore` in `InedoCore::Exec`).
    pub namespace: Option<String>,
    /// The name as written; compare with [`Operation::name_matches`].
    pub name: String,
    /// The value after the name, before any argument list (`"text"` in `Log-Information "text";`).
    pub positional: Option<Expr>,
    /// The named arguments, in order.
    pub args: Vec<Arg>,
}

impl Operation {
    /// Whether the operation's name is `name`, ignoring case as OtterScript does.
    pub fn name_matches(&self, name: &str) -> bool {
        eq_ignore_case(&self.name, name)
    }

    /// The first argument named `name` (ignoring case), if any.
    pub fn arg(&self, name: &str) -> Option<&ArgValue> {
        self.args
            .iter()
            .find(|a| eq_ignore_case(&a.name, name))
            .map(|a| &a.value)
    }
}

/// Compares two names the way OtterScript does: without regard to case, for any script.
pub(crate) fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// A named operation argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The argument's name as written.
    pub name: String,
    /// What is passed.
    pub value: ArgValue,
}

/// What a named argument passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgValue {
    /// `Name: value`, a value into the operation.
    Input(Expr),
    /// `Name => $var`, a variable the operation writes its output to.
    Output(VarRef),
}

/// The scope a `set` writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetScope {
    /// `set $x = v;`: the nearest scope that already has `$x`, else the current one.
    Default,
    /// `set local $x = v;`: always the current scope.
    Local,
    /// `set global $x = v;` and `global $x = v;`: the plan's global scope.
    Global,
}

/// One directive of a `with` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The position of the directive's name.
    pub pos: Pos,
    /// Which directive, with its value.
    pub kind: DirectiveKind,
}

/// The directives of a `with` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectiveKind {
    /// `async` or `async=name`.
    Async(Option<String>),
    /// `retry=N`.
    Retry(Expr),
    /// `timeout=N` (seconds).
    Timeout(Expr),
    /// `lock=name`.
    Lock(Expr),
    /// A directive of the full grammar Holt does not run (`credentials=X`, `isolation`,
    /// `executionPolicy=...`), with its name as written; its value is not kept. The loader
    /// rejects it at the directive's position.
    Unsupported(String),
}

/// What a `for` or `foreach` targeting statement names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// Servers by name.
    Server,
    /// Roles, standing for their servers.
    Role,
}

impl TargetKind {
    /// The keyword, lowercase.
    pub fn word(self) -> &'static str {
        match self {
            TargetKind::Server => "server",
            TargetKind::Role => "role",
        }
    }
}

/// An `if` with its `else` chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct If {
    /// The condition.
    pub cond: Predicate,
    /// The block run when the condition holds.
    pub then: Block,
    /// What follows `else`, if anything.
    pub otherwise: Option<Box<Else>>,
}

/// What follows `else`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Else {
    /// `else if cond { } ...`, with the position of its `if`.
    If {
        /// The position of the `if` keyword.
        pos: Pos,
        /// The nested `if` and its own `else` chain.
        branch: If,
    },
    /// `else { }`.
    Block(Block),
}

/// A module parameter: `$a` or `$b = default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The parameter's variable.
    pub var: VarRef,
    /// Its default value, if it has one.
    pub default: Option<Expr>,
}

/// The sigil that says what kind of value a variable holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sigil {
    /// `$`: a string.
    Scalar,
    /// `@`: a list.
    List,
    /// `%`: a map.
    Map,
}

impl Sigil {
    /// The sigil's character.
    pub fn as_char(self) -> char {
        match self {
            Sigil::Scalar => '$',
            Sigil::List => '@',
            Sigil::Map => '%',
        }
    }

    pub(crate) fn from_char(c: char) -> Option<Sigil> {
        match c {
            '$' => Some(Sigil::Scalar),
            '@' => Some(Sigil::List),
            '%' => Some(Sigil::Map),
            _ => None,
        }
    }
}

/// A reference to a variable: `$x`, `@list`, `%map` (or the explicit `${x}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VarRef {
    /// The kind of variable.
    pub sigil: Sigil,
    /// The name as written: letters, digits, `_` and `-`, starting with a letter, at most 50
    /// characters.
    pub name: String,
}

impl VarRef {
    /// The name with case folded, for looking the variable up (names ignore case). The sigil is
    /// not part of the key; the caller combines the two if it keeps the kinds apart.
    pub fn key(&self) -> String {
        self.name.to_lowercase()
    }
}

impl fmt::Display for VarRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.sigil.as_char(), self.name)
    }
}

/// A value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A string, possibly with interpolations.
    Str(InterpString),
    /// A list literal `@(a, b)`.
    List(Vec<Expr>),
    /// A map literal `%(k: v)`, entries in the order written.
    Map(Vec<(String, Expr)>),
    /// A variable standing alone as the whole value: `$x`, `@list`, `%map`. Zero-argument
    /// functions such as `$ExecutionState` are written the same way; whether the name is a
    /// variable or a function is decided when the plan runs (a variable shadows a function).
    Var(VarRef),
    /// `@list[index]` or `%map[key]`.
    Index {
        /// The list or map indexed.
        target: VarRef,
        /// The index or key.
        index: Box<Expr>,
    },
    /// A function call standing alone as the whole value: `$ToUpper(x)`, `@Range(1, 3)`.
    Call(FnCall),
}

/// A function call: `$ToUpper(s)`, `@Range(1, 3)`, `$Fn()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FnCall {
    /// The kind of value the call returns.
    pub sigil: Sigil,
    /// The function's name as written (case is ignored when it is looked up).
    pub name: String,
    /// The arguments, in order.
    pub args: Vec<Expr>,
}

/// A string with its interpolations.
///
/// `Text` parts hold the text exactly as it reads after escapes are resolved (`` `$ `` is `$`,
/// `` `n `` a newline), with all the whitespace written inside quotes or a swim string. This
/// matters to `Exec`, which splits the *literal text* into words before interpolating, so that
/// an interpolated value is always exactly one argument. Implicit (unquoted) strings are trimmed
/// at both ends only.
///
/// The parser never produces an empty `Text` part nor two `Text` parts in a row, a `Var` part
/// always has the `$` sigil, and an implicit string is never empty nor a lone `$x` or
/// `$Fn(...)` (those are [`Expr::Var`] and [`Expr::Call`]). The printer relies on this shape
/// for exact round trips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpString {
    /// How the string was written.
    pub kind: StrKind,
    /// Text and interpolations, in order.
    pub parts: Vec<Part>,
}

impl InterpString {
    /// Whether the string has no interpolations.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The string's text if it has no interpolations.
    pub fn literal(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(_) | Part::Expr(_) => return None,
            }
        }
        Some(out)
    }
}

/// How a string was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StrKind {
    /// Unquoted text, trimmed, on one line.
    Implicit,
    /// `"..."`, on one line.
    Double,
    /// `'...'`, on one line.
    Single,
    /// `>>...>>`, any number of lines.
    Swim {
        /// The whole sentinel that opens and closes the string: `>>`, or `>` + up to five
        /// other characters + `>` (e.g. `>-->`).
        sentinel: String,
    },
}

/// A piece of a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text, escapes resolved.
    Text(String),
    /// `$name` or `${name}`.
    Var(VarRef),
    /// `$(expr)` or a function call `$Fn(args)`.
    Expr(Expr),
}

/// The condition of an `if`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// `left == right` or `left != right` (string comparison).
    Compare {
        /// The left operand.
        left: Expr,
        /// The comparison.
        op: CmpOp,
        /// The right operand.
        right: Expr,
    },
    /// `a && b`.
    And(Box<Predicate>, Box<Predicate>),
    /// `a || b`.
    Or(Box<Predicate>, Box<Predicate>),
    /// `!a`.
    Not(Box<Predicate>),
    /// A bare value, true when it equals `true` ignoring case.
    Value(Expr),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
}
