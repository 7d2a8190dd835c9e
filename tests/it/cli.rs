//! The `holt` command line as a process against a real holtd: every subcommand, every exit
//! code, refusals on stderr, an unreachable server, variables byte for byte, a followed log
//! equal to the logs endpoint's text, and no terminal escape codes when stderr is not one. The
//! client crate's refused and unreachable answers are checked here too.

use std::process::Output;

use holt_tests::Holtd;

use crate::templates;

const ADMIN: &str = "admin-secret";

/// Echoes its variable, so that a value can be compared byte for byte.
const ECHO: &str = r#"
allow_api = true
plan = 'Log-Information "v=[$Val]";'
[variables]
Val = ""
"#;

async fn server() -> Holtd {
    // `holt` is built before any job starts: on a clean checkout the first test to need it
    // builds it, which must not eat into a running job's time.
    holt_tests::holt_binary();
    let hex = holt_tests::sha256_hex(ADMIN);
    let mut all = templates::all();
    all.push(("echo", ECHO));
    Holtd::start(&all, &["--admin-key-sha256", &hex]).await
}

fn url(holtd: &Holtd) -> String {
    format!("http://{}", holtd.addr)
}

/// Runs `holt ARGS` with the server's URL in `HOLT_URL` and no key unless given.
async fn holt(holtd: &Holtd, args: &[&str]) -> Output {
    holt_with_env(&[("HOLT_URL", &url(holtd))], args).await
}

async fn holt_with_env(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(holt_tests::holt_binary());
    command
        .args(args)
        .env_remove("HOLT_URL")
        .env_remove("HOLT_KEY");
    for (name, value) in env {
        command.env(name, value);
    }
    // stdin is closed; stdout and stderr are pipes, never a terminal.
    command
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run holt")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[track_caller]
fn exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

#[tokio::test]
async fn trigger_with_wait_exits_with_the_jobs_outcome() {
    let holtd = server().await;
    for (template, code, status) in [
        ("ablast", 0, "Succeeded"),
        ("fails", 1, "Error"),
        ("warns", 2, "Warning"),
    ] {
        let out = holt(&holtd, &["trigger", template, "--wait"]).await;
        exit(&out, code);
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].parse::<u64>().is_ok(), "{text}");
        assert_eq!(lines[1], status);
        // stderr is a pipe: no spinner, no escape codes, nothing at all.
        assert_eq!(stderr(&out), "");
        // status --wait of the same job gives the same exit code.
        let again = holt(&holtd, &["status", lines[0], "--wait"]).await;
        exit(&again, code);
        assert_eq!(stdout(&again), format!("{status}\n"));
    }
    // Without --wait, a trigger exits 0 with the token alone.
    let out = holt(&holtd, &["trigger", "fails"]).await;
    exit(&out, 0);
    assert!(stdout(&out).trim().parse::<u64>().is_ok());
}

#[tokio::test]
async fn refusals_exit_3_with_the_servers_reason_on_stderr() {
    let holtd = server().await;
    let cases: [(&[&str], &str); 5] = [
        (&["trigger", "nosuch"], "holt: no template named nosuch\n"),
        (&["trigger", "hdars"], "holt: missing API key\n"),
        (&["status", "99999"], "holt: unknown token\n"),
        (&["logs", "abc"], "holt: invalid token\n"),
        (&["jobs"], "holt: missing admin key\n"),
    ];
    for (args, reason) in cases {
        let out = holt(&holtd, args).await;
        exit(&out, 3);
        assert_eq!(stderr(&out), reason, "{args:?}");
        assert_eq!(stdout(&out), "");
    }
    let out = holt(&holtd, &["--key", "wrong", "templates"]).await;
    exit(&out, 3);
    assert_eq!(stderr(&out), "holt: invalid admin key\n");
}

#[tokio::test]
async fn an_unreachable_server_exits_4() {
    // A port that was just free: nothing listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let out = holt_with_env(
        &[],
        &["--url", &format!("http://{addr}"), "status", "1", "--wait"],
    )
    .await;
    exit(&out, 4);
    assert!(stderr(&out).contains(&addr.to_string()), "{}", stderr(&out));
    assert!(stderr(&out).lines().count() == 1, "{}", stderr(&out));

    let client = holt_client::Client::new(&format!("http://{addr}")).unwrap();
    let error = client.status("1").await.unwrap_err();
    assert!(
        matches!(error, holt_client::Error::Unreachable { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn variables_arrive_byte_for_byte() {
    let holtd = server().await;
    for value in [
        "two words",
        r#"say "hi" and 'bye'"#,
        "a=b=c",
        "  padded  ",
        "ünïcode ✓",
        "",
    ] {
        let arg = format!("Val={value}");
        let out = holt(&holtd, &["trigger", "echo", "-v", &arg, "--wait"]).await;
        exit(&out, 0);
        let token = stdout(&out).lines().next().unwrap().to_owned();
        let log = holtd.logs(&token, "").await;
        let line = format!("\nINFO: v=[{value}]\n");
        assert!(log.contains(&line), "{value:?}: {log}");
    }
    // A -v without `=` is refused by the command line itself, with the refusal's code (not
    // clap's 2, which would read as Warning).
    let out = holt(&holtd, &["trigger", "echo", "-v", "novalue"]).await;
    exit(&out, 3);
    assert!(
        stderr(&out).contains("expected NAME=VALUE"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn follow_streams_the_log_and_equals_the_logs_endpoint() {
    let holtd = server().await;
    let out = holt(
        &holtd,
        &["trigger", "sleeps", "-v", "Seconds=1", "--follow"],
    )
    .await;
    exit(&out, 0);
    let text = stdout(&out);
    let (token, log) = text.split_once('\n').unwrap();
    assert_eq!(log, holtd.logs(token, "").await);
    assert!(log.contains("INFO: awake\n"), "{log}");
    assert_eq!(stderr(&out), "");

    let out = holt(&holtd, &["logs", token, "--follow"]).await;
    exit(&out, 0);
    assert_eq!(stdout(&out), log);
    let out = holt(&holtd, &["logs", token, "--format", "ndjson"]).await;
    exit(&out, 0);
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|l| l["text"] == "awake"), "{lines:?}");
    // A followed failing job exits with its outcome.
    let out = holt(&holtd, &["trigger", "fails", "--follow"]).await;
    exit(&out, 1);
    assert!(stdout(&out).contains("ERROR: broken\n"), "{}", stdout(&out));
}

/// `logs --follow` prints each line as it is logged: the first line arrives while the job
/// still runs.
#[tokio::test]
async fn follow_prints_lines_while_the_job_runs() {
    use tokio::io::AsyncBufReadExt;
    let holtd = server().await;
    let token = holtd.trigger("template=sleeps&Seconds=30").await;
    let mut child = tokio::process::Command::new(holt_tests::holt_binary())
        .args(["--url", &url(&holtd), "logs", &token, "--follow"])
        .env_remove("HOLT_KEY")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        let sleeping = line == "INFO: sleeping 30";
        seen.push(line);
        if sleeping {
            break;
        }
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("INFO: sleeping 30"),
        "{seen:?}"
    );
    assert_eq!(holtd.status(&token, "").await, "Executing");
    // Cancelling ends the job, and with it the followed body: holt exits with the outcome.
    let reply = holtd
        .post_form("/api/jobs/cancel", &format!("token={token}"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push(line);
    }
    assert_eq!(
        rest.last().map(String::as_str),
        Some("ERROR: Job canceled."),
        "{rest:?}"
    );
    assert_eq!(child.wait().await.unwrap().code(), Some(1));
}

#[tokio::test]
async fn cancel_ends_a_running_job() {
    let holtd = server().await;
    let out = holt(&holtd, &["trigger", "sleeps", "-v", "Seconds=60"]).await;
    exit(&out, 0);
    let token = stdout(&out).trim().to_owned();
    holtd.wait_status(&token, "Executing").await;
    let out = holt(&holtd, &["cancel", &token]).await;
    exit(&out, 0);
    assert_eq!(stdout(&out), "Error\n");
    let out = holt(&holtd, &["status", &token]).await;
    exit(&out, 0);
    assert_eq!(stdout(&out), "Error\n");
    // A second cancel finds it ended: still exit 0, its status printed.
    let out = holt(&holtd, &["cancel", &token]).await;
    exit(&out, 0);
    assert_eq!(stdout(&out), "Error\n");
}

#[tokio::test]
async fn jobs_and_templates_list_with_the_admin_key_from_the_environment() {
    let holtd = server().await;
    let a = holtd.trigger("template=warns").await;
    holtd.wait_terminal(&a, "").await;
    let b = holtd.trigger("template=ablast").await;
    holtd.wait_terminal(&b, "").await;
    let env = [("HOLT_URL", url(&holtd)), ("HOLT_KEY", ADMIN.to_owned())];
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (*n, v.as_str())).collect();

    let out = holt_with_env(&env, &["jobs"]).await;
    exit(&out, 0);
    let text = stdout(&out);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(&rows[0][..4], [b.as_str(), "ablast", "Succeeded", "api"]);
    assert_eq!(&rows[1][..4], [a.as_str(), "warns", "Warning", "api"]);

    let out = holt_with_env(
        &env,
        &["jobs", "--template", "warns", "--status", "Warning"],
    )
    .await;
    exit(&out, 0);
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    let out = holt_with_env(&env, &["jobs", "--status", "Done"]).await;
    exit(&out, 3);
    assert!(
        stderr(&out).starts_with("holt: status must be"),
        "{}",
        stderr(&out)
    );

    let out = holt_with_env(&env, &["templates"]).await;
    exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("hdars - Deploy HDARS\n"), "{text}");
    assert!(
        text.contains("  TargetServer default \"HDARSV1\"\n"),
        "{text}"
    );
    assert!(!text.contains("secure123"), "{text}");

    // The client crate tells a refusal (status and reason) from an unreachable server.
    let client = holt_client::Client::new(&url(&holtd)).unwrap();
    match client.list_jobs(&holt_client::JobQuery::default()).await {
        Err(holt_client::Error::Refused { status, reason }) => {
            assert_eq!((status, reason.as_str()), (403, "missing admin key"));
        }
        other => panic!("{other:?}"),
    }
    let page = client
        .clone()
        .with_key(ADMIN)
        .list_jobs(&holt_client::JobQuery {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 1);
    assert_eq!(page.next.as_deref(), Some(b.as_str()));
}

#[tokio::test]
async fn help_is_complete() {
    let out = holt_with_env(&[], &["--help"]).await;
    exit(&out, 0);
    let text = stdout(&out);
    for word in [
        "trigger",
        "status",
        "logs",
        "cancel",
        "jobs",
        "templates",
        "--url",
        "--key",
        "HOLT_URL",
        "HOLT_KEY",
        "Exit codes",
        "refused",
        "reached",
    ] {
        assert!(text.contains(word), "holt --help lacks {word}:\n{text}");
    }
    let cases: [(&str, &[&str]); 6] = [
        (
            "trigger",
            &["TEMPLATE", "--var", "NAME=VALUE", "--wait", "--follow"],
        ),
        ("status", &["TOKEN", "--wait"]),
        ("logs", &["TOKEN", "--follow", "--format", "ndjson"]),
        ("cancel", &["TOKEN"]),
        ("jobs", &["--template", "--status"]),
        ("templates", &["admin key"]),
    ];
    for (command, words) in cases {
        let out = holt_with_env(&[], &[command, "--help"]).await;
        exit(&out, 0);
        let text = stdout(&out);
        for word in words {
            assert!(
                text.contains(word),
                "holt {command} --help lacks {word}:\n{text}"
            );
        }
    }
}

/// On a terminal (a pseudo-terminal from util-linux's `script`), waiting draws the spinner on
/// stderr with the token, the status and the elapsed time, and still exits with the outcome.
#[tokio::test]
async fn a_terminal_shows_the_spinner_with_status_and_elapsed_time() {
    let holtd = server().await;
    // Long enough that a loaded machine still starts `holt` and draws while the job runs.
    let token = holtd.trigger("template=sleeps&Seconds=5").await;
    holtd.wait_status(&token, "Executing").await;
    let command = format!(
        "{} --url {} status {token} --wait",
        holt_tests::holt_binary().display(),
        url(&holtd)
    );
    let out = tokio::process::Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env_remove("HOLT_KEY")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run script(1) from util-linux");
    exit(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("job {token}: Executing (")),
        "{text:?}"
    );
    assert!(text.contains('\u{1b}'), "no terminal codes: {text:?}");
    assert!(text.contains("Succeeded"), "{text:?}");
}
