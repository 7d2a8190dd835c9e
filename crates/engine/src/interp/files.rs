//! The file operations (`Create-File`, `Ensure-File`, `Ensure-Directory`, `Delete-Files`,
//! `Copy-Files`, `Rename-File`, `Replace-Text`, `Transfer-Files`), the functions that look at
//! the server (`$FileExists`, `$DirectoryExists`, `$FileContents`, `$EnvironmentVariable`,
//! `$SHEval`) and the pure path function `$PathCombine`.
//!
//! Evaluation is synchronous, and a function that looks at the server must run a script, which
//! is not. So the calls to such functions in a statement are run just before the statement
//! runs ([`Ctx::prepare_host_calls`]), innermost first, and their results are kept by call
//! site and arguments; evaluation then only looks the result up. A failure is kept too and
//! raised only if evaluation reaches the call, so `$FileExists(f) && $FileContents(f) == x`
//! does not fail when the file is missing.
//!
//! Every touch of the file system is a POSIX `sh` script run through [`Ctx::capture_script`],
//! so each operation runs unchanged on whichever server is in context. The scripts are constant
//! text: paths, contents and modes reach them as environment variables (`HOLT_*`) or on
//! standard input. Which files a mask selects is decided here, in Rust, on the list of paths a
//! script prints (`find DIR -print0`), so it is the same wherever the files are.

use std::collections::HashMap;
use std::sync::Arc;

use holt_domain::{LogLevel, Server};
use holt_plan::{
    ArgValue, DirectiveKind, Else, Expr, FnCall, If, Operation, Part, Predicate, Sigil, Statement,
    StatementKind, VarRef,
};

use super::error::InterpError;
use super::host::{HostError, Output};
use super::shell;
use super::value::{Value, key_of};
use super::{Ctx, Flow, Signal};

/// The most paths one script is handed at once. Paths travel in the environment, which the
/// system bounds (a few MiB in all), so long lists go in several scripts.
const PATHS_PER_SCRIPT: usize = 256;

/// The most bytes of paths one script is handed at once (beyond a single item's), so that a
/// script sent to an `ssh` server stays within what one remote command may carry.
const BYTES_PER_SCRIPT: usize = 48 * 1024;

/// Why a file operation failed: the line it logs, an evaluation error (which may be an
/// exceeded bound, ending the job), or a signal that ends it.
enum Fail {
    Message(String),
    Interp(InterpError),
    Signal(Signal),
}

impl From<InterpError> for Fail {
    fn from(e: InterpError) -> Fail {
        Fail::Interp(e)
    }
}

impl From<String> for Fail {
    fn from(e: String) -> Fail {
        Fail::Message(e)
    }
}

impl From<&str> for Fail {
    fn from(e: &str) -> Fail {
        Fail::Message(e.to_owned())
    }
}

impl From<Signal> for Fail {
    fn from(s: Signal) -> Fail {
        Fail::Signal(s)
    }
}

impl From<HostError> for Fail {
    fn from(e: HostError) -> Fail {
        match e {
            HostError::Stopped => Fail::Signal(Signal::Stopped),
            HostError::Failed(e) => Fail::Message(e.to_string()),
        }
    }
}

type Done = Result<(), Fail>;

/// A path as a script receives it. A relative path is kept relative (the script runs in the
/// job's working directory) but starts with `./`, so no path a script is handed can be read as
/// an option, whatever the plan wrote.
fn resolve(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err("a path must not be empty".to_owned());
    }
    if path.contains('\0') {
        return Err("a path must not contain a NUL character".to_owned());
    }
    if path.starts_with('/') {
        Ok(path.to_owned())
    } else {
        Ok(format!("./{path}"))
    }
}

/// The directory a resolved path is in (never empty: `./x` is in `.`).
fn parent(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => "/".to_owned(),
        Some(i) => trimmed[..i].to_owned(),
        None => ".".to_owned(),
    }
}

/// `$PathCombine(p1, p2, ...)`: the parts joined with `/`; a part that starts with `/` starts
/// the path afresh, as it would for the server's file system.
pub(super) fn path_combine(parts: &[String]) -> String {
    let mut out = String::new();
    for part in parts {
        if part.is_empty() {
            continue;
        }
        if part.starts_with('/') || out.is_empty() {
            out = part.clone();
        } else {
            if !out.ends_with('/') {
                out.push('/');
            }
            out.push_str(part);
        }
    }
    out
}

/// An Inedo file mask: `*` matches within one path segment, `**` across segments, and a mask
/// without a wildcard names a file or a directory (and then everything in it). `\` separates
/// segments like `/`. Masks are matched against paths relative to the operation's directory.
#[derive(Debug, Clone)]
pub(super) struct Mask {
    pattern: regex::Regex,
}

impl Mask {
    pub(super) fn new(mask: &str) -> Result<Mask, String> {
        let mask = mask.replace('\\', "/");
        let mask = mask.trim_start_matches("./").trim_start_matches('/');
        let mut pattern = String::from("^");
        if mask.contains('*') {
            let mut rest = mask;
            while !rest.is_empty() {
                if let Some(after) = rest.strip_prefix("**") {
                    // `**/` also matches no directory at all, so `**/x` finds a top-level `x`.
                    if let Some(after) = after.strip_prefix('/') {
                        pattern.push_str("(?:.*/)?");
                        rest = after;
                    } else {
                        pattern.push_str(".*");
                        rest = after;
                    }
                } else if let Some(after) = rest.strip_prefix('*') {
                    pattern.push_str("[^/]*");
                    rest = after;
                } else {
                    let c = rest.chars().next().unwrap_or_default();
                    pattern.push_str(&regex::escape(&c.to_string()));
                    rest = &rest[c.len_utf8()..];
                }
            }
            pattern.push('$');
        } else {
            pattern.push_str(&regex::escape(mask.trim_end_matches('/')));
            pattern.push_str("(?:/.*)?$");
        }
        let pattern = regex::RegexBuilder::new(&pattern)
            .dot_matches_new_line(true)
            .build()
            .map_err(|e| format!("the mask \"{mask}\" cannot be used: {e}"))?;
        Ok(Mask { pattern })
    }

    pub(super) fn matches(&self, relative: &str) -> bool {
        self.pattern.is_match(relative)
    }
}

/// An `Include` and `Exclude` pair: a path is selected when an include matches it and no
/// exclude does.
#[derive(Debug, Clone)]
pub(super) struct Selection {
    include: Vec<Mask>,
    exclude: Vec<Mask>,
}

impl Selection {
    pub(super) fn new(include: &[String], exclude: &[String]) -> Result<Selection, String> {
        Ok(Selection {
            include: include
                .iter()
                .map(|m| Mask::new(m))
                .collect::<Result<_, _>>()?,
            exclude: exclude
                .iter()
                .map(|m| Mask::new(m))
                .collect::<Result<_, _>>()?,
        })
    }

    pub(super) fn selects(&self, relative: &str) -> bool {
        self.include.iter().any(|m| m.matches(relative))
            && !self.exclude.iter().any(|m| m.matches(relative))
    }
}

/// What a directory holds, as paths relative to it.
#[derive(Debug, Default)]
struct Listing {
    files: Vec<String>,
    dirs: Vec<String>,
}

/// Lists a directory: its files (anything not a directory), then an empty record, then its
/// directories, each path ending with a NUL. A missing directory lists nothing.
const LIST_SCRIPT: &str = r#"[ -d "$HOLT_DIR" ] || exit 0
find "$HOLT_DIR" ! -type d -print0 || exit 1
printf '\000'
find "$HOLT_DIR" -type d -print0 || exit 1
"#;

fn parse_listing(dir: &str, out: &[u8]) -> Result<Listing, String> {
    let mut listing = Listing::default();
    let mut in_dirs = false;
    let prefix = format!("{}/", dir.trim_end_matches('/'));
    let records = out.split(|b| *b == 0);
    for record in records {
        if record.is_empty() {
            in_dirs = true;
            continue;
        }
        let path = String::from_utf8(record.to_vec())
            .map_err(|_| "a file name in the directory is not UTF-8".to_owned())?;
        let Some(relative) = path.strip_prefix(&prefix) else {
            // The directory itself.
            continue;
        };
        if in_dirs {
            listing.dirs.push(relative.to_owned());
        } else {
            listing.files.push(relative.to_owned());
        }
    }
    Ok(listing)
}

/// The loop around a per-item script (see [`Ctx::each`]): item `i` of a batch arrives as
/// `HOLT_SRC_<i>`, `HOLT_DST_<i>` and `HOLT_PARENT_<i>`, and `HOLT_N` says how many there are.
/// `eval` only ever sees the loop's own counter spliced in, never a value, and an assignment's
/// value is neither split nor globbed, so `$src`, `$dst` and `$dir` hold the paths exactly.
const LOOP_HEAD: &str = r#"i=0
while [ "$i" -lt "$HOLT_N" ]; do
eval "src=\$HOLT_SRC_$i dst=\$HOLT_DST_$i dir=\$HOLT_PARENT_$i"
"#;
const LOOP_TAIL: &str = "i=$((i + 1))\ndone\n";

fn truthy(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        _ => Err(format!("expected true or false, found \"{text}\"")),
    }
}

impl Ctx {
    /// Runs a file operation, raising its failure as any operation's.
    pub(super) async fn file_operation(&mut self, name: &'static str, op: &Operation) -> Flow {
        let takes_value = matches!(
            name,
            "Create-File" | "Ensure-File" | "Ensure-Directory" | "Delete-Files"
        );
        let done = match name {
            _ if op.positional.is_some() && !takes_value => Err(Fail::Message(
                "takes no value after its name; name each argument".to_owned(),
            )),
            "Create-File" => self.create_file(op).await,
            "Ensure-File" => self.ensure_file(op).await,
            "Ensure-Directory" => self.ensure_directory(op).await,
            "Delete-Files" => self.delete_files(op).await,
            "Copy-Files" => self.copy_files(op, false).await,
            "Transfer-Files" => self.copy_files(op, true).await,
            "Rename-File" => self.rename_file(op).await,
            _ => self.replace_text(op).await,
        };
        match done {
            Ok(()) => Ok(()),
            Err(Fail::Signal(signal)) => Err(signal),
            Err(Fail::Interp(error)) if error.is_fatal() => self.raise(error).await,
            Err(Fail::Interp(error)) => self.raise(format!("{name}: {error}")).await,
            Err(Fail::Message(message)) => self.raise(format!("{name}: {message}")).await,
        }
    }

    /// An argument as text, or `None` when it is not given; the positional value stands for
    /// `positional` when that is given.
    fn file_arg(
        &self,
        op: &Operation,
        name: &str,
        positional: bool,
    ) -> Result<Option<Value>, Fail> {
        if positional {
            // `input` names the operation itself; the caller's line names it once.
            let prefix = format!("{}: ", op.name);
            return self.input(op, name).map_err(|e| match e {
                InterpError::Message(m) => {
                    Fail::Message(m.strip_prefix(&prefix).unwrap_or(&m).to_owned())
                }
                other => Fail::Interp(other),
            });
        }
        match op.arg(name) {
            None => Ok(None),
            Some(ArgValue::Input(expr)) => Ok(Some(self.eval(expr)?)),
            Some(ArgValue::Output(_)) => Err(format!("{name} is an input, not an output").into()),
        }
    }

    fn text_arg(
        &self,
        op: &Operation,
        name: &str,
        positional: bool,
    ) -> Result<Option<String>, Fail> {
        match self.file_arg(op, name, positional)? {
            None => Ok(None),
            Some(Value::Scalar(s)) => Ok(Some(s)),
            Some(other) => Err(format!("{name} must be a string, found {}", other.kind()).into()),
        }
    }

    fn required(&self, op: &Operation, name: &str, positional: bool) -> Result<String, Fail> {
        self.text_arg(op, name, positional)?
            .ok_or_else(|| Fail::Message(format!("{name} is required")))
    }

    fn flag(&self, op: &Operation, name: &str, default: bool) -> Result<bool, Fail> {
        match self.text_arg(op, name, false)? {
            None => Ok(default),
            Some(text) => truthy(&text).map_err(|e| Fail::Message(format!("{name}: {e}"))),
        }
    }

    /// A list of masks: a list value, or one string.
    fn masks(&self, op: &Operation, name: &str, positional: bool) -> Result<Vec<String>, Fail> {
        match self.file_arg(op, name, positional)? {
            None => Ok(Vec::new()),
            Some(Value::Scalar(s)) => Ok(vec![s]),
            Some(Value::List(items)) => Ok(items.iter().map(ToString::to_string).collect()),
            Some(Value::Map(_)) => {
                Err(format!("{name} must be a string or a list of masks").into())
            }
        }
    }

    /// Runs a script and fails with what it said unless it exited with 0.
    async fn run_ok(
        &mut self,
        script: &str,
        env: Vec<(String, String)>,
        stdin: Option<Vec<u8>>,
    ) -> Result<Output, Fail> {
        let output = self.capture_script(script, env, stdin).await?;
        if output.code != 0 {
            return Err(Fail::Message(output.reason()));
        }
        Ok(output)
    }

    async fn list(&mut self, dir: &str) -> Result<Listing, Fail> {
        let output = self
            .run_ok(LIST_SCRIPT, vec![env("HOLT_DIR", dir)], None)
            .await?;
        Ok(parse_listing(dir, &output.stdout)?)
    }

    /// Runs a per-item script over `items` in batches. Each item is (source, destination); the
    /// script sees them as `$src`, `$dst` and `$dir` (the destination's directory).
    async fn each(
        &mut self,
        body: &str,
        extra: &[(String, String)],
        items: &[(String, String)],
    ) -> Done {
        let script = format!("{LOOP_HEAD}{body}{LOOP_TAIL}");
        for batch in batches(items) {
            let mut vars = extra.to_vec();
            vars.push(env("HOLT_N", &batch.len().to_string()));
            for (i, (src, dst)) in batch.iter().enumerate() {
                vars.push((format!("HOLT_SRC_{i}"), src.clone()));
                vars.push((format!("HOLT_DST_{i}"), dst.clone()));
                vars.push((format!("HOLT_PARENT_{i}"), parent(dst)));
            }
            self.run_ok(&script, vars, None).await?;
        }
        Ok(())
    }
}

/// `items` in batches of at most [`PATHS_PER_SCRIPT`] items and about [`BYTES_PER_SCRIPT`]
/// bytes of paths (an item longer than that is a batch of its own).
fn batches(items: &[(String, String)]) -> Vec<&[(String, String)]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (src, dst)) in items.iter().enumerate() {
        // The destination is sent twice: as itself and as its directory.
        let size = src.len() + 2 * dst.len();
        if i > start && (i - start == PATHS_PER_SCRIPT || bytes + size > BYTES_PER_SCRIPT) {
            out.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

fn env(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

mod functions;
mod ops;
mod transfer;

use transfer::server_name;

pub(super) use functions::{HostValues, is_host_function, is_host_variable};

#[cfg(test)]
mod tests;
