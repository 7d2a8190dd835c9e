//! The plan language: the subset of OtterScript that Holt runs, as specified in
//! `PLAN-LANGUAGE.md`. This crate turns a plan's text into a syntax tree ([`parse()`]), reports
//! every problem it finds with a line and column ([`Diagnostics`]), and turns a tree back into
//! text ([`print()`]) that parses to the same tree.
//!
//! It is pure: no I/O, no clock, no async, and it depends on nothing in the workspace (the
//! domain crate depends on it, not the reverse). It knows the grammar only: which operations,
//! functions and directives exist, and what running them means, is decided by the loader and
//! the engine. Constructs of the full OtterScript grammar that Holt does not run parse into
//! [`StatementKind::Unsupported`] and [`DirectiveKind::Unsupported`] so that the loader can
//! reject them at their position with a clear message.
//!
//! # Where the language description is silent
//!
//! These are the readings this parser takes; each is pinned by a test in `tests.rs`.
//!
//! - **Descriptions.** The comments on lines of their own directly above a statement are its
//!   description: markers removed, each line trimmed, consecutive comments joined with `\n`.
//!   A blank line or a `##AH:` header line between them and the statement detaches them, a
//!   comment after code on the same line is never a description, and comments before `}`,
//!   `else` or `catch` are dropped.
//! - **Where comments are.** Comments are recognised between statements and between the parts
//!   of a statement (argument names, directives, parameters), but not where a value starts, so
//!   `Log-Information issue #5;` logs `issue #5` and `//server/share` is a value.
//! - **Where unquoted text ends.** An implicit string ends at a newline, at the end of the input,
//!   or at its context's terminator: `;` or `}` for `set` values and `throw` messages; `;`, `(`
//!   or `}` for an operation's positional value (so `Log-Information Done (all);` opens an
//!   argument list: quote such text); `,` or `)` in argument lists, lists, maps and calls; `]`
//!   in an index; `)` in `$(...)`; `&&`, `||`, `==`, `!=`, `)` or `{` in a condition; `,` or
//!   `{` in a directive; `{` after `foreach ... in`; `,` or `>` in a parameter default. It is
//!   trimmed of unescaped whitespace at both ends. An optional value (an operation's positional
//!   value, `throw`'s message) must start on the line of the name before it, so a forgotten `;`
//!   is reported instead of swallowing the next line.
//! - **Escapes.** `` `n `` is a newline, `` `t `` a tab, and a backtick before any other
//!   character stands for that character (`` `$ ``, `` `; ``, ``` `` ```, `` `" ``).
//! - **`$`, `@` and `%`.** In any string, `$` must start an interpolation (`$name`, `${name}`,
//!   `$(expr)`, `$Fn(args)`); anything else after it is an error, since a silent literal `$`
//!   would hide a typo. At the start of a value, `@(`, `%(`, `@name` and `%name` (with an
//!   optional `[index]` or `(args)`) are a whole value and text after them is an error; `@` or
//!   `%` followed by anything else is text.
//! - **Variables and calls standing alone.** A value that is only `$x` (or `${x}`) is
//!   [`Expr::Var`] and only `$Fn(...)` is [`Expr::Call`]; with any other text around them they
//!   are parts of an implicit [`InterpString`].
//! - **Swim sentinels.** The up to five characters between the `>`s may not be whitespace,
//!   `` ` `` or `$`.
//! - **Names** may use any Unicode letters and digits; keywords are ASCII and match in any case.
//! - **Small liberties.** A trailing comma is accepted in argument lists, lists, maps and
//!   parameter lists; `call Name;` equals `call Name();`; `module Name { }` needs no `<>`.
//! - **Strictness.** `try` needs its `catch`; `global $x = v;` is accepted only at the top level
//!   before any other statement; `!` binds tighter than `&&`, which binds tighter than `||`,
//!   and `!a == b` means `!(a == b)`. Blocks, conditions and values may nest 64 levels deep.

mod ast;
mod diag;
mod lexer;
mod parser;
mod print;

#[cfg(test)]
mod tests;

pub use ast::{
    Arg, ArgValue, Block, CmpOp, Directive, DirectiveKind, Else, Expr, FnCall, If, InterpString,
    Operation, Param, Part, Plan, Predicate, SetScope, Sigil, Statement, StatementKind, StrKind,
    TargetKind, VarRef,
};
pub use diag::{Diagnostic, Diagnostics, Pos};

/// Parses a plan.
///
/// On failure, returns every problem found, in source order: the parser skips past a broken
/// statement (to its `;` or the end of its block) and carries on, so several errors in one plan
/// are all reported.
pub fn parse(src: &str) -> Result<Plan, Diagnostics> {
    let (plan, mut diagnostics) = parser::parse_plan(src);
    if diagnostics.is_empty() {
        Ok(plan)
    } else {
        diagnostics.sort_by_key(|d| d.pos);
        Err(Diagnostics(diagnostics))
    }
}

/// Prints a plan as source text in a fixed layout.
///
/// `parse(&print(&plan))` gives back `plan`, positions aside, for every plan `parse` can
/// produce: strings keep their kind and are escaped only where needed.
pub fn print(plan: &Plan) -> String {
    print::print_plan(plan)
}
