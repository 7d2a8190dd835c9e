//! The job queue: which jobs wait, which run, and the admission of new ones.
//!
//! Every decision about a job's place is taken under one lock, and the templates whose policy
//! depends on what is queued (`reject`, `skip_if_pending`) take their decision and queue the
//! new job without any other trigger of theirs in between, so a burst of concurrent triggers
//! is admitted exactly as the same triggers one after another would be.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use holt_domain::{
    JobStatus, JobToken, OnLimit, Template, TemplateCatalog, TemplateName, Variables,
};
use holt_plan::Plan;
use tokio::sync::{Notify, OwnedMutexGuard, watch};
use tokio_util::sync::CancellationToken;

use crate::EngineError;
use crate::sync::lock;

/// What the engine needs to run a job it has recorded.
#[derive(Debug)]
pub(crate) struct QueuedJob {
    pub(crate) token: JobToken,
    pub(crate) template: TemplateName,
    pub(crate) plan: Arc<Plan>,
    pub(crate) variables: Variables,
    pub(crate) secrets: Vec<String>,
    /// The sequence number its first log entry gets: 0, unless a previous process had begun
    /// its log before stopping.
    pub(crate) first_seq: u64,
    /// Claimed from a shared store, which recorded it `Executing` with the claim.
    pub(crate) claimed: bool,
}

/// Stops one running job, saying why.
#[derive(Debug, Default)]
pub(crate) struct Stopper {
    pub(crate) cancel: CancellationToken,
    pub(crate) reason: OnceLock<String>,
}

impl Stopper {
    pub(crate) fn stop(&self, reason: &str) {
        let _ = self.reason.set(reason.to_owned());
        self.cancel.cancel();
    }
}

/// Watches over a job that has not ended.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) template: TemplateName,
    /// Its status, for waiters and followers.
    pub(crate) status: watch::Sender<JobStatus>,
}

impl Live {
    fn new(template: TemplateName) -> Self {
        Live {
            template,
            status: watch::Sender::new(JobStatus::Pending),
        }
    }
}

/// Where a job stands in the queue.
#[derive(Debug)]
pub(crate) enum Place {
    /// Waiting to run; taken out of the queue by the lookup.
    Waiting(QueuedJob),
    /// Running, stopped through this.
    Running(Arc<Stopper>),
    /// Neither: not recorded yet, ended, or unknown.
    Neither,
}

/// The queue of jobs not yet ended. Cheap to share: the engine holds it in an `Arc`.
#[derive(Debug, Default)]
pub(crate) struct JobQueue {
    state: Mutex<State>,
    /// One lock per template whose policy depends on the queue, held from the admission
    /// decision until the admitted job is queued.
    policies: Mutex<HashMap<TemplateName, Arc<tokio::sync::Mutex<()>>>>,
    /// Woken whenever a job ends, so shutdown can wait for the running set to empty.
    pub(crate) job_ended: Notify,
    /// Woken whenever a job enters the queue, for a cancel that came between its commit and
    /// its queueing.
    pub(crate) enqueued: Notify,
}

#[derive(Debug, Default)]
struct State {
    waiting: VecDeque<QueuedJob>,
    running: HashMap<JobToken, Arc<Stopper>>,
    /// How many jobs of each template execute now.
    running_by_template: HashMap<TemplateName, usize>,
    /// Every job not yet ended: its status and log progress, for waiters and followers.
    live: HashMap<JobToken, Live>,
    /// Admitted triggers whose job is being recorded: they count against the pending limit.
    reserved: usize,
    /// Set by shutdown: no job is admitted or started after that.
    closed: bool,
}

impl State {
    fn running_of(&self, template: &TemplateName) -> usize {
        self.running_by_template.get(template).copied().unwrap_or(0)
    }
}

/// How many jobs of a template have a status: `((template, status), count)`.
pub(crate) type JobCount = ((String, &'static str), usize);

/// What admission decided.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Record a new job, then queue it through the reservation.
    Admit(Reservation),
    /// Do not record anything: this job, already waiting, stands for the trigger.
    Existing(JobToken),
}

/// A place in the queue for a job being recorded. Dropping it without queueing a job gives the
/// place back.
#[derive(Debug)]
pub(crate) struct Reservation {
    queue: Arc<JobQueue>,
    /// Held until the job is queued and started if it can be, for templates whose policy
    /// depends on the queue.
    policy: Option<OwnedMutexGuard<()>>,
    used: bool,
}

impl Reservation {
    /// Queues the recorded job in the reserved place. Returns the template's policy lock, to
    /// be released once the job has been started if it can be: until then the next trigger
    /// would see it waiting, where a trigger after this one returned sees it running.
    #[must_use = "the policy lock is released when dropped"]
    pub(crate) fn enqueue(mut self, job: QueuedJob) -> Option<OwnedMutexGuard<()>> {
        {
            let mut state = self.queue.state();
            state.reserved = state.reserved.saturating_sub(1);
            state
                .live
                .insert(job.token, Live::new(job.template.clone()));
            state.waiting.push_back(job);
        }
        self.used = true;
        self.queue.enqueued.notify_waiters();
        self.policy.take()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.used {
            let mut state = self.queue.state();
            state.reserved = state.reserved.saturating_sub(1);
        }
    }
}

/// A running job's slot: dropping it frees the slot, whatever ended the job (a panic included).
#[derive(Debug)]
pub(crate) struct Slot {
    queue: Arc<JobQueue>,
    token: JobToken,
    template: TemplateName,
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut state = self.queue.state();
            state.running.remove(&self.token);
            if let Some(count) = state.running_by_template.get_mut(&self.template) {
                *count = count.saturating_sub(1);
            }
        }
        self.queue.job_ended.notify_waiters();
    }
}

impl JobQueue {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Decides whether a trigger of `template` may record a job. `keyed` triggers (with an
    /// idempotency key) are exempt from the template's policy, so a retry always gets its own
    /// job back.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        template: &Template,
        keyed: bool,
        max_pending: usize,
    ) -> Result<Admission, EngineError> {
        let limit = template.max_concurrent.filter(|_| !keyed);
        let policy = match (limit, template.on_limit) {
            (Some(_), OnLimit::Reject | OnLimit::SkipIfPending) => {
                let lock = lock(&self.policies)
                    .entry(template.name.clone())
                    .or_default()
                    .clone();
                Some(lock.lock_owned().await)
            }
            _ => None,
        };
        let mut state = self.state();
        if state.closed {
            return Err(EngineError::ShuttingDown);
        }
        if state.waiting.len() + state.reserved >= max_pending {
            return Err(EngineError::QueueFull { limit: max_pending });
        }
        if let Some(max) = limit {
            let running = state.running_of(&template.name);
            let waiting = state
                .waiting
                .iter()
                .find(|job| job.template == template.name);
            match template.on_limit {
                OnLimit::Queue => {}
                OnLimit::Reject if waiting.is_some() || running >= max as usize => {
                    return Err(EngineError::AtLimit {
                        template: template.name.to_string(),
                        limit: max,
                    });
                }
                OnLimit::Reject => {}
                OnLimit::SkipIfPending => {
                    if let Some(job) = waiting {
                        return Ok(Admission::Existing(job.token));
                    }
                }
            }
        }
        state.reserved += 1;
        drop(state);
        Ok(Admission::Admit(Reservation {
            queue: self.clone(),
            policy,
            used: false,
        }))
    }

    /// Queues a job found pending at start, behind those already queued.
    pub(crate) fn resume(&self, job: QueuedJob) {
        let mut state = self.state();
        state
            .live
            .insert(job.token, Live::new(job.template.clone()));
        state.waiting.push_back(job);
    }

    /// Takes the jobs that may start now, oldest first, while there is room overall and in
    /// their template, each with its slot. A job whose template is at its own limit keeps its
    /// place; later jobs of other templates may start before it.
    pub(crate) fn startable(
        self: &Arc<Self>,
        templates: &TemplateCatalog,
        max_running: usize,
    ) -> Vec<(QueuedJob, Arc<Stopper>, Slot)> {
        let mut state = self.state();
        let mut started = Vec::new();
        let mut i = 0;
        while !state.closed && state.running.len() < max_running.max(1) && i < state.waiting.len() {
            let template = state.waiting[i].template.clone();
            let limit = templates.get(&template).and_then(|t| t.max_concurrent);
            if limit.is_some_and(|limit| state.running_of(&template) >= limit as usize) {
                i += 1;
                continue;
            }
            let Some(job) = state.waiting.remove(i) else {
                break;
            };
            let stopper = Arc::new(Stopper::default());
            state.running.insert(job.token, stopper.clone());
            *state
                .running_by_template
                .entry(template.clone())
                .or_default() += 1;
            let slot = Slot {
                queue: self.clone(),
                token: job.token,
                template,
            };
            started.push((job, stopper, slot));
        }
        started
    }

    /// Takes a slot for a job claimed from a shared store, already `Executing` there, and
    /// makes it live here. Claims never go beyond this node's room, so no limit is checked.
    pub(crate) fn start_claimed(
        self: &Arc<Self>,
        token: JobToken,
        template: TemplateName,
    ) -> (Arc<Stopper>, Slot) {
        let mut state = self.state();
        let stopper = Arc::new(Stopper::default());
        state.running.insert(token, stopper.clone());
        *state
            .running_by_template
            .entry(template.clone())
            .or_default() += 1;
        let live = Live::new(template.clone());
        live.status.send_replace(JobStatus::Executing);
        state.live.insert(token, live);
        let slot = Slot {
            queue: self.clone(),
            token,
            template,
        };
        (stopper, slot)
    }

    /// A running job's stopper, if this process runs the job.
    pub(crate) fn find_running(&self, token: JobToken) -> Place {
        match self.state().running.get(&token) {
            Some(stopper) => Place::Running(stopper.clone()),
            None => Place::Neither,
        }
    }

    /// Whether the queue has been closed by shutdown.
    pub(crate) fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Finds a job to cancel: a waiting one is taken out of the queue.
    pub(crate) fn take_for_cancel(&self, token: JobToken) -> Place {
        let mut state = self.state();
        if let Some(i) = state.waiting.iter().position(|job| job.token == token)
            && let Some(job) = state.waiting.remove(i)
        {
            return Place::Waiting(job);
        }
        match state.running.get(&token) {
            Some(stopper) => Place::Running(stopper.clone()),
            None => Place::Neither,
        }
    }

    /// A live job's template and status.
    pub(crate) fn summary(&self, token: JobToken) -> Option<(TemplateName, JobStatus)> {
        self.state()
            .live
            .get(&token)
            .map(|live| (live.template.clone(), *live.status.borrow()))
    }

    /// A watch of a live job's status.
    pub(crate) fn watch_status(&self, token: JobToken) -> Option<watch::Receiver<JobStatus>> {
        self.state()
            .live
            .get(&token)
            .map(|live| live.status.subscribe())
    }

    /// Marks a live job as executing.
    pub(crate) fn executing(&self, token: JobToken) {
        if let Some(live) = self.state().live.get(&token) {
            live.status.send_replace(JobStatus::Executing);
        }
    }

    /// Forgets a job that ended with `status`, telling its waiters.
    pub(crate) fn ended(&self, token: JobToken, status: JobStatus) {
        let live = self.state().live.remove(&token);
        if let Some(live) = live {
            live.status.send_replace(status);
        }
    }

    /// Where a pending job stands: 1 is next to start.
    pub(crate) fn position(&self, token: JobToken) -> Option<usize> {
        self.state()
            .waiting
            .iter()
            .position(|job| job.token == token)
            .map(|i| i + 1)
    }

    /// Stops admitting and starting jobs.
    pub(crate) fn close(&self) {
        self.state().closed = true;
    }

    /// How many jobs run now.
    pub(crate) fn running(&self) -> usize {
        self.state().running.len()
    }

    /// Stops every running job with `reason`; returns how many.
    pub(crate) fn stop_all(&self, reason: &str) -> usize {
        let state = self.state();
        for stopper in state.running.values() {
            stopper.stop(reason);
        }
        state.running.len()
    }

    /// Jobs not yet ended by template and status, and the number waiting, for `/metrics`.
    pub(crate) fn counts(&self) -> (usize, Vec<JobCount>) {
        let state = self.state();
        let mut jobs: HashMap<(String, &'static str), usize> = HashMap::new();
        for job in &state.waiting {
            *jobs
                .entry((job.template.to_string(), "Pending"))
                .or_default() += 1;
        }
        for (template, count) in &state.running_by_template {
            if *count > 0 {
                jobs.insert((template.to_string(), "Executing"), *count);
            }
        }
        let mut jobs: Vec<_> = jobs.into_iter().collect();
        jobs.sort();
        (state.waiting.len(), jobs)
    }
}
