//! The one writer: a thread that takes every command queued, applies them in one transaction,
//! commits, and only then acknowledges each caller (group commit).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use holt_domain::{JobStatus, JobToken, LogEntry, TriggerSource};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::committed::Committed;
use crate::backend::{encode_variables, runs};
use crate::{Created, NewJob, StoreError};

type Ack<T> = oneshot::Sender<Result<T, StoreError>>;

/// Work for the writer. Commands are applied in the order they were sent.
pub(crate) enum Command {
    CreateJob {
        job: NewJob,
        source: TriggerSource,
        ack: Ack<Created>,
    },
    SetStatus {
        token: JobToken,
        status: JobStatus,
        at_ms: i64,
        /// A terminal status's outputs, encoded (`backend::encode_outputs`).
        outputs: Option<String>,
        ack: Ack<()>,
    },
    AppendLogs {
        token: JobToken,
        entries: Vec<LogEntry>,
        /// The entries' share of the log budget, given back when the command is dropped: after
        /// its commit, or never while it waits to be retried.
        _budget: OwnedSemaphorePermit,
    },
    /// Anything rarer: runs inside the batch's transaction and returns what to do once the
    /// batch's commit has succeeded or failed (typically, acknowledge its caller). It is given
    /// no transaction when the batch failed before reaching it, so that its caller still hears
    /// the batch's error rather than losing its answer.
    Run(Work),
    /// A `Run` whose closure has run: only its `Finish` is left, for a failed batch.
    Done(Finish),
}

/// The work of a `Run` command: given the batch's transaction (or none, when the batch failed
/// before reaching it), it returns what to do with the commit's outcome.
pub(crate) type Work = Box<dyn FnOnce(Option<&Transaction<'_>>) -> Finish + Send>;

/// Called with the outcome of the commit that included a `Run` command.
pub(crate) type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// The most commands one transaction takes, so that one commit never holds back the callers
/// queued behind it for long.
const MAX_BATCH: usize = 4096;

/// Owns the writer thread; dropping the last store handle closes the queue, which ends it.
#[derive(Debug)]
pub(crate) struct WriterHandle {
    thread: Option<JoinHandle<()>>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        // The queue's senders are gone by now (the handle is dropped with the last store), so the
        // thread drains what is left, commits it and ends; waiting keeps that commit from being
        // cut short by the process exiting.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(crate) fn spawn(
    conn: Connection,
    receiver: mpsc::Receiver<Command>,
    committed: Arc<Committed>,
) -> Result<WriterHandle, StoreError> {
    let thread = std::thread::Builder::new()
        .name("holt-sqlite-writer".into())
        .spawn(move || run(conn, receiver, &committed))
        .map_err(|e| StoreError::Database(Box::new(e)))?;
    Ok(WriterHandle {
        thread: Some(thread),
    })
}

/// How long the writer waits before trying a failed batch again, at first and at most.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// How long the writer gathers log lines when nothing else is waiting.
const LOG_GATHER: Duration = Duration::from_micros(200);

/// Most internal writes (logs, status changes) held while the database cannot be written; past
/// this the writer stops taking commands, so producers wait instead of memory growing. Log
/// entries are bounded in bytes besides, by the store's log budget.
const MAX_RETAINED: usize = 100_000;

/// What a command produced inside the transaction, acknowledged once the commit's fate is known.
enum Outcome {
    Token(Result<Created, StoreError>),
    Unit(Result<(), StoreError>),
    None,
}

fn run(mut conn: Connection, mut receiver: mpsc::Receiver<Command>, committed: &Committed) {
    // Internal writes of a batch that could not be committed, in order, waiting to be retried.
    let mut retained: Vec<Command> = Vec::new();
    // Why the database cannot be written, while it cannot.
    let mut failing: Option<String> = None;
    let mut delay = RETRY_FIRST;
    loop {
        let mut batch = std::mem::take(&mut retained);
        if failing.is_none() {
            if batch.is_empty() {
                match receiver.blocking_recv() {
                    Some(command) => batch.push(command),
                    None => return,
                }
            }
        } else {
            #[allow(
                clippy::disallowed_methods,
                reason = "the writer is a plain thread, not async code"
            )]
            std::thread::sleep(delay);
            delay = (delay * 2).min(RETRY_MAX);
        }
        // While failing, commands keep being taken (new jobs answered at once) up to a bound.
        let limit = if failing.is_some() {
            MAX_RETAINED
        } else {
            MAX_BATCH
        };
        // Every handle of the store is gone: nothing more will come.
        let mut closed = false;
        while batch.len() < limit {
            let command = match receiver.try_recv() {
                Ok(command) => command,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            };
            match (&failing, command) {
                // New jobs are refused at once while the database cannot be written: the client
                // hears so now, and nothing of the job exists.
                (Some(reason), Command::CreateJob { ack, .. }) => {
                    let _ = ack.send(Err(StoreError::Unavailable(reason.clone())));
                }
                (_, command) => batch.push(command),
            }
        }
        if batch.is_empty() {
            if closed {
                return;
            }
            continue;
        }
        // When nobody waits on this batch (it holds only log lines), a moment's pause lets a
        // chatty job hand over many more lines, so they share one transaction and one wake-up
        // of this thread instead of one each. A batch anyone waits on commits at once.
        if failing.is_none()
            && batch.len() < MAX_BATCH
            && batch
                .iter()
                .all(|c| matches!(c, Command::AppendLogs { .. }))
        {
            #[allow(
                clippy::disallowed_methods,
                reason = "the writer is a plain thread, not async code"
            )]
            std::thread::sleep(LOG_GATHER);
            while batch.len() < MAX_BATCH {
                let Ok(command) = receiver.try_recv() else {
                    break;
                };
                batch.push(command);
            }
        }
        match apply_batch(&mut conn, &mut batch) {
            Ok(outcomes) => {
                if let Some(reason) = failing.take() {
                    tracing::warn!(was = %reason, "the database can be written again");
                }
                delay = RETRY_FIRST;
                // Followers are told only now, after the commit: what wakes them is readable.
                committed.publish(&batch);
                acknowledge(batch, outcomes);
            }
            Err(reason) => {
                if failing.is_none() {
                    tracing::error!(error = %reason, "the database cannot be written; new jobs are refused and other writes are retried");
                }
                for command in batch {
                    match command {
                        Command::CreateJob { ack, .. } => {
                            let _ = ack.send(Err(StoreError::Unavailable(reason.clone())));
                        }
                        // A command the failure came before: its caller hears the failure.
                        Command::Run(work) => {
                            work(None)(Err(StoreError::Unavailable(reason.clone())))
                        }
                        Command::Done(finish) => {
                            finish(Err(StoreError::Unavailable(reason.clone())))
                        }
                        command @ (Command::SetStatus { .. } | Command::AppendLogs { .. }) => {
                            retained.push(command)
                        }
                    }
                }
                if closed {
                    // The store was dropped while the database still cannot be written: a
                    // process that is exiting cannot wait for the disk to have room again.
                    tracing::error!(writes = retained.len(), error = %reason, "the store closed while the database could not be written; these writes are lost");
                    return;
                }
                failing = Some(reason);
            }
        }
    }
}

fn acknowledge(batch: Vec<Command>, outcomes: Vec<Outcome>) {
    for (command, outcome) in batch.into_iter().zip(outcomes) {
        match (command, outcome) {
            (Command::CreateJob { ack, .. }, Outcome::Token(result)) => drop(ack.send(result)),
            (Command::SetStatus { ack, .. }, Outcome::Unit(result)) => drop(ack.send(result)),
            (Command::Done(finish), _) => finish(Ok(())),
            _ => {}
        }
    }
}

/// Whether an error means the database cannot be written at all (so the batch is retried
/// later), rather than that one command is wrong.
pub(crate) fn is_storage_failure(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::OutOfMemory
        )
    )
}

/// Applies a batch in one transaction and commits it. On `Err`, nothing of the batch is kept
/// and the commands are untouched but for `Run`, which has become `Done` (its closure ran).
fn apply_batch(conn: &mut Connection, batch: &mut [Command]) -> Result<Vec<Outcome>, String> {
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for command in batch.iter_mut() {
        let outcome = match command {
            Command::CreateJob { job, source, .. } => {
                Outcome::Token(step(insert_job(&tx, job, *source))?)
            }
            Command::SetStatus {
                token,
                status,
                at_ms,
                outputs,
                ..
            } => Outcome::Unit(step(update_status(
                &tx,
                *token,
                *status,
                *at_ms,
                outputs.as_deref(),
            ))?),
            // Written below, as chunks: one row per run of a job's entries in this batch.
            Command::AppendLogs { .. } => Outcome::None,
            Command::Run(_) => {
                // The closure runs once; what is left is its `Finish`, for the commit's outcome.
                let placeholder = Command::Done(Box::new(|_| {}));
                if let Command::Run(f) = std::mem::replace(command, placeholder) {
                    *command = Command::Done(f(Some(&tx)));
                }
                Outcome::None
            }
            Command::Done(_) => Outcome::None,
        };
        outcomes.push(outcome);
    }
    // A transaction becomes visible whole, so writing every append of the batch after the other
    // commands changes nothing a reader can see, and lets one row hold many lines.
    let mut by_job: BTreeMap<JobToken, Vec<&LogEntry>> = BTreeMap::new();
    for command in batch.iter() {
        if let Command::AppendLogs { token, entries, .. } = command {
            by_job.entry(*token).or_default().extend(entries.iter());
        }
    }
    if !by_job.is_empty() {
        // Preparing a statement fails only when the database itself does.
        let mut insert = tx.prepare_cached(CHUNK_INSERT).map_err(|e| e.to_string())?;
        for (token, entries) in by_job {
            for run in runs(&entries) {
                if let Err(e) = step(insert_chunk(&mut insert, token, run))? {
                    // Entries that are wrong in themselves (a bug) are dropped rather than
                    // blocking every other write behind them.
                    tracing::error!(job = %token, error = %e, "log entries dropped");
                }
            }
        }
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(outcomes)
}

/// Sorts a command's error: a storage failure fails the whole batch (`Err`), anything else is
/// the command's own result (`Ok(Err)`).
fn step<T>(result: Result<T, StoreError>) -> Result<Result<T, StoreError>, String> {
    match result {
        Err(StoreError::Unavailable(reason)) => Err(reason),
        other => Ok(other),
    }
}

pub(super) fn insert_job(
    tx: &Transaction<'_>,
    job: &NewJob,
    source: TriggerSource,
) -> Result<Created, StoreError> {
    if let Some(idem) = &job.idempotency {
        let found: Option<(String, i64, i64)> = tx
            .prepare_cached(
                "SELECT fingerprint, job_id, created_ms FROM idempotency WHERE key = ?1",
            )?
            .query_row([&idem.key], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        match found {
            Some((fingerprint, id, created_ms)) if created_ms >= idem.not_before_ms => {
                if fingerprint != idem.fingerprint {
                    return Err(StoreError::Conflict(
                        "this Idempotency-Key was used for a different request".into(),
                    ));
                }
                let token = JobToken::new(id as u64)
                    .ok_or_else(|| StoreError::Corrupt(format!("job id {id}")))?;
                return Ok(Created {
                    token,
                    fresh: false,
                });
            }
            Some(_) => {
                tx.prepare_cached("DELETE FROM idempotency WHERE key = ?1")?
                    .execute([&idem.key])?;
            }
            None => {}
        }
    }
    tx.prepare_cached(
        "INSERT INTO jobs (template, plan, variables, status, created_ms, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        job.template.as_str(),
        job.plan,
        encode_variables(&job.variables),
        JobStatus::Pending.code(),
        job.created_ms,
        source.code()
    ])?;
    let id = tx.last_insert_rowid();
    if let Some(idem) = &job.idempotency {
        // The primary key on `key` is what makes two concurrent requests unable to both create.
        tx.prepare_cached(
            "INSERT INTO idempotency (key, fingerprint, job_id, created_ms) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![idem.key, idem.fingerprint, id, job.created_ms])?;
    }
    let token =
        JobToken::new(id as u64).ok_or_else(|| StoreError::Corrupt(format!("job id {id}")))?;
    Ok(Created { token, fresh: true })
}

fn update_status(
    tx: &Transaction<'_>,
    token: JobToken,
    status: JobStatus,
    at_ms: i64,
    outputs: Option<&str>,
) -> Result<(), StoreError> {
    let id = token.id() as i64;
    let changed = if status == JobStatus::Executing {
        tx.prepare_cached("UPDATE jobs SET status = ?2, started_ms = ?3 WHERE id = ?1")?
            .execute(params![id, status.code(), at_ms])?
    } else if status.is_terminal() {
        // Outputs come only with a job's own end; an end recorded otherwise keeps none.
        tx.prepare_cached(
            "UPDATE jobs SET status = ?2, finished_ms = ?3, outputs = ?4 WHERE id = ?1",
        )?
        .execute(params![id, status.code(), at_ms, outputs])?
    } else {
        tx.prepare_cached("UPDATE jobs SET status = ?2 WHERE id = ?1")?
            .execute(params![id, status.code()])?
    };
    if changed == 0 {
        return Err(StoreError::Corrupt(format!("no job {token}")));
    }
    Ok(())
}

const CHUNK_INSERT: &str = "INSERT INTO log_chunks (job_id, first_seq, last_seq, body, entries) VALUES (?1, ?2, ?3, ?4, ?5)";

fn insert_chunk(
    stmt: &mut rusqlite::CachedStatement<'_>,
    token: JobToken,
    run: &[&LogEntry],
) -> Result<(), StoreError> {
    let (body, packed) = crate::backend::pack(run);
    stmt.execute(params![
        token.id() as i64,
        run[0].seq as i64,
        run[run.len() - 1].seq as i64,
        body,
        packed
    ])?;
    Ok(())
}
