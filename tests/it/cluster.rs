//! Several holtd nodes on one PostgreSQL database: any node answers for any job, claims and
//! limits hold across nodes, a dead node's jobs are settled within its lease, a paused node's
//! late results are refused, and SIGTERM drains one node while the others serve. Each test has
//! a database of its own on the server `HOLT_TEST_POSTGRES` names.

use std::time::{Duration, Instant};

use holt_storage_postgres::scratch::ScratchDatabase;
use holt_tests::{Holtd, alive};

/// The lease the tests' nodes hold: short, so that a dead node is noticed quickly.
const LEASE: &str = "2";

const INTERRUPTED: &str =
    "ERROR: The server stopped while this job was executing; the job did not finish.\n";

fn template(extra: &str, plan: &str) -> String {
    format!("allow_api = true\n{extra}\nplan = '''\n{plan}\n'''\n")
}

/// Nodes on one database, sharing one secrets key and one set of templates.
struct Cluster {
    db: ScratchDatabase,
    key: tempfile::TempDir,
    templates: Vec<(String, String)>,
}

impl Cluster {
    async fn new(templates: &[(&str, String)]) -> Cluster {
        Cluster {
            db: ScratchDatabase::create().await,
            key: tempfile::tempdir().unwrap(),
            templates: templates
                .iter()
                .map(|(n, t)| ((*n).to_owned(), t.clone()))
                .collect(),
        }
    }

    /// A node named `name` with these extra arguments.
    async fn node(&self, name: &str, args: &[&str]) -> Holtd {
        let key = self.key.path().join("secrets.key");
        let key = key.to_str().unwrap();
        let mut all = vec![
            "--node-name",
            name,
            "--node-lease-seconds",
            LEASE,
            "--secrets-key",
            key,
        ];
        all.extend_from_slice(args);
        let templates: Vec<(&str, &str)> = self
            .templates
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        Holtd::start_on_postgres(self.db.url(), &templates, &all).await
    }

    /// Nodes `node-0`, `node-1`, ...
    async fn nodes(&self, n: usize, args: &[&str]) -> Vec<Holtd> {
        let mut out = Vec::new();
        for i in 0..n {
            out.push(self.node(&format!("node-{i}"), args).await);
        }
        out
    }
}

/// The node a job ran on, from the line its plan logs (`node <process mark>`, the mark ending
/// with the node's name).
fn node_of(log: &str) -> Option<String> {
    log.lines()
        .find_map(|l| l.strip_prefix("INFO: node "))
        .and_then(|mark| mark.split_once('-').map(|(_, node)| node.to_owned()))
}

const WHERE: &str = "Log-Information \"node $EnvironmentVariable(HOLT_INSTANCE)\";";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_answers_waits_follows_and_cancels_for_any_job() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let plan = format!(
        "{WHERE}\nLog-Information started;\n\
         SHExec >>echo `$`$ > '{}'; exec sleep $Seconds>>;\n\
         Log-Information done;",
        pid_file.display()
    );
    let cluster = Cluster::new(&[
        ("work", template("", &plan)),
        ("idle", template("", "Log-Information ran;")),
    ])
    .await;
    let mut nodes = cluster.nodes(3, &["--max-concurrent-jobs", "1"]).await;

    // Every one of three nodes answers for a job another node triggered.
    let token = nodes[2].trigger("template=idle").await;
    for node in &nodes {
        assert_eq!(node.wait_terminal(&token, "").await, "Succeeded");
        assert!(
            node.logs(&token, "")
                .await
                .ends_with("INFO: ran\nINFO: Job succeeded.\n")
        );
    }
    // The rest runs on two nodes, so that a busy pair leaves jobs pending.
    drop(nodes.pop());
    let (a, b) = (&nodes[0], &nodes[1]);
    let by_name = |name: &str| if name == "node-0" { a } else { b };
    let other_than = |name: &str| if name == "node-0" { b } else { a };

    // Triggered on a, waited for and read on b.
    let token = a.trigger("template=work&Seconds=1").await;
    let reply = b
        .get(&format!("/api/jobs/status?token={token}&wait=30"))
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "Succeeded"));
    let log = b.logs(&token, "").await;
    assert!(log.contains("INFO: started\n"), "{log}");
    assert!(log.ends_with("INFO: done\nINFO: Job succeeded.\n"), "{log}");
    let runner = node_of(&log).expect("the job names its node");
    assert!(runner == "node-0" || runner == "node-1", "{runner}");

    // Followed on the node that does not run it: every line, and the body ends with the job.
    let token = b.trigger("template=work&Seconds=2").await;
    let log = a.wait_log(&token, "INFO: started\n").await;
    let runner = node_of(&log).unwrap();
    let followed = other_than(&runner).logs(&token, "&follow=true").await;
    assert!(
        followed.ends_with("INFO: done\nINFO: Job succeeded.\n"),
        "{followed}"
    );

    // Canceled on the node that does not run it: the process on the other node ends.
    let _ = std::fs::remove_file(&pid_file);
    let token = a.trigger("template=work&Seconds=300").await;
    let pid = loop {
        if let Ok(pid) = std::fs::read_to_string(&pid_file)
            && !pid.trim().is_empty()
        {
            break pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The pid file can be written before the job's earlier lines are committed.
    let runner = node_of(&a.wait_log(&token, "INFO: started\n").await).unwrap();
    let other = other_than(&runner);
    let reply = other
        .request("POST", &format!("/api/jobs/cancel?token={token}"), &[], "")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(pid.trim()) {
        assert!(
            Instant::now() < deadline,
            "the canceled job's process lives on"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(other.wait_terminal(&token, "").await, "Error");
    assert!(
        other
            .logs(&token, "")
            .await
            .ends_with("ERROR: Job canceled.\n")
    );
    let _ = by_name(&runner);

    // A pending job (both nodes busy) canceled on a node never runs.
    let busy = [
        a.trigger("template=work&Seconds=3").await,
        b.trigger("template=work&Seconds=3").await,
    ];
    for token in &busy {
        a.wait_log(token, "INFO: started\n").await;
    }
    let waiting = a.trigger("template=idle").await;
    assert_eq!(b.status(&waiting, "").await, "Pending");
    // Each node's metrics name it and count the cluster's queue.
    let metrics = b.get("/metrics").await.body;
    assert!(metrics.contains("holt_queue_depth 1\n"), "{metrics}");
    assert!(
        metrics.contains("holt_node{name=\"node-1\",generation=\""),
        "{metrics}"
    );
    let reply = b
        .request(
            "POST",
            &format!("/api/jobs/cancel?token={waiting}"),
            &[],
            "",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(a.status(&waiting, "").await, "Error");
    for token in &busy {
        assert_eq!(a.wait_terminal(token, "").await, "Succeeded");
    }
    assert_eq!(a.logs(&waiting, "").await, "ERROR: Job canceled.\n");
}

/// Jobs of a template limited to one at a time, triggered on three nodes at once: never two run
/// anywhere, every job ends, and more than one node takes part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_limit_holds_across_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // Each job counts itself in and out under a lock, and notes how many run with it.
    let script = dir.path().join("slot.sh");
    std::fs::write(
        &script,
        format!(
            "exec 9>>'{d}/lock'\n\
             flock 9; n=$(cat '{d}/count' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '{d}/count'; echo $n >> '{d}/seen'; flock -u 9\n\
             sleep 0.3\n\
             flock 9; n=$(cat '{d}/count'); echo $((n-1)) > '{d}/count'; flock -u 9\n"
        ),
    )
    .unwrap();
    let plan = format!("{WHERE}\nExec sh (Arguments: \"{}\");", script.display());
    let cluster = Cluster::new(&[("limited", template("max_concurrent = 1", &plan))]).await;
    let nodes = cluster.nodes(3, &["--max-concurrent-jobs", "4"]).await;
    let triggers = (0..9).map(|i| nodes[i % 3].trigger("template=limited"));
    let tokens = futures_util::future::join_all(triggers).await;
    let mut runners = std::collections::BTreeSet::new();
    for token in &tokens {
        let status = nodes[0].wait_terminal(token, "").await;
        let log = nodes[1].logs(token, "").await;
        assert_eq!(status, "Succeeded", "{log}");
        runners.insert(node_of(&log).unwrap());
    }
    let seen = std::fs::read_to_string(dir.path().join("seen")).unwrap();
    let most = seen
        .lines()
        .map(|l| l.parse::<u32>().unwrap())
        .max()
        .unwrap();
    assert_eq!(seen.lines().count(), 9);
    assert_eq!(most, 1, "{most} jobs ran at once: {seen}");
    assert!(runners.len() > 1, "one node ran everything: {runners:?}");
}

/// `reject` at the limit, `skip_if_pending` and idempotency keys decide exactly under
/// concurrent triggers on different nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_skip_if_pending_and_idempotency_keys_are_exact_across_nodes() {
    let cluster = Cluster::new(&[
        (
            "single",
            template("max_concurrent = 1\non_limit = \"reject\"", "Sleep 5;"),
        ),
        ("keyed", template("", "Sleep 1;")),
        (
            "skipping",
            template(
                "max_concurrent = 1\non_limit = \"skip_if_pending\"",
                "Sleep 5;",
            ),
        ),
    ])
    .await;
    let nodes = cluster.nodes(2, &[]).await;
    let calls = (0..20).map(|i| nodes[i % 2].get("/api/jobs/trigger?template=single"));
    let replies = futures_util::future::join_all(calls).await;
    let accepted = replies.iter().filter(|r| r.status == 200).count();
    let refused = replies.iter().filter(|r| r.status == 429).count();
    assert_eq!((accepted, refused), (1, 19), "{replies:?}");

    // `skip_if_pending`: with one job of the template running, concurrent triggers on both
    // nodes all get the one pending job that stands for them.
    let running = nodes[0].trigger("template=skipping").await;
    nodes[0].wait_status(&running, "Executing").await;
    let calls = (0..20).map(|i| nodes[i % 2].get("/api/jobs/trigger?template=skipping"));
    let replies = futures_util::future::join_all(calls).await;
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
    let pending: std::collections::BTreeSet<&str> =
        replies.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(!pending.contains(running.as_str()));

    let calls = (0..20).map(|i| {
        nodes[i % 2].request(
            "GET",
            "/api/jobs/trigger?template=keyed",
            &[("Idempotency-Key", "deploy-42")],
            "",
        )
    });
    let replies = futures_util::future::join_all(calls).await;
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
    let tokens: std::collections::BTreeSet<&str> =
        replies.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
}

/// A node killed with SIGKILL while it runs a long job, with more jobs triggered on it still
/// pending: within its lease and 2 s, another node ends the long job with the restart's line,
/// runs every pending one, and no acknowledged token is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_jobs_are_settled_within_its_lease() {
    let cluster = Cluster::new(&[
        ("long", template("", "Log-Information begun;\nSleep 300;")),
        ("short", template("", WHERE)),
    ])
    .await;
    let mut doomed = cluster
        .node("doomed", &["--max-concurrent-jobs", "1"])
        .await;
    let token = doomed.trigger("template=long").await;
    doomed.wait_log(&token, "INFO: begun\n").await;
    let mut pending = Vec::new();
    for _ in 0..5 {
        pending.push(doomed.trigger("template=short").await);
    }
    for token in &pending {
        assert_eq!(doomed.status(token, "").await, "Pending");
    }
    // The survivor starts once the doomed node runs the long job, so the doomed node holds it.
    let survivor = cluster
        .node("survivor", &["--max-concurrent-jobs", "1"])
        .await;
    doomed.kill9();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(30);
    while survivor.status(&token, "").await != "Error" {
        assert!(
            Instant::now() < deadline,
            "the dead node's job was never settled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "settled {took:?} after the kill, lease {LEASE} s"
    );
    let log = survivor.logs(&token, "").await;
    assert!(
        log.ends_with(&format!("INFO: begun\n{INTERRUPTED}")),
        "{log}"
    );
    for token in &pending {
        assert_eq!(survivor.wait_terminal(token, "").await, "Succeeded");
        let log = survivor.logs(token, "").await;
        assert_eq!(node_of(&log).as_deref(), Some("survivor"), "{log}");
    }
}

/// A node paused past its lease: another node settles its job; resumed, the paused node writes
/// no result over the settlement, then joins again and takes work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_cannot_write_over_its_settled_job() {
    let cluster = Cluster::new(&[
        ("brief", template("", "Log-Information begun;\nSleep 3;")),
        ("short", template("", "Log-Information quick;")),
    ])
    .await;
    let paused = cluster.node("paused", &[]).await;
    let token = paused.trigger("template=brief").await;
    paused.wait_log(&token, "INFO: begun\n").await;
    let other = cluster.node("other", &[]).await;
    paused.signal("STOP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while other.status(&token, "").await != "Error" {
        assert!(
            Instant::now() < deadline,
            "the paused node's job was never settled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Resumed after the job's sleep would have ended: its end is refused.
    tokio::time::sleep(Duration::from_secs(3)).await;
    paused.signal("CONT");
    let after = paused.trigger("template=short").await;
    assert_eq!(paused.wait_terminal(&after, "").await, "Succeeded");
    assert_eq!(other.status(&token, "").await, "Error");
    let log = other.logs(&token, "").await;
    assert!(!log.contains("Job succeeded."), "{log}");
    assert!(log.contains(INTERRUPTED), "{log}");
}

/// SIGTERM drains one node: it keeps its lease while its job, longer than the lease, finishes,
/// claims nothing more, and exits, while another node runs what is triggered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_one_node_while_the_others_serve() {
    let cluster = Cluster::new(&[
        ("brief", template("", "Log-Information begun;\nSleep 5;")),
        ("short", template("", WHERE)),
    ])
    .await;
    let mut draining = cluster.node("draining", &["--shutdown-grace", "30"]).await;
    let token = draining.trigger("template=brief").await;
    draining.wait_log(&token, "INFO: begun\n").await;
    let serving = cluster.node("serving", &[]).await;
    draining.signal("TERM");
    let mut later = Vec::new();
    for _ in 0..5 {
        later.push(serving.trigger("template=short").await);
    }
    for token in &later {
        assert_eq!(serving.wait_terminal(token, "").await, "Succeeded");
        let log = serving.logs(token, "").await;
        assert_eq!(node_of(&log).as_deref(), Some("serving"), "{log}");
    }
    assert!(draining.wait_exit(Duration::from_secs(30)).success());
    assert_eq!(serving.status(&token, "").await, "Succeeded");
}

/// The queue limit counts the pending jobs of the whole cluster, exactly, under concurrent
/// triggers on two nodes; a keyed trigger counts too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_limit_is_exact_across_nodes() {
    let cluster = Cluster::new(&[
        ("busy", template("", "Log-Information begun;\nSleep 300;")),
        ("idle", template("", "Log-Information ran;")),
    ])
    .await;
    let args = ["--max-concurrent-jobs", "1", "--max-pending-jobs", "5"];
    let nodes = cluster.nodes(2, &args).await;
    // Both nodes busy, so that everything triggered next stays pending.
    for node in &nodes {
        let token = node.trigger("template=busy").await;
        node.wait_log(&token, "INFO: begun\n").await;
    }
    let busy_everywhere = async {
        let metrics = nodes[0].get("/metrics").await.body;
        assert!(metrics.contains("holt_queue_depth 0\n"), "{metrics}");
    };
    busy_everywhere.await;
    let calls = (0..20).map(|i| nodes[i % 2].get("/api/jobs/trigger?template=idle"));
    let replies = futures_util::future::join_all(calls).await;
    let accepted = replies.iter().filter(|r| r.status == 200).count();
    let full = replies.iter().filter(|r| r.status == 503).count();
    assert_eq!((accepted, full), (5, 15), "{replies:?}");
    let keyed = nodes[1]
        .request(
            "GET",
            "/api/jobs/trigger?template=idle",
            &[("Idempotency-Key", "one-more")],
            "",
        )
        .await;
    assert_eq!(keyed.status, 503, "{}", keyed.body);
    let metrics = nodes[1].get("/metrics").await.body;
    assert!(metrics.contains("holt_queue_depth 5\n"), "{metrics}");
}
