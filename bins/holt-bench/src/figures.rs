//! Each figure of issue 5, measured against a fresh holtd process (T1 to T3 also against fresh
//! nodes on PostgreSQL, issue 11), and the baselines.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use holt_domain::{JobStatus, LogEntry, LogLevel, ScopePath, TemplateName, Variables};
use holt_storage::{Durability, JobStore, NewJob, SqliteConfig, SqliteStore};
use http_body_util::BodyExt;

use crate::BoxError;
use crate::baseline;
use crate::client::{self, Client, Load, Outcome, quantile_ms};
use crate::holtd::{Holtd, HoltdDir, ScratchDir, Servers, Store, template};
use crate::pg::{self, PgServer};
use crate::report::{Report, number};

/// How big and how long each measurement is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    /// HTTP connections of every load (issue 5: 64).
    pub(crate) connections: usize,
    /// Producers of baseline S (issue 5: 32).
    pub(crate) producers: usize,
    /// Load before a throughput window, not counted.
    pub(crate) warmup: Duration,
    /// The measuring window of H, S, T1 and T3.
    pub(crate) window: Duration,
    /// Rows of baseline L.
    pub(crate) log_rows: u64,
    /// Jobs of T2.
    pub(crate) t2_jobs: u64,
    /// Finished jobs T3 asks the status of.
    pub(crate) t3_tokens: u64,
    /// Lines the T4 job logs.
    pub(crate) t4_lines: u64,
    /// Jobs executing at once in T5.
    pub(crate) t5_jobs: u64,
    /// The status-call window of T5.
    pub(crate) t5_window: Duration,
    /// Jobs in the T6 database.
    pub(crate) t6_jobs: u64,
    /// Starts timed in T6 (the median is reported).
    pub(crate) starts: usize,
    /// `Exec true` operations of each job of the SSH figure.
    pub(crate) ssh_ops: u64,
    /// Lines the T7 job prints, one every 20 ms.
    pub(crate) t7_lines: u64,
    /// Jobs whose end figure W times, one at a time.
    pub(crate) w_jobs: u64,
    /// The longest any wait for holtd may take before the figure is given up.
    pub(crate) patience: Duration,
}

impl Sizes {
    pub(crate) fn full() -> Sizes {
        Sizes {
            connections: 64,
            producers: 32,
            warmup: Duration::from_secs(1),
            window: Duration::from_secs(10),
            log_rows: 1_000_000,
            t2_jobs: 20_000,
            t3_tokens: 1_000,
            t4_lines: 1_000_000,
            t5_jobs: 10_000,
            t5_window: Duration::from_secs(5),
            t6_jobs: 1_000_000,
            starts: 5,
            t7_lines: 1_000,
            w_jobs: 200,
            ssh_ops: 500,
            patience: Duration::from_secs(600),
        }
    }

    pub(crate) fn quick() -> Sizes {
        Sizes {
            warmup: Duration::from_millis(300),
            window: Duration::from_secs(3),
            log_rows: 100_000,
            t2_jobs: 5_000,
            t3_tokens: 200,
            t4_lines: 100_000,
            t5_jobs: 1_000,
            t5_window: Duration::from_secs(2),
            t6_jobs: 100_000,
            t7_lines: 150,
            w_jobs: 40,
            ssh_ops: 50,
            patience: Duration::from_secs(120),
            ..Sizes::full()
        }
    }
}

/// What every measurement needs.
#[derive(Debug)]
pub(crate) struct Bench {
    /// The holtd binary.
    pub(crate) holtd: PathBuf,
    pub(crate) sizes: Sizes,
    /// Where baselines keep their databases.
    pub(crate) scratch: ScratchDir,
    /// The example templates, for the idle figure.
    pub(crate) examples: Option<PathBuf>,
    /// The output of `holtd --help`, to learn which flags this holtd has.
    pub(crate) holtd_help: String,
}

impl Bench {
    /// Arguments lifting holtd's limit on waiting jobs, when it has one. Triggers are accepted
    /// faster than jobs run, so a sustained trigger load reaches any such limit within seconds
    /// and would then measure how fast holtd refuses (503) rather than how fast it accepts.
    fn unlimited_queue(&self) -> &'static [&'static str] {
        if self.holtd_help.contains("--max-pending-jobs") {
            &["--max-pending-jobs", "100000000"]
        } else {
            &[]
        }
    }
}

const HI: &str = "Log-Information \"hi\";";
const TRIGGER: &str = "/api/jobs/trigger?template=bench";
const MB: f64 = 1e6;

fn status_path(token: &str) -> String {
    format!("/api/jobs/status?token={token}")
}

fn is_terminal(status: &[u8]) -> bool {
    JobStatus::ALL
        .into_iter()
        .any(|s| s.is_terminal() && s.as_str().as_bytes() == status)
}

fn ignore(_: u64, _: &Bytes) {}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn note_failures(report: &mut Report, outcome: &Outcome, what: &str) {
    if let Some(note) = outcome.failure_note(what) {
        report.note(note);
    }
}

/// Starts holtd (one process, or the nodes of a cluster) on a fresh store holding the `bench`
/// template (one `Log-Information`).
async fn start_bench_servers(
    bench: &Bench,
    store: Store<'_>,
    figure: &str,
    extra: &[&str],
) -> Result<Servers, BoxError> {
    Servers::start(
        &bench.holtd,
        store,
        figure,
        &[("bench", template(HI))],
        extra,
    )
    .await
}

/// The bodies of a load run, in request order, as text.
fn tokens_of(outcome: &mut Outcome) -> Vec<String> {
    outcome.bodies.sort_by_key(|(i, _)| *i);
    outcome
        .bodies
        .iter()
        .map(|(_, body)| String::from_utf8_lossy(body).trim().to_owned())
        .collect()
}

/// Baseline H (and H99, its latency): a raw hyper `ok` server at `connections` connections.
pub(crate) async fn baseline_h(bench: &Bench, report: &mut Report) -> Result<(), BoxError> {
    let sizes = bench.sizes;
    let server = baseline::OkServer::start()?;
    client::run(
        server.addr,
        Load::timed(sizes.connections, sizes.warmup),
        |_| "/".to_owned(),
        ignore,
    )
    .await?;
    let mut outcome = client::run(
        server.addr,
        Load::timed(sizes.connections, sizes.window).with_latencies(),
        |_| "/".to_owned(),
        ignore,
    )
    .await?;
    drop(server);
    note_failures(report, &outcome, "baseline H");
    outcome.latencies_us.sort_unstable();
    report.baseline(
        "H",
        format!("raw hyper `ok`, {} connections", sizes.connections),
        Ok(outcome.rate()),
        "req/s",
    );
    report.baseline(
        "H99",
        format!("raw hyper `ok` p99, {} connections", sizes.connections),
        quantile_ms(&outcome.latencies_us, 0.99).ok_or_else(|| "no requests".to_owned()),
        "ms",
    );
    Ok(())
}

/// Baseline S: durable group commits of job rows from `producers` concurrent producers.
pub(crate) async fn baseline_s(bench: &Bench, report: &mut Report) -> Result<(), BoxError> {
    let sizes = bench.sizes;
    let result =
        baseline::group_commit(bench.scratch.path(), sizes.producers, sizes.window).await?;
    let rate = result.commits as f64 / result.elapsed.as_secs_f64();
    report.baseline(
        "S",
        format!(
            "raw SQLite group commit, synchronous=FULL, {} producers",
            sizes.producers
        ),
        Ok(rate),
        "commits/s",
    );
    report.note(format!(
        "baseline S: {} rows in {} transactions ({:.1} rows per fsync'd commit)",
        result.commits,
        result.transactions,
        result.commits as f64 / result.transactions.max(1) as f64
    ));
    Ok(())
}

/// Baseline P: durable group commits of job rows into PostgreSQL from `producers` concurrent
/// producers.
pub(crate) async fn baseline_p(
    bench: &Bench,
    server: &PgServer,
    report: &mut Report,
) -> Result<(), BoxError> {
    let sizes = bench.sizes;
    let result = pg::group_commit(server, sizes.producers, sizes.window).await?;
    report.baseline(
        "P",
        format!(
            "raw PostgreSQL group commit (tokio-postgres), {} producers",
            sizes.producers
        ),
        Ok(result.commits as f64 / result.elapsed.as_secs_f64()),
        "commits/s",
    );
    report.note(format!(
        "baseline P: {} rows in {} transactions ({:.1} rows per commit)",
        result.commits,
        result.transactions,
        result.commits as f64 / result.transactions.max(1) as f64
    ));
    Ok(())
}

/// Baseline L: log-entry rows in 100-row transactions, `synchronous=NORMAL`.
pub(crate) async fn baseline_l(bench: &Bench, report: &mut Report) -> Result<(), BoxError> {
    let dir = bench.scratch.path().to_path_buf();
    let rows = bench.sizes.log_rows;
    let (written, elapsed) = tokio::task::spawn_blocking(move || {
        baseline::batched_log_rows(&dir, rows, Duration::from_secs(120)).map_err(|e| e.to_string())
    })
    .await??;
    report.baseline(
        "L",
        "raw SQLite log rows, 100 per transaction, synchronous=NORMAL",
        Ok(written as f64 / elapsed.as_secs_f64()),
        "rows/s",
    );
    Ok(())
}

/// Idle RSS: holtd with the example templates, after start, with no load.
pub(crate) async fn idle(bench: &Bench, report: &mut Report) -> Result<(), BoxError> {
    let examples = bench
        .examples
        .as_ref()
        .ok_or("examples/templates not found next to the benchmark's sources")?;
    let dir = HoltdDir::new("idle", &[])?;
    let mut holtd = Holtd::start(&bench.holtd, &dir.db(), examples, &[]).await?;
    // Let start-up work (the pool's idle connections, the first checkpoint) settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = holtd.rss().ok_or("cannot read holtd's VmRSS")?;
    report.figure(
        "idle RSS (example templates, no load)",
        Ok(rss as f64 / MB),
        "MB",
        None,
        "<= 20 MB",
    );
    holtd.kill9();
    Ok(())
}

/// T1: triggers per second at `connections` connections (spread round-robin over the nodes).
pub(crate) async fn t1(
    bench: &Bench,
    store: Store<'_>,
    report: &mut Report,
) -> Result<(), BoxError> {
    let sizes = bench.sizes;
    // The default concurrency: T1 measures how fast triggers are accepted; the jobs they
    // create queue up behind it (the queue limit is lifted) rather than compete for the CPU.
    let args = [
        &["--durability", "full", "--max-concurrent-jobs", "8"],
        bench.unlimited_queue(),
    ]
    .concat();
    let mut servers = start_bench_servers(bench, store, "t1", &args).await?;
    let addrs = servers.addrs();
    let trigger = |_| TRIGGER.to_owned();
    client::run_on(
        &addrs,
        Load::timed(sizes.connections, sizes.warmup),
        trigger,
        ignore,
    )
    .await?;
    let outcome = client::run_on(
        &addrs,
        Load::timed(sizes.connections, sizes.window),
        trigger,
        ignore,
    )
    .await?;
    let rss = servers.rss();
    servers.kill9();
    let name = store.name("T1");
    note_failures(report, &outcome, &name);
    report.note(format!(
        "{name}: {} jobs accepted in {:.1} s (after {:.1} s of warm-up); holtd RSS at the end {} MB",
        outcome.ok,
        outcome.elapsed.as_secs_f64(),
        sizes.warmup.as_secs_f64(),
        rss.map_or("?".to_owned(), |r| number(r as f64 / MB))
    ));
    let (baseline, target) = match store {
        Store::Sqlite => ("H", ">= 0.5x H"),
        Store::Postgres { .. } => ("P", ""),
    };
    report.figure(
        format!(
            "T1 trigger throughput, {} connections, durability full{}",
            sizes.connections,
            store.suffix()
        ),
        Ok(outcome.rate()),
        "triggers/s",
        Some(baseline),
        target,
    );
    Ok(())
}

/// When the last of a set of jobs was seen terminal, and their final statuses.
#[derive(Debug)]
struct AllTerminal {
    at: Instant,
    statuses: BTreeMap<String, u64>,
}

/// Waits until every job in `tokens` is terminal. Jobs run in creation order, so the last
/// token is polled alone (every millisecond) until it is terminal; then every other job is
/// checked, and any still running is polled until it ends, which moves the end time to then.
async fn wait_terminal(
    addrs: &[SocketAddr],
    tokens: &[String],
    connections: usize,
    deadline: Instant,
) -> Result<AllTerminal, BoxError> {
    let last = tokens.last().ok_or("no jobs to wait for")?;
    let first = *addrs.first().ok_or("no server to ask")?;
    let mut client = Client::connect(first).await?;
    let mut at = loop {
        let (code, body) = client.get(&status_path(last)).await?;
        if code != 200 {
            return Err(format!("status of job {last}: {code}").into());
        }
        if is_terminal(&body) {
            break Instant::now();
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "job {last} still {} at the deadline",
                String::from_utf8_lossy(&body)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let mut statuses = BTreeMap::new();
    let mut remaining: Vec<String> = tokens.to_vec();
    let mut round = 0;
    while !remaining.is_empty() {
        if Instant::now() >= deadline {
            return Err(format!("{} jobs not terminal at the deadline", remaining.len()).into());
        }
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let list = Arc::new(std::mem::take(&mut remaining));
        let paths = list.clone();
        let outcome = client::run_on(
            addrs,
            Load::counted(
                connections.min(list.len()),
                list.len() as u64,
                deadline.saturating_duration_since(Instant::now()),
            )
            .with_bodies(),
            move |i| status_path(&paths[i as usize]),
            ignore,
        )
        .await?;
        if outcome.failed > 0 || outcome.ok < list.len() as u64 {
            return Err(outcome
                .failure_note("status sweep")
                .unwrap_or_else(|| "status sweep incomplete".to_owned())
                .into());
        }
        let checked = Instant::now();
        for (i, body) in &outcome.bodies {
            if is_terminal(body) {
                *statuses
                    .entry(String::from_utf8_lossy(body).into_owned())
                    .or_insert(0) += 1;
            } else {
                remaining.push(list[*i as usize].clone());
            }
        }
        if round > 0 {
            at = at.max(checked);
        }
        round += 1;
    }
    Ok(AllTerminal { at, statuses })
}

/// T2: jobs per second from trigger to terminal status.
pub(crate) async fn t2(
    bench: &Bench,
    store: Store<'_>,
    report: &mut Report,
) -> Result<(), BoxError> {
    let sizes = bench.sizes;
    let jobs = sizes.t2_jobs;
    // Jobs this small are bound by commits, not CPU: 64 at once share each group commit.
    let mut servers = start_bench_servers(
        bench,
        store,
        "t2",
        &["--durability", "full", "--max-concurrent-jobs", "64"],
    )
    .await?;
    let addrs = servers.addrs();
    let start = Instant::now();
    let deadline = start + sizes.patience;
    let mut outcome = client::run_on(
        &addrs,
        Load::counted(sizes.connections, jobs, sizes.patience).with_bodies(),
        |_| TRIGGER.to_owned(),
        ignore,
    )
    .await?;
    let name = store.name("T2");
    note_failures(report, &outcome, &format!("{name} triggers"));
    let triggered = outcome.elapsed;
    let tokens = tokens_of(&mut outcome);
    let done = wait_terminal(&addrs, &tokens, sizes.connections, deadline).await?;
    servers.kill9();
    let elapsed = done.at - start;
    let (baseline, target) = match store {
        Store::Sqlite => ("S", ">= 10,000 jobs/s"),
        Store::Postgres { .. } => ("P", ""),
    };
    report.figure(
        format!(
            "T2 end to end, {} jobs trigger -> terminal{}",
            tokens.len(),
            store.suffix()
        ),
        Ok(tokens.len() as f64 / elapsed.as_secs_f64()),
        "jobs/s",
        Some(baseline),
        target,
    );
    report.note(format!(
        "{name}: {} jobs triggered in {:.2} s ({} triggers/s), all terminal after {:.2} s; final statuses {:?}",
        tokens.len(),
        triggered.as_secs_f64(),
        number(tokens.len() as f64 / triggered.as_secs_f64()),
        elapsed.as_secs_f64(),
        done.statuses
    ));
    Ok(())
}

/// T3: status latency at `connections` connections while triggers run at as many more.
pub(crate) async fn t3(
    bench: &Bench,
    store: Store<'_>,
    report: &mut Report,
) -> Result<(), BoxError> {
    let sizes = bench.sizes;
    let args = [
        &["--durability", "full", "--max-concurrent-jobs", "64"],
        bench.unlimited_queue(),
    ]
    .concat();
    let mut servers = start_bench_servers(bench, store, "t3", &args).await?;
    let addrs = servers.addrs();
    let mut seeded = client::run_on(
        &addrs,
        Load::counted(sizes.connections, sizes.t3_tokens, sizes.patience).with_bodies(),
        |_| TRIGGER.to_owned(),
        ignore,
    )
    .await?;
    let finished = Arc::new(tokens_of(&mut seeded));
    if finished.is_empty() {
        return Err("no job could be triggered".into());
    }
    // Half the status calls ask about the newest job (live, usually Pending or Executing), half
    // about older ones (finished), so both a cache of live jobs and the database are exercised.
    let latest = Arc::new(AtomicU64::new(
        finished
            .iter()
            .filter_map(|t| t.parse().ok())
            .max()
            .unwrap_or(1),
    ));
    let newest = latest.clone();
    let trigger_load = client::run_on(
        &addrs,
        Load::timed(sizes.connections, sizes.window),
        |_| TRIGGER.to_owned(),
        move |_, body| {
            if let Some(id) = std::str::from_utf8(body)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                newest.fetch_max(id, Ordering::Relaxed);
            }
        },
    );
    let old = finished.clone();
    let status_load = client::run_on(
        &addrs,
        Load::timed(sizes.connections, sizes.window).with_latencies(),
        move |i| {
            if i % 2 == 0 {
                status_path(&old[(i / 2) as usize % old.len()])
            } else {
                status_path(&latest.load(Ordering::Relaxed).to_string())
            }
        },
        ignore,
    );
    let (triggers, statuses) = tokio::join!(trigger_load, status_load);
    servers.kill9();
    let (triggers, mut statuses) = (triggers?, statuses?);
    let name = store.name("T3");
    note_failures(report, &triggers, &format!("{name} triggers"));
    note_failures(report, &statuses, &format!("{name} status calls"));
    statuses.latencies_us.sort_unstable();
    let p = |q| quantile_ms(&statuses.latencies_us, q).ok_or_else(|| "no requests".to_owned());
    report.figure(
        format!("T3 status p50 under trigger load{}", store.suffix()),
        p(0.5),
        "ms",
        Some("H99"),
        "",
    );
    report.figure(
        format!("T3 status p99 under trigger load{}", store.suffix()),
        p(0.99),
        "ms",
        Some("H99"),
        match store {
            Store::Sqlite => "<= 5 ms",
            Store::Postgres { .. } => "",
        },
    );
    report.note(format!(
        "{name}: {} status calls/s and {} triggers/s meanwhile ({} + {} connections); max status latency {} ms",
        number(statuses.rate()),
        number(triggers.rate()),
        sizes.connections,
        sizes.connections,
        p(1.0).map_or("?".to_owned(), number)
    ));
    Ok(())
}

/// T4: a job logging many lines, then fetching its whole log.
pub(crate) async fn t4(bench: &Bench, report: &mut Report) -> Result<(), BoxError> {
    let sizes = bench.sizes;
    let lines = sizes.t4_lines;
    let plan = format!("foreach $i in @Range(0, {lines}) {{ Log-Information \"line $i\"; }}");
    let dir = HoltdDir::new("t4", &[("biglog", template(&plan))])?;
    let mut holtd = Holtd::start(
        &bench.holtd,
        &dir.db(),
        &dir.templates(),
        &["--durability", "full"],
    )
    .await?;
    let mut client = Client::connect(holtd.addr).await?;

    // Writing: from the trigger to the terminal status.
    let start = Instant::now();
    let (code, token) = client.get("/api/jobs/trigger?template=biglog").await?;
    if code != 200 {
        return Err(format!("trigger: {code} {}", String::from_utf8_lossy(&token)).into());
    }
    let token = String::from_utf8_lossy(&token).trim().to_owned();
    let status = loop {
        let (code, body) = client.get(&status_path(&token)).await?;
        if code != 200 {
            return Err(format!("status: {code}").into());
        }
        if is_terminal(&body) {
            break String::from_utf8_lossy(&body).into_owned();
        }
        if start.elapsed() >= sizes.patience {
            return Err(format!("the job was not done after {:?}", sizes.patience).into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let written = start.elapsed();
    report.figure(
        format!(
            "T4 log lines written, one job of {} lines",
            number(lines as f64)
        ),
        Ok(lines as f64 / written.as_secs_f64()),
        "lines/s",
        Some("L"),
        ">= 1,000,000 lines/s",
    );

    // Fetching: the whole body, while sampling holtd's memory.
    let rss_before = holtd.rss().ok_or("cannot read holtd's VmRSS")?;
    let sampler = holtd.sample_rss();
    let fetch_start = Instant::now();
    let response = client
        .send(&format!("/api/jobs/logs?token={token}"))
        .await?;
    if response.status() != 200 {
        return Err(format!("logs: {}", response.status()).into());
    }
    let mut body = response.into_body();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut bytes = 0usize;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            bytes += data.len();
            chunks.push(data);
        }
    }
    let fetched = fetch_start.elapsed();
    let peak = sampler.stop().await;
    let lifetime_peak = holtd.peak_rss();
    holtd.kill9();

    // The same text from a file, through `cat`.
    let file = dir.path().join("log.txt");
    let mut text = Vec::with_capacity(bytes);
    for chunk in &chunks {
        text.extend_from_slice(chunk);
    }
    drop(chunks);
    let body_lines = text.iter().filter(|&&b| b == b'\n').count();
    std::fs::write(&file, &text)?;
    drop(text);
    let cat = cat_time(&file, 3)?;

    let fetch_rate = bytes as f64 / fetched.as_secs_f64() / MB;
    report.baseline(
        "C",
        "`cat` of the same log body from a file",
        Ok(bytes as f64 / cat.as_secs_f64() / MB),
        "MB/s",
    );
    report.figure(
        "T4 whole log body fetch",
        Ok(fetch_rate),
        "MB/s",
        Some("C"),
        ">= 0.5x C",
    );
    report.figure(
        "T4 whole log body fetch time",
        Ok(fetched.as_secs_f64()),
        "s",
        None,
        "",
    );
    report.figure(
        "T4 holtd RSS growth during the fetch",
        Ok(peak.saturating_sub(rss_before) as f64 / MB),
        "MB",
        None,
        "< 32 MB",
    );
    report.figure(
        "T4 holtd peak RSS during the fetch",
        Ok(peak as f64 / MB),
        "MB",
        None,
        "",
    );
    report.note(format!(
        "T4: job {status} after {:.2} s; body {} bytes, {} lines ({} logged + the engine's own); \
         holtd RSS {} MB before the fetch, VmHWM over its life {} MB; cat best of 3: {:.1} ms",
        written.as_secs_f64(),
        number(bytes as f64),
        number(body_lines as f64),
        number(lines as f64),
        number(rss_before as f64 / MB),
        lifetime_peak.map_or("?".to_owned(), |p| number(p as f64 / MB)),
        ms(cat)
    ));
    Ok(())
}

/// The best of `runs` timings of `cat file > /dev/null`, from exec to exit.
fn cat_time(file: &Path, runs: usize) -> Result<Duration, BoxError> {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        let status = Command::new("cat")
            .arg(file)
            .stdout(Stdio::null())
            .status()?;
        let took = start.elapsed();
        if !status.success() {
            return Err(format!("cat failed: {status}").into());
        }
        best = best.min(took);
    }
    Ok(best)
}

/// T5: many jobs executing at once: holtd's memory and the latency of status calls.
pub(crate) async fn t5(bench: &Bench, report: &mut Report) -> Result<(), BoxError> {
    let sizes = bench.sizes;
    let jobs = sizes.t5_jobs;
    let dir = HoltdDir::new("t5", &[("sleep", template("Sleep 30;"))])?;
    let max = jobs.to_string();
    let mut holtd = Holtd::start(
        &bench.holtd,
        &dir.db(),
        &dir.templates(),
        &["--max-concurrent-jobs", &max],
    )
    .await?;
    let addr = holtd.addr;
    let rss_idle = holtd.rss().ok_or("cannot read holtd's VmRSS")?;
    let sampler = holtd.sample_rss();
    // The first job ends 30 s after its trigger; everything is measured before that.
    let start = Instant::now();
    let first_ends = start + Duration::from_secs(29);
    let mut triggered = client::run(
        addr,
        Load::counted(sizes.connections, jobs, Duration::from_secs(25)).with_bodies(),
        |_| "/api/jobs/trigger?template=sleep".to_owned(),
        ignore,
    )
    .await?;
    note_failures(report, &triggered, "T5 triggers");
    let trigger_time = triggered.elapsed;
    let tokens = Arc::new(tokens_of(&mut triggered));
    if tokens.is_empty() {
        return Err("no job could be triggered".into());
    }

    // Wait until every job executes, checking them all each round.
    let mut executing = 0;
    let mut round_statuses = BTreeMap::new();
    while Instant::now() + Duration::from_secs(2) < first_ends {
        let paths = tokens.clone();
        let sweep = client::run(
            addr,
            Load::counted(
                sizes.connections,
                tokens.len() as u64,
                first_ends.saturating_duration_since(Instant::now()),
            )
            .with_bodies(),
            move |i| status_path(&paths[i as usize]),
            ignore,
        )
        .await?;
        round_statuses.clear();
        for (_, body) in &sweep.bodies {
            *round_statuses
                .entry(String::from_utf8_lossy(body).into_owned())
                .or_insert(0u64) += 1;
        }
        executing = round_statuses.get("Executing").copied().unwrap_or(0);
        if executing == tokens.len() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_executing = start.elapsed();
    let rss = holtd.rss().ok_or("cannot read holtd's VmRSS")?;

    // Status calls meanwhile.
    let window = sizes
        .t5_window
        .min(first_ends.saturating_duration_since(Instant::now()));
    let paths = tokens.clone();
    let mut statuses = client::run(
        addr,
        Load::timed(sizes.connections, window).with_latencies(),
        move |i| status_path(&paths[i as usize % paths.len()]),
        ignore,
    )
    .await?;
    let peak = sampler.stop().await;
    holtd.kill9();
    note_failures(report, &statuses, "T5 status calls");
    statuses.latencies_us.sort_unstable();

    report.figure(
        format!("T5 holtd RSS, {} jobs executing", number(executing as f64)),
        Ok(rss as f64 / MB),
        "MB",
        None,
        "<= 300 MB",
    );
    report.figure(
        format!("T5 status p99, {} jobs executing", number(executing as f64)),
        quantile_ms(&statuses.latencies_us, 0.99).ok_or_else(|| "no requests".to_owned()),
        "ms",
        Some("H99"),
        "",
    );
    report.note(format!(
        "T5: {} jobs triggered in {:.2} s; statuses when measured {:?} after {:.2} s; RSS {} MB idle, \
         {} KB per executing job, peak {} MB; status p50 {} ms at {} calls/s over {:.1} s",
        tokens.len(),
        trigger_time.as_secs_f64(),
        round_statuses,
        all_executing.as_secs_f64(),
        number(rss_idle as f64 / MB),
        number(rss.saturating_sub(rss_idle) as f64 / 1024.0 / executing.max(1) as f64),
        number(peak as f64 / MB),
        quantile_ms(&statuses.latencies_us, 0.5).map_or("?".to_owned(), number),
        number(statuses.rate()),
        statuses.elapsed.as_secs_f64()
    ));
    Ok(())
}

/// T6: time from exec to `/healthz` 200 on a large database, against an empty one.
pub(crate) async fn t6(bench: &Bench, report: &mut Report) -> Result<(), BoxError> {
    let sizes = bench.sizes;
    let empty = HoltdDir::new("t6-empty", &[("bench", template(HI))])?;
    let empty_starts = time_starts(bench, &empty, sizes.starts).await?;
    report.baseline(
        "E",
        format!(
            "holtd cold start, empty database (median of {})",
            sizes.starts
        ),
        Ok(ms(median(&empty_starts))),
        "ms",
    );

    let full = HoltdDir::new("t6-full", &[("bench", template(HI))])?;
    let populated = Instant::now();
    populate(&full.db(), sizes.t6_jobs).await?;
    let populate_time = populated.elapsed();
    let db_bytes = std::fs::metadata(full.db()).map_or(0, |m| m.len());
    let starts = time_starts(bench, &full, sizes.starts).await?;
    report.figure(
        format!(
            "T6 cold start, {} jobs in the database",
            number(sizes.t6_jobs as f64)
        ),
        Ok(ms(median(&starts))),
        "ms",
        Some("E"),
        "<= 200 ms",
    );
    list_pages(bench, &full, report).await?;
    report.note(format!(
        "T6: database of {} jobs ({} MB) populated through JobStore in {:.1} s; starts {:?} ms, \
         empty-database starts {:?} ms",
        number(sizes.t6_jobs as f64),
        number(db_bytes as f64 / MB),
        populate_time.as_secs_f64(),
        starts.iter().map(|d| ms(*d).round()).collect::<Vec<_>>(),
        empty_starts
            .iter()
            .map(|d| ms(*d).round())
            .collect::<Vec<_>>(),
    ));
    Ok(())
}

/// Requests timed per page in T6's listing figures.
const LIST_SAMPLES: usize = 50;

/// T6's listing figures: the pages the web UI reads, on the same big database, timed one after
/// another on one connection (the median), against `/healthz` on that connection.
async fn list_pages(bench: &Bench, dir: &HoltdDir, report: &mut Report) -> Result<(), BoxError> {
    use std::os::unix::fs::PermissionsExt;
    let key = "bench-admin-key";
    let key_file = dir.path().join("bench.admin.key");
    std::fs::write(&key_file, format!("{key}\n"))?;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
    let key_arg = key_file.to_str().ok_or("the scratch path is not UTF-8")?;
    let mut holtd = Holtd::start(
        &bench.holtd,
        &dir.db(),
        &dir.templates(),
        &["--admin-key-file", key_arg],
    )
    .await?;
    let mut client = Client::connect(holtd.addr).await?;
    let jobs = bench.sizes.t6_jobs;
    let middle = format!("/api/jobs/list?limit=50&before={}&key={key}", jobs / 2);
    let pages = [
        ("Z", "/healthz".to_owned(), 0),
        ("", format!("/api/jobs/list?limit=50&key={key}"), 50),
        (
            "",
            format!("/api/jobs/list?limit=50&status=Error&key={key}"),
            50,
        ),
        (
            "",
            format!("/api/jobs/list?limit=50&template=bench&key={key}"),
            50,
        ),
        ("", middle, 50),
        ("", "/".to_owned(), 0),
    ];
    let names = [
        "holtd `/healthz`, same connection",
        "T6 job list, newest 50",
        "T6 job list, newest 50 with status=Error (1 job in 20)",
        "T6 job list, newest 50 of one template",
        "T6 job list, 50 from the middle (before=)",
        "T6 web UI page `/`",
    ];
    for ((baseline, path, expected), name) in pages.iter().zip(names) {
        let mut times = Vec::with_capacity(LIST_SAMPLES);
        for _ in 0..LIST_SAMPLES {
            let started = Instant::now();
            let (status, body) = client.get(path).await?;
            times.push(started.elapsed());
            if status != 200 {
                return Err(format!("{name}: status {status}").into());
            }
            let listed = body.windows(7).filter(|w| w == b"\"token\"").count();
            if listed != *expected {
                return Err(format!("{name}: {listed} jobs listed, not {expected}").into());
            }
        }
        let value = Ok(ms(median(&times)));
        if baseline.is_empty() {
            let name = format!("{name}, {} jobs in the database", number(jobs as f64));
            report.figure(name, value, "ms", Some("Z"), "");
        } else {
            report.baseline("Z", name, value, "ms");
        }
    }
    holtd.terminate(Duration::from_secs(30)).await?;
    Ok(())
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// Starts holtd `count` times on `dir`, stopping it with SIGTERM after each start, and returns
/// the time from exec to `/healthz` 200 of each.
async fn time_starts(
    bench: &Bench,
    dir: &HoltdDir,
    count: usize,
) -> Result<Vec<Duration>, BoxError> {
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let mut holtd = Holtd::start(&bench.holtd, &dir.db(), &dir.templates(), &[]).await?;
        times.push(holtd.ready_after);
        holtd.terminate(Duration::from_secs(30)).await?;
    }
    Ok(times)
}

/// Fills a database with `jobs` finished jobs (most Succeeded, some Warning or Error), each with
/// the three log lines such a job has, through holtd's own store with `synchronous=NORMAL`.
async fn populate(db: &Path, jobs: u64) -> Result<(), BoxError> {
    let mut config = SqliteConfig::new(db);
    config.durability = Durability::Normal;
    let store: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&config)?);
    let template: TemplateName = "bench".parse()?;
    let base_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
        - jobs as i64;
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..512 {
        let store = store.clone();
        let template = template.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs {
                    return Ok::<_, BoxError>(());
                }
                let created_ms = base_ms + i as i64;
                let token = store
                    .create_job(NewJob {
                        template: template.clone(),
                        plan: HI.to_owned(),
                        variables: Variables::new(),
                        created_ms,
                        idempotency: None,
                    })
                    .await?
                    .token;
                let (status, last_level, last_text) = match i % 20 {
                    0 => (JobStatus::Error, LogLevel::Error, "Job failed."),
                    1 => (
                        JobStatus::Warning,
                        LogLevel::Warn,
                        "Job completed with warnings.",
                    ),
                    _ => (JobStatus::Succeeded, LogLevel::Info, "Job succeeded."),
                };
                let entry = |seq, level, text: &str| LogEntry {
                    seq,
                    level,
                    scope: ScopePath::root(),
                    time_ms: created_ms + 1,
                    text: text.to_owned(),
                };
                let entries = vec![
                    entry(0, LogLevel::Debug, "Job started from template bench."),
                    entry(1, LogLevel::Info, "hi"),
                    entry(2, last_level, last_text),
                ];
                store.append_logs(token, entries).await?;
                store.set_status(token, status, created_ms + 2).await?;
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    store.flush().await?;
    // Dropping the last handle ends the writer thread, which closes (and checkpoints) the
    // database; that waits, so it is done off the runtime's threads.
    tokio::task::spawn_blocking(move || drop(store)).await?;
    Ok(())
}

/// T7: from a line written by a job to its arrival at a follower of the job's log. The job's
/// program prints the time of day in nanoseconds, one line every 20 ms; the follower reads
/// the followed text body and, for each line, takes the difference to its own clock (the same
/// machine's). The line's way: the program's pipe, the log, the writer's commit (synced, with
/// `--durability full`), the commit notice that wakes the follower, the store read and HTTP.
pub(crate) async fn t7(bench: &Bench, report: &mut Report) -> Result<(), BoxError> {
    let sizes = bench.sizes;
    let lines = sizes.t7_lines;
    let plan = format!("SHExec >>for i in `$(seq {lines}); do date +%s%N; sleep 0.02; done>>;");
    let dir = HoltdDir::new("t7", &[("ticks", template(&plan))])?;
    let holtd = Holtd::start(
        &bench.holtd,
        &dir.db(),
        &dir.templates(),
        &["--durability", "full"],
    )
    .await?;
    let mut client = Client::connect(holtd.addr).await?;
    let (code, token) = client.get("/api/jobs/trigger?template=ticks").await?;
    if code != 200 {
        return Err(format!("trigger: {code} {}", String::from_utf8_lossy(&token)).into());
    }
    let token = String::from_utf8_lossy(&token).trim().to_owned();
    let mut follower = Client::connect(holtd.addr).await?;
    let response = follower
        .send(&format!("/api/jobs/logs?token={token}&follow=true"))
        .await?;
    if response.status() != 200 {
        return Err(format!("follow: {}", response.status()).into());
    }
    let deadline = Instant::now() + sizes.patience;
    let (_, mut delays_us) = follow_printed_times(response, 0, deadline, sizes.patience).await?;
    if delays_us.len() as u64 != lines {
        return Err(format!("the follower got {} of {lines} lines", delays_us.len()).into());
    }
    delays_us.sort_unstable();
    let p = |q| quantile_ms(&delays_us, q).ok_or_else(|| "no lines".to_owned());
    report.figure(
        "T7 line written -> received by a follower, p50",
        p(0.5),
        "ms",
        None,
        "",
    );
    report.figure(
        "T7 line written -> received by a follower, p99",
        p(0.99),
        "ms",
        None,
        "",
    );
    report.note(format!(
        "T7: {} lines, one every 20 ms, followed in the text form; max {} ms",
        number(lines as f64),
        p(1.0).map_or("?".to_owned(), number)
    ));
    Ok(())
}

/// Reads a followed log body whose lines are times of day in nanoseconds (`INFO: <ns>`) to its
/// end, taking this machine's clock as each arrives. Returns how many such lines arrived, and
/// the delay (arrival minus printed time, in microseconds) of each printed after `after_ns`.
pub(crate) async fn follow_printed_times(
    response: hyper::Response<hyper::body::Incoming>,
    after_ns: u128,
    deadline: Instant,
    patience: Duration,
) -> Result<(u64, Vec<u32>), BoxError> {
    let mut body = response.into_body();
    let mut pending = Vec::new();
    let mut delays_us: Vec<u32> = Vec::new();
    let mut received = 0u64;
    while let Some(frame) = tokio::time::timeout_at(deadline.into(), body.frame())
        .await
        .map_err(|_| format!("the job was not done after {patience:?}"))?
    {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            let printed = text
                .trim_end()
                .strip_prefix("INFO: ")
                .and_then(|t| t.parse::<u128>().ok());
            if let Some(printed) = printed {
                received += 1;
                if printed > after_ns {
                    let delay = now_ns.saturating_sub(printed) / 1000;
                    delays_us.push(delay.min(u128::from(u32::MAX)) as u32);
                }
            }
        }
    }
    Ok((received, delays_us))
}
