//! The plan language: the subset of OtterScript that Holt runs, as specified in
//! `PLAN-LANGUAGE.md`. This crate turns a plan's text into a syntax tree ([`parse`]), reports
//! every problem it finds with a line and column ([`Diagnostics`]), and turns a tree back into
//! text ([`print`]) that parses to the same tree.
//!
//! It is pure: no I/O, no clock, no async, and it depends on nothing in the workspace (the
//! domain crate depends on it, not the reverse). It knows the grammar only: which operations,
//! functions and directives exist, and what running them means, is decided by the loader and
//! the engine. Constructs of the full OtterScript grammar that Holt does not run parse into
//! [`StatementKind::Unsupported`] and [`DirectiveKind::Unsupported`] so that the loader can
//! reject them at their position with a clear message.

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
    VarRef,
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
