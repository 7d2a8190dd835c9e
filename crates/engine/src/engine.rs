//! The job queue and the life of a job, from trigger to terminal status.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use holt_domain::{
    JobStatus, JobToken, LogLevel, OnLimit, ScopePath, Template, TemplateCatalog, TemplateName,
    Variables,
};
use holt_plan::Plan;
use holt_storage::{Idempotency, JobRecord, JobStore, NewJob, RetentionRule};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::EngineError;
use crate::clock::now_ms;
use crate::interp::{self, ExecState};
use crate::joblog::{JobLog, LogLimits};
use crate::metrics::Metrics;
use crate::process;

/// How the engine runs jobs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The most jobs that execute at once; the rest wait, `Pending`, in trigger order.
    pub max_concurrent_jobs: usize,
    /// How long shutdown lets running jobs go on before ending them.
    pub shutdown_grace: Duration,
    /// How long a job's processes get between SIGTERM and SIGKILL when they are ended.
    pub kill_grace: Duration,
    /// The most jobs that may wait to run; a trigger beyond it is refused.
    pub max_pending_jobs: usize,
    /// The most log entries one job keeps; later ones are dropped after one line saying so.
    pub max_log_lines_per_job: u64,
    /// The longest log entry kept, in bytes; longer ones are cut and marked.
    pub max_log_line_bytes: usize,
    /// How long a trigger waits for the store to confirm the new job.
    pub store_timeout: Duration,
    /// How long an idempotency key stands for its first job.
    pub idempotency_window: Duration,
    /// How many days finished jobs are kept (a template's `retain_days` overrides it); `None`
    /// keeps them forever.
    pub retain_days: Option<u32>,
    /// How often retention runs.
    pub retention_interval: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_concurrent_jobs: 8,
            shutdown_grace: Duration::from_secs(30),
            kill_grace: Duration::from_secs(5),
            max_pending_jobs: 100_000,
            max_log_lines_per_job: 10_000_000,
            max_log_line_bytes: 64 * 1024,
            store_timeout: Duration::from_secs(10),
            idempotency_window: Duration::from_secs(24 * 60 * 60),
            retain_days: None,
            retention_interval: Duration::from_secs(60),
        }
    }
}

/// The line a job gets when a previous process stopped while it ran.
pub(crate) const INTERRUPTED_MESSAGE: &str =
    "The server stopped while this job was executing; the job did not finish.";

/// The line a job gets when this process shuts down before it finishes.
const SHUTDOWN_MESSAGE: &str =
    "The server shut down while this job was executing; the job was stopped.";

/// The line a canceled job ends with.
const CANCELED_MESSAGE: &str = "Job canceled.";

/// How many finished jobs one retention transaction deletes, so it never holds the writer long.
const RETENTION_BATCH: usize = 200;

/// What a trigger produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triggered {
    /// A new job.
    Created(JobToken),
    /// An existing job: the one an idempotency key stands for, or the one already waiting for
    /// a `skip_if_pending` template.
    Existing(JobToken),
}

impl Triggered {
    /// The job's token either way.
    pub fn token(self) -> JobToken {
        match self {
            Triggered::Created(token) | Triggered::Existing(token) => token,
        }
    }
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canceled {
    /// The job was stopped (or never started) and now has this status.
    Stopped(JobStatus),
    /// The job is being stopped but has not ended yet.
    Stopping,
    /// The job had already ended with this status.
    AlreadyEnded(JobStatus),
    /// No such job.
    Unknown,
}

/// Runs jobs. Cheap to clone: clones share one queue.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn JobStore>,
    templates: TemplateCatalog,
    config: EngineConfig,
    queue: Mutex<Queue>,
    /// Woken whenever a job ends, so shutdown can wait for the running set to empty.
    job_ended: Notify,
    metrics: Arc<Metrics>,
    /// Stops background work (retention) at shutdown.
    background: CancellationToken,
}

#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<QueuedJob>,
    running: HashMap<JobToken, Arc<Stopper>>,
    /// How many jobs of each template execute now.
    running_by_template: HashMap<TemplateName, usize>,
    /// Every job not yet ended: its status and log progress, for waiters and followers.
    live: HashMap<JobToken, Live>,
    /// Set by shutdown: no job starts after that.
    closed: bool,
}

/// Watches over a job that has not ended.
#[derive(Debug)]
struct Live {
    template: TemplateName,
    /// Its status, for waiters and followers.
    status: watch::Sender<JobStatus>,
}

/// What the engine needs to run a job it has recorded.
#[derive(Debug)]
struct QueuedJob {
    token: JobToken,
    template: TemplateName,
    plan: Arc<Plan>,
    variables: Variables,
    secrets: Vec<String>,
}

/// Stops one running job, saying why.
#[derive(Debug, Default)]
struct Stopper {
    cancel: CancellationToken,
    reason: OnceLock<String>,
}

impl Stopper {
    fn stop(&self, reason: &str) {
        let _ = self.reason.set(reason.to_owned());
        self.cancel.cancel();
    }
}

impl Engine {
    /// Recovers what a previous process left in the store, then starts running pending jobs.
    pub async fn start(
        store: Arc<dyn JobStore>,
        templates: TemplateCatalog,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let recovery = store.recover(INTERRUPTED_MESSAGE, now_ms()).await?;
        for token in &recovery.interrupted {
            tracing::warn!(job = %token, "job was executing when the server stopped; marked Error");
        }
        // Processes of jobs a crashed server was running are still alive: end them before any
        // new job starts, so nothing of an interrupted job runs on.
        let orphans = process::end_orphans(store.instance_id(), config.kill_grace).await;
        if orphans > 0 {
            tracing::warn!(
                processes = orphans,
                "ended processes left by interrupted jobs"
            );
        }
        let engine = Engine {
            inner: Arc::new(Inner {
                store,
                templates,
                config,
                queue: Mutex::new(Queue::default()),
                job_ended: Notify::new(),
                metrics: Arc::new(Metrics::default()),
                background: CancellationToken::new(),
            }),
        };
        for record in recovery.pending {
            engine.resume(record).await?;
        }
        engine.dispatch();
        engine.start_retention();
        Ok(engine)
    }

    /// The loaded templates.
    pub fn templates(&self) -> &TemplateCatalog {
        &self.inner.templates
    }

    /// The store jobs are recorded in; only the engine reaches it.
    pub(crate) fn store(&self) -> &Arc<dyn JobStore> {
        &self.inner.store
    }

    /// The engine's counters, for `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Appends the engine's gauges and counters in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::collections::BTreeMap;
        use std::fmt::Write;
        let (depth, mut jobs) = {
            let queue = self.queue();
            let mut jobs: BTreeMap<(String, &str), usize> = BTreeMap::new();
            for job in &queue.waiting {
                *jobs
                    .entry((job.template.to_string(), "Pending"))
                    .or_default() += 1;
            }
            for (template, count) in &queue.running_by_template {
                jobs.insert((template.to_string(), "Executing"), *count);
            }
            (queue.waiting.len(), jobs)
        };
        jobs.retain(|_, count| *count > 0);
        out.push_str("# HELP holt_jobs Jobs not yet ended, by status and template.\n");
        out.push_str("# TYPE holt_jobs gauge\n");
        for ((template, status), count) in &jobs {
            let _ = writeln!(
                out,
                "holt_jobs{{template=\"{}\",status=\"{status}\"}} {count}",
                crate::metrics::escape(template)
            );
        }
        out.push_str(
            "# HELP holt_queue_depth Jobs waiting to run.\n# TYPE holt_queue_depth gauge\n",
        );
        let _ = writeln!(out, "holt_queue_depth {depth}");
        self.inner.metrics.render(out);
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.inner.queue.lock().expect("queue lock")
    }

    /// Records a new job from `template` with the trigger's `variables` laid over the
    /// template's defaults, queues it, and returns its token once the job is durable. The
    /// template's concurrency policy and an idempotency key may return an existing job instead.
    pub async fn trigger(
        &self,
        template: &Arc<Template>,
        variables: &Variables,
        idempotency_key: Option<&str>,
    ) -> Result<Triggered, EngineError> {
        {
            let queue = self.queue();
            if queue.closed {
                return Err(EngineError::ShuttingDown);
            }
            let limit = self.inner.config.max_pending_jobs;
            if queue.waiting.len() >= limit {
                return Err(EngineError::QueueFull { limit });
            }
            // An idempotent retry must get its first job back, so the policy is applied only
            // to triggers without a key that could match one.
            if let (Some(max), None) = (template.max_concurrent, idempotency_key) {
                let running = queue
                    .running_by_template
                    .get(&template.name)
                    .copied()
                    .unwrap_or(0);
                let waiting = queue
                    .waiting
                    .iter()
                    .find(|job| job.template == template.name);
                match template.on_limit {
                    OnLimit::Queue => {}
                    OnLimit::Reject if running >= max as usize || waiting.is_some() => {
                        return Err(EngineError::AtLimit {
                            template: template.name.to_string(),
                            limit: max,
                        });
                    }
                    OnLimit::Reject => {}
                    OnLimit::SkipIfPending => {
                        if let Some(job) = waiting {
                            return Ok(Triggered::Existing(job.token));
                        }
                    }
                }
            }
        }
        let merged = template.defaults().overridden_by(variables);
        let idempotency = idempotency_key.map(|key| Idempotency {
            key: key.to_owned(),
            fingerprint: fingerprint(&template.name, variables),
            not_before_ms: now_ms() - self.inner.config.idempotency_window.as_millis() as i64,
        });
        // Recording and queueing run in their own task: should the store be too slow to confirm
        // in time, the caller gets an answer while the job, once recorded, still runs.
        let engine = self.clone();
        let template = template.clone();
        let record = tokio::spawn(async move {
            let created = engine
                .inner
                .store
                .create_job(NewJob {
                    template: template.name.clone(),
                    plan: template.plan_source.clone(),
                    variables: merged.clone(),
                    created_ms: now_ms(),
                    idempotency,
                })
                .await?;
            if !created.fresh {
                return Ok(Triggered::Existing(created.token));
            }
            tracing::debug!(job = %created.token, template = %template.name, "job created");
            engine.inner.metrics.triggered(&template.name);
            engine.enqueue(QueuedJob {
                token: created.token,
                template: template.name.clone(),
                plan: template.plan.clone(),
                secrets: secrets_of(Some(&template), &merged),
                variables: merged,
            });
            Ok::<_, EngineError>(Triggered::Created(created.token))
        });
        let timeout = self.inner.config.store_timeout;
        match tokio::time::timeout(timeout, record).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(EngineError::Store(holt_storage::StoreError::Database(
                Box::new(e),
            ))),
            Err(_) => Err(EngineError::StoreTimeout {
                seconds: timeout.as_secs(),
            }),
        }
    }

    /// A job's status: at once when it has ended or `timeout` is zero, else as soon as it ends
    /// or when `timeout` has passed, whichever comes first. Completion wakes the waiter; the
    /// store is read once. `None` for an unknown job.
    pub async fn wait(
        &self,
        token: JobToken,
        timeout: Duration,
    ) -> Result<Option<JobStatus>, EngineError> {
        let watching = self
            .queue()
            .live
            .get(&token)
            .map(|live| live.status.subscribe());
        let Some(mut status) = watching else {
            return Ok(self.inner.store.status(token).await?);
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let now = *status.borrow_and_update();
            if now.is_terminal() || tokio::time::Instant::now() >= deadline {
                return Ok(Some(now));
            }
            tokio::select! {
                changed = status.changed() => if changed.is_err() {
                    // The job ended and its watch went away: the store has the final word.
                    return Ok(self.inner.store.status(token).await?);
                },
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// A job's template and status: from memory while it has not ended, else from the store.
    pub async fn summary(
        &self,
        token: JobToken,
    ) -> Result<Option<(TemplateName, JobStatus)>, EngineError> {
        let live = self
            .queue()
            .live
            .get(&token)
            .map(|live| (live.template.clone(), *live.status.borrow()));
        match live {
            Some(summary) => Ok(Some(summary)),
            None => Ok(self.inner.store.summary(token).await?),
        }
    }

    /// Where a pending job stands in the queue: 1 is next to start. `None` unless it waits.
    pub fn queue_position(&self, token: JobToken) -> Option<usize> {
        self.queue()
            .waiting
            .iter()
            .position(|job| job.token == token)
            .map(|i| i + 1)
    }

    /// Watches a job's status while the job has not ended.
    pub(crate) fn status_watch(&self, token: JobToken) -> Option<watch::Receiver<JobStatus>> {
        self.queue()
            .live
            .get(&token)
            .map(|live| live.status.subscribe())
    }

    /// Cancels a job: a pending one never starts, an executing one has its processes ended and
    /// ends `Error` with `ERROR: Job canceled.`. Waits for the job to end, up to the kill grace
    /// period and a little more.
    pub async fn cancel(&self, token: JobToken) -> Result<Canceled, EngineError> {
        self.cancel_attempt(token, 0).await
    }

    async fn cancel_attempt(&self, token: JobToken, attempt: u32) -> Result<Canceled, EngineError> {
        enum Found {
            Waiting(QueuedJob),
            Running(Arc<Stopper>),
            Neither,
        }
        let found = {
            let mut queue = self.queue();
            if let Some(i) = queue.waiting.iter().position(|job| job.token == token) {
                Found::Waiting(queue.waiting.remove(i).expect("position is in range"))
            } else if let Some(stopper) = queue.running.get(&token) {
                Found::Running(stopper.clone())
            } else {
                Found::Neither
            }
        };
        match found {
            Found::Waiting(job) => {
                let log = JobLog::new(
                    job.token,
                    self.inner.store.clone(),
                    0,
                    job.secrets,
                    self.log_limits(),
                    None,
                );
                log.write_final(LogLevel::Error, CANCELED_MESSAGE).await?;
                self.finish(job.token, &job.template, JobStatus::Error)
                    .await?;
                tracing::info!(job = %token, "pending job canceled");
                Ok(Canceled::Stopped(JobStatus::Error))
            }
            Found::Running(stopper) => {
                stopper.stop(CANCELED_MESSAGE);
                tracing::info!(job = %token, "executing job canceled");
                let patience = self.inner.config.kill_grace + Duration::from_secs(5);
                match self.wait(token, patience).await? {
                    Some(status) if status.is_terminal() => Ok(Canceled::Stopped(status)),
                    _ => Ok(Canceled::Stopping),
                }
            }
            Found::Neither => match self.inner.store.status(token).await? {
                None => Ok(Canceled::Unknown),
                Some(status) if status.is_terminal() => Ok(Canceled::AlreadyEnded(status)),
                // Recorded but not queued yet: its trigger is between the commit and the queue.
                // That lasts moments; try again shortly, a bounded number of times.
                Some(_) => {
                    if attempt >= 100 {
                        return Ok(Canceled::Stopping);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Box::pin(self.cancel_attempt(token, attempt + 1)).await
                }
            },
        }
    }

    /// Stops starting jobs, lets running ones go on for the grace period, then stops them and
    /// records them as `Error`. Pending jobs stay pending for the next start.
    pub async fn shutdown(&self) {
        self.queue().closed = true;
        self.inner.background.cancel();
        let deadline = tokio::time::Instant::now() + self.inner.config.shutdown_grace;
        let mut stopped = false;
        loop {
            let ended = self.inner.job_ended.notified();
            {
                let queue = self.queue();
                if queue.running.is_empty() {
                    break;
                }
                if !stopped && tokio::time::Instant::now() >= deadline {
                    tracing::warn!(
                        jobs = queue.running.len(),
                        "stopping jobs still running at the end of the shutdown grace period"
                    );
                    for stopper in queue.running.values() {
                        stopper.stop(SHUTDOWN_MESSAGE);
                    }
                    stopped = true;
                }
            }
            if stopped {
                ended.await;
            } else {
                let _ = tokio::time::timeout_at(deadline, ended).await;
            }
        }
        if let Err(e) = self.inner.store.flush().await {
            tracing::error!(error = %e, "could not flush the store at shutdown");
        }
    }

    /// Queues a job found pending at start.
    async fn resume(&self, record: JobRecord) -> Result<(), EngineError> {
        let template = self.inner.templates.get(&record.template);
        match holt_plan::parse(&record.plan) {
            Ok(plan) => {
                let secrets = secrets_of(template.map(|t| t.as_ref()), &record.variables);
                let mut queue = self.queue();
                queue
                    .live
                    .insert(record.token, Live::new(record.template.clone()));
                queue.waiting.push_back(QueuedJob {
                    token: record.token,
                    template: record.template,
                    plan: Arc::new(plan),
                    secrets,
                    variables: record.variables,
                });
            }
            Err(diagnostics) => {
                // A plan recorded by an older build that this build cannot read: the job ends
                // with the reason rather than blocking the queue or vanishing.
                let log = JobLog::new(
                    record.token,
                    self.inner.store.clone(),
                    0,
                    Vec::new(),
                    self.log_limits(),
                    None,
                );
                let message =
                    format!("This job's plan cannot be run by this server: {diagnostics}");
                log.write_final(LogLevel::Error, &message).await?;
                self.inner
                    .store
                    .set_status(record.token, JobStatus::Error, now_ms())
                    .await?;
            }
        }
        Ok(())
    }

    fn log_limits(&self) -> LogLimits {
        LogLimits {
            max_lines: self.inner.config.max_log_lines_per_job,
            max_line_bytes: self.inner.config.max_log_line_bytes,
        }
    }

    fn enqueue(&self, job: QueuedJob) {
        {
            let mut queue = self.queue();
            queue
                .live
                .insert(job.token, Live::new(job.template.clone()));
            queue.waiting.push_back(job);
        }
        self.dispatch();
    }

    /// Starts waiting jobs, oldest first, while there is room overall and in their template.
    /// A job whose template is at its own limit keeps its place; later jobs of other templates
    /// may start before it.
    fn dispatch(&self) {
        let mut queue = self.queue();
        let max = self.inner.config.max_concurrent_jobs.max(1);
        let mut i = 0;
        while !queue.closed && queue.running.len() < max && i < queue.waiting.len() {
            let template = queue.waiting[i].template.clone();
            let limit = self
                .inner
                .templates
                .get(&template)
                .and_then(|t| t.max_concurrent);
            let running = queue
                .running_by_template
                .get(&template)
                .copied()
                .unwrap_or(0);
            if limit.is_some_and(|limit| running >= limit as usize) {
                i += 1;
                continue;
            }
            let job = queue.waiting.remove(i).expect("index is in range");
            let stopper = Arc::new(Stopper::default());
            queue.running.insert(job.token, stopper.clone());
            *queue
                .running_by_template
                .entry(template.clone())
                .or_default() += 1;
            let engine = self.clone();
            tokio::spawn(async move {
                let token = job.token;
                engine.run(job, &stopper).await;
                {
                    let mut queue = engine.queue();
                    queue.running.remove(&token);
                    if let Some(count) = queue.running_by_template.get_mut(&template) {
                        *count = count.saturating_sub(1);
                    }
                }
                engine.inner.job_ended.notify_waiters();
                engine.dispatch();
            });
        }
    }

    /// Runs one job to its terminal status. Store failures are logged: the job's record then
    /// stays `Executing`, which the next start turns into `Error` with an explanation.
    async fn run(&self, job: QueuedJob, stopper: &Stopper) {
        let token = job.token;
        if let Err(e) = self.try_run(job, stopper).await {
            tracing::error!(job = %token, error = %e, "could not record the job's progress");
        }
    }

    async fn try_run(&self, job: QueuedJob, stopper: &Stopper) -> Result<(), EngineError> {
        let store = &self.inner.store;
        store
            .set_status(job.token, JobStatus::Executing, now_ms())
            .await?;
        if let Some(live) = self.queue().live.get(&job.token) {
            live.status.send_replace(JobStatus::Executing);
        }
        tracing::info!(job = %job.token, template = %job.template, "job executing");
        let log = Arc::new(JobLog::new(
            job.token,
            store.clone(),
            0,
            job.secrets,
            self.log_limits(),
            Some(self.inner.metrics.clone()),
        ));
        let root = ScopePath::root();
        log.write(
            LogLevel::Debug,
            &root,
            &format!("Job started from template {}.", job.template),
        )
        .await?;

        let run = interp::run(
            &job.plan,
            job.token,
            &job.variables,
            log.clone(),
            &stopper.cancel,
            self.inner.config.kill_grace,
        );
        let timeout = self
            .inner
            .templates
            .get(&job.template)
            .and_then(|t| t.timeout);
        let state = match timeout {
            None => run.await?,
            Some(limit) => {
                tokio::pin!(run);
                tokio::select! {
                    state = &mut run => state?,
                    () = tokio::time::sleep(limit) => {
                        let shown = humantime::format_duration(limit);
                        stopper.stop(&format!("The job's timeout of {shown} elapsed; the job was stopped."));
                        run.await?
                    }
                }
            }
        };

        let (status, level, line) = match (stopper.reason.get(), state) {
            (Some(reason), _) => (JobStatus::Error, LogLevel::Error, reason.clone()),
            (None, ExecState::Normal) => (
                JobStatus::Succeeded,
                LogLevel::Info,
                "Job succeeded.".to_owned(),
            ),
            (None, ExecState::Warning) => (
                JobStatus::Warning,
                LogLevel::Warn,
                "Job completed with warnings.".to_owned(),
            ),
            (None, ExecState::Failing) => {
                (JobStatus::Error, LogLevel::Error, "Job failed.".to_owned())
            }
        };
        log.write_final(level, &line).await?;
        // The status is queued after every entry, so it commits with or after them: a client
        // that sees it can read the whole log.
        self.finish(job.token, &job.template, status).await?;
        tracing::info!(job = %job.token, status = %status, "job ended");
        Ok(())
    }

    /// Records a job's terminal status, then tells its waiters and forgets it.
    async fn finish(
        &self,
        token: JobToken,
        template: &TemplateName,
        status: JobStatus,
    ) -> Result<(), EngineError> {
        self.inner.store.set_status(token, status, now_ms()).await?;
        self.inner.metrics.finished(template, status);
        if let Some(live) = self.queue().live.remove(&token) {
            live.status.send_replace(status);
        }
        Ok(())
    }

    /// Deletes old finished jobs in small batches, every `retention_interval`, until shutdown.
    fn start_retention(&self) {
        let with_own: Vec<(TemplateName, u32)> = self
            .inner
            .templates
            .iter()
            .filter_map(|t| Some((t.name.clone(), t.retain_days?)))
            .collect();
        let engine = self.clone();
        tokio::spawn(async move {
            let stop = engine.inner.background.clone();
            loop {
                if let Err(e) = engine.retain_once(&with_own).await {
                    tracing::warn!(error = %e, "retention failed; it will be tried again");
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(engine.inner.config.retention_interval) => {}
                }
            }
        });
    }

    async fn retain_once(&self, with_own: &[(TemplateName, u32)]) -> Result<(), EngineError> {
        let day_ms = 24 * 60 * 60 * 1000_i64;
        let now = now_ms();
        let mut rules: Vec<RetentionRule> = with_own
            .iter()
            .map(|(name, days)| RetentionRule {
                before_ms: now - i64::from(*days) * day_ms,
                template: Some(name.clone()),
                except: Vec::new(),
            })
            .collect();
        if let Some(days) = self.inner.config.retain_days {
            rules.push(RetentionRule {
                before_ms: now - i64::from(days) * day_ms,
                template: None,
                except: with_own.iter().map(|(name, _)| name.clone()).collect(),
            });
        }
        let store = &self.inner.store;
        for rule in &rules {
            loop {
                let deleted = store.delete_finished(rule, RETENTION_BATCH).await?;
                if deleted > 0 {
                    tracing::info!(jobs = deleted, "retention deleted finished jobs");
                }
                if deleted < RETENTION_BATCH || self.inner.background.is_cancelled() {
                    break;
                }
                // Let triggers and log writes through between batches.
                tokio::task::yield_now().await;
            }
        }
        store
            .prune_idempotency(now - self.inner.config.idempotency_window.as_millis() as i64)
            .await?;
        Ok(())
    }
}

impl Live {
    fn new(template: TemplateName) -> Self {
        Live {
            template,
            status: watch::Sender::new(JobStatus::Pending),
        }
    }
}

/// The request an idempotency key stands for: the template and the trigger's own variables,
/// names case-folded and sorted, each part length-prefixed so no two requests collide.
fn fingerprint(template: &TemplateName, variables: &Variables) -> String {
    let mut out = format!("{}:{}", template.as_str().len(), template.as_str());
    for (name, value) in variables.iter() {
        out.push_str(&format!(
            ";{}:{}={}:{}",
            name.key().len(),
            name.key(),
            value.len(),
            value
        ));
    }
    out
}

/// The values to mask in a job's log: those of the variables its template declares secret.
fn secrets_of(template: Option<&Template>, variables: &Variables) -> Vec<String> {
    let Some(template) = template else {
        return Vec::new();
    };
    template
        .variables
        .iter()
        .filter(|decl| decl.secret)
        .filter_map(|decl| variables.get(decl.name.as_str()).map(str::to_owned))
        .collect()
}
