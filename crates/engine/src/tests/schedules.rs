//! Schedules on the test clock: a wall clock that moves with tokio's paused one, so that slots
//! come without waiting for them.

use holt_domain::{JobFilter, JobSummary, TriggerSource};

use super::*;
use crate::Clock;

/// 2026-12-01T22:00:05Z.
const START_MS: i64 = 1_796_162_405_000;

const EVERY_10S: &str =
    "schedule = '*/10 * * * * *'\nplan = 'Log-Information \"for $ScheduledFor\";'";

fn config_at(start_ms: i64) -> EngineConfig {
    EngineConfig {
        clock: Clock::follows_tokio(start_ms),
        ..EngineConfig::default()
    }
}

/// The template's jobs, oldest first.
async fn jobs_of(engine: &Engine, name: &str) -> Vec<JobSummary> {
    let mut jobs = engine
        .list_jobs(&JobFilter {
            template: Some(name.parse().unwrap()),
            status: None,
            before: None,
            limit: 1000,
        })
        .await
        .unwrap();
    jobs.reverse();
    jobs
}

/// Each job's `$ScheduledFor`, oldest first.
async fn slots_of(engine: &Engine, name: &str) -> Vec<String> {
    let mut slots = Vec::new();
    for job in jobs_of(engine, name).await {
        let record = engine.store().job(job.token).await.unwrap().unwrap();
        slots.push(record.variables.get("ScheduledFor").unwrap().to_owned());
    }
    slots
}

/// Sleeps on the paused clock until `seconds` after the test clock's start.
async fn until(seconds: u64, since: tokio::time::Instant) {
    tokio::time::sleep_until(since + Duration::from_secs(seconds)).await;
}

#[tokio::test(start_paused = true)]
async fn slots_fire_as_jobs_that_see_scheduled_for() {
    let began = tokio::time::Instant::now();
    let engine = start(&[("tick", EVERY_10S)], config_at(START_MS)).await;
    until(32, began).await;
    let jobs = jobs_of(&engine, "tick").await;
    let first: Vec<JobToken> = jobs.iter().take(3).map(|j| j.token).collect();
    assert_eq!(
        slots_of(&engine, "tick").await[..3],
        [
            "2026-12-01T22:00:10+00:00",
            "2026-12-01T22:00:20+00:00",
            "2026-12-01T22:00:30+00:00"
        ]
    );
    assert!(jobs.iter().all(|j| j.source == TriggerSource::Schedule));
    assert_eq!(engine.inner.schedules.counts("tick"), (3, 0));
    for token in first {
        assert_eq!(ended(&engine, token).await, JobStatus::Succeeded);
        assert!(
            log_text(&engine, token)
                .await
                .contains("INFO: for 2026-12-01T22:00:")
        );
    }
    // A job made by a trigger has the variable empty.
    let triggered = trigger(&engine, "tick").await.token();
    assert_eq!(ended(&engine, triggered).await, JobStatus::Succeeded);
    let log = log_text(&engine, triggered).await;
    assert!(
        log.contains("INFO: for \nINFO: Job succeeded.\n"),
        "{log:?}"
    );
    let mut metrics = String::new();
    engine.render_metrics(&mut metrics).await;
    assert!(metrics.contains("holt_schedule_firings_total{template=\"tick\"} "));
    assert!(metrics.contains("holt_schedule_missed_total{template=\"tick\"} 0"));
}

#[tokio::test(start_paused = true)]
async fn a_time_zone_and_its_spring_gap_decide_the_slot() {
    // 2026-03-29T00:00:00Z is 01:00 in Berlin; 02:30 does not happen that night.
    let began = tokio::time::Instant::now();
    let nightly = "schedule = '30 2 * * *'\nschedule_timezone = 'Europe/Berlin'\nplan = ''";
    let engine = start(&[("nightly", nightly)], config_at(1_774_742_400_000)).await;
    until(3 * 3600, began).await;
    assert_eq!(
        slots_of(&engine, "nightly").await,
        ["2026-03-29T03:00:00+02:00"]
    );
}

/// Starts an engine on `store` whose clock reads `at_ms`.
async fn start_at(store: &Arc<MemoryStore>, toml: &str, at_ms: i64) -> Engine {
    start_on(store.clone(), &[("tick", toml)], config_at(at_ms)).await
}

#[tokio::test(start_paused = true)]
async fn a_restart_fires_no_slot_twice_and_skips_those_it_missed() {
    let store = Arc::new(MemoryStore::new());
    let began = tokio::time::Instant::now();
    let first = start_at(&store, EVERY_10S, START_MS).await;
    until(27, began).await;
    first.shutdown().await;
    // A restart between two slots (at :34): the next one fires, nothing twice.
    let began = tokio::time::Instant::now();
    let second = start_at(&store, EVERY_10S, START_MS + 29_000).await;
    until(8, began).await;
    second.shutdown().await;
    // Down for four slots (:50 to 01:20): they are skipped.
    let began = tokio::time::Instant::now();
    let third = start_at(&store, EVERY_10S, START_MS + 77_000).await;
    until(10, began).await;
    assert_eq!(
        slots_of(&third, "tick").await,
        [
            "2026-12-01T22:00:10+00:00",
            "2026-12-01T22:00:20+00:00",
            "2026-12-01T22:00:30+00:00",
            "2026-12-01T22:00:40+00:00",
            "2026-12-01T22:01:30+00:00"
        ]
    );
    assert_eq!(first.inner.schedules.counts("tick"), (3, 0));
    assert_eq!(second.inner.schedules.counts("tick"), (1, 0));
    assert_eq!(third.inner.schedules.counts("tick"), (1, 4));
}

#[tokio::test(start_paused = true)]
async fn run_once_runs_one_job_for_the_slots_missed() {
    let toml = format!("missed = 'run_once'\n{EVERY_10S}");
    let store = Arc::new(MemoryStore::new());
    let began = tokio::time::Instant::now();
    let first = start_at(&store, &toml, START_MS).await;
    until(15, began).await;
    first.shutdown().await;
    let began = tokio::time::Instant::now();
    let second = start_at(&store, &toml, START_MS + 52_000).await;
    // The catch-up job comes at once, before any slot of the second run.
    until(1, began).await;
    assert_eq!(
        slots_of(&second, "tick").await,
        ["2026-12-01T22:00:10+00:00", "2026-12-01T22:00:50+00:00"]
    );
    until(10, began).await;
    assert_eq!(slots_of(&second, "tick").await.len(), 3);
    assert_eq!(second.inner.schedules.counts("tick"), (2, 4));
    // A restart right after the catch-up runs nothing more for those slots.
    second.shutdown().await;
    let began = tokio::time::Instant::now();
    let third = start_at(&store, &toml, START_MS + 63_000).await;
    until(1, began).await;
    assert_eq!(third.inner.schedules.counts("tick"), (0, 0));
    assert_eq!(slots_of(&third, "tick").await.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn scheduled_jobs_obey_the_template_policy() {
    let toml = "schedule = '*/10 * * * * *'\nmax_concurrent = 1\non_limit = 'reject'\nplan = 'Sleep 1000;'";
    let began = tokio::time::Instant::now();
    let engine = start(&[("slow", toml)], config_at(START_MS)).await;
    until(32, began).await;
    // The first slot's job still runs: the next two slots are refused, yet count as fired.
    let jobs = jobs_of(&engine, "slow").await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(engine.inner.schedules.counts("slow"), (3, 0));
    assert_eq!(
        engine
            .store()
            .last_firing(&"slow".parse().unwrap())
            .await
            .unwrap(),
        Some(START_MS + 25_000)
    );
}

#[tokio::test(start_paused = true)]
async fn reloads_start_change_and_stop_schedules() {
    let began = tokio::time::Instant::now();
    let engine = start(&[("tick", "plan = ''")], config_at(START_MS)).await;
    assert!(engine.inner.schedules.running().is_empty());
    until(12, began).await;
    assert!(jobs_of(&engine, "tick").await.is_empty());
    engine.reload_templates(catalog(&[("tick", EVERY_10S)]));
    until(22, began).await;
    assert_eq!(
        slots_of(&engine, "tick").await,
        ["2026-12-01T22:00:20+00:00"]
    );
    // A changed schedule starts from now; an unchanged one keeps its task.
    engine.reload_templates(catalog(&[("tick", &EVERY_10S.replace("*/10", "*/30"))]));
    engine.reload_templates(catalog(&[("tick", &EVERY_10S.replace("*/10", "*/30"))]));
    until(62, began).await;
    assert_eq!(
        slots_of(&engine, "tick").await,
        [
            "2026-12-01T22:00:20+00:00",
            "2026-12-01T22:00:30+00:00",
            "2026-12-01T22:01:00+00:00"
        ]
    );
    engine.reload_templates(catalog(&[("tick", "plan = ''")]));
    assert!(engine.inner.schedules.running().is_empty());
    until(200, began).await;
    assert_eq!(slots_of(&engine, "tick").await.len(), 3);
}
