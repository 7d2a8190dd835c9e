//! The engine's scheduling rules on a `MemoryStore`, with tokio's paused clock: admission under
//! bursts, a panicking run, cancel, timeouts, shutdown, configuration and template reload.
//! Nothing here waits for real time; a job that never ends shows up as a paused-clock deadline
//! passing, not as a hanging test.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use holt_domain::{
    JobStatus, JobToken, LogEntry, Template, TemplateCatalog, TemplateName, Variables,
};
use holt_storage::{
    Created, JobRecord, JobStore, MemoryStore, NewJob, Recovery, RetentionRule, StoreError,
};

use crate::engine::{CANCELED_MESSAGE, SHUTDOWN_MESSAGE};
use crate::run::INTERNAL_ERROR_MESSAGE;
use crate::{Canceled, Engine, EngineConfig, EngineError, Triggered};

/// Longer than any test here needs; on the paused clock it costs nothing to wait for.
const PATIENCE: Duration = Duration::from_secs(3600);

fn template(name: &str, toml: &str) -> Template {
    Template::from_toml(name.parse().unwrap(), toml)
        .unwrap_or_else(|e| panic!("template {name} does not load: {e}"))
}

fn catalog(templates: &[(&str, &str)]) -> TemplateCatalog {
    TemplateCatalog::new(templates.iter().map(|(name, toml)| template(name, toml)))
}

async fn start_on(
    store: Arc<dyn JobStore>,
    templates: &[(&str, &str)],
    config: EngineConfig,
) -> Engine {
    Engine::start(store, catalog(templates), config)
        .await
        .unwrap()
}

async fn start(templates: &[(&str, &str)], config: EngineConfig) -> Engine {
    start_on(Arc::new(MemoryStore::new()), templates, config).await
}

fn loaded(engine: &Engine, name: &str) -> Arc<Template> {
    engine
        .templates()
        .get(&name.parse::<TemplateName>().unwrap())
        .unwrap_or_else(|| panic!("no template {name}"))
        .clone()
}

async fn trigger(engine: &Engine, name: &str) -> Triggered {
    engine
        .trigger(&loaded(engine, name), &Variables::new(), None)
        .await
        .unwrap()
}

/// Returns once the job executes, woken by its status watch.
async fn executing(engine: &Engine, token: JobToken) {
    let mut status = engine
        .status_watch(token)
        .await
        .unwrap()
        .expect("the job has not ended");
    tokio::time::timeout(PATIENCE, status.wait_for(|s| *s == JobStatus::Executing))
        .await
        .expect("the job starts")
        .unwrap();
}

/// The job's final status, once it has ended.
async fn ended(engine: &Engine, token: JobToken) -> JobStatus {
    let status = engine.wait(token, PATIENCE).await.unwrap().unwrap();
    assert!(status.is_terminal(), "job {token} still {status}");
    status
}

async fn log_text(engine: &Engine, token: JobToken) -> String {
    engine
        .store()
        .logs_text(token, 0, u64::MAX, 10_000)
        .await
        .unwrap()
        .0
}

/// The last line of a job's log body.
async fn last_line(engine: &Engine, token: JobToken) -> String {
    let text = log_text(engine, token).await;
    text.lines().last().unwrap_or_default().to_owned()
}

/// Fires `count` triggers of one template at once and returns every answer.
async fn burst(engine: &Engine, name: &str, count: usize) -> Vec<Result<Triggered, EngineError>> {
    let template = loaded(engine, name);
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let engine = engine.clone();
            let template = template.clone();
            tokio::spawn(async move { engine.trigger(&template, &Variables::new(), None).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

const SLEEPER: &str = "plan = 'Sleep 1000;'";
const REJECT_ONE: &str = "max_concurrent = 1\non_limit = \"reject\"\nplan = 'Sleep 1000;'";
const SKIP_ONE: &str = "max_concurrent = 1\non_limit = \"skip_if_pending\"\nplan = 'Sleep 1000;'";

#[tokio::test(start_paused = true)]
async fn a_reject_template_admits_nobody_while_its_job_runs() {
    let engine = start(&[("one", REJECT_ONE)], EngineConfig::default()).await;
    let running = trigger(&engine, "one").await.token();
    executing(&engine, running).await;
    let answers = burst(&engine, "one", 50).await;
    let refused = answers
        .iter()
        .filter(|a| matches!(a, Err(EngineError::AtLimit { limit: 1, .. })))
        .count();
    assert_eq!(refused, 50, "{answers:?}");
}

#[tokio::test(start_paused = true)]
async fn a_reject_template_admits_exactly_one_of_a_burst() {
    let engine = start(&[("one", REJECT_ONE)], EngineConfig::default()).await;
    let answers = burst(&engine, "one", 50).await;
    let admitted: Vec<JobToken> = answers
        .iter()
        .filter_map(|a| match a {
            Ok(Triggered::Created(token)) => Some(*token),
            _ => None,
        })
        .collect();
    assert_eq!(admitted.len(), 1, "{answers:?}");
    let refused = answers
        .iter()
        .filter(|a| matches!(a, Err(EngineError::AtLimit { .. })))
        .count();
    assert_eq!(refused, 49);
    executing(&engine, admitted[0]).await;
}

#[tokio::test(start_paused = true)]
async fn skip_if_pending_makes_one_job_for_a_whole_burst() {
    let engine = start(&[("skip", SKIP_ONE)], EngineConfig::default()).await;
    let running = trigger(&engine, "skip").await.token();
    executing(&engine, running).await;
    let answers: Vec<Triggered> = burst(&engine, "skip", 50)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let created: Vec<JobToken> = answers
        .iter()
        .filter_map(|a| match a {
            Triggered::Created(token) => Some(*token),
            Triggered::Existing(_) => None,
        })
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    let waiting = created[0];
    assert_ne!(waiting, running);
    assert!(answers.iter().all(|a| a.token() == waiting), "{answers:?}");
    assert_eq!(engine.queue_position(waiting).await, Some(1));
    assert_eq!(
        engine.store().status(waiting).await.unwrap(),
        Some(JobStatus::Pending)
    );
}

#[tokio::test(start_paused = true)]
async fn the_pending_limit_is_exact_under_a_burst() {
    let config = EngineConfig {
        max_pending_jobs: 5,
        max_concurrent_jobs: 1,
        ..EngineConfig::default()
    };
    let engine = start(&[("q", SLEEPER)], config).await;
    let running = trigger(&engine, "q").await.token();
    executing(&engine, running).await;
    let answers = burst(&engine, "q", 50).await;
    let admitted: Vec<JobToken> = answers
        .iter()
        .filter_map(|a| a.as_ref().ok().map(|t| t.token()))
        .collect();
    assert_eq!(admitted.len(), 5, "{answers:?}");
    let full = answers
        .iter()
        .filter(|a| matches!(a, Err(EngineError::QueueFull { limit: 5 })))
        .count();
    assert_eq!(full, 45);
    let mut positions: Vec<usize> = Vec::new();
    for token in &admitted {
        positions.push(engine.queue_position(*token).await.unwrap());
    }
    positions.sort_unstable();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    assert_eq!(engine.queue_position(running).await, None);
}

mod faults;
mod lifecycle;
mod schedules;
