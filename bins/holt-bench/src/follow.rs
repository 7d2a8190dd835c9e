//! Figure F: how soon a follower of a job's log (`logs?follow=true`) gets each line, when (with
//! several nodes) it follows on another node than the one running the job: T7 across nodes.
//! The job's program prints the time of day in nanoseconds, one line every 20 ms; the follower
//! takes its own clock as each line arrives (one machine, one clock). A line's way: the
//! program's pipe, the job's log, the writer's synced commit with its `NOTIFY`, the follower's
//! node hearing it on its listening connection, its read from the database, and HTTP.

use std::time::Instant;

use crate::BoxError;
use crate::client::{Client, quantile_ms};
use crate::figures::Bench;
use crate::holtd::{Servers, Store, template};
use crate::report::{Report, number};

pub(crate) async fn f(
    bench: &Bench,
    store: Store<'_>,
    report: &mut Report,
) -> Result<(), BoxError> {
    let sizes = bench.sizes;
    let lines = sizes.t7_lines;
    let plan = format!("SHExec >>for i in `$(seq {lines}); do date +%s%N; sleep 0.02; done>>;");
    let mut servers = Servers::start(
        &bench.holtd,
        store,
        "f",
        &[("ticks", template(&plan))],
        &["--durability", "full"],
    )
    .await?;
    let addrs = servers.addrs();
    let mut clients = Vec::with_capacity(addrs.len());
    for addr in &addrs {
        clients.push(Client::connect(*addr).await?);
    }
    let deadline = Instant::now() + sizes.patience;
    let (code, token) = clients[0].get("/api/jobs/trigger?template=ticks").await?;
    if code != 200 {
        return Err(format!("trigger: {code} {}", String::from_utf8_lossy(&token)).into());
    }
    let token = String::from_utf8_lossy(&token).trim().to_owned();
    // The follower goes to a node that does not run the job, once that is known.
    let follower_node = if addrs.len() == 1 {
        0
    } else {
        let runner = crate::wake::running_node(&mut clients, "ticks", deadline).await?;
        (runner + 1) % addrs.len()
    };
    let mut follower = Client::connect(addrs[follower_node]).await?;
    // Lines printed before the follower asked arrive in its first read; only those printed
    // after are counted, as a follower's latency is about the lines it waits for.
    let asked_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let response = follower
        .send(&format!("/api/jobs/logs?token={token}&follow=true"))
        .await?;
    if response.status() != 200 {
        return Err(format!("follow: {}", response.status()).into());
    }
    let (received, delays_us) =
        crate::figures::follow_printed_times(response, asked_ns, deadline, sizes.patience).await?;
    servers.kill9();
    if received != lines || delays_us.is_empty() {
        return Err(format!("the follower got {received} of {lines} lines").into());
    }
    let earlier = lines - delays_us.len() as u64;
    let mut counted = delays_us;
    counted.sort_unstable();
    let p = |q| quantile_ms(&counted, q).ok_or_else(|| "no lines".to_owned());
    let across = if addrs.len() == 1 {
        String::new()
    } else {
        ", following on another node".to_owned()
    };
    report.figure(
        format!(
            "F line written -> received by a follower{across}, p50{}",
            store.suffix()
        ),
        p(0.5),
        "ms",
        None,
        "",
    );
    report.figure(
        format!(
            "F line written -> received by a follower{across}, p99{}",
            store.suffix()
        ),
        p(0.99),
        "ms",
        None,
        "<= 100 ms",
    );
    report.note(format!(
        "{}: {lines} lines, one every 20 ms, all received; the {earlier} printed before the \
         follower asked are not counted; max {} ms",
        store.name("F"),
        p(1.0).map_or("?".to_owned(), number)
    ));
    Ok(())
}
