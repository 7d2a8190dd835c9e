//! The SQLite store: one writer thread with group commit, an r2d2 pool for reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use holt_domain::{
    JobFilter, JobStatus, JobSummary, JobToken, LogEntry, LogLevel, Outputs, TemplateName,
    TriggerSource,
};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::backend::{self, EntryPage, LOG_BUDGET_BYTES, TextPage, decode_variables};
use crate::{
    Created, Firing, JobRecord, JobStore, NewJob, Recovery, RetentionRule, StoreError, dump,
};

mod committed;
mod infra;
use committed::Committed;
mod migrations;
mod schedules;
mod writer;

use writer::Command;
pub(crate) use writer::is_storage_failure;

/// What an acknowledged write promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledged means on disk: each commit is synced (`synchronous=FULL`).
    #[default]
    Full,
    /// Acknowledged writes survive a crash of the process, but the last moments may be lost on
    /// power loss or an operating system crash (`synchronous=NORMAL`).
    Normal,
}

/// How to open a SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file; created when missing.
    pub path: PathBuf,
    /// What an acknowledged write promises.
    pub durability: Durability,
    /// How many read connections the pool may open.
    pub read_connections: u32,
}

impl SqliteConfig {
    /// The defaults for a file: full durability and four read connections.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            durability: Durability::Full,
            read_connections: 4,
        }
    }
}

/// A `JobStore` in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    commands: mpsc::Sender<Command>,
    instance: Arc<str>,
    reads: r2d2::Pool<SqliteConnectionManager>,
    /// Bytes of log entries handed over but not yet committed (see [`LOG_BUDGET_BYTES`]).
    log_budget: Arc<Semaphore>,
    /// Followed jobs, told of each commit by the writer.
    committed: Arc<Committed>,
    _writer: Arc<writer::WriterHandle>,
    /// The file opened and its identity (device and inode) then, to notice when it is removed
    /// or replaced under the running server.
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

/// A file's device and inode, if it can be read.
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// How long a connection waits for a lock held by another before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many commands may wait for the writer before senders wait for room.
const QUEUE_CAPACITY: usize = 8192;

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database, then starts the writer thread.
    pub fn open(config: &SqliteConfig) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(&config.path)?;
        configure(&conn)?;
        // WAL lets readers proceed while the writer commits; the setting is kept in the file.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let synchronous = match config.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        migrations::apply(&mut conn)?;
        let instance: String =
            conn.query_row("SELECT value FROM meta WHERE key = 'instance'", [], |row| {
                row.get(0)
            })?;

        let manager = SqliteConnectionManager::file(&config.path).with_init(|c| {
            c.busy_timeout(BUSY_TIMEOUT)?;
            c.pragma_update(None, "query_only", true)
        });
        let reads = r2d2::Pool::builder()
            .max_size(config.read_connections.max(1))
            // A read that cannot get a connection fails in seconds, not r2d2's default 30.
            .connection_timeout(BUSY_TIMEOUT)
            .min_idle(Some(1))
            .build(manager)?;

        let (commands, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let committed = Arc::new(Committed::default());
        let writer = writer::spawn(conn, receiver, committed.clone())?;
        Ok(SqliteStore {
            commands,
            instance: instance.into(),
            reads,
            log_budget: Arc::new(Semaphore::new(LOG_BUDGET_BYTES)),
            committed,
            _writer: Arc::new(writer),
            identity: file_identity(&config.path),
            path: config.path.clone(),
        })
    }

    /// Runs SQLite's own consistency check; `Ok("ok")` means the file is sound.
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        self.read(|conn| {
            let rows: Vec<String> = conn
                .prepare("PRAGMA integrity_check")?
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(rows.join("\n"))
        })
        .await
    }

    async fn send(&self, command: Command) -> Result<(), StoreError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Sends a command that acknowledges, and waits for the acknowledgement.
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        let (ack, done) = oneshot::channel();
        self.send(make(ack)).await?;
        done.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `work` inside the writer's next transaction and answers once that commits, with
    /// its result, or with the reason the batch failed (also when `work` never got to run).
    async fn in_batch<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.request(move |ack| {
            Command::Run(Box::new(move |tx| {
                // Without a transaction the batch has failed: the commit's error is the answer.
                let result = tx.map(work);
                Box::new(move |commit| {
                    let answer = commit.and_then(|()| result.unwrap_or(Err(StoreError::Closed)));
                    drop(ack.send(answer));
                })
            }))
        })
        .await
    }

    /// The next `limit` jobs after token `after` (0 for the first), with their idempotency keys,
    /// as stored: a page of a copy of the whole database (`holtd migrate`).
    pub async fn dump_jobs(&self, after: i64, limit: usize) -> Result<dump::Batch, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut batch = dump::Batch::default();
            let mut jobs = conn.prepare(
                "SELECT id, template, plan, variables, status, created_ms, started_ms, finished_ms,
                        source, outputs
                 FROM jobs WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            batch.jobs = jobs
                .query_map(rusqlite::params![after, limit], |row| {
                    Ok(dump::JobRow {
                        id: row.get(0)?,
                        template: row.get(1)?,
                        plan: row.get(2)?,
                        variables: row.get(3)?,
                        status: row.get(4)?,
                        created_ms: row.get(5)?,
                        started_ms: row.get(6)?,
                        finished_ms: row.get(7)?,
                        source: row.get(8)?,
                        outputs: row.get(9)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let (Some(first), Some(last)) = (batch.jobs.first(), batch.jobs.last()) else {
                return Ok(batch);
            };
            let (first, last) = (first.id, last.id);
            let mut keys = conn.prepare(
                "SELECT key, fingerprint, job_id, created_ms FROM idempotency
                 WHERE job_id BETWEEN ?1 AND ?2",
            )?;
            batch.keys = keys
                .query_map(rusqlite::params![first, last], |row| {
                    Ok(dump::KeyRow {
                        key: row.get(0)?,
                        fingerprint: row.get(1)?,
                        job_id: row.get(2)?,
                        created_ms: row.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(batch)
        })
        .await
    }

    /// The next `limit` log chunks after `(job, last_seq)` in that order, as stored: a page of
    /// a copy of every log, bounded however long one job's log is.
    pub async fn dump_chunks(
        &self,
        after: (i64, i64),
        limit: usize,
    ) -> Result<Vec<dump::ChunkRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut chunks = conn.prepare(
                "SELECT job_id, first_seq, last_seq, body, entries FROM log_chunks
                 WHERE (job_id, last_seq) > (?1, ?2) ORDER BY job_id, last_seq LIMIT ?3",
            )?;
            let rows = chunks
                .query_map(rusqlite::params![after.0, after.1, limit], |row| {
                    Ok(dump::ChunkRow {
                        job_id: row.get(0)?,
                        first_seq: row.get(1)?,
                        last_seq: row.get(2)?,
                        body: row.get(3)?,
                        entries: row.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    /// The infrastructure model's rows, as stored.
    pub async fn dump_infra(&self) -> Result<Vec<dump::InfraRow>, StoreError> {
        self.read(|conn| {
            let mut statement =
                conn.prepare("SELECT kind, name_key, body FROM infra ORDER BY kind, name_key")?;
            let rows = statement
                .query_map([], |row| {
                    Ok(dump::InfraRow {
                        kind: row.get(0)?,
                        name_key: row.get(1)?,
                        body: row.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    /// Runs a read on a pooled connection, off the async runtime's threads.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.reads.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get()?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Database(Box::new(e)))?
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

#[async_trait]
impl JobStore for SqliteStore {
    fn instance_id(&self) -> &str {
        &self.instance
    }

    fn health(&self) -> Result<(), StoreError> {
        // An in-memory or unreadable path had no identity to compare with.
        let Some(opened) = self.identity else {
            return Ok(());
        };
        match file_identity(&self.path) {
            Some(now) if now == opened => Ok(()),
            Some(_) => Err(StoreError::Unavailable(format!(
                "the database file {} was replaced while the server ran; restart holtd",
                self.path.display()
            ))),
            None => Err(StoreError::Unavailable(format!(
                "the database file {} was removed while the server ran; restart holtd",
                self.path.display()
            ))),
        }
    }

    async fn create_job_from(
        &self,
        job: NewJob,
        source: TriggerSource,
    ) -> Result<Created, StoreError> {
        self.request(|ack| Command::CreateJob { job, source, ack })
            .await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobSummary>, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| list_jobs(conn, &filter)).await
    }

    async fn set_status(
        &self,
        token: JobToken,
        status: JobStatus,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        // A status without outputs is an end without them (or a start): one command serves both.
        self.end_job(token, status, at_ms, &Outputs::new()).await
    }

    async fn end_job(
        &self,
        token: JobToken,
        status: JobStatus,
        at_ms: i64,
        outputs: &Outputs,
    ) -> Result<(), StoreError> {
        let outputs = (!outputs.is_empty()).then(|| backend::encode_outputs(outputs));
        self.request(|ack| Command::SetStatus {
            token,
            status,
            at_ms,
            outputs,
            ack,
        })
        .await
    }

    async fn add_webhooks(
        &self,
        token: JobToken,
        hooks: Vec<crate::NewWebhook>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.in_batch(move |tx| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO webhooks (job_id, url, secret_env, created_ms, next_ms)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?;
            for hook in &hooks {
                insert.execute(params![token.id() as i64, hook.url, hook.secret_env, at_ms])?;
            }
            Ok(())
        })
        .await
    }

    async fn claim_webhooks(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<crate::Webhook>, StoreError> {
        // Through the writer: taking a row is a write, ordered with the others.
        self.in_batch(move |tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE webhooks SET next_ms = ?2
                 WHERE id IN (SELECT id FROM webhooks WHERE done = 0 AND next_ms <= ?1
                              ORDER BY next_ms, id LIMIT ?3)
                 RETURNING id, job_id, url, secret_env, attempts, created_ms",
            )?;
            let rows = stmt.query_map(params![now_ms, now_ms + lease_ms, limit as i64], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, i64>(5)?,
                ))
            })?;
            let mut claimed = Vec::new();
            for row in rows {
                let (id, job, url, secret_env, attempts, created_ms) = row?;
                claimed.push(crate::Webhook {
                    id,
                    token: JobToken::new(job as u64)
                        .ok_or_else(|| StoreError::Corrupt(format!("job id {job}")))?,
                    url,
                    secret_env,
                    attempts: attempts as u32,
                    created_ms,
                });
            }
            claimed.sort_by_key(|w| w.id);
            Ok(claimed)
        })
        .await
    }

    async fn webhook_attempted(
        &self,
        id: i64,
        attempted: crate::Attempted,
    ) -> Result<(), StoreError> {
        self.in_batch(move |tx| {
            let next = match attempted {
                crate::Attempted::Retry { next_ms } => Some(next_ms),
                _ => None,
            };
            tx.prepare_cached(
                "UPDATE webhooks SET attempts = attempts + 1, done = ?2,
                     next_ms = coalesce(?3, next_ms)
                 WHERE id = ?1",
            )?
            .execute(params![id, attempted.code(), next])?;
            Ok(())
        })
        .await
    }

    async fn next_webhook_ms(&self) -> Result<Option<i64>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT min(next_ms) FROM webhooks WHERE done = 0")?
                .query_row([], |row| row.get(0))?)
        })
        .await
    }

    async fn outputs(&self, token: JobToken) -> Result<Option<Outputs>, StoreError> {
        self.read(move |conn| {
            let row: Option<Option<String>> = conn
                .prepare_cached("SELECT outputs FROM jobs WHERE id = ?1")?
                .query_row([token.id() as i64], |row| row.get(0))
                .optional()?;
            row.map(|text| text.map_or(Ok(Outputs::new()), |t| backend::decode_outputs(&t)))
                .transpose()
        })
        .await
    }

    async fn append_logs(&self, token: JobToken, entries: Vec<LogEntry>) -> Result<(), StoreError> {
        let budget = self
            .log_budget
            .clone()
            .acquire_many_owned(backend::log_cost(&entries))
            .await
            .map_err(|_| StoreError::Closed)?;
        self.send(Command::AppendLogs {
            token,
            entries,
            _budget: budget,
        })
        .await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.in_batch(|_| Ok(())).await
    }

    async fn job(&self, token: JobToken) -> Result<Option<JobRecord>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, template, plan, variables, status, created_ms, started_ms, finished_ms,
                        source
                 FROM jobs WHERE id = ?1",
            )?
            .query_row([token.id() as i64], row_to_job)
            .optional()?
            .transpose()
        })
        .await
    }

    async fn last_seq(&self, token: JobToken) -> Result<Option<u64>, StoreError> {
        self.read(move |conn| {
            let seq: Option<i64> = conn
                .prepare_cached("SELECT MAX(last_seq) FROM log_chunks WHERE job_id = ?1")?
                .query_row([token.id() as i64], |row| row.get(0))?;
            Ok(seq.map(|s| s as u64))
        })
        .await
    }

    async fn delete_finished(
        &self,
        rule: &RetentionRule,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let rule = rule.clone();
        self.in_batch(move |tx| delete_finished(tx, &rule, limit))
            .await
    }

    async fn inventory(&self) -> Result<holt_domain::Inventory, StoreError> {
        self.read(infra::load).await
    }

    async fn change_inventory(
        &self,
        change: holt_domain::InfraChange,
    ) -> Result<holt_domain::Inventory, StoreError> {
        self.in_batch(move |tx| infra::change(tx, change)).await
    }

    async fn prune_idempotency(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.in_batch(move |tx| {
            tx.execute("DELETE FROM idempotency WHERE created_ms < ?1", [before_ms])
                .map_err(StoreError::from)
        })
        .await
    }

    async fn summary(
        &self,
        token: JobToken,
    ) -> Result<Option<(TemplateName, JobStatus)>, StoreError> {
        self.read(move |conn| {
            let row: Option<(String, i64)> = conn
                .prepare_cached("SELECT template, status FROM jobs WHERE id = ?1")?
                .query_row([token.id() as i64], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            row.map(|(template, status)| Ok((template.parse()?, JobStatus::from_code(status)?)))
                .transpose()
        })
        .await
    }

    async fn status(&self, token: JobToken) -> Result<Option<JobStatus>, StoreError> {
        self.read(move |conn| {
            let code: Option<i64> = conn
                .prepare_cached("SELECT status FROM jobs WHERE id = ?1")?
                .query_row([token.id() as i64], |row| row.get(0))
                .optional()?;
            Ok(code.map(JobStatus::from_code).transpose()?)
        })
        .await
    }

    async fn logs(
        &self,
        token: JobToken,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.read(move |conn| read_entries(conn, token, from_seq, limit, usize::MAX))
            .await
    }

    async fn logs_within(
        &self,
        token: JobToken,
        from_seq: u64,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.read(move |conn| read_entries(conn, token, from_seq, usize::MAX, max_bytes))
            .await
    }

    async fn logs_text(
        &self,
        token: JobToken,
        from_seq: u64,
        before_seq: u64,
        max_bytes: usize,
    ) -> Result<(String, Option<u64>), StoreError> {
        self.read(move |conn| read_text(conn, token, from_seq, before_seq, max_bytes))
            .await
    }

    fn watch_committed(&self, token: JobToken) -> tokio::sync::watch::Receiver<u64> {
        self.committed.subscribe(token)
    }

    async fn recover(&self, message: &str, at_ms: i64) -> Result<Recovery, StoreError> {
        let message = message.to_owned();
        self.in_batch(move |tx| recover(tx, &message, at_ms)).await
    }

    async fn last_firing(&self, template: &TemplateName) -> Result<Option<i64>, StoreError> {
        let template = template.clone();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT max(slot_ms) FROM schedule_firings WHERE template = ?1")?
                .query_row([template.as_str()], |row| row.get(0))?)
        })
        .await
    }

    async fn create_scheduled_job(
        &self,
        firing: &Firing,
        mut job: NewJob,
    ) -> Result<Option<JobToken>, StoreError> {
        let firing = firing.clone();
        job.idempotency = None;
        self.in_batch(move |tx| {
            if !schedules::fire(tx, &firing, None)? {
                return Ok(None);
            }
            let created = writer::insert_job(tx, &job, TriggerSource::Schedule)?;
            schedules::link(tx, &firing, created.token)?;
            Ok(Some(created.token))
        })
        .await
    }

    async fn record_firing(
        &self,
        firing: &Firing,
        existing: Option<JobToken>,
    ) -> Result<bool, StoreError> {
        let firing = firing.clone();
        self.in_batch(move |tx| schedules::fire(tx, &firing, existing))
            .await
    }
}

/// Up to `limit` entries from `from_seq` on whose texts add up to at most `max_bytes` (at
/// least one).
fn read_entries(
    conn: &Connection,
    token: JobToken,
    from_seq: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<Vec<LogEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT first_seq, entries FROM log_chunks
         WHERE job_id = ?1 AND last_seq >= ?2 ORDER BY last_seq",
    )?;
    let mut rows = stmt.query(params![token.id() as i64, from_seq as i64])?;
    let mut page = EntryPage::new(from_seq, limit, max_bytes);
    while let Some(row) = rows.next()? {
        let first: i64 = row.get(0)?;
        let packed = row
            .get_ref(1)?
            .as_str()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if !page.push_chunk(first as u64, packed)? {
            break;
        }
    }
    Ok(page.into_entries())
}

/// Entries `from_seq..before_seq` in the Otter text form, as many as fit in `max_bytes` (at
/// least one), and the last one's sequence number (see [`TextPage`]).
fn read_text(
    conn: &Connection,
    token: JobToken,
    from_seq: u64,
    before_seq: u64,
    max_bytes: usize,
) -> Result<(String, Option<u64>), StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT first_seq, last_seq, body, entries FROM log_chunks
         WHERE job_id = ?1 AND last_seq >= ?2 AND first_seq < ?3 ORDER BY last_seq",
    )?;
    let mut rows = stmt.query(params![
        token.id() as i64,
        from_seq as i64,
        before_seq.min(i64::MAX as u64) as i64
    ])?;
    let mut page = TextPage::new(token, from_seq, before_seq, max_bytes);
    while let Some(row) = rows.next()? {
        let first = row.get::<_, i64>(0)? as u64;
        let chunk_last = row.get::<_, i64>(1)? as u64;
        let stored = row
            .get_ref(2)?
            .as_str()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let packed = || {
            row.get_ref(3)?
                .as_str()
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        };
        if !page.push_chunk(first, chunk_last, stored, packed)? {
            break;
        }
    }
    Ok(page.finish())
}

type JobRow = Result<JobRecord, StoreError>;

fn row_to_job(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let id: i64 = row.get(0)?;
    let template: String = row.get(1)?;
    let plan: String = row.get(2)?;
    let variables: String = row.get(3)?;
    let status: i64 = row.get(4)?;
    let created_ms: i64 = row.get(5)?;
    let started_ms: Option<i64> = row.get(6)?;
    let finished_ms: Option<i64> = row.get(7)?;
    let source: i64 = row.get(8)?;
    Ok((|| {
        Ok(JobRecord {
            token: JobToken::new(id as u64)
                .ok_or_else(|| StoreError::Corrupt(format!("job id {id}")))?,
            template: template.parse()?,
            plan,
            variables: decode_variables(&variables)?,
            status: JobStatus::from_code(status)?,
            created_ms,
            started_ms,
            finished_ms,
            source: TriggerSource::from_code(source)?,
        })
    })())
}

/// The statement for a listing filtered by template, status, both or neither: `?1` is the
/// `before` bound, `?2` the limit, then the template and the status, those given.
fn list_sql(template: bool, status: bool) -> &'static str {
    match (template, status) {
        (false, false) => {
            "SELECT id, template, status, source, created_ms, started_ms, finished_ms FROM jobs
             WHERE id < ?1 ORDER BY id DESC LIMIT ?2"
        }
        (true, false) => {
            "SELECT id, template, status, source, created_ms, started_ms, finished_ms FROM jobs
             WHERE template = ?3 AND id < ?1 ORDER BY id DESC LIMIT ?2"
        }
        (false, true) => {
            "SELECT id, template, status, source, created_ms, started_ms, finished_ms FROM jobs
             WHERE status = ?3 AND id < ?1 ORDER BY id DESC LIMIT ?2"
        }
        (true, true) => {
            "SELECT id, template, status, source, created_ms, started_ms, finished_ms FROM jobs
             WHERE template = ?3 AND status = ?4 AND id < ?1 ORDER BY id DESC LIMIT ?2"
        }
    }
}

/// The statement for each combination of filters. Each is served by an index that yields rows
/// in token order from the `before` bound (the primary key, `jobs_template`, `jobs_status` or
/// `jobs_template_status`), so a page costs its own rows however many jobs there are; the
/// plan test in `sqlite/tests.rs` holds SQLite to that.
fn list_jobs(conn: &Connection, filter: &JobFilter) -> Result<Vec<JobSummary>, StoreError> {
    use rusqlite::types::Value;
    let before = Value::Integer(filter.before.map_or(i64::MAX, |t| t.id() as i64));
    let limit = Value::Integer(i64::try_from(filter.limit).unwrap_or(i64::MAX));
    let template = filter
        .template
        .as_ref()
        .map(|t| Value::Text(t.as_str().to_owned()));
    let status = filter.status.map(|s| Value::Integer(s.code()));
    let sql = list_sql(template.is_some(), status.is_some());
    let values: Vec<Value> = [Some(before), Some(limit), template, status]
        .into_iter()
        .flatten()
        .collect();
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, Option<i64>>(5)?,
            row.get::<_, Option<i64>>(6)?,
        ))
    })?;
    let mut jobs = Vec::new();
    for row in rows {
        let (id, template, status, source, created_ms, started_ms, finished_ms) = row?;
        jobs.push(JobSummary {
            token: JobToken::new(id as u64)
                .ok_or_else(|| StoreError::Corrupt(format!("job id {id}")))?,
            template: template.parse()?,
            status: JobStatus::from_code(status)?,
            source: TriggerSource::from_code(source)?,
            created_ms,
            started_ms,
            finished_ms,
        });
    }
    Ok(jobs)
}

fn delete_finished(
    tx: &Transaction<'_>,
    rule: &RetentionRule,
    limit: usize,
) -> Result<usize, StoreError> {
    // Only finished jobs are selected, so a running job is never touched; their logs and
    // idempotency keys go with them (ON DELETE CASCADE).
    let mut sql = String::from(
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms < ?1 AND status IN (2, 3, 4)",
    );
    let mut values: Vec<String> = Vec::new();
    if let Some(template) = &rule.template {
        values.push(template.as_str().to_owned());
        sql.push_str(&format!(" AND template = ?{}", values.len() + 1));
    }
    for template in &rule.except {
        values.push(template.as_str().to_owned());
        sql.push_str(&format!(" AND template != ?{}", values.len() + 1));
    }
    sql.push_str(&format!(" ORDER BY finished_ms LIMIT {limit})"));
    let mut stmt = tx.prepare(&sql)?;
    let mut params: Vec<&dyn rusqlite::ToSql> = vec![&rule.before_ms];
    params.extend(values.iter().map(|v| v as &dyn rusqlite::ToSql));
    Ok(stmt.execute(params.as_slice())?)
}

fn recover(tx: &Transaction<'_>, message: &str, at_ms: i64) -> Result<Recovery, StoreError> {
    let executing = JobStatus::Executing.code();
    let interrupted: Vec<i64> = tx
        // `status IN (0, 1)` lets SQLite use the partial index of unfinished jobs instead of
        // scanning every job ever run.
        .prepare("SELECT id FROM jobs WHERE status IN (0, 1) AND status = ?1 ORDER BY id")?
        .query_map([executing], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut body = String::new();
    holt_domain::format_line(&mut body, LogLevel::Error, message);
    for &id in &interrupted {
        tx.execute(
            "INSERT INTO log_chunks (job_id, first_seq, last_seq, body, entries)
             SELECT ?1, next, next, ?5, json_array(json_array(?2, ?3, '', ?4))
             FROM (SELECT COALESCE(MAX(last_seq) + 1, 0) AS next FROM log_chunks WHERE job_id = ?1)",
            params![id, LogLevel::Error.code(), at_ms, message, body],
        )?;
        tx.execute(
            "UPDATE jobs SET status = ?2, finished_ms = ?3 WHERE id = ?1",
            params![id, JobStatus::Error.code(), at_ms],
        )?;
    }
    let mut stmt = tx.prepare(
        "SELECT id, template, plan, variables, status, created_ms, started_ms, finished_ms, source
         FROM jobs WHERE status IN (0, 1) AND status = ?1 ORDER BY id",
    )?;
    let pending = stmt
        .query_map([JobStatus::Pending.code()], row_to_job)?
        .map(|row| row?)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Recovery {
        interrupted: interrupted
            .into_iter()
            .filter_map(|id| JobToken::new(id as u64))
            .collect(),
        pending,
    })
}

#[cfg(test)]
mod tests;
