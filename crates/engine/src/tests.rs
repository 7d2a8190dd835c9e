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
    let mut status = engine.status_watch(token).expect("the job has not ended");
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
    assert_eq!(engine.queue_position(waiting), Some(1));
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
    let mut positions: Vec<usize> = admitted
        .iter()
        .map(|t| engine.queue_position(*t).unwrap())
        .collect();
    positions.sort_unstable();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    assert_eq!(engine.queue_position(running), None);
}

/// A `MemoryStore` with faults: it panics when handed a log line containing `boom`, as a bug
/// in a store (or in anything a job's run calls) would, and after recording a job it says so
/// and lets other tasks run before it answers, as a store that commits elsewhere does.
#[derive(Debug, Default)]
struct Faulty {
    inner: MemoryStore,
    created: tokio::sync::Notify,
}

#[async_trait]
impl JobStore for Faulty {
    fn instance_id(&self) -> &str {
        self.inner.instance_id()
    }
    async fn create_job(&self, job: NewJob) -> Result<Created, StoreError> {
        let created = self.inner.create_job(job).await;
        self.created.notify_one();
        tokio::task::yield_now().await;
        created
    }
    async fn set_status(
        &self,
        token: JobToken,
        status: JobStatus,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.inner.set_status(token, status, at_ms).await
    }
    async fn append_logs(&self, token: JobToken, entries: Vec<LogEntry>) -> Result<(), StoreError> {
        assert!(
            !entries.iter().any(|e| e.text.contains("boom")),
            "the store broke down"
        );
        self.inner.append_logs(token, entries).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush().await
    }
    async fn job(&self, token: JobToken) -> Result<Option<JobRecord>, StoreError> {
        self.inner.job(token).await
    }
    async fn last_seq(&self, token: JobToken) -> Result<Option<u64>, StoreError> {
        self.inner.last_seq(token).await
    }
    async fn delete_finished(
        &self,
        rule: &RetentionRule,
        limit: usize,
    ) -> Result<usize, StoreError> {
        self.inner.delete_finished(rule, limit).await
    }
    async fn prune_idempotency(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.inner.prune_idempotency(before_ms).await
    }
    async fn summary(
        &self,
        token: JobToken,
    ) -> Result<Option<(TemplateName, JobStatus)>, StoreError> {
        self.inner.summary(token).await
    }
    async fn status(&self, token: JobToken) -> Result<Option<JobStatus>, StoreError> {
        self.inner.status(token).await
    }
    async fn logs(
        &self,
        token: JobToken,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.inner.logs(token, from_seq, limit).await
    }
    async fn recover(&self, message: &str, at_ms: i64) -> Result<Recovery, StoreError> {
        self.inner.recover(message, at_ms).await
    }
    fn watch_committed(&self, token: JobToken) -> tokio::sync::watch::Receiver<u64> {
        self.inner.watch_committed(token)
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_run_fails_only_that_job() {
    let config = EngineConfig {
        max_concurrent_jobs: 1,
        ..EngineConfig::default()
    };
    let store = Arc::new(Faulty::default());
    let engine = start_on(
        store,
        &[
            ("bad", "plan = 'Log-Information boom;'"),
            ("good", "plan = 'Log-Information fine;'"),
        ],
        config,
    )
    .await;
    let bad = trigger(&engine, "bad").await.token();
    // Queued behind the bad job: it starts only once the bad job's slot is freed.
    let good = trigger(&engine, "good").await.token();
    assert_eq!(ended(&engine, bad).await, JobStatus::Error);
    assert_eq!(
        log_text(&engine, bad).await,
        format!("DEBUG: Job started from template bad.\nERROR: {INTERNAL_ERROR_MESSAGE}\n")
    );
    assert_eq!(ended(&engine, good).await, JobStatus::Succeeded);
    assert_eq!(
        log_text(&engine, good).await,
        "DEBUG: Job started from template good.\nINFO: fine\nINFO: Job succeeded.\n"
    );
    // And another after it, on the same single slot.
    let again = trigger(&engine, "good").await.token();
    assert_eq!(ended(&engine, again).await, JobStatus::Succeeded);
    tokio::time::timeout(PATIENCE, engine.shutdown())
        .await
        .expect("shutdown returns");
}

#[tokio::test(start_paused = true)]
async fn cancel_ends_pending_and_running_jobs() {
    let config = EngineConfig {
        max_concurrent_jobs: 1,
        ..EngineConfig::default()
    };
    let engine = start(&[("s", SLEEPER)], config).await;
    let running = trigger(&engine, "s").await.token();
    let pending = trigger(&engine, "s").await.token();
    executing(&engine, running).await;

    assert_eq!(
        engine.cancel(pending).await.unwrap(),
        Canceled::Stopped(JobStatus::Error)
    );
    assert_eq!(
        log_text(&engine, pending).await,
        format!("ERROR: {CANCELED_MESSAGE}\n")
    );
    assert_eq!(
        engine.store().status(running).await.unwrap(),
        Some(JobStatus::Executing)
    );

    let before = tokio::time::Instant::now();
    assert_eq!(
        engine.cancel(running).await.unwrap(),
        Canceled::Stopped(JobStatus::Error)
    );
    // The sleep was cut short, not waited out.
    assert!(
        before.elapsed() < Duration::from_secs(1),
        "{:?}",
        before.elapsed()
    );
    assert_eq!(
        log_text(&engine, running).await,
        format!("DEBUG: Job started from template s.\nERROR: {CANCELED_MESSAGE}\n")
    );
    assert_eq!(
        engine.cancel(running).await.unwrap(),
        Canceled::AlreadyEnded(JobStatus::Error)
    );
    assert_eq!(
        engine.cancel(JobToken::new(9_999).unwrap()).await.unwrap(),
        Canceled::Unknown
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_right_after_the_trigger_ends_the_job() {
    let config = EngineConfig {
        max_concurrent_jobs: 2,
        ..EngineConfig::default()
    };
    let engine = start(
        &[("s", "plan = 'Log-Information started; Sleep 1000;'")],
        config,
    )
    .await;
    // Some of these start at once, the others wait for a slot: both kinds are canceled.
    let mut tokens = Vec::new();
    for _ in 0..6 {
        let token = trigger(&engine, "s").await.token();
        let canceled = engine.cancel(token).await.unwrap();
        assert_eq!(canceled, Canceled::Stopped(JobStatus::Error));
        tokens.push(token);
    }
    for token in tokens {
        assert_eq!(ended(&engine, token).await, JobStatus::Error);
        assert_eq!(
            last_line(&engine, token).await,
            format!("ERROR: {CANCELED_MESSAGE}")
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancel_between_the_record_and_the_queue_ends_the_job() {
    let store = Arc::new(Faulty::default());
    let engine = start_on(store.clone(), &[("s", SLEEPER)], EngineConfig::default()).await;
    let triggering = tokio::spawn({
        let engine = engine.clone();
        async move { trigger(&engine, "s").await.token() }
    });
    // Runs while the trigger has recorded the job (its token is the store's first) and not yet
    // queued it.
    let canceling = tokio::spawn({
        let engine = engine.clone();
        async move {
            store.created.notified().await;
            let token = JobToken::new(1).unwrap();
            assert_eq!(
                engine.store().status(token).await.unwrap(),
                Some(JobStatus::Pending)
            );
            assert_eq!(engine.queue_position(token), None);
            engine.cancel(token).await.unwrap()
        }
    });
    let token = triggering.await.unwrap();
    assert_eq!(token, JobToken::new(1).unwrap());
    assert_eq!(
        canceling.await.unwrap(),
        Canceled::Stopped(JobStatus::Error)
    );
    assert_eq!(
        last_line(&engine, token).await,
        format!("ERROR: {CANCELED_MESSAGE}")
    );
}

#[tokio::test(start_paused = true)]
async fn a_template_timeout_stops_a_sleeping_job() {
    let engine = start(
        &[("slow", "timeout = \"5s\"\nplan = 'Sleep 1000;'")],
        EngineConfig::default(),
    )
    .await;
    let before = tokio::time::Instant::now();
    let token = trigger(&engine, "slow").await.token();
    assert_eq!(ended(&engine, token).await, JobStatus::Error);
    let took = before.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(
        last_line(&engine, token).await,
        "ERROR: The job's timeout of 5s elapsed; the job was stopped."
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_short_jobs_finish_and_stops_long_ones_after_the_grace() {
    let config = EngineConfig {
        shutdown_grace: Duration::from_secs(10),
        ..EngineConfig::default()
    };
    let engine = start(&[("short", "plan = 'Sleep 2;'"), ("long", SLEEPER)], config).await;
    let short = trigger(&engine, "short").await.token();
    let long = trigger(&engine, "long").await.token();
    executing(&engine, short).await;
    executing(&engine, long).await;
    let before = tokio::time::Instant::now();
    tokio::time::timeout(PATIENCE, engine.shutdown())
        .await
        .expect("shutdown returns");
    let took = before.elapsed();
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(11),
        "{took:?}"
    );
    let store = engine.store();
    assert_eq!(
        store.status(short).await.unwrap(),
        Some(JobStatus::Succeeded)
    );
    assert_eq!(store.status(long).await.unwrap(), Some(JobStatus::Error));
    assert_eq!(
        last_line(&engine, long).await,
        format!("ERROR: {SHUTDOWN_MESSAGE}")
    );
    assert!(matches!(
        engine
            .trigger(&loaded(&engine, "short"), &Variables::new(), None)
            .await,
        Err(EngineError::ShuttingDown)
    ));
}

#[tokio::test(start_paused = true)]
async fn shutdown_returns_at_once_when_nothing_runs() {
    let engine = start(&[("short", "plan = 'Sleep 2;'")], EngineConfig::default()).await;
    let token = trigger(&engine, "short").await.token();
    assert_eq!(ended(&engine, token).await, JobStatus::Succeeded);
    let before = tokio::time::Instant::now();
    engine.shutdown().await;
    // Only the sweep for escaped processes takes its second look at the process table.
    assert!(
        before.elapsed() <= Duration::from_millis(20),
        "{:?}",
        before.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn absurd_settings_are_refused() {
    let cases = [
        (
            EngineConfig {
                shutdown_grace: Duration::from_secs(u64::MAX),
                ..EngineConfig::default()
            },
            "--shutdown-grace",
        ),
        (
            EngineConfig {
                max_concurrent_jobs: 0,
                ..EngineConfig::default()
            },
            "--max-concurrent-jobs",
        ),
    ];
    assert!(EngineConfig::default().problems().is_empty());
    for (config, setting) in cases {
        let problems = config.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with(setting), "{problems:?}");
        let started = Engine::start(
            Arc::new(MemoryStore::new()),
            catalog(&[("s", SLEEPER)]),
            config,
        )
        .await;
        match started {
            Err(EngineError::Config(message)) => assert!(message.contains(setting), "{message}"),
            other => panic!("started with {setting} out of range: {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_reload_changes_what_can_be_triggered_but_not_queued_jobs() {
    let config = EngineConfig {
        max_concurrent_jobs: 1,
        ..EngineConfig::default()
    };
    let engine = start(
        &[
            ("block", SLEEPER),
            ("old", "plan = 'Log-Information original;'"),
        ],
        config,
    )
    .await;
    let blocker = trigger(&engine, "block").await.token();
    executing(&engine, blocker).await;
    let queued = trigger(&engine, "old").await.token();
    assert_eq!(engine.queue_position(queued), Some(1));

    engine.reload_templates(catalog(&[
        ("block", SLEEPER),
        ("new", "plan = 'Log-Information fresh;'"),
    ]));
    assert!(
        engine
            .templates()
            .get(&"old".parse::<TemplateName>().unwrap())
            .is_none()
    );
    let fresh = trigger(&engine, "new").await.token();

    engine.cancel(blocker).await.unwrap();
    assert_eq!(ended(&engine, queued).await, JobStatus::Succeeded);
    assert_eq!(
        log_text(&engine, queued).await,
        "DEBUG: Job started from template old.\nINFO: original\nINFO: Job succeeded.\n"
    );
    assert_eq!(ended(&engine, fresh).await, JobStatus::Succeeded);
    assert_eq!(
        log_text(&engine, fresh).await,
        "DEBUG: Job started from template new.\nINFO: fresh\nINFO: Job succeeded.\n"
    );
}

/// Counts the jobs a burst created.
fn created(answers: &[Result<Triggered, EngineError>]) -> usize {
    answers
        .iter()
        .filter(|a| matches!(a, Ok(Triggered::Created(_))))
        .count()
}

/// On worker threads, a burst's triggers really run at the same time: a trigger deciding
/// between another's queueing and its start would see a job waiting that is about to run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_above_one_admit_exactly_as_sequential_triggers_on_threads() {
    const REJECT_TWO: &str = "max_concurrent = 2\non_limit = \"reject\"\nplan = 'Sleep 1000;'";
    const SKIP_TWO: &str =
        "max_concurrent = 2\non_limit = \"skip_if_pending\"\nplan = 'Sleep 1000;'";
    for round in 0..20 {
        let engine = start(
            &[("reject", REJECT_TWO), ("skip", SKIP_TWO)],
            EngineConfig::default(),
        )
        .await;
        // One after another: two start, the third is refused.
        let answers = burst(&engine, "reject", 50).await;
        assert_eq!(created(&answers), 2, "round {round}: {answers:?}");
        // Two start, a third waits, and every later trigger gets the waiting one.
        let answers = burst(&engine, "skip", 50).await;
        assert_eq!(created(&answers), 3, "round {round}: {answers:?}");
        engine.inner.queue.stop_all("test over");
    }
}
