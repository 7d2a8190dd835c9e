//! The soak test: many clients trigger, poll and read logs while jobs run processes, and holtd
//! is killed with SIGKILL and restarted twice. At the end every crash-safety rule is checked.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holt_domain::{JobStatus, JobToken};
use holt_storage::{JobStore, SqliteConfig, SqliteStore};
use holt_tests::{Holtd, try_request};

const PLAN: &str = "allow_api = true\nplan = '''\nLog-Information \"job $JobToken\";\nSHExec >>for i in 1 2 3 4 5; do echo line `$i; sleep 0.02; done>>;\nLog-Information done;\n'''\n";

/// A job certain to be running at a crash, so that every crash interrupts at least one.
const LONG: &str = "allow_api = true\nplan = '''\nLog-Information \"long $JobToken\";\nSHExec >>sleep 60>>;\n'''\n";

/// How long the clients run, and when holtd is killed.
const RUN: Duration = Duration::from_secs(24);
const KILLS: [Duration; 2] = [Duration::from_secs(8), Duration::from_secs(16)];
const CLIENTS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_with_two_crashes() {
    let mut holtd = Holtd::start(
        &[("work", PLAN), ("long", LONG)],
        &["--max-concurrent-jobs", "32"],
    )
    .await;
    let addr = Arc::new(Mutex::new(holtd.addr));
    let tokens: Arc<Mutex<Vec<String>>> = Arc::default();
    let started = Instant::now();

    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let addr = addr.clone();
        let tokens = tokens.clone();
        clients.push(tokio::spawn(async move {
            let mut answered = 0u32;
            let mut round = 0usize;
            while started.elapsed() < RUN {
                round += 1;
                let at: SocketAddr = *addr.lock().unwrap();
                // A trigger every 15 rounds (about 300 ms): enough jobs to keep holtd busy,
                // few enough that they all finish soon after the clients stop.
                if round % 15 == 1
                    && let Ok(reply) =
                        try_request(at, "GET", "/api/jobs/trigger?template=work", &[], "").await
                    && reply.status == 200
                {
                    tokens.lock().unwrap().push(reply.body);
                }
                let known = {
                    let tokens = tokens.lock().unwrap();
                    (!tokens.is_empty())
                        .then(|| tokens[(client * 7 + round) % tokens.len()].clone())
                };
                if let Some(token) = known {
                    for endpoint in ["status", "logs"] {
                        let path = format!("/api/jobs/{endpoint}?token={token}");
                        if let Ok(reply) = try_request(at, "GET", &path, &[], "").await {
                            // A token a client holds always exists, before and after crashes.
                            assert_eq!(reply.status, 200, "{endpoint} of {token}: {}", reply.body);
                            answered += 1;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answered
        }));
    }

    for kill_at in KILLS {
        tokio::time::sleep(kill_at.saturating_sub(started.elapsed())).await;
        let long = holtd.trigger("template=long").await;
        holtd.wait_log(&long, "long ").await;
        tokens.lock().unwrap().push(long);
        holtd.kill9();
        holtd.restart().await;
        *addr.lock().unwrap() = holtd.addr;
    }
    let mut answered = 0;
    for client in clients {
        answered += client.await.unwrap();
    }
    let tokens = tokens.lock().unwrap().clone();
    assert!(
        tokens.len() > 100,
        "only {} jobs were triggered",
        tokens.len()
    );
    assert!(answered > 100, "only {answered} reads were answered");

    // Everything still pending runs; nothing stays executing.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut statuses = Vec::new();
    for token in &tokens {
        loop {
            let status = holtd.status(token, "").await;
            if matches!(status.as_str(), "Succeeded" | "Error") {
                statuses.push(status);
                break;
            }
            assert_ne!(status, "Warning", "job {token}");
            assert!(Instant::now() < deadline, "job {token} is still {status}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let store = SqliteStore::open(&SqliteConfig::new(holtd.db())).unwrap();
    let mut interrupted = 0;
    for (token, status) in tokens.iter().zip(&statuses) {
        let entries = store
            .logs(token.parse::<JobToken>().unwrap(), 0, 100_000)
            .await
            .unwrap();
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (0..entries.len() as u64).collect::<Vec<_>>(),
            "job {token} has gaps"
        );
        let last = &entries.last().unwrap().text;
        if status == "Error" {
            // This plan never fails by itself: an error is a crash, and says so.
            let text: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
            assert_eq!(
                last, "The server stopped while this job was executing; the job did not finish.",
                "job {token}: {text:?}"
            );
            interrupted += 1;
        } else {
            assert_eq!(last, "Job succeeded.", "job {token}");
        }
        let job = store.job(token.parse().unwrap()).await.unwrap().unwrap();
        assert!(job.status.is_terminal() && job.status != JobStatus::Warning);
    }
    assert!(
        interrupted >= KILLS.len(),
        "only {interrupted} jobs were interrupted by {} crashes",
        KILLS.len()
    );
    assert_eq!(store.integrity_check().await.unwrap(), "ok");

    // No process of any job is left.
    let marker = format!("HOLT_INSTANCE={}", store.instance_id());
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|pid| pid.chars().all(|c| c.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == marker.as_bytes()))
        })
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}
