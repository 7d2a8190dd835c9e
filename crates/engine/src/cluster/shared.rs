//! The calls whose answer depends on every node: triggering through the store's admission, and
//! cancelling a job wherever it runs.

use std::sync::Arc;

use holt_domain::{JobStatus, JobToken, Template, TriggerSource, Variables};
use holt_storage::{Admitted, CancelRequest, Idempotency, NewJob, Policy};

use crate::EngineError;
use crate::clock::now_ms;
use crate::engine::{CANCELED_MESSAGE, Canceled, Engine, Triggered, fingerprint, scoped_key};
use crate::queue::Place;

impl Engine {
    /// [`Engine::trigger`] on a shared store: the store decides admission across every node
    /// and records the job in one transaction; whichever node has room claims it.
    pub(crate) async fn trigger_shared(
        &self,
        template: &Arc<Template>,
        variables: &Variables,
        idempotency_key: Option<&str>,
        source: TriggerSource,
    ) -> Result<Triggered, EngineError> {
        let Some((cluster, _)) = self.node() else {
            return Err(EngineError::Internal("not a node of a cluster".to_owned()));
        };
        let config = &self.inner.config;
        let merged = template.defaults().overridden_by(variables);
        let job = NewJob {
            template: template.name.clone(),
            plan: template.plan_source.clone(),
            variables: crate::secrets::seal_variables(&config.secrets_key, template, &merged),
            created_ms: now_ms(),
            idempotency: idempotency_key.map(|key| Idempotency {
                key: scoped_key(&template.name, key),
                fingerprint: config
                    .secrets_key
                    .digest(&fingerprint(&template.name, variables)),
                not_before_ms: now_ms() - config.idempotency_window.as_millis() as i64,
            }),
        };
        let policy = Policy {
            // A keyed trigger is exempt from the policy, as on a single node.
            max_concurrent: template
                .max_concurrent
                .filter(|_| idempotency_key.is_none()),
            on_limit: template.on_limit,
            max_pending: config.max_pending_jobs,
        };
        let admitted =
            tokio::time::timeout(config.store_timeout, cluster.admit(job, &policy, source))
                .await
                .map_err(|_| EngineError::StoreTimeout {
                    seconds: config.store_timeout.as_secs(),
                })??;
        match admitted {
            Admitted::Created(token) => {
                tracing::debug!(job = %token, template = %template.name, "job created");
                self.inner.metrics.triggered(&template.name);
                self.dispatch();
                Ok(Triggered::Created(token))
            }
            Admitted::Existing(token) => Ok(Triggered::Existing(token)),
            Admitted::AtLimit => Err(EngineError::AtLimit {
                template: template.name.to_string(),
                limit: template.max_concurrent.unwrap_or(0),
            }),
            Admitted::QueueFull => Err(EngineError::QueueFull {
                limit: config.max_pending_jobs,
            }),
        }
    }

    /// [`Engine::cancel`] on a shared store: a job this node runs is stopped here; any other
    /// is cancelled through the store (a pending one ends at once, the node running one is
    /// told), and its end is awaited until `deadline`.
    pub(crate) async fn cancel_shared(
        &self,
        token: JobToken,
        deadline: tokio::time::Instant,
    ) -> Result<Canceled, EngineError> {
        let Some((cluster, _)) = self.node() else {
            return Err(EngineError::Internal("not a node of a cluster".to_owned()));
        };
        if let Place::Running(stopper) = self.inner.queue.find_running(token) {
            stopper.stop(CANCELED_MESSAGE);
            tracing::info!(job = %token, "executing job canceled");
        } else {
            match cluster.cancel(token, CANCELED_MESSAGE).await? {
                CancelRequest::EndedPending => {
                    tracing::info!(job = %token, "pending job canceled");
                    self.enqueue_webhooks_of(token).await;
                    return Ok(Canceled::Stopped(JobStatus::Error));
                }
                CancelRequest::AlreadyEnded(status) => return Ok(Canceled::AlreadyEnded(status)),
                CancelRequest::Unknown => return Ok(Canceled::Unknown),
                CancelRequest::Requested => {}
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match self.wait(token, left).await? {
            Some(status) if status.is_terminal() => Ok(Canceled::Stopped(status)),
            _ => Ok(Canceled::Stopping),
        }
    }
}
