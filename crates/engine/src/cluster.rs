//! Running as one node of several on a shared store (PostgreSQL): the queue of pending jobs is
//! the database's, claimed by whichever node has room; each node holds a lease it renews, and
//! settles the jobs of nodes whose lease ran out; cancel requests and status changes reach every
//! node through the store.
//!
//! A node that cannot renew its lease in time stops its jobs and writes none of their results
//! (another node has settled them, or will): the store refuses a result fenced by a lease it no
//! longer grants. It then joins again under a new lease and goes on claiming.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use holt_domain::{JobStatus, JobToken, Outputs};
use holt_storage::{ClusterStore, JobRecord, Lease};
use tokio::sync::Notify;

use crate::EngineError;
use crate::engine::{Engine, INTERRUPTED_MESSAGE};
use crate::sync::lock;

mod shared;

/// The line a job ends with when its node lost its lease while running it.
pub(crate) const LEASE_LOST_MESSAGE: &str =
    "This node lost its lease while the job was executing; the job was stopped.";

/// How often each node looks for nodes whose lease ran out.
const SETTLE_EVERY: Duration = Duration::from_millis(500);

/// Whether `name` may name a node: it becomes part of process marks and metrics labels.
pub(crate) fn is_node_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The name a node goes by when none is given: the host's name, made a valid node name.
pub(crate) fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "node".to_owned()
    } else {
        name
    }
}

/// This node's standing in the cluster.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) name: String,
    lease: std::sync::Mutex<Lease>,
    /// Set while the node holds no valid lease: it claims nothing and records no result.
    fenced: AtomicBool,
    /// Wakes the claim loop.
    wake: Notify,
    /// Ends the node's background work, once its jobs have ended at shutdown.
    pub(crate) stop: tokio_util::sync::CancellationToken,
}

impl Node {
    pub(crate) fn new(name: String, lease: Lease) -> Node {
        Node {
            name,
            lease: std::sync::Mutex::new(lease),
            fenced: AtomicBool::new(false),
            wake: Notify::new(),
            stop: tokio_util::sync::CancellationToken::new(),
        }
    }

    pub(crate) fn lease(&self) -> Lease {
        lock(&self.lease).clone()
    }

    /// Asks the claim loop to look for work.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }
}

impl Engine {
    /// The shared store's cluster side and this node, in cluster mode.
    pub(crate) fn node(&self) -> Option<(&dyn ClusterStore, &Node)> {
        let node = self.inner.node.as_ref()?;
        Some((self.inner.store.cluster()?, node))
    }

    /// Starts the node's background work: the lease keeper, the settler, the cancel listener
    /// and the claim loop.
    pub(crate) fn start_node(&self) {
        let Some((_, node)) = self.node() else {
            return;
        };
        // Not stopped with the rest of the background work at the start of a shutdown: the
        // lease must stay renewed, and cancel requests heard, while the node's jobs drain.
        let background = node.stop.clone();
        for task in [
            tokio::spawn(self.clone().keep_lease()),
            tokio::spawn(self.clone().settle()),
            tokio::spawn(self.clone().listen_for_cancels()),
            tokio::spawn(self.clone().claim_loop()),
        ] {
            let background = background.clone();
            tokio::spawn(async move {
                background.cancelled().await;
                task.abort();
            });
        }
    }

    /// Renews the lease a few times per lease period. A renewal refused, or none succeeding
    /// before the lease would have run out, fences the node until its jobs have stopped; then
    /// it joins again.
    async fn keep_lease(self) {
        let Some((cluster, node)) = self.node() else {
            return;
        };
        let period = self.inner.config.node_lease;
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(period / 3).await;
            let lease = node.lease();
            let renewed = match cluster.renew(&lease, period).await {
                Ok(true) => {
                    last_renewed = tokio::time::Instant::now();
                    continue;
                }
                Ok(false) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew this node's lease");
                    last_renewed.elapsed() < period
                }
            };
            if renewed {
                continue;
            }
            tracing::error!(node = %node.name, "this node lost its lease; stopping its jobs");
            node.fenced.store(true, Ordering::SeqCst);
            self.inner.queue.stop_all(LEASE_LOST_MESSAGE);
            while self.inner.queue.running() > 0 {
                let ended = self.inner.queue.job_ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                if self.inner.queue.running() == 0 {
                    break;
                }
                ended.await;
            }
            loop {
                match cluster.join(&node.name, period, INTERRUPTED_MESSAGE).await {
                    Ok(lease) => {
                        tracing::info!(node = %node.name, generation = lease.generation, "joined again");
                        *lock(&node.lease) = lease;
                        last_renewed = tokio::time::Instant::now();
                        node.fenced.store(false, Ordering::SeqCst);
                        node.wake();
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not join the cluster again");
                        tokio::time::sleep(period / 3).await;
                    }
                }
            }
        }
    }

    /// Settles the jobs of nodes whose lease ran out, twice a second.
    async fn settle(self) {
        let Some((cluster, _)) = self.node() else {
            return;
        };
        loop {
            match cluster.settle_expired(INTERRUPTED_MESSAGE).await {
                Ok(settled) => {
                    for token in settled {
                        tracing::warn!(job = %token, "job of a node whose lease ran out; marked Error");
                        self.enqueue_webhooks_of(token).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not settle the jobs of dead nodes"),
            }
            tokio::time::sleep(SETTLE_EVERY).await;
        }
    }

    /// Stops the jobs this node runs that any node was asked to cancel.
    async fn listen_for_cancels(self) {
        let Some((cluster, _)) = self.node() else {
            return;
        };
        let mut requests = cluster.cancels();
        loop {
            match requests.recv().await {
                Ok(token) => {
                    if let crate::queue::Place::Running(stopper) =
                        self.inner.queue.find_running(token)
                    {
                        stopper.stop(crate::engine::CANCELED_MESSAGE);
                        tracing::info!(job = %token, "executing job canceled from another node");
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Claims pending jobs while this node has room, whenever work may have appeared: a job
    /// created or ended anywhere, or a slot freed here.
    async fn claim_loop(self) {
        let Some((cluster, node)) = self.node() else {
            return;
        };
        let work = cluster.work();
        loop {
            let anywhere = work.notified();
            tokio::pin!(anywhere);
            anywhere.as_mut().enable();
            let here = node.wake.notified();
            tokio::pin!(here);
            here.as_mut().enable();
            if let Err(e) = self.claim_while_room(cluster, node).await {
                tracing::warn!(error = %e, "could not claim pending jobs");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            tokio::select! {
                () = &mut anywhere => {}
                () = &mut here => {}
            }
        }
    }

    async fn claim_while_room(
        &self,
        cluster: &dyn ClusterStore,
        node: &Node,
    ) -> Result<(), EngineError> {
        loop {
            if node.fenced.load(Ordering::SeqCst) || self.inner.queue.is_closed() {
                return Ok(());
            }
            let room = self
                .inner
                .config
                .max_concurrent_jobs
                .saturating_sub(self.inner.queue.running());
            if room == 0 {
                return Ok(());
            }
            let templates = self.templates();
            let limits: HashMap<_, _> = templates
                .iter()
                .filter_map(|t| t.max_concurrent.map(|max| (t.name.clone(), max)))
                .collect();
            let claimed = cluster.claim(&node.lease(), room, &limits).await?;
            let count = claimed.len();
            for record in claimed {
                let token = record.token;
                // A claimed job that cannot be started still ends here: it is this node's,
                // and no other node would ever end it while this node's lease holds.
                if let Err(e) = self.start_claimed(record).await {
                    tracing::error!(job = %token, error = %e, "could not start a claimed job");
                    if let Err(e) = self
                        .end_claimed_unrun(token, crate::run::INTERNAL_ERROR_MESSAGE)
                        .await
                    {
                        tracing::error!(job = %token, error = %e, "could not end a claimed job");
                    }
                }
            }
            if count < room {
                return Ok(());
            }
        }
    }

    /// Runs a job this node has claimed (it is `Executing` in the store already).
    async fn start_claimed(&self, record: JobRecord) -> Result<(), EngineError> {
        let token = record.token;
        let template = record.template.clone();
        let Some(job) = self.prepare(record).await? else {
            return Ok(());
        };
        let (stopper, slot) = self.inner.queue.start_claimed(token, template);
        let engine = self.clone();
        tokio::spawn(async move {
            engine.supervise(job, stopper, slot).await;
            engine.dispatch();
        });
        Ok(())
    }

    /// Records the end of a job this node ran, unless its lease is gone: `false` then.
    pub(crate) async fn finish_claimed(
        &self,
        cluster: &dyn ClusterStore,
        node: &Node,
        token: JobToken,
        status: JobStatus,
        outputs: &Outputs,
    ) -> Result<bool, EngineError> {
        // The job's log entries are handed to the store before its end; they commit first.
        self.inner.store.flush().await?;
        let held = !node.fenced.load(Ordering::SeqCst)
            && cluster
                .finish(&node.lease(), token, status, outputs)
                .await?;
        if !held {
            tracing::warn!(job = %token, "this node no longer holds the job; its result is not recorded");
        }
        Ok(held)
    }

    /// Ends a claimed job that cannot run, with `message`.
    pub(crate) async fn end_claimed_unrun(
        &self,
        token: JobToken,
        message: &str,
    ) -> Result<(), EngineError> {
        let Some((cluster, node)) = self.node() else {
            return self.end_unrun(token, message).await;
        };
        self.write_last_line(token, message).await?;
        let none = Outputs::new();
        if self
            .finish_claimed(cluster, node, token, JobStatus::Error, &none)
            .await?
        {
            self.enqueue_webhooks_of(token).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_short_and_plain() {
        assert!(is_node_name("node-1.example_a"));
        assert!(!is_node_name(""));
        assert!(!is_node_name("a b"));
        assert!(!is_node_name(&"n".repeat(65)));
        assert!(is_node_name(&default_node_name()));
    }
}
