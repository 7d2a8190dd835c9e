//! One SSH connection per job and server: a master client started on the job's first operation
//! on a server and shared by every later one, so that a loop of operations pays one handshake.
//!
//! The master is a program of its own (its own process group, tracked like every program holtd
//! starts, carrying the job's marks so that a start after a crash ends it), never part of an
//! operation's group: ending an operation leaves the connection to the others. It says it is
//! ready with a local line ([`READY`]) once connected, after its control socket listens. Its
//! socket lives in a directory of the job's own, made private to holtd's user. When the run
//! ends, [`Connections::close`] ends every master and removes the directory; dropping
//! [`Connections`] does as much should the run end another way.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{SSH, SshTarget, failure_reason};
use crate::process::{self, ProcessSpec, Stream};

/// The line a master prints once it is connected and its control socket listens.
pub(crate) const READY: &str = "HOLT-SSH-READY";

/// How long a master may take beyond the connect timeout to log in and say it is ready.
const LOGIN_SLACK: Duration = Duration::from_secs(10);

/// The job's connections, one per server, made on first use.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The directory of the control sockets, made on first use.
    dir: Option<Arc<tempfile::TempDir>>,
    /// Each server's slot, by server name; a slot is locked while its master starts, so that
    /// operations started at once on one server share one connection.
    slots: HashMap<String, Arc<tokio::sync::Mutex<Option<Master>>>>,
    /// Set once closed: no master starts after it.
    closed: bool,
}

/// A running master.
#[derive(Debug)]
struct Master {
    socket: PathBuf,
    /// Ends the master.
    stop: CancellationToken,
    /// Whether the master has ended (the connection dropped, or it was stopped).
    ended: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Connections {
    /// `target`, reached through the job's connection to its server, made now when there is
    /// none (or the last one ended). Refused with the server's reason when it cannot be
    /// reached; the next call tries again, so a retried operation reconnects.
    pub(crate) async fn connect(
        &self,
        target: SshTarget,
        env: Vec<(String, String)>,
        grace: Duration,
    ) -> Result<SshTarget, String> {
        let (slot, dir, index) = {
            let mut inner = lock(&self.inner);
            if inner.closed {
                return Err("the job's run has ended".to_owned());
            }
            let dir = match &inner.dir {
                Some(dir) => dir.clone(),
                None => {
                    let dir = Arc::new(socket_dir().map_err(|e| {
                        format!("cannot make a directory for the job's SSH connections: {e}")
                    })?);
                    inner.dir = Some(dir.clone());
                    dir
                }
            };
            let index = inner.slots.len();
            let slot = inner
                .slots
                .entry(target.server.clone())
                .or_default()
                .clone();
            (slot, dir, index)
        };
        let mut master = slot.lock().await;
        if let Some(running) = master.as_ref()
            && !running.ended.load(Ordering::SeqCst)
        {
            return Ok(target.through(running.socket.clone()));
        }
        // A new master gets a new socket: one that ended may have left its own behind.
        let socket = dir.path().join(format!("{index}-{}", fresh_suffix()));
        let started = start(&target, socket.clone(), env, grace).await?;
        *master = Some(started);
        Ok(target.through(socket))
    }

    /// Ends every master and removes the sockets' directory. Operations that start afterwards
    /// are refused.
    pub(crate) async fn close(&self) {
        let (slots, dir) = {
            let mut inner = lock(&self.inner);
            inner.closed = true;
            (std::mem::take(&mut inner.slots), inner.dir.take())
        };
        for slot in slots.into_values() {
            if let Some(mut master) = slot.lock().await.take() {
                master.stop.cancel();
                let _ = (&mut master.task).await;
            }
        }
        drop(dir);
    }
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A directory only holtd's user may enter, with a short path: a socket's path must fit in
/// about a hundred bytes, so a long `TMPDIR` is not used.
fn socket_dir() -> std::io::Result<tempfile::TempDir> {
    let tmp = std::env::temp_dir();
    let base = if tmp.as_os_str().len() <= 40 {
        tmp
    } else {
        PathBuf::from("/tmp")
    };
    // tempfile makes the directory with mode 0700.
    tempfile::Builder::new()
        .prefix("holt-ssh-")
        .tempdir_in(base)
}

/// A few characters that differ between the masters of one job.
fn fresh_suffix() -> String {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Starts a master for `target` at `socket` and waits until it is ready, or has failed.
async fn start(
    target: &SshTarget,
    socket: PathBuf,
    env: Vec<(String, String)>,
    grace: Duration,
) -> Result<Master, String> {
    let name = target.server.clone();
    let spec = ProcessSpec {
        program: SSH.to_owned(),
        args: target.master(&socket),
        working_directory: None,
        env,
        max_line_bytes: 4096,
    };
    let (mut running, mut lines, stdin) = process::start_held(&spec, grace)
        .map_err(|e| format!("cannot run on server {name}: cannot start ssh: {e}"))?;
    let stop = CancellationToken::new();
    let mut said: Vec<String> = Vec::new();
    let limit = target.connect_timeout() + LOGIN_SLACK;
    let ready = tokio::time::timeout(limit, async {
        while let Some((stream, batch)) = lines.recv().await {
            match stream {
                Stream::Stdout if batch.iter().any(|line| line.trim() == READY) => return true,
                Stream::Stdout => {}
                Stream::Stderr => said.extend(batch),
            }
        }
        false
    })
    .await;
    if ready != Ok(true) {
        // It has ended, or it is still trying: either way it is ended now, and the reason is
        // what it said.
        stop.cancel();
        let _ = running.wait(&stop, grace).await;
        let reason = match ready {
            Err(_) => format!("no connection within {} s", limit.as_secs()),
            Ok(_) => failure_reason(&said),
        };
        return Err(format!("cannot run on server {name}: {reason}"));
    }
    let ended = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn({
        let stop = stop.clone();
        let ended = ended.clone();
        async move {
            // The master's input stays open for as long as it runs.
            let _stdin = stdin;
            let wait = running.wait(&stop, grace);
            tokio::pin!(wait);
            let mut open = true;
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    line = lines.recv(), if open => match line {
                        Some((_, batch)) => {
                            for line in batch {
                                tracing::debug!(server = %name, "ssh master: {line}");
                            }
                        }
                        None => open = false,
                    },
                }
            }
            ended.store(true, Ordering::SeqCst);
        }
    });
    Ok(Master {
        socket,
        stop,
        ended,
        task,
    })
}

impl Drop for Master {
    /// A master outlives no run: should [`Connections::close`] not have been reached, the
    /// task that holds it ends it.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
