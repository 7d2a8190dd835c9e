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

/// Waits until no remote watchdog of the jobs of holtd `mark` (their process mark, which
/// every file operation's script assigns) is left: each goes at most a second after its
/// program.
async fn no_watchdog_left(mark: &str) {
    let assigned = format!("HOLT_INSTANCE='{mark}'");
    let watchdogs = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.parse::<u32>().ok()?;
                let cmdline = std::fs::read(format!("/proc/{name}/cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline);
                (cmdline.contains("holt_link=") && cmdline.contains(&assigned) && alive(&name))
                    .then_some(name)
            })
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !watchdogs().is_empty() {
        assert!(
            Instant::now() < deadline,
            "watchdogs left: {:?}",
            watchdogs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
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
async fn a_crash_leaves_no_ssh_client_nor_remote_program_of_an_interrupted_job_running() {
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
    // The operation's client and the job's connection to the server.
    let before = clients(sshd.addr.port());
    assert_eq!(before.len(), 2, "{before:?}");
    holtd.kill9();
    for client in &before {
        assert!(
            alive(client),
            "the client died with holtd; the test proves nothing"
        );
    }
    holtd.restart().await;
    assert_eq!(holtd.status(&token, "").await, "Error");
    for client in &before {
        gone(client).await;
    }
    // With its connection gone, the program on the server is ended by its watchdog.
    gone(remote.trim()).await;
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

#[tokio::test]
async fn every_file_operation_runs_on_an_ssh_server() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (plan, expected) = crate::files::every_operation(d);
    let plan = format!("for server s1 {{\n{plan}\n}}");
    let holtd = holtd_for(
        &sshd,
        &sshd.known_hosts(),
        &[("files", &template("", &plan))],
    )
    .await;
    let token = holtd.trigger("template=files").await;
    let status = holtd.wait_terminal(&token, "").await;
    let log = holtd.logs(&token, "").await;
    assert_eq!(status, "Succeeded", "{log}");
    assert!(log.contains(&expected), "{log}");
    // The functions ran on the server: its environment holds the job's token.
    assert!(log.contains(&format!("INFO: {token}\n")), "{log}");
    crate::files::check_every_operation(dir.path());
    let mark = log
        .lines()
        .find_map(|l| l.strip_prefix("INFO: mark "))
        .expect("the plan logs its process mark");
    no_watchdog_left(mark).await;
}

#[tokio::test]
async fn transfer_files_moves_files_between_servers_byte_exact() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p);
    let big: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("src/a.txt", b"alpha\n".to_vec()),
        ("src/sub/deep/b.cfg", b"port=1".to_vec()),
        ("src/-rf ' $(touch PWNED) x", b"odd name".to_vec()),
        ("src/line\nbreak", b"newline in the name".to_vec()),
        ("src/big.bin", big),
        ("src/skip.log", b"not sent".to_vec()),
    ];
    for (name, body) in &files {
        std::fs::create_dir_all(path(name).parent().unwrap()).unwrap();
        std::fs::write(path(name), body).unwrap();
    }
    std::fs::create_dir_all(path("last")).unwrap();
    std::fs::write(path("last/stale.txt"), "old").unwrap();
    let d = dir.path().display();
    let plan = format!(
        r#"Transfer-Files (FromServer: localhost, FromDirectory: "{d}/src", ToServer: s1, ToDirectory: "{d}/mid", Exclude: "*.log");
for server s2 {{
    Transfer-Files (FromServer: s1, FromDirectory: "{d}/mid", ToDirectory: "{d}/last", DeleteTarget: true);
}}
Transfer-Files (FromServer: s2, FromDirectory: "{d}/last", ToServer: localhost, ToDirectory: "{d}/back", Include: "sub/**");"#
    );
    let holtd = holtd_for(
        &sshd,
        &sshd.known_hosts(),
        &[("transfer", &template("", &plan))],
    )
    .await;
    let token = holtd.trigger("template=transfer").await;
    let status = holtd.wait_terminal(&token, "").await;
    let log = holtd.logs(&token, "").await;
    assert_eq!(status, "Succeeded", "{log}");
    assert_eq!(
        shown(&log),
        [
            format!("INFO: Copied 5 files to {d}/mid").as_str(),
            &format!("INFO: Copied 5 files to {d}/last and deleted 1 from it"),
            &format!("INFO: Copied 1 file to {d}/back"),
        ],
        "{log}"
    );
    for (name, body) in &files[..5] {
        for copy in ["mid", "last"] {
            let copied = path(&name.replacen("src", copy, 1));
            assert_eq!(
                &std::fs::read(&copied).unwrap(),
                body,
                "{}",
                copied.display()
            );
        }
    }
    assert!(!path("mid/skip.log").exists());
    assert!(!path("last/stale.txt").exists());
    assert_eq!(
        std::fs::read(path("back/sub/deep/b.cfg")).unwrap(),
        b"port=1"
    );
    assert!(!path("back/a.txt").exists());
    assert!(!path("PWNED").exists() && !path("mid/PWNED").exists());
}

#[tokio::test]
async fn transfer_files_names_a_missing_server_and_a_failing_side() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/f"), "x").unwrap();
    let d = dir.path().display();
    let holtd = holtd_for(
        &sshd,
        &sshd.known_hosts(),
        &[
            (
                "nosuch",
                &template(
                    "",
                    &format!(r#"Transfer-Files (FromServer: nope, FromDirectory: "{d}/src", ToDirectory: "{d}/x");"#),
                ),
            ),
            (
                "down",
                &template(
                    "",
                    &format!(r#"Transfer-Files (FromDirectory: "{d}/src", ToServer: down, ToDirectory: "{d}/y");"#),
                ),
            ),
        ],
    )
    .await;
    let token = holtd.trigger("template=nosuch").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Error");
    let log = holtd.logs(&token, "").await;
    assert!(
        log.contains("FromServer: there is no server named \"nope\""),
        "{log}"
    );
    let token = holtd.trigger("template=down").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Error");
    let log = holtd.logs(&token, "").await;
    assert!(
        log.contains("ERROR: Transfer-Files: cannot run on server down: ssh: connect to host"),
        "{log}"
    );
    assert!(!dir.path().join("y").exists());
}

/// The established TCP connections to `port` from this machine.
fn connections_to(port: u16) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    text.lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let remote_port = fields[2].rsplit(':').next().unwrap();
            u16::from_str_radix(remote_port, 16).ok() == Some(port) && fields[3] == "01"
        })
        .count()
}

#[tokio::test]
async fn a_job_uses_one_connection_per_server_and_closes_it_at_its_end() {
    let sshd = Sshd::start();
    let started = sshd.dir().join("started");
    let plan = format!(
        r#"for server s1 {{
    foreach $i in @Range(1, 20) {{ Exec true; }}
    SHExec >>echo x;>>;
    Create-File (Name: "{started}.tmp", Text: x);
}}
for server s2 {{ Exec true; }}
for server s1 {{ Exec sh (Arguments: "-c 'mv {started}.tmp {started}; sleep 300'"); }}"#,
        started = started.display()
    );
    let holtd = holtd_for(
        &sshd,
        &sshd.known_hosts(),
        &[("many", &template("", &plan))],
    )
    .await;
    let port = sshd.addr.port();
    let before = connections_to(port);
    let token = holtd.trigger("template=many").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !started.exists() {
        assert!(
            Instant::now() < deadline,
            "the job never reached its last step"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One connection for s1, one for s2: 23 operations did not each connect.
    assert_eq!(connections_to(port) - before, 2);
    let masters = clients(port)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("ControlMaster=yes"))
                .unwrap_or(false)
        })
        .count();
    assert_eq!(masters, 2);
    let reply = holtd
        .request("POST", &format!("/api/jobs/cancel?token={token}"), &[], "")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(holtd.wait_terminal(&token, "").await, "Error");
    // The job's connections end with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !clients(port).is_empty() {
        assert!(Instant::now() < deadline, "ssh clients outlived their job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn holtd_check_knows_the_servers_roles_and_credentials_of_a_database() {
    let sshd = Sshd::start();
    let holtd = holtd_for(
        &sshd,
        &sshd.known_hosts(),
        &[
            ("good", &template(r#"roles = ["remote"]"#, "Exec true;")),
            (
                "lost",
                &template(
                    "servers = [\"s1\", \"gone\"]\nenvironments = [\"nowhere\"]",
                    "Exec true;",
                ),
            ),
        ],
    )
    .await;
    admin(
        &holtd,
        "servers/create/orphan",
        r#"{"serverType":"ssh","hostName":"127.0.0.1","credentialsName":"nobody"}"#,
    )
    .await;
    let run = |templates: &std::path::Path| {
        std::process::Command::new(holt_tests::holtd_binary())
            .arg("check")
            .arg("--templates")
            .arg(templates)
            .arg("--credentials")
            .arg(sshd.dir().join("holt-credentials.toml"))
            .arg("--db")
            .arg(holtd.db())
            .output()
            .unwrap()
    };
    let output = run(&holtd.dir().join("templates"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let db = holtd.db();
    let db = db.display();
    let problems: Vec<&str> = stderr.lines().filter(|l| !l.contains(" INFO ")).collect();
    assert_eq!(
        problems,
        [
            format!("{db}: template lost: there is no server named gone").as_str(),
            &format!("{db}: template lost: there is no environment named nowhere"),
            &format!("{db}: server orphan: the credentials file has no entry named nobody"),
        ],
        "{stderr}"
    );

    // Without the broken template and server, the same check passes and says what it knows.
    std::fs::remove_file(holtd.dir().join("templates/lost.toml")).unwrap();
    let reply = holtd
        .request(
            "POST",
            "/api/infrastructure/servers/delete/orphan",
            &[("x-apikey", ADMIN)],
            "",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let output = run(&holtd.dir().join("templates"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        // The built-in localhost counts.
        stdout.contains(&format!("{db}: 5 servers, 1 roles, 0 environments OK")),
        "{stdout}"
    );
}

#[tokio::test]
async fn relative_paths_resolve_under_the_servers_temp_path() {
    let sshd = Sshd::start();
    let temp = tempfile::tempdir().unwrap();
    let plan =
        "for server s1 { Create-File made.txt (Text: here); }\nCreate-File made.txt (Text: local);";
    let holtd = holtd_for(&sshd, &sshd.known_hosts(), &[("rel", &template("", plan))]).await;
    admin(
        &holtd,
        "servers/update/s1",
        &format!(r#"{{"tempPath":"{}"}}"#, temp.path().display()),
    )
    .await;
    let token = holtd.trigger("template=rel").await;
    let status = holtd.wait_terminal(&token, "").await;
    let log = holtd.logs(&token, "").await;
    assert_eq!(status, "Succeeded", "{log}");
    let jobs: Vec<_> = std::fs::read_dir(temp.path().join("holt-jobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert!(
        jobs[0]
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with(&format!("-{token}")),
        "{jobs:?}"
    );
    assert_eq!(
        std::fs::read_to_string(jobs[0].join("made.txt")).unwrap(),
        "here"
    );
}
