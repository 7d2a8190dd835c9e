//! Hostile callers against the engine's edges: bursts against policies and limits, reloads
//! under load, a database taken away, absurd settings.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use holt_tests::{Holtd, holtd_binary, request};

/// Sends `count` triggers at once and returns each answer's status and body.
async fn burst(holtd: &Holtd, query: &str, count: usize) -> Vec<(u16, String)> {
    let addr = holtd.addr;
    let path = format!("/api/jobs/trigger?{query}");
    let mut tasks = Vec::new();
    for _ in 0..count {
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let reply = request(addr, "GET", &path, &[], "").await;
            (reply.status, reply.body)
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

fn tally(answers: &[(u16, String)]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for (status, _) in answers {
        *counts.entry(*status).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn policies_hold_exactly_under_a_burst() {
    let rejects =
        "allow_api = true\nmax_concurrent = 1\non_limit = \"reject\"\nplan = 'Sleep 30;'\n";
    let skips = "allow_api = true\nmax_concurrent = 1\non_limit = \"skip_if_pending\"\nplan = 'Sleep 30;'\n";
    let holtd = Holtd::start(
        &[("rejects", rejects), ("skips", skips)],
        &["--max-concurrent-jobs", "8"],
    )
    .await;

    // Nothing runs: of a burst, exactly one is admitted.
    let answers = burst(&holtd, "template=rejects", 40).await;
    assert_eq!(
        tally(&answers),
        BTreeMap::from([(200, 1), (429, 39)]),
        "{answers:?}"
    );
    // One runs: a burst admits none.
    let answers = burst(&holtd, "template=rejects", 40).await;
    assert_eq!(tally(&answers), BTreeMap::from([(429, 40)]), "{answers:?}");

    // One runs: of a burst, exactly one new job waits, and every answer names it.
    let running = holtd.trigger("template=skips").await;
    holtd.wait_status(&running, "Executing").await;
    let answers = burst(&holtd, "template=skips", 40).await;
    assert_eq!(tally(&answers), BTreeMap::from([(200, 40)]), "{answers:?}");
    let tokens: std::collections::BTreeSet<&str> =
        answers.iter().map(|(_, body)| body.as_str()).collect();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert!(!tokens.contains(running.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pending_limit_holds_under_a_burst() {
    let holtd = Holtd::start(
        &[("slow", "allow_api = true\nplan = 'Sleep 30;'\n")],
        &["--max-concurrent-jobs", "1", "--max-pending-jobs", "3"],
    )
    .await;
    let first = holtd.trigger("template=slow").await;
    holtd.wait_status(&first, "Executing").await;
    let answers = burst(&holtd, "template=slow", 40).await;
    assert_eq!(
        tally(&answers),
        BTreeMap::from([(200, 3), (503, 37)]),
        "{answers:?}"
    );
    let metrics = holtd.get("/metrics").await.body;
    assert!(metrics.contains("\nholt_queue_depth 3\n"), "{metrics}");
}

#[tokio::test]
async fn idempotency_keys_are_scoped_per_template() {
    let plan = "allow_api = true\nplan = 'Log-Information hi;'\n";
    let holtd = Holtd::start(&[("one", plan), ("two", plan)], &[]).await;
    let key = [("idempotency-key", "deploy-42")];
    let a = holtd
        .request("GET", "/api/jobs/trigger?template=one", &key, "")
        .await;
    let b = holtd
        .request("GET", "/api/jobs/trigger?template=two", &key, "")
        .await;
    assert_eq!((a.status, b.status), (200, 200), "{} / {}", a.body, b.body);
    assert_ne!(a.body, b.body);
    assert_eq!(b.header("x-holt-existing-job"), None);
    // Within one template the key still stands for its first job.
    let again = holtd
        .request("GET", "/api/jobs/trigger?template=two", &key, "")
        .await;
    assert_eq!((again.status, again.body.as_str()), (200, b.body.as_str()));
}

#[tokio::test]
async fn sighup_reloads_templates_without_dropping_a_request() {
    let holtd = Holtd::start(
        &[
            ("kept", "allow_api = true\nplan = 'Log-Information old;'\n"),
            (
                "edited",
                "allow_api = true\nplan = 'Log-Information before;'\n",
            ),
            (
                "removed",
                "allow_api = true\nplan = 'Log-Information bye;'\n",
            ),
            ("slow", "allow_api = true\nplan = 'Sleep 2;'\n"),
        ],
        &[],
    )
    .await;
    // A long poll in flight across the reload.
    let slow = holtd.trigger("template=slow").await;
    let addr = holtd.addr;
    let waiting = tokio::spawn(async move {
        request(
            addr,
            "GET",
            &format!("/api/jobs/status?token={slow}&wait=20"),
            &[],
            "",
        )
        .await
    });

    holtd.write_template(
        "kept",
        "allow_api = true\nplan = 'Log-Information \"unclosed;'\n",
    );
    holtd.write_template(
        "edited",
        "allow_api = true\nplan = 'Log-Information after;'\n",
    );
    holtd.write_template("added", "allow_api = true\nplan = 'Log-Information new;'\n");
    std::fs::remove_file(holtd.dir().join("templates/removed.toml")).unwrap();
    holtd.signal("HUP");

    // The reload is observed through the API: the added template becomes triggerable.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = holtd.get("/api/jobs/trigger?template=added").await;
        if reply.status == 200 {
            assert_eq!(holtd.wait_terminal(&reply.body, "").await, "Succeeded");
            assert!(holtd.logs(&reply.body, "").await.contains("INFO: new\n"));
            break;
        }
        assert_eq!(reply.status, 404, "{}", reply.body);
        assert!(Instant::now() < deadline, "the reload never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let edited = holtd.trigger("template=edited").await;
    holtd.wait_terminal(&edited, "").await;
    assert!(holtd.logs(&edited, "").await.contains("INFO: after\n"));
    // The broken edit keeps the template loaded before.
    let kept = holtd.trigger("template=kept").await;
    holtd.wait_terminal(&kept, "").await;
    assert!(holtd.logs(&kept, "").await.contains("INFO: old\n"));
    let removed = holtd.get("/api/jobs/trigger?template=removed").await;
    assert_eq!(removed.status, 404, "{}", removed.body);
    assert!(
        holtd.server_log().contains("kept.toml"),
        "the failed template is logged: {}",
        holtd.server_log()
    );

    let waited = waiting.await.unwrap();
    assert_eq!((waited.status, waited.body.as_str()), (200, "Succeeded"));
    assert_eq!(holtd.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn a_removed_database_is_noticed() {
    let holtd = Holtd::start(
        &[("hi", "allow_api = true\nplan = 'Log-Information hi;'\n")],
        &[],
    )
    .await;
    let token = holtd.trigger("template=hi").await;
    holtd.wait_terminal(&token, "").await;
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", holtd.db().display());
        let _ = std::fs::remove_file(path);
    }
    let health = holtd.get("/healthz").await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(health.body.contains("was removed"), "{}", health.body);
    assert!(!health.body.contains('\n'), "{}", health.body);
    let trigger = holtd.get("/api/jobs/trigger?template=hi").await;
    assert_eq!(trigger.status, 503, "{}", trigger.body);
    assert!(trigger.body.contains("was removed"), "{}", trigger.body);
}

#[tokio::test]
async fn a_replaced_database_is_noticed() {
    let holtd = Holtd::start(
        &[("hi", "allow_api = true\nplan = 'Log-Information hi;'\n")],
        &[],
    )
    .await;
    let copy = holtd.dir().join("copy.db");
    std::fs::copy(holtd.db(), &copy).unwrap();
    std::fs::rename(&copy, holtd.db()).unwrap();
    let health = holtd.get("/healthz").await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(health.body.contains("was replaced"), "{}", health.body);
}

#[test]
fn absurd_settings_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    for (flag, value) in [
        ("--shutdown-grace", "18446744073709551615"),
        ("--kill-grace", "99999999999"),
        ("--max-concurrent-jobs", "0"),
        ("--max-pending-jobs", "0"),
        ("--header-read-timeout", "0"),
        ("--max-body-bytes", "18446744073709551615"),
    ] {
        let started = Instant::now();
        let output = std::process::Command::new(holtd_binary())
            .args(["--listen", "127.0.0.1:0", "--db"])
            .arg(dir.path().join("holt.db"))
            .arg("--templates")
            .arg(dir.path().join("templates"))
            .args([flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flag} {value} was accepted");
        assert!(
            stderr.contains(flag) && !stderr.contains("panicked"),
            "{flag} {value}: {stderr}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
