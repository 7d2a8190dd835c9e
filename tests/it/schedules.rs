//! Schedules on a real holtd: a schedule firing every second observed end to end, a restart
//! that fires no slot twice and skips those missed, `run_once` after downtime, two nodes on
//! PostgreSQL firing each slot once, `holtd check`'s next firings, and the example template.
//! Slots come on the real clock, so each test waits seconds, bounded.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use holt_storage_postgres::scratch::ScratchDatabase;
use holt_tests::{Holtd, holtd_binary};
use jiff::Timestamp;

const ADMIN: &str = "admin-secret";

/// How long a test waits for what a schedule firing every second should bring.
const PATIENCE: Duration = Duration::from_secs(30);

const EVERY_SECOND: &str =
    "schedule = '* * * * * *'\nplan = 'Log-Information \"slot $ScheduledFor\";'\n";

fn admin_args() -> Vec<String> {
    vec!["--admin-key-sha256".into(), holt_tests::sha256_hex(ADMIN)]
}

async fn start(templates: &[(&str, &str)], extra: &[&str]) -> Holtd {
    let mut args = admin_args();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Holtd::start(templates, &args).await
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A scheduled job as the listing and its log show it.
#[derive(Debug, Clone)]
struct Scheduled {
    token: String,
    source: String,
    /// Its `$ScheduledFor`, from the line its plan logged.
    slot: String,
}

/// The template's jobs, oldest first, each once it has logged its slot.
async fn scheduled(holtd: &Holtd, template: &str) -> Vec<Scheduled> {
    let reply = holtd
        .request(
            "GET",
            &format!("/api/jobs/list?template={template}&limit=500"),
            &[("x-apikey", ADMIN)],
            "",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let page = json(&reply.body);
    let mut jobs = Vec::new();
    for job in page["jobs"].as_array().unwrap().iter().rev() {
        let token = job["token"].as_str().unwrap().to_owned();
        let log = holtd.wait_log(&token, "slot ").await;
        let slot = log
            .lines()
            .find_map(|l| l.strip_prefix("INFO: slot "))
            .unwrap_or_else(|| panic!("no slot in {log}"))
            .to_owned();
        jobs.push(Scheduled {
            token,
            source: job["source"].as_str().unwrap().to_owned(),
            slot,
        });
    }
    jobs
}

/// Waits until the template has at least `n` jobs.
async fn at_least(holtd: &Holtd, template: &str, n: usize) -> Vec<Scheduled> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let jobs = scheduled(holtd, template).await;
        if jobs.len() >= n {
            return jobs;
        }
        assert!(
            Instant::now() < deadline,
            "{template}: {} jobs after {PATIENCE:?}, expected {n}; holtd's log:\n{}",
            jobs.len(),
            holtd.server_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ms(slot: &str) -> i64 {
    slot.parse::<Timestamp>()
        .unwrap_or_else(|e| panic!("{slot}: {e}"))
        .as_millisecond()
}

fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// A counter's value in `/metrics`.
async fn metric(holtd: &Holtd, line_start: &str) -> u64 {
    let body = holtd.get("/metrics").await.body;
    body.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in:\n{body}"))
}

#[tokio::test]
async fn a_schedule_firing_every_second_runs_its_jobs() {
    let tick = format!("allow_api = true\n{EVERY_SECOND}");
    let holtd = start(&[("tick", &tick)], &[]).await;
    let jobs = at_least(&holtd, "tick", 3).await;
    let slots: Vec<i64> = jobs.iter().map(|j| ms(&j.slot)).collect();
    assert!(jobs.iter().all(|j| j.source == "schedule"), "{jobs:?}");
    // On whole seconds, in order, each once; `$ScheduledFor` is RFC 3339 in UTC by default.
    assert!(slots.windows(2).all(|w| w[0] < w[1]), "{jobs:?}");
    assert!(slots.iter().all(|s| s % 1000 == 0), "{jobs:?}");
    assert!(jobs.iter().all(|j| j.slot.ends_with("+00:00")), "{jobs:?}");
    for job in &jobs {
        assert_eq!(holtd.wait_terminal(&job.token, "").await, "Succeeded");
    }
    let fired = metric(&holtd, "holt_schedule_firings_total{template=\"tick\"} ").await;
    assert!(fired >= jobs.len() as u64, "{fired} < {}", jobs.len());
    // A trigger cannot forge the slot: the variable is the engine's.
    let reply = holtd
        .get("/api/jobs/trigger?template=tick&ScheduledFor=2001-01-01T00:00:00Z")
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("built in"), "{}", reply.body);
}

/// Waits until the template's jobs satisfy `done`, and returns them.
async fn until(
    holtd: &Holtd,
    template: &str,
    done: impl Fn(&[Scheduled]) -> bool,
) -> Vec<Scheduled> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let jobs = scheduled(holtd, template).await;
        if done(&jobs) {
            return jobs;
        }
        assert!(
            Instant::now() < deadline,
            "{template}: {jobs:?} after {PATIENCE:?}; holtd's log:\n{}",
            holtd.server_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sleeps until the wall clock reads `at_ms`.
async fn sleep_until(at_ms: i64) {
    while now_ms() < at_ms {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_restart_fires_no_slot_twice_and_skips_the_slots_missed() {
    let mut holtd = start(&[("tick", EVERY_SECOND)], &[]).await;
    at_least(&holtd, "tick", 2).await;
    assert!(holtd.terminate().success());
    let stopped = now_ms();
    sleep_until(stopped + 2500).await;
    holtd.restart().await;
    let after = |jobs: &[Scheduled]| -> Vec<i64> {
        jobs.iter()
            .map(|j| ms(&j.slot))
            .filter(|&s| s > stopped)
            .collect()
    };
    let jobs = until(&holtd, "tick", |jobs| after(jobs).len() >= 2).await;
    let slots: Vec<&String> = jobs.iter().map(|j| &j.slot).collect();
    let distinct: BTreeSet<&&String> = slots.iter().collect();
    assert_eq!(distinct.len(), slots.len(), "a slot fired twice: {slots:?}");
    // Nothing ran for the slots that passed while holtd was down (missed = skip)...
    let after = after(&jobs);
    assert!(after.iter().all(|&s| s > stopped + 2000), "{slots:?}");
    // ...and they were counted.
    let last = jobs
        .iter()
        .map(|j| ms(&j.slot))
        .filter(|&s| s <= stopped)
        .max()
        .unwrap();
    let missed = metric(&holtd, "holt_schedule_missed_total{template=\"tick\"} ").await;
    let gap = (after[0] - last) / 1000 - 1;
    assert!(
        missed >= 2 && missed as i64 <= gap,
        "missed {missed}, gap {gap}: {slots:?}"
    );
}

#[tokio::test]
async fn run_once_after_downtime_runs_one_job_for_the_latest_slot_missed() {
    let zone = "schedule_timezone = 'Europe/Berlin'\nmissed = 'run_once'\n";
    let mut holtd = start(&[("report", &format!("{zone}{EVERY_SECOND}"))], &[]).await;
    let first = at_least(&holtd, "report", 1).await;
    assert!(
        first[0].slot.ends_with("+01:00") || first[0].slot.ends_with("+02:00"),
        "{first:?}"
    );
    assert!(holtd.terminate().success());
    let stopped = now_ms();
    // While holtd is down its schedule becomes one slot a minute, at a second that comes during
    // the downtime: that slot is missed, and the next one is a minute away.
    let missed_slot = (stopped / 1000 + 2) * 1000;
    let schedule = format!("{} * * * * *", (missed_slot / 1000) % 60);
    holtd.write_template(
        "report",
        &format!("{zone}{}", EVERY_SECOND.replace("* * * * * *", &schedule)),
    );
    sleep_until(missed_slot + 500).await;
    holtd.restart().await;
    let after = |jobs: &[Scheduled]| -> Vec<Scheduled> {
        jobs.iter()
            .filter(|j| ms(&j.slot) > stopped)
            .cloned()
            .collect()
    };
    let jobs = until(&holtd, "report", |jobs| !after(jobs).is_empty()).await;
    let berlin = Timestamp::from_millisecond(missed_slot)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::get("Europe/Berlin").unwrap());
    let expected = berlin
        .timestamp()
        .display_with_offset(berlin.offset())
        .to_string();
    let caught_up = after(&jobs);
    assert_eq!(caught_up.len(), 1, "{jobs:?}");
    assert_eq!(caught_up[0].slot, expected);
    assert_eq!(caught_up[0].source, "schedule");
    assert_eq!(
        holtd.wait_terminal(&caught_up[0].token, "").await,
        "Succeeded"
    );
    assert_eq!(
        metric(&holtd, "holt_schedule_missed_total{template=\"report\"} ").await,
        1
    );
    assert_eq!(
        metric(&holtd, "holt_schedule_firings_total{template=\"report\"} ").await,
        1
    );
    // A second restart right away runs nothing more for that slot.
    assert!(holtd.terminate().success());
    holtd.restart().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(after(&scheduled(&holtd, "report").await).len(), 1);
    assert_eq!(
        metric(&holtd, "holt_schedule_missed_total{template=\"report\"} ").await,
        0
    );
}

/// Two nodes sharing a secrets key, on one PostgreSQL database.
async fn node(db: &ScratchDatabase, key: &Path, name: &str, templates: &[(&str, &str)]) -> Holtd {
    let mut args = admin_args();
    for arg in ["--node-name", name, "--secrets-key", key.to_str().unwrap()] {
        args.push(arg.to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Holtd::start_on_postgres(db.url(), templates, &args).await
}

#[tokio::test]
async fn two_nodes_on_postgres_fire_each_slot_once() {
    let db = ScratchDatabase::create().await;
    let key = tempfile::tempdir().unwrap();
    let key = key.path().join("secrets.key");
    let templates = [("tick", EVERY_SECOND)];
    let a = node(&db, &key, "a", &templates).await;
    let b = node(&db, &key, "b", &templates).await;
    let started = now_ms();
    // Both nodes run a task for every slot; the store lets one of them fire it.
    let jobs = until(&a, "tick", |jobs| {
        jobs.iter().filter(|j| ms(&j.slot) > started).count() >= 4
    })
    .await;
    let slots: Vec<&String> = jobs.iter().map(|j| &j.slot).collect();
    let distinct: BTreeSet<&&String> = slots.iter().collect();
    assert_eq!(distinct.len(), slots.len(), "a slot fired twice: {slots:?}");
    assert!(jobs.iter().all(|j| j.source == "schedule"));
    // Every job ran, on one node or the other.
    for job in &jobs {
        assert_eq!(b.wait_terminal(&job.token, "").await, "Succeeded");
    }
    // What each node says it fired adds up to no more than the slots there are.
    let fired = metric(&a, "holt_schedule_firings_total{template=\"tick\"} ").await
        + metric(&b, "holt_schedule_firings_total{template=\"tick\"} ").await;
    let now = scheduled(&b, "tick").await.len() as u64;
    assert!(fired <= now, "{fired} firings, {now} jobs");
    assert!(
        fired >= jobs.len() as u64,
        "{fired} firings, {} jobs",
        jobs.len()
    );
}

/// Runs `holtd check --templates DIR`.
fn check(dir: &Path) -> std::process::Output {
    std::process::Command::new(holtd_binary())
        .arg("check")
        .arg("--templates")
        .arg(dir)
        .output()
        .unwrap()
}

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/templates")
}

#[test]
fn holtd_check_shows_each_schedule_and_its_next_three_firings() {
    let before = now_ms();
    let output = check(&examples());
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("nightly-report: "))
        .unwrap_or_else(|| panic!("no nightly-report line in:\n{stdout}"));
    let (head, next) = line.split_once("; next ").unwrap();
    assert_eq!(
        head,
        "nightly-report: schedule \"0 * * * *\" in Europe/Berlin, missed = run_once"
    );
    let next: Vec<&str> = next.split(", ").collect();
    assert_eq!(next.len(), 3, "{line}");
    let slots: Vec<i64> = next.iter().map(|s| ms(s)).collect();
    assert!(
        slots[0] > before && slots[0] <= before + 3_600_000,
        "{line}"
    );
    assert_eq!(slots[1] - slots[0], 3_600_000, "{line}");
    assert_eq!(slots[2] - slots[1], 3_600_000, "{line}");
    assert!(next.iter().all(|s| s.contains(":00:00+0")), "{line}");
    // Templates without a schedule get no line.
    assert!(!stdout.contains("hdars:"), "{stdout}");
}

#[tokio::test]
async fn the_example_nightly_report_runs_on_its_schedule() {
    let text = std::fs::read_to_string(examples().join("nightly-report.toml")).unwrap();
    assert!(text.contains("schedule = \"0 * * * *\"\n"));
    // The same template, brought forward from once an hour to once a second.
    let every_second = text.replace("schedule = \"0 * * * *\"", "schedule = \"* * * * * *\"");
    let holtd = start(&[("nightly-report", &every_second)], &[]).await;
    let reply = until_listed(&holtd).await;
    let token = reply["token"].as_str().unwrap().to_owned();
    assert_eq!(reply["source"], "schedule");
    let status = holtd.wait_terminal(&token, "&key=nightly-key").await;
    let log = holtd.logs(&token, "&key=nightly-key").await;
    assert_eq!(status, "Succeeded", "{log}");
    let slot = log
        .lines()
        .find_map(|l| l.strip_prefix("INFO: Report for "))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        slot.ends_with("+01:00") || slot.ends_with("+02:00"),
        "{log}"
    );
    assert!(log.contains("Filesystem"), "{log}");
    assert!(log.contains("load average"), "{log}");
    // Its declared output is the slot it ran for.
    let outputs = holtd
        .get(&format!("/api/jobs/outputs?token={token}&key=nightly-key"))
        .await;
    assert_eq!(outputs.status, 200, "{}", outputs.body);
    assert_eq!(json(&outputs.body), serde_json::json!({ "Slot": slot }));
    // The operators' listing of templates shows the schedule.
    let reply = holtd
        .request("GET", "/api/templates/list", &[("x-apikey", ADMIN)], "")
        .await;
    let page = json(&reply.body);
    assert_eq!(
        page["templates"][0]["schedule"],
        serde_json::json!({"cron": "* * * * * *", "timezone": "Europe/Berlin", "missed": "run_once"})
    );
}

/// The first job the listing shows for the example.
async fn until_listed(holtd: &Holtd) -> serde_json::Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = holtd
            .request(
                "GET",
                "/api/jobs/list?template=nightly-report",
                &[("x-apikey", ADMIN)],
                "",
            )
            .await;
        let page = json(&reply.body);
        if let Some(job) = page["jobs"].as_array().and_then(|jobs| jobs.last()) {
            return job.clone();
        }
        assert!(Instant::now() < deadline, "{}", holtd.server_log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn sighup_starts_and_stops_a_schedule() {
    let holtd = start(
        &[("tick", "plan = 'Log-Information \"slot $ScheduledFor\";'\n")],
        &[],
    )
    .await;
    holtd.write_template("tick", EVERY_SECOND);
    holtd.signal("HUP");
    let reloaded = now_ms();
    let jobs = at_least(&holtd, "tick", 2).await;
    assert!(jobs.iter().all(|j| ms(&j.slot) > reloaded), "{jobs:?}");
    // Without its schedule the template is triggered by nobody.
    holtd.write_template("tick", "plan = 'Log-Information \"slot $ScheduledFor\";'\n");
    holtd.signal("HUP");
    let deadline = Instant::now() + PATIENCE;
    while !holtd.server_log().contains("schedule stopped") {
        assert!(Instant::now() < deadline, "{}", holtd.server_log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped = scheduled(&holtd, "tick").await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(scheduled(&holtd, "tick").await.len(), stopped);
}
