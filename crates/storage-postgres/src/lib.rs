//! Holt's `JobStore` on PostgreSQL, for nodes that share one database.
//!
//! It keeps what the SQLite store keeps, in the same forms (`holt_storage::backend`): jobs, log
//! chunks, idempotency keys, the infrastructure model and the database's instance id, and keeps
//! the same rules, checked by the same conformance suite. One writer task takes every queued
//! write into one transaction and acknowledges each caller after the commit (group commit);
//! reads go to a deadpool of tokio-postgres connections. Each commit that adds to a job's log or
//! changes its status also notifies the database's channel (`pg_notify`), and a dedicated
//! `LISTEN` connection feeds those notices to this store's watchers, so a follower on one node
//! wakes when another node commits. Migrations are an append-only list applied in one
//! transaction under an advisory lock.
//!
//! This crate may depend on `holt-storage` and `holt-domain`; it must not depend on the engine
//! or the HTTP layer, and nothing outside the storage crates names tokio-postgres or deadpool.
//! Only the server binary constructs a `PgStore` (and tests).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use holt_domain::{
    JobFilter, JobStatus, JobSummary, JobToken, LogEntry, Outputs, TemplateName, TriggerSource,
};
use holt_storage::backend::{
    EntryPage, LOG_BUDGET_BYTES, TextPage, decode_outputs, decode_variables, encode_outputs,
    log_cost,
};
use holt_storage::{
    Created, Durability, JobRecord, JobStore, NewJob, Recovery, RetentionRule, StoreError,
};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

mod cluster;
mod committed;
mod error;
mod import;
mod infra;
mod listener;
mod migrations;
mod outbox;
mod schedules;
#[cfg(any(test, feature = "scratch"))]
pub mod scratch;
mod writer;

use committed::Committed;
use error::{db_error, pool_error};
use writer::{Command, status_code, token_of};

/// How to connect, besides the URL.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// How many connections reads may use at once (the writer and the listener have one each).
    pub read_connections: usize,
    /// How long opening a connection, or waiting for a free one, may take; used unless the URL
    /// sets `connect_timeout`.
    pub connect_timeout: Duration,
    /// What an acknowledged write promises. `Full`: what the server's settings promise
    /// (`synchronous_commit`, by default on: flushed to disk). `Normal`: holtd's connections
    /// set `synchronous_commit = off`, so an acknowledged write survives a crash of holtd, but
    /// the server's last moments of commits may be lost should the server or its machine crash
    /// (the database stays consistent).
    pub durability: Durability,
}

impl Default for PgConfig {
    fn default() -> Self {
        PgConfig {
            read_connections: 4,
            connect_timeout: Duration::from_secs(5),
            durability: Durability::Full,
        }
    }
}

/// A `JobStore` in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    commands: mpsc::Sender<Command>,
    instance: Arc<str>,
    reads: Pool,
    /// Bytes of log entries handed over but not yet committed (see [`LOG_BUDGET_BYTES`]).
    log_budget: Arc<Semaphore>,
    /// Followed jobs, told of each commit by the writer and the listener.
    committed: Arc<Committed>,
    /// Connections for the cluster's own transactions (leases, claims, cancels), so that they
    /// neither wait behind the writer's batches nor take the reads' connections.
    cluster_pool: Pool,
    /// The notification channel of the database.
    channel: Arc<str>,
    _tasks: Arc<Tasks>,
}

/// Stops the notification listener when the last handle of the store goes. (The writer stops
/// by itself once every handle, and so every sender of its queue, is gone.)
#[derive(Debug)]
struct Tasks {
    stop: CancellationToken,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// How many commands may wait for the writer before senders wait for room.
const QUEUE_CAPACITY: usize = 8192;

/// The URL with its password left out, for messages: `postgres://USER@HOST:PORT/DBNAME`.
pub fn redacted(url: &str) -> String {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return "(a PostgreSQL URL that cannot be read)".to_owned();
    };
    // One port stands for every host; none means the default.
    let ports = config.get_ports();
    let port = |i: usize| match ports {
        [] => 5432,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(5432),
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| (host, port(i)))
        .map(|(host, port)| match host {
            tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
            tokio_postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// Whether `db` names a PostgreSQL database (`postgres://` or `postgresql://`) rather than a
/// file.
pub fn is_postgres_url(db: &str) -> bool {
    let lower = db.get(..13).unwrap_or(db).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

impl PgStore {
    /// Connects to the database `url` names (any libpq-style URL or key-value string
    /// tokio-postgres reads), migrates it, and starts the writer and the notification listener.
    /// No error names the password.
    pub async fn connect(url: &str, config: &PgConfig) -> Result<PgStore, StoreError> {
        let mut pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| error::failure("the PostgreSQL URL cannot be read", e))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(config.connect_timeout);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("holtd");
        }
        let (mut client, connection) = pg.connect(NoTls).await.map_err(db_error)?;
        let driver = tokio::spawn(connection);
        migrations::apply(&mut client).await?;
        let instance: String = client
            .query_one("SELECT value FROM meta WHERE key = 'instance'", &[])
            .await
            .map_err(db_error)?
            .get(0);
        drop(client);
        let _ = driver.await;
        if instance.is_empty() || !instance.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(StoreError::Corrupt(format!("instance id {instance:?}")));
        }

        let reads = pool(&pg, config.read_connections.max(1), config)?;
        let writes = pool(&pg, 1, config)?;
        // Notifications of this database go on a channel named after it, so that stores on
        // other databases (or schemas) of the same server never hear them.
        let channel = format!("holt_{instance}");
        let committed = Arc::new(Committed::default());
        let stop = CancellationToken::new();
        let (ready, listening) = oneshot::channel();
        let pg_for_cluster = pg.clone();
        tokio::spawn(listener::run(
            pg,
            channel.clone(),
            committed.clone(),
            reads.clone(),
            stop.clone(),
            ready,
        ));
        // Once this returns, every later commit of any store on the database reaches the
        // watchers.
        listening.await.map_err(|_| StoreError::Closed)??;
        let (commands, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let cluster_pool = pool(&pg_for_cluster, config.read_connections.max(1), config)?;
        tokio::spawn(writer::run(
            writes,
            receiver,
            committed.clone(),
            channel.clone(),
        ));
        Ok(PgStore {
            commands,
            instance: instance.into(),
            reads,
            log_budget: Arc::new(Semaphore::new(LOG_BUDGET_BYTES)),
            committed,
            cluster_pool,
            channel: channel.into(),
            _tasks: Arc::new(Tasks { stop }),
        })
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

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.reads.get().await.map_err(pool_error)
    }

    /// One row of a query on a read connection, if there is one.
    async fn read_opt(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(db_error)?;
        client.query_opt(&statement, params).await.map_err(db_error)
    }
}

fn pool(pg: &tokio_postgres::Config, size: usize, config: &PgConfig) -> Result<Pool, StoreError> {
    let timeout = config.connect_timeout;
    let manager = Manager::from_config(
        pg.clone(),
        NoTls,
        ManagerConfig {
            // A connection is checked for being closed before it is handed out; a query on a
            // connection that died since fails that query, and the pool drops the connection.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let mut builder = Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout));
    if config.durability == Durability::Normal {
        builder = builder.post_create(Hook::async_fn(|client, _| {
            Box::pin(async move {
                client
                    .batch_execute("SET synchronous_commit = off")
                    .await
                    .map_err(HookError::Backend)
            })
        }));
    }
    builder
        .build()
        .map_err(|e| StoreError::Database(Box::new(e)))
}

/// How many chunks one query of a log read fetches: reads go on chunk page by chunk page, so a
/// read holds a bounded amount whatever the log's length.
const CHUNKS_PER_QUERY: i64 = 4;

#[async_trait]
impl JobStore for PgStore {
    fn instance_id(&self) -> &str {
        &self.instance
    }

    fn cluster(&self) -> Option<&dyn holt_storage::ClusterStore> {
        Some(self)
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
        // One statement for each combination of filters, each served by an index that yields
        // rows in token order from the bound (`jobs_template`, `jobs_status`,
        // `jobs_template_status` or the primary key), so a page reads only its own rows.
        let before = filter.before.map_or(i64::MAX, |t| t.id() as i64);
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let template = filter.template.as_ref().map(|t| t.as_str());
        let status = filter.status.map(status_code);
        let client = self.client().await?;
        let sql = match (template.is_some(), status.is_some()) {
            (false, false) => {
                "SELECT id, template, status, source, created_ms, started_ms, finished_ms
                 FROM jobs WHERE id < $1 ORDER BY id DESC LIMIT $2"
            }
            (true, false) => {
                "SELECT id, template, status, source, created_ms, started_ms, finished_ms
                 FROM jobs WHERE template = $3 AND id < $1 ORDER BY id DESC LIMIT $2"
            }
            (false, true) => {
                "SELECT id, template, status, source, created_ms, started_ms, finished_ms
                 FROM jobs WHERE status = $3 AND id < $1 ORDER BY id DESC LIMIT $2"
            }
            (true, true) => {
                "SELECT id, template, status, source, created_ms, started_ms, finished_ms
                 FROM jobs WHERE template = $3 AND status = $4 AND id < $1
                 ORDER BY id DESC LIMIT $2"
            }
        };
        let statement = client.prepare_cached(sql).await.map_err(db_error)?;
        let template = template.unwrap_or("");
        let status = status.unwrap_or(0);
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            match (filter.template.is_some(), filter.status.is_some()) {
                (false, false) => vec![&before, &limit],
                (true, false) => vec![&before, &limit, &template],
                (false, true) => vec![&before, &limit, &status],
                (true, true) => vec![&before, &limit, &template, &status],
            };
        let rows = client.query(&statement, &params).await.map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let template: &str = row.get(1);
                Ok(JobSummary {
                    token: token_of(row.get(0))?,
                    template: template.parse()?,
                    status: status_from(row.get(2))?,
                    source: TriggerSource::from_code(i64::from(row.get::<_, i16>(3)))?,
                    created_ms: row.get(4),
                    started_ms: row.get(5),
                    finished_ms: row.get(6),
                })
            })
            .collect()
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
        let outputs = (!outputs.is_empty()).then(|| encode_outputs(outputs));
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
        hooks: Vec<holt_storage::NewWebhook>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.add_webhooks_tx(token, hooks, at_ms).await
    }

    async fn claim_webhooks(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<holt_storage::Webhook>, StoreError> {
        self.claim_webhooks_tx(now_ms, lease_ms, limit).await
    }

    async fn webhook_attempted(
        &self,
        id: i64,
        attempted: holt_storage::Attempted,
    ) -> Result<(), StoreError> {
        self.webhook_attempted_tx(id, attempted).await
    }

    async fn next_webhook_ms(&self) -> Result<Option<i64>, StoreError> {
        let row = self
            .read_opt("SELECT min(next_ms) FROM webhooks WHERE done = 0", &[])
            .await?;
        Ok(row.and_then(|row| row.get(0)))
    }

    async fn outputs(&self, token: JobToken) -> Result<Option<Outputs>, StoreError> {
        let row = self
            .read_opt(
                "SELECT outputs FROM jobs WHERE id = $1",
                &[&(token.id() as i64)],
            )
            .await?;
        row.map(|row| {
            let text: Option<&str> = row.get(0);
            text.map_or(Ok(Outputs::new()), decode_outputs)
        })
        .transpose()
    }

    async fn append_logs(&self, token: JobToken, entries: Vec<LogEntry>) -> Result<(), StoreError> {
        let budget = self
            .log_budget
            .clone()
            .acquire_many_owned(log_cost(&entries))
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
        self.request(|ack| Command::Flush { ack }).await
    }

    async fn job(&self, token: JobToken) -> Result<Option<JobRecord>, StoreError> {
        self.read_opt(
            "SELECT id, template, plan, variables, status, created_ms, started_ms, finished_ms,
                    source
             FROM jobs WHERE id = $1",
            &[&(token.id() as i64)],
        )
        .await?
        .map(|row| row_to_job(&row))
        .transpose()
    }

    async fn last_seq(&self, token: JobToken) -> Result<Option<u64>, StoreError> {
        let row = self
            .read_opt(
                "SELECT MAX(last_seq) FROM log_chunks WHERE job_id = $1",
                &[&(token.id() as i64)],
            )
            .await?;
        Ok(row
            .and_then(|row| row.get::<_, Option<i64>>(0))
            .map(|seq| seq as u64))
    }

    async fn delete_finished(
        &self,
        rule: &RetentionRule,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let rule = rule.clone();
        self.request(|ack| Command::DeleteFinished { rule, limit, ack })
            .await
    }

    async fn prune_idempotency(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.request(|ack| Command::PruneIdempotency { before_ms, ack })
            .await
    }

    async fn summary(
        &self,
        token: JobToken,
    ) -> Result<Option<(TemplateName, JobStatus)>, StoreError> {
        let row = self
            .read_opt(
                "SELECT template, status FROM jobs WHERE id = $1",
                &[&(token.id() as i64)],
            )
            .await?;
        row.map(|row| {
            let template: &str = row.get(0);
            Ok((template.parse()?, status_from(row.get(1))?))
        })
        .transpose()
    }

    async fn status(&self, token: JobToken) -> Result<Option<JobStatus>, StoreError> {
        let row = self
            .read_opt(
                "SELECT status FROM jobs WHERE id = $1",
                &[&(token.id() as i64)],
            )
            .await?;
        row.map(|row| status_from(row.get(0))).transpose()
    }

    async fn logs(
        &self,
        token: JobToken,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.read_entries(token, EntryPage::new(from_seq, limit, usize::MAX), from_seq)
            .await
    }

    async fn logs_within(
        &self,
        token: JobToken,
        from_seq: u64,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.read_entries(
            token,
            EntryPage::new(from_seq, usize::MAX, max_bytes),
            from_seq,
        )
        .await
    }

    async fn logs_text(
        &self,
        token: JobToken,
        from_seq: u64,
        before_seq: u64,
        max_bytes: usize,
    ) -> Result<(String, Option<u64>), StoreError> {
        let mut page = TextPage::new(token, from_seq, before_seq, max_bytes);
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT first_seq, last_seq, body, entries FROM log_chunks
                 WHERE job_id = $1 AND last_seq >= $2 AND first_seq < $3
                 ORDER BY last_seq LIMIT $4",
            )
            .await
            .map_err(db_error)?;
        let before = before_seq.min(i64::MAX as u64) as i64;
        let mut next = from_seq.min(i64::MAX as u64) as i64;
        loop {
            let rows = client
                .query(
                    &statement,
                    &[&(token.id() as i64), &next, &before, &CHUNKS_PER_QUERY],
                )
                .await
                .map_err(db_error)?;
            for row in &rows {
                let (first, last): (i64, i64) = (row.get(0), row.get(1));
                let packed = || Ok(row.get::<_, &str>(3));
                if !page.push_chunk(first as u64, last as u64, row.get(2), packed)? {
                    return Ok(page.finish());
                }
                next = last + 1;
            }
            if (rows.len() as i64) < CHUNKS_PER_QUERY {
                return Ok(page.finish());
            }
        }
    }

    async fn inventory(&self) -> Result<holt_domain::Inventory, StoreError> {
        let client = self.client().await?;
        infra::load(&**client).await
    }

    async fn change_inventory(
        &self,
        change: holt_domain::InfraChange,
    ) -> Result<holt_domain::Inventory, StoreError> {
        self.request(|ack| Command::ChangeInventory { change, ack })
            .await
    }

    fn watch_committed(&self, token: JobToken) -> tokio::sync::watch::Receiver<u64> {
        self.committed.subscribe(token)
    }

    async fn recover(&self, message: &str, at_ms: i64) -> Result<Recovery, StoreError> {
        let message = message.to_owned();
        self.request(|ack| Command::Recover {
            message,
            at_ms,
            ack,
        })
        .await
    }

    async fn last_firing(&self, template: &TemplateName) -> Result<Option<i64>, StoreError> {
        self.latest_firing(template).await
    }

    async fn create_scheduled_job(
        &self,
        firing: &holt_storage::Firing,
        job: NewJob,
    ) -> Result<Option<JobToken>, StoreError> {
        Ok(
            match self.fire(firing, schedules::Fire::Create(job)).await? {
                Some(admitted) => Some(admitted_token(admitted)?),
                None => None,
            },
        )
    }

    async fn record_firing(
        &self,
        firing: &holt_storage::Firing,
        existing: Option<JobToken>,
    ) -> Result<bool, StoreError> {
        Ok(self
            .fire(firing, schedules::Fire::Record(existing))
            .await?
            .is_some())
    }
}

/// The job a firing on a store of one node created.
fn admitted_token(admitted: holt_storage::Admitted) -> Result<JobToken, StoreError> {
    match admitted {
        holt_storage::Admitted::Created(token) | holt_storage::Admitted::Existing(token) => {
            Ok(token)
        }
        other => Err(StoreError::Corrupt(format!(
            "a scheduled job was not created: {other:?}"
        ))),
    }
}

impl PgStore {
    /// Gathers a page of entries from a job's chunks, a few chunks per query.
    async fn read_entries(
        &self,
        token: JobToken,
        mut page: EntryPage,
        from_seq: u64,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT first_seq, last_seq, entries FROM log_chunks
                 WHERE job_id = $1 AND last_seq >= $2 ORDER BY last_seq LIMIT $3",
            )
            .await
            .map_err(db_error)?;
        let mut next = from_seq.min(i64::MAX as u64) as i64;
        loop {
            let rows = client
                .query(
                    &statement,
                    &[&(token.id() as i64), &next, &CHUNKS_PER_QUERY],
                )
                .await
                .map_err(db_error)?;
            for row in &rows {
                let (first, last): (i64, i64) = (row.get(0), row.get(1));
                if !page.push_chunk(first as u64, row.get(2))? {
                    return Ok(page.into_entries());
                }
                next = last + 1;
            }
            if (rows.len() as i64) < CHUNKS_PER_QUERY {
                return Ok(page.into_entries());
            }
        }
    }
}

fn status_from(code: i16) -> Result<JobStatus, StoreError> {
    Ok(JobStatus::from_code(i64::from(code))?)
}

/// A job's row (id, template, plan, variables, status, created_ms, started_ms, finished_ms and
/// optionally source) as its record. A row without the source (a cluster's claim, whose
/// callers need only what runs the job) reads as `api`.
pub(crate) fn row_to_job(row: &tokio_postgres::Row) -> Result<JobRecord, StoreError> {
    let id: i64 = row.get(0);
    let template: &str = row.get(1);
    Ok(JobRecord {
        token: u64::try_from(id)
            .ok()
            .and_then(JobToken::new)
            .ok_or_else(|| StoreError::Corrupt(format!("job id {id}")))?,
        template: template.parse()?,
        plan: row.get(2),
        variables: decode_variables(row.get(3))?,
        status: status_from(row.get(4))?,
        created_ms: row.get(5),
        started_ms: row.get(6),
        finished_ms: row.get(7),
        source: match row.len() {
            9.. => TriggerSource::from_code(i64::from(row.get::<_, i16>(8)))?,
            _ => TriggerSource::Api,
        },
    })
}

#[cfg(test)]
mod tests;
