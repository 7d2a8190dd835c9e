//! Exec and SHExec on `ssh` servers of the inventory, against a real sshd and a real holtd.

use std::time::{Duration, Instant};

use holt_tests::{Holtd, Sshd, alive};

const ADMIN: &str = "remote-admin";

/// A holtd that reaches `sshd` with the credentials `ok` (its key) and `wrongkey` (a key the
/// server does not accept), checking host keys against `known_hosts`.
async fn holtd_for(
    sshd: &Sshd,
    known_hosts: &std::path::Path,
    templates: &[(&str, &str)],
) -> Holtd {
    // Making the wrong known-hosts file also makes a key the server does not accept.
    sshd.wrong_known_hosts();
    let credentials = sshd.dir().join("holt-credentials.toml");
    std::fs::write(
        &credentials,
        format!(
            "{}\n[wrongkey]\ntype = \"ssh\"\nuser = \"{}\"\nprivate_key_file = \"{}\"\n",
            sshd.credentials_toml("ok"),
            sshd.user,
            sshd.dir().join("other_host_key").display()
        ),
    )
    .unwrap();
    let holtd = Holtd::start(
        templates,
        &[
            "--admin-key-sha256",
            &holt_tests::sha256_hex(ADMIN),
            "--credentials",
            credentials.to_str().unwrap(),
            "--ssh-known-hosts",
            known_hosts.to_str().unwrap(),
            "--ssh-connect-timeout",
            "5",
        ],
    )
    .await;
    admin(&holtd, "roles/create/remote", "{}").await;
    for (name, port, credentials) in [
        ("s1", sshd.addr.port(), "ok"),
        ("s2", sshd.addr.port(), "ok"),
        ("badkey", sshd.addr.port(), "wrongkey"),
        ("down", closed_port(), "ok"),
    ] {
        let role = if name.starts_with('s') {
            r#"["remote"]"#
        } else {
            "[]"
        };
        admin(
            &holtd,
            &format!("servers/create/{name}"),
            &format!(
                r#"{{"serverType":"ssh","hostName":"127.0.0.1","port":{port},"credentialsName":"{credentials}","roles":{role}}}"#
            ),
        )
        .await;
    }
    holtd
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn admin(holtd: &Holtd, path: &str, body: &str) {
    let reply = holtd
        .request(
            "POST",
            &format!("/api/infrastructure/{path}"),
            &[("x-apikey", ADMIN), ("content-type", "application/json")],
            body,
        )
        .await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
}

fn template(targets: &str, plan: &str) -> String {
    format!("allow_api = true\n{targets}\nplan = '''\n{plan}\n'''\n")
}

/// The log's lines without the engine's first and last, and without debug lines.
fn shown(log: &str) -> Vec<&str> {
    let lines: Vec<&str> = log.lines().collect();
    lines[1..lines.len() - 1]
        .iter()
        .copied()
        .filter(|l| !l.starts_with("DEBUG: "))
        .collect()
}

#[tokio::test]
async fn exec_and_shexec_run_on_each_ssh_server_with_values_byte_exact() {
    let sshd = Sshd::start();
    let pwned = sshd.dir().join("pwned");
    let plan = r#"Exec printf (Arguments: "'%s|%s\n' $ServerName $V");
SHExec >>printf '%s|%s\n' "$ServerName" "$V">>;"#;
    let holtd = holtd_for(
        &sshd,
        &sshd.known_hosts(),
        &[("both", &template(r#"roles = ["remote"]"#, plan))],
    )
    .await;
    let hostile = format!(
        "a'b\"c $(touch {p}) `touch {p}`; touch {p} \\ $HOME",
        p = pwned.display()
    );
    let query = format!("template=both&V={}", url_escape(&hostile));
    let token = holtd.trigger(&query).await;
    let status = holtd.wait_terminal(&token, "").await;
    let log = holtd.logs(&token, "").await;
    assert_eq!(status, "Succeeded", "{log}");
    let expected: Vec<String> = ["s1", "s2"]
        .iter()
        .flat_map(|s| {
            [
                format!("INFO: {s}|{hostile}"),
                format!("INFO: {s}|{hostile}"),
            ]
        })
        .collect();
    assert_eq!(shown(&log), expected, "{log}");
    assert!(!pwned.exists(), "a value ran as a command");
}

fn url_escape(text: &str) -> String {
    text.bytes()
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
async fn unreachable_refused_and_mismatched_servers_fail_with_the_reason() {
    let sshd = Sshd::start();
    let marker = sshd.dir().join("ran");
    let plan = format!(
        "try {{ for server $V {{ SHExec >>touch '{}'>>; }} }} catch {{ Log-Information caught; }}",
        marker.display()
    );
    let holtd = holtd_for(&sshd, &sshd.known_hosts(), &[("one", &template("", &plan))]).await;
    for (server, reason) in [
        ("down", "Connection refused"),
        ("badkey", "Permission denied"),
    ] {
        let token = holtd.trigger(&format!("template=one&V={server}")).await;
        let status = holtd.wait_terminal(&token, "").await;
        let log = holtd.logs(&token, "").await;
        assert_eq!(status, "Succeeded", "{log}");
        let lines = shown(&log);
        assert_eq!(lines.len(), 2, "{log}");
        assert!(
            lines[0].starts_with(&format!("ERROR: cannot run on server {server}: "))
                && lines[0].contains(reason),
            "{log}"
        );
        assert_eq!(lines[1], "INFO: caught");
    }
    drop(holtd);
    let holtd = holtd_for(
        &sshd,
        &sshd.wrong_known_hosts(),
        &[("one", &template("", &plan))],
    )
    .await;
    let token = holtd.trigger("template=one&V=s1").await;
    holtd.wait_terminal(&token, "").await;
    let log = holtd.logs(&token, "").await;
    let lines = shown(&log);
    assert!(
        lines[0].starts_with("ERROR: cannot run on server s1: ")
            && lines[0].contains("Host key verification failed"),
        "{log}"
    );
    assert!(!marker.exists(), "a script ran on a server that failed");
}

async fn remote_pid(sshd: &Sshd, file: &str) -> String {
    let path = sshd.dir().join(file);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(pid) = std::fs::read_to_string(&path)
            && !pid.trim().is_empty()
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "the remote script never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn gone(pid: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(pid) {
        assert!(Instant::now() < deadline, "remote {pid} is still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cancel_and_timeout_end_the_remote_process_group() {
    let sshd = Sshd::start();
    let script = |file: &str| {
        format!(
            "SHExec >>sleep 300 & echo `$! > '{}'; wait>>;",
            sshd.dir().join(file).display()
        )
    };
    let holtd = holtd_for(
        &sshd,
        &sshd.known_hosts(),
        &[
            (
                "cancelled",
                &template(r#"servers = ["s1"]"#, &script("cancelled")),
            ),
            (
                "timed",
                &template("servers = [\"s1\"]\ntimeout = \"2s\"", &script("timed")),
            ),
        ],
    )
    .await;
    let token = holtd.trigger("template=cancelled").await;
    let pid = remote_pid(&sshd, "cancelled").await;
    assert!(alive(&pid));
    let reply = holtd
        .request("POST", &format!("/api/jobs/cancel?token={token}"), &[], "")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    gone(&pid).await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Error");

    let token = holtd.trigger("template=timed").await;
    let pid = remote_pid(&sshd, "timed").await;
    gone(&pid).await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Error");
}

/// The local ssh clients connected to `port`, by pid.
fn clients(port: u16) -> Vec<String> {
    let needle = format!("\0-p\0{port}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.parse::<u32>().ok()?;
            let cmdline = std::fs::read(format!("/proc/{name}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).into_owned();
            (cmdline.starts_with("ssh\0") && cmdline.contains(&needle) && alive(&name))
                .then_some(name)
        })
        .collect()
}

#[tokio::test]
async fn a_crash_leaves_no_ssh_client_of_an_interrupted_job_running() {
    let sshd = Sshd::start();
    let plan = format!(
        "SHExec >>sleep 300 & echo `$! > '{}'; wait>>;",
        sshd.dir().join("crashed").display()
    );
    let mut holtd = holtd_for(
        &sshd,
        &sshd.known_hosts(),
        &[("crashed", &template(r#"servers = ["s1"]"#, &plan))],
    )
    .await;
    let token = holtd.trigger("template=crashed").await;
    let remote = remote_pid(&sshd, "crashed").await;
    let before = clients(sshd.addr.port());
    assert_eq!(before.len(), 1, "{before:?}");
    holtd.kill9();
    assert!(
        alive(&before[0]),
        "the client died with holtd; the test proves nothing"
    );
    holtd.restart().await;
    assert_eq!(holtd.status(&token, "").await, "Error");
    gone(&before[0]).await;
    // The remote program is beyond reach once holtd is gone; it is ended here by hand.
    let _ = std::process::Command::new("kill")
        .arg(remote.trim())
        .status();
}

#[tokio::test]
async fn a_remote_script_cannot_read_its_own_text() {
    let sshd = Sshd::start();
    // The shell reads its input a buffer at a time: the script is long enough that a `cat`
    // reading the shell's input would find the rest of it.
    let padding = format!("# {}\n", "x".repeat(200)).repeat(400);
    let plan = format!("SHExec >>cat\n{padding}echo after\n>>;");
    let plan = plan.as_str();
    let holtd = holtd_for(
        &sshd,
        &sshd.known_hosts(),
        &[("reader", &template(r#"servers = ["s1"]"#, plan))],
    )
    .await;
    let token = holtd.trigger("template=reader").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    let log = holtd.logs(&token, "").await;
    assert_eq!(shown(&log), ["INFO: after"], "{log}");
}

/// File operations do not run over SSH yet: on an ssh server they fail, naming it, rather than
/// changing holtd's own host instead.
#[tokio::test]
async fn file_operations_on_an_ssh_server_fail_instead_of_running_locally() {
    let sshd = Sshd::start();
    let local = sshd.dir().join("made-here");
    let plan = format!(
        "for server s1 {{ Create-File {} (Text: x); }}",
        local.display()
    );
    let holtd = holtd_for(
        &sshd,
        &sshd.known_hosts(),
        &[("files", &template("", &plan))],
    )
    .await;
    let token = holtd.trigger("template=files").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Error");
    let log = holtd.logs(&token, "").await;
    assert!(
        log.contains("run only on localhost for now, not on ssh server s1"),
        "{log}"
    );
    assert!(!local.exists(), "the file was made on holtd's own host");
}
