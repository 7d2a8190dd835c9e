//! The life of a queued job: starting it in a free slot, running its plan, recording its end.

use std::sync::Arc;

use holt_domain::{
    InfraName, JobStatus, JobToken, LogLevel, Outputs, ScopePath, Server, Template, TemplateName,
    Variables,
};
use holt_storage::JobRecord;

use crate::EngineError;
use crate::clock::now_ms;
use crate::engine::Engine;
use crate::interp::value::Globals;
use crate::interp::{self, ExecState};
use crate::joblog::{JobLog, LogLimits};
use crate::queue::{QueuedJob, Slot, Stopper};

/// The line a job ends with when the engine itself failed while running it.
pub(crate) const INTERNAL_ERROR_MESSAGE: &str =
    "An internal error stopped this job; the server's log has the details.";

impl Engine {
    /// Queues a job found pending at start, behind those already queued.
    pub(crate) async fn resume(&self, record: JobRecord) -> Result<(), EngineError> {
        if let Some(job) = self.prepare(record).await? {
            self.inner.queue.resume(job);
        }
        Ok(())
    }

    /// What running a recorded job takes: its variables opened, its plan parsed, where its log
    /// goes on. A job that cannot run (values this key cannot open, a plan this build cannot
    /// read) ends here with the reason, and `None` is returned.
    pub(crate) async fn prepare(
        &self,
        mut record: JobRecord,
    ) -> Result<Option<QueuedJob>, EngineError> {
        let claimed = self.inner.node.is_some();
        // Secret values were stored sealed; a job whose values this key cannot open fails alone.
        let key = &self.inner.config.secrets_key;
        match crate::secrets::open_variables(key, &record.variables) {
            Some(variables) => record.variables = variables,
            None if claimed => {
                self.end_claimed_unrun(record.token, crate::secrets::UNDECRYPTABLE_MESSAGE)
                    .await?;
                return Ok(None);
            }
            None => {
                let (store, limits) = (&self.inner.store, self.log_limits());
                crate::secrets::fail_undecryptable(store, record.token, limits).await?;
                return Ok(None);
            }
        }
        let template = self.templates().get(&record.template).cloned();
        match holt_plan::parse(&record.plan) {
            Ok(plan) => {
                let secrets = secrets_of(template.as_deref(), &record.variables);
                // A previous process may have handed over the job's first line before it
                // stopped; the job's log goes on after it rather than numbering from 0 again.
                let first_seq = self
                    .inner
                    .store
                    .last_seq(record.token)
                    .await?
                    .map_or(0, |seq| seq + 1);
                Ok(Some(QueuedJob {
                    token: record.token,
                    template: record.template,
                    plan: Arc::new(plan),
                    secrets,
                    variables: record.variables,
                    first_seq,
                    claimed,
                }))
            }
            Err(diagnostics) => {
                // A plan recorded by an older build that this build cannot read: the job ends
                // with the reason rather than blocking the queue or vanishing.
                let message =
                    format!("This job's plan cannot be run by this server: {diagnostics}");
                if claimed {
                    self.end_claimed_unrun(record.token, &message).await?;
                } else {
                    self.end_unrun(record.token, &message).await?;
                }
                Ok(None)
            }
        }
    }

    /// Writes `message` as an `ERROR` line after whatever the job's log holds, and waits for it
    /// to be durable.
    pub(crate) async fn write_last_line(
        &self,
        token: JobToken,
        message: &str,
    ) -> Result<(), EngineError> {
        let next = self
            .inner
            .store
            .last_seq(token)
            .await?
            .map_or(0, |seq| seq + 1);
        let log = JobLog::new(
            token,
            self.inner.store.clone(),
            next,
            Vec::new(),
            self.log_limits(),
            None,
        );
        log.write_final(LogLevel::Error, message).await?;
        Ok(())
    }

    /// Ends a job that never ran with one `ERROR` line saying why.
    pub(crate) async fn end_unrun(
        &self,
        token: JobToken,
        message: &str,
    ) -> Result<(), EngineError> {
        let log = JobLog::new(
            token,
            self.inner.store.clone(),
            0,
            Vec::new(),
            self.log_limits(),
            None,
        );
        log.write_final(LogLevel::Error, message).await?;
        self.inner
            .store
            .set_status(token, JobStatus::Error, now_ms())
            .await?;
        self.enqueue_webhooks_of(token).await;
        Ok(())
    }

    pub(crate) fn log_limits(&self) -> LogLimits {
        LogLimits {
            max_lines: self.inner.config.max_log_lines_per_job,
            max_line_bytes: self.inner.config.max_log_line_bytes,
            max_bytes: self.inner.config.max_log_bytes_per_job,
        }
    }

    /// Starts waiting jobs in free slots, each in a task of its own. Should a run panic, the
    /// panic is caught at the task's top and the job recorded as failed; the slot is freed
    /// either way.
    pub(crate) fn dispatch(&self) {
        if let Some((_, node)) = self.node() {
            node.wake();
            return;
        }
        let templates = self.templates();
        let started = self
            .inner
            .queue
            .startable(&templates, self.inner.config.max_concurrent_jobs);
        for (job, stopper, slot) in started {
            let engine = self.clone();
            tokio::spawn(async move {
                engine.supervise(job, stopper, slot).await;
                engine.dispatch();
            });
        }
    }

    pub(crate) async fn supervise(&self, job: QueuedJob, stopper: Arc<Stopper>, slot: Slot) {
        use futures_util::FutureExt;
        let token = job.token;
        let template = job.template.clone();
        // Caught in the job's own task rather than by watching it from a second one: a task
        // per executing job is what many thousands of them cost in memory.
        let run = std::panic::AssertUnwindSafe(self.run(job, &stopper))
            .catch_unwind()
            .await;
        match run {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(job = %token, error = %e, "could not record the job's progress");
            }
            Err(_) => {
                // The job must not stay `Executing` with its slot taken.
                tracing::error!(job = %token, "a job's run panicked");
                if let Err(e) = self.fail_internally(token, &template).await {
                    tracing::error!(job = %token, error = %e, "could not record the job's failure");
                }
            }
        }
        drop(slot);
    }

    /// Ends a job whose run broke down with the internal-error line.
    async fn fail_internally(
        &self,
        token: JobToken,
        template: &TemplateName,
    ) -> Result<(), EngineError> {
        self.write_last_line(token, INTERNAL_ERROR_MESSAGE).await?;
        self.finish(token, template, JobStatus::Error, &Outputs::new())
            .await
    }

    /// Runs one job to its terminal status. A store failure leaves the job `Executing`, which
    /// the next start turns into `Error` with an explanation.
    async fn run(&self, job: QueuedJob, stopper: &Stopper) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let log = Arc::new(JobLog::new(
            job.token,
            store.clone(),
            job.first_seq,
            job.secrets.clone(),
            self.log_limits(),
            Some(self.inner.metrics.clone()),
        ));
        // The first line is handed over before the status change, and the store applies writes
        // in order: once `Executing` is durable, and shown, the line is readable too.
        log.write(
            LogLevel::Debug,
            &ScopePath::root(),
            &format!("Job started from template {}.", job.template),
        )
        .await?;
        // The job is durably `Executing` before any of its plan is evaluated: should evaluating
        // it bring the process down, the next start ends it rather than running it again. A
        // claimed job became `Executing` with its claim.
        if !job.claimed {
            store
                .set_status(job.token, JobStatus::Executing, now_ms())
                .await?;
        }
        self.inner.queue.executing(job.token);
        tracing::info!(job = %job.token, template = %job.template, "job executing");

        let infra = interp::Infra {
            inventory: Arc::new(self.inventory().await?),
            credentials: self.credentials(),
            known_hosts: self.inner.config.ssh_known_hosts.clone(),
            connect_timeout: self.inner.config.ssh_connect_timeout,
            mark: self.inner.mark.clone(),
        };
        let template = self.templates().get(&job.template).cloned();
        let run = self.run_targets(&job, &log, stopper, infra, template.as_deref());
        let timeout = template.as_ref().and_then(|t| t.timeout);
        let (state, globals) = match timeout {
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
        let outputs = crate::outputs::collect(template.as_deref(), &globals, &log).await?;
        log.write_final(level, &line).await?;
        // The status is queued after every entry, so it commits with or after them: a client
        // that sees it can read the whole log.
        self.finish(job.token, &job.template, status, &outputs)
            .await?;
        tracing::info!(job = %job.token, status = %status, "job ended");
        Ok(())
    }

    /// Runs a job's plan where its template targets it: on `localhost` as a plain plan when the
    /// template names no target, otherwise once per targeted server, in a log scope named after
    /// it, up to `parallel_servers` at once in name order. The state is the worst of the runs';
    /// the globals are each run's, in server name order.
    async fn run_targets(
        &self,
        job: &QueuedJob,
        log: &Arc<JobLog>,
        stopper: &Stopper,
        infra: interp::Infra,
        template: Option<&Template>,
    ) -> Result<(ExecState, Vec<Globals>), EngineError> {
        use futures_util::StreamExt;
        let kill_grace = self.inner.config.kill_grace;
        let Some(template) = template.filter(|t| !t.targets.is_empty()) else {
            let place = interp::Place::default();
            let run = interp::run(
                &job.plan,
                job.token,
                &job.variables,
                log.clone(),
                &stopper.cancel,
                kill_grace,
                infra,
                place,
                ScopePath::root(),
            );
            let (state, globals) = run.await?;
            return Ok((state, vec![globals]));
        };
        let targets = &template.targets;
        let inventory = infra.inventory.clone();
        let servers: Vec<Server> = targets.resolve(&inventory).into_iter().cloned().collect();
        if servers.is_empty() {
            let list = |names: &[InfraName]| {
                names
                    .iter()
                    .map(InfraName::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let message = format!(
                "The template targets no active server (servers: [{}], roles: [{}], environments: [{}]).",
                list(&targets.servers),
                list(&targets.roles),
                list(&targets.environments)
            );
            log.write(LogLevel::Error, &ScopePath::root(), &message)
                .await?;
            return Ok((ExecState::Failing, Vec::new()));
        }
        let runs = servers.into_iter().map(|server| {
            // The role and environment in context are the first of the server's that the
            // template named, if it named any.
            let role = server
                .roles
                .iter()
                .find(|r| targets.roles.contains(r))
                .map(|r| r.as_str().to_owned());
            let environment = server
                .environments
                .iter()
                .find(|e| {
                    targets
                        .environments
                        .iter()
                        .any(|a| inventory.is_within(e, a))
                })
                .map(|e| e.as_str().to_owned());
            let scope = ScopePath::root().child(server.name.as_str());
            let place = interp::Place {
                server: Some(Arc::new(server)),
                role,
                environment,
            };
            interp::run(
                &job.plan,
                job.token,
                &job.variables,
                log.clone(),
                &stopper.cancel,
                kill_grace,
                infra.clone(),
                place,
                scope,
            )
        });
        let parallel = usize::try_from(template.parallel_servers).unwrap_or(usize::MAX);
        let states: Vec<_> = futures_util::stream::iter(runs)
            .buffered(parallel.max(1))
            .collect()
            .await;
        let mut worst = ExecState::Normal;
        let mut all = Vec::with_capacity(states.len());
        for run in states {
            let (state, globals) = run?;
            worst = worst.max(state);
            all.push(globals);
        }
        Ok((worst, all))
    }

    /// Records a job's terminal status and outputs, then tells its waiters and forgets it.
    pub(crate) async fn finish(
        &self,
        token: JobToken,
        template: &TemplateName,
        status: JobStatus,
        outputs: &Outputs,
    ) -> Result<(), EngineError> {
        let held = match self.node() {
            Some((cluster, node)) => {
                self.finish_claimed(cluster, node, token, status, outputs)
                    .await?
            }
            None => {
                let store = &self.inner.store;
                store.end_job(token, status, now_ms(), outputs).await?;
                true
            }
        };
        self.inner.metrics.finished(template, status);
        self.inner.queue.ended(token, status);
        if held {
            self.enqueue_webhooks(token, template, status).await;
        }
        Ok(())
    }
}

/// The values to mask in a job's log: those of the variables its template declares secret.
pub(crate) fn secrets_of(template: Option<&Template>, variables: &Variables) -> Vec<String> {
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
