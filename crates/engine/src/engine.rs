//! The engine's face: starting, triggering, waiting, cancelling and shutting down.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use holt_domain::{
    Credentials, InfraChange, Inventory, JobFilter, JobStatus, JobSummary, JobToken, LogLevel,
    Template, TemplateCatalog, TemplateName, TriggerSource, Variables,
};
use holt_storage::{Idempotency, JobStore, NewJob};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::EngineError;
use crate::clock::now_ms;
use crate::config::EngineConfig;
use crate::joblog::JobLog;
use crate::metrics::Metrics;
use crate::process;
use crate::queue::{Admission, JobQueue, Place, QueuedJob};
use crate::sync::lock;

/// The line a job gets when a previous process stopped while it ran.
pub const INTERRUPTED_MESSAGE: &str =
    "The server stopped while this job was executing; the job did not finish.";

/// The line a job gets when this process shuts down before it finishes.
pub(crate) const SHUTDOWN_MESSAGE: &str =
    "The server shut down while this job was executing; the job was stopped.";

/// The line a canceled job ends with.
pub(crate) const CANCELED_MESSAGE: &str = "Job canceled.";

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
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn JobStore>,
    /// The templates as loaded now; a reload swaps the whole catalog.
    templates: Mutex<Arc<TemplateCatalog>>,
    /// The credentials file's entries as loaded now; a reload swaps them whole.
    credentials: Mutex<Arc<Credentials>>,
    pub(crate) config: EngineConfig,
    pub(crate) queue: Arc<JobQueue>,
    pub(crate) metrics: Arc<Metrics>,
    /// Stops background work (retention, a node's lease and claims) at shutdown.
    pub(crate) background: CancellationToken,
    /// This node, when the store is shared by several.
    pub(crate) node: Option<crate::cluster::Node>,
    /// The mark this process's job processes carry (see `process::INSTANCE_ENV`): the store's
    /// instance id, and the node's name when the store is shared.
    pub(crate) mark: String,
    /// Wakes the webhook delivery loop when a webhook is added.
    pub(crate) webhook_wake: tokio::sync::Notify,
    /// The scheduled templates' tasks and counters.
    pub(crate) schedules: crate::schedule::Schedules,
}

impl Engine {
    /// Recovers what a previous process left in the store, then starts running pending jobs.
    /// A configuration outside its sensible ranges is refused (see
    /// [`EngineConfig::problems`]).
    pub async fn start(
        store: Arc<dyn JobStore>,
        templates: TemplateCatalog,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(EngineError::Config(problems.join("; ")));
        }
        // A shared store's jobs are not this process's alone: the queue is the store's, and
        // the jobs of dead nodes are settled by lease, not by whoever starts next.
        let (recovery, node) = match store.cluster() {
            Some(cluster) => {
                let name = config
                    .node_name
                    .clone()
                    .unwrap_or_else(crate::cluster::default_node_name);
                let lease = cluster
                    .join(&name, config.node_lease, INTERRUPTED_MESSAGE)
                    .await?;
                tracing::info!(node = %name, generation = lease.generation, "joined the cluster");
                (None, Some(crate::cluster::Node::new(name, lease)))
            }
            None => (
                Some(store.recover(INTERRUPTED_MESSAGE, now_ms()).await?),
                None,
            ),
        };
        if let Some(recovery) = &recovery {
            for token in &recovery.interrupted {
                tracing::warn!(job = %token, "job was executing when the server stopped; marked Error");
            }
        }
        // Processes of jobs a crashed server was running are still alive: end them before any
        // new job starts, so nothing of an interrupted job runs on. A node's processes carry
        // its name too, so that nodes sharing a machine leave each other's alone.
        let mark = match &node {
            Some(node) => format!("{}-{}", store.instance_id(), node.name),
            None => store.instance_id().to_owned(),
        };
        let orphans = process::end_orphans(&mark, config.kill_grace).await;
        if orphans > 0 {
            tracing::warn!(
                processes = orphans,
                "ended processes left by interrupted jobs"
            );
        }
        let engine = Engine {
            inner: Arc::new(Inner {
                store,
                templates: Mutex::new(Arc::new(templates)),
                credentials: Mutex::default(),
                config,
                queue: Arc::default(),
                metrics: Arc::new(Metrics::default()),
                background: CancellationToken::new(),
                node,
                mark,
                webhook_wake: tokio::sync::Notify::new(),
                schedules: Default::default(),
            }),
        };
        let recovery = recovery.unwrap_or_default();
        for token in recovery.interrupted {
            engine.enqueue_webhooks_of(token).await;
        }
        for record in recovery.pending {
            engine.resume(record).await?;
        }
        if engine.inner.node.is_some() {
            engine.start_node();
        }
        engine.dispatch();
        engine.start_retention();
        engine.follow_schedules(true);
        Ok(engine)
    }

    /// The templates as loaded now.
    pub fn templates(&self) -> Arc<TemplateCatalog> {
        lock(&self.inner.templates).clone()
    }

    /// Replaces the loaded templates. Jobs already queued keep the plan they were created
    /// with; new triggers, key checks and policies use the new catalog.
    pub fn reload_templates(&self, templates: TemplateCatalog) {
        *lock(&self.inner.templates) = Arc::new(templates);
        // A template's new limit may let waiting jobs start.
        self.dispatch();
        self.follow_schedules(false);
    }

    /// The credentials servers are reached with, as loaded now.
    pub fn credentials(&self) -> Arc<Credentials> {
        lock(&self.inner.credentials).clone()
    }

    /// Replaces the credentials; work already connected to a server goes on with what it has.
    pub fn set_credentials(&self, credentials: Credentials) {
        *lock(&self.inner.credentials) = Arc::new(credentials);
    }

    /// The store jobs are recorded in; only the engine reaches it.
    pub(crate) fn store(&self) -> &Arc<dyn JobStore> {
        &self.inner.store
    }

    /// The infrastructure model: servers, roles and environments.
    pub async fn inventory(&self) -> Result<Inventory, EngineError> {
        Ok(self.inner.store.inventory().await?)
    }

    /// Applies a change to the infrastructure model atomically and returns the model after it.
    pub async fn change_inventory(&self, change: InfraChange) -> Result<Inventory, EngineError> {
        self.health()?;
        Ok(self.inner.store.change_inventory(change).await?)
    }

    /// Whether the engine can accept jobs: the store is still the database it opened.
    pub fn health(&self) -> Result<(), EngineError> {
        Ok(self.inner.store.health()?)
    }

    /// The engine's counters, for `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Appends the engine's gauges and counters in the Prometheus text format.
    /// On a node of a cluster, the jobs are this node's, the queue depth is the cluster's
    /// (pending jobs in the database), and `holt_node` names the node and its lease.
    pub async fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let (mut depth, jobs) = self.inner.queue.counts();
        if let Some((cluster, node)) = self.node() {
            match cluster.pending().await {
                Ok(pending) => depth = pending,
                Err(e) => tracing::warn!(error = %e, "cannot count the cluster's pending jobs"),
            }
            let lease = node.lease();
            out.push_str(
                "# HELP holt_node This node of the cluster and its lease's generation.\n\
                 # TYPE holt_node gauge\n",
            );
            let _ = writeln!(
                out,
                "holt_node{{name=\"{}\",generation=\"{}\"}} 1",
                crate::metrics::escape(&node.name),
                lease.generation
            );
        }
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
        self.render_schedule_metrics(out);
    }

    /// Records a new job from `template` with the trigger's `variables` laid over the
    /// template's defaults, queues it, and returns its token once the job is durable. The
    /// template's concurrency policy and an idempotency key may return an existing job instead.
    /// The job is recorded as triggered over the API.
    pub async fn trigger(
        &self,
        template: &Arc<Template>,
        variables: &Variables,
        idempotency_key: Option<&str>,
    ) -> Result<Triggered, EngineError> {
        self.trigger_from(template, variables, idempotency_key, TriggerSource::Api)
            .await
    }

    /// [`Engine::trigger`], recording `source` as what triggered the job.
    pub async fn trigger_from(
        &self,
        template: &Arc<Template>,
        variables: &Variables,
        idempotency_key: Option<&str>,
        source: TriggerSource,
    ) -> Result<Triggered, EngineError> {
        self.health()?;
        if self.inner.node.is_some() {
            return self
                .trigger_shared(template, variables, idempotency_key, source)
                .await;
        }
        let admission = self
            .inner
            .queue
            .admit(
                template,
                idempotency_key.is_some(),
                self.inner.config.max_pending_jobs,
            )
            .await?;
        let reservation = match admission {
            Admission::Existing(token) => return Ok(Triggered::Existing(token)),
            Admission::Admit(reservation) => reservation,
        };
        let merged = template.defaults().overridden_by(variables);
        let idempotency = idempotency_key.map(|key| Idempotency {
            key: scoped_key(&template.name, key),
            // Stored as a keyed digest: the fingerprint covers every value, secrets included.
            fingerprint: (self.inner.config.secrets_key)
                .digest(&fingerprint(&template.name, variables)),
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
                .create_job_from(
                    NewJob {
                        template: template.name.clone(),
                        plan: template.plan_source.clone(),
                        // Secret values are stored sealed (see the `secrets` module).
                        variables: crate::secrets::seal_variables(
                            &engine.inner.config.secrets_key,
                            &template,
                            &merged,
                        ),
                        created_ms: now_ms(),
                        idempotency,
                    },
                    source,
                )
                .await?;
            if !created.fresh {
                return Ok(Triggered::Existing(created.token));
            }
            tracing::debug!(job = %created.token, template = %template.name, "job created");
            engine.inner.metrics.triggered(&template.name);
            let policy = reservation.enqueue(QueuedJob {
                token: created.token,
                template: template.name.clone(),
                plan: template.plan.clone(),
                secrets: crate::run::secrets_of(Some(&template), &merged),
                variables: merged,
                first_seq: 0,
                claimed: false,
            });
            // Released only after the start, so the next trigger of a template whose policy
            // depends on the queue sees what a trigger after this one returned would see.
            engine.dispatch();
            drop(policy);
            Ok::<_, EngineError>(Triggered::Created(created.token))
        });
        let timeout = self.inner.config.store_timeout;
        match tokio::time::timeout(timeout, record).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(EngineError::Internal(e.to_string())),
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
        let Some(mut status) = self.status_watch(token).await? else {
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

    /// A page of jobs, newest first, as the store holds them.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobSummary>, EngineError> {
        Ok(self.inner.store.list_jobs(filter).await?)
    }

    /// A job's template and status: from memory while it has not ended, else from the store.
    pub async fn summary(
        &self,
        token: JobToken,
    ) -> Result<Option<(TemplateName, JobStatus)>, EngineError> {
        match self.inner.queue.summary(token) {
            Some(summary) => Ok(Some(summary)),
            None => Ok(self.inner.store.summary(token).await?),
        }
    }

    /// Where a pending job stands in the queue: 1 is next to start. `None` unless it waits.
    pub async fn queue_position(&self, token: JobToken) -> Option<usize> {
        match self.node() {
            Some((cluster, _)) => cluster.position(token).await.ok().flatten(),
            None => self.inner.queue.position(token),
        }
    }

    /// Watches a job's status while the job has not ended: this process's own watch, or, for a
    /// job of another node, the store's.
    pub(crate) async fn status_watch(
        &self,
        token: JobToken,
    ) -> Result<Option<watch::Receiver<JobStatus>>, EngineError> {
        if let Some(watch) = self.inner.queue.watch_status(token) {
            return Ok(Some(watch));
        }
        match self.node() {
            Some((cluster, _)) => Ok(cluster.watch_status(token).await?),
            None => Ok(None),
        }
    }

    /// Cancels a job: a pending one never starts, an executing one has its processes ended and
    /// ends `Error` with `ERROR: Job canceled.`. Waits for the job to end, up to the kill grace
    /// period and a little more.
    pub async fn cancel(&self, token: JobToken) -> Result<Canceled, EngineError> {
        let patience = self.inner.config.kill_grace + Duration::from_secs(5);
        let deadline = tokio::time::Instant::now() + patience;
        if self.inner.node.is_some() {
            return self.cancel_shared(token, deadline).await;
        }
        loop {
            // Registered before the queue is looked at, so a job queued right after the look
            // still wakes this cancel.
            let enqueued = self.inner.queue.enqueued.notified();
            tokio::pin!(enqueued);
            enqueued.as_mut().enable();
            match self.inner.queue.take_for_cancel(token) {
                Place::Waiting(job) => {
                    let log = JobLog::new(
                        job.token,
                        self.inner.store.clone(),
                        job.first_seq,
                        job.secrets,
                        self.log_limits(),
                        None,
                    );
                    log.write_final(LogLevel::Error, CANCELED_MESSAGE).await?;
                    let none = holt_domain::Outputs::new();
                    self.finish(job.token, &job.template, JobStatus::Error, &none)
                        .await?;
                    tracing::info!(job = %token, "pending job canceled");
                    return Ok(Canceled::Stopped(JobStatus::Error));
                }
                Place::Running(stopper) => {
                    stopper.stop(CANCELED_MESSAGE);
                    tracing::info!(job = %token, "executing job canceled");
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    return match self.wait(token, left).await? {
                        Some(status) if status.is_terminal() => Ok(Canceled::Stopped(status)),
                        _ => Ok(Canceled::Stopping),
                    };
                }
                Place::Neither => match self.inner.store.status(token).await? {
                    None => return Ok(Canceled::Unknown),
                    Some(status) if status.is_terminal() => {
                        return Ok(Canceled::AlreadyEnded(status));
                    }
                    // Recorded but not queued yet: its trigger is between the commit and the
                    // queue. The queueing wakes this loop.
                    Some(_) => {
                        if tokio::time::timeout_at(deadline, enqueued).await.is_err() {
                            return Ok(Canceled::Stopping);
                        }
                    }
                },
            }
        }
    }

    /// Stops starting jobs, lets running ones go on for the grace period, then stops them and
    /// records them as `Error`. Pending jobs stay pending for the next start.
    pub async fn shutdown(&self) {
        let queue = &self.inner.queue;
        queue.close();
        self.inner.background.cancel();
        let deadline = tokio::time::Instant::now() + self.inner.config.shutdown_grace;
        let mut stopped = false;
        loop {
            let ended = queue.job_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if queue.running() == 0 {
                break;
            }
            if !stopped && tokio::time::Instant::now() >= deadline {
                let jobs = queue.stop_all(SHUTDOWN_MESSAGE);
                tracing::warn!(
                    jobs,
                    "stopping jobs still running at the end of the shutdown grace period"
                );
                stopped = true;
            }
            if stopped {
                ended.await;
            } else {
                let _ = tokio::time::timeout_at(deadline, ended).await;
            }
        }
        // Every job has ended: whatever escaped their process groups goes too.
        process::end_escaped(self.inner.config.kill_grace).await;
        if let Err(e) = self.inner.store.flush().await {
            tracing::error!(error = %e, "could not flush the store at shutdown");
        }
        if let Some((cluster, node)) = self.node() {
            node.stop.cancel();
            if let Err(e) = cluster.leave(&node.lease()).await {
                tracing::warn!(error = %e, "could not give this node's lease back");
            }
        }
    }
}

/// An idempotency key as stored: scoped to its template, so the same key sent to two templates
/// stands for two jobs.
pub(crate) fn scoped_key(template: &TemplateName, key: &str) -> String {
    format!("{}:{}:{key}", template.as_str().len(), template.as_str())
}

/// The request an idempotency key stands for: the template and the trigger's own variables,
/// names case-folded and sorted, each part length-prefixed so no two requests collide. It holds
/// every value, so only a keyed digest of it is stored.
pub(crate) fn fingerprint(template: &TemplateName, variables: &Variables) -> String {
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
