//! Holt's additions to the Otter API, end to end.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

use crate::templates::with_plan as template;
use holt_storage::{JobStore, SqliteConfig, SqliteStore};
use holt_tests::{Holtd, alive};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn store_of(holtd: &Holtd) -> SqliteStore {
    SqliteStore::open(&SqliteConfig::new(holtd.db())).unwrap()
}

#[tokio::test]
async fn long_poll_wakes_the_waiter_at_completion() {
    let holtd = Holtd::start(
        &[
            ("nap", &template("Sleep 0.5;")),
            ("long", &template("Sleep 3;")),
        ],
        &[],
    )
    .await;
    let token = holtd.trigger("template=nap").await;
    let reply = holtd
        .get(&format!("/api/jobs/status?token={token}&wait=10"))
        .await;
    let answered_ms = now_ms();
    assert_eq!((reply.status, reply.body.as_str()), (200, "Succeeded"));
    let store = store_of(&holtd).await;
    let job = store.job(token.parse().unwrap()).await.unwrap().unwrap();
    let late = answered_ms - job.finished_ms.unwrap();
    // The waiter is woken by completion, not by polling; 50 ms is the aim, the bound is
    // generous for a loaded 2-core machine.
    assert!(late < 250, "the waiter heard {late} ms after the job ended");
    println!("long-poll waiter answered {late} ms after completion");

    // A wait that ends first answers with the current status.
    let token = holtd.trigger("template=long").await;
    holtd.wait_status(&token, "Executing").await;
    let started = Instant::now();
    let reply = holtd
        .get(&format!("/api/jobs/status?token={token}&wait=0.3"))
        .await;
    assert_eq!(reply.body, "Executing");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let reply = holtd
        .get(&format!("/api/jobs/status?token={token}&wait=61"))
        .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (400, "wait must be a number of seconds from 0 to 60")
    );
}

#[tokio::test]
async fn thousands_of_waiters_are_all_woken() {
    let holtd = Holtd::start(
        &[("nap", &template("Sleep 1;"))],
        &["--max-connections", "4096"],
    )
    .await;
    let token = holtd.trigger("template=nap").await;
    let mut waiters = Vec::new();
    for _ in 0..1000 {
        let addr = holtd.addr;
        let path = format!("/api/jobs/status?token={token}&wait=30");
        waiters.push(tokio::spawn(async move {
            holt_tests::request(addr, "GET", &path, &[], "").await.body
        }));
    }
    let started = Instant::now();
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), "Succeeded");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn logs_from_an_offset_with_headers_and_ndjson() {
    let plan = "# Deploy\n{\n    Log-Information a;\n    Log-Warning b;\n}\nLog-Information c;";
    let holtd = Holtd::start(&[("t", &template(plan))], &[]).await;
    let token = holtd.trigger("template=t").await;
    holtd.wait_terminal(&token, "").await;
    let reply = holtd
        .get(&format!("/api/jobs/logs?token={token}&offset=2"))
        .await;
    assert_eq!(
        reply.body,
        "WARN: b\nINFO: c\nWARN: Job completed with warnings.\n"
    );
    assert_eq!(reply.header("x-holt-next-offset"), Some("5"));
    assert_eq!(reply.header("x-holt-status"), Some("Warning"));
    let reply = holtd
        .get(&format!("/api/jobs/logs?token={token}&offset=5"))
        .await;
    assert_eq!(
        (reply.body.as_str(), reply.header("x-holt-next-offset")),
        ("", Some("5"))
    );
    let reply = holtd
        .get(&format!(
            "/api/jobs/logs?token={token}&offset=1&format=ndjson"
        ))
        .await;
    assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<serde_json::Value> = reply
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["sequence"], 1);
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(lines[0]["text"], "a");
    assert_eq!(lines[0]["scope"], serde_json::json!(["Deploy"]));
    assert_eq!(lines[2]["scope"], serde_json::json!([]));
    assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    for bad in ["offset=-1", "format=xml", "follow=maybe"] {
        let reply = holtd
            .get(&format!("/api/jobs/logs?token={token}&{bad}"))
            .await;
        assert_eq!(reply.status, 400, "{bad}");
    }
}

#[tokio::test]
async fn a_follower_receives_lines_while_the_job_runs() {
    let plan =
        "Log-Information one;\nSleep 1;\nLog-Information two;\nSleep 0.5;\nLog-Information three;";
    let holtd = Holtd::start(&[("t", &template(plan))], &[]).await;
    let token = holtd.trigger("template=t").await;
    let stream = tokio::net::TcpStream::connect(holtd.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get(format!("/api/jobs/logs?token={token}&follow=true"))
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let started = Instant::now();
    let mut body = sender.send_request(request).await.unwrap().into_body();
    let mut seen = String::new();
    let mut arrivals = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            seen.push_str(std::str::from_utf8(&data).unwrap());
            for line in seen.lines().skip(arrivals.len()) {
                arrivals.push((line.to_owned(), started.elapsed()));
            }
        }
    }
    let at = |text: &str| {
        arrivals
            .iter()
            .find(|(l, _)| l == text)
            .unwrap_or_else(|| panic!("{text} never came: {seen}"))
            .1
    };
    assert!(
        at("INFO: two") - at("INFO: one") >= Duration::from_millis(800),
        "{arrivals:?}"
    );
    assert!(
        at("INFO: three") - at("INFO: two") >= Duration::from_millis(300),
        "{arrivals:?}"
    );
    assert_eq!(
        seen,
        holtd.logs(&token, "").await,
        "the followed body is the whole log"
    );
}

#[tokio::test]
async fn cancel_stops_pending_and_executing_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let sleeper = template(&format!(
        "SHExec >>sleep 60 & echo `$! > {d}/child-`$HOLT_JOB_TOKEN; wait>>;"
    ));
    let holtd = Holtd::start(
        &[
            ("sleeper", &sleeper),
            ("quick", &template("Log-Information hi;")),
        ],
        &["--max-concurrent-jobs", "1"],
    )
    .await;
    let running = holtd.trigger("template=sleeper").await;
    let waiting = holtd.trigger("template=sleeper").await;
    holtd.wait_status(&running, "Executing").await;
    let child_file = dir.path().join(format!("child-{running}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&child_file).map_or(true, |p| p.trim().is_empty()) {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let child = std::fs::read_to_string(&child_file).unwrap();

    let holtd = &holtd;
    let cancel = |token: &str| {
        let path = format!("/api/jobs/cancel?token={token}");
        async move { holtd.request("POST", &path, &[], "").await }
    };
    // The pending job never starts.
    let reply = cancel(&waiting).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "Error"));
    assert_eq!(holtd.logs(&waiting, "").await, "ERROR: Job canceled.\n");
    // The executing one is stopped with its processes.
    let reply = cancel(&running).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "Error"));
    assert!(
        holtd
            .logs(&running, "")
            .await
            .ends_with("ERROR: Job canceled.\n")
    );
    assert!(!alive(&child), "the job's process {child} is still running");
    // Cancelling again, or a finished job, is harmless: 409 with the status.
    let reply = cancel(&running).await;
    assert_eq!((reply.status, reply.body.as_str()), (409, "Error"));
    let done = holtd.trigger("template=quick").await;
    assert_eq!(holtd.wait_terminal(&done, "").await, "Succeeded");
    let reply = cancel(&done).await;
    assert_eq!((reply.status, reply.body.as_str()), (409, "Succeeded"));
    assert_eq!(
        holtd
            .get(&format!("/api/jobs/cancel?token={done}"))
            .await
            .status,
        405
    );
    assert_eq!(cancel("424242").await.status, 400);
}

#[tokio::test]
async fn one_idempotency_key_creates_one_job() {
    let holtd = Holtd::start(&[("t", &template("Log-Information \"$X\";"))], &[]).await;
    let mut clients = Vec::new();
    for _ in 0..50 {
        let addr = holtd.addr;
        clients.push(tokio::spawn(async move {
            holt_tests::request(
                addr,
                "GET",
                "/api/jobs/trigger?template=t&X=1",
                &[("Idempotency-Key", "deploy-42")],
                "",
            )
            .await
        }));
    }
    let mut tokens = Vec::new();
    for client in clients {
        let reply = client.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        tokens.push(reply.body);
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    // Nothing else was created: the next job gets the next token.
    let next = holtd.trigger("template=t&X=2").await;
    assert_eq!(
        next.parse::<u64>().unwrap(),
        tokens[0].parse::<u64>().unwrap() + 1
    );
    // The same key for a different request is a conflict.
    let reply = holtd
        .request(
            "GET",
            "/api/jobs/trigger?template=t&X=3",
            &[("Idempotency-Key", "deploy-42")],
            "",
        )
        .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (409, "this Idempotency-Key was used for a different request")
    );
}

async fn job_times(store: &SqliteStore, token: &str) -> (i64, i64) {
    let job = store.job(token.parse().unwrap()).await.unwrap().unwrap();
    (job.started_ms.unwrap(), job.finished_ms.unwrap())
}

#[tokio::test]
async fn per_template_concurrency_queues_rejects_or_skips() {
    let queued = "allow_api = true\nmax_concurrent = 1\nplan = 'Sleep 0.3;'\n";
    let rejects =
        "allow_api = true\nmax_concurrent = 1\non_limit = \"reject\"\nplan = 'Sleep 2;'\n";
    let skips =
        "allow_api = true\nmax_concurrent = 1\non_limit = \"skip_if_pending\"\nplan = 'Sleep 1;'\n";
    let holtd = Holtd::start(
        &[("queued", queued), ("rejects", rejects), ("skips", skips)],
        &["--max-concurrent-jobs", "8"],
    )
    .await;

    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(holtd.trigger("template=queued").await);
    }
    let reply = holtd
        .get(&format!("/api/jobs/status?token={}", tokens[3]))
        .await;
    assert_eq!(reply.body, "Pending");
    assert!(reply.header("x-holt-queue-position").is_some());
    for token in &tokens {
        assert_eq!(holtd.wait_terminal(token, "").await, "Succeeded");
    }
    let store = store_of(&holtd).await;
    let mut previous_end = 0;
    for token in &tokens {
        let (start, end) = job_times(&store, token).await;
        assert!(
            start >= previous_end,
            "job {token} started at {start}, before the previous ended at {previous_end}"
        );
        previous_end = end;
    }

    let first = holtd.trigger("template=rejects").await;
    holtd.wait_status(&first, "Executing").await;
    let reply = holtd.get("/api/jobs/trigger?template=rejects").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (
            429,
            "template rejects already runs its limit of 1 jobs at once"
        )
    );
    assert_eq!(reply.header("retry-after"), Some("5"));

    let running = holtd.trigger("template=skips").await;
    holtd.wait_status(&running, "Executing").await;
    let waiting = holtd.trigger("template=skips").await;
    assert_ne!(waiting, running);
    let reply = holtd.get("/api/jobs/trigger?template=skips").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, waiting.as_str()));
    assert_eq!(reply.header("x-holt-existing-job"), Some("true"));
    let reply = holtd
        .get(&format!("/api/jobs/status?token={waiting}"))
        .await;
    assert_eq!(
        (reply.body.as_str(), reply.header("x-holt-queue-position")),
        ("Pending", Some("1"))
    );
}

#[tokio::test]
async fn a_template_timeout_ends_the_job() {
    let timed = "allow_api = true\ntimeout = \"1s\"\nplan = '''\nLog-Information start;\nSHExec >>sleep 30>>;\n'''\n";
    let holtd = Holtd::start(&[("timed", timed)], &[]).await;
    let started = Instant::now();
    let token = holtd.trigger("template=timed").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Error");
    assert!(started.elapsed() < Duration::from_secs(5));
    let log = holtd.logs(&token, "").await;
    assert!(
        log.ends_with("ERROR: The job's timeout of 1s elapsed; the job was stopped.\n"),
        "{log}"
    );
}

#[tokio::test]
async fn declared_variables_are_validated() {
    let declared = r#"allow_api = true
allow_undeclared_variables = false
plan = 'Log-Information "$Environment $Release";'
[variables.Environment]
required = true
allowed = ["test", "prod"]
[variables.Release]
default = "1.0.0"
pattern = '[0-9]+\.[0-9]+\.[0-9]+'
"#;
    let holtd = Holtd::start(&[("declared", declared)], &[]).await;
    let cases = [
        ("", "variable Environment is required"),
        (
            "&Environment=staging",
            "variable Environment must be one of: test, prod",
        ),
        (
            "&Environment=test&Release=1.0",
            "variable Release must match the pattern [0-9]+\\.[0-9]+\\.[0-9]+",
        ),
        (
            "&Environment=test&Release=x1.0.0",
            "variable Release must match the pattern [0-9]+\\.[0-9]+\\.[0-9]+",
        ),
        (
            "&Environment=test&Other=1",
            "variable Other is not declared by template declared",
        ),
    ];
    for (query, why) in cases {
        let reply = holtd
            .get(&format!("/api/jobs/trigger?template=declared{query}"))
            .await;
        assert_eq!((reply.status, reply.body.as_str()), (400, why), "{query}");
    }
    let token = holtd
        .trigger("template=declared&environment=prod&Release=2.4.1")
        .await;
    holtd.wait_terminal(&token, "").await;
    assert!(holtd.logs(&token, "").await.contains("INFO: prod 2.4.1\n"));
}

#[tokio::test]
async fn a_json_body_is_a_form_body() {
    let keyed = "allow_api = true\napi_key = \"secure123\"\nplan = 'Log-Information \"to $TargetServer\";'\n";
    let holtd = Holtd::start(&[("keyed", keyed)], &[]).await;
    let json = [("content-type", "application/json")];
    let reply = holtd
        .request(
            "POST",
            "/api/jobs/trigger?template=keyed",
            &json,
            r#"{"TargetServer": "JSONV1", "API_Key": "secure123"}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    holtd.wait_terminal(&reply.body, "&key=secure123").await;
    assert!(
        holtd
            .logs(&reply.body, "&key=secure123")
            .await
            .contains("INFO: to JSONV1\n")
    );
    let reply = holtd
        .request(
            "POST",
            "/api/jobs/trigger",
            &json,
            r#"{"template": "keyed", "API_Key": "wrong"}"#,
        )
        .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (403, "invalid API key")
    );
    for (body, why) in [
        (
            r#"{"TargetServer": 5}"#,
            "JSON member TargetServer must be a string",
        ),
        (r#"["a"]"#, "a JSON body must be an object of string values"),
        (
            r#"{"a": "#,
            "malformed JSON body: EOF while parsing a value at line 1 column 6",
        ),
    ] {
        let reply = holtd
            .request(
                "POST",
                "/api/jobs/trigger?template=keyed&key=secure123",
                &json,
                body,
            )
            .await;
        assert_eq!((reply.status, reply.body.as_str()), (400, why), "{body}");
    }
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move() {
    let holtd = Holtd::start(&[("t", &template("Log-Information hi;"))], &[]).await;
    let before = holtd.get("/metrics").await;
    assert_eq!(before.status, 200);
    assert!(
        before
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let token = holtd.trigger("template=t").await;
    holtd.wait_terminal(&token, "").await;
    let after = holtd.get("/metrics").await.body;
    assert_eq!(
        metric(&after, "holt_jobs_triggered_total{template=\"t\"}"),
        1.0
    );
    assert_eq!(
        metric(
            &after,
            "holt_jobs_finished_total{template=\"t\",status=\"Succeeded\"}"
        ),
        1.0
    );
    assert!(metric(&after, "holt_log_lines_total") >= 3.0, "{after}");
    assert!(
        metric(
            &after,
            "holt_http_requests_total{route=\"/api/jobs/trigger\",code=\"200\"}"
        ) >= 1.0,
        "{after}"
    );
    assert!(
        metric(&after, "holt_http_request_duration_seconds_count")
            > metric(&before.body, "holt_http_request_duration_seconds_count")
    );
    assert_eq!(metric(&after, "holt_queue_depth"), 0.0);
}

#[tokio::test]
async fn retention_deletes_only_old_finished_jobs() {
    let keep3 = "allow_api = true\nretain_days = 3\nplan = 'Log-Information hi;'\n";
    let mut holtd = Holtd::start(
        &[("t", &template("Log-Information hi;")), ("keep3", keep3)],
        &[],
    )
    .await;
    holtd.kill9();
    let day = 24 * 60 * 60 * 1000;
    let store = Arc::new(store_of(&holtd).await);
    let job = |template: &str, status: holt_domain::JobStatus, finished_days_ago: i64| {
        let store = store.clone();
        let template = template.to_owned();
        async move {
            let token = store
                .create_job(holt_storage::NewJob {
                    template: template.parse().unwrap(),
                    plan: "Log-Information hi;".into(),
                    variables: Default::default(),
                    created_ms: now_ms() - 10 * day,
                    idempotency: None,
                })
                .await
                .unwrap()
                .token;
            if status != holt_domain::JobStatus::Pending {
                store
                    .set_status(token, status, now_ms() - finished_days_ago * day)
                    .await
                    .unwrap();
            }
            token
        }
    };
    let old = job("t", holt_domain::JobStatus::Succeeded, 2).await;
    let recent = job("t", holt_domain::JobStatus::Error, 0).await;
    let kept_by_template = job("keep3", holt_domain::JobStatus::Succeeded, 2).await;
    let old_for_template = job("keep3", holt_domain::JobStatus::Warning, 4).await;
    let pending = job("t", holt_domain::JobStatus::Pending, 0).await;
    drop(store);
    holtd.restart_with_args(&["--retain-days", "1"]).await;
    // Retention runs at start and deletes in the background; the pending job runs meanwhile.
    let gone = |token: holt_domain::JobToken| {
        let holtd = &holtd;
        async move {
            holtd
                .get(&format!("/api/jobs/status?token={token}"))
                .await
                .status
                == 400
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(gone(old).await && gone(old_for_template).await) {
        assert!(Instant::now() < deadline, "old jobs were not deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for kept in [recent, kept_by_template] {
        assert!(!gone(kept).await, "job {kept} was deleted");
    }
    assert_eq!(
        holtd.wait_terminal(&pending.to_string(), "").await,
        "Succeeded"
    );
}
