//! Cancel, timeouts, shutdown, settings and reload.

use super::faults::Faulty;
use super::*;

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
            assert_eq!(engine.queue_position(token).await, None);
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
    assert_eq!(engine.queue_position(queued).await, Some(1));

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
