//! Schedules: templates the server triggers by itself. Each scheduled template has a task that
//! sleeps until its next slot, fires it, and goes on; the tasks follow template reloads.
//!
//! A slot fires through the store: the store records the firing (keyed by template and slot)
//! in the transaction that creates its job, and refuses a slot at or before the newest one
//! recorded, so a slot fires once whatever restarts or how many nodes share the store (see
//! `fire.rs`). At start, the slots that came since the newest recorded firing were missed: the
//! template's `missed` policy skips them or runs one job for them all. While running, a task
//! that wakes to find several slots due (the machine was suspended, the process stalled) fires
//! the latest and counts the others as missed.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use holt_domain::{Missed, Schedule, TemplateName};
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::sync::lock;

mod fire;

/// How many missed slots are counted one by one; past this a long outage of a schedule firing
/// every second is counted as this many, so that counting stays cheap.
const MAX_COUNTED: u64 = 1_000_000;

/// The longest a task sleeps before reading the wall clock again. Sleeping uses the monotonic
/// clock, which does not see the wall clock being set; reading it again at least this often
/// bounds how late a slot fires after the wall clock jumped forward.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// The scheduled templates' tasks and their counters.
#[derive(Debug, Default)]
pub(crate) struct Schedules {
    running: Mutex<HashMap<TemplateName, Running>>,
    counts: Mutex<BTreeMap<String, Counts>>,
}

#[derive(Debug)]
struct Running {
    schedule: Schedule,
    stop: CancellationToken,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    fired: u64,
    missed: u64,
}

impl Schedules {
    fn count(&self, template: &TemplateName, fired: u64, missed: u64) {
        let mut counts = lock(&self.counts);
        let entry = counts.entry(template.as_str().to_owned()).or_default();
        entry.fired += fired;
        entry.missed += missed;
    }

    /// Appends the counters in the Prometheus text format.
    pub(crate) fn render(&self, out: &mut String) {
        let counts = lock(&self.counts);
        out.push_str(
            "# HELP holt_schedule_firings_total Schedule slots this server fired since it started.\n\
             # TYPE holt_schedule_firings_total counter\n",
        );
        for (template, c) in counts.iter() {
            let _ = writeln!(
                out,
                "holt_schedule_firings_total{{template=\"{}\"}} {}",
                crate::metrics::escape(template),
                c.fired
            );
        }
        out.push_str(
            "# HELP holt_schedule_missed_total Schedule slots that passed without their own job \
             (the server was down or late), counted by the server that noticed.\n\
             # TYPE holt_schedule_missed_total counter\n",
        );
        for (template, c) in counts.iter() {
            let _ = writeln!(
                out,
                "holt_schedule_missed_total{{template=\"{}\"}} {}",
                crate::metrics::escape(template),
                c.missed
            );
        }
    }
}

impl Engine {
    /// Brings the schedule tasks in line with the templates loaded now: a template whose
    /// schedule is unchanged keeps its task (its next firing uses the template as loaded then);
    /// a new or changed schedule gets a new task. At start (`resume`), a task begins from the
    /// newest firing recorded, so slots missed while no server ran are seen; after a reload, a
    /// new or changed schedule begins from now.
    pub(crate) fn follow_schedules(&self, resume: bool) {
        let catalog = self.templates();
        let mut running = lock(&self.inner.schedules.running);
        running.retain(|name, task| {
            let kept = catalog
                .get(name)
                .and_then(|t| t.schedule.as_ref())
                .is_some_and(|s| *s == task.schedule);
            if !kept {
                task.stop.cancel();
                tracing::info!(template = %name, "schedule stopped");
            }
            kept
        });
        for template in catalog.iter() {
            let Some(schedule) = &template.schedule else {
                continue;
            };
            if running.contains_key(&template.name) {
                continue;
            }
            // Counted from the start, so that /metrics shows the template's counters at 0.
            self.inner.schedules.count(&template.name, 0, 0);
            let stop = self.inner.background.child_token();
            running.insert(
                template.name.clone(),
                Running {
                    schedule: schedule.clone(),
                    stop: stop.clone(),
                },
            );
            let engine = self.clone();
            let name = template.name.clone();
            let schedule = schedule.clone();
            tokio::spawn(async move { engine.run_schedule(name, schedule, resume, stop).await });
        }
    }

    /// Appends the schedules' counters to `/metrics`.
    pub(crate) fn render_schedule_metrics(&self, out: &mut String) {
        self.inner.schedules.render(out);
    }

    /// One template's schedule, until `stop`.
    async fn run_schedule(
        self,
        name: TemplateName,
        schedule: Schedule,
        resume: bool,
        stop: CancellationToken,
    ) {
        let clock = self.inner.config.clock;
        tracing::info!(template = %name, schedule = %schedule, "schedule started");
        let mut cursor = clock.now_ms();
        if resume {
            match self.inner.store.last_firing(&name).await {
                Ok(Some(last)) if last >= cursor => cursor = last,
                Ok(Some(last)) => {
                    if let Some(latest) = self.catch_up(&name, &schedule, last, cursor).await {
                        cursor = latest;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(template = %name, error = %e, "cannot read the schedule's last firing; starting from now")
                }
            }
        }
        loop {
            let Some(next) = schedule.next_after(cursor) else {
                tracing::warn!(template = %name, "the schedule has no more slots");
                return;
            };
            loop {
                let now = clock.now_ms();
                if now >= next {
                    break;
                }
                let wait = Duration::from_millis((next - now) as u64).min(MAX_SLEEP);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
            if stop.is_cancelled() {
                return;
            }
            let now = clock.now_ms();
            let due = schedule.due(cursor, now, MAX_COUNTED);
            let slot = due.latest.unwrap_or(next).max(next);
            if due.count > 1 {
                let missed = due.count - 1;
                tracing::warn!(template = %name, missed, "schedule slots passed while the server could not keep up");
                self.inner.schedules.count(&name, 0, missed);
            }
            self.fire_and_count(&name, &schedule, slot).await;
            cursor = slot;
        }
    }

    /// At start: the slots after `last` (the newest recorded firing) up to `now` were missed.
    /// Skipped, or one job for them all; returns the latest of them.
    async fn catch_up(
        &self,
        name: &TemplateName,
        schedule: &Schedule,
        last: i64,
        now: i64,
    ) -> Option<i64> {
        let due = schedule.due(last, now, MAX_COUNTED);
        let latest = due.latest?;
        self.inner.schedules.count(name, 0, due.count);
        match schedule.missed() {
            Missed::Skip => {
                tracing::warn!(template = %name, missed = due.count, latest = %schedule.format(latest), "schedule slots were missed while no server ran; skipped");
            }
            Missed::RunOnce => {
                tracing::warn!(template = %name, missed = due.count, latest = %schedule.format(latest), "schedule slots were missed while no server ran; running one job for them");
                self.fire_and_count(name, schedule, latest).await;
            }
        }
        Some(latest)
    }

    /// Fires a slot and counts what came of it.
    async fn fire_and_count(&self, name: &TemplateName, schedule: &Schedule, slot: i64) {
        let at = schedule.format(slot);
        match self.fire_slot(name, schedule, slot).await {
            Ok(fire::Fired::Created(token)) => {
                tracing::info!(template = %name, slot = %at, job = %token, "schedule fired");
                self.inner.schedules.count(name, 1, 0);
            }
            Ok(fire::Fired::Existing(token)) => {
                tracing::info!(template = %name, slot = %at, job = %token, "schedule fired; a waiting job stands for the slot");
                self.inner.schedules.count(name, 1, 0);
            }
            Ok(fire::Fired::Refused(reason)) => {
                tracing::warn!(template = %name, slot = %at, reason = %reason, "schedule fired; the template's policy refused the job");
                self.inner.schedules.count(name, 1, 0);
            }
            Ok(fire::Fired::Taken) => {
                tracing::debug!(template = %name, slot = %at, "slot already fired (by another node, or before a restart)");
            }
            Err(e) => {
                tracing::error!(template = %name, slot = %at, error = %e, "could not fire the schedule's slot; it is missed");
                self.inner.schedules.count(name, 0, 1);
            }
        }
    }
}

impl Schedules {
    /// The templates whose schedules have a task, in name order.
    #[cfg(test)]
    pub(crate) fn running(&self) -> Vec<TemplateName> {
        let mut names: Vec<TemplateName> = lock(&self.running).keys().cloned().collect();
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        names
    }

    /// The counters of one template: (fired, missed).
    #[cfg(test)]
    pub(crate) fn counts(&self, template: &str) -> (u64, u64) {
        lock(&self.counts)
            .get(template)
            .map_or((0, 0), |c| (c.fired, c.missed))
    }
}
