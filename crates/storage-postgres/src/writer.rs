//! The one writer: a task that takes every command queued, applies them in one transaction,
//! commits, and only then acknowledges each caller and tells the watchers (group commit). The
//! transaction also notifies the database's channel, so the watchers of every other store on the
//! same database hear of the commit too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Object, Pool, Transaction};
use holt_domain::{InfraChange, Inventory, JobStatus, JobToken, LogEntry, TriggerSource};
use holt_storage::backend::{encode_variables, pack, runs};
use holt_storage::{
    Admitted, Created, Firing, NewJob, Policy, Recovery, RetentionRule, StoreError,
};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use crate::committed::{Committed, Event, payloads};
use crate::error::{db_error, describe, is_race, is_unavailable, pool_error};
use crate::{infra, row_to_job};

type Ack<T> = oneshot::Sender<Result<T, StoreError>>;

/// Work for the writer. Commands are applied in the order they were sent. Each is plain data,
/// so that a batch that lost a race with another node's transaction can be applied again.
#[derive(Debug)]
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
    Flush {
        ack: Ack<()>,
    },
    DeleteFinished {
        rule: RetentionRule,
        limit: usize,
        ack: Ack<usize>,
    },
    PruneIdempotency {
        before_ms: i64,
        ack: Ack<usize>,
    },
    ChangeInventory {
        change: InfraChange,
        ack: Ack<Inventory>,
    },
    Recover {
        message: String,
        at_ms: i64,
        ack: Ack<Recovery>,
    },
    /// A trigger on a node of a cluster: admission under the queue's and the template's locks,
    /// then the job, in the batch's transaction.
    Admit {
        job: NewJob,
        policy: Policy,
        source: TriggerSource,
        ack: Ack<Admitted>,
    },
    /// A schedule's slot: its firing's row and what it produced (see `schedules::apply`).
    Fire {
        firing: Firing,
        fire: crate::schedules::Fire,
        ack: Ack<Option<Admitted>>,
    },
}

/// What a command produced inside the transaction, answered once the commit's fate is known.
enum Outcome {
    Created(Result<Created, StoreError>),
    Unit(Result<(), StoreError>),
    Count(Result<usize, StoreError>),
    Inventory(Result<Inventory, StoreError>),
    Recovery(Result<Recovery, StoreError>),
    Admitted(Result<Admitted, StoreError>),
    Fired(Result<Option<Admitted>, StoreError>),
    None,
}

impl Command {
    /// Answers the caller with what the committed transaction produced.
    fn answer(self, outcome: Outcome) {
        match (self, outcome) {
            (Command::CreateJob { ack, .. }, Outcome::Created(r)) => drop(ack.send(r)),
            (Command::SetStatus { ack, .. }, Outcome::Unit(r)) => drop(ack.send(r)),
            (Command::Flush { ack }, _) => drop(ack.send(Ok(()))),
            (Command::DeleteFinished { ack, .. }, Outcome::Count(r)) => drop(ack.send(r)),
            (Command::PruneIdempotency { ack, .. }, Outcome::Count(r)) => drop(ack.send(r)),
            (Command::ChangeInventory { ack, .. }, Outcome::Inventory(r)) => drop(ack.send(r)),
            (Command::Recover { ack, .. }, Outcome::Recovery(r)) => drop(ack.send(r)),
            (Command::Admit { ack, .. }, Outcome::Admitted(r)) => drop(ack.send(r)),
            (Command::Fire { ack, .. }, Outcome::Fired(r)) => drop(ack.send(r)),
            _ => {}
        }
    }

    /// The outcome of this command when its own statement failed (its savepoint rolled back).
    fn failed(&self, e: StoreError) -> Outcome {
        match self {
            Command::CreateJob { .. } => Outcome::Created(Err(e)),
            Command::SetStatus { .. } | Command::Flush { .. } => Outcome::Unit(Err(e)),
            Command::DeleteFinished { .. } | Command::PruneIdempotency { .. } => {
                Outcome::Count(Err(e))
            }
            Command::ChangeInventory { .. } => Outcome::Inventory(Err(e)),
            Command::Recover { .. } => Outcome::Recovery(Err(e)),
            Command::Admit { .. } => Outcome::Admitted(Err(e)),
            Command::Fire { .. } => Outcome::Fired(Err(e)),
            Command::AppendLogs { .. } => Outcome::None,
        }
    }

    /// Answers the caller of a command whose batch could not be committed, or hands the
    /// command back to be retried: internal writes (logs, status changes) are kept until the
    /// database can be written again, since the job that made them goes on.
    fn fail(self, reason: &str) -> Option<Command> {
        let e = || StoreError::Unavailable(reason.to_owned());
        match self {
            Command::CreateJob { ack, .. } => drop(ack.send(Err(e()))),
            Command::Flush { ack } => drop(ack.send(Err(e()))),
            Command::DeleteFinished { ack, .. } | Command::PruneIdempotency { ack, .. } => {
                drop(ack.send(Err(e())))
            }
            Command::ChangeInventory { ack, .. } => drop(ack.send(Err(e()))),
            Command::Recover { ack, .. } => drop(ack.send(Err(e()))),
            Command::Admit { ack, .. } => drop(ack.send(Err(e()))),
            Command::Fire { ack, .. } => drop(ack.send(Err(e()))),
            command @ (Command::SetStatus { .. } | Command::AppendLogs { .. }) => {
                return Some(command);
            }
        }
        None
    }
}

/// The most commands one transaction takes, so that one commit never holds back the callers
/// queued behind it for long.
const MAX_BATCH: usize = 4096;

/// How long the writer waits before trying a failed batch again, at first and at most.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// Most internal writes (logs, status changes) held while the database cannot be written; past
/// this the writer stops taking commands, so producers wait instead of memory growing. Log
/// entries are bounded in bytes besides, by the store's log budget.
const MAX_RETAINED: usize = 100_000;

/// How many times in a row a batch is applied again after losing a race (a deadlock with
/// another node's transaction) before it counts as a failure and waits like one.
const MAX_RACES: usize = 8;

/// The writer's loop; it ends once every handle of the store is gone and the queue is drained.
pub(crate) async fn run(
    pool: Pool,
    mut receiver: mpsc::Receiver<Command>,
    committed: Arc<Committed>,
    channel: String,
) {
    // Internal writes of a batch that could not be committed, in order, waiting to be retried.
    let mut retained: Vec<Command> = Vec::new();
    // Why the database cannot be written, while it cannot.
    let mut failing: Option<String> = None;
    let mut delay = RETRY_FIRST;
    loop {
        let mut batch = std::mem::take(&mut retained);
        if failing.is_none() {
            if batch.is_empty() {
                match receiver.recv().await {
                    Some(command) => batch.push(command),
                    None => return,
                }
            }
        } else {
            // A pause before trying a database that just failed again, growing while it fails.
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
        // While failing, commands keep being taken (new jobs answered at once) up to a bound.
        let limit = if failing.is_some() {
            MAX_RETAINED
        } else {
            MAX_BATCH
        };
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
                (Some(reason), Command::Admit { ack, .. }) => {
                    let _ = ack.send(Err(StoreError::Unavailable(reason.clone())));
                }
                (Some(reason), Command::Fire { ack, .. }) => {
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
        match commit(&pool, &batch, &channel).await {
            Ok((outcomes, events)) => {
                if let Some(reason) = failing.take() {
                    tracing::warn!(was = %reason, "the database can be written again");
                }
                delay = RETRY_FIRST;
                // Followers are told only now, after the commit: what wakes them is readable.
                committed.publish(&events);
                for (command, outcome) in batch.into_iter().zip(outcomes) {
                    command.answer(outcome);
                }
            }
            Err(reason) => {
                if failing.is_none() {
                    tracing::error!(error = %reason, "the database cannot be written; new jobs are refused and other writes are retried");
                }
                retained = batch
                    .into_iter()
                    .filter_map(|command| command.fail(&reason))
                    .collect();
                if closed {
                    tracing::error!(writes = retained.len(), error = %reason, "the store closed while the database could not be written; these writes are lost");
                    return;
                }
                failing = Some(reason);
            }
        }
    }
}

/// Why an attempt at a batch failed.
enum Attempt {
    /// The database cannot be reached or written.
    Unavailable(String),
    /// The transaction lost a race with another one; applying it again is the answer.
    Race,
    /// A statement of one command failed, which aborts the whole transaction; applied again
    /// with each command in a savepoint, the command alone fails.
    Statement(String),
}

impl From<tokio_postgres::Error> for Attempt {
    fn from(e: tokio_postgres::Error) -> Self {
        if is_race(&e) {
            Attempt::Race
        } else if is_unavailable(&e) {
            Attempt::Unavailable(describe(&e))
        } else {
            Attempt::Statement(describe(&e))
        }
    }
}

/// Commits a batch: first as one plain transaction; after a statement error, again with each
/// command in its own savepoint, so that one bad command fails alone; after a lost race, again
/// as it was. On `Err`, nothing of the batch is kept.
async fn commit(
    pool: &Pool,
    batch: &[Command],
    channel: &str,
) -> Result<(Vec<Outcome>, Vec<Event>), String> {
    let mut client = pool.get().await.map_err(|e| match pool_error(e) {
        // The reason alone: callers hear it inside `StoreError::Unavailable` again.
        StoreError::Unavailable(reason) => reason,
        other => other.to_string(),
    })?;
    let mut isolate = false;
    let mut races = 0;
    loop {
        match attempt(&mut client, batch, channel, isolate).await {
            Ok(done) => return Ok(done),
            Err(Attempt::Race) if races < MAX_RACES => races += 1,
            Err(Attempt::Race) => {
                return Err(format!(
                    "the transaction lost to concurrent ones {MAX_RACES} times in a row"
                ));
            }
            Err(Attempt::Statement(reason)) if !isolate => {
                tracing::debug!(error = %reason, "a statement failed; applying the batch command by command");
                isolate = true;
            }
            Err(Attempt::Statement(reason) | Attempt::Unavailable(reason)) => return Err(reason),
        }
    }
}

/// One try at a batch, in one transaction: every command in order (each in a savepoint when
/// `isolate`), then the log chunks, then the notices, then the commit.
async fn attempt(
    client: &mut Object,
    batch: &[Command],
    channel: &str,
    isolate: bool,
) -> Result<(Vec<Outcome>, Vec<Event>), Attempt> {
    let mut tx = client.transaction().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut events = Vec::new();
    let mut queue = crate::cluster::QueueCount::default();
    for command in batch {
        if !isolate {
            outcomes.push(apply(&tx, command, &mut events, &mut queue).await?);
            continue;
        }
        let mark = events.len();
        let savepoint = tx.savepoint("holt_command").await?;
        // A command undone by its savepoint leaves the count as it found it.
        let counted = queue;
        match apply(&savepoint, command, &mut events, &mut queue).await {
            Ok(outcome) => {
                savepoint.commit().await?;
                outcomes.push(outcome);
            }
            Err(e) if is_race(&e) || is_unavailable(&e) => return Err(e.into()),
            Err(e) => {
                savepoint.rollback().await?;
                queue = counted;
                events.truncate(mark);
                outcomes.push(command.failed(db_error(e)));
            }
        }
    }
    // A transaction becomes visible whole, so writing every append of the batch after the other
    // commands changes nothing a reader can see, and lets one row hold many lines.
    let mut by_job: BTreeMap<JobToken, Vec<&LogEntry>> = BTreeMap::new();
    for command in batch {
        if let Command::AppendLogs { token, entries, .. } = command {
            by_job.entry(*token).or_default().extend(entries.iter());
        }
    }
    for (token, entries) in by_job {
        let written = if isolate {
            let savepoint = tx.savepoint("holt_chunks").await?;
            match write_chunks(&savepoint, token, &entries).await {
                Ok(written) => {
                    savepoint.commit().await?;
                    written
                }
                Err(e) if is_race(&e) || is_unavailable(&e) => return Err(e.into()),
                Err(e) => {
                    savepoint.rollback().await?;
                    // Entries that are wrong in themselves (a bug) are dropped rather than
                    // blocking every other write behind them.
                    tracing::error!(job = %token, error = %describe(&e), "log entries dropped");
                    false
                }
            }
        } else {
            write_chunks(&tx, token, &entries).await?
        };
        if written {
            let next = entries.iter().map(|e| e.seq + 1).max().unwrap_or(0);
            events.push(Event::Logged { token, next });
        } else {
            tracing::error!(job = %token, "log entries of a job that does not exist dropped");
        }
    }
    // A job's log is told before its end, as the commands were sent: a watch moves to the last
    // entry and then closes.
    events.sort_by_key(|event| matches!(event, Event::Status { .. }));
    // Delivered by PostgreSQL at the commit, and only if it commits.
    for payload in payloads(&events) {
        let notify = tx.prepare_cached("SELECT pg_notify($1, $2)").await?;
        tx.execute(&notify, &[&channel, &payload]).await?;
    }
    tx.commit().await?;
    Ok((outcomes, events))
}

/// Applies one command inside the transaction. `Err` is a statement that failed; a command
/// that is refused for what it asks (an unknown job, a reused key) is an `Ok` outcome holding
/// the refusal, and wrote nothing.
async fn apply(
    tx: &Transaction<'_>,
    command: &Command,
    events: &mut Vec<Event>,
    queue: &mut crate::cluster::QueueCount,
) -> Result<Outcome, tokio_postgres::Error> {
    Ok(match command {
        Command::CreateJob { job, source, .. } => {
            Outcome::Created(create_job_from(tx, job, *source).await?)
        }
        Command::SetStatus {
            token,
            status,
            at_ms,
            outputs,
            ..
        } => {
            let result = set_status(tx, *token, *status, *at_ms, outputs.as_deref()).await?;
            if result.is_ok() {
                events.push(Event::Status {
                    token: *token,
                    status: *status,
                });
            }
            Outcome::Unit(result)
        }
        Command::AppendLogs { .. } | Command::Flush { .. } => Outcome::None,
        Command::DeleteFinished { rule, limit, .. } => {
            Outcome::Count(Ok(delete_finished(tx, rule, *limit).await?))
        }
        Command::PruneIdempotency { before_ms, .. } => {
            let statement = tx
                .prepare_cached("DELETE FROM idempotency WHERE created_ms < $1")
                .await?;
            Outcome::Count(Ok(tx.execute(&statement, &[before_ms]).await? as usize))
        }
        Command::ChangeInventory { change, .. } => {
            Outcome::Inventory(infra::change(tx, change.clone()).await?)
        }
        Command::Recover { message, at_ms, .. } => {
            Outcome::Recovery(recover(tx, message, *at_ms, events).await?)
        }
        Command::Admit {
            job,
            policy,
            source,
            ..
        } => {
            let admitted = crate::cluster::admit(tx, job, policy, *source, queue).await?;
            if let Ok(Admitted::Created(token)) = admitted {
                events.push(Event::Created { token });
            }
            Outcome::Admitted(admitted)
        }
        Command::Fire { firing, fire, .. } => {
            Outcome::Fired(crate::schedules::apply(tx, firing, fire, events, queue).await?)
        }
    })
}

/// A job id as a token; ids come from an identity column, so they are positive.
pub(crate) fn token_of(id: i64) -> Result<JobToken, StoreError> {
    u64::try_from(id)
        .ok()
        .and_then(JobToken::new)
        .ok_or_else(|| StoreError::Corrupt(format!("job id {id}")))
}

pub(crate) async fn create_job_from(
    tx: &Transaction<'_>,
    job: &NewJob,
    source: TriggerSource,
) -> Result<Result<Created, StoreError>, tokio_postgres::Error> {
    if let Some(idem) = &job.idempotency
        && let Some(answer) = used_key(tx, idem).await?
    {
        return Ok(answer);
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO jobs (template, plan, variables, status, created_ms, source)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .await?;
    let id: i64 = tx
        .query_one(
            &insert,
            &[
                &job.template.as_str(),
                &job.plan,
                &encode_variables(&job.variables),
                &status_code(JobStatus::Pending),
                &job.created_ms,
                &(source.code() as i16),
            ],
        )
        .await?
        .get(0);
    if let Some(idem) = &job.idempotency {
        // The primary key on `key` is what makes two concurrent requests unable to both create,
        // also on two nodes: the second waits for the first's commit and then inserts nothing.
        let record = tx
            .prepare_cached(
                "INSERT INTO idempotency (key, fingerprint, job_id, created_ms)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
            )
            .await?;
        let recorded = tx
            .execute(
                &record,
                &[&idem.key, &idem.fingerprint, &id, &job.created_ms],
            )
            .await?;
        if recorded == 0 {
            // Another transaction recorded the key meanwhile and has committed: its job stands
            // for the request, and this one is undone.
            let undo = tx.prepare_cached("DELETE FROM jobs WHERE id = $1").await?;
            tx.execute(&undo, &[&id]).await?;
            return Ok(used_key(tx, idem).await?.unwrap_or_else(|| {
                Err(StoreError::Conflict(
                    "this Idempotency-Key was being used by another request; retry".into(),
                ))
            }));
        }
    }
    Ok(token_of(id).map(|token| Created { token, fresh: true }))
}

/// The answer for an idempotency key used within its window: the first job for the same
/// request, a conflict for another. A use from before the window is forgotten here.
pub(crate) async fn used_key(
    tx: &Transaction<'_>,
    idem: &holt_storage::Idempotency,
) -> Result<Option<Result<Created, StoreError>>, tokio_postgres::Error> {
    let find = tx
        .prepare_cached("SELECT fingerprint, job_id, created_ms FROM idempotency WHERE key = $1")
        .await?;
    let Some(row) = tx.query_opt(&find, &[&idem.key]).await? else {
        return Ok(None);
    };
    let (fingerprint, id, created_ms): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
    if created_ms < idem.not_before_ms {
        let forget = tx
            .prepare_cached("DELETE FROM idempotency WHERE key = $1")
            .await?;
        tx.execute(&forget, &[&idem.key]).await?;
        return Ok(None);
    }
    if fingerprint != idem.fingerprint {
        return Ok(Some(Err(StoreError::Conflict(
            "this Idempotency-Key was used for a different request".into(),
        ))));
    }
    Ok(Some(token_of(id).map(|token| Created {
        token,
        fresh: false,
    })))
}

/// A status as stored.
pub(crate) fn status_code(status: JobStatus) -> i16 {
    // Status codes are small (0 to 4).
    status.code() as i16
}

async fn set_status(
    tx: &Transaction<'_>,
    token: JobToken,
    status: JobStatus,
    at_ms: i64,
    outputs: Option<&str>,
) -> Result<Result<(), StoreError>, tokio_postgres::Error> {
    let (id, code) = (token.id() as i64, status_code(status));
    let changed = if status == JobStatus::Executing {
        let sql = "UPDATE jobs SET status = $2, started_ms = $3 WHERE id = $1";
        let statement = tx.prepare_cached(sql).await?;
        tx.execute(&statement, &[&id, &code, &at_ms]).await?
    } else if status.is_terminal() {
        // Outputs come only with a job's own end; an end recorded otherwise keeps none.
        let sql = "UPDATE jobs SET status = $2, finished_ms = $3, outputs = $4 WHERE id = $1";
        let statement = tx.prepare_cached(sql).await?;
        tx.execute(&statement, &[&id, &code, &at_ms, &outputs])
            .await?
    } else {
        let sql = "UPDATE jobs SET status = $2 WHERE id = $1";
        let statement = tx.prepare_cached(sql).await?;
        tx.execute(&statement, &[&id, &code]).await?
    };
    if changed == 0 {
        return Ok(Err(StoreError::Corrupt(format!("no job {token}"))));
    }
    Ok(Ok(()))
}

/// Writes a job's entries as chunks; false (and nothing written) when the job does not exist.
pub(crate) async fn write_chunks(
    tx: &Transaction<'_>,
    token: JobToken,
    entries: &[&LogEntry],
) -> Result<bool, tokio_postgres::Error> {
    // The job's row is locked for the insert, so retention on another node cannot delete it
    // in between.
    let exists = tx
        .prepare_cached("SELECT 1 FROM jobs WHERE id = $1 FOR KEY SHARE")
        .await?;
    if tx
        .query_opt(&exists, &[&(token.id() as i64)])
        .await?
        .is_none()
    {
        return Ok(false);
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO log_chunks (job_id, first_seq, last_seq, body, entries)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    for run in runs(entries) {
        let (body, packed) = pack(run);
        tx.execute(
            &insert,
            &[
                &(token.id() as i64),
                &(run[0].seq as i64),
                &(run[run.len() - 1].seq as i64),
                &body,
                &packed,
            ],
        )
        .await?;
    }
    Ok(true)
}

async fn delete_finished(
    tx: &Transaction<'_>,
    rule: &RetentionRule,
    limit: usize,
) -> Result<usize, tokio_postgres::Error> {
    // Only finished jobs are selected, so a running job is never touched; their logs and
    // idempotency keys go with them (ON DELETE CASCADE).
    let statement = tx
        .prepare_cached(
            "DELETE FROM jobs WHERE id IN (
                 SELECT id FROM jobs
                 WHERE finished_ms IS NOT NULL AND finished_ms < $1 AND status IN (2, 3, 4)
                   AND ($2::text IS NULL OR template = $2)
                   AND NOT (template = ANY ($3))
                 ORDER BY finished_ms LIMIT $4)",
        )
        .await?;
    let template = rule.template.as_ref().map(|t| t.as_str());
    let except: Vec<&str> = rule.except.iter().map(|t| t.as_str()).collect();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let deleted = tx
        .execute(&statement, &[&rule.before_ms, &template, &except, &limit])
        .await?;
    Ok(deleted as usize)
}

async fn recover(
    tx: &Transaction<'_>,
    message: &str,
    at_ms: i64,
    events: &mut Vec<Event>,
) -> Result<Result<Recovery, StoreError>, tokio_postgres::Error> {
    // `status IN (0, 1)` lets PostgreSQL use the partial index of unfinished jobs.
    let executing = tx
        .query(
            "SELECT id FROM jobs WHERE status IN (0, 1) AND status = $1 ORDER BY id FOR UPDATE",
            &[&status_code(JobStatus::Executing)],
        )
        .await?;
    let mut interrupted = Vec::with_capacity(executing.len());
    for row in executing {
        let id: i64 = row.get(0);
        let token = match token_of(id) {
            Ok(token) => token,
            Err(e) => return Ok(Err(e)),
        };
        crate::cluster::end_with_line(tx, token, message, at_ms, events).await?;
        interrupted.push(token);
    }
    let pending = tx
        .query(
            "SELECT id, template, plan, variables, status, created_ms, started_ms, finished_ms,
                    source
             FROM jobs WHERE status IN (0, 1) AND status = $1 ORDER BY id",
            &[&status_code(JobStatus::Pending)],
        )
        .await?;
    Ok(pending
        .iter()
        .map(row_to_job)
        .collect::<Result<Vec<_>, _>>()
        .map(|pending| Recovery {
            interrupted,
            pending,
        }))
}
