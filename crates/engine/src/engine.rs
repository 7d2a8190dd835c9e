//! The job queue and the life of a job, from trigger to terminal status.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use holt_domain::{
    JobStatus, JobToken, LogLevel, ScopePath, Template, TemplateCatalog, TemplateName, Variables,
};
use holt_plan::Plan;
use holt_storage::{JobRecord, JobStore, NewJob};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::EngineError;
use crate::clock::now_ms;
use crate::interp::{self, ExecState};
use crate::joblog::{JobLog, LogLimits};
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
        }
    }
}

/// The line a job gets when a previous process stopped while it ran.
pub(crate) const INTERRUPTED_MESSAGE: &str =
    "The server stopped while this job was executing; the job did not finish.";

/// The line a job gets when this process shuts down before it finishes.
const SHUTDOWN_MESSAGE: &str =
    "The server shut down while this job was executing; the job was stopped.";

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
}

#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<QueuedJob>,
    running: HashMap<JobToken, Arc<Stopper>>,
    /// Cleared by shutdown: no job starts after that.
    closed: bool,
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
            }),
        };
        for record in recovery.pending {
            engine.resume(record).await?;
        }
        engine.dispatch();
        Ok(engine)
    }

    /// The loaded templates.
    pub fn templates(&self) -> &TemplateCatalog {
        &self.inner.templates
    }

    /// The store jobs are recorded in.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.inner.store
    }

    /// Records a new job from `template` with the trigger's `variables` laid over the template's
    /// defaults, queues it, and returns its token once the job is durable.
    pub async fn trigger(
        &self,
        template: &Arc<Template>,
        variables: &Variables,
    ) -> Result<JobToken, EngineError> {
        {
            let queue = self.inner.queue.lock().expect("queue lock");
            if queue.closed {
                return Err(EngineError::ShuttingDown);
            }
            let limit = self.inner.config.max_pending_jobs;
            if queue.waiting.len() >= limit {
                return Err(EngineError::QueueFull { limit });
            }
        }
        let variables = template.defaults().overridden_by(variables);
        // Recording and queueing run in their own task: should the store be too slow to confirm
        // in time, the caller gets an answer while the job, once recorded, still runs.
        let engine = self.clone();
        let template = template.clone();
        let record = tokio::spawn(async move {
            let token = engine
                .inner
                .store
                .create_job(NewJob {
                    template: template.name.clone(),
                    plan: template.plan_source.clone(),
                    variables: variables.clone(),
                    created_ms: now_ms(),
                })
                .await?;
            tracing::debug!(job = %token, template = %template.name, "job created");
            engine.enqueue(QueuedJob {
                token,
                template: template.name.clone(),
                plan: Arc::new(template.plan.clone()),
                secrets: secrets_of(Some(&template), &variables),
                variables,
            });
            Ok::<_, EngineError>(token)
        });
        let timeout = self.inner.config.store_timeout;
        let token = match tokio::time::timeout(timeout, record).await {
            Ok(Ok(result)) => result?,
            Ok(Err(e)) => {
                return Err(EngineError::Store(holt_storage::StoreError::Database(
                    Box::new(e),
                )));
            }
            Err(_) => {
                return Err(EngineError::StoreTimeout {
                    seconds: timeout.as_secs(),
                });
            }
        };
        Ok(token)
    }

    /// Stops starting jobs, lets running ones go on for the grace period, then stops them and
    /// records them as `Error`. Pending jobs stay pending for the next start.
    pub async fn shutdown(&self) {
        self.inner.queue.lock().expect("queue lock").closed = true;
        let deadline = tokio::time::Instant::now() + self.inner.config.shutdown_grace;
        let mut stopped = false;
        loop {
            let ended = self.inner.job_ended.notified();
            {
                let queue = self.inner.queue.lock().expect("queue lock");
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
                self.inner
                    .queue
                    .lock()
                    .expect("queue lock")
                    .waiting
                    .push_back(QueuedJob {
                        token: record.token,
                        template: record.template,
                        plan: Arc::new(plan),
                        secrets: secrets_of(template.map(|t| t.as_ref()), &record.variables),
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
                );
                let message =
                    format!("This job's plan cannot be run by this server: {diagnostics}");
                log.write(LogLevel::Error, &ScopePath::root(), &message)
                    .await?;
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
        self.inner
            .queue
            .lock()
            .expect("queue lock")
            .waiting
            .push_back(job);
        self.dispatch();
    }

    /// Starts waiting jobs while there is room.
    fn dispatch(&self) {
        let mut queue = self.inner.queue.lock().expect("queue lock");
        while !queue.closed && queue.running.len() < self.inner.config.max_concurrent_jobs.max(1) {
            let Some(job) = queue.waiting.pop_front() else {
                break;
            };
            let stopper = Arc::new(Stopper::default());
            queue.running.insert(job.token, stopper.clone());
            let engine = self.clone();
            tokio::spawn(async move {
                let token = job.token;
                engine.run(job, &stopper).await;
                engine
                    .inner
                    .queue
                    .lock()
                    .expect("queue lock")
                    .running
                    .remove(&token);
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
        tracing::info!(job = %job.token, template = %job.template, "job executing");
        let log = Arc::new(JobLog::new(
            job.token,
            store.clone(),
            0,
            job.secrets,
            self.log_limits(),
        ));
        let root = ScopePath::root();
        log.write(
            LogLevel::Debug,
            &root,
            &format!("Job started from template {}.", job.template),
        )
        .await?;

        let state = interp::run(
            &job.plan,
            job.token,
            &job.variables,
            log.clone(),
            &stopper.cancel,
            self.inner.config.kill_grace,
        )
        .await?;

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
        store.set_status(job.token, status, now_ms()).await?;
        tracing::info!(job = %job.token, status = %status, "job ended");
        Ok(())
    }
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
