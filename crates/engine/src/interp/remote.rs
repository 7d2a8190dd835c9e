//! Running `Exec` and `SHExec` on an `ssh` server with the OpenSSH client.
//!
//! The remote program runs in a process group of its own whose id is the first line of its
//! error output (see [`ssh::remote_exec`]). A stop (timeout, cancel, shutdown) ends that group
//! on the server (SIGTERM, then SIGKILL after the kill grace) over a new connection, then the
//! local client.

use std::sync::Arc;
use std::time::Duration;

use holt_domain::{LogLevel, Server};
use tokio_util::sync::CancellationToken;

use super::exec::RunSettings;
use super::{Ctx, Flow, Signal};
use crate::process::{self, Ended, ProcessSpec, Stream};
use crate::ssh::{self, SshTarget};

/// How long a remote kill command may take, on top of the connect timeout.
const KILL_SLACK: Duration = Duration::from_secs(5);

/// The exit code of the OpenSSH client when it could not connect or log in.
const SSH_FAILED: i32 = 255;

impl Ctx {
    /// Runs `argv` on `server`, with `input` on its standard input, logging its output in the
    /// current scope, and decides the operation's outcome.
    pub(super) async fn run_remote(
        &mut self,
        server: &Arc<Server>,
        argv: &[String],
        input: Option<String>,
        settings: &RunSettings,
    ) -> Flow {
        let before = self.state;
        let infra = &self.shared.infra;
        let target = match SshTarget::new(
            server,
            &infra.credentials,
            infra.known_hosts.as_deref(),
            infra.connect_timeout,
        ) {
            Ok(target) => target,
            Err(message) => return self.raise(message).await,
        };
        let grace = self.shared.kill_grace;
        let connecting = self
            .shared
            .connections
            .connect(target, self.process_env(), grace);
        let target = tokio::select! {
            connected = connecting => match connected {
                Ok(target) => target,
                Err(message) => return self.fail_operation(before, &message).await,
            },
            () = self.cancel.cancelled() => return Err(Signal::Stopped),
        };
        let spec = ProcessSpec {
            program: ssh::SSH.to_owned(),
            args: target.run(&ssh::remote_exec(argv)),
            working_directory: None,
            // The client carries the job's marks like any process, so that a start after a
            // crash finds and ends it.
            env: self.process_env(),
            max_line_bytes: self.shared.log.keep_bytes(),
        };
        let (mut running, mut lines) =
            match process::start_with_input(&spec, grace, input.map(String::into_bytes)) {
                Ok(started) => started,
                Err(e) => return self.raise(format!("cannot start ssh: {e}")).await,
            };
        let client_cancel = CancellationToken::new();
        let done = CancellationToken::new();
        let mut killer: Option<tokio::task::JoinHandle<()>> = None;
        let mut pgid: Option<u32> = None;
        // What the client said before the remote side started: its reason when it fails.
        let mut client_said: Vec<String> = Vec::new();
        let mut error_output = false;
        let ended = {
            let wait = running.wait(&client_cancel, grace);
            tokio::pin!(wait);
            let mut ended = None;
            let mut open = true;
            while ended.is_none() || open {
                tokio::select! {
                    result = &mut wait, if ended.is_none() => ended = Some(result),
                    () = self.cancel.cancelled(), if killer.is_none() && ended.is_none() => {
                        killer = Some(tokio::spawn(end_remote(
                            target.clone(),
                            pgid,
                            grace,
                            done.clone(),
                            client_cancel.clone(),
                        )));
                    }
                    line = lines.recv(), if open => match line {
                        Some((stream, mut batch)) => {
                            if stream == Stream::Stderr && pgid.is_none() {
                                let mut rest = Vec::new();
                                for line in batch {
                                    if pgid.is_none() {
                                        if let Some(id) = line.strip_prefix(ssh::PGID_MARK) {
                                            pgid = id.trim().parse().ok();
                                            continue;
                                        }
                                        client_said.push(line);
                                    } else {
                                        rest.push(line);
                                    }
                                }
                                batch = rest;
                            }
                            if batch.is_empty() {
                                continue;
                            }
                            if self.log_output(stream, &batch, settings).await? {
                                error_output = true;
                            }
                        }
                        None => open = false,
                    },
                }
            }
            ended.expect("the loop ends only once the client has ended")
        };
        done.cancel();
        if let Some(killer) = killer {
            let _ = killer.await;
        }
        if self.cancel.is_cancelled() {
            return Err(Signal::Stopped);
        }
        let status = match ended {
            Ok(Ended::Exited(status)) => status,
            Ok(Ended::Stopped) => return Err(Signal::Stopped),
            Err(e) => {
                return self
                    .fail_operation(before, &format!("lost track of ssh: {e}"))
                    .await;
            }
        };
        let name = server.name.as_str();
        if pgid.is_none() && status.code() == Some(SSH_FAILED) {
            let reason = ssh::failure_reason(&client_said);
            return self
                .fail_operation(before, &format!("cannot run on server {name}: {reason}"))
                .await;
        }
        if !client_said.is_empty() {
            self.shared
                .log
                .write_many(LogLevel::Debug, &self.scope, &client_said)
                .await
                .map_err(Signal::Store)?;
        }
        let program = argv.first().map_or("the program", String::as_str);
        self.judge(
            before,
            &format!("{program} on {name}"),
            status,
            settings,
            error_output,
        )
        .await
    }
}

/// Ends the remote process group of a stopped operation: SIGTERM, then SIGKILL should the
/// client still be connected after `grace`, then the local client. Returns early once `done`
/// says the client has ended.
pub(super) async fn end_remote(
    target: SshTarget,
    pgid: Option<u32>,
    grace: Duration,
    done: CancellationToken,
    client_cancel: CancellationToken,
) {
    if let Some(pgid) = pgid {
        remote_signal(&target, pgid, "TERM", grace).await;
        tokio::select! {
            () = done.cancelled() => return,
            () = tokio::time::sleep(grace) => {}
        }
        remote_signal(&target, pgid, "KILL", grace).await;
    }
    client_cancel.cancel();
}

/// Sends `signal` to a remote process group over a connection of its own, bounded in time.
async fn remote_signal(target: &SshTarget, pgid: u32, signal: &str, grace: Duration) {
    let spec = ProcessSpec {
        program: ssh::SSH.to_owned(),
        args: target.run(&ssh::remote_kill(pgid, signal)),
        working_directory: None,
        env: Vec::new(),
        max_line_bytes: 1024,
    };
    let Ok((mut running, lines)) = process::start(&spec, grace) else {
        tracing::warn!(server = %target.server, "could not start ssh to end a remote process");
        return;
    };
    drop(lines);
    let limit = target.connect_timeout() + KILL_SLACK;
    let stop = CancellationToken::new();
    let wait = running.wait(&stop, grace);
    tokio::pin!(wait);
    tokio::select! {
        _ = &mut wait => {}
        () = tokio::time::sleep(limit) => {
            stop.cancel();
            let _ = wait.await;
            tracing::warn!(server = %target.server, "ending a remote process took too long");
        }
    }
}
