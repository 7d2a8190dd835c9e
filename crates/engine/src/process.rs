//! Running programs: each in its own process group, output logged line by line as it arrives,
//! and the whole group ended (SIGTERM, then SIGKILL after a grace period) when the work is
//! cancelled or the program exits leaving children behind. This is the only module that starts
//! processes.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The longest output line kept whole; the rest of a longer line is dropped and the line is
/// marked, so one endless line cannot exhaust memory.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024;

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSpec {
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    pub(crate) working_directory: Option<PathBuf>,
    /// Extra environment variables: the job's marks (see [`INSTANCE_ENV`]) and, for a script,
    /// the values it refers to.
    pub(crate) env: Vec<(String, String)>,
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// How a run ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The program exited on its own (or was killed by someone else).
    Exited(ExitStatus),
    /// The work was cancelled and the process group ended.
    Stopped,
}

/// A started program.
#[derive(Debug)]
pub(crate) struct Running {
    child: tokio::process::Child,
    pgid: Pid,
}

/// Output lines in arrival order; the channel closes once both streams are at their end.
pub(crate) type Lines = mpsc::Receiver<(Stream, Vec<String>)>;

/// Starts a program in a new process group with its output piped. The caller must read the
/// lines while it waits: a program blocks when its output is not read.
pub(crate) fn start(spec: &ProcessSpec) -> std::io::Result<(Running, Lines)> {
    let mut command = tokio::process::Command::new(&spec.program);
    command
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let Some(dir) = &spec.working_directory {
        command.current_dir(dir);
    }
    let mut child = command.spawn()?;
    let id = child
        .id()
        .ok_or_else(|| std::io::Error::other("the process ended before it could be tracked"))?;
    // Few batches in flight: each can hold a read's worth of short lines, and a program that
    // writes faster than the log takes must wait rather than fill memory.
    let (tx, lines) = mpsc::channel(4);
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(read_lines(stdout, Stream::Stdout, tx.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(read_lines(stderr, Stream::Stderr, tx));
    }
    Ok((
        Running {
            child,
            pgid: Pid::from_raw(id as i32),
        },
        lines,
    ))
}

impl Running {
    /// Waits for the program to exit, or for `cancel`; either way, nothing of its process group
    /// is left when this returns.
    pub(crate) async fn wait(
        &mut self,
        cancel: &CancellationToken,
        grace: Duration,
    ) -> std::io::Result<Ended> {
        let ended = tokio::select! {
            status = self.child.wait() => Ended::Exited(status?),
            () = cancel.cancelled() => {
                end_group(self.pgid, &mut self.child, grace).await?;
                Ended::Stopped
            }
        };
        // Children the program left behind are ended too: no process outlives its job.
        if group_exists(self.pgid) {
            end_group(self.pgid, &mut self.child, grace).await?;
        }
        Ok(ended)
    }
}

/// SIGTERM to the group, SIGKILL to what is left after `grace`; reaps the group leader.
async fn end_group(
    pgid: Pid,
    leader: &mut tokio::process::Child,
    grace: Duration,
) -> std::io::Result<()> {
    let _ = killpg(pgid, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    // The leader is reaped as soon as it exits, so a zombie never keeps the group alive.
    let _ = tokio::time::timeout_at(deadline, leader.wait()).await;
    while group_exists(pgid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if group_exists(pgid) {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    leader.wait().await?;
    Ok(())
}

/// Whether any process of the group is still alive. Signal 0 answers for the group as a whole,
/// zombies included; members whose parent has died wait as zombies until the machine's init
/// reaps them, which can take seconds, so a yes is checked against `/proc`.
fn group_exists(pgid: Pid) -> bool {
    killpg(pgid, None).is_ok() && group_has_live_member(pgid)
}

/// Whether `/proc` lists a process of the group that is not a zombie. Where `/proc` cannot be
/// read, every member is taken to be alive.
fn group_has_live_member(pgid: Pid) -> bool {
    let Some(pids) = proc_pids() else {
        return true;
    };
    pids.filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .any(|stat| {
            // "pid (comm) state ppid pgrp ...": the command may hold spaces and parentheses,
            // so the fields are read after the last ')'.
            let mut fields = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest)
                .unwrap_or("")
                .split_whitespace();
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
            pgrp == Some(pgid.as_raw()) && state != Some("Z")
        })
}

/// Reads a stream and sends it on line by line, as lines complete. Lines longer than
/// `MAX_LINE_BYTES` are cut there; bytes that are not UTF-8 are replaced. The lines completed by
/// one read are sent together, so a chatty program costs one message per read, not per line.
async fn read_lines(
    mut stream: impl AsyncRead + Unpin,
    which: Stream,
    tx: mpsc::Sender<(Stream, Vec<String>)>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut line: Vec<u8> = Vec::new();
    let mut cut = false;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut done = Vec::new();
        for &byte in &buf[..n] {
            if byte == b'\n' {
                done.push(finish_line(&mut line, &mut cut));
            } else if line.len() < MAX_LINE_BYTES {
                line.push(byte);
            } else {
                cut = true;
            }
        }
        if !done.is_empty() && tx.send((which, done)).await.is_err() {
            return;
        }
    }
    if !line.is_empty() || cut {
        let _ = tx
            .send((which, vec![finish_line(&mut line, &mut cut)]))
            .await;
    }
}

fn finish_line(line: &mut Vec<u8>, cut: &mut bool) -> String {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    let mut text = String::from_utf8_lossy(line).into_owned();
    if *cut {
        text.push_str(" [line truncated]");
    }
    line.clear();
    *cut = false;
    text
}

/// The environment variable that marks every process a job starts with the store's instance
/// id, so that after a crash the next start can find the processes the previous one left.
pub(crate) const INSTANCE_ENV: &str = "HOLT_INSTANCE";

/// The environment variable that tells a job's processes their job's token.
pub(crate) const TOKEN_ENV: &str = "HOLT_JOB_TOKEN";

/// Ends every process on this machine that carries `instance` in its environment: after a crash
/// of holtd, the processes its jobs had started. Returns how many were signalled. Processes
/// whose environment cannot be read (another user's, already gone) are skipped.
pub(crate) async fn end_orphans(instance: &str, grace: Duration) -> usize {
    let marker = format!("{INSTANCE_ENV}={instance}");
    let find = || -> Vec<Pid> {
        let Some(pids) = proc_pids() else {
            return Vec::new();
        };
        let me = std::process::id();
        pids.filter(|&pid| pid != me)
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == marker.as_bytes()))
            })
            .map(|pid| Pid::from_raw(pid as i32))
            .collect()
    };
    let found = find();
    for &pid in &found {
        let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + grace;
    while !find().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for pid in find() {
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    }
    found.len()
}

/// The ids of the processes `/proc` lists, if it can be read.
fn proc_pids() -> Option<impl Iterator<Item = u32>> {
    let entries = std::fs::read_dir("/proc").ok()?;
    Some(entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()))
}
