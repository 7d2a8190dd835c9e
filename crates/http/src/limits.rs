//! Bounds on long-lived requests: status calls that wait and logs that follow hold a slot each,
//! so that they can never take every connection the server serves and leave `/healthz` and
//! triggers unanswered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use holt_domain::JobToken;
use hyper::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::routes::{App, Refusal};

/// How long a refused client is told to wait before trying again, in seconds.
const RETRY_AFTER: u32 = 5;

/// How many follow each job now; a job without followers has no entry.
type Followers = Arc<Mutex<HashMap<JobToken, usize>>>;

/// The slots of long-lived requests: one pool for all, and a count of followers per job.
#[derive(Debug)]
pub(crate) struct LongPolls {
    slots: Arc<Semaphore>,
    followers: Followers,
    max_per_job: usize,
    max: usize,
}

impl LongPolls {
    pub(crate) fn new(max: usize, max_per_job: usize) -> Self {
        LongPolls {
            slots: Arc::new(Semaphore::new(max)),
            followers: Arc::default(),
            max_per_job,
            max,
        }
    }
}

/// A long-lived request's slot, given back when it is dropped (the request ended, or its
/// client went away).
#[derive(Debug)]
pub(crate) struct LongPoll {
    _permit: OwnedSemaphorePermit,
    follows: Option<(JobToken, Followers)>,
}

impl LongPoll {
    /// A slot for a status call that waits.
    pub(crate) fn wait(app: &App) -> Result<LongPoll, Refusal> {
        Ok(LongPoll {
            _permit: permit(&app.long_polls)?,
            follows: None,
        })
    }

    /// A slot for a follower of `token`'s log, within the per-job cap too.
    pub(crate) fn follow(app: &App, token: JobToken) -> Result<LongPoll, Refusal> {
        let polls = &app.long_polls;
        let permit = permit(polls)?;
        let mut followers = lock(&polls.followers);
        let count = followers.entry(token).or_default();
        if *count >= polls.max_per_job {
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "job {token} already has {} followers, the most allowed",
                    polls.max_per_job
                ),
            )
            .retry_after(RETRY_AFTER));
        }
        *count += 1;
        Ok(LongPoll {
            _permit: permit,
            follows: Some((token, polls.followers.clone())),
        })
    }
}

impl Drop for LongPoll {
    fn drop(&mut self) {
        if let Some((token, followers)) = &self.follows {
            let mut followers = lock(followers);
            if let Some(count) = followers.get_mut(token) {
                *count -= 1;
                if *count == 0 {
                    followers.remove(token);
                }
            }
        }
    }
}

fn permit(polls: &LongPolls) -> Result<OwnedSemaphorePermit, Refusal> {
    polls.slots.clone().try_acquire_owned().map_err(|_| {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the server already serves {} waiting or following requests, the most allowed",
                polls.max
            ),
        )
        .retry_after(RETRY_AFTER)
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The counts stay consistent even if a holder panicked: each change is one statement.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
