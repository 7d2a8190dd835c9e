//! Completion webhooks against a real HTTP receiver in the test: it fails the first attempts,
//! is down across a holtd restart, then accepts; exactly one delivery is accepted, its body
//! describes the job with its outputs, and its signature verifies under the key holtd read
//! from its environment, which never appears in holtd's log.

mod tls;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use holt_storage_postgres::scratch::ScratchDatabase;
use holt_tests::Holtd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const KEY: &str = "webhook-signing-key-7f3a";

/// One request the receiver read: its path, headers (names lowercase) and body, and the status
/// it answered.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
    answered: u16,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Log = Arc<Mutex<Vec<Received>>>;

/// Serves on `listener`, answering each request with the next of `answers` (the last one
/// repeated), and stops accepting after `stop_after` requests, if given: the receiver is then
/// down (its port refuses connections).
async fn receiver(listener: TcpListener, log: Log, answers: Vec<u16>, stop_after: Option<usize>) {
    let mut served = 0;
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let (head, body_start) = loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the request ended early");
            data.extend_from_slice(&buf[..n]);
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break (String::from_utf8(data[..i].to_vec()).unwrap(), i + 4);
            }
        };
        let mut lines = head.lines();
        let request_line = lines.next().unwrap().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        while data.len() < body_start + length {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the body ended early");
            data.extend_from_slice(&buf[..n]);
        }
        let body = String::from_utf8(data[body_start..body_start + length].to_vec()).unwrap();
        let answered = answers[served.min(answers.len() - 1)];
        served += 1;
        let response =
            format!("HTTP/1.1 {answered} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        stream.write_all(response.as_bytes()).await.unwrap();
        let _ = stream.shutdown().await;
        log.lock().unwrap().push(Received {
            path: request_line.split(' ').nth(1).unwrap().to_owned(),
            headers,
            body,
            answered,
        });
        if stop_after == Some(served) {
            return;
        }
    }
}

async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_webhook_is_retried_across_a_restart_and_delivered_once_signed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let template = format!(
        r#"
allow_api = true
outputs = ["Version"]
plan = 'set $Version = "2.0.1";'
[[notify]]
url = "http://127.0.0.1:{port}/hook?token=query-secret"
on = ["Succeeded", "Warning"]
secret_env = "HOLT_TEST_WEBHOOK_KEY"
[[notify]]
url = "http://127.0.0.1:{port}/on-error-only"
on = ["Error"]
"#
    );
    let log: Log = Arc::default();
    // The first two attempts get a 500; then the receiver goes down.
    let first = tokio::spawn(receiver(listener, log.clone(), vec![500, 500], Some(2)));
    let mut holtd = Holtd::start(&[("release", &template)], &[]).await;
    holtd.terminate();
    holtd
        .restart_with_env(&[("HOLT_TEST_WEBHOOK_KEY", KEY)])
        .await;
    let token = holtd.trigger("template=release").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    // The first retries come within seconds.
    tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("two attempts within ten seconds")
        .unwrap();
    assert_eq!(log.lock().unwrap().len(), 2);

    // Down across a restart: the restarted holtd finds the webhook in its outbox and fails
    // against the closed port.
    assert!(holtd.terminate().success());
    let before = holtd.server_log().matches("webhook attempt failed").count();
    holtd.restart().await;
    wait_for(
        "an attempt after the restart",
        Duration::from_secs(20),
        || {
            let text = holtd.server_log();
            text.matches("webhook attempt failed").count() > before
                && text.contains("cannot connect")
        },
    )
    .await;

    // Up again on the same port: the next attempt is accepted.
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let up = tokio::spawn(receiver(listener, log.clone(), vec![200], None));
    wait_for("the accepted delivery", Duration::from_secs(60), || {
        log.lock().unwrap().iter().any(|r| r.answered == 200)
    })
    .await;
    wait_for("the delivery recorded", Duration::from_secs(10), || {
        holtd.server_log().contains("webhook delivered")
    })
    .await;
    // Nothing more comes: the delivered webhook has left the outbox, and the one for Error
    // was never queued.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    up.abort();
    let received = log.lock().unwrap().clone();
    let accepted: Vec<&Received> = received.iter().filter(|r| r.answered == 200).collect();
    assert_eq!(accepted.len(), 1, "{received:#?}");
    assert!(
        received
            .iter()
            .all(|r| r.path == "/hook?token=query-secret")
    );
    let delivery = accepted[0];

    // Every attempt carried the same body and a signature that verifies.
    for r in &received {
        assert_eq!(r.body, delivery.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let mut mac = Hmac::<sha2_hmac::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(r.body.as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            r.header("x-holt-signature"),
            Some(format!("sha256={hex}").as_str())
        );
    }
    let body: serde_json::Value = serde_json::from_str(&delivery.body).unwrap();
    assert_eq!(body["token"], token.as_str());
    assert_eq!(body["template"], "release");
    assert_eq!(body["status"], "Succeeded");
    assert_eq!(body["outputs"], serde_json::json!({"Version": "2.0.1"}));
    for time in ["created", "started", "finished"] {
        let text = body[time]
            .as_str()
            .unwrap_or_else(|| panic!("{time}: {body}"));
        assert!(text.ends_with('Z') && text.len() == 24, "{time}: {text}");
    }

    // Counted in /metrics (since this process started) and logged without the key, the
    // query string or the body.
    let metrics = holtd.get("/metrics").await.body;
    assert!(
        metrics.contains("holt_webhook_attempts_total{result=\"delivered\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("holt_webhook_attempts_total{result=\"failed\"}"),
        "{metrics}"
    );
    let server_log = holtd.server_log();
    assert!(server_log.contains(&format!("http://127.0.0.1:{port}/hook")));
    for secret in [KEY, "query-secret", "2.0.1"] {
        assert!(!server_log.contains(secret), "holtd logged {secret:?}");
    }
}

/// Two nodes on one PostgreSQL database: jobs end on either node, the receiver fails every
/// first attempt, and yet each job's webhook is accepted exactly once: no two nodes send one
/// webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_each_webhook_is_accepted_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let template = format!(
        r#"
allow_api = true
plan = 'Log-Information "hi";'
[[notify]]
url = "http://127.0.0.1:{port}/hook"
"#
    );
    let log: Log = Arc::default();
    // Every other answer fails, so retries are claimed by whichever node is free.
    let answers: Vec<u16> = (0..200)
        .map(|i| if i % 2 == 0 { 503 } else { 200 })
        .collect();
    let serving = tokio::spawn(receiver(listener, log.clone(), answers, None));
    let db = ScratchDatabase::create().await;
    let key = tempfile::tempdir().unwrap();
    let key = key.path().join("secrets.key");
    let key = key.to_str().unwrap();
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let args = ["--node-name", name, "--secrets-key", key];
        nodes.push(Holtd::start_on_postgres(db.url(), &[("hook", &template)], &args).await);
    }
    let mut tokens = Vec::new();
    for i in 0..8 {
        tokens.push(nodes[i % 2].trigger("template=hook").await);
    }
    for token in &tokens {
        assert_eq!(nodes[0].wait_terminal(token, "").await, "Succeeded");
    }
    let accepted = |log: &Log| {
        let log = log.lock().unwrap();
        let mut tokens: Vec<String> = log
            .iter()
            .filter(|r| r.answered == 200)
            .map(|r| {
                let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                body["token"].as_str().unwrap().to_owned()
            })
            .collect();
        tokens.sort();
        tokens
    };
    wait_for("every webhook accepted", Duration::from_secs(60), || {
        accepted(&log).len() >= tokens.len()
    })
    .await;
    // Any duplicate would come within the retry's wait.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    serving.abort();
    let mut expected = tokens.clone();
    expected.sort();
    assert_eq!(accepted(&log), expected);
}
