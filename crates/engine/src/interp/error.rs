//! Why evaluating a value or preparing an operation failed, and the bounds evaluation keeps.
//!
//! A plan is written by the template's author, but the values it evaluates come from whoever
//! triggers the job, and `$Eval` turns such a value into code. Every way evaluation can grow
//! (nesting, recursion, list and string sizes, sheer amount of work) therefore has a bound here,
//! and going beyond one fails the job with a line naming the bound, never the process.

use thiserror::Error;

/// The deepest `$Eval` of text produced by another `$Eval`, so `x=$Eval($x)` ends.
pub(crate) const MAX_EVAL_NESTING: usize = 32;

/// The deepest nesting of expressions inside one another during one evaluation, counting across
/// `$Eval`, so evaluation stays well within a thread's stack.
pub(crate) const MAX_EXPR_DEPTH: usize = 128;

/// The deepest blocks may nest while a plan runs, counting the blocks of every module call on
/// the way: the parser bounds nesting within the plan's text, and this bounds it across calls.
pub(crate) const MAX_BLOCK_NESTING: usize = 64;

/// The stack each runtime thread that runs jobs must have. Running a nested block or expression
/// takes stack, and the bounds above are chosen so that the deepest plan they allow, with the
/// deepest expression at its innermost point, runs within this stack in a debug build with room
/// to spare (a release build needs far less). holtd builds its runtime with it.
pub const WORKER_STACK_BYTES: usize = 8 * 1024 * 1024;

/// The longest string a value may be, in bytes.
pub(crate) const MAX_STRING_BYTES: usize = 16 * 1024 * 1024;

/// The most items a list or map may hold, counting the items of nested lists and maps.
pub(crate) const MAX_LIST_ITEMS: usize = 1_000_000;

/// The deepest lists and maps may nest inside one another (`set @l = @(@l);` in a loop).
pub(crate) const MAX_VALUE_NESTING: usize = 32;

/// The most steps one job may take, so a plan that spins ends: each statement run and each
/// expression evaluated is a step, and each item of a list or map and each KiB of text an
/// evaluation produces is one more.
pub(crate) const MAX_JOB_STEPS: u64 = 10_000_000;

/// The deepest module call chain, so a module calling itself ends.
pub(crate) const MAX_CALL_DEPTH: usize = 64;

/// The most async blocks of one job that may be running or waiting to be awaited at once.
pub(crate) const MAX_ASYNC_BLOCKS: usize = 1024;

/// A bound on evaluation. A job that goes beyond one fails at once: no `catch` or retry runs,
/// since running more of the plan would meet the same bound again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// [`MAX_EVAL_NESTING`].
    EvalNesting,
    /// [`MAX_EXPR_DEPTH`].
    ExprDepth,
    /// [`MAX_STRING_BYTES`].
    StringBytes,
    /// [`MAX_LIST_ITEMS`].
    ListItems,
    /// [`MAX_VALUE_NESTING`].
    ValueNesting,
    /// [`MAX_JOB_STEPS`].
    JobSteps,
    /// [`MAX_CALL_DEPTH`].
    CallDepth,
    /// [`MAX_BLOCK_NESTING`].
    BlockNesting,
    /// [`MAX_ASYNC_BLOCKS`].
    AsyncBlocks,
}

impl Limit {
    /// What the bound limits, in the words of the log line.
    fn what(self) -> &'static str {
        match self {
            Limit::EvalNesting => "$Eval nesting",
            Limit::ExprDepth => "expression nesting",
            Limit::StringBytes => "the length of a string",
            Limit::ListItems => "the number of items in a list or map",
            Limit::ValueNesting => "the nesting of lists and maps",
            Limit::JobSteps => "the number of evaluation steps of a job",
            Limit::CallDepth => "module call nesting",
            Limit::BlockNesting => "block nesting",
            Limit::AsyncBlocks => "the number of async blocks running at once",
        }
    }

    /// The bound, with its unit where it has one.
    fn bound(self) -> String {
        match self {
            Limit::EvalNesting => MAX_EVAL_NESTING.to_string(),
            Limit::ExprDepth => MAX_EXPR_DEPTH.to_string(),
            Limit::StringBytes => format!("{MAX_STRING_BYTES} bytes"),
            Limit::ListItems => MAX_LIST_ITEMS.to_string(),
            Limit::ValueNesting => MAX_VALUE_NESTING.to_string(),
            Limit::JobSteps => MAX_JOB_STEPS.to_string(),
            Limit::CallDepth => MAX_CALL_DEPTH.to_string(),
            Limit::BlockNesting => MAX_BLOCK_NESTING.to_string(),
            Limit::AsyncBlocks => MAX_ASYNC_BLOCKS.to_string(),
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} exceeds its limit of {}", self.what(), self.bound())
    }
}

/// Why a value could not be evaluated or an operation could not be prepared. The text is the
/// ERROR line the job logs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub(crate) enum InterpError {
    /// No function of that name (with that sigil) exists; a variable reference falls back to a
    /// function of its name, so this also means "no such variable".
    #[error("unknown function {name}")]
    UnknownFunction {
        /// The function as written, with its sigil.
        name: String,
    },
    /// A variable was read that no scope defines and no function answers for.
    #[error("variable {name} is not defined")]
    UndefinedVariable {
        /// The variable as written, with its sigil.
        name: String,
    },
    /// A bound on evaluation was exceeded; the job fails at once.
    #[error("{limit}")]
    LimitExceeded {
        /// Which bound.
        limit: Limit,
    },
    /// A plan tried to assign a built-in variable, which only the engine sets.
    #[error("{name} is a built-in variable and cannot be set")]
    BuiltIn {
        /// The variable as written, with its sigil.
        name: String,
    },
    /// Any other mistake of the plan or its values, described for the log.
    #[error("{0}")]
    Message(String),
}

impl InterpError {
    /// Whether the error ends the job at once rather than being raised where `catch` can see it.
    pub(crate) fn is_fatal(&self) -> bool {
        matches!(self, InterpError::LimitExceeded { .. })
    }
}

impl From<Limit> for InterpError {
    fn from(limit: Limit) -> Self {
        InterpError::LimitExceeded { limit }
    }
}

impl From<String> for InterpError {
    fn from(message: String) -> Self {
        InterpError::Message(message)
    }
}

impl From<&str> for InterpError {
    fn from(message: &str) -> Self {
        InterpError::Message(message.to_owned())
    }
}
