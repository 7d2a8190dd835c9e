//! Running programs: each in its own process group, output logged line by line as it arrives,
//! and the whole group ended (SIGTERM, then SIGKILL after a grace period) when the work is
//! cancelled or the program exits leaving children behind. This is the only module that starts
//! processes.
//!
//! A process can leave its group (`setsid`) and clear its environment, so neither the group
//! kill nor the orphan sweep's environment mark finds it. When holtd has made itself a child
//! subreaper ([`adopt_escaped_processes`]), such a process is re-parented to holtd once its
//! parent exits; every child of holtd that is not a program leader started here is such an
//! escapee, and each time a run ends, the escapees that can only belong to runs that have ended
//! are ended and reaped ([`end_escaped`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSpec {
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    pub(crate) working_directory: Option<PathBuf>,
    /// Extra environment variables: the job's marks (see [`INSTANCE_ENV`]) and, for a script,
    /// the values it refers to.
    pub(crate) env: Vec<(String, String)>,
    /// The most bytes of one output line kept; the rest of a longer line is dropped and the
    /// line is marked, so one endless line cannot exhaust memory.
    pub(crate) max_line_bytes: usize,
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
    /// How long its escaped descendants get between SIGTERM and SIGKILL.
    grace: Duration,
}

/// Whether holtd is a child subreaper, so that escaped descendants become its children.
static ADOPTING: AtomicBool = AtomicBool::new(false);

/// The program leaders started here and not yet done with, by pid, with their start times
/// (clock ticks since boot, from `/proc/<pid>/stat`). A child of holtd missing from it is an
/// escapee. Starting a program holds the lock from the fork to its entry, so a sweep (which
/// holds it while it decides) never takes a leader being started for an escapee.
static TRACKED: Mutex<Option<HashMap<u32, u64>>> = Mutex::new(None);

fn tracked() -> std::sync::MutexGuard<'static, Option<HashMap<u32, u64>>> {
    TRACKED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Makes this process a child subreaper: a process that escapes a job's process group (and its
/// parent's death) is re-parented to holtd rather than to the machine's init, so that holtd can
/// end it when its run is over. Call once at start, from the runtime, before any job runs.
/// Adopted processes that exit are reaped as each SIGCHLD arrives, so none waits as a zombie
/// for a run to end.
pub fn adopt_escaped_processes() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut exits = signal(SignalKind::child())?;
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)?;
    ADOPTING.store(true, Ordering::SeqCst);
    tokio::spawn(async move {
        while exits.recv().await.is_some() {
            reap_adopted();
        }
    });
    Ok(())
}

/// Reaps the dead children that are not tracked (adopted processes that exited), never one
/// tokio waits for.
fn reap_adopted() {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let tracked = tracked();
    for pid in children() {
        if tracked.as_ref().is_some_and(|t| t.contains_key(&pid)) {
            continue;
        }
        if stat(pid).is_some_and(|stat| stat.state == 'Z') {
            let _ = waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG));
        }
    }
}

mod capture;

pub(crate) use capture::{Captured, capture, capture_marked, pipe};

/// Output lines in arrival order; the channel closes once both streams are at their end.
pub(crate) type Lines = mpsc::Receiver<(Stream, Vec<String>)>;

/// Starts a program in a new process group with its output piped. The caller must read the
/// lines while it waits: a program blocks when its output is not read.
pub(crate) fn start(spec: &ProcessSpec, grace: Duration) -> std::io::Result<(Running, Lines)> {
    start_with_input(spec, grace, None)
}

/// [`start`], with `input` written to the program's standard input (then closed) when given.
pub(crate) fn start_with_input(
    spec: &ProcessSpec,
    grace: Duration,
    input: Option<Vec<u8>>,
) -> std::io::Result<(Running, Lines)> {
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let (mut child, id) = spawn_tracked(spec, stdin)?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A program that stops reading only loses its input: the write ends with the pipe.
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        });
    }
    Ok(watch_output(spec, child, id, grace))
}

/// [`start`], with the program's standard input left open as a pipe the caller holds: the
/// program sees its input end when the caller drops it.
pub(crate) fn start_held(
    spec: &ProcessSpec,
    grace: Duration,
) -> std::io::Result<(Running, Lines, tokio::process::ChildStdin)> {
    let (mut child, id) = spawn_tracked(spec, Stdio::piped())?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("the program's input was not piped"))?;
    let (running, lines) = watch_output(spec, child, id, grace);
    Ok((running, lines, stdin))
}

/// Reads a started program's output into [`Lines`].
fn watch_output(
    spec: &ProcessSpec,
    mut child: tokio::process::Child,
    id: u32,
    grace: Duration,
) -> (Running, Lines) {
    // Few batches in flight: each can hold a read's worth of short lines, and a program that
    // writes faster than the log takes must wait rather than fill memory.
    let (tx, lines) = mpsc::channel(4);
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(read_lines(
            stdout,
            Stream::Stdout,
            spec.max_line_bytes,
            tx.clone(),
        ));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(read_lines(stderr, Stream::Stderr, spec.max_line_bytes, tx));
    }
    (
        Running {
            child,
            pgid: Pid::from_raw(id as i32),
            grace,
        },
        lines,
    )
}

/// Spawns a program in a new process group with its output piped, and tracks its leader.
fn spawn_tracked(
    spec: &ProcessSpec,
    stdin: Stdio,
) -> std::io::Result<(tokio::process::Child, u32)> {
    let mut command = tokio::process::Command::new(&spec.program);
    command
        .args(&spec.args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let Some(dir) = &spec.working_directory {
        command.current_dir(dir);
    }
    let mut tracked = tracked();
    let child = command.spawn()?;
    let id = child
        .id()
        .ok_or_else(|| std::io::Error::other("the process ended before it could be tracked"))?;
    // The leader cannot have been reaped yet, so its stat is there. Should it not be, a start
    // of 0 counts it as the oldest run, which shields every escapee: nothing is ended by
    // mistake.
    let started = stat(id).map_or(0, |stat| stat.start);
    tracked.get_or_insert_default().insert(id, started);
    Ok((child, id))
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

impl Drop for Running {
    /// The run is over: its leader is no longer tracked, and escapees that can only be of runs
    /// that have ended are ended, in the background.
    fn drop(&mut self) {
        if let Some(tracked) = tracked().as_mut() {
            tracked.remove(&(self.pgid.as_raw() as u32));
        }
        if ADOPTING.load(Ordering::SeqCst) {
            request_sweep(self.grace);
        }
    }
}

/// Whether a sweep has been asked for since the running sweeper last looked.
static SWEEP_WANTED: AtomicBool = AtomicBool::new(false);

/// Whether a sweeper task is running.
static SWEEPING: AtomicBool = AtomicBool::new(false);

/// Asks for [`end_escaped`] to run. Requests that come while a sweep runs share the next one,
/// so a burst of runs ending costs a few sweeps, not one each.
fn request_sweep(grace: Duration) {
    SWEEP_WANTED.store(true, Ordering::SeqCst);
    if SWEEPING.swap(true, Ordering::SeqCst) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        SWEEPING.store(false, Ordering::SeqCst);
        return;
    };
    runtime.spawn(async move {
        loop {
            while SWEEP_WANTED.swap(false, Ordering::SeqCst) {
                end_escaped(grace).await;
            }
            SWEEPING.store(false, Ordering::SeqCst);
            // A request made between the last look and now found the sweeper still running:
            // take it up, unless another sweeper already has.
            if !SWEEP_WANTED.load(Ordering::SeqCst) || SWEEPING.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    });
}

/// What `/proc/<pid>/stat` says of a process.
#[derive(Debug, Clone, Copy)]
struct Stat {
    state: char,
    ppid: u32,
    pgrp: i32,
    /// When it started, in clock ticks since boot.
    start: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp ...": the command may hold spaces and parentheses, so the
    // fields are read after the last ')'. The start time is the 22nd field, the 20th after it.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Ends the escapees that can only belong to runs that have ended, and reaps them: SIGTERM,
/// then SIGKILL to those still alive after `grace`. An untracked child of holtd started before
/// every run still going cannot be one of theirs (a descendant starts after its run's leader);
/// one started later may be, and is left until those runs end. Dead children that are not
/// tracked are reaped whenever they are seen, so no zombie is left behind. Only pids that are
/// not tracked are waited for, never one tokio waits for.
pub(crate) async fn end_escaped(grace: Duration) {
    let deadline = tokio::time::Instant::now() + grace;
    let mut termed = std::collections::HashSet::new();
    loop {
        let mut escaped = escaped_children();
        if escaped.is_empty() {
            // The kernel's list of children can miss one that changes while it is read; a
            // second look a moment later settles it.
            tokio::time::sleep(Duration::from_millis(10)).await;
            escaped = escaped_children();
            if escaped.is_empty() {
                return;
            }
        }
        let past_grace = tokio::time::Instant::now() >= deadline;
        for pid in escaped {
            if past_grace {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            } else if termed.insert(pid) {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The live escapees that may be ended now, after reaping every untracked dead child.
fn escaped_children() -> Vec<u32> {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let me = std::process::id();
    let tracked = tracked();
    let is_tracked = |pid: u32| tracked.as_ref().is_some_and(|t| t.contains_key(&pid));
    let oldest_run = tracked
        .as_ref()
        .and_then(|t| t.values().min().copied())
        .unwrap_or(u64::MAX);
    let mut escaped = Vec::new();
    for pid in children() {
        if is_tracked(pid) {
            continue;
        }
        let Some(stat) = stat(pid) else { continue };
        if stat.ppid != me {
            continue;
        }
        if stat.state == 'Z' {
            let _ = waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG));
        } else if stat.start < oldest_run {
            escaped.push(pid);
        }
    }
    escaped
}

/// The children of this process: from each thread's `children` list, which costs a read per
/// thread, or, where the kernel does not provide those lists, from a walk of `/proc`.
fn children() -> Vec<u32> {
    let from_threads = || -> Option<Vec<u32>> {
        let mut pids = Vec::new();
        for thread in std::fs::read_dir("/proc/self/task").ok()? {
            let list = std::fs::read_to_string(thread.ok()?.path().join("children")).ok()?;
            pids.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        Some(pids)
    };
    from_threads()
        .or_else(|| Some(proc_pids()?.collect()))
        .unwrap_or_default()
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
    pids.filter_map(stat)
        .any(|stat| stat.pgrp == pgid.as_raw() && stat.state != 'Z')
}

/// Reads a stream and sends it on line by line, as lines complete. Lines longer than
/// `max_line_bytes` are cut there; bytes that are not UTF-8 are replaced. The lines completed by
/// one read are sent together, so a chatty program costs one message per read, not per line.
async fn read_lines(
    mut stream: impl AsyncRead + Unpin,
    which: Stream,
    max_line_bytes: usize,
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
            } else if line.len() < max_line_bytes {
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
