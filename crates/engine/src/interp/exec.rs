//! The operations that run programs: `Exec` (no shell) and `SHExec` (`/bin/sh`).

use std::path::PathBuf;
use std::time::Duration;

use holt_domain::LogLevel;
use holt_plan::{ArgValue, Expr, InterpString, Operation, Part};

use super::error::InterpError;
use super::shell::{self, Piece};
use super::value::Value;
use super::{Ctx, ExecState, Flow, Signal};
use crate::process::{self, Ended, ProcessSpec, Stream};

/// How long the rest of a program's output may take to arrive once its process group is gone
/// (a process that left the group may still hold the pipe).
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// `SuccessExitCode`: a comparison the exit code must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ExitRule {
    op: &'static str,
    value: i64,
}

impl ExitRule {
    const DEFAULT: ExitRule = ExitRule { op: "==", value: 0 };

    fn parse(text: &str) -> Result<ExitRule, String> {
        let text = text.trim();
        let (op, rest) = ["==", "!=", ">=", "<=", ">", "<", "="]
            .into_iter()
            .find_map(|op| text.strip_prefix(op).map(|rest| (op, rest)))
            .unwrap_or(("==", text));
        let value = rest.trim().parse().map_err(|_| {
            format!("SuccessExitCode must be like `== 0`, `>= 0` or `!= 1`, found \"{text}\"")
        })?;
        let op = if op == "=" { "==" } else { op };
        Ok(ExitRule { op, value })
    }

    fn accepts(self, code: i64) -> bool {
        match self.op {
            "==" => code == self.value,
            "!=" => code != self.value,
            ">=" => code >= self.value,
            "<=" => code <= self.value,
            ">" => code > self.value,
            _ => code < self.value,
        }
    }
}

/// The settings `Exec` and `SHExec` share.
#[derive(Debug)]
pub(super) struct RunSettings {
    working_directory: Option<PathBuf>,
    success: ExitRule,
    pub(super) output_level: LogLevel,
    pub(super) error_level: LogLevel,
}

fn level_named(text: &str) -> Result<LogLevel, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "debug" => Ok(LogLevel::Debug),
        "information" | "info" => Ok(LogLevel::Info),
        "warning" | "warn" => Ok(LogLevel::Warn),
        "error" => Ok(LogLevel::Error),
        _ => Err(format!(
            "a log level is Debug, Information, Warning or Error, found \"{text}\""
        )),
    }
}

/// Quotes a value as one single-quoted `/bin/sh` word, to show an `Exec` command line in the log
/// so that it reads as it would be typed: inside single quotes nothing is special, and a single
/// quote is written as `'\''`.
pub(crate) fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

impl Ctx {
    fn setting(&self, op: &Operation, name: &str) -> Result<Option<String>, InterpError> {
        match op.arg(name) {
            None => Ok(None),
            Some(ArgValue::Input(expr)) => self.eval_text(expr).map(Some),
            Some(ArgValue::Output(_)) => {
                Err(format!("{}: {name} is an input, not an output", op.name).into())
            }
        }
    }

    fn run_settings(&self, op: &Operation) -> Result<RunSettings, InterpError> {
        Ok(RunSettings {
            working_directory: self.setting(op, "WorkingDirectory")?.map(PathBuf::from),
            success: match self.setting(op, "SuccessExitCode")? {
                Some(text) => ExitRule::parse(&text)?,
                None => ExitRule::DEFAULT,
            },
            output_level: match self.setting(op, "OutputLogLevel")? {
                Some(text) => level_named(&text)?,
                None => LogLevel::Info,
            },
            error_level: match self.setting(op, "ErrorOutputLogLevel")? {
                Some(text) => level_named(&text)?,
                None => LogLevel::Error,
            },
        })
    }

    /// `Exec FileName (Arguments: ...)`: runs a program directly, no shell involved.
    pub(super) async fn exec(&mut self, op: &Operation) -> Flow {
        let prepared = (|| {
            let program = match (&op.positional, op.arg("FileName")) {
                (Some(expr), None) | (None, Some(ArgValue::Input(expr))) => self.eval_text(expr)?,
                _ => {
                    return Err(InterpError::from(
                        "Exec: give the program as FileName or as the value after Exec",
                    ));
                }
            };
            let args = match op.arg("Arguments") {
                None => Vec::new(),
                Some(ArgValue::Input(expr)) => self.arguments(expr)?,
                Some(ArgValue::Output(_)) => {
                    return Err("Exec: Arguments is an input, not an output".into());
                }
            };
            Ok((program, args, self.run_settings(op)?))
        })();
        let (program, args, settings) = match prepared {
            Ok(prepared) => prepared,
            Err(message) => return self.raise(message).await,
        };
        // Each word is masked before it is quoted: quoting a secret that holds a quote would
        // change it into text that masking the line no longer finds.
        let shown = std::iter::once(program.as_str())
            .chain(args.iter().map(String::as_str))
            .map(|word| self.shared.log.masked(word))
            .map(|word| {
                if !word.is_empty()
                    && word
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
                {
                    word
                } else {
                    shell_quote(&word)
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        self.log(LogLevel::Debug, &format!("Executing {shown}"))
            .await?;
        if let Some(server) = self.remote_server().cloned() {
            let mut argv = vec![program];
            argv.extend(args);
            let argv = match &settings.working_directory {
                // The directory reaches the remote shell as a word of its own, like the rest.
                Some(dir) => [
                    "sh".to_owned(),
                    "-c".to_owned(),
                    "cd -- \"$1\" || exit 1; shift; exec \"$@\"".to_owned(),
                    "holt".to_owned(),
                    dir.display().to_string(),
                ]
                .into_iter()
                .chain(argv)
                .collect(),
                None => argv,
            };
            return self.run_remote(&server, &argv, None, &settings).await;
        }
        let spec = ProcessSpec {
            program,
            args,
            working_directory: settings.working_directory.clone(),
            env: self.process_env(),
            max_line_bytes: self.shared.log.keep_bytes(),
        };
        self.run_program(spec, &settings).await
    }

    /// `SHExec >>script>>`: runs a script with `/bin/sh`, each interpolated value passed in the
    /// environment and referred to from the script (see [`shell`]).
    pub(super) async fn shexec(&mut self, op: &Operation) -> Flow {
        let prepared = (|| {
            let script = match (&op.positional, op.arg("Text")) {
                (Some(expr), None) | (None, Some(ArgValue::Input(expr))) => self.script(expr)?,
                _ => {
                    return Err(InterpError::from(
                        "SHExec: give the script as the value after SHExec or as Text",
                    ));
                }
            };
            Ok((script, self.run_settings(op)?))
        })();
        let (script, settings) = match prepared {
            Ok(prepared) => prepared,
            Err(message) => return self.raise(message).await,
        };
        self.log(LogLevel::Debug, "Executing a script with /bin/sh")
            .await?;
        if let Some(server) = self.remote_server().cloned() {
            // The script travels on standard input, after one assignment per value, each
            // value single-quoted whole: no value is ever read as script text.
            let mut input = String::new();
            for (name, value) in &script.env {
                input.push_str(&format!("{name}={}; export {name}\n", shell_quote(value)));
            }
            if let Some(dir) = &settings.working_directory {
                input.push_str(&format!(
                    "cd -- {} || exit 1\n",
                    shell_quote(&dir.display().to_string())
                ));
            }
            // The script is one group the shell reads whole before running any of it, with its
            // input empty as it is on holtd's host: a command that reads its input cannot
            // consume the rest of the script.
            input.push_str("{\n");
            input.push_str(&script.text);
            input.push_str("\n} < /dev/null\n");
            let argv = ["/bin/sh".to_owned(), "-s".to_owned()];
            return self
                .run_remote(&server, &argv, Some(input), &settings)
                .await;
        }
        let mut env = self.process_env();
        env.extend(script.env);
        let spec = ProcessSpec {
            program: "/bin/sh".to_owned(),
            args: vec!["-c".to_owned(), script.text],
            working_directory: settings.working_directory.clone(),
            env,
            max_line_bytes: self.shared.log.keep_bytes(),
        };
        self.run_program(spec, &settings).await
    }

    /// The words of `Arguments`. The text as written is split into words first, honouring
    /// single and double quotes in it; each interpolated value then joins the word it stands
    /// in, whole, so a value is never split and never quoted away, whatever it contains. A list
    /// gives one argument per item.
    fn arguments(&self, expr: &Expr) -> Result<Vec<String>, InterpError> {
        let s = match expr {
            Expr::Str(s) => s,
            other => {
                return match self.eval(other)? {
                    Value::List(items) => Ok(items.iter().map(ToString::to_string).collect()),
                    value => Ok(vec![value.to_string()]),
                };
            }
        };
        split_words(s, |part| match part {
            Part::Var(var) => self.eval(&Expr::Var(var.clone())).map(|v| v.to_string()),
            Part::Expr(expr) => self.eval(expr).map(|v| v.to_string()),
            Part::Text(text) => Ok(text.clone()),
        })
    }

    /// The script: the plan's text, and each interpolated value as data the script refers to.
    /// A script given as a whole value (`SHExec $x;`) is that one value, as one command word.
    pub(super) fn script(&self, expr: &Expr) -> Result<shell::Script, InterpError> {
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
        Ok(shell::build(&pieces)?)
    }

    /// The marks every process of this job carries in its environment.
    pub(super) fn process_env(&self) -> Vec<(String, String)> {
        vec![
            (
                process::INSTANCE_ENV.to_owned(),
                self.shared.instance.clone(),
            ),
            (process::TOKEN_ENV.to_owned(), self.shared.token.to_string()),
        ]
    }

    /// Runs a program, logging its output as it arrives, and decides the operation's outcome.
    async fn run_program(&mut self, spec: ProcessSpec, settings: &RunSettings) -> Flow {
        let before = self.state;
        let (mut running, mut lines) = match process::start(&spec, self.shared.kill_grace) {
            Ok(started) => started,
            Err(e) => {
                return self
                    .raise(format!("cannot start {}: {e}", spec.program))
                    .await;
            }
        };
        let cancel = self.cancel.clone();
        let grace = self.shared.kill_grace;
        let mut error_output = false;
        let ended = {
            let wait = running.wait(&cancel, grace);
            tokio::pin!(wait);
            let mut ended = None;
            let mut open = true;
            let mut drain_deadline = None;
            while ended.is_none() || open {
                tokio::select! {
                    result = &mut wait, if ended.is_none() => {
                        ended = Some(result);
                        drain_deadline = Some(tokio::time::Instant::now() + OUTPUT_DRAIN);
                    }
                    line = lines.recv(), if open => match line {
                        Some((stream, batch)) => {
                            if self.log_output(stream, &batch, settings).await? {
                                error_output = true;
                            }
                        }
                        None => open = false,
                    },
                    () = sleep_until(drain_deadline), if drain_deadline.is_some() && open => open = false,
                }
            }
            ended.expect("the loop ends only once the process has ended")
        };
        let status = match ended {
            Ok(Ended::Exited(status)) => status,
            Ok(Ended::Stopped) => return Err(Signal::Stopped),
            Err(e) => {
                return self
                    .fail_operation(before, &format!("lost track of {}: {e}", spec.program))
                    .await;
            }
        };
        self.judge(before, &spec.program, status, settings, error_output)
            .await
    }

    /// Decides an operation's outcome from how its program exited.
    pub(super) async fn judge(
        &mut self,
        before: ExecState,
        program: &str,
        status: std::process::ExitStatus,
        settings: &RunSettings,
        error_output: bool,
    ) -> Flow {
        let Some(code) = status.code() else {
            use std::os::unix::process::ExitStatusExt;
            let signal = status.signal().unwrap_or_default();
            return self
                .fail_operation(before, &format!("{program} was killed by signal {signal}"))
                .await;
        };
        if !settings.success.accepts(i64::from(code)) {
            let rule = settings.success;
            return self
                .fail_operation(
                    before,
                    &format!(
                        "{program} exited with code {code}, which does not satisfy SuccessExitCode {} {}",
                        rule.op, rule.value
                    ),
                )
                .await;
        }
        if error_output {
            return self
                .fail_operation(before, &format!("{program} wrote to its error output"))
                .await;
        }
        self.log(
            LogLevel::Debug,
            &format!("{program} exited with code {code}"),
        )
        .await
    }

    /// Logs a batch of a program's output lines at their stream's level: a line at Error makes
    /// the state failing, one at Warn warns. Returns whether the batch was logged at Error.
    pub(super) async fn log_output(
        &mut self,
        stream: Stream,
        batch: &[String],
        settings: &RunSettings,
    ) -> Result<bool, Signal> {
        let level = match stream {
            Stream::Stdout => settings.output_level,
            Stream::Stderr => settings.error_level,
        };
        self.shared
            .log
            .write_many(level, &self.scope, batch)
            .await
            .map_err(Signal::Store)?;
        Ok(match level {
            LogLevel::Error => {
                self.state = ExecState::Failing;
                true
            }
            LogLevel::Warn => {
                self.warn();
                false
            }
            LogLevel::Debug | LogLevel::Info => false,
        })
    }

    /// Logs why an operation failed, sets failing and raises, remembering the state from before
    /// the operation for a `catch`.
    pub(super) async fn fail_operation(&mut self, before: ExecState, message: &str) -> Flow {
        self.log(LogLevel::Error, message).await?;
        self.state = ExecState::Failing;
        Err(Signal::Raise { before })
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Splits a string into words as written, then lays each part's value into its word.
fn split_words(
    s: &InterpString,
    mut value: impl FnMut(&Part) -> Result<String, InterpError>,
) -> Result<Vec<String>, InterpError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for part in &s.parts {
        let Part::Text(text) = part else {
            word.push_str(&value(part)?);
            in_word = true;
            continue;
        };
        for c in text.chars() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => word.push(c),
                None if c == '"' || c == '\'' => {
                    quote = Some(c);
                    in_word = true;
                }
                None if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                None => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
    }
    if quote.is_some() {
        return Err("Arguments has an unterminated quote".into());
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_rules() {
        let accepts = |rule: &str, code| ExitRule::parse(rule).unwrap().accepts(code);
        assert!(accepts("== 0", 0) && !accepts("== 0", 1));
        assert!(accepts("0", 0) && accepts(">= 0", 5) && !accepts(">= 0", -1));
        assert!(accepts("!= 1", 2) && !accepts("!= 1", 1));
        assert!(accepts("<3", 2) && accepts("> 2", 3) && accepts("<= 2", 2) && accepts("=4", 4));
        assert!(ExitRule::parse("zero").is_err() && ExitRule::parse("== ").is_err());
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
