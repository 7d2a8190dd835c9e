//! The baselines holtd is measured against, run on this machine in the same run: a raw hyper
//! server answering `ok` (H), raw SQLite durable group commits of job-sized rows (S), and raw
//! SQLite batched inserts of log-entry rows (L). Baseline P, its PostgreSQL counterpart of S,
//! is in `pg.rs` and shares S's producers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use crate::BoxError;

/// Baseline H: a minimal hyper HTTP/1.1 server answering `ok`, on its own multi-thread tokio
/// runtime with the default number of workers, as holtd builds its own.
#[derive(Debug)]
pub(crate) struct OkServer {
    /// The address it listens on.
    pub(crate) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OkServer {
    pub(crate) fn start() -> Result<OkServer, BoxError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, mut stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("baseline-h".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        let stream = tokio::select! {
                            accepted = listener.accept() => match accepted {
                                Ok((stream, _)) => stream,
                                Err(_) => continue,
                            },
                            _ = &mut stopped => break,
                        };
                        // The same connection settings as holtd's accept loop.
                        let _ = stream.set_nodelay(true);
                        let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
                            let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                            response.headers_mut().insert(
                                CONTENT_TYPE,
                                HeaderValue::from_static("text/plain; charset=utf-8"),
                            );
                            Ok::<_, Infallible>(response)
                        });
                        let connection = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(Duration::from_secs(10))
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::spawn(async move {
                            let _ = connection.await;
                        });
                    }
                });
                // Dropping the runtime here ends the connections still open.
                drop(runtime);
            })?;
        Ok(OkServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for OkServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The `jobs` table as holtd's first migration creates it, so baseline rows cost what holtd's
/// rows cost.
const JOBS_SCHEMA: &str = "
    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY,
        template    TEXT    NOT NULL,
        plan        TEXT    NOT NULL,
        variables   TEXT    NOT NULL,
        status      INTEGER NOT NULL,
        created_ms  INTEGER NOT NULL,
        started_ms  INTEGER,
        finished_ms INTEGER
    );
    CREATE INDEX jobs_unfinished ON jobs (status, id) WHERE status IN (0, 1);
    CREATE TABLE log_entries (
        job_id  INTEGER NOT NULL,
        seq     INTEGER NOT NULL,
        level   INTEGER NOT NULL,
        scope   TEXT    NOT NULL,
        time_ms INTEGER NOT NULL,
        text    TEXT    NOT NULL,
        PRIMARY KEY (job_id, seq)
    ) WITHOUT ROWID;";

/// A plan of about 100 bytes, the size of a short real one.
pub(crate) const PLAN_100: &str = "# Restart the web tier, one step of a deployment\nLog-Information \"restarting $TargetServer\";\n";

/// Opens a database with holtd's pragmas: WAL, the given `synchronous`, a busy timeout and
/// foreign keys.
fn open(path: &Path, synchronous: &str) -> Result<Connection, BoxError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.execute_batch(JOBS_SCHEMA)?;
    Ok(conn)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What baseline S measured.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    /// Rows acknowledged after their commit.
    pub(crate) commits: u64,
    pub(crate) elapsed: Duration,
    /// Transactions committed.
    pub(crate) transactions: u64,
}

/// One row for a group-commit writer, acknowledged with its id after the commit.
pub(crate) struct Insert {
    pub(crate) created_ms: i64,
    pub(crate) ack: oneshot::Sender<Result<i64, String>>,
}

/// The most inserts one transaction takes, as holtd's writer.
pub(crate) const MAX_BATCH: usize = 4096;

/// Baseline S: `producers` concurrent tasks each insert one job-sized row and wait for its
/// acknowledgement, again and again; one writer thread commits whatever is queued in one
/// transaction (`synchronous=FULL`) and acknowledges each row after the commit.
pub(crate) async fn group_commit(
    dir: &Path,
    producers: usize,
    duration: Duration,
) -> Result<GroupCommit, BoxError> {
    let conn = open(&dir.join("baseline-s.db"), "FULL")?;
    let (sender, mut receiver) = mpsc::channel::<Insert>(8192);
    let writer = std::thread::Builder::new()
        .name("baseline-s-writer".into())
        .spawn(move || -> Result<u64, String> {
            let mut conn = conn;
            let mut transactions = 0;
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = receiver.blocking_recv() {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match receiver.try_recv() {
                        Ok(insert) => batch.push(insert),
                        Err(_) => break,
                    }
                }
                let tx = conn.transaction().map_err(|e| e.to_string())?;
                let mut ids = Vec::with_capacity(batch.len());
                {
                    let mut stmt = tx
                        .prepare_cached(
                            "INSERT INTO jobs (template, plan, variables, status, created_ms)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                        )
                        .map_err(|e| e.to_string())?;
                    for insert in &batch {
                        stmt.execute(params![
                            "bench",
                            PLAN_100,
                            "TargetServer=web1&Version=2.4.1",
                            0,
                            insert.created_ms
                        ])
                        .map_err(|e| e.to_string())?;
                        ids.push(tx.last_insert_rowid());
                    }
                }
                tx.commit().map_err(|e| e.to_string())?;
                transactions += 1;
                for (insert, id) in batch.drain(..).zip(ids) {
                    let _ = insert.ack.send(Ok(id));
                }
            }
            Ok(transactions)
        })?;

    let (commits, elapsed) = produce(sender, producers, duration).await?;
    let transactions = tokio::task::spawn_blocking(move || writer.join())
        .await?
        .map_err(|_| "the baseline writer panicked")??;
    Ok(GroupCommit {
        commits,
        elapsed,
        transactions,
    })
}

/// The producers of a group-commit baseline: `producers` concurrent tasks each send one row to
/// the writer behind `sender` and wait for its acknowledgement, again and again, until
/// `duration` has passed. Returns the rows acknowledged and the time taken.
pub(crate) async fn produce(
    sender: mpsc::Sender<Insert>,
    producers: usize,
    duration: Duration,
) -> Result<(u64, Duration), BoxError> {
    let commits = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(producers);
    for _ in 0..producers {
        let sender = sender.clone();
        let commits = commits.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let (ack, acked) = oneshot::channel();
                let insert = Insert {
                    created_ms: now_ms(),
                    ack,
                };
                if sender.send(insert).await.is_err() {
                    break;
                }
                match acked.await {
                    Ok(Ok(_)) => {
                        commits.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => break,
                }
            }
        }));
    }
    // The writer ends once the last producer's sender is gone.
    drop(sender);
    for task in tasks {
        task.await?;
    }
    Ok((commits.load(Ordering::Relaxed), start.elapsed()))
}

/// Baseline L: one thread inserts `rows` log-entry rows (`INFO`, `line N`) in transactions of
/// 100 rows with `synchronous=NORMAL`, stopping early at `limit`. Returns rows and time.
pub(crate) fn batched_log_rows(
    dir: &Path,
    rows: u64,
    limit: Duration,
) -> Result<(u64, Duration), BoxError> {
    let mut conn = open(&dir.join("baseline-l.db"), "NORMAL")?;
    conn.execute(
        "INSERT INTO jobs (id, template, plan, variables, status, created_ms) VALUES (1, 'bench', ?1, '', 1, ?2)",
        params![PLAN_100, now_ms()],
    )?;
    let start = Instant::now();
    let mut written = 0u64;
    while written < rows && start.elapsed() < limit {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO log_entries (job_id, seq, level, scope, time_ms, text)
                 VALUES (1, ?1, 1, ?2, ?3, ?4)",
            )?;
            let time_ms = now_ms();
            let end = (written + 100).min(rows);
            for seq in written..end {
                // holtd gives each foreach item its own scope, `$i = N`.
                stmt.execute(params![
                    seq as i64,
                    format!("$i = {seq}"),
                    time_ms,
                    format!("line {seq}")
                ])?;
            }
            written = end;
        }
        tx.commit()?;
    }
    Ok((written, start.elapsed()))
}
