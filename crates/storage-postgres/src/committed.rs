//! Commit notices for followers. Per watched job, a watch moved after each commit that adds to
//! the job's log, by this store's writer right after its own commits and by the notification
//! listener for the commits of every store on the same database (another node's included).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use holt_domain::{JobStatus, JobToken};
use tokio::sync::{Notify, broadcast, watch};

/// What a commit did that watchers may wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A job's log is committed up to, not including, sequence number `next`.
    Logged { token: JobToken, next: u64 },
    /// A job's status changed.
    Status { token: JobToken, status: JobStatus },
    /// A pending job was created: a node with room may claim it.
    Created { token: JobToken },
    /// Someone asked for an executing job to be canceled: the node running it stops it.
    Cancel { token: JobToken },
}

/// The watched jobs. Only jobs someone follows are here, so the cost for every other job is one
/// look-up per event (and none at all while nobody follows anything).
#[derive(Debug)]
pub(crate) struct Committed {
    jobs: Mutex<HashMap<JobToken, watch::Sender<u64>>>,
    /// Watched statuses (of jobs this node does not run), by job.
    statuses: Mutex<HashMap<JobToken, watch::Sender<JobStatus>>>,
    /// Cancel requests, to the engine's listener.
    cancels: broadcast::Sender<JobToken>,
    /// Woken when a job is created or ends anywhere: the claim loop looks for work.
    work: Arc<Notify>,
}

impl Default for Committed {
    fn default() -> Self {
        Committed {
            jobs: Mutex::default(),
            statuses: Mutex::default(),
            cancels: broadcast::channel(1024).0,
            work: Arc::new(Notify::new()),
        }
    }
}

impl Committed {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<JobToken, watch::Sender<u64>>> {
        // The map holds no invariant a panicking holder could break half-way.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A watch of `token`'s committed log. Watches nobody holds any more are dropped here, so
    /// the map never holds more than the jobs followed now.
    pub(crate) fn subscribe(&self, token: JobToken) -> watch::Receiver<u64> {
        let mut jobs = self.jobs();
        jobs.retain(|_, sender| sender.receiver_count() > 0);
        jobs.entry(token)
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    /// The jobs watched now.
    pub(crate) fn watched(&self) -> Vec<JobToken> {
        self.jobs().keys().copied().collect()
    }

    /// Tells the watchers of the jobs that committed events concern. The same event may come
    /// twice (from this store's writer and back through the database's notification), and
    /// events of different stores may interleave, so a watch only ever moves forward. A terminal
    /// status closes its job's watch: nothing more will be committed to its log.
    pub(crate) fn publish(&self, events: &[Event]) {
        self.publish_cluster(events);
        let mut jobs = self.jobs();
        if jobs.is_empty() {
            return;
        }
        for event in events {
            match *event {
                Event::Logged { token, next } => {
                    if let Some(sender) = jobs.get(&token) {
                        sender.send_if_modified(|seen| {
                            let moved = next > *seen;
                            if moved {
                                *seen = next;
                            }
                            moved
                        });
                    }
                }
                Event::Status { token, status } if status.is_terminal() => {
                    jobs.remove(&token);
                }
                Event::Status { .. } | Event::Created { .. } | Event::Cancel { .. } => {}
            }
        }
    }

    /// What the nodes of a cluster wait for: status watches, cancel requests and work.
    fn publish_cluster(&self, events: &[Event]) {
        let mut work = false;
        let mut statuses = self.statuses();
        for event in events {
            match *event {
                Event::Status { token, status } => {
                    if let Some(sender) = statuses.get(&token) {
                        sender.send_replace(status);
                    }
                    if status.is_terminal() {
                        statuses.remove(&token);
                        work = true;
                    }
                }
                Event::Created { .. } => work = true,
                Event::Cancel { token } => {
                    let _ = self.cancels.send(token);
                }
                Event::Logged { .. } => {}
            }
        }
        drop(statuses);
        if work {
            self.work.notify_waiters();
        }
    }

    fn statuses(&self) -> std::sync::MutexGuard<'_, HashMap<JobToken, watch::Sender<JobStatus>>> {
        self.statuses.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A watch of `token`'s status starting at `now`, moved by every status event of the job
    /// from here on. Watches nobody holds any more are dropped here.
    pub(crate) fn subscribe_status(
        &self,
        token: JobToken,
        now: JobStatus,
    ) -> watch::Receiver<JobStatus> {
        let mut statuses = self.statuses();
        statuses.retain(|_, sender| sender.receiver_count() > 0);
        let sender = statuses
            .entry(token)
            .or_insert_with(|| watch::Sender::new(now));
        let receiver = sender.subscribe();
        if now.is_terminal() {
            sender.send_replace(now);
            statuses.remove(&token);
        }
        receiver
    }

    /// Moves a status watch that was made before its job's status was read.
    pub(crate) fn correct_status(&self, token: JobToken, now: JobStatus) {
        let mut statuses = self.statuses();
        if let Some(sender) = statuses.get(&token) {
            // Only forward: a status event that came after the read is newer.
            sender.send_if_modified(|seen| {
                let moved = *seen != now && !seen.is_terminal() && rank(now) > rank(*seen);
                if moved {
                    *seen = now;
                }
                moved
            });
            if now.is_terminal() {
                statuses.remove(&token);
            }
        }
    }

    /// The jobs whose status is watched now.
    pub(crate) fn watched_statuses(&self) -> Vec<JobToken> {
        self.statuses().keys().copied().collect()
    }

    /// Cancel requests from any node.
    pub(crate) fn cancels(&self) -> broadcast::Receiver<JobToken> {
        self.cancels.subscribe()
    }

    /// Woken whenever work may have appeared.
    pub(crate) fn work(&self) -> Arc<Notify> {
        self.work.clone()
    }

    /// Wakes whoever waits for work (after a lost connection, when notices may have been
    /// missed).
    pub(crate) fn wake_work(&self) {
        self.work.notify_waiters();
    }
}

/// How far along a status is: a watch never moves back.
fn rank(status: JobStatus) -> u8 {
    match status {
        JobStatus::Pending => 0,
        JobStatus::Executing => 1,
        _ => 2,
    }
}

/// The most bytes of one notification's payload; PostgreSQL refuses more than 8000.
const MAX_PAYLOAD: usize = 7900;

/// Events as notification payloads, each within PostgreSQL's bound: space-separated items,
/// `l<job>:<next>` for a log committed up to `next` and `s<job>:<status code>` for a status.
pub(crate) fn payloads(events: &[Event]) -> Vec<String> {
    let mut out = Vec::new();
    let mut payload = String::new();
    for event in events {
        let item = match *event {
            Event::Logged { token, next } => format!("l{}:{next}", token.id()),
            Event::Status { token, status } => format!("s{}:{}", token.id(), status.code()),
            Event::Created { token } => format!("n{}:0", token.id()),
            Event::Cancel { token } => format!("c{}:0", token.id()),
        };
        if !payload.is_empty() && payload.len() + 1 + item.len() > MAX_PAYLOAD {
            out.push(std::mem::take(&mut payload));
        }
        if !payload.is_empty() {
            payload.push(' ');
        }
        payload.push_str(&item);
    }
    if !payload.is_empty() {
        out.push(payload);
    }
    out
}

/// The events of a payload. Items this build does not know are skipped, so that a newer node
/// may say more on the same channel.
pub(crate) fn parse(payload: &str) -> Vec<Event> {
    payload
        .split(' ')
        .filter_map(|item| {
            let (kind, rest) = item.split_at_checked(1)?;
            let (id, value) = rest.split_once(':')?;
            let token = JobToken::new(id.parse().ok()?)?;
            let value: u64 = value.parse().ok()?;
            match kind {
                "l" => Some(Event::Logged { token, next: value }),
                "s" => Some(Event::Status {
                    token,
                    status: JobStatus::from_code(i64::try_from(value).ok()?).ok()?,
                }),
                "n" => Some(Event::Created { token }),
                "c" => Some(Event::Cancel { token }),
                _ => None,
            }
        })
        .collect()
}
