//! Commit notices for followers. Per watched job, a watch moved after each commit that adds to
//! the job's log, by this store's writer right after its own commits and by the notification
//! listener for the commits of every store on the same database (another node's included).

use std::collections::HashMap;
use std::sync::Mutex;

use holt_domain::{JobStatus, JobToken};
use tokio::sync::watch;

/// What a commit did that watchers may wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A job's log is committed up to, not including, sequence number `next`.
    Logged { token: JobToken, next: u64 },
    /// A job's status changed.
    Status { token: JobToken, status: JobStatus },
}

/// The watched jobs. Only jobs someone follows are here, so the cost for every other job is one
/// look-up per event (and none at all while nobody follows anything).
#[derive(Debug, Default)]
pub(crate) struct Committed {
    jobs: Mutex<HashMap<JobToken, watch::Sender<u64>>>,
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
                Event::Status { .. } => {}
            }
        }
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
                _ => None,
            }
        })
        .collect()
}
