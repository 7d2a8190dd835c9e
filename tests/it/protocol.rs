//! A hostile caller must not crash, inject, exhaust or mislead the server: forged log lines,
//! ambiguous bodies, huge declared lengths, unparsable requests, slow readers and crowds of
//! followers, end to end.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

use crate::templates::{HDARS, with_plan as template};
use holt_tests::{Holtd, Reply, raw_request};

const PREFIXES: [&str; 4] = ["DEBUG: ", "INFO: ", "WARN: ", "ERROR: "];

fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Whether a character may start a line or move a terminal's cursor.
fn moves_the_cursor(c: char) -> bool {
    (c.is_control() && c != '\t' && c != '\n') || c == '\u{2028}' || c == '\u{2029}'
}

#[tokio::test]
async fn values_and_output_cannot_forge_log_lines() {
    let plan = "Log-Information \"value=$Value\";\nSHExec >>printf '%s' \"$Value\">>;";
    let holtd = Holtd::start(&[("t", &template(plan))], &[]).await;
    let values = [
        "ok\rERROR: forged",
        "ok\u{2028}ERROR: forged",
        "ok\u{2029}ERROR: forged",
        "ok\u{85}ERROR: forged",
        "ok\u{b}\u{c}ERROR: forged",
        "\u{1b}[1A\u{1b}[2KERROR: forged",
        "ok\u{7f}\u{9b}2K\u{1}ERROR: forged",
    ];
    for value in values {
        let token = holtd
            .trigger(&format!("template=t&Value={}", url_encode(value)))
            .await;
        let log = holtd.logs(&token, "").await;
        assert_eq!(
            holtd.wait_terminal(&token, "").await,
            "Succeeded",
            "{value:?}: {log}"
        );
        let log = holtd.logs(&token, "").await;
        for line in log.lines() {
            assert!(
                PREFIXES.iter().any(|p| line.starts_with(p)),
                "{value:?}: line {line:?} in\n{log}"
            );
            assert!(
                !line.starts_with("ERROR: forged"),
                "{value:?} forged a line"
            );
            assert!(!line.chars().any(moves_the_cursor), "{value:?}: {line:?}");
        }
        // Started, the value, the script's three lines, the end: one line each.
        assert_eq!(log.lines().count(), 6, "{value:?}:\n{log}");
        assert!(log.contains("\\x") || log.contains("\\u20"), "{log}");
        // The exact text is kept: the ndjson form carries it.
        let ndjson = holtd.logs(&token, "&format=ndjson").await;
        let texts: Vec<String> = ndjson
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].to_string())
            .collect();
        let exact = serde_json::to_string(&format!("value={value}")).unwrap();
        assert!(texts.contains(&exact), "{texts:?}");
    }
}

#[tokio::test]
async fn duplicate_json_members_are_refused() {
    let holtd = Holtd::start(&[("hdars", HDARS)], &[]).await;
    let json = [("content-type", "application/json")];
    for (body, member) in [
        (
            r#"{"template":"hdars","API_Key":"secure123","key":"other"}"#,
            "key",
        ),
        (
            r#"{"template":"hdars","API_Key":"secure123","API_Key":"secure123"}"#,
            "API_Key",
        ),
        (
            r#"{"template":"hdars","API_Key":"secure123","TargetServer":"a","targetserver":"b"}"#,
            "targetserver",
        ),
        (
            r#"{"template":"hdars","Template":"hdars","API_Key":"secure123"}"#,
            "Template",
        ),
    ] {
        let reply = holtd
            .request("POST", "/api/jobs/trigger", &json, body)
            .await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (
                400,
                format!("JSON member {member} is given more than once").as_str()
            ),
            "{body}"
        );
    }
    let reply = holtd
        .request(
            "POST",
            "/api/jobs/trigger",
            &json,
            r#"{"template":"hdars","API_Key":"secure123","TargetServer":"a"}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn an_over_limit_content_length_is_refused_at_once() {
    let holtd = Holtd::start(&[("hdars", HDARS)], &[]).await;
    for (length, path) in [
        ("1000000000", "/api/jobs/trigger"),
        ("1048577", "/api/jobs/status"),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        );
        let started = Instant::now();
        let reply = raw_request(holtd.addr, head.as_bytes(), Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("no answer within 2 s: {e}"));
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (413, "request body is larger than 1048576 bytes")
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

#[track_caller]
fn one_line(reply: &Reply, status: u16, starts: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert!(reply.body.starts_with(starts), "{reply:?}");
    assert!(!reply.body.contains('\n'), "{reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
}

#[tokio::test]
async fn requests_hyper_refuses_get_a_one_line_body() {
    let holtd = Holtd::start(&[], &[]).await;
    let within = Duration::from_secs(5);
    let send = |bytes: Vec<u8>| raw_request(holtd.addr, &bytes.leak()[..], within);
    let reply = send(b"GARBAGE\r\n\r\n".to_vec()).await.unwrap();
    one_line(&reply, 400, "malformed request");
    let reply = send(b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n".to_vec())
        .await
        .unwrap();
    one_line(&reply, 400, "malformed request");
    let uri = format!("/healthz?{}", "a".repeat(100_000));
    let reply = send(format!("GET {uri} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes())
        .await
        .unwrap();
    one_line(&reply, 414, "request URI is longer");
    // A head over hyper's own bound, and one only over the configured limit.
    for size in [200_000, 70_000] {
        let big = "b".repeat(size);
        let reply =
            send(format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").into_bytes())
                .await
                .unwrap();
        one_line(&reply, 431, "request head is larger than 65536 bytes");
    }
    // On a kept-alive connection, after a good request.
    let mut two = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    two.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(holtd.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(&two).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(within, stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    let second = &answer[answer.find("okHTTP/1.1 ").expect(&answer) + 2..];
    assert!(second.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        second.ends_with(
            "\r\n\r\nmalformed request: its request line or headers could not be parsed"
        ),
        "{answer}"
    );
    let reply = holtd.get("/healthz").await;
    assert_eq!(reply.status, 200);
}

/// Opens a followed log and returns once its head has arrived, with the body still open.
async fn open_follower(holtd: &Holtd, token: &str) -> hyper::Response<hyper::body::Incoming> {
    let stream = tokio::net::TcpStream::connect(holtd.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get(format!("/api/jobs/logs?token={token}&follow=true"))
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    sender.send_request(request).await.unwrap()
}

#[tokio::test]
async fn followers_and_waits_are_capped_and_the_server_keeps_answering() {
    let holtd = Holtd::start(
        &[
            ("long", &template("Sleep 60;")),
            ("quick", &template("Log-Information hi;")),
        ],
        &[
            "--max-followers-per-job",
            "3",
            "--max-long-polls",
            "5",
            "--max-connections",
            "12",
        ],
    )
    .await;
    let a = holtd.trigger("template=long").await;
    let b = holtd.trigger("template=long").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let response = open_follower(&holtd, &a).await;
        assert_eq!(response.status(), 200);
        open.push(response);
    }
    let refused = holtd
        .get(&format!("/api/jobs/logs?token={a}&follow=true"))
        .await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.header("retry-after"), Some("5"));
    assert!(refused.body.contains("already has 3 followers") && !refused.body.contains('\n'));
    for _ in 0..2 {
        let response = open_follower(&holtd, &b).await;
        assert_eq!(response.status(), 200);
        open.push(response);
    }
    // Every long-poll slot is taken: another follower or a waiting status call is refused...
    let c = holtd.trigger("template=long").await;
    for path in [
        format!("/api/jobs/logs?token={c}&follow=true"),
        format!("/api/jobs/status?token={c}&wait=5"),
    ] {
        let refused = holtd.get(&path).await;
        assert_eq!(refused.status, 503, "{path}: {refused:?}");
        assert!(
            refused.body.contains("waiting or following requests"),
            "{refused:?}"
        );
    }
    // More followers than connections served are all refused, and give their connections
    // back...
    for _ in 0..20 {
        let refused = holtd
            .get(&format!("/api/jobs/logs?token={c}&follow=true"))
            .await;
        assert_eq!(refused.status, 503, "{refused:?}");
    }
    // ...while health checks, triggers, status and plain log reads still answer.
    assert_eq!(holtd.get("/healthz").await.status, 200);
    let quick = holtd.trigger("template=quick").await;
    assert_eq!(holtd.wait_terminal(&quick, "").await, "Succeeded");
    assert!(holtd.logs(&a, "").await.starts_with("DEBUG: "));
    // A follower that goes away gives its slot back.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = holtd
            .get(&format!("/api/jobs/status?token={c}&wait=0.1"))
            .await;
        if reply.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot never came back: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_follow_stream_ends_at_its_lifetime() {
    let holtd = Holtd::start(
        &[("long", &template("Log-Information first;\nSleep 60;"))],
        &["--max-stream-seconds", "1"],
    )
    .await;
    let token = holtd.trigger("template=long").await;
    holtd.wait_log(&token, "INFO: first").await;
    let started = Instant::now();
    let response = open_follower(&holtd, &token).await;
    let body = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
        .await
        .expect("the stream ended")
        .expect("the stream ended cleanly")
        .to_bytes();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(body.ends_with("INFO: first\n"), "{body}");
    assert_eq!(holtd.status(&token, "").await, "Executing");
    // The client goes on from where it was.
    let offset = body.lines().count();
    let rest = holtd
        .get(&format!("/api/jobs/logs?token={token}&offset={offset}"))
        .await;
    assert_eq!((rest.status, rest.body.as_str()), (200, ""));
}

#[tokio::test]
async fn a_follower_hears_a_committed_line_at_once() {
    let plan = "foreach $i in @Range(0, 9) {\n  Log-Information \"line $i\";\n  Sleep 0.15;\n}";
    let holtd = Holtd::start(&[("t", &template(plan))], &["--durability", "normal"]).await;
    let token = holtd.trigger("template=t").await;
    let stream = tokio::net::TcpStream::connect(holtd.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get(format!(
        "/api/jobs/logs?token={token}&follow=true&format=ndjson"
    ))
    .header("host", "x")
    .body(Full::new(Bytes::new()))
    .unwrap();
    let mut body = sender.send_request(request).await.unwrap().into_body();
    let mut pending = String::new();
    let mut delays = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.unwrap().into_data() else {
            continue;
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        pending.push_str(std::str::from_utf8(&data).unwrap());
        while let Some(end) = pending.find('\n') {
            let line: serde_json::Value = serde_json::from_str(&pending[..end]).unwrap();
            pending.drain(..=end);
            let text = line["text"].as_str().unwrap().to_owned();
            if text.starts_with("line ") {
                let time = line["time"].as_str().unwrap();
                let written = humantime_ms(time);
                delays.push(now_ms - written);
            }
        }
    }
    assert_eq!(delays.len(), 9, "{delays:?}");
    delays.sort_unstable();
    // Woken by the commit, a follower hears a line within milliseconds (the median of nine);
    // one that checked every 100 ms heard each line about 100 ms late.
    assert!(
        delays[4] < 50,
        "delays from write to arrival (ms): {delays:?}"
    );
    println!("follower delays (ms): {delays:?}");
}

/// Milliseconds since the epoch of an RFC 3339 time with milliseconds and `Z`.
fn humantime_ms(text: &str) -> i64 {
    // 2026-11-28T15:27:23.123Z
    let (date, time) = text.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (hms, ms) = time.split_once('.').unwrap();
    let t: Vec<i64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms.parse::<i64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_of_a_big_log_cost_a_bounded_buffer() {
    // About 100 MB of log: a million lines of 94 characters (100 bytes with `INFO: `).
    let payload = "x".repeat(93);
    let plan = format!("SHExec >>yes '{payload}' | head -n 1000000>>;");
    let holtd = Holtd::start(&[("big", &template(&plan))], &[]).await;
    let token = holtd.trigger("template=big").await;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = holtd.status(&token, "").await;
        if status != "Pending" && status != "Executing" {
            assert_eq!(status, "Succeeded");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the big job did not end in 300 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = holtd.rss_bytes();
    // Twenty clients open the log, in every format and mode, and then do not read.
    let mut idle = Vec::new();
    for i in 0..20 {
        let query = match i % 4 {
            0 => format!("token={token}"),
            1 => format!("token={token}&format=ndjson"),
            2 => format!("token={token}&offset=10"),
            _ => format!("token={token}&follow=true&format=ndjson"),
        };
        let mut stream = tokio::net::TcpStream::connect(holtd.addr).await.unwrap();
        use tokio::io::AsyncWriteExt;
        let head = format!("GET /api/jobs/logs?{query} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        idle.push(stream);
    }
    let mut peak = before;
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        peak = peak.max(holtd.rss_bytes());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let growth = peak.saturating_sub(before);
    println!(
        "holtd RSS {} MB before, peak {} MB with 20 idle readers",
        before >> 20,
        peak >> 20
    );
    assert!(
        growth < 64 << 20,
        "20 idle readers grew holtd by {} MB",
        growth >> 20
    );
    // A normal reader meanwhile gets the whole, exact log.
    let log = holtd.logs(&token, "").await;
    let expected = format!("INFO: {payload}");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| **l == expected).count(),
        1_000_000,
        "{}",
        &log[..200]
    );
    assert_eq!(lines.len(), 1_000_000 + 4);
    assert_eq!(lines[lines.len() - 1], "INFO: Job succeeded.");
    drop(idle);
}
