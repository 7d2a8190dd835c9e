//! Reliability: crashes, shutdown, limits and storage faults, each injected for real.

use std::time::{Duration, Instant};

use crate::templates::with_plan as template;
use holt_tests::{Holtd, alive};

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
async fn a_process_that_escapes_its_group_and_environment_does_not_outlive_its_job() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // Each escapee double-forks, leaves the job's process group and session, and clears its
    // environment, so neither the group kill nor the environment mark finds it. The second
    // ignores SIGTERM and keeps starting children of its own.
    let plan = format!(
        "SHExec >>(env -i setsid sh -c 'echo `$`$ > {d}/plain; exec sleep 300' &); (env -i setsid sh -c 'trap \"\" TERM; echo `$`$ > {d}/stubborn; while :; do sleep 1; done' &); while [ ! -s {d}/plain ] || [ ! -s {d}/stubborn ]; do sleep 0.01; done>>;"
    );
    let holtd = Holtd::start(&[("escape", &template(&plan))], &["--kill-grace", "1"]).await;
    let token = holtd.trigger("template=escape").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    let pids: Vec<String> = ["plain", "stubborn"]
        .iter()
        .map(|name| std::fs::read_to_string(dir.path().join(name)).unwrap())
        .collect();
    // The kill grace is 1 s; the rest is room for a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|pid| alive(pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<&String> = pids.iter().filter(|pid| alive(pid)).collect();
    for pid in &left {
        let _ = std::process::Command::new("kill")
            .args(["-9", pid.trim()])
            .status();
    }
    assert!(
        left.is_empty(),
        "escaped processes {left:?} outlived their job"
    );
    // Nothing holtd adopted is left as a zombie either: it reaps what it ends.
    let me = holtd.pid().to_string();
    let zombies = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                let fields: Vec<&str> = stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect();
                fields.first() == Some(&"Z") && fields.get(1) == Some(&me.as_str())
            })
            .collect()
    };
    // Children of the escapees (the stubborn one's `sleep 1`) may still be exiting, each then
    // a zombie for the moment before holtd reaps it: the check is that the list empties.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = zombies();
    while !left.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = zombies();
    }
    assert_eq!(left, Vec::<String>::new(), "zombies left");
}

#[tokio::test]
async fn an_adopted_process_that_exits_is_reaped_while_its_job_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let plan =
        format!("SHExec >>(setsid sh -c 'echo `$`$ > {d}/brief; exec sleep 0.2' &); sleep 10>>;");
    let holtd = Holtd::start(&[("brief", &template(&plan))], &[]).await;
    let token = holtd.trigger("template=brief").await;
    let pid_file = dir.path().join("brief");
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
        if !pid.trim().is_empty() {
            break pid.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "the escapee never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Gone from /proc altogether, not left as a zombie, while the job still runs.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "the adopted process {pid} was not reaped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(holtd.status(&token, "").await, "Executing");
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

#[tokio::test]
async fn request_limits_answer_with_precise_codes() {
    let holtd = Holtd::start(&[("t", &template("Log-Information hi;"))], &[]).await;
    // Body over the limit (1 MiB by default).
    let big = format!("a={}", "x".repeat(1_100_000));
    let reply = holtd.post_form("/api/jobs/trigger?template=t", &big).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (413, "request body is larger than 1048576 bytes")
    );
    // Head over the limit (64 KiB by default).
    let huge = "y".repeat(66_000);
    let reply = holtd
        .request("GET", "/healthz", &[("x-big", &huge)], "")
        .await;
    assert_eq!(reply.status, 431);
    // Too many variables, and a value too long.
    let many: String = (0..101).map(|i| format!("&v{i}=1")).collect();
    let reply = holtd
        .get(&format!("/api/jobs/trigger?template=t{many}"))
        .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (400, "too many variables: at most 100 are allowed")
    );
    let long = format!("Long={}", "z".repeat(70_000));
    let reply = holtd.post_form("/api/jobs/trigger?template=t", &long).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (400, "variable Long is longer than 65536 bytes")
    );
    // And the server is still fine.
    assert_eq!(holtd.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn slow_clients_cannot_hold_a_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let holtd = Holtd::start(
        &[("t", &template("Log-Information hi;"))],
        &["--header-read-timeout", "1", "--body-read-timeout", "1"],
    )
    .await;
    // A head that never ends: the connection is closed.
    let mut slow = tokio::net::TcpStream::connect(holtd.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection stayed open");
    assert!(started.elapsed() < Duration::from_secs(4));
    // A body that never arrives: 408.
    let mut slow = tokio::net::TcpStream::connect(holtd.addr).await.unwrap();
    slow.write_all(b"POST /api/jobs/trigger?template=t HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\na=1").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection stayed open");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.ends_with("the request body did not arrive within 1 seconds"),
        "{text}"
    );
}

#[tokio::test]
async fn a_full_queue_refuses_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let holtd = Holtd::start(
        &[("sleeper", &sleeper(dir.path()))],
        &["--max-concurrent-jobs", "1", "--max-pending-jobs", "2"],
    )
    .await;
    let running = holtd.trigger("template=sleeper").await;
    holtd.wait_status(&running, "Executing").await;
    holtd.trigger("template=sleeper").await;
    holtd.trigger("template=sleeper").await;
    let reply = holtd.get("/api/jobs/trigger?template=sleeper").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (
            503,
            "too many jobs are waiting to run (at most 2); retry later"
        )
    );
    assert_eq!(reply.header("retry-after"), Some("5"));
}

#[tokio::test]
async fn job_logs_are_bounded() {
    let plan = "foreach $i in @Range(0, 10) { Log-Information \"line $i\"; }";
    let cut = "Log-Information abcdefghijklmnop;";
    let holtd = Holtd::start(
        &[("many", &template(plan)), ("long", &template(cut))],
        &["--max-log-lines-per-job", "5", "--max-log-line-bytes", "10"],
    )
    .await;
    let token = holtd.trigger("template=many").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    assert_eq!(
        holtd.logs(&token, "").await,
        "DEBUG: Job starte [line truncated]\nINFO: line 0\nINFO: line 1\nINFO: line 2\nINFO: line 3\n\
         WARN: This job's log reached its limit of 5 lines; later lines are dropped.\nINFO: Job succeeded.\n"
    );
    let token = holtd.trigger("template=long").await;
    holtd.wait_terminal(&token, "").await;
    assert!(
        holtd
            .logs(&token, "")
            .await
            .contains("INFO: abcdefghij [line truncated]\n")
    );
}

fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_job_flooding_output_does_not_grow_memory() {
    let flood = template("SHExec >>head -c 1000000000 /dev/zero; yes | head -c 20000000>>;");
    let holtd = Holtd::start(&[("flood", &flood)], &["--max-log-lines-per-job", "1000"]).await;
    let before = peak_rss_kb(holtd.pid());
    let token = holtd.trigger("template=flood").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(
        holtd.status(&token, "").await.as_str(),
        "Succeeded" | "Warning" | "Error"
    ) {
        assert!(Instant::now() < deadline, "the flood did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = peak_rss_kb(holtd.pid());
    assert!(
        after < before + 64 * 1024,
        "peak RSS grew from {before} kB to {after} kB"
    );
    let log = holtd.logs(&token, "").await;
    assert!(
        log.contains(" [line truncated]\n"),
        "the endless line was not cut"
    );
    assert!(log.contains(
        "WARN: This job's log reached its limit of 1000 lines; later lines are dropped.\n"
    ));
    assert_eq!(log.lines().count(), 1002, "{}", &log[..500.min(log.len())]);
}

/// holtd's resident memory now, in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// Samples holtd's resident memory until the job ends; returns the highest sample.
async fn peak_rss_until_terminal(holtd: &Holtd, token: &str, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    let mut peak = 0;
    loop {
        peak = peak.max(rss_kb(holtd.pid()));
        if matches!(
            holtd.status(token, "").await.as_str(),
            "Succeeded" | "Warning" | "Error"
        ) {
            return peak.max(rss_kb(holtd.pid()));
        }
        assert!(Instant::now() < deadline, "job {token} did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_job_printing_hundreds_of_megabytes_of_long_lines_keeps_memory_flat() {
    // 400 MB in lines of 60 KiB, every line stored: what is handed to the store but not yet
    // committed must stay bounded, whatever the job prints and however slow the disk.
    let flood = template(
        "SHExec >>head -c 400000000 /dev/zero | tr '\\0' x | fold -w 61440; yes 'short line' | head -c 100000000>>;",
    );
    let holtd = Holtd::start(&[("flood", &flood)], &["--max-log-line-bytes", "100000"]).await;
    let before = rss_kb(holtd.pid());
    let token = holtd.trigger("template=flood").await;
    let peak = peak_rss_until_terminal(&holtd, &token, Duration::from_secs(300)).await;
    eprintln!("holtd RSS: {before} kB before, {peak} kB at the peak");
    assert!(
        peak < before + 64 * 1024,
        "holtd's memory grew from {before} kB to {peak} kB"
    );
    assert_eq!(holtd.status(&token, "").await, "Succeeded");
}

#[tokio::test]
async fn keys_never_reach_logs_or_bodies_and_hashed_keys_work() {
    // sha256("s3cr3t-key")
    let hashed = "allow_api = true\napi_key_sha256 = \"SHA\"\nplan = 'Log-Information hi;'\n";
    let digest = {
        use std::process::Command;
        let out = Command::new("sh")
            .args(["-c", "printf %s s3cr3t-key | sha256sum"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    let hashed = hashed.replace("SHA", &digest);
    let mut holtd = Holtd::start(&[("hashed", &hashed)], &[]).await;
    holtd.kill9();
    holtd.restart_with_env(&[("HOLT_LOG", "debug")]).await;
    let token = holtd.trigger("template=hashed&key=s3cr3t-key").await;
    assert_eq!(
        holtd.wait_terminal(&token, "&key=s3cr3t-key").await,
        "Succeeded"
    );
    let wrong = holtd
        .get("/api/jobs/trigger?template=hashed&key=s3cr3t-kez")
        .await;
    assert_eq!(
        (wrong.status, wrong.body.as_str()),
        (403, "invalid API key")
    );
    let reply = holtd
        .request(
            "GET",
            &format!("/api/jobs/logs?token={token}"),
            &[("X-ApiKey", "s3cr3t-key")],
            "",
        )
        .await;
    assert!(!reply.body.contains("s3cr3t"));
    let server_log = holtd.server_log();
    assert!(
        server_log.contains("/api/jobs/trigger"),
        "the request log is empty:\n{server_log}"
    );
    assert!(
        !server_log.contains("s3cr3t"),
        "a key reached holtd's log:\n{server_log}"
    );
}

#[tokio::test]
async fn secret_variables_are_masked_everywhere_in_the_log() {
    let secret = "allow_api = true\nplan = '''\nLog-Information \"pw=$Password\";\nSHExec >>echo from-shell $Password; echo from-stderr $Password >&2>> (ErrorOutputLogLevel: Warning);\nExec printf (Arguments: '\"%s`n\" $Password');\n'''\n[variables.Password]\nsecret = true\ndefault = \"default-pw\"\n";
    let holtd = Holtd::start(&[("secret", secret)], &[]).await;
    for (query, value) in [("", "default-pw"), ("&Password=hunter2", "hunter2")] {
        let token = holtd.trigger(&format!("template=secret{query}")).await;
        holtd.wait_terminal(&token, "").await;
        let log = holtd.logs(&token, "").await;
        assert!(!log.contains(value), "{log}");
        for line in [
            "INFO: pw=***\n",
            "INFO: from-shell ***\n",
            "WARN: from-stderr ***\n",
            "INFO: ***\n",
        ] {
            assert!(log.contains(line), "missing {line:?} in\n{log}");
        }
    }
}

/// A template with a secret variable `Password` whose plan is `plan`.
fn with_secret(plan: &str) -> String {
    format!(
        "{}[variables.Password]\nsecret = true\ndefault = \"unused\"\n",
        template(plan)
    )
}

#[tokio::test]
async fn a_multi_line_secret_is_masked_line_by_line_and_whole() {
    let plan = "Log-Information \"whole: $Password\";\nSHExec >>printf '%s\\n' $Password; printf 'x%sy\\n' $Password>>;";
    let holtd = Holtd::start(&[("secret", &with_secret(plan))], &[]).await;
    // "first-secret-line\nsecond-secret-line", percent-encoded.
    let token = holtd
        .trigger("template=secret&Password=first-secret-line%0Asecond-secret-line")
        .await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    let log = holtd.logs(&token, "").await;
    assert!(!log.contains("secret-line"), "{log}");
    for line in [
        "INFO: whole: ***\n",
        "INFO: ***\nINFO: ***\n",
        "INFO: x***\nINFO: ***y\n",
    ] {
        assert!(log.contains(line), "missing {line:?} in\n{log}");
    }
}

#[tokio::test]
async fn a_secret_holding_a_quote_is_masked_in_the_quoted_command_line() {
    let plan = "Exec printf (Arguments: '\"%s`n\" $Password');";
    let holtd = Holtd::start(&[("secret", &with_secret(plan))], &[]).await;
    // "o'brien-pass", percent-encoded.
    let token = holtd
        .trigger("template=secret&Password=o%27brien-pass")
        .await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    let log = holtd.logs(&token, "").await;
    assert!(!log.contains("brien"), "{log}");
    assert!(log.contains("DEBUG: ' '***'\n"), "{log}");
}

#[tokio::test]
async fn a_secret_at_the_cut_of_a_long_line_is_masked_not_cut() {
    // The secret starts 6 bytes before the line limit, in a line longer than the reader's
    // buffer; and, with a small limit, in a line whose masks would pull later text forward.
    let plan = "SHExec >>head -c 65530 /dev/zero | tr '\\0' a; printf '%stail\\n' $Password; printf 'x'; for i in 1 2 3 4 5 6 7 8 9 10; do printf %s $Password; done; echo>>;";
    let holtd = Holtd::start(&[("secret", &with_secret(plan))], &[]).await;
    let token = holtd
        .trigger("template=secret&Password=hunter2-abcdef")
        .await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    let log = holtd.logs(&token, "").await;
    assert!(!log.contains("hunt"), "the start of the secret leaked");
    assert!(
        log.contains(&format!(
            "INFO: {}*** [line truncated]\n",
            "a".repeat(65530)
        )),
        "the long line is not masked and cut"
    );
    assert!(
        log.contains(&format!("INFO: x{}\n", "***".repeat(10))),
        "{}",
        &log[log.len() - 300..]
    );

    let small = Holtd::start(
        &[("secret", &with_secret(plan))],
        &["--max-log-line-bytes", "20"],
    )
    .await;
    let token = small.trigger("template=secret&Password=abcdef").await;
    assert_eq!(small.wait_terminal(&token, "").await, "Succeeded");
    let log = small.logs(&token, "").await;
    assert!(
        log.contains("INFO: x************ [line truncated]\n"),
        "{log}"
    );
    assert!(!log.contains("abc"), "{log}");
}

#[tokio::test]
async fn the_line_limit_applies_to_process_output_above_64_kib() {
    let plan = "SHExec >>head -c 100000 /dev/zero | tr '\\0' x; echo; head -c 300000 /dev/zero | tr '\\0' y; echo>>;";
    let holtd = Holtd::start(
        &[("long", &template(plan))],
        &["--max-log-line-bytes", "200000"],
    )
    .await;
    let token = holtd.trigger("template=long").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    let log = holtd.logs(&token, "").await;
    assert!(
        log.contains(&format!("INFO: {}\n", "x".repeat(100_000))),
        "the 100 kB line was cut"
    );
    assert!(log.contains(&format!("INFO: {} [line truncated]\n", "y".repeat(200_000))));
}

#[tokio::test]
async fn a_job_log_stops_at_its_byte_limit_with_one_warning() {
    let plan = "SHExec >>seq 1 200 | while read i; do echo \"line `$i of fifty bytes, padded to be long enough.\"; done>>;";
    let holtd = Holtd::start(
        &[("chatty", &template(plan))],
        &["--max-log-bytes-per-job", "2000"],
    )
    .await;
    let token = holtd.trigger("template=chatty").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    let log = holtd.logs(&token, "").await;
    let warning =
        "WARN: This job's log reached its limit of 2000 bytes; later lines are dropped.\n";
    assert_eq!(log.matches(warning).count(), 1, "{log}");
    assert!(
        log.ends_with(&format!("{warning}INFO: Job succeeded.\n")),
        "{log}"
    );
    let stored: usize = log
        .lines()
        .filter(|l| !l.starts_with("WARN") && !l.ends_with("Job succeeded."))
        .map(|l| l.split_once(": ").unwrap().1.len())
        .sum();
    assert!(stored <= 2000, "{stored} bytes stored");
    assert!(log.contains("line 30 of"), "{log}");
    assert!(!log.contains("line 200 of"), "{log}");
}

/// Whether a file (if it exists) holds `text` anywhere in its bytes.
fn file_holds(path: &std::path::Path, text: &str) -> bool {
    std::fs::read(path)
        .unwrap_or_default()
        .windows(text.len())
        .any(|w| w == text.as_bytes())
}

#[tokio::test]
async fn secret_values_are_sealed_at_rest_and_a_lost_key_fails_only_their_jobs() {
    use std::os::unix::fs::PermissionsExt;
    let templates = [
        ("blocker", template("SHExec >>sleep 60>>;")),
        (
            "secret",
            with_secret("SHExec >>printf %s $Password | sha256sum>>;"),
        ),
        ("plain", template("Log-Information plain-ran;")),
    ];
    let templates: Vec<(&str, &str)> = templates.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let one_at_a_time = ["--max-concurrent-jobs", "1"];
    let mut holtd = Holtd::start(&templates, &one_at_a_time).await;
    let key_file = holtd.dir().join("holt.secrets.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key file is not private");

    // A pending job holds its secret across a restart: the database must not.
    let value = "sealed-value-4f8a2c";
    let digest = {
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf %s {value} | sha256sum")])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    let blocker = holtd.trigger("template=blocker").await;
    holtd.wait_status(&blocker, "Executing").await;
    let trigger = format!("/api/jobs/trigger?template=secret&Password={value}");
    let idempotent = [("Idempotency-Key", "retry-1")];
    let token = holtd.request("GET", &trigger, &idempotent, "").await.body;
    assert_eq!(holtd.status(&token, "").await, "Pending");
    holtd.kill9();
    for file in ["holt.db", "holt.db-wal"] {
        let path = holtd.dir().join(file);
        assert!(!file_holds(&path, value), "{file} holds the secret value");
    }
    holtd.restart().await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    let log = holtd.logs(&token, "").await;
    assert!(
        log.contains(&format!("INFO: {digest}  -\n")),
        "the job ran with another value:\n{log}"
    );
    // The idempotency key still finds its job: its fingerprint is a digest, not the values.
    let again = holtd.request("GET", &trigger, &idempotent, "").await;
    assert_eq!((again.status, again.body.as_str()), (200, token.as_str()));

    // A different key: the pending job with sealed values fails with the reason, others run.
    let blocker = holtd.trigger("template=blocker").await;
    holtd.wait_status(&blocker, "Executing").await;
    let sealed = holtd
        .trigger(&format!("template=secret&Password={value}"))
        .await;
    let plain = holtd.trigger("template=plain").await;
    holtd.kill9();
    let other_key = holtd.dir().join("other.key");
    let other_key = other_key.to_str().unwrap();
    holtd
        .restart_with_args(&["--max-concurrent-jobs", "1", "--secrets-key", other_key])
        .await;
    assert_eq!(holtd.wait_terminal(&sealed, "").await, "Error");
    assert_eq!(
        holtd.logs(&sealed, "").await,
        "ERROR: This job's secret variables cannot be decrypted with the current key (the secrets key file was replaced or lost since the job was triggered); the job cannot run.\n"
    );
    assert_eq!(holtd.wait_terminal(&plain, "").await, "Succeeded");
    assert_eq!(holtd.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn a_secrets_key_file_other_users_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let mut holtd = Holtd::start(&[("t", &template("Log-Information hi;"))], &[]).await;
    holtd.kill9();
    let key_file = holtd.dir().join("holt.secrets.key");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(holt_tests::holtd_binary())
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--db")
        .arg(holtd.db())
        .arg("--templates")
        .arg(holtd.dir().join("templates"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("holt.secrets.key: the secrets key file is open to other users (mode 644); make it private with `chmod 600`"),
        "{stderr}"
    );
}

/// A small tmpfs, unmounted when dropped: a disk that really fills up.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &std::path::Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "this test mounts a small tmpfs to fill a disk for real, which needs root (CI runs as root)"
        );
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes zeros into `path` until the disk is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test]
async fn a_full_disk_refuses_new_jobs_keeps_serving_reads_and_recovers() {
    let logs = "foreach $i in @Range(0, 200) { Log-Information \"line $i of a job that writes while the disk is full\"; Sleep 0.01; }";
    let mut holtd = Holtd::start(
        &[
            ("quick", &template("Log-Information hi;")),
            ("slow", &template(logs)),
        ],
        &[],
    )
    .await;
    let disk_dir = holtd.dir().join("disk");
    let disk = SmallDisk::mount(&disk_dir, "4m");
    holtd.restart_with_db(disk_dir.join("holt.db")).await;

    let before = holtd.trigger("template=quick").await;
    assert_eq!(holtd.wait_terminal(&before, "").await, "Succeeded");
    let writing = holtd.trigger("template=slow").await;
    holtd.wait_status(&writing, "Executing").await;

    fill(&disk_dir.join("filler"));
    let mut accepted = vec![before.clone(), writing.clone()];
    let mut refusal = None;
    for _ in 0..500 {
        let reply = holtd.get("/api/jobs/trigger?template=quick").await;
        match reply.status {
            200 => accepted.push(reply.body),
            _ => {
                refusal = Some(reply);
                break;
            }
        }
    }
    let refusal = refusal.expect("the disk never filled up");
    assert_eq!(refusal.status, 503, "{}", refusal.body);
    assert!(
        refusal
            .body
            .starts_with("the database cannot be written now: "),
        "{}",
        refusal.body
    );
    assert_eq!(refusal.header("retry-after"), Some("1"));
    // Reads go on.
    assert_eq!(holtd.status(&before, "").await, "Succeeded");
    assert!(holtd.logs(&before, "").await.contains("INFO: hi\n"));

    // Space returns: the server recovers by itself.
    std::fs::remove_file(disk_dir.join("filler")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let reply = holtd.get("/api/jobs/trigger?template=quick").await;
        if reply.status == 200 {
            break reply.body;
        }
        assert!(Instant::now() < deadline, "never recovered: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    accepted.push(after);
    for token in &accepted {
        assert_eq!(
            holtd.wait_terminal(token, "").await,
            "Succeeded",
            "job {token}"
        );
    }
    // The job that wrote through the full disk lost no line.
    let log = holtd.logs(&writing, "").await;
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("of a job that writes"))
            .count(),
        200
    );

    let store =
        holt_storage::SqliteStore::open(&holt_storage::SqliteConfig::new(holtd.db())).unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    drop(store);
    holtd.kill9();
    drop(disk);
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_to_be_served() {
    let holtd = Holtd::start(
        &[("t", &template("Log-Information hi;"))],
        &["--max-connections", "2"],
    )
    .await;
    // Two clients hold connections open without sending anything.
    let first = tokio::net::TcpStream::connect(holtd.addr).await.unwrap();
    let second = tokio::net::TcpStream::connect(holtd.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third is not served while they do...
    let addr = holtd.addr;
    let third =
        tokio::spawn(async move { holt_tests::request(addr, "GET", "/healthz", &[], "").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served beyond the limit of two"
    );
    // ...and is as soon as one of them goes.
    drop(first);
    let reply = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("never served")
        .unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    drop(second);
}
