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

use holt_domain::LogLevel;
use holt_plan::{
    ArgValue, DirectiveKind, Else, Expr, FnCall, If, Operation, Part, Predicate, Sigil, Statement,
    StatementKind, VarRef,
};

use super::error::InterpError;
use super::host::{HostError, Output};
use super::shell::{self, Piece};
use super::value::{Value, key_of};
use super::{Ctx, Flow, Signal};

/// The most paths one script is handed at once. Paths travel in the environment, which the
/// system bounds (a few MiB in all), so long lists go in several scripts.
const PATHS_PER_SCRIPT: usize = 256;

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
        for batch in items.chunks(PATHS_PER_SCRIPT) {
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

    /// `Create-File Name: path, Text: text, Overwrite: bool, FileMode: octal`.
    async fn create_file(&mut self, op: &Operation) -> Done {
        let name = self.required(op, "Name", true)?;
        let path = resolve(&name)?;
        let text = self.text_arg(op, "Text", false)?.unwrap_or_default();
        let overwrite = self.flag(op, "Overwrite", false)?;
        let mode = match self.text_arg(op, "FileMode", false)? {
            None => String::new(),
            Some(mode) => {
                let mode = mode.trim().to_owned();
                if !(3..=4).contains(&mode.len()) || !mode.chars().all(|c| ('0'..='7').contains(&c))
                {
                    return Err(format!(
                        "FileMode must be an octal mode like 644, found \"{mode}\""
                    )
                    .into());
                }
                mode
            }
        };
        const SCRIPT: &str = r#"if [ -e "$HOLT_PATH" ] || [ -L "$HOLT_PATH" ]; then
  if [ "$HOLT_OVERWRITE" != true ]; then echo "the file already exists and Overwrite is false" >&2; exit 1; fi
  if [ -d "$HOLT_PATH" ]; then echo "a directory is in the way" >&2; exit 1; fi
fi
mkdir -p -- "$HOLT_PARENT" || exit 1
cat > "$HOLT_PATH" || exit 1
if [ -n "$HOLT_MODE" ]; then chmod "$HOLT_MODE" "$HOLT_PATH" || exit 1; fi
"#;
        self.run_ok(
            SCRIPT,
            vec![
                env("HOLT_PATH", &path),
                env("HOLT_PARENT", &parent(&path)),
                env("HOLT_OVERWRITE", if overwrite { "true" } else { "false" }),
                env("HOLT_MODE", &mode),
            ],
            Some(text.into_bytes()),
        )
        .await?;
        self.log(LogLevel::Info, &format!("Created {name}")).await?;
        Ok(())
    }

    /// `Ensure-File Name: path, Text: text, Exists: bool, ReadOnly: bool`: brings the file to
    /// the state asked for, logging whether it was already so.
    async fn ensure_file(&mut self, op: &Operation) -> Done {
        let name = self.required(op, "Name", true)?;
        let path = resolve(&name)?;
        let text = self.text_arg(op, "Text", false)?;
        let exists = self.flag(op, "Exists", true)?;
        let read_only = match self.text_arg(op, "ReadOnly", false)? {
            None => None,
            Some(t) => Some(truthy(&t).map_err(|e| Fail::Message(format!("ReadOnly: {e}")))?),
        };
        // The state: `n` (nothing there), `d` (something that is not a file), or `f` then `w`
        // or `r` (whether the owner may write) then, when the text is to be compared, the
        // contents.
        const STATE: &str = r#"if [ -f "$HOLT_PATH" ]; then
  printf f
  if [ -n "$(find "$HOLT_PATH" -prune -perm -0200)" ]; then printf w; else printf r; fi
  if [ "$HOLT_READ" = true ]; then cat "$HOLT_PATH" || exit 1; fi
elif [ -e "$HOLT_PATH" ] || [ -L "$HOLT_PATH" ]; then printf d
else printf n
fi
"#;
        let state = self
            .run_ok(
                STATE,
                vec![
                    env("HOLT_PATH", &path),
                    env("HOLT_READ", if text.is_some() { "true" } else { "false" }),
                ],
                None,
            )
            .await?
            .stdout;
        let kind = state.first().copied().unwrap_or(b'n');
        if kind == b'd' {
            return Err(format!("{name} exists and is not a file").into());
        }
        if !exists {
            if kind == b'n' {
                self.log(LogLevel::Info, &format!("{name} is already absent"))
                    .await?;
                return Ok(());
            }
            self.run_ok(r#"rm -f "$HOLT_PATH""#, vec![env("HOLT_PATH", &path)], None)
                .await?;
            self.log(LogLevel::Info, &format!("Deleted {name}")).await?;
            return Ok(());
        }
        let mut changes = Vec::new();
        let writable = state.get(1) == Some(&b'w');
        let current = state.get(2..).unwrap_or_default();
        let write = match (&text, kind) {
            (_, b'n') => {
                changes.push("created it");
                true
            }
            (Some(text), _) if text.as_bytes() != current => {
                changes.push("wrote its text");
                true
            }
            _ => false,
        };
        let want_read_only = read_only.unwrap_or(kind == b'f' && !writable);
        let chmod = if kind == b'n' {
            want_read_only
        } else {
            want_read_only == writable
        };
        if chmod {
            changes.push(if want_read_only {
                "made it read-only"
            } else {
                "made it writable"
            });
        }
        if changes.is_empty() {
            self.log(
                LogLevel::Info,
                &format!("{name} is already in the desired state"),
            )
            .await?;
            return Ok(());
        }
        const WRITE: &str = r#"if [ "$HOLT_WRITE" = true ]; then
  mkdir -p -- "$HOLT_PARENT" || exit 1
  if [ -f "$HOLT_PATH" ]; then chmod u+w "$HOLT_PATH" || exit 1; fi
  cat > "$HOLT_PATH" || exit 1
fi
if [ "$HOLT_READ_ONLY" = true ]; then chmod a-w "$HOLT_PATH" || exit 1
else chmod u+w "$HOLT_PATH" || exit 1
fi
"#;
        self.run_ok(
            WRITE,
            vec![
                env("HOLT_PATH", &path),
                env("HOLT_PARENT", &parent(&path)),
                env("HOLT_WRITE", if write { "true" } else { "false" }),
                env(
                    "HOLT_READ_ONLY",
                    if want_read_only { "true" } else { "false" },
                ),
            ],
            Some(text.unwrap_or_default().into_bytes()),
        )
        .await?;
        self.log(
            LogLevel::Info,
            &format!("{name} was changed: {}", changes.join(", ")),
        )
        .await?;
        Ok(())
    }

    /// `Ensure-Directory Name: path, Exists: bool`.
    async fn ensure_directory(&mut self, op: &Operation) -> Done {
        let name = self.required(op, "Name", true)?;
        let path = resolve(&name)?;
        let exists = self.flag(op, "Exists", true)?;
        const SCRIPT: &str = r#"if [ -d "$HOLT_PATH" ] && [ ! -L "$HOLT_PATH" ]; then
  if [ "$HOLT_EXISTS" = true ]; then printf same; exit 0; fi
  rm -rf -- "$HOLT_PATH" || exit 1
  printf deleted
elif [ -e "$HOLT_PATH" ] || [ -L "$HOLT_PATH" ]; then
  echo "it exists and is not a directory" >&2; exit 1
else
  if [ "$HOLT_EXISTS" != true ]; then printf same; exit 0; fi
  mkdir -p -- "$HOLT_PATH" || exit 1
  printf created
fi
"#;
        let out = self
            .run_ok(
                SCRIPT,
                vec![
                    env("HOLT_PATH", &path),
                    env("HOLT_EXISTS", if exists { "true" } else { "false" }),
                ],
                None,
            )
            .await?
            .stdout;
        let line = match out.as_slice() {
            b"created" => format!("Created the directory {name}"),
            b"deleted" => format!("Deleted the directory {name}"),
            _ if exists => format!("The directory {name} already exists"),
            _ => format!("The directory {name} is already absent"),
        };
        self.log(LogLevel::Info, &line).await?;
        Ok(())
    }

    /// The directory an operation works in: its argument resolved, or the job's working
    /// directory.
    fn directory(&self, op: &Operation, name: &str) -> Result<String, Fail> {
        match self.text_arg(op, name, false)? {
            None => Ok(".".to_owned()),
            Some(dir) if dir.is_empty() => Ok(".".to_owned()),
            Some(dir) => Ok(resolve(&dir)?),
        }
    }

    /// `Delete-Files Include: masks, Exclude: masks, Directory: path, Verbose: bool`: deletes
    /// the selected files, then the selected directories left empty by it, deepest first.
    async fn delete_files(&mut self, op: &Operation) -> Done {
        let include = self.masks(op, "Include", true)?;
        if include.is_empty() {
            return Err("Include is required".into());
        }
        let selection = Selection::new(&include, &self.masks(op, "Exclude", false)?)?;
        let dir = self.directory(op, "Directory")?;
        let verbose = self.flag(op, "Verbose", false)?;
        let listing = self.list(&dir).await?;
        let (gone, kept): (Vec<_>, Vec<_>) =
            listing.files.iter().partition(|f| selection.selects(f));
        let mut dirs: Vec<&String> = listing
            .dirs
            .iter()
            .filter(|d| selection.selects(d))
            .filter(|d| {
                let inside = format!("{d}/");
                !kept.iter().any(|f| f.starts_with(&inside))
                    && !listing
                        .dirs
                        .iter()
                        .any(|other| other.starts_with(&inside) && !selection.selects(other))
            })
            .collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        let in_dir = |rel: &str| format!("{}/{rel}", dir.trim_end_matches('/'));
        let files: Vec<(String, String)> = gone.iter().map(|f| (in_dir(f), in_dir(f))).collect();
        self.each(
            r#"rm -f "$src" || exit 1
"#,
            &[],
            &files,
        )
        .await?;
        let dir_items: Vec<(String, String)> =
            dirs.iter().map(|d| (in_dir(d), in_dir(d))).collect();
        self.each(
            r#"rmdir "$src" || exit 1
"#,
            &[],
            &dir_items,
        )
        .await?;
        if verbose {
            for f in &gone {
                self.log(LogLevel::Debug, &format!("Deleted {f}")).await?;
            }
            for d in &dirs {
                self.log(LogLevel::Debug, &format!("Deleted the directory {d}"))
                    .await?;
            }
        }
        self.log(
            LogLevel::Info,
            &format!(
                "Deleted {} file{} and {} director{}",
                gone.len(),
                if gone.len() == 1 { "" } else { "s" },
                dirs.len(),
                if dirs.len() == 1 { "y" } else { "ies" }
            ),
        )
        .await?;
        Ok(())
    }

    /// `Copy-Files Include, Exclude, From, To, Overwrite, Verbose`, and, with `transfer`,
    /// `Transfer-Files Include, Exclude, FromDirectory, ToDirectory, DeleteTarget` (which
    /// overwrites, and can delete what the target holds beyond the source's selection).
    async fn copy_files(&mut self, op: &Operation, transfer: bool) -> Done {
        if transfer {
            for server in ["FromServer", "ToServer"] {
                let other = self
                    .text_arg(op, server, false)?
                    .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("localhost"));
                if let Some(s) = other {
                    return Err(format!(
                        "{server} \"{s}\": transferring files to or from another server is not yet supported"
                    )
                    .into());
                }
            }
        }
        let (from_arg, to_arg) = if transfer {
            ("FromDirectory", "ToDirectory")
        } else {
            ("From", "To")
        };
        let mut include = self.masks(op, "Include", false)?;
        if include.is_empty() {
            include.push("**".to_owned());
        }
        let selection = Selection::new(&include, &self.masks(op, "Exclude", false)?)?;
        let from = self.directory(op, from_arg)?;
        let to = match self.text_arg(op, to_arg, false)? {
            Some(to) => resolve(&to)?,
            None => return Err(format!("{to_arg} is required").into()),
        };
        let overwrite = transfer || self.flag(op, "Overwrite", false)?;
        let delete_target = transfer && self.flag(op, "DeleteTarget", false)?;
        let verbose = self.flag(op, "Verbose", false)?;
        let listing = self.list(&from).await?;
        let chosen: Vec<&String> = listing
            .files
            .iter()
            .filter(|f| selection.selects(f))
            .collect();
        let src_root = from.trim_end_matches('/').to_owned();
        let dst_root = to.trim_end_matches('/').to_owned();
        let items: Vec<(String, String)> = chosen
            .iter()
            .map(|f| (format!("{src_root}/{f}"), format!("{dst_root}/{f}")))
            .collect();
        let dirs: Vec<(String, String)> = listing
            .dirs
            .iter()
            .filter(|d| selection.selects(d))
            .map(|d| (format!("{dst_root}/{d}"), format!("{dst_root}/{d}/.")))
            .collect();
        self.each(
            r#"mkdir -p -- "$src" || exit 1
"#,
            &[],
            &dirs,
        )
        .await?;
        const COPY: &str = r#"if [ -e "$dst" ] || [ -L "$dst" ]; then
  if [ "$HOLT_OVERWRITE" != true ]; then
    echo "the target file exists and Overwrite is false: ${dst#./}" >&2; exit 1
  fi
  rm -f "$dst" || exit 1
fi
mkdir -p -- "$dir" || exit 1
cp "$src" "$dst" || exit 1
"#;
        self.each(
            COPY,
            &[env(
                "HOLT_OVERWRITE",
                if overwrite { "true" } else { "false" },
            )],
            &items,
        )
        .await?;
        if verbose {
            for f in &chosen {
                self.log(LogLevel::Debug, &format!("Copied {f}")).await?;
            }
        }
        let mut deleted = 0;
        if delete_target {
            let target = self.list(&to).await?;
            let copied: std::collections::HashSet<&str> =
                chosen.iter().map(|f| f.as_str()).collect();
            let stale: Vec<(String, String)> = target
                .files
                .iter()
                .filter(|f| !copied.contains(f.as_str()))
                .map(|f| (format!("{dst_root}/{f}"), format!("{dst_root}/{f}")))
                .collect();
            deleted = stale.len();
            self.each(
                r#"rm -f "$src" || exit 1
"#,
                &[],
                &stale,
            )
            .await?;
        }
        let mut line = format!(
            "Copied {} file{} to {}",
            chosen.len(),
            if chosen.len() == 1 { "" } else { "s" },
            to.strip_prefix("./").unwrap_or(&to)
        );
        if delete_target {
            line.push_str(&format!(" and deleted {deleted} from it"));
        }
        self.log(LogLevel::Info, &line).await?;
        Ok(())
    }

    /// `Rename-File From: path, To: path, Overwrite: bool`.
    async fn rename_file(&mut self, op: &Operation) -> Done {
        let from_name = self.required(op, "From", false)?;
        let to_name = self.required(op, "To", false)?;
        let (from, to) = (resolve(&from_name)?, resolve(&to_name)?);
        let overwrite = self.flag(op, "Overwrite", false)?;
        const SCRIPT: &str = r#"if [ ! -e "$HOLT_FROM" ] && [ ! -L "$HOLT_FROM" ]; then echo "the file to rename does not exist" >&2; exit 1; fi
if [ -e "$HOLT_TO" ] || [ -L "$HOLT_TO" ]; then
  if [ "$HOLT_OVERWRITE" != true ]; then echo "the target exists and Overwrite is false" >&2; exit 1; fi
  if [ -d "$HOLT_TO" ]; then echo "a directory is in the way" >&2; exit 1; fi
fi
mkdir -p -- "$HOLT_PARENT" || exit 1
mv -f "$HOLT_FROM" "$HOLT_TO" || exit 1
"#;
        self.run_ok(
            SCRIPT,
            vec![
                env("HOLT_FROM", &from),
                env("HOLT_TO", &to),
                env("HOLT_PARENT", &parent(&to)),
                env("HOLT_OVERWRITE", if overwrite { "true" } else { "false" }),
            ],
            None,
        )
        .await?;
        self.log(LogLevel::Info, &format!("Renamed {from_name} to {to_name}"))
            .await?;
        Ok(())
    }

    /// `Replace-Text Include, Exclude, Directory, SearchText, ReplaceWith, Regex`: each selected
    /// file is read, the text replaced here, and written back when it changed.
    async fn replace_text(&mut self, op: &Operation) -> Done {
        let mut include = self.masks(op, "Include", false)?;
        if include.is_empty() {
            include.push("**".to_owned());
        }
        let selection = Selection::new(&include, &self.masks(op, "Exclude", false)?)?;
        let dir = self.directory(op, "Directory")?;
        let search = self.required(op, "SearchText", false)?;
        if search.is_empty() {
            return Err("SearchText must not be empty".into());
        }
        let with = self.text_arg(op, "ReplaceWith", false)?.unwrap_or_default();
        let regex = self.flag(op, "Regex", false)?;
        let pattern = regex::bytes::Regex::new(&if regex {
            search.clone()
        } else {
            regex::escape(&search)
        })
        .map_err(|e| format!("SearchText is not a valid regular expression: {e}"))?;
        let listing = self.list(&dir).await?;
        let root = dir.trim_end_matches('/').to_owned();
        let mut changed = 0;
        for file in listing.files.iter().filter(|f| selection.selects(f)) {
            let path = format!("{root}/{file}");
            let content = self
                .run_ok(r#"cat "$HOLT_PATH""#, vec![env("HOLT_PATH", &path)], None)
                .await?
                .stdout;
            let replaced = if regex {
                pattern.replace_all(&content, with.as_bytes())
            } else {
                pattern.replace_all(&content, regex::bytes::NoExpand(with.as_bytes()))
            };
            if replaced.as_ref() == content.as_slice() {
                continue;
            }
            let replaced = replaced.into_owned();
            self.run_ok(
                r#"cat > "$HOLT_PATH""#,
                vec![env("HOLT_PATH", &path)],
                Some(replaced),
            )
            .await?;
            self.log(LogLevel::Debug, &format!("Replaced text in {file}"))
                .await?;
            changed += 1;
        }
        self.log(
            LogLevel::Info,
            &format!(
                "Replaced text in {changed} file{}",
                if changed == 1 { "" } else { "s" }
            ),
        )
        .await?;
        Ok(())
    }
}

/// The functions that run a script on the server, by case-folded name.
const HOST_FUNCTIONS: &[&str] = &[
    "fileexists",
    "directoryexists",
    "filecontents",
    "environmentvariable",
    "sheval",
];

/// Whether a call is to a function that runs a script on the server.
pub(super) fn is_host_function(call: &FnCall) -> bool {
    call.sigil == Sigil::Scalar
        && HOST_FUNCTIONS
            .iter()
            .any(|name| name.eq_ignore_ascii_case(&call.name))
}

/// `$WorkingDirectory`, written without parentheses: a variable of that name shadows it.
pub(super) fn is_host_variable(var: &VarRef) -> bool {
    var.sigil == Sigil::Scalar && var.name.eq_ignore_ascii_case("WorkingDirectory")
}

/// A place in the plan where a function that looks at the server is called.
#[derive(Clone, Copy)]
enum Site<'a> {
    Call(&'a FnCall),
    /// `$WorkingDirectory`.
    Var(&'a VarRef),
}

/// The results of the host function calls of the statement about to run, by the call's place
/// in the plan and its arguments' values.
#[derive(Debug, Default)]
pub(crate) struct HostValues {
    values: HashMap<(usize, Vec<String>), Result<String, String>>,
}

fn call_key(call: &FnCall, args: Vec<String>) -> (usize, Vec<String>) {
    (std::ptr::from_ref(call) as usize, args)
}

/// The host function calls in an expression, innermost first.
fn calls_in<'a>(expr: &'a Expr, out: &mut Vec<Site<'a>>) {
    match expr {
        Expr::Str(s) => {
            for part in &s.parts {
                match part {
                    Part::Expr(e) => calls_in(e, out),
                    Part::Var(var) if is_host_variable(var) => out.push(Site::Var(var)),
                    Part::Var(_) | Part::Text(_) => {}
                }
            }
        }
        Expr::List(items) => items.iter().for_each(|e| calls_in(e, out)),
        Expr::Map(entries) => entries.iter().for_each(|(_, e)| calls_in(e, out)),
        Expr::Var(var) => {
            if is_host_variable(var) {
                out.push(Site::Var(var));
            }
        }
        Expr::Index { index, .. } => calls_in(index, out),
        Expr::Call(call) => {
            call.args.iter().for_each(|e| calls_in(e, out));
            if is_host_function(call) {
                out.push(Site::Call(call));
            }
        }
    }
}

fn calls_in_predicate<'a>(predicate: &'a Predicate, out: &mut Vec<Site<'a>>) {
    match predicate {
        Predicate::Compare { left, right, .. } => {
            calls_in(left, out);
            calls_in(right, out);
        }
        Predicate::And(a, b) | Predicate::Or(a, b) => {
            calls_in_predicate(a, out);
            calls_in_predicate(b, out);
        }
        Predicate::Not(a) => calls_in_predicate(a, out),
        Predicate::Value(e) => calls_in(e, out),
    }
}

/// The host function calls a statement evaluates itself (not those of the blocks it runs,
/// which are prepared as their own statements run); for an `if`, those of every condition of
/// its `else if` chain, which are evaluated with no statement between.
fn calls_in_statement(statement: &Statement) -> Vec<Site<'_>> {
    let mut out = Vec::new();
    match &statement.kind {
        StatementKind::Operation(op) => {
            if let Some(e) = &op.positional {
                calls_in(e, &mut out);
            }
            for arg in &op.args {
                if let ArgValue::Input(e) = &arg.value {
                    calls_in(e, &mut out);
                }
            }
        }
        StatementKind::Set { value, .. } => calls_in(value, &mut out),
        StatementKind::Foreach { source, .. } => calls_in(source, &mut out),
        StatementKind::Throw(Some(e)) => calls_in(e, &mut out),
        StatementKind::Call { args, .. } => args.iter().for_each(|(_, e)| calls_in(e, &mut out)),
        StatementKind::With { directives, .. } => {
            for d in directives {
                if let DirectiveKind::Retry(e)
                | DirectiveKind::Timeout(e)
                | DirectiveKind::Lock(e) = &d.kind
                {
                    calls_in(e, &mut out);
                }
            }
        }
        StatementKind::If(branch) => {
            let mut next: Option<&If> = Some(branch);
            while let Some(b) = next {
                calls_in_predicate(&b.cond, &mut out);
                next = match b.otherwise.as_deref() {
                    Some(Else::If { branch, .. }) => Some(branch),
                    _ => None,
                };
            }
        }
        _ => {}
    }
    out
}

impl Ctx {
    /// Runs the host function calls of a statement about to run and keeps their results for
    /// its evaluation; see the module's documentation.
    ///
    /// Call it only when [`Ctx::needs_host_calls`] says so: most statements have no such call,
    /// and then need neither the walk's future nor its allocation.
    pub(super) async fn prepare_host_calls(&mut self, statement: &Statement) -> Flow {
        for site in calls_in_statement(statement) {
            let call = match site {
                Site::Call(call) => call,
                Site::Var(var) => {
                    if self.env.get(&key_of(var)).is_some() {
                        continue;
                    }
                    let result = match self.run_ok("pwd", Vec::new(), None).await {
                        Ok(out) => Ok(String::from_utf8_lossy(&out.stdout)
                            .trim_end_matches('\n')
                            .to_owned()),
                        Err(Fail::Message(message)) => Err(message),
                        Err(Fail::Interp(error)) => Err(error.to_string()),
                        Err(Fail::Signal(signal)) => return Err(signal),
                    };
                    self.host_values
                        .values
                        .insert((std::ptr::from_ref(var) as usize, Vec::new()), result);
                    continue;
                }
            };
            // Arguments that cannot be evaluated now cannot be when the statement runs
            // either; evaluation then reports that, so nothing is run for them here.
            let Ok(args) = call
                .args
                .iter()
                .map(|a| self.eval_text(a))
                .collect::<Result<Vec<_>, _>>()
            else {
                continue;
            };
            let result = match self.host_call(call, &args).await {
                Ok(value) => Ok(value),
                Err(Fail::Message(message)) => Err(message),
                Err(Fail::Interp(error)) => Err(error.to_string()),
                Err(Fail::Signal(signal)) => return Err(signal),
            };
            self.host_values.values.insert(call_key(call, args), result);
        }
        Ok(())
    }

    /// Forgets the previous statement's results, and says whether this statement has calls to
    /// prepare. A statement without any never looks a result up, so nothing stale is read.
    pub(super) fn needs_host_calls(&mut self, statement: &Statement) -> bool {
        if !self.host_values.values.is_empty() {
            self.host_values.values.clear();
        }
        !calls_in_statement(statement).is_empty()
    }

    /// The result kept for a host function call, for evaluation.
    pub(super) fn host_value(&self, call: &FnCall, args: &[Value]) -> Result<Value, InterpError> {
        let shown = format!("${}", call.name);
        let args = args
            .iter()
            .map(|a| match a {
                Value::Scalar(s) => Ok(s.clone()),
                other => Err(format!(
                    "{shown}: arguments must be strings, found {}",
                    other.kind()
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        match self.host_values.values.get(&call_key(call, args)) {
            Some(Ok(value)) => Ok(Value::Scalar(value.clone())),
            Some(Err(message)) => Err(format!("{shown}: {message}").into()),
            None => Err(format!(
                "{shown} looks at the server, and can only be used in a statement's own values (not in $Eval text or a module parameter's default)"
            )
            .into()),
        }
    }

    /// The value kept for `$WorkingDirectory` at this place in the plan.
    pub(super) fn host_variable(&self, var: &VarRef) -> Result<Value, InterpError> {
        match self
            .host_values
            .values
            .get(&(std::ptr::from_ref(var) as usize, Vec::new()))
        {
            Some(Ok(value)) => Ok(Value::Scalar(value.clone())),
            Some(Err(message)) => Err(format!("$WorkingDirectory: {message}").into()),
            None => Err(
                "$WorkingDirectory looks at the server, and can only be used in a statement's own values (not in $Eval text or a module parameter's default)"
                    .into(),
            ),
        }
    }

    /// Runs one host function call on the server.
    async fn host_call(&mut self, call: &FnCall, args: &[String]) -> Result<String, Fail> {
        let name = call.name.to_ascii_lowercase();
        let arity = |min: usize, max: usize| {
            if (min..=max).contains(&args.len()) {
                Ok(())
            } else if min == max {
                Err(Fail::Message(format!(
                    "takes {min} argument{}, given {}",
                    if min == 1 { "" } else { "s" },
                    args.len()
                )))
            } else {
                Err(Fail::Message(format!(
                    "takes {min} to {max} arguments, given {}",
                    args.len()
                )))
            }
        };
        match name.as_str() {
            "fileexists" | "directoryexists" => {
                arity(1, 1)?;
                let test = if name == "fileexists" { "-f" } else { "-d" };
                let out = self
                    .run_ok(
                        r#"if [ "$HOLT_TEST" "$HOLT_PATH" ]; then printf true; else printf false; fi"#,
                        vec![env("HOLT_TEST", test), env("HOLT_PATH", &resolve(&args[0])?)],
                        None,
                    )
                    .await?;
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            "filecontents" => {
                arity(1, 2)?;
                let max = match args.get(1) {
                    None => None,
                    Some(n) => Some(n.trim().parse::<usize>().map_err(|_| {
                        format!("the most characters to read must be a whole number, found \"{n}\"")
                    })?),
                };
                let out = self
                    .run_ok(
                        r#"if [ ! -f "$HOLT_PATH" ]; then echo "no such file" >&2; exit 1; fi
cat "$HOLT_PATH""#,
                        vec![env("HOLT_PATH", &resolve(&args[0])?)],
                        None,
                    )
                    .await?;
                let text = String::from_utf8(out.stdout)
                    .map_err(|_| "the file is not UTF-8 text".to_owned())?;
                Ok(match max {
                    Some(max) => text.chars().take(max).collect(),
                    None => text,
                })
            }
            "environmentvariable" => {
                arity(1, 1)?;
                // The name is checked to be a variable's name before the script reads the
                // variable it names, so the indirection cannot be more than that.
                let out = self
                    .run_ok(
                        r#"case "$HOLT_NAME" in ''|[0-9]*|*[!A-Za-z0-9_]*) echo "not a variable name" >&2; exit 1;; esac
eval "holt_v=\${$HOLT_NAME-}"
printf '%s' "$holt_v""#,
                        vec![env("HOLT_NAME", &args[0])],
                        None,
                    )
                    .await?;
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            _ => {
                arity(1, 1)?;
                let script = self.sheval_script(&call.args[0])?;
                let out = self.run_ok(&script.text, script.env, None).await?;
                Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
            }
        }
    }

    /// `$SHEval`'s script: the plan's text, each interpolated value passed in the environment
    /// as `SHExec` passes them.
    fn sheval_script(&self, expr: &Expr) -> Result<shell::Script, Fail> {
        let pieces = match expr {
            Expr::Str(s) => s
                .parts
                .iter()
                .map(|part| {
                    Ok(match part {
                        Part::Text(text) => Piece::Text(text.clone()),
                        Part::Var(var) => {
                            Piece::Value(self.eval(&Expr::Var(var.clone()))?.to_string())
                        }
                        Part::Expr(expr) => Piece::Value(self.eval(expr)?.to_string()),
                    })
                })
                .collect::<Result<Vec<_>, InterpError>>()?,
            other => vec![Piece::Value(self.eval(other)?.to_string())],
        };
        Ok(shell::build(&pieces).map_err(|e| e.replace("SHExec: ", ""))?)
    }
}

fn env(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

#[cfg(test)]
mod tests;
