//! A store that keeps everything in the process's memory.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use holt_domain::{
    JobFilter, JobStatus, JobSummary, JobToken, LogEntry, LogLevel, Outputs, ScopePath,
    TemplateName, TriggerSource,
};

use crate::{Created, Firing, JobRecord, JobStore, NewJob, Recovery, RetentionRule, StoreError};

/// A `JobStore` held entirely in memory, with the same rules as the SQLite store: for the
/// engine's unit tests and for programs that embed the engine and need no record beyond the
/// process's life.
///
/// Nothing is written anywhere, so nothing survives the process, and memory grows with every
/// job and log line stored until retention (`delete_finished`) removes them: it is bounded only
/// by what is stored. Every write is applied under one lock before it returns, so writes are
/// ordered and an acknowledged write is at once visible to every read.
pub struct MemoryStore {
    instance: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The id the next job gets. Ids are never reused, even after retention deleted a job.
    last_id: u64,
    jobs: BTreeMap<JobToken, Job>,
    /// Idempotency key -> (fingerprint, job, when the key was used).
    keys: HashMap<String, (String, JobToken, i64)>,
    /// The infrastructure model.
    inventory: holt_domain::Inventory,
    /// Watches of followed jobs' committed logs (see [`JobStore::watch_committed`]).
    watchers: HashMap<JobToken, tokio::sync::watch::Sender<u64>>,
    /// The webhook outbox, by id - 1: each webhook and, while it waits, when it is due.
    webhooks: Vec<(crate::Webhook, Option<i64>)>,
    /// Fired slots of each scheduled template, and the job that stood for each.
    firings: HashMap<TemplateName, BTreeMap<i64, Option<JobToken>>>,
}

struct Job {
    record: JobRecord,
    /// Entries by sequence number: reads from an offset are a range.
    log: BTreeMap<u64, LogEntry>,
    /// The outputs recorded with its end.
    outputs: Outputs,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The jobs themselves are left out: a store may hold many, with long logs. The count is
        // only tried for, so that formatting never waits on (or deadlocks with) a writer.
        let jobs = self.state.try_lock().map(|state| state.jobs.len()).ok();
        f.debug_struct("MemoryStore")
            .field("instance", &self.instance)
            .field("jobs", &jobs)
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store with a fresh instance id.
    pub fn new() -> MemoryStore {
        MemoryStore {
            instance: new_instance_id(),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every write leaves the state consistent before anything that could panic, so the
        // state of a poisoned lock is as good as any.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sixteen lowercase hexadecimal digits (the SQLite store's form), different for every store:
/// the standard library's randomly keyed hasher over the time, the process id and a counter of
/// stores made by this process.
fn new_instance_id() -> String {
    static MADE: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(now);
    hasher.write_u32(std::process::id());
    hasher.write_u64(MADE.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", hasher.finish())
}

impl State {
    fn job_mut(&mut self, token: JobToken) -> Result<&mut Job, StoreError> {
        self.jobs
            .get_mut(&token)
            .ok_or_else(|| StoreError::Corrupt(format!("no job {token}")))
    }

    /// Records a new job (see [`JobStore::create_job_from`]).
    fn create(&mut self, job: NewJob, source: TriggerSource) -> Result<Created, StoreError> {
        let state = self;
        if let Some(idem) = &job.idempotency {
            match state.keys.get(&idem.key) {
                Some((fingerprint, token, used_ms)) if *used_ms >= idem.not_before_ms => {
                    if *fingerprint != idem.fingerprint {
                        return Err(StoreError::Conflict(
                            "this Idempotency-Key was used for a different request".into(),
                        ));
                    }
                    return Ok(Created {
                        token: *token,
                        fresh: false,
                    });
                }
                // A use before the window is forgotten; the key is recorded anew below.
                Some(_) | None => {}
            }
        }
        let id = state.last_id + 1;
        let token = JobToken::new(id).ok_or_else(|| StoreError::Corrupt(format!("job id {id}")))?;
        state.last_id = id;
        if let Some(idem) = &job.idempotency {
            state.keys.insert(
                idem.key.clone(),
                (idem.fingerprint.clone(), token, job.created_ms),
            );
        }
        state.jobs.insert(
            token,
            Job {
                record: JobRecord {
                    token,
                    template: job.template,
                    plan: job.plan,
                    variables: job.variables,
                    status: JobStatus::Pending,
                    created_ms: job.created_ms,
                    started_ms: None,
                    finished_ms: None,
                    source,
                },
                log: BTreeMap::new(),
                outputs: Outputs::new(),
            },
        );
        Ok(Created { token, fresh: true })
    }

    /// Records a firing unless one of the template at that slot or a later one is recorded.
    fn fire(&mut self, firing: &Firing, job: Option<JobToken>) -> bool {
        let fired = self.firings.entry(firing.template.clone()).or_default();
        if fired.range(firing.slot_ms..).next().is_some() {
            return false;
        }
        fired.insert(firing.slot_ms, job);
        let kept = fired.split_off(&firing.slot_ms.saturating_sub(crate::FIRING_HISTORY_MS));
        *fired = kept;
        true
    }

    /// Removes a job with its log and the idempotency keys that stand for it.
    fn remove(&mut self, token: JobToken) {
        self.jobs.remove(&token);
        self.keys.retain(|_, (_, job, _)| *job != token);
    }
}

#[async_trait]
impl JobStore for MemoryStore {
    fn instance_id(&self) -> &str {
        &self.instance
    }

    async fn create_job_from(
        &self,
        job: NewJob,
        source: TriggerSource,
    ) -> Result<Created, StoreError> {
        self.state().create(job, source)
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobSummary>, StoreError> {
        let state = self.state();
        let older: Box<dyn DoubleEndedIterator<Item = (&JobToken, &Job)>> = match filter.before {
            Some(before) => Box::new(state.jobs.range(..before)),
            None => Box::new(state.jobs.iter()),
        };
        // A scan from the newest job down, filtered as it goes: this store is for tests and
        // embedders, whose jobs fit in memory anyway.
        Ok(older
            .rev()
            .map(|(_, job)| &job.record)
            .filter(|r| filter.template.as_ref().is_none_or(|t| *t == r.template))
            .filter(|r| filter.status.is_none_or(|s| s == r.status))
            .take(filter.limit)
            .map(|r| JobSummary {
                token: r.token,
                template: r.template.clone(),
                status: r.status,
                source: r.source,
                created_ms: r.created_ms,
                started_ms: r.started_ms,
                finished_ms: r.finished_ms,
            })
            .collect())
    }

    async fn set_status(
        &self,
        token: JobToken,
        status: JobStatus,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.end_job(token, status, at_ms, &Outputs::new()).await
    }

    async fn end_job(
        &self,
        token: JobToken,
        status: JobStatus,
        at_ms: i64,
        outputs: &Outputs,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        let job = state.job_mut(token)?;
        if status.is_terminal() {
            job.outputs = outputs.clone();
        }
        let record = &mut job.record;
        record.status = status;
        if status == JobStatus::Executing {
            record.started_ms = Some(at_ms);
        } else if status.is_terminal() {
            record.finished_ms = Some(at_ms);
            // Nothing more will be added to its log: the watch closes.
            state.watchers.remove(&token);
        }
        Ok(())
    }

    async fn append_logs(&self, token: JobToken, entries: Vec<LogEntry>) -> Result<(), StoreError> {
        let mut state = self.state();
        let Ok(job) = state.job_mut(token) else {
            // As in the SQLite store, entries that cannot be kept (a bug) are dropped rather
            // than failing a caller that does not wait for them.
            tracing::error!(job = %token, "log entries dropped: no such job");
            return Ok(());
        };
        let next = entries.last().map(|e| e.seq + 1);
        for entry in entries {
            // A sequence number already used keeps its first entry, as the SQLite store's
            // unique index does.
            job.log.entry(entry.seq).or_insert(entry);
        }
        if let (Some(next), Some(watch)) = (next, state.watchers.get(&token)) {
            watch.send_replace(next);
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every write is visible once its call returns: there is nothing queued.
        Ok(())
    }

    async fn job(&self, token: JobToken) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.state().jobs.get(&token).map(|job| job.record.clone()))
    }

    async fn last_seq(&self, token: JobToken) -> Result<Option<u64>, StoreError> {
        Ok(self
            .state()
            .jobs
            .get(&token)
            .and_then(|job| job.log.last_key_value().map(|(seq, _)| *seq)))
    }

    async fn delete_finished(
        &self,
        rule: &RetentionRule,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let mut state = self.state();
        // Oldest finished first, as the SQLite store orders them; running jobs are never chosen.
        let mut chosen: Vec<(i64, JobToken)> = state
            .jobs
            .values()
            .map(|job| &job.record)
            .filter(|r| r.status.is_terminal())
            .filter_map(|r| Some((r.finished_ms?, r)))
            .filter(|(finished, r)| {
                *finished < rule.before_ms
                    && rule.template.as_ref().is_none_or(|t| *t == r.template)
                    && !rule.except.contains(&r.template)
            })
            .map(|(finished, r)| (finished, r.token))
            .collect();
        chosen.sort_unstable();
        chosen.truncate(limit);
        for (_, token) in &chosen {
            state.remove(*token);
        }
        Ok(chosen.len())
    }

    async fn prune_idempotency(&self, before_ms: i64) -> Result<usize, StoreError> {
        let mut state = self.state();
        let before = state.keys.len();
        state
            .keys
            .retain(|_, (_, _, used_ms)| *used_ms >= before_ms);
        Ok(before - state.keys.len())
    }

    async fn summary(
        &self,
        token: JobToken,
    ) -> Result<Option<(TemplateName, JobStatus)>, StoreError> {
        Ok(self
            .state()
            .jobs
            .get(&token)
            .map(|job| (job.record.template.clone(), job.record.status)))
    }

    async fn add_webhooks(
        &self,
        token: JobToken,
        hooks: Vec<crate::NewWebhook>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        state.job_mut(token)?;
        for hook in hooks {
            let id = state.webhooks.len() as i64 + 1;
            let webhook = crate::Webhook {
                id,
                token,
                url: hook.url,
                secret_env: hook.secret_env,
                attempts: 0,
                created_ms: at_ms,
            };
            state.webhooks.push((webhook, Some(at_ms)));
        }
        Ok(())
    }

    async fn claim_webhooks(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<crate::Webhook>, StoreError> {
        let mut state = self.state();
        let mut ready: Vec<(i64, usize)> = state
            .webhooks
            .iter()
            .enumerate()
            .filter_map(|(i, (_, due))| due.filter(|at| *at <= now_ms).map(|at| (at, i)))
            .collect();
        ready.sort_unstable();
        ready.truncate(limit);
        Ok(ready
            .into_iter()
            .map(|(_, i)| {
                let (webhook, due) = &mut state.webhooks[i];
                *due = Some(now_ms + lease_ms);
                webhook.clone()
            })
            .collect())
    }

    async fn webhook_attempted(
        &self,
        id: i64,
        attempted: crate::Attempted,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        let slot = usize::try_from(id - 1)
            .ok()
            .and_then(|i| state.webhooks.get_mut(i))
            .ok_or_else(|| StoreError::Corrupt(format!("no webhook {id}")))?;
        slot.0.attempts += 1;
        slot.1 = match attempted {
            crate::Attempted::Retry { next_ms } => Some(next_ms),
            crate::Attempted::Delivered | crate::Attempted::GaveUp => None,
        };
        Ok(())
    }

    async fn next_webhook_ms(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .state()
            .webhooks
            .iter()
            .filter_map(|(_, due)| *due)
            .min())
    }

    async fn outputs(&self, token: JobToken) -> Result<Option<Outputs>, StoreError> {
        Ok(self.state().jobs.get(&token).map(|job| job.outputs.clone()))
    }

    async fn status(&self, token: JobToken) -> Result<Option<JobStatus>, StoreError> {
        Ok(self.state().jobs.get(&token).map(|job| job.record.status))
    }

    async fn logs(
        &self,
        token: JobToken,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        Ok(self
            .state()
            .jobs
            .get(&token)
            .map(|job| {
                job.log
                    .range(from_seq..)
                    .take(limit)
                    .map(|(_, entry)| entry.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn inventory(&self) -> Result<holt_domain::Inventory, StoreError> {
        Ok(self.state().inventory.clone())
    }

    async fn change_inventory(
        &self,
        change: holt_domain::InfraChange,
    ) -> Result<holt_domain::Inventory, StoreError> {
        let mut state = self.state();
        // Checked and applied under the one lock: concurrent changes cannot both pass a check.
        let mut changed = state.inventory.clone();
        changed.apply(change)?;
        state.inventory = changed.clone();
        Ok(changed)
    }

    fn watch_committed(&self, token: JobToken) -> tokio::sync::watch::Receiver<u64> {
        let mut state = self.state();
        state.watchers.retain(|_, watch| watch.receiver_count() > 0);
        state
            .watchers
            .entry(token)
            .or_insert_with(|| tokio::sync::watch::Sender::new(0))
            .subscribe()
    }

    async fn recover(&self, message: &str, at_ms: i64) -> Result<Recovery, StoreError> {
        let mut state = self.state();
        let mut recovery = Recovery::default();
        // Jobs are kept by token, and tokens are given in creation order.
        for job in state.jobs.values_mut() {
            match job.record.status {
                JobStatus::Executing => {
                    let seq = job.log.last_key_value().map_or(0, |(seq, _)| seq + 1);
                    job.log.insert(
                        seq,
                        LogEntry {
                            seq,
                            level: LogLevel::Error,
                            scope: ScopePath::root(),
                            time_ms: at_ms,
                            text: message.to_owned(),
                        },
                    );
                    job.record.status = JobStatus::Error;
                    job.record.finished_ms = Some(at_ms);
                    recovery.interrupted.push(job.record.token);
                }
                JobStatus::Pending => recovery.pending.push(job.record.clone()),
                _ => {}
            }
        }
        Ok(recovery)
    }

    async fn last_firing(&self, template: &TemplateName) -> Result<Option<i64>, StoreError> {
        let state = self.state();
        Ok(state
            .firings
            .get(template)
            .and_then(|fired| fired.last_key_value())
            .map(|(slot, _)| *slot))
    }

    async fn create_scheduled_job(
        &self,
        firing: &Firing,
        mut job: NewJob,
    ) -> Result<Option<JobToken>, StoreError> {
        let mut state = self.state();
        if !state.fire(firing, None) {
            return Ok(None);
        }
        job.idempotency = None;
        let created = state.create(job, TriggerSource::Schedule)?;
        if let Some(fired) = state.firings.get_mut(&firing.template) {
            fired.insert(firing.slot_ms, Some(created.token));
        }
        Ok(Some(created.token))
    }

    async fn record_firing(
        &self,
        firing: &Firing,
        existing: Option<JobToken>,
    ) -> Result<bool, StoreError> {
        Ok(self.state().fire(firing, existing))
    }
}

#[cfg(test)]
mod tests;
