//! Outputs and `run`: a template's declared outputs recorded with a job's end (secrets masked,
//! order kept, across restarts), read with `/api/jobs/outputs`, answered by `/api/jobs/run`
//! when the job ends within the wait, on SQLite, on PostgreSQL and across two nodes; and the
//! `holt` command line printing them.

use holt_storage_postgres::scratch::ScratchDatabase;
use holt_tests::{Holtd, Reply};

/// Sets its outputs from its variables; `Fail=yes` ends it `Error` after setting `Version`.
const RELEASE: &str = r#"
allow_api = true
api_key = "release-key"
outputs = ["Version", "ArtifactUrl", "Never"]
plan = '''
set $Version = "1.2.$Build";
Sleep $Seconds;
if $Fail == yes { fail; }
set $ArtifactUrl = "https://user:$Password@example.com/a?b=`"c`"";
'''
[variables]
Build = "7"
Seconds = "0"
Fail = "no"
[variables.Password]
secret = true
default = "hunter22"
"#;

fn json(reply: &Reply) -> serde_json::Value {
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{}",
        reply.body
    );
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

const EXPECTED: &str =
    r#"{"Version":"1.2.9","ArtifactUrl":"https://user:***@example.com/a?b=\"c\""}"#;

/// What every store must show: `run` answers the ended job's outputs in declaration order,
/// `outputs` answers the same, and refusals are those of trigger and status.
async fn check_outputs_and_run(holtd: &Holtd) {
    let reply = holtd
        .get("/api/jobs/run?template=release&key=release-key&Build=9&wait=20")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let ran = json(&reply);
    assert_eq!(ran["status"], "Succeeded", "{}", reply.body);
    let token = ran["token"].as_str().unwrap().to_owned();
    // The object is written in declaration order; an output never set is absent.
    assert!(
        reply.body.ends_with(&format!(r#","outputs":{EXPECTED}}}"#)),
        "{}",
        reply.body
    );
    let reply = holtd
        .get(&format!("/api/jobs/outputs?token={token}&key=release-key"))
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (200, EXPECTED));
    assert_eq!(reply.header("x-holt-status"), Some("Succeeded"));
    let reply = holtd
        .post_form(
            "/api/jobs/outputs",
            &format!("token={token}&key=release-key"),
        )
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (200, EXPECTED));

    // Refusals: a wrong or missing key, an unknown or malformed token.
    for (query, status, reason) in [
        (format!("token={token}&key=wrong"), 403, "invalid API key"),
        (format!("token={token}"), 403, "missing API key"),
        ("token=999999&key=release-key".into(), 400, "unknown token"),
        ("token=x&key=release-key".into(), 400, "invalid token"),
        ("key=release-key".into(), 400, "missing token parameter"),
    ] {
        let reply = holtd.get(&format!("/api/jobs/outputs?{query}")).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (status, reason),
            "{query}"
        );
    }
    for (query, status) in [
        ("template=release&key=wrong&wait=1", 403),
        ("template=nosuch&wait=1", 404),
        ("wait=1", 400),
        ("template=release&key=release-key&wait=61", 400),
        ("template=release&key=release-key&wait=soon", 400),
        ("template=release&key=release-key&Password=abc&wait=1", 400),
    ] {
        let reply = holtd.get(&format!("/api/jobs/run?{query}")).await;
        assert_eq!(reply.status, status, "{query}: {}", reply.body);
    }

    // A job that outlasts the wait: its status so far, no outputs yet; the client goes on
    // with status?wait=, and the outputs are there once it has ended.
    let reply = holtd
        .post_form(
            "/api/jobs/run?template=release&key=release-key",
            "Seconds=2&wait=0.2",
        )
        .await;
    let ran = json(&reply);
    assert!(
        matches!(ran["status"].as_str(), Some("Pending" | "Executing")),
        "{}",
        reply.body
    );
    assert_eq!(ran["outputs"], serde_json::json!({}));
    let token = ran["token"].as_str().unwrap().to_owned();
    let reply = holtd
        .get(&format!("/api/jobs/outputs?token={token}&key=release-key"))
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "{}"));
    assert_eq!(
        holtd.wait_terminal(&token, "&key=release-key").await,
        "Succeeded"
    );
    let reply = holtd
        .get(&format!("/api/jobs/outputs?token={token}&key=release-key"))
        .await;
    assert_eq!(
        reply.body,
        EXPECTED.replace("1.2.9", "1.2.7"),
        "the outputs of a job that ended after the run's wait"
    );

    // A failing job records what it had set when it ended.
    let reply = holtd
        .get("/api/jobs/run?template=release&key=release-key&Fail=yes&wait=20")
        .await;
    let ran = json(&reply);
    assert_eq!(ran["status"], "Error");
    assert_eq!(ran["outputs"], serde_json::json!({"Version": "1.2.7"}));
}

#[tokio::test]
async fn outputs_and_run_on_sqlite_and_across_a_restart() {
    let mut holtd = Holtd::start(&[("release", RELEASE)], &[]).await;
    check_outputs_and_run(&holtd).await;
    // Outputs are part of the job's durable record.
    let ran = json(
        &holtd
            .get("/api/jobs/run?template=release&key=release-key&Build=9&wait=20")
            .await,
    );
    let token = ran["token"].as_str().unwrap().to_owned();
    holtd.kill9();
    holtd.restart().await;
    let reply = holtd
        .get(&format!("/api/jobs/outputs?token={token}&key=release-key"))
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (200, EXPECTED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_and_run_on_postgres_and_from_another_node() {
    let db = ScratchDatabase::create().await;
    let key = tempfile::tempdir().unwrap();
    let key = key.path().join("secrets.key");
    let node = |name: &'static str| {
        let key = key.to_str().unwrap().to_owned();
        let url = db.url().to_owned();
        async move {
            let args = ["--node-name", name, "--secrets-key", &key];
            Holtd::start_on_postgres(&url, &[("release", RELEASE)], &args).await
        }
    };
    let a = node("a").await;
    check_outputs_and_run(&a).await;
    // Whichever node ran the job, the other answers with the outputs recorded with its end.
    let b = node("b").await;
    for (ask, answer) in [(&a, &b), (&b, &a)] {
        let ran = json(
            &ask.get("/api/jobs/run?template=release&key=release-key&Build=9&wait=20")
                .await,
        );
        assert_eq!(ran["status"], "Succeeded");
        let token = ran["token"].as_str().unwrap();
        let reply = answer
            .get(&format!("/api/jobs/outputs?token={token}&key=release-key"))
            .await;
        assert_eq!((reply.status, reply.body.as_str()), (200, EXPECTED));
    }
}

#[tokio::test]
async fn the_command_line_prints_outputs() {
    holt_tests::holt_binary();
    let holtd = Holtd::start(&[("release", RELEASE)], &[]).await;
    let holt = |args: &[&str]| {
        let mut command = tokio::process::Command::new(holt_tests::holt_binary());
        command
            .args(args)
            .env("HOLT_URL", format!("http://{}", holtd.addr))
            .env("HOLT_KEY", "release-key")
            .stdin(std::process::Stdio::null());
        async move { command.output().await.unwrap() }
    };
    let out = holt(&["trigger", "release", "-v", "Build=9", "--wait"]).await;
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let token = lines.next().unwrap().to_owned();
    assert_eq!(
        lines.collect::<Vec<_>>(),
        [
            "Succeeded",
            "Version=1.2.9",
            "ArtifactUrl=https://user:***@example.com/a?b=\"c\""
        ]
    );
    let out = holt(&["outputs", &token, "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{EXPECTED}\n")
    );
    let out = holt(&["outputs", "999999"]).await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "holt: unknown token\n"
    );
}

#[tokio::test]
async fn the_client_crate_runs_and_reads_outputs() {
    let holtd = Holtd::start(&[("release", RELEASE)], &[]).await;
    let client = holt_client::Client::new(&format!("http://{}", holtd.addr))
        .unwrap()
        .with_key("release-key");
    let ran = client
        .run(
            "release",
            &[("Build", "9")],
            None,
            std::time::Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(ran.status, holt_client::JobStatus::Succeeded);
    assert!(!ran.existing);
    let expected = vec![
        ("Version".to_owned(), "1.2.9".to_owned()),
        (
            "ArtifactUrl".to_owned(),
            "https://user:***@example.com/a?b=\"c\"".to_owned(),
        ),
    ];
    assert_eq!(ran.outputs, expected);
    assert_eq!(client.outputs(&ran.token).await.unwrap(), expected);
    // A run that outlasts its wait answers the status so far; the client waits on.
    let ran = client
        .run(
            "release",
            &[("Seconds", "1")],
            None,
            std::time::Duration::from_millis(100),
        )
        .await
        .unwrap();
    assert!(!ran.status.is_terminal(), "{ran:?}");
    assert!(ran.outputs.is_empty());
    let status = client.wait_for_end(&ran.token).await.unwrap();
    assert_eq!(status, holt_client::JobStatus::Succeeded);
    assert_eq!(client.outputs(&ran.token).await.unwrap()[0].1, "1.2.7");
    // Refusals are the trigger's.
    let refused = client
        .run(
            "release",
            &[("Password", "abc")],
            None,
            std::time::Duration::ZERO,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, holt_client::Error::Refused { status: 400, .. }),
        "{refused:?}"
    );
}

/// An output over 64 KiB is not recorded, and the job's log says so; the job's status and its
/// other outputs are untouched.
#[tokio::test]
async fn an_output_too_long_is_left_out_with_a_warning() {
    const BIG: &str = r#"
allow_api = true
outputs = ["Big", "Small"]
plan = '''
set $Big = "$Val$Val";
set $Small = ok;
'''
"#;
    let holtd = Holtd::start(&[("big", BIG)], &[]).await;
    let value = "x".repeat(40_000);
    let reply = holtd
        .post_form(
            "/api/jobs/run?template=big&wait=20",
            &format!("Val={value}"),
        )
        .await;
    let ran = json(&reply);
    assert_eq!(ran["status"], "Succeeded");
    assert_eq!(ran["outputs"], serde_json::json!({"Small": "ok"}));
    let token = ran["token"].as_str().unwrap();
    let log = holtd.logs(token, "").await;
    assert!(
        log.ends_with(
            "WARN: Output Big is longer than 65536 bytes; it is not recorded.\nINFO: Job succeeded.\n"
        ),
        "{}",
        &log[log.len().saturating_sub(300)..]
    );
}
