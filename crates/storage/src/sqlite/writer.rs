//! The one writer: a thread that takes every command queued, applies them in one transaction,
//! commits, and only then acknowledges each caller (group commit).

use std::thread::JoinHandle;

use holt_domain::{JobStatus, JobToken, LogEntry};
use rusqlite::{Connection, Transaction, params};
use tokio::sync::{mpsc, oneshot};

use super::encode_variables;
use crate::{NewJob, StoreError};

type Ack<T> = oneshot::Sender<Result<T, StoreError>>;

/// Work for the writer. Commands are applied in the order they were sent.
pub(crate) enum Command {
    CreateJob {
        job: NewJob,
        ack: Ack<JobToken>,
    },
    SetStatus {
        token: JobToken,
        status: JobStatus,
        at_ms: i64,
        ack: Ack<()>,
    },
    AppendLogs {
        token: JobToken,
        entries: Vec<LogEntry>,
    },
    /// Anything rarer: runs inside the batch's transaction and returns what to do once the
    /// batch's commit has succeeded or failed (typically, acknowledge its caller).
    Run(Box<dyn FnOnce(&Transaction<'_>) -> Finish + Send>),
}

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
) -> Result<WriterHandle, StoreError> {
    let thread = std::thread::Builder::new()
        .name("holt-sqlite-writer".into())
        .spawn(move || run(conn, receiver))
        .map_err(|e| StoreError::Database(Box::new(e)))?;
    Ok(WriterHandle {
        thread: Some(thread),
    })
}

/// An acknowledgement to send once the batch's fate is known.
enum Pending {
    Token(Ack<JobToken>, Result<JobToken, StoreError>),
    Unit(Ack<()>, Result<(), StoreError>),
    Finish(Finish, Result<(), StoreError>),
}

fn run(mut conn: Connection, mut receiver: mpsc::Receiver<Command>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        let acks = apply_batch(&mut conn, batch.drain(..));
        for ack in acks {
            match ack {
                Pending::Token(ack, result) => drop(ack.send(result)),
                Pending::Unit(ack, result) => drop(ack.send(result)),
                Pending::Finish(finish, result) => finish(result),
            }
        }
    }
}

/// Applies a batch in one transaction. When the transaction cannot commit, every caller in it
/// is told so and nothing of it is kept.
fn apply_batch(conn: &mut Connection, batch: impl Iterator<Item = Command>) -> Vec<Pending> {
    let mut acks = Vec::new();
    let tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            let message = e.to_string();
            for command in batch {
                fail(command, &message, &mut acks);
            }
            return acks;
        }
    };
    let mut failure = None;
    for command in batch {
        match command {
            Command::CreateJob { job, ack } => {
                acks.push(Pending::Token(ack, insert_job(&tx, &job)))
            }
            Command::SetStatus {
                token,
                status,
                at_ms,
                ack,
            } => acks.push(Pending::Unit(ack, update_status(&tx, token, status, at_ms))),
            Command::AppendLogs { token, entries } => {
                if let Err(e) = insert_logs(&tx, token, &entries) {
                    // Nobody waits on a log append, so a failed one fails the batch: committing
                    // the rest would leave a gap in the job's sequence numbers.
                    failure.get_or_insert(e.to_string());
                }
            }
            Command::Run(f) => acks.push(Pending::Finish(f(&tx), Ok(()))),
        }
    }
    let outcome = match failure {
        Some(message) => Err(message),
        None => tx.commit().map_err(|e| e.to_string()),
    };
    if let Err(message) = outcome {
        for ack in &mut acks {
            match ack {
                Pending::Token(_, result) => *result = Err(database_error(&message)),
                Pending::Unit(_, result) => *result = Err(database_error(&message)),
                Pending::Finish(_, result) => *result = Err(database_error(&message)),
            }
        }
        tracing::error!(error = %message, "a write batch could not be committed");
    }
    acks
}

fn fail(command: Command, message: &str, acks: &mut Vec<Pending>) {
    match command {
        Command::CreateJob { ack, .. } => {
            acks.push(Pending::Token(ack, Err(database_error(message))))
        }
        Command::SetStatus { ack, .. } => {
            acks.push(Pending::Unit(ack, Err(database_error(message))))
        }
        // A `Run` that never ran is dropped with its acknowledgement, which its caller sees as
        // the store failing.
        Command::AppendLogs { .. } | Command::Run(_) => {}
    }
}

fn database_error(message: &str) -> StoreError {
    StoreError::Database(message.to_owned().into())
}

fn insert_job(tx: &Transaction<'_>, job: &NewJob) -> Result<JobToken, StoreError> {
    tx.prepare_cached(
        "INSERT INTO jobs (template, plan, variables, status, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        job.template.as_str(),
        job.plan,
        encode_variables(&job.variables),
        JobStatus::Pending.code(),
        job.created_ms
    ])?;
    let id = tx.last_insert_rowid();
    JobToken::new(id as u64).ok_or_else(|| StoreError::Corrupt(format!("job id {id}")))
}

fn update_status(
    tx: &Transaction<'_>,
    token: JobToken,
    status: JobStatus,
    at_ms: i64,
) -> Result<(), StoreError> {
    let sql = if status == JobStatus::Executing {
        "UPDATE jobs SET status = ?2, started_ms = ?3 WHERE id = ?1"
    } else if status.is_terminal() {
        "UPDATE jobs SET status = ?2, finished_ms = ?3 WHERE id = ?1"
    } else {
        "UPDATE jobs SET status = ?2 WHERE id = ?1"
    };
    let changed =
        tx.prepare_cached(sql)?
            .execute(params![token.id() as i64, status.code(), at_ms])?;
    if changed == 0 {
        return Err(StoreError::Corrupt(format!("no job {token}")));
    }
    Ok(())
}

fn insert_logs(
    tx: &Transaction<'_>,
    token: JobToken,
    entries: &[LogEntry],
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO log_entries (job_id, seq, level, scope, time_ms, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for entry in entries {
        stmt.execute(params![
            token.id() as i64,
            entry.seq as i64,
            entry.level.code(),
            entry.scope.encode(),
            entry.time_ms,
            entry.text
        ])?;
    }
    Ok(())
}
