//! What a store shared by several holtd nodes offers them, beyond [`JobStore`]: leases that say
//! which nodes are alive, the queue of pending jobs (admission and claims counted across every
//! node), fenced status changes, cancel requests and status changes seen by every node.
//!
//! A store offers it through [`JobStore::cluster`]; a store for one process (SQLite, memory)
//! does not, and its engine keeps the queue in its own memory. Time in these calls is the
//! database's own clock, so nodes whose clocks differ still agree on when a lease ran out.
//!
//! [`JobStore`]: crate::JobStore
//! [`JobStore::cluster`]: crate::JobStore::cluster

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use holt_domain::{JobStatus, JobToken, OnLimit, Outputs, TemplateName, TriggerSource};
use tokio::sync::{Notify, broadcast, watch};

use crate::{JobRecord, NewJob, StoreError};

/// A node's place in the cluster: its name and the generation of its lease. A node that loses
/// its lease joins again with a new generation; writes fenced by the old one are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The node's name, unique among live nodes (for `/metrics` and the logs).
    pub node: String,
    /// Increases with every lease the database grants.
    pub generation: i64,
}

/// A template's admission policy, applied by the store across every node.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `max_concurrent` of the template, unless the trigger carries an idempotency key.
    pub max_concurrent: Option<u32>,
    /// What a trigger at the limit does.
    pub on_limit: OnLimit,
    /// The most jobs pending at once in the whole cluster.
    pub max_pending: usize,
}

/// What admission did with a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// A new pending job.
    Created(JobToken),
    /// An existing job stands for the trigger: the one with the same idempotency key, or the
    /// template's pending job (`skip_if_pending`).
    Existing(JobToken),
    /// The template is at its limit and refuses (`reject`).
    AtLimit,
    /// The cluster's queue is full.
    QueueFull,
}

/// What a cancel request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelRequest {
    /// The job was pending: it is now `Error`, with the given line as its last log entry.
    EndedPending,
    /// The job executes on a node (perhaps this one); that node has been told.
    Requested,
    /// The job had already ended.
    AlreadyEnded(JobStatus),
    /// There is no such job.
    Unknown,
}

/// The cluster side of a shared store.
#[async_trait]
pub trait ClusterStore: Send + Sync + std::fmt::Debug {
    /// Grants this node a lease of `duration` under `node`. A node already holding a lease
    /// under that name is taken to be this node's previous life: its executing jobs end
    /// `Error` at once, `message` their last log line.
    async fn join(
        &self,
        node: &str,
        duration: Duration,
        message: &str,
    ) -> Result<Lease, StoreError>;

    /// Extends a lease by `duration` from now. `false`: the lease had already run out or was
    /// settled, and the node must stop its jobs and join again.
    async fn renew(&self, lease: &Lease, duration: Duration) -> Result<bool, StoreError>;

    /// Gives a lease back, at the end of a clean shutdown; its node runs nothing any more.
    async fn leave(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Settles every node whose lease has run out: each job it was executing ends `Error`,
    /// `message` its last log line. Returns those jobs.
    async fn settle_expired(&self, message: &str) -> Result<Vec<JobToken>, StoreError>;

    /// Records a new pending job, triggered by `source`, unless the template's policy, counted
    /// over every node,
    /// decides otherwise (see [`Admitted`]). Idempotency keys work as in
    /// [`JobStore::create_job`](crate::JobStore::create_job) and come before the policy.
    async fn admit(
        &self,
        job: NewJob,
        policy: &Policy,
        source: TriggerSource,
    ) -> Result<Admitted, StoreError>;

    /// Takes up to `room` pending jobs for `lease`'s node, oldest first, each now `Executing`
    /// there (started at the database's time). A job whose template has `limits[template]`
    /// jobs executing anywhere keeps its place; later jobs of other templates may be taken.
    async fn claim(
        &self,
        lease: &Lease,
        room: usize,
        limits: &HashMap<TemplateName, u32>,
    ) -> Result<Vec<JobRecord>, StoreError>;

    /// Records that a job `lease`'s node executes has ended with `status` and `outputs`, if the
    /// node still holds it: `false` when the lease was settled (the job already ended as
    /// interrupted), so that a node cut off from the others never writes a result over that.
    async fn finish(
        &self,
        lease: &Lease,
        token: JobToken,
        status: JobStatus,
        outputs: &Outputs,
    ) -> Result<bool, StoreError>;

    /// Cancels a job wherever it is: a pending job ends at once with `message` as its last log
    /// line; the node executing a job is told through [`ClusterStore::cancels`].
    async fn cancel(&self, token: JobToken, message: &str) -> Result<CancelRequest, StoreError>;

    /// Cancel requests for jobs, from any node.
    fn cancels(&self) -> broadcast::Receiver<JobToken>;

    /// A job's status as every node records it: the current value, and a change whenever any
    /// node records one; `None` when there is no such job. Watching starts before the current
    /// value is read, so no change is missed.
    async fn watch_status(
        &self,
        token: JobToken,
    ) -> Result<Option<watch::Receiver<JobStatus>>, StoreError>;

    /// Notified whenever a job may be claimable: a job was created, or one ended (a template
    /// at its limit may have room again), on any node.
    fn work(&self) -> std::sync::Arc<Notify>;

    /// Where a pending job stands among all pending jobs: 1 is next.
    async fn position(&self, token: JobToken) -> Result<Option<usize>, StoreError>;

    /// Jobs pending in the whole cluster.
    async fn pending(&self) -> Result<usize, StoreError>;

    /// A schedule's trigger: records that `firing`'s slot fired and admits `job` as
    /// [`ClusterStore::admit`] would (triggered by `schedule`), in one transaction. `None`,
    /// with nothing written, when the slot was fired already, by this node or another: of
    /// several nodes firing one slot, exactly one gets an answer. Whatever admission decides
    /// (a refusal included) is recorded as the slot's firing.
    async fn admit_scheduled(
        &self,
        firing: &crate::Firing,
        job: NewJob,
        policy: &Policy,
    ) -> Result<Option<Admitted>, StoreError>;
}
