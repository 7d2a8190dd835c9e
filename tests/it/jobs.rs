//! Jobs over HTTP: variables, status progression, exact log bodies, the concurrency limit and
//! recovery after a crash.

use std::time::{Duration, Instant};

use holt_tests::Holtd;

use crate::templates;

async fn server(args: &[&str]) -> Holtd {
    Holtd::start(&templates::all(), args).await
}

#[tokio::test]
async fn seed_examples_work() {
    let holtd = server(&[]).await;
    let token = holtd.trigger("template=hdars&key=secure123").await;
    assert_eq!(
        holtd.wait_terminal(&token, "&key=secure123").await,
        "Succeeded"
    );
    assert!(
        holtd
            .logs(&token, "&key=secure123")
            .await
            .contains("INFO: Deploying to HDARSV1\n")
    );

    let reply = holtd
        .post_form(
            "/api/jobs/trigger?template=ablast",
            "TargetServer=ABLSV1&SendNotification=sdennis@example.com",
        )
        .await;
    assert_eq!(reply.status, 200);
    let token = reply.body;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    assert_eq!(
        holtd.logs(&token, "").await,
        "DEBUG: Job started from template ablast.\n\
         INFO: Deploying to ABLSV1\n\
         INFO: Notifying sdennis@example.com\n\
         INFO: Job succeeded.\n"
    );
}

#[tokio::test]
async fn variables_override_defaults_from_query_and_body() {
    let holtd = server(&[]).await;
    // Defaults when nothing is given.
    let token = holtd.trigger("template=ablast").await;
    holtd.wait_terminal(&token, "").await;
    let body = holtd.logs(&token, "").await;
    assert!(body.contains("INFO: Deploying to ABLSV0\n"), "{body}");
    assert!(
        body.contains("INFO: Notifying nobody@example.com\n"),
        "{body}"
    );
    // From the query, matching names in any case; values keep every character.
    let token = holtd
        .trigger("template=ablast&targetserver=Q%26A%20server&SENDNOTIFICATION=%24x")
        .await;
    holtd.wait_terminal(&token, "").await;
    let body = holtd.logs(&token, "").await;
    assert!(body.contains("INFO: Deploying to Q&A server\n"), "{body}");
    assert!(body.contains("INFO: Notifying $x\n"), "{body}");
    // From the body, beside the query.
    let reply = holtd
        .post_form(
            "/api/jobs/trigger?template=ablast&TargetServer=FROMQUERY",
            "SendNotification=body%40example.com",
        )
        .await;
    holtd.wait_terminal(&reply.body, "").await;
    let body = holtd.logs(&reply.body, "").await;
    assert!(body.contains("INFO: Deploying to FROMQUERY\n"), "{body}");
    assert!(
        body.contains("INFO: Notifying body@example.com\n"),
        "{body}"
    );
    // A variable the plan does not use is accepted and changes nothing.
    let token = holtd.trigger("template=ablast&Unused=1").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
}

#[tokio::test]
async fn final_statuses_follow_the_execution_state() {
    let holtd = server(&[]).await;
    let warns = holtd.trigger("template=warns").await;
    let fails = holtd.trigger("template=fails").await;
    assert_eq!(holtd.wait_terminal(&warns, "").await, "Warning");
    assert_eq!(
        holtd.logs(&warns, "").await,
        "DEBUG: Job started from template warns.\nINFO: before\nWARN: careful\nINFO: after\nWARN: Job completed with warnings.\n"
    );
    assert_eq!(holtd.wait_terminal(&fails, "").await, "Error");
    assert_eq!(
        holtd.logs(&fails, "").await,
        "DEBUG: Job started from template fails.\nWARN: careful\nERROR: broken\nINFO: still running\nERROR: Job failed.\n"
    );
}

#[tokio::test]
async fn status_moves_through_pending_and_executing() {
    let holtd = server(&["--max-concurrent-jobs", "1"]).await;
    let first = holtd.trigger("template=sleeps&Seconds=2").await;
    let second = holtd.trigger("template=sleeps&Seconds=0").await;
    holtd.wait_status(&first, "Executing").await;
    assert_eq!(holtd.status(&second, "").await, "Pending");
    // While executing, the log so far is readable.
    let partial = holtd.logs(&first, "").await;
    assert!(
        partial.starts_with("DEBUG: Job started from template sleeps.\n"),
        "{partial}"
    );
    assert_eq!(holtd.wait_terminal(&first, "").await, "Succeeded");
    assert_eq!(holtd.wait_terminal(&second, "").await, "Succeeded");
}

#[tokio::test]
async fn jobs_beyond_the_limit_wait_then_run_in_order() {
    let holtd = server(&["--max-concurrent-jobs", "2"]).await;
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(holtd.trigger("template=sleeps&Seconds=1").await);
    }
    holtd.wait_status(&tokens[0], "Executing").await;
    holtd.wait_status(&tokens[1], "Executing").await;
    for token in &tokens[2..] {
        assert_eq!(holtd.status(token, "").await, "Pending");
    }
    // At no moment do more than two execute: the metrics count them under the queue's one
    // lock (statuses read one after another are not one moment).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = holtd.get("/metrics").await.body;
        let executing: u32 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("holt_jobs{template=\"sleeps\",status=\"Executing\"} "))
            .map_or(0, |n| n.parse().unwrap());
        assert!(executing <= 2, "{metrics}");
        let mut statuses = Vec::new();
        for token in &tokens {
            statuses.push(holtd.status(token, "").await);
        }
        if statuses.iter().all(|s| s == "Succeeded") {
            break;
        }
        assert!(Instant::now() < deadline, "{statuses:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_restart_fails_interrupted_jobs_and_runs_pending_ones() {
    let mut holtd = server(&["--max-concurrent-jobs", "1"]).await;
    let running = holtd.trigger("template=sleeps&Seconds=60").await;
    let waiting = holtd.trigger("template=ablast").await;
    holtd.wait_status(&running, "Executing").await;
    assert_eq!(holtd.status(&waiting, "").await, "Pending");
    // Log lines are durable shortly after they are written; wait to see the one before the sleep.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !holtd
        .logs(&running, "")
        .await
        .contains("INFO: sleeping 60\n")
    {
        assert!(Instant::now() < deadline, "the first lines never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    holtd.kill9();
    holtd.restart().await;
    assert_eq!(holtd.status(&running, "").await, "Error");
    assert_eq!(
        holtd.logs(&running, "").await,
        "DEBUG: Job started from template sleeps.\n\
         INFO: sleeping 60\n\
         ERROR: The server stopped while this job was executing; the job did not finish.\n"
    );
    assert_eq!(holtd.wait_terminal(&waiting, "").await, "Succeeded");
    assert!(
        holtd
            .logs(&waiting, "")
            .await
            .contains("INFO: Deploying to ABLSV0\n")
    );
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let mut holtd = server(&[]).await;
    let token = holtd.trigger("template=sleeps&Seconds=1").await;
    holtd.wait_status(&token, "Executing").await;
    let status = holtd.terminate();
    assert!(status.success(), "{status:?}");
    holtd.restart().await;
    // The job was allowed to finish within the grace period.
    assert_eq!(holtd.status(&token, "").await, "Succeeded");
}
