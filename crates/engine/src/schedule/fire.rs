//! Firing one slot: a trigger like the API's (the template's defaults, its `max_concurrent` and
//! `on_limit`, the queue's limit), with `$ScheduledFor` set and `schedule` as its source, whose
//! firing is recorded in the same transaction as its job.
//!
//! On one node the queue's admission decides first, in memory; then the store records the
//! firing and the job together, or, when admission refused or a waiting job stands for the
//! slot, the firing alone. On a shared store, the store records the firing and admits the job
//! in one transaction; of several nodes firing a slot, the first to commit wins and the others
//! are told the slot is taken.

use std::sync::Arc;

use holt_domain::{JobToken, Schedule, Template, TemplateName, Variables};
use holt_storage::{Admitted, Firing, NewJob, Policy};

use crate::EngineError;
use crate::clock::now_ms;
use crate::engine::Engine;
use crate::queue::{Admission, QueuedJob};

/// What firing a slot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fired {
    /// A new job.
    Created(JobToken),
    /// A waiting job stands for the slot (`skip_if_pending`).
    Existing(JobToken),
    /// The template's policy or the queue refused the job; the slot is recorded as fired.
    Refused(String),
    /// The slot was fired already: by another node, or before a restart.
    Taken,
}

impl Engine {
    /// Fires `slot` of the template `name` as loaded now.
    pub(crate) async fn fire_slot(
        &self,
        name: &TemplateName,
        schedule: &Schedule,
        slot: i64,
    ) -> Result<Fired, EngineError> {
        self.health()?;
        let Some(template) = self.templates().get(name).cloned() else {
            return Err(EngineError::Internal(format!("template {name} is gone")));
        };
        let firing = Firing {
            template: name.clone(),
            slot_ms: slot,
            at_ms: now_ms(),
        };
        let mut variables = Variables::new();
        variables.insert(
            "ScheduledFor"
                .parse()
                .map_err(|e| EngineError::Internal(format!("{e}")))?,
            schedule.format(slot),
        );
        let merged = template.defaults().overridden_by(&variables);
        let job = NewJob {
            template: name.clone(),
            plan: template.plan_source.clone(),
            // Secret values are stored sealed (see the `secrets` module).
            variables: crate::secrets::seal_variables(
                &self.inner.config.secrets_key,
                &template,
                &merged,
            ),
            created_ms: now_ms(),
            idempotency: None,
        };
        let timeout = self.inner.config.store_timeout;
        let fired = if self.inner.node.is_some() {
            tokio::time::timeout(timeout, self.fire_shared(&template, firing, job)).await
        } else {
            // Recording and queueing run in a task of their own: should this task be stopped
            // (a reload, shutdown) in between, a recorded job is still queued.
            let engine = self.clone();
            let task =
                tokio::spawn(
                    async move { engine.fire_local(&template, firing, job, merged).await },
                );
            tokio::time::timeout(timeout, async {
                task.await
                    .map_err(|e| EngineError::Internal(e.to_string()))?
            })
            .await
        };
        fired.map_err(|_| EngineError::StoreTimeout {
            seconds: timeout.as_secs(),
        })?
    }

    /// On one node: the queue admits, then the store records the firing with the job.
    async fn fire_local(
        &self,
        template: &Arc<Template>,
        firing: Firing,
        job: NewJob,
        merged: Variables,
    ) -> Result<Fired, EngineError> {
        let store = &self.inner.store;
        let refused = |e: &EngineError| e.to_string();
        let admission = self
            .inner
            .queue
            .admit(template, false, self.inner.config.max_pending_jobs)
            .await;
        let reservation = match admission {
            Ok(Admission::Admit(reservation)) => reservation,
            Ok(Admission::Existing(token)) => {
                return Ok(match store.record_firing(&firing, Some(token)).await? {
                    true => Fired::Existing(token),
                    false => Fired::Taken,
                });
            }
            Err(e @ (EngineError::AtLimit { .. } | EngineError::QueueFull { .. })) => {
                return Ok(match store.record_firing(&firing, None).await? {
                    true => Fired::Refused(refused(&e)),
                    false => Fired::Taken,
                });
            }
            Err(e) => return Err(e),
        };
        // Dropping the reservation without a job gives its place back.
        let Some(token) = store.create_scheduled_job(&firing, job).await? else {
            return Ok(Fired::Taken);
        };
        tracing::debug!(job = %token, template = %template.name, "scheduled job created");
        self.inner.metrics.triggered(&template.name);
        let policy = reservation.enqueue(QueuedJob {
            token,
            template: template.name.clone(),
            plan: template.plan.clone(),
            secrets: crate::run::secrets_of(Some(template), &merged),
            variables: merged,
            first_seq: 0,
            claimed: false,
        });
        // Released only after the start, as for an API trigger.
        self.dispatch();
        drop(policy);
        Ok(Fired::Created(token))
    }

    /// On a shared store: the firing and the admission in one transaction of the store.
    async fn fire_shared(
        &self,
        template: &Arc<Template>,
        firing: Firing,
        job: NewJob,
    ) -> Result<Fired, EngineError> {
        let Some((cluster, _)) = self.node() else {
            return Err(EngineError::Internal("not a node of a cluster".to_owned()));
        };
        let policy = Policy {
            max_concurrent: template.max_concurrent,
            on_limit: template.on_limit,
            max_pending: self.inner.config.max_pending_jobs,
        };
        Ok(
            match cluster.admit_scheduled(&firing, job, &policy).await? {
                None => Fired::Taken,
                Some(Admitted::Created(token)) => {
                    tracing::debug!(job = %token, template = %template.name, "scheduled job created");
                    self.inner.metrics.triggered(&template.name);
                    self.dispatch();
                    Fired::Created(token)
                }
                Some(Admitted::Existing(token)) => Fired::Existing(token),
                Some(Admitted::AtLimit) => Fired::Refused(
                    EngineError::AtLimit {
                        template: template.name.to_string(),
                        limit: template.max_concurrent.unwrap_or(0),
                    }
                    .to_string(),
                ),
                Some(Admitted::QueueFull) => Fired::Refused(
                    EngineError::QueueFull {
                        limit: self.inner.config.max_pending_jobs,
                    }
                    .to_string(),
                ),
            },
        )
    }
}
