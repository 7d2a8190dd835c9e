//! Running a program to its end with its output captured whole rather than logged line by
//! line: one program ([`capture`]), or two joined by a pipe ([`pipe`]).

use std::process::Stdio;
use std::time::Duration;

use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use super::{Ended, ProcessSpec, Running, spawn_tracked};

/// What a captured run gave back.
#[derive(Debug)]
pub(crate) struct Captured {
    pub(crate) ended: Ended,
    /// Standard output, byte for byte.
    pub(crate) stdout: Vec<u8>,
    /// Standard error, byte for byte.
    pub(crate) stderr: Vec<u8>,
    /// Whether either stream went beyond the cap; what came beyond it was read and dropped.
    pub(crate) overflowed: bool,
}

/// Runs a program to its end with `stdin` fed to it and both output streams captured whole, up
/// to `cap` bytes each; cancellation ends its process group as [`Running::wait`] does.
pub(crate) async fn capture(
    spec: &ProcessSpec,
    stdin: Option<Vec<u8>>,
    cap: usize,
    cancel: &CancellationToken,
    grace: Duration,
) -> std::io::Result<Captured> {
    capture_marked(spec, stdin, cap, cancel, grace, None).await
}

/// [`capture`], also sending the first line of the error output (without its newline) to
/// `first_error_line` as soon as it has arrived, while the program runs on.
pub(crate) async fn capture_marked(
    spec: &ProcessSpec,
    stdin: Option<Vec<u8>>,
    cap: usize,
    cancel: &CancellationToken,
    grace: Duration,
    first_error_line: Option<tokio::sync::oneshot::Sender<Vec<u8>>>,
) -> std::io::Result<Captured> {
    use tokio::io::AsyncWriteExt;
    let (mut child, id) = spawn_tracked(spec, Stdio::piped())?;
    // The input is written from its own task, so a program that writes much before it reads
    // cannot deadlock against us; a program that exits without reading it all is no error.
    if let Some(mut pipe) = child.stdin.take() {
        let input = stdin.unwrap_or_default();
        tokio::spawn(async move {
            let _ = pipe.write_all(&input).await;
        });
    }
    let stdout = child
        .stdout
        .take()
        .map(|s| tokio::spawn(read_capped(s, cap, None)));
    let stderr = child
        .stderr
        .take()
        .map(|s| tokio::spawn(read_capped(s, cap, first_error_line)));
    let mut running = Running {
        child,
        pgid: Pid::from_raw(id as i32),
        grace,
    };
    let ended = running.wait(cancel, grace).await?;
    // A process that left the group may still hold a pipe open: what has not arrived a moment
    // after the group is gone is not waited for.
    let drain = tokio::time::Instant::now() + CAPTURE_DRAIN;
    let (stdout, over_out) = collect(stdout, drain).await;
    let (stderr, over_err) = collect(stderr, drain).await;
    let overflowed = over_out || over_err;
    Ok(Captured {
        ended,
        stdout,
        stderr,
        overflowed,
    })
}

/// Runs two programs at once, the first's standard output feeding the second's standard
/// input through a pipe of the kernel (nothing of it passes through holtd's memory), with
/// `input` fed to the first and the error output of each captured up to `cap` bytes. Each runs
/// in its own process group; cancellation ends both. The captured standard output of the first
/// is always empty; that of the second is kept up to `cap`.
pub(crate) async fn pipe(
    from: &ProcessSpec,
    input: Vec<u8>,
    to: &ProcessSpec,
    cap: usize,
    cancel: &CancellationToken,
    grace: Duration,
) -> std::io::Result<(Captured, Captured)> {
    use tokio::io::AsyncWriteExt;
    let (first, first_id) = spawn_tracked(from, Stdio::piped())?;
    // Held as a run from the start, so that a failure below still ends and untracks it.
    let mut first = Running {
        child: first,
        pgid: Pid::from_raw(first_id as i32),
        grace,
    };
    let between: Stdio = first
        .child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("the first program's output was not piped"))?
        .try_into()?;
    let (mut second, second_id) = spawn_tracked(to, between)?;
    if let Some(mut pipe) = first.child.stdin.take() {
        tokio::spawn(async move {
            let _ = pipe.write_all(&input).await;
        });
    }
    let first_err = first
        .child
        .stderr
        .take()
        .map(|s| tokio::spawn(read_capped(s, cap, None)));
    let second_out = second
        .stdout
        .take()
        .map(|s| tokio::spawn(read_capped(s, cap, None)));
    let second_err = second
        .stderr
        .take()
        .map(|s| tokio::spawn(read_capped(s, cap, None)));
    let mut second = Running {
        child: second,
        pgid: Pid::from_raw(second_id as i32),
        grace,
    };
    let (first_ended, second_ended) =
        tokio::join!(first.wait(cancel, grace), second.wait(cancel, grace));
    let drain = tokio::time::Instant::now() + CAPTURE_DRAIN;
    let (first_stderr, first_over) = collect(first_err, drain).await;
    let (second_stdout, second_over_out) = collect(second_out, drain).await;
    let (second_stderr, second_over_err) = collect(second_err, drain).await;
    Ok((
        Captured {
            ended: first_ended?,
            stdout: Vec::new(),
            stderr: first_stderr,
            overflowed: first_over,
        },
        Captured {
            ended: second_ended?,
            stdout: second_stdout,
            stderr: second_stderr,
            overflowed: second_over_out || second_over_err,
        },
    ))
}

/// How long a captured stream may go on once its program's group is gone.
const CAPTURE_DRAIN: Duration = Duration::from_secs(2);

async fn collect(
    task: Option<tokio::task::JoinHandle<(Vec<u8>, bool)>>,
    deadline: tokio::time::Instant,
) -> (Vec<u8>, bool) {
    match task {
        Some(task) => tokio::time::timeout_at(deadline, task)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default(),
        None => (Vec::new(), false),
    }
}

/// Reads a stream to its end, keeping its first `cap` bytes and whether there were more.
/// When `first_line` is given, the first line is sent to it once it is whole.
async fn read_capped(
    mut stream: impl AsyncRead + Unpin,
    cap: usize,
    mut first_line: Option<tokio::sync::oneshot::Sender<Vec<u8>>>,
) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut over = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let room = cap.saturating_sub(kept.len());
        if n > room {
            over = true;
        }
        kept.extend_from_slice(&buf[..n.min(room)]);
        if first_line.is_some()
            && let Some(end) = kept.iter().position(|&b| b == b'\n')
            && let Some(tx) = first_line.take()
        {
            let _ = tx.send(kept[..end].to_vec());
        }
    }
    (kept, over)
}
