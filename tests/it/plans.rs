//! Plans over HTTP: the key execution rules end to end, processes, injection, and loading.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::templates::with_plan as template;
use holt_tests::{Holtd, alive, holtd_binary};

/// Runs each `(name, plan)` once over HTTP and returns (status, log body) per plan.
async fn run_plans(plans: &[(&str, &str)]) -> Vec<(String, String)> {
    let templates: Vec<(String, String)> = plans
        .iter()
        .map(|(n, p)| ((*n).to_owned(), template(p)))
        .collect();
    let refs: Vec<(&str, &str)> = templates
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let holtd = Holtd::start(&refs, &["--max-concurrent-jobs", "16"]).await;
    let mut tokens = Vec::new();
    for (name, _) in plans {
        tokens.push(holtd.trigger(&format!("template={name}")).await);
    }
    let mut results = Vec::new();
    for token in tokens {
        let status = holtd.wait_terminal(&token, "").await;
        results.push((status, holtd.logs(&token, "").await));
    }
    results
}

/// The log body without the engine's first and last lines.
fn inner(body: &str) -> String {
    let lines: Vec<&str> = body.lines().collect();
    lines[1..lines.len() - 1]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test]
async fn execution_rules_over_http() {
    let cases = [
        (
            "trycatch",
            "try { throw boom; } catch { warn; }",
            "Warning",
            "ERROR: boom\n",
        ),
        (
            "failtry",
            "try { fail; } catch { force normal; }\nLog-Information never;",
            "Error",
            "",
        ),
        (
            "logerror",
            "Log-Error e;\nLog-Information after;",
            "Error",
            "ERROR: e\nINFO: after\n",
        ),
        (
            "retry",
            "set global $n = 0;\nwith retry=2 {\n  if $n == 0 { set global $n = 1; throw one; }\n  if $n == 1 { set global $n = 2; throw two; }\n  Log-Information ok;\n}",
            "Succeeded",
            "ERROR: one\nDEBUG: Retrying (attempt 2 of 3).\nERROR: two\nDEBUG: Retrying (attempt 3 of 3).\nINFO: ok\n",
        ),
        (
            "async",
            "with async { Sleep 0.5; Log-Information slow; }\nwith async { Sleep 0.1; Log-Information fast; }",
            "Succeeded",
            "INFO: fast\nINFO: slow\n",
        ),
    ];
    let plans: Vec<(&str, &str)> = cases.iter().map(|(n, p, _, _)| (*n, *p)).collect();
    let results = run_plans(&plans).await;
    for ((name, _, status, body), (got_status, got_body)) in cases.iter().zip(&results) {
        assert_eq!(got_status, status, "{name}: {got_body}");
        assert_eq!(inner(got_body), *body, "{name}");
    }
}

#[tokio::test]
async fn a_timeout_kills_the_process_within_a_second_of_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let plan = format!("with timeout=1 {{\n  SHExec >>echo `$`$ > {d}/pid; exec sleep 60>>;\n}}");
    let holtd = Holtd::start(&[("t", &template(&plan))], &[]).await;
    let started = Instant::now();
    let token = holtd.trigger("template=t").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Error");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "ended after {took:?}");
    assert!(
        holtd
            .logs(&token, "")
            .await
            .contains("ERROR: Timeout of 1 seconds elapsed.\n")
    );
    let pid = std::fs::read_to_string(dir.path().join("pid")).unwrap();
    assert!(!alive(&pid), "sleep {pid} is still running");
}

#[tokio::test]
async fn hostile_variable_values_are_one_argument_and_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pwned = dir.path().join("pwned");
    let p = pwned.display();
    let values = [
        format!("x; touch {p}"),
        format!("$(touch {p})"),
        format!("`touch {p}`"),
        format!("'\"; touch {p}; \"'"),
        format!("a\ntouch {p}\nb"),
    ];
    let exec = template("Exec printf (Arguments: '\"[%s]`n\" $Value');");
    let shexec = template("SHExec >>printf '[%s]`n' $Value>>;");
    let holtd = Holtd::start(&[("exec", &exec), ("shexec", &shexec)], &[]).await;
    for value in &values {
        let form: String = url_encode(value);
        for name in ["exec", "shexec"] {
            // Once in the query string, once in a form body.
            let query = holtd
                .trigger(&format!("template={name}&Value={form}"))
                .await;
            let body = holtd
                .post_form(
                    &format!("/api/jobs/trigger?template={name}"),
                    &format!("Value={form}"),
                )
                .await
                .body;
            for token in [query, body] {
                assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
                let log = holtd.logs(&token, "").await;
                let printed: String = format!("[{value}]")
                    .lines()
                    .map(|l| format!("INFO: {l}\n"))
                    .collect();
                assert!(log.contains(&printed), "{name} with {value:?}:\n{log}");
                assert!(!pwned.exists(), "{name} with {value:?} ran a command");
            }
        }
    }
}

pub(crate) fn url_encode(value: &str) -> String {
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

#[tokio::test]
async fn the_example_deployment_runs() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/templates");
    let mut templates = Vec::new();
    for name in ["hdars", "ablast", "deploy-webapp"] {
        templates.push((
            name,
            std::fs::read_to_string(examples.join(format!("{name}.toml"))).unwrap(),
        ));
    }
    let refs: Vec<(&str, &str)> = templates.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let holtd = Holtd::start(&refs, &[]).await;
    let work = tempfile::tempdir().unwrap();
    let token = holtd
        .trigger(&format!(
            "template=deploy-webapp&key=deploy-key&Version=2.4.1&WorkRoot={}",
            url_encode(&work.path().display().to_string())
        ))
        .await;
    assert_eq!(
        holtd.wait_terminal(&token, "&key=deploy-key").await,
        "Succeeded"
    );
    let log = holtd.logs(&token, "&key=deploy-key").await;
    for line in [
        "INFO: Deploying webapp 2.4.1 to 3 servers\n",
        "INFO: built 13 bytes\n",
        "INFO: web1 now runs 2.4.1\n",
        "INFO: web2 now runs 2.4.1\n",
        "INFO: web3 now runs 2.4.1\n",
        "INFO: Smoke test passed on every server\n",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    assert!(
        !work.path().join(format!("job-{token}")).exists(),
        "the work directory was not cleaned up"
    );
}

#[tokio::test]
async fn the_example_server_report_runs_on_localhost() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/templates");
    let template = std::fs::read_to_string(examples.join("server-report.toml")).unwrap();
    let holtd = Holtd::start(&[("server-report", &template)], &[]).await;
    let token = holtd.trigger("template=server-report&key=report-key").await;
    let status = holtd.wait_terminal(&token, "&key=report-key").await;
    let log = holtd.logs(&token, "&key=report-key").await;
    assert_eq!(status, "Succeeded", "{log}");
    for line in ["INFO: Reporting on localhost\n", "INFO: Linux\n"] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    assert!(log.contains("INFO: Marker written in "), "{log}");
}

/// Runs `holtd check --templates DIR`.
fn check(dir: &Path) -> std::process::Output {
    Command::new(holtd_binary())
        .arg("check")
        .arg("--templates")
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn holtd_check_lists_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("good.toml"),
        template("Log-Information ok;"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        template("Log-Information \"unterminated;\nFrobnicate;\nwith isolation { }"),
    )
    .unwrap();
    std::fs::write(dir.path().join("worse.toml"), "allow_api = maybe\n").unwrap();
    let output = check(dir.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let bad = dir.path().join("bad.toml");
    let worse = dir.path().join("worse.toml");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains(" INFO ")).collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{}:3:17: unterminated string", bad.display())),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!("{}:1:13: ", worse.display())),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("bad.toml"),
        template("Frobnicate;\nwith isolation { }"),
    )
    .unwrap();
    std::fs::remove_file(&worse).unwrap();
    let output = check(dir.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        format!(
            "{b}:3:1: unknown operation `Frobnicate`\n{b}:4:6: `with isolation` is not supported by Holt\n",
            b = bad.display()
        )
    );

    std::fs::remove_file(&bad).unwrap();
    let output = check(dir.path());
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("{}: 1 templates OK\n", dir.path().display())
    );
}

#[test]
fn holtd_refuses_to_start_with_a_broken_template() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("broken.toml"),
        template("Log-Information ok;\nNope;"),
    )
    .unwrap();
    let output = Command::new(holtd_binary())
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("holt.db"))
        .arg("--templates")
        .arg(&templates)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "{}:4:1: unknown operation `Nope`",
            templates.join("broken.toml").display()
        )),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "it must not claim to listen");
}
