//! Figure W: how soon a client blocked in `GET /api/jobs/status?token=T&wait=30` hears that its
//! job ended, when (with several nodes) the job runs on another node than the one it waits on.
//!
//! Each job is held at a gate, a named pipe it reads one line from, so that its end is the
//! bench's to release. The job's program then prints the time of day in nanoseconds and exits,
//! which ends the job. The waiter takes its own clock when the answer arrives (the same
//! machine's clock); the difference is the wake-up latency: the process's exit, the commit of
//! the job's end, the notification that reaches the waiter's node, and the HTTP answer.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::BoxError;
use crate::client::{Client, quantile_ms};
use crate::figures::Bench;
use crate::holtd::{ScratchDir, Servers, Store, template};
use crate::report::{Report, number};

/// How long after the waiter's request is sent the job is released. A server gives no sign
/// that a waiter has started waiting, so the release leaves it this long to get there: on
/// loopback a request is read and its status looked up well within it. A waiter that reached
/// its node only after the job ended (a stall of over this long) would answer at once from its
/// read, its time still counted from the printed time; a waiter that answers before the
/// release is an error.
const RELEASE_AFTER: Duration = Duration::from_millis(20);

fn now_ns() -> Result<u128, BoxError> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos())
}

fn mkfifo(path: &Path) -> Result<(), BoxError> {
    let status = Command::new("mkfifo").arg(path).status()?;
    if !status.success() {
        return Err(format!("mkfifo {} failed: {status}", path.display()).into());
    }
    Ok(())
}

/// The node whose `/metrics` shows the one job of `template` executing, asking every
/// millisecond until one does.
pub(crate) async fn running_node(
    clients: &mut [Client],
    template: &str,
    deadline: Instant,
) -> Result<usize, BoxError> {
    let running = format!("holt_jobs{{template=\"{template}\",status=\"Executing\"}} 1");
    loop {
        for (node, client) in clients.iter_mut().enumerate() {
            let (code, body) = client.get("/metrics").await?;
            if code != 200 {
                return Err(format!("/metrics of node {}: {code}", node + 1).into());
            }
            if String::from_utf8_lossy(&body).lines().any(|l| l == running) {
                return Ok(node);
            }
        }
        if Instant::now() >= deadline {
            return Err("no node showed the job executing".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// W: from a job's end (the time its program printed last) to the answer of a client waiting
/// for it with `status?wait=30`, on another node than the one running the job when there are
/// several. Jobs run one at a time: triggered round-robin over the nodes, then held at the
/// gate while the bench learns which node runs the job and sends the waiter to a different one.
pub(crate) async fn w(
    bench: &Bench,
    store: Store<'_>,
    report: &mut Report,
) -> Result<(), BoxError> {
    let sizes = bench.sizes;
    let samples = sizes.w_jobs;
    let gate_dir = ScratchDir::new("w-gate")?;
    let gate_path = gate_dir.path().join("gate");
    mkfifo(&gate_path)?;
    // Held open for reading and writing: a job's `read` opens the gate at once and then waits
    // only for the line that releases it, and a line written is kept until a job reads it.
    let mut gate = OpenOptions::new().read(true).write(true).open(&gate_path)?;
    let plan = format!(
        "SHExec >>read go < '{}'; date +%s%N>>;",
        gate_path.display()
    );
    let mut servers = Servers::start(
        &bench.holtd,
        store,
        "w",
        &[("wake", template(&plan))],
        &["--durability", "full"],
    )
    .await?;
    let addrs = servers.addrs();
    let nodes = addrs.len();
    let mut clients = Vec::with_capacity(nodes);
    for addr in &addrs {
        clients.push(Client::connect(*addr).await?);
    }
    let deadline = Instant::now() + sizes.patience;
    let mut delays_us: Vec<u32> = Vec::with_capacity(samples as usize);
    let mut ran_where_triggered = 0u64;
    for i in 0..samples as usize {
        let triggered_on = i % nodes;
        let (code, body) = clients[triggered_on]
            .get("/api/jobs/trigger?template=wake")
            .await?;
        if code != 200 {
            return Err(format!("trigger: {code} {}", String::from_utf8_lossy(&body)).into());
        }
        let token = String::from_utf8_lossy(&body).trim().to_owned();
        let (runner, waiter_node) = if nodes == 1 {
            (0, 0)
        } else {
            let runner = running_node(&mut clients, "wake", deadline).await?;
            // The other nodes take turns.
            (runner, (runner + 1 + i % (nodes - 1)) % nodes)
        };
        if runner == triggered_on {
            ran_where_triggered += 1;
        }
        let mut waiter_client = Client::connect(addrs[waiter_node]).await?;
        let path = format!("/api/jobs/status?token={token}&wait=30");
        let waiter = tokio::spawn(async move {
            let answer = waiter_client.get(&path).await?;
            Ok::<_, BoxError>((answer, now_ns()?))
        });
        tokio::time::sleep(RELEASE_AFTER).await;
        if waiter.is_finished() {
            return Err(
                format!("the waiter for job {token} answered before the job was released").into(),
            );
        }
        gate.write_all(b"go\n")?;
        let ((code, status), heard_ns) =
            tokio::time::timeout_at(deadline.into(), waiter)
                .await
                .map_err(|_| format!("no answer for job {token} by the deadline"))???;
        if code != 200 || &status[..] != b"Succeeded" {
            return Err(format!(
                "the waiter for job {token} got {code} {}",
                String::from_utf8_lossy(&status)
            )
            .into());
        }
        let (code, log) = clients[waiter_node]
            .get(&format!("/api/jobs/logs?token={token}"))
            .await?;
        if code != 200 {
            return Err(format!("logs of job {token}: {code}").into());
        }
        let printed = String::from_utf8_lossy(&log)
            .lines()
            .find_map(|line| line.strip_prefix("INFO: ")?.parse::<u128>().ok())
            .ok_or_else(|| format!("job {token} printed no time"))?;
        let delay = heard_ns.saturating_sub(printed) / 1000;
        delays_us.push(delay.min(u128::from(u32::MAX)) as u32);
    }
    servers.kill9();
    drop(gate);
    delays_us.sort_unstable();
    let p = |q| quantile_ms(&delays_us, q).ok_or_else(|| "no jobs".to_owned());
    let across = if nodes == 1 {
        String::new()
    } else {
        ", waiting on another node".to_owned()
    };
    report.figure(
        format!(
            "W job end -> status?wait answered{across}, p50{}",
            store.suffix()
        ),
        p(0.5),
        "ms",
        None,
        "",
    );
    report.figure(
        format!(
            "W job end -> status?wait answered{across}, p99{}",
            store.suffix()
        ),
        p(0.99),
        "ms",
        None,
        "<= 100 ms",
    );
    let placement = if nodes == 1 {
        String::new()
    } else {
        format!(
            "; {ran_where_triggered} ran on the node they were triggered on, the rest were \
             claimed by another; every waiter waited on a node other than the one running its job"
        )
    };
    report.note(format!(
        "{}: {samples} jobs, one at a time, each released {} ms after its waiter was sent; max {} ms{placement}",
        store.name("W"),
        RELEASE_AFTER.as_millis(),
        p(1.0).map_or("?".to_owned(), number)
    ));
    Ok(())
}
