use async_trait::async_trait;
use holt_domain::{JobStatus, JobToken, LogEntry, TemplateName, Variables};

use crate::StoreError;

/// What the engine and the HTTP layer need from durable storage.
///
/// Writes are ordered: whatever a caller has handed to the store (logs included) is committed
/// before, or in the same transaction as, any write the store accepts after it. An awaited write
/// returns only once it is durable, so every log entry appended before an awaited status change
/// is durable when that change is.
#[async_trait]
pub trait JobStore: Send + Sync + std::fmt::Debug {
    /// A name for this database, stable across restarts and different for every database, so
    /// that what a server started from it (such as processes) can be recognised later.
    fn instance_id(&self) -> &str;

    /// Records a new `Pending` job and returns its token once the job is durable.
    async fn create_job(&self, job: NewJob) -> Result<JobToken, StoreError>;

    /// Records a status change at `at_ms` and returns once it is durable. Moving to `Executing`
    /// sets the start time; moving to a terminal status sets the finish time.
    async fn set_status(
        &self,
        token: JobToken,
        status: JobStatus,
        at_ms: i64,
    ) -> Result<(), StoreError>;

    /// Hands log entries over for writing, in order. They become durable no later than the next
    /// awaited write returns; this returns once they are queued.
    async fn append_logs(&self, token: JobToken, entries: Vec<LogEntry>) -> Result<(), StoreError>;

    /// Returns once everything handed over so far is durable.
    async fn flush(&self) -> Result<(), StoreError>;

    /// One job, if it exists.
    async fn job(&self, token: JobToken) -> Result<Option<JobRecord>, StoreError>;

    /// One job's status, if the job exists.
    async fn status(&self, token: JobToken) -> Result<Option<JobStatus>, StoreError>;

    /// Up to `limit` entries of a job's log, from sequence number `from_seq` on, in logged order.
    async fn logs(
        &self,
        token: JobToken,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError>;

    /// After a restart: every job left `Executing` becomes `Error`, with `message` appended to
    /// its log as an `ERROR` entry; returns those jobs and the `Pending` jobs in the order they
    /// were created, so they can run.
    async fn recover(&self, message: &str, at_ms: i64) -> Result<Recovery, StoreError>;
}

/// A job about to be recorded.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The template it was created from.
    pub template: TemplateName,
    /// The exact plan text it runs.
    pub plan: String,
    /// Its variables: the template's defaults overridden by the trigger's values.
    pub variables: Variables,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// A recorded job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Its token.
    pub token: JobToken,
    /// The template it was created from.
    pub template: TemplateName,
    /// The exact plan text it runs.
    pub plan: String,
    /// Its variables.
    pub variables: Variables,
    /// Its status now.
    pub status: JobStatus,
    /// When it was created.
    pub created_ms: i64,
    /// When it started executing.
    pub started_ms: Option<i64>,
    /// When it ended.
    pub finished_ms: Option<i64>,
}

/// What a restart found.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Jobs that were executing when the previous process stopped, now `Error`.
    pub interrupted: Vec<JobToken>,
    /// Jobs still waiting to run, oldest first.
    pub pending: Vec<JobRecord>,
}
