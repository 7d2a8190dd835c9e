//! The one way the file operations reach the server in context: a POSIX `sh` script run there,
//! with every value passed as an environment variable or on standard input and never spliced
//! into the script's text, and its output captured whole (up to [`MAX_CAPTURE_BYTES`]).
//!
//! On `localhost` the script runs as `/bin/sh -c` with the values in its environment. On an
//! `ssh` server ([`Ctx::capture_remote`]) it runs as `/bin/sh -c` there too, through the job's
//! connection to the server, its values assigned at its top, each single-quoted whole; its
//! input travels on the connection. Because the operations only ever ask for a script to be
//! run, they run unchanged on either.
//!
//! Every script starts in the job's working directory,
//! `<temp>/holt-jobs/<store instance>-<job token>` on the server, made on first use, where
//! `<temp>` is the server's `tempPath`, or else `${TMPDIR:-/tmp}` there; a
//! relative path given to a file operation is therefore resolved against it there. Job tokens
//! are numbered per store, so the store's instance id keeps two holtd (or two test stores) from
//! sharing a directory.

use std::sync::Arc;

use holt_domain::{Server, ServerType};

use super::Ctx;
use super::error::InterpError;
use crate::process::{self, Ended, ProcessSpec};

mod remote;

pub(super) use remote::unmark;

/// The most bytes kept of a script's standard output, and of its error output. A file read
/// through a script (`$FileContents`, `Replace-Text`) is bounded by it as well.
pub(crate) const MAX_CAPTURE_BYTES: usize = 16 * 1024 * 1024;

/// The variable that carries the server's `tempPath` to the prelude.
const TEMP_PATH_ENV: &str = "HOLT_TEMP_PATH";

/// What every script runs first: it enters the job's working directory, making it if needed.
/// The directories it makes are its owner's alone (the umask is changed for the `mkdir` only,
/// so the files the job writes get their usual modes).
const PRELUDE: &str = r#"holt_wd="${HOLT_TEMP_PATH:-${TMPDIR:-/tmp}}/holt-jobs/$HOLT_INSTANCE-$HOLT_JOB_TOKEN"
if ! (umask 077 && mkdir -p -- "$holt_wd") || ! cd -- "$holt_wd"; then
  echo "cannot enter the job's working directory $holt_wd" >&2; exit 1
fi
unset holt_wd
"#;

/// What a script gave back.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) code: i32,
    pub(crate) stdout: Vec<u8>,
    /// The error output, as text (bytes that are not UTF-8 replaced).
    pub(crate) stderr: String,
}

impl Output {
    /// The first line of the error output, or the exit code if there was none: what a failed
    /// script has to say for itself.
    pub(crate) fn reason(&self) -> String {
        match self.stderr.lines().map(str::trim).find(|l| !l.is_empty()) {
            Some(line) => line.to_owned(),
            None => format!("the script exited with code {}", self.code),
        }
    }
}

/// Why a script gave nothing back.
#[derive(Debug)]
pub(crate) enum HostError {
    /// The job (or a timeout around the operation) was cancelled; the script's processes are
    /// gone.
    Stopped,
    /// The script could not be run, or its output went beyond the bound.
    Failed(InterpError),
}

impl Ctx {
    /// The job's marks, as every process of the job carries them (so the orphan sweep knows a
    /// script's processes; the job token also names the working directory), then `env`.
    /// With the `tempPath` of `server` (the script's server), when it has one.
    fn script_env(
        &self,
        server: Option<&Server>,
        env: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let mut all = vec![
            (
                process::INSTANCE_ENV.to_owned(),
                self.shared.instance.clone(),
            ),
            (process::TOKEN_ENV.to_owned(), self.shared.token.to_string()),
        ];
        if let Some(temp) = server.and_then(|s| s.temp_path.as_deref())
            && !temp.is_empty()
        {
            all.push((TEMP_PATH_ENV.to_owned(), temp.to_owned()));
        }
        all.extend(env);
        all
    }

    /// How to run `text` with `/bin/sh -c` on holtd's host, with `env` in its environment.
    fn local_script(&self, text: String, env: Vec<(String, String)>) -> ProcessSpec {
        ProcessSpec {
            program: "/bin/sh".to_owned(),
            args: vec!["-c".to_owned(), text],
            working_directory: None,
            env,
            max_line_bytes: self.shared.log.keep_bytes(),
        }
    }

    /// How to run `script` (after the prelude) on `server`, for a caller that wires the
    /// program's input and output itself; whether it runs over SSH (its error output then
    /// starts with the remote wrapper's line, see [`remote::unmark`]).
    pub(crate) async fn script_on(
        &mut self,
        server: &Arc<Server>,
        script: &str,
        env: Vec<(String, String)>,
    ) -> Result<(ProcessSpec, bool), HostError> {
        let all_env = self.script_env(Some(server), env);
        let text = format!("{PRELUDE}{script}");
        if server.server_type == ServerType::Ssh {
            let (_, spec) = self.remote_script(server, &text, all_env).await?;
            Ok((spec, true))
        } else {
            Ok((self.local_script(text, all_env), false))
        }
    }

    /// Runs `script` with `/bin/sh` on the server in context, in the job's working directory,
    /// with `env` added to its environment and `stdin` as its input, and captures its output.
    /// A non-zero exit is not an error here: the caller reads [`Output::code`].
    pub(crate) async fn capture_script(
        &mut self,
        script: &str,
        env: Vec<(String, String)>,
        stdin: Option<Vec<u8>>,
    ) -> Result<Output, HostError> {
        let all_env = self.script_env(self.place.server.as_deref(), env);
        let text = format!("{PRELUDE}{script}");
        let captured = match self.remote_server().cloned() {
            Some(server) => self.capture_remote(&server, &text, all_env, stdin).await?,
            None => {
                let spec = self.local_script(text, all_env);
                process::capture(
                    &spec,
                    stdin,
                    MAX_CAPTURE_BYTES,
                    &self.cancel,
                    self.shared.kill_grace,
                )
                .await
                .map_err(|e| HostError::Failed(format!("cannot run /bin/sh: {e}").into()))?
            }
        };
        let status = match captured.ended {
            Ended::Stopped => return Err(HostError::Stopped),
            Ended::Exited(status) => status,
        };
        if captured.overflowed {
            return Err(HostError::Failed(
                format!(
                    "the output went beyond {} MiB, the most a file operation reads",
                    MAX_CAPTURE_BYTES / (1024 * 1024)
                )
                .into(),
            ));
        }
        let code = match status.code() {
            Some(code) => code,
            None => {
                use std::os::unix::process::ExitStatusExt;
                let signal = status.signal().unwrap_or_default();
                return Err(HostError::Failed(
                    format!("/bin/sh was killed by signal {signal}").into(),
                ));
            }
        };
        Ok(Output {
            code,
            stdout: captured.stdout,
            stderr: String::from_utf8_lossy(&captured.stderr).into_owned(),
        })
    }
}
