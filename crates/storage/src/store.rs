use async_trait::async_trait;
use holt_domain::{
    InfraChange, Inventory, JobFilter, JobStatus, JobSummary, JobToken, LogEntry, Outputs,
    TemplateName, TriggerSource, Variables,
};

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

    /// Whether the store is still the database it opened: `Unavailable` once its file was
    /// removed or replaced under the running server, so that nothing more is acknowledged into
    /// a database nobody will read again.
    fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The cluster side of a store that several nodes share; `None` (the default) for a store
    /// of one process, whose engine then keeps its queue in memory.
    fn cluster(&self) -> Option<&dyn crate::ClusterStore> {
        None
    }

    /// Records a new `Pending` job and returns its token once the job is durable. With an
    /// idempotency key already used (since `not_before_ms`) for the same fingerprint, nothing is
    /// created and the first job's token is returned (`fresh` is false); for another
    /// fingerprint, the answer is `Conflict`.
    async fn create_job(&self, job: NewJob) -> Result<Created, StoreError> {
        self.create_job_from(job, TriggerSource::Api).await
    }

    /// [`JobStore::create_job`], recording what triggered the job; `create_job` records `api`.
    async fn create_job_from(
        &self,
        job: NewJob,
        source: TriggerSource,
    ) -> Result<Created, StoreError>;

    /// A page of jobs, newest first: up to `filter.limit` jobs older than `filter.before` (all,
    /// without it), of the template and status the filter names. Pages are keyed by token, so
    /// a job created while a client pages is never listed twice nor makes it skip one, and a
    /// store answers from an index however many jobs it holds.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobSummary>, StoreError>;

    /// Records a status change at `at_ms` and returns once it is durable. Moving to `Executing`
    /// sets the start time; moving to a terminal status sets the finish time.
    async fn set_status(
        &self,
        token: JobToken,
        status: JobStatus,
        at_ms: i64,
    ) -> Result<(), StoreError>;

    /// Records a job's end: its terminal `status` at `at_ms` and its `outputs`, in one write
    /// that returns once durable. Otherwise like [`JobStore::set_status`].
    async fn end_job(
        &self,
        token: JobToken,
        status: JobStatus,
        at_ms: i64,
        outputs: &Outputs,
    ) -> Result<(), StoreError>;

    /// The outputs a job recorded when it ended (none while it has not, or when its template
    /// declares none); `None` when there is no such job.
    async fn outputs(&self, token: JobToken) -> Result<Option<Outputs>, StoreError>;

    /// Adds completion webhooks for a job that has ended to the outbox, due at once; returns
    /// once they are durable.
    async fn add_webhooks(
        &self,
        token: JobToken,
        hooks: Vec<crate::NewWebhook>,
        at_ms: i64,
    ) -> Result<(), StoreError>;

    /// Takes up to `limit` webhooks due at `now_ms`, oldest due first, each for one attempt:
    /// until `now_ms + lease_ms` no other caller (no other node) takes it, so that a webhook is
    /// attempted by one node at a time, and one whose attempt is never reported is due again.
    async fn claim_webhooks(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<crate::Webhook>, StoreError>;

    /// Records what came of an attempt on a claimed webhook, counting it.
    async fn webhook_attempted(
        &self,
        id: i64,
        attempted: crate::Attempted,
    ) -> Result<(), StoreError>;

    /// When the next waiting webhook is due (claimed ones included), if any is waiting.
    async fn next_webhook_ms(&self) -> Result<Option<i64>, StoreError>;

    /// Hands log entries over for writing, in order. They become durable no later than the next
    /// awaited write returns; this returns once they are queued. A store bounds the bytes it
    /// holds queued: while that bound is reached, this waits for earlier entries to commit.
    async fn append_logs(&self, token: JobToken, entries: Vec<LogEntry>) -> Result<(), StoreError>;

    /// Returns once everything handed over so far is durable.
    async fn flush(&self) -> Result<(), StoreError>;

    /// One job, if it exists.
    async fn job(&self, token: JobToken) -> Result<Option<JobRecord>, StoreError>;

    /// The sequence number of a job's last log entry, if it has any.
    async fn last_seq(&self, token: JobToken) -> Result<Option<u64>, StoreError>;

    /// Deletes up to `limit` finished jobs (and their logs) that `rule` selects; returns how many.
    async fn delete_finished(
        &self,
        rule: &RetentionRule,
        limit: usize,
    ) -> Result<usize, StoreError>;

    /// Forgets idempotency keys used before `before_ms`.
    async fn prune_idempotency(&self, before_ms: i64) -> Result<usize, StoreError>;

    /// One job's template and status, if the job exists: what an API call needs to check its
    /// key and answer, in one small read.
    async fn summary(
        &self,
        token: JobToken,
    ) -> Result<Option<(TemplateName, JobStatus)>, StoreError>;

    /// One job's status, if the job exists.
    async fn status(&self, token: JobToken) -> Result<Option<JobStatus>, StoreError>;

    /// Up to `limit` entries of a job's log, from sequence number `from_seq` on, in logged order.
    async fn logs(
        &self,
        token: JobToken,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError>;

    /// Entries of a job's log from sequence number `from_seq` on, in logged order, as many as
    /// fit in `max_bytes` of text (at least one, if there is one), so that a reader holds a
    /// bounded page whatever the entries' size. This default reads through [`JobStore::logs`].
    async fn logs_within(
        &self,
        token: JobToken,
        from_seq: u64,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let mut entries = self.logs(token, from_seq, 1024).await?;
        let mut size = 0;
        let keep = entries
            .iter()
            .take_while(|e| {
                size += e.text.len();
                size <= max_bytes
            })
            .count();
        entries.truncate(keep.max(1));
        Ok(entries)
    }

    /// Entries `from_seq..before_seq` in Otter's text form, as many as fit in `max_bytes` (at
    /// least one, if there is one), and the sequence number of the last one included. Stores
    /// may render it without building entries; this default builds them.
    async fn logs_text(
        &self,
        token: JobToken,
        from_seq: u64,
        before_seq: u64,
        max_bytes: usize,
    ) -> Result<(String, Option<u64>), StoreError> {
        let mut body = String::new();
        let mut last = None;
        let mut next = from_seq;
        while next < before_seq {
            let entries = self.logs(token, next, 1024).await?;
            let Some(end) = entries.last().map(|e| e.seq) else {
                break;
            };
            for entry in entries.iter().filter(|e| e.seq < before_seq) {
                let mark = body.len();
                holt_domain::format_entry(&mut body, entry);
                if body.len() > max_bytes && last.is_some() {
                    body.truncate(mark);
                    return Ok((body, last));
                }
                last = Some(entry.seq);
            }
            next = end + 1;
        }
        Ok((body, last))
    }

    /// The infrastructure model: every server, role and environment (`localhost` always).
    async fn inventory(&self) -> Result<Inventory, StoreError>;

    /// Applies a change to the infrastructure model atomically, checked against the model as
    /// stored at that moment, and returns the model after it. A change that breaks a rule is
    /// `StoreError::Infra` and changes nothing.
    async fn change_inventory(&self, change: InfraChange) -> Result<Inventory, StoreError>;
    /// A watch over how far a job's log is committed. It changes after every commit that adds
    /// entries to the job's log (its value is then the sequence number after the last entry
    /// committed; 0 until then), and it closes once the job's terminal status is committed, so
    /// a follower is woken by the commit itself and never has to poll. Watches are made on
    /// demand: a job nobody watches costs nothing more than a look-up per commit.
    fn watch_committed(&self, token: JobToken) -> tokio::sync::watch::Receiver<u64>;

    /// After a restart: every job left `Executing` becomes `Error`, with `message` appended to
    /// its log as an `ERROR` entry; returns those jobs and the `Pending` jobs in the order they
    /// were created, so they can run.
    async fn recover(&self, message: &str, at_ms: i64) -> Result<Recovery, StoreError>;

    /// The latest slot of `template`'s schedule recorded as fired, if any (see
    /// [`JobStore::create_scheduled_job`]).
    async fn last_firing(&self, template: &TemplateName) -> Result<Option<i64>, StoreError>;

    /// Records that a schedule fired `firing`'s slot and, in the same transaction, creates `job`
    /// as a `Pending` job triggered by the schedule (`job.idempotency` is not looked at).
    /// `None`, with nothing written, when a firing of the template at that slot or a later one
    /// is recorded already: the slot has been fired, by this process before a restart or by
    /// another node. Because the record and the job commit together, a crash leaves both or
    /// neither. Firings older than [`FIRING_HISTORY_MS`] before the new one are forgotten.
    async fn create_scheduled_job(
        &self,
        firing: &Firing,
        job: NewJob,
    ) -> Result<Option<JobToken>, StoreError>;

    /// Records that a schedule fired `firing`'s slot without a new job: the template's policy
    /// refused it, or `existing` (a job already waiting) stands for it. `false`, with nothing
    /// written, in the case [`JobStore::create_scheduled_job`] answers `None` for.
    async fn record_firing(
        &self,
        firing: &Firing,
        existing: Option<JobToken>,
    ) -> Result<bool, StoreError>;
}

/// How long a template's recorded firings are kept before its newest one, in milliseconds. Only
/// the newest matters (a slot at or before it never fires again); older ones are kept a while
/// so that a node whose clock lags the others', working on a slot the newest has passed, still
/// finds its slot recorded.
pub const FIRING_HISTORY_MS: i64 = 24 * 60 * 60 * 1000;

/// A slot of a template's schedule, recorded before its job is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    /// The scheduled template.
    pub template: TemplateName,
    /// The slot's time, in milliseconds since the Unix epoch.
    pub slot_ms: i64,
    /// When the firing was recorded.
    pub at_ms: i64,
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
    /// The client's idempotency key, if it sent one.
    pub idempotency: Option<Idempotency>,
}

/// An idempotency key and what it was used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The key the client sent.
    pub key: String,
    /// The request it stands for: template and variables, in a canonical form.
    pub fingerprint: String,
    /// Uses of the key before this time are forgotten.
    pub not_before_ms: i64,
}

/// What `create_job` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    /// The job's token.
    pub token: JobToken,
    /// False when an idempotency key matched an earlier job and nothing was created.
    pub fresh: bool,
}

/// Which finished jobs retention deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRule {
    /// Jobs that finished before this time.
    pub before_ms: i64,
    /// Only jobs of this template, if set.
    pub template: Option<TemplateName>,
    /// Never jobs of these templates (they have rules of their own).
    pub except: Vec<TemplateName>,
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
    /// What triggered it.
    pub source: TriggerSource,
}

/// What a restart found.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Jobs that were executing when the previous process stopped, now `Error`.
    pub interrupted: Vec<JobToken>,
    /// Jobs still waiting to run, oldest first.
    pub pending: Vec<JobRecord>,
}
