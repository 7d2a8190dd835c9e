//! Reliability: crashes, shutdown, limits and storage faults, each injected for real.

use std::time::{Duration, Instant};

use holt_tests::{Holtd, alive};

fn template(plan: &str) -> String {
    format!("allow_api = true\nplan = '''\n{plan}\n'''\n")
}

/// A job that records its shell's pid and a background child's pid, then sleeps.
fn sleeper(dir: &std::path::Path) -> String {
    let d = dir.display();
    template(&format!(
        "Log-Information started;\nSHExec >>sleep 60 & echo `$! > {d}/child-`$HOLT_JOB_TOKEN; echo `$`$ > {d}/main-`$HOLT_JOB_TOKEN; wait>>;"
    ))
}

fn pids(dir: &std::path::Path, token: &str) -> Vec<String> {
    ["main", "child"]
        .iter()
        .map(|which| {
            std::fs::read_to_string(dir.join(format!("{which}-{token}"))).unwrap_or_default()
        })
        .collect()
}

async fn wait_for_pids(dir: &std::path::Path, token: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = pids(dir, token);
        if found.iter().all(|p| !p.trim().is_empty()) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "the job's processes never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_crash_leaves_no_process_of_an_interrupted_job_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut holtd = Holtd::start(&[("sleeper", &sleeper(dir.path()))], &[]).await;
    let token = holtd.trigger("template=sleeper").await;
    let processes = wait_for_pids(dir.path(), &token).await;
    holtd.wait_log(&token, "INFO: started\n").await;
    holtd.kill9();
    for pid in &processes {
        assert!(
            alive(pid),
            "process {pid} died with holtd; the test proves nothing"
        );
    }
    holtd.restart().await;
    assert_eq!(holtd.status(&token, "").await, "Error");
    assert!(holtd.logs(&token, "").await.ends_with(
        "ERROR: The server stopped while this job was executing; the job did not finish.\n"
    ));
    for pid in &processes {
        assert!(
            !alive(pid),
            "process {pid} of the interrupted job is still running"
        );
    }
}

#[tokio::test]
async fn sigterm_stops_jobs_still_running_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let mut holtd = Holtd::start(
        &[("sleeper", &sleeper(dir.path()))],
        &["--shutdown-grace", "1", "--kill-grace", "1"],
    )
    .await;
    let token = holtd.trigger("template=sleeper").await;
    let processes = wait_for_pids(dir.path(), &token).await;
    let started = Instant::now();
    holtd.signal("TERM");
    let status = holtd.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    for pid in &processes {
        assert!(!alive(pid), "process {pid} outlived the shutdown");
    }
    holtd.restart().await;
    assert_eq!(holtd.status(&token, "").await, "Error");
    let log = holtd.logs(&token, "").await;
    assert!(
        log.ends_with(
            "ERROR: The server shut down while this job was executing; the job was stopped.\n"
        ),
        "{log}"
    );
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut holtd = Holtd::start(
        &[("sleeper", &sleeper(dir.path()))],
        &["--shutdown-grace", "60"],
    )
    .await;
    let token = holtd.trigger("template=sleeper").await;
    wait_for_pids(dir.path(), &token).await;
    holtd.signal("TERM");
    // The first signal starts a drain that would wait up to a minute for the job.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    holtd.signal("INT");
    holtd.wait_exit(Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(3));
    // Nothing committed is lost: the job is there, and the restart fails it cleanly.
    holtd.restart().await;
    assert_eq!(holtd.status(&token, "").await, "Error");
    assert!(holtd.logs(&token, "").await.contains("INFO: started\n"));
}
