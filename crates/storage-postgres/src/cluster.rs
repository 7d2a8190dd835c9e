//! The cluster side of the PostgreSQL store: node leases, admission and claims counted over
//! every node, fenced finishes, cancel requests, and status watches fed by notifications.
//!
//! Locks, so that every decision is exact across nodes:
//! - admission takes the queue's advisory lock (every trigger of the cluster in turn; the
//!   writer batches triggers, so one transaction holds it for many) and, for a template with a
//!   limit, that template's advisory lock;
//! - a claim locks the pending rows it looks at (`FOR UPDATE SKIP LOCKED`, so claimers never
//!   wait on each other's rows) and the advisory locks of the limited templates among them,
//!   always in name order so that two claimers cannot deadlock;
//! - a job's end is accepted only from the lease generation that claimed it.
//!
//! Lease times are the database's clock (`now()`), so nodes whose clocks differ agree.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use holt_domain::{
    JobStatus, JobToken, LogEntry, LogLevel, OnLimit, Outputs, ScopePath, TemplateName,
    TriggerSource,
};
use holt_storage::backend::encode_outputs;
use holt_storage::{
    Admitted, CancelRequest, ClusterStore, JobRecord, Lease, NewJob, Policy, StoreError,
};
use tokio::sync::{Notify, broadcast, watch};

use crate::committed::{Event, payloads};
use crate::error::db_error;
use crate::writer::{Command, create_job_from, status_code, token_of, used_key, write_chunks};
use crate::{PgStore, row_to_job, status_from};

/// The advisory lock class of Holt's cluster locks (the second key is the lock's own).
const LOCK_CLASS: i32 = 0x686f;
/// The queue's lock: admission decides on the number of pending jobs under it.
const QUEUE_LOCK: i32 = 0;

/// How many pending jobs a claim looks at per free slot, beyond which jobs blocked by their
/// template's limit are not looked past.
const LOOK_AHEAD: usize = 8;

/// The last line of a job still executing when its node gave its lease back (a node leaves
/// once its jobs have ended, so this is for a job whose end could not be recorded).
const LEFT_MESSAGE: &str = "The node running this job left the cluster before the job ended.";

const PENDING: i16 = 0;
const EXECUTING: i16 = 1;

/// Milliseconds since the epoch, by the database's clock.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// Takes the queue's lock, held to the transaction's end.
pub(crate) async fn lock_queue(tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1, $2)")
        .await?;
    tx.execute(&lock, &[&LOCK_CLASS, &QUEUE_LOCK]).await?;
    Ok(())
}

/// Takes a template's lock, by its name's hash (two names sharing a hash share a lock, which
/// costs only waiting).
async fn lock_template(tx: &Transaction<'_>, template: &str) -> Result<(), tokio_postgres::Error> {
    let statement = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .await?;
    tx.execute(&statement, &[&LOCK_CLASS, &template]).await?;
    Ok(())
}

/// The pending jobs as one writer transaction counts them: read once, under the queue's lock,
/// then kept up to date by the transaction's own admissions, so that a batch of triggers counts
/// the queue once rather than once per trigger.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct QueueCount(Option<(i64, i64)>);

/// Admission and the new job, inside the writer's transaction (see `Command::Admit`).
pub(crate) async fn admit(
    tx: &Transaction<'_>,
    job: &NewJob,
    policy: &Policy,
    source: TriggerSource,
    queue: &mut QueueCount,
) -> Result<Result<Admitted, StoreError>, tokio_postgres::Error> {
    // A retried trigger gets its job back before anything else is looked at, as on one node.
    if let Some(idem) = &job.idempotency
        && let Some(answer) = used_key(tx, idem).await?
    {
        return Ok(answer.map(|created| Admitted::Existing(created.token)));
    }
    let max = i64::try_from(policy.max_pending).unwrap_or(i64::MAX);
    // The count is `(pending, up_to)`: exact below `up_to`, "at least" at it. Counting stops
    // at the limit, so a long queue costs no more than the limit to count.
    let pending = match queue.0 {
        Some((pending, up_to)) if pending < up_to || up_to >= max => pending,
        known => {
            if known.is_none() {
                // Held to the transaction's end: no other node's trigger is decided meanwhile,
                // so the count stays true but for claims, which only make it smaller.
                let lock = tx
                    .prepare_cached("SELECT pg_advisory_xact_lock($1, $2)")
                    .await?;
                tx.execute(&lock, &[&LOCK_CLASS, &QUEUE_LOCK]).await?;
            }
            let count = tx
                .prepare_cached(
                    "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE status IN (0, 1)
                     AND status = 0 LIMIT $1) AS pending",
                )
                .await?;
            let pending: i64 = tx.query_one(&count, &[&max]).await?.get(0);
            queue.0 = Some((pending, max));
            pending
        }
    };
    if pending >= max {
        return Ok(Ok(Admitted::QueueFull));
    }
    // A keyed trigger is exempt from the template's policy (the engine gives no limit), not
    // from the queue's.
    if let Some(limit) = policy.max_concurrent {
        let template = job.template.as_str();
        lock_template(tx, template).await?;
        let waiting = tx
            .prepare_cached(
                "SELECT id FROM jobs WHERE status IN (0, 1) AND template = $1 AND status = 0
                 ORDER BY id LIMIT 1",
            )
            .await?;
        let waiting: Option<i64> = tx
            .query_opt(&waiting, &[&template])
            .await?
            .map(|r| r.get(0));
        match policy.on_limit {
            OnLimit::Queue => {}
            OnLimit::SkipIfPending => {
                if let Some(id) = waiting {
                    return Ok(token_of(id).map(Admitted::Existing));
                }
            }
            OnLimit::Reject => {
                let running = tx
                    .prepare_cached(
                        "SELECT count(*) FROM jobs WHERE status IN (0, 1) AND template = $1
                         AND status = 1",
                    )
                    .await?;
                let running: i64 = tx.query_one(&running, &[&template]).await?.get(0);
                if waiting.is_some() || running >= i64::from(limit) {
                    return Ok(Ok(Admitted::AtLimit));
                }
            }
        }
    }
    let created = create_job_from(tx, job, source).await?;
    if let Ok(created) = &created
        && created.fresh
        && let Some((count, up_to)) = &mut queue.0
    {
        *count += 1;
        *up_to = (*up_to).max(*count);
    }
    Ok(created.map(|created| {
        if created.fresh {
            Admitted::Created(created.token)
        } else {
            Admitted::Existing(created.token)
        }
    }))
}

/// Ends the executing jobs owned by `generations` with `message`, in `tx`.
async fn settle_jobs(
    tx: &Transaction<'_>,
    generations: &[i64],
    message: &str,
    events: &mut Vec<Event>,
) -> Result<Vec<JobToken>, tokio_postgres::Error> {
    if generations.is_empty() {
        return Ok(Vec::new());
    }
    let rows = tx
        .query(
            &format!(
                "SELECT id, {NOW_MS} FROM jobs WHERE owner = ANY ($1) AND status IN (0, 1)
                 ORDER BY id FOR UPDATE"
            ),
            &[&generations],
        )
        .await?;
    let mut settled = Vec::with_capacity(rows.len());
    for row in rows {
        let (id, now_ms): (i64, i64) = (row.get(0), row.get(1));
        let Ok(token) = token_of(id) else { continue };
        end_with_line(tx, token, message, now_ms, events).await?;
        settled.push(token);
    }
    Ok(settled)
}

/// Writes `message` as a job's last line and ends it `Error`, no node's any more.
pub(crate) async fn end_with_line(
    tx: &Transaction<'_>,
    token: JobToken,
    message: &str,
    now_ms: i64,
    events: &mut Vec<Event>,
) -> Result<(), tokio_postgres::Error> {
    let id = token.id() as i64;
    let next: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(last_seq) + 1, 0) FROM log_chunks WHERE job_id = $1",
            &[&id],
        )
        .await?
        .get(0);
    let entry = LogEntry {
        seq: next as u64,
        level: LogLevel::Error,
        scope: ScopePath::root(),
        time_ms: now_ms,
        text: message.to_owned(),
    };
    write_chunks(tx, token, &[&entry]).await?;
    tx.execute(
        "UPDATE jobs SET status = $2, finished_ms = $3, owner = NULL WHERE id = $1",
        &[&id, &status_code(JobStatus::Error), &now_ms],
    )
    .await?;
    events.push(Event::Logged {
        token,
        next: entry.seq + 1,
    });
    events.push(Event::Status {
        token,
        status: JobStatus::Error,
    });
    Ok(())
}

impl PgStore {
    /// Runs `work` in a transaction of its own on a pool connection, notifies the events it
    /// produced with the commit, and tells this store's watchers after it.
    pub(crate) async fn transact<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        F: for<'a> FnOnce(
            &'a Transaction<'a>,
            &'a mut Vec<Event>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send + 'a>,
        >,
    {
        let mut client = self
            .cluster_pool
            .get()
            .await
            .map_err(crate::error::pool_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        let mut events = Vec::new();
        let value = work(&tx, &mut events).await.map_err(db_error)?;
        for payload in payloads(&events) {
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&self.channel.as_ref(), &payload],
            )
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        self.committed.publish(&events);
        Ok(value)
    }
}

#[async_trait]
impl ClusterStore for PgStore {
    async fn join(
        &self,
        node: &str,
        duration: Duration,
        message: &str,
    ) -> Result<Lease, StoreError> {
        let node = node.to_owned();
        let message = message.to_owned();
        let seconds = duration.as_secs_f64();
        self.transact(move |tx, events| {
            Box::pin(async move {
                // A node of the same name that is starting again is not running any more: its
                // jobs are settled now rather than when its lease runs out.
                let old: Vec<i64> = tx
                    .query(
                        "DELETE FROM nodes WHERE name = $1 RETURNING generation",
                        &[&node],
                    )
                    .await?
                    .iter()
                    .map(|row| row.get(0))
                    .collect();
                settle_jobs(tx, &old, &message, events).await?;
                let generation: i64 = tx
                    .query_one(
                        "INSERT INTO nodes (name, expires_at)
                         VALUES ($1, now() + make_interval(secs => $2)) RETURNING generation",
                        &[&node, &seconds],
                    )
                    .await?
                    .get(0);
                Ok(Lease {
                    node: node.clone(),
                    generation,
                })
            })
        })
        .await
    }

    async fn renew(&self, lease: &Lease, duration: Duration) -> Result<bool, StoreError> {
        let client = self
            .cluster_pool
            .get()
            .await
            .map_err(crate::error::pool_error)?;
        let renewed = client
            .execute(
                "UPDATE nodes SET expires_at = now() + make_interval(secs => $2)
                 WHERE generation = $1 AND expires_at > now()",
                &[&lease.generation, &duration.as_secs_f64()],
            )
            .await
            .map_err(db_error)?;
        Ok(renewed == 1)
    }

    async fn leave(&self, lease: &Lease) -> Result<(), StoreError> {
        let generation = lease.generation;
        let message = LEFT_MESSAGE;
        self.transact(move |tx, events| {
            Box::pin(async move {
                tx.execute("DELETE FROM nodes WHERE generation = $1", &[&generation])
                    .await?;
                settle_jobs(tx, &[generation], message, events).await?;
                Ok(())
            })
        })
        .await
    }

    async fn settle_expired(&self, message: &str) -> Result<Vec<JobToken>, StoreError> {
        let message = message.to_owned();
        self.transact(move |tx, events| {
            Box::pin(async move {
                // Deleting the rows locks them: two nodes settling at once settle each lease
                // once.
                let expired: Vec<i64> = tx
                    .query(
                        "DELETE FROM nodes WHERE expires_at <= now() RETURNING generation",
                        &[],
                    )
                    .await?
                    .iter()
                    .map(|row| row.get(0))
                    .collect();
                settle_jobs(tx, &expired, &message, events).await
            })
        })
        .await
    }

    async fn admit_scheduled(
        &self,
        firing: &holt_storage::Firing,
        job: NewJob,
        policy: &Policy,
    ) -> Result<Option<Admitted>, StoreError> {
        self.fire(firing, crate::schedules::Fire::Admit(job, policy.clone()))
            .await
    }

    async fn admit(
        &self,
        job: NewJob,
        policy: &Policy,
        source: TriggerSource,
    ) -> Result<Admitted, StoreError> {
        let policy = policy.clone();
        self.request(|ack| Command::Admit {
            job,
            policy,
            source,
            ack,
        })
        .await
    }

    async fn claim(
        &self,
        lease: &Lease,
        room: usize,
        limits: &HashMap<TemplateName, u32>,
    ) -> Result<Vec<JobRecord>, StoreError> {
        if room == 0 {
            return Ok(Vec::new());
        }
        let generation = lease.generation;
        let limits: HashMap<String, i64> = limits
            .iter()
            .map(|(name, limit)| (name.as_str().to_owned(), i64::from(*limit)))
            .collect();
        let look =
            i64::try_from(room.saturating_mul(LOOK_AHEAD).saturating_add(16)).unwrap_or(i64::MAX);
        self.transact(move |tx, events| {
            Box::pin(async move {
                // The lease is held for the claim's whole transaction, so it cannot be settled
                // half-way; an expired lease claims nothing.
                let valid = tx
                    .query_opt(
                        "SELECT 1 FROM nodes WHERE generation = $1 AND expires_at > now()
                         FOR KEY SHARE",
                        &[&generation],
                    )
                    .await?;
                if valid.is_none() {
                    return Ok(Vec::new());
                }
                let candidates: Vec<(i64, String)> = tx
                    .query(
                        "SELECT id, template FROM jobs WHERE status IN (0, 1) AND status = 0
                         ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                        &[&look],
                    )
                    .await?
                    .iter()
                    .map(|row| (row.get(0), row.get(1)))
                    .collect();
                let limited: BTreeSet<&str> = candidates
                    .iter()
                    .map(|(_, t)| t.as_str())
                    .filter(|t| limits.contains_key(*t))
                    .collect();
                let mut running: HashMap<&str, i64> = HashMap::new();
                for template in limited {
                    lock_template(tx, template).await?;
                    let count: i64 = tx
                        .query_one(
                            "SELECT count(*) FROM jobs WHERE status IN (0, 1) AND template = $1
                             AND status = 1",
                            &[&template],
                        )
                        .await?
                        .get(0);
                    running.insert(template, count);
                }
                let mut chosen = Vec::new();
                for (id, template) in &candidates {
                    if chosen.len() == room {
                        break;
                    }
                    if let Some(limit) = limits.get(template.as_str()) {
                        let count = running.entry(template.as_str()).or_default();
                        if *count >= *limit {
                            continue;
                        }
                        *count += 1;
                    }
                    chosen.push(*id);
                }
                if chosen.is_empty() {
                    return Ok(Vec::new());
                }
                let rows = tx
                    .query(
                        &format!(
                            "UPDATE jobs SET status = 1, started_ms = {NOW_MS}, owner = $2
                             WHERE id = ANY ($1)
                             RETURNING id, template, plan, variables, status, created_ms,
                                       started_ms, finished_ms"
                        ),
                        &[&chosen, &generation],
                    )
                    .await?;
                let mut records = Vec::with_capacity(rows.len());
                for row in &rows {
                    // A row this build cannot read is left to fail where it is read again.
                    if let Ok(record) = row_to_job(row) {
                        events.push(Event::Status {
                            token: record.token,
                            status: JobStatus::Executing,
                        });
                        records.push(record);
                    }
                }
                records.sort_by_key(|r| r.token);
                Ok(records)
            })
        })
        .await
    }

    async fn finish(
        &self,
        lease: &Lease,
        token: JobToken,
        status: JobStatus,
        outputs: &Outputs,
    ) -> Result<bool, StoreError> {
        let generation = lease.generation;
        let outputs = (!outputs.is_empty()).then(|| encode_outputs(outputs));
        self.transact(move |tx, events| {
            Box::pin(async move {
                let changed = tx
                    .execute(
                        &format!(
                            "UPDATE jobs SET status = $3, finished_ms = {NOW_MS}, owner = NULL,
                                 outputs = $4
                             WHERE id = $1 AND owner = $2 AND status IN (0, 1) AND status = 1"
                        ),
                        &[
                            &(token.id() as i64),
                            &generation,
                            &status_code(status),
                            &outputs,
                        ],
                    )
                    .await?;
                if changed == 1 {
                    events.push(Event::Status { token, status });
                }
                Ok(changed == 1)
            })
        })
        .await
    }

    async fn cancel(&self, token: JobToken, message: &str) -> Result<CancelRequest, StoreError> {
        let message = message.to_owned();
        self.transact(move |tx, events| {
            Box::pin(async move {
                let row = tx
                    .query_opt(
                        &format!("SELECT status, {NOW_MS} FROM jobs WHERE id = $1 FOR UPDATE"),
                        &[&(token.id() as i64)],
                    )
                    .await?;
                let Some(row) = row else {
                    return Ok(CancelRequest::Unknown);
                };
                let (code, now_ms): (i16, i64) = (row.get(0), row.get(1));
                match code {
                    PENDING => {
                        end_with_line(tx, token, &message, now_ms, events).await?;
                        Ok(CancelRequest::EndedPending)
                    }
                    EXECUTING => {
                        events.push(Event::Cancel { token });
                        Ok(CancelRequest::Requested)
                    }
                    other => Ok(match status_from(other) {
                        Ok(status) => CancelRequest::AlreadyEnded(status),
                        Err(_) => CancelRequest::Unknown,
                    }),
                }
            })
        })
        .await
    }

    fn cancels(&self) -> broadcast::Receiver<JobToken> {
        self.committed.cancels()
    }

    async fn watch_status(
        &self,
        token: JobToken,
    ) -> Result<Option<watch::Receiver<JobStatus>>, StoreError> {
        // Watching starts before the read, so a change committed in between is not missed: it
        // either moves the watch, or the read sees it.
        let watch = self.committed.subscribe_status(token, JobStatus::Pending);
        match holt_storage::JobStore::status(self, token).await? {
            Some(status) => {
                self.committed.correct_status(token, status);
                Ok(Some(watch))
            }
            None => Ok(None),
        }
    }

    fn work(&self) -> std::sync::Arc<Notify> {
        self.committed.work()
    }

    async fn position(&self, token: JobToken) -> Result<Option<usize>, StoreError> {
        let row = self
            .read_opt(
                "SELECT CASE WHEN j.status = 0 THEN
                    (SELECT count(*) FROM jobs p WHERE p.status IN (0, 1) AND p.status = 0
                     AND p.id <= j.id) END
                 FROM jobs j WHERE j.id = $1",
                &[&(token.id() as i64)],
            )
            .await?;
        Ok(row
            .and_then(|row| row.get::<_, Option<i64>>(0))
            .and_then(|n| usize::try_from(n).ok()))
    }

    async fn pending(&self) -> Result<usize, StoreError> {
        let row = self
            .read_opt(
                "SELECT count(*) FROM jobs WHERE status IN (0, 1) AND status = 0",
                &[],
            )
            .await?;
        Ok(row.map_or(0, |row| row.get::<_, i64>(0) as usize))
    }
}
