//! Running a file operation's script on an `ssh` server.

use std::sync::Arc;

use holt_domain::Server;
use tokio_util::sync::CancellationToken;

use super::{HostError, MAX_CAPTURE_BYTES};
use crate::interp::Ctx;
use crate::interp::remote::end_remote;
use crate::process::{self, Captured, ProcessSpec};
use crate::ssh::{self, SshTarget};

/// The most bytes of script, values included, sent to a server at once. The script travels as
/// one word of the remote command, which the server's kernel bounds at 128 KiB.
pub(crate) const MAX_REMOTE_SCRIPT_BYTES: usize = 96 * 1024;

/// The exit code of the OpenSSH client when it could not connect or log in.
const SSH_FAILED: i32 = 255;

impl Ctx {
    /// How to run `text` with `/bin/sh -c` on `server` through the job's connection to it, with
    /// `env` assigned at its top: the connection's target and the client to start. The remote
    /// side writes its process group's id first on its error output ([`ssh::remote_exec`]).
    pub(in crate::interp) async fn remote_script(
        &mut self,
        server: &Arc<Server>,
        text: &str,
        env: Vec<(String, String)>,
    ) -> Result<(SshTarget, ProcessSpec), HostError> {
        let failed = |message: String| HostError::Failed(message.into());
        let name = server.name.as_str();
        let infra = &self.shared.infra;
        let target = SshTarget::new(
            server,
            &infra.credentials,
            infra.known_hosts.as_deref(),
            infra.connect_timeout,
        )
        .map_err(failed)?;
        let grace = self.shared.kill_grace;
        let connecting = self
            .shared
            .connections
            .connect(target, self.process_env(), grace);
        let target = tokio::select! {
            connected = connecting => connected.map_err(failed)?,
            () = self.cancel.cancelled() => return Err(HostError::Stopped),
        };
        // Each value is one single-quoted word, so no value is ever read as script text.
        let mut program = String::new();
        for (key, value) in &env {
            if value.contains('\0') {
                return Err(failed(format!(
                    "a value sent to server {name} must not contain a NUL character"
                )));
            }
            program.push_str(&format!("{key}={}; export {key}\n", ssh::quote(value)));
        }
        program.push_str(text);
        if program.len() > MAX_REMOTE_SCRIPT_BYTES {
            return Err(failed(format!(
                "the script for server {name} is {} KiB with its values, more than the {} KiB \
                 sent at once",
                program.len() / 1024,
                MAX_REMOTE_SCRIPT_BYTES / 1024
            )));
        }
        let argv = [
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            program,
            "holt".to_owned(),
        ];
        let spec = ProcessSpec {
            program: ssh::SSH.to_owned(),
            args: target.run(&ssh::remote_exec(&argv)),
            working_directory: None,
            env: self.process_env(),
            max_line_bytes: self.shared.log.keep_bytes(),
        };
        Ok((target, spec))
    }

    /// Runs `text` with `/bin/sh -c` on `server`, `env` assigned at its top and `stdin` as its
    /// input, through the job's connection to the server. A stop ends the script's process
    /// group on the server, then the local client.
    pub(super) async fn capture_remote(
        &mut self,
        server: &Arc<Server>,
        text: &str,
        env: Vec<(String, String)>,
        stdin: Option<Vec<u8>>,
    ) -> Result<Captured, HostError> {
        let failed = |message: String| HostError::Failed(message.into());
        let name = server.name.as_str();
        let grace = self.shared.kill_grace;
        let (target, spec) = self.remote_script(server, text, env).await?;
        let client_cancel = CancellationToken::new();
        let done = CancellationToken::new();
        let (first_tx, mut first_rx) = tokio::sync::oneshot::channel();
        let capture = process::capture_marked(
            &spec,
            // The client's input is always a pipe that ends: a script never waits on holtd.
            Some(stdin.unwrap_or_default()),
            MAX_CAPTURE_BYTES,
            &client_cancel,
            grace,
            Some(first_tx),
        );
        tokio::pin!(capture);
        let mut pgid: Option<u32> = None;
        let mut waiting_for_pgid = true;
        let mut killer = None;
        let captured = loop {
            tokio::select! {
                captured = &mut capture => break captured,
                line = &mut first_rx, if waiting_for_pgid => {
                    waiting_for_pgid = false;
                    pgid = line.ok().and_then(|line: Vec<u8>| {
                        String::from_utf8_lossy(&line)
                            .strip_prefix(ssh::PGID_MARK)
                            .and_then(|id| id.trim().parse().ok())
                    });
                }
                () = self.cancel.cancelled(), if killer.is_none() => {
                    killer = Some(tokio::spawn(end_remote(
                        target.clone(),
                        pgid,
                        grace,
                        done.clone(),
                        client_cancel.clone(),
                    )));
                }
            }
        };
        done.cancel();
        if let Some(killer) = killer {
            let _ = killer.await;
        }
        let mut captured =
            captured.map_err(|e| failed(format!("cannot run ssh for server {name}: {e}")))?;
        if self.cancel.is_cancelled() {
            return Err(HostError::Stopped);
        }
        unmark(name, &mut captured)?;
        Ok(captured)
    }
}

/// Takes the remote wrapper's first line out of what a script said; without it, the client
/// never reached the server, and its exit code 255 says why.
pub(in crate::interp) fn unmark(name: &str, captured: &mut Captured) -> Result<(), HostError> {
    if captured.stderr.starts_with(ssh::PGID_MARK.as_bytes()) {
        let end = captured
            .stderr
            .iter()
            .position(|&b| b == b'\n')
            .map_or(captured.stderr.len(), |i| i + 1);
        captured.stderr.drain(..end);
    } else if let process::Ended::Exited(status) = &captured.ended
        && status.code() == Some(SSH_FAILED)
    {
        let said: Vec<String> = String::from_utf8_lossy(&captured.stderr)
            .lines()
            .map(str::to_owned)
            .collect();
        return Err(HostError::Failed(
            format!(
                "cannot run on server {name}: {}",
                ssh::failure_reason(&said)
            )
            .into(),
        ));
    }
    Ok(())
}
