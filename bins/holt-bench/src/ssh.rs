//! The SSH figure: `Exec true` operations per second on an `ssh` server (a real sshd on
//! 127.0.0.1, started here with its own host key and client key), run by one job over its one
//! multiplexed connection, beside `Exec true` on `localhost` and beside the OpenSSH client
//! itself running `true` through a master connection of its own and over a new connection each
//! time (the baselines, measured in the same run).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::BoxError;
use crate::client::{self, Client};
use crate::figures::Bench;
use crate::holtd::{Holtd, HoltdDir, ScratchDir, template};
use crate::report::{Report, number};

/// Where Debian's openssh-server puts the daemon.
const SSHD: &str = "/usr/sbin/sshd";

/// The admin key of the holtd measured, for the infrastructure API.
const ADMIN_KEY: &str = "holt-bench-admin";

/// A running sshd, killed when dropped.
struct Sshd {
    child: Child,
    addr: SocketAddr,
    user: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) -> Result<(), BoxError> {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()?;
    if !status.success() {
        return Err("ssh-keygen failed".into());
    }
    Ok(())
}

/// Starts sshd on a free loopback port, accepting the user running the benchmark with the
/// client key in `dir`, and writes `known_hosts` there.
fn start_sshd(dir: &Path) -> Result<Sshd, BoxError> {
    if !Path::new(SSHD).exists() {
        return Err(format!("{SSHD} is missing (Debian's openssh-server)").into());
    }
    keygen(&dir.join("host_key"))?;
    keygen(&dir.join("client_key"))?;
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys"))?;
    let _ = std::fs::create_dir_all("/run/sshd");
    let user = String::from_utf8(Command::new("id").arg("-un").output()?.stdout)?
        .trim()
        .to_owned();
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {pid}\n\
         AuthorizedKeysFile {auth}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nAllowUsers {user}\n\
         MaxSessions 100\nMaxStartups 100:30:200\nLogLevel ERROR\n",
        host = dir.join("host_key").display(),
        pid = dir.join("sshd.pid").display(),
        auth = dir.join("authorized_keys").display(),
    );
    std::fs::write(dir.join("sshd_config"), config)?;
    let host_key = std::fs::read_to_string(dir.join("host_key.pub"))?;
    let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
    std::fs::write(
        dir.join("known_hosts"),
        format!("[127.0.0.1]:{port} {}\n", host_key.join(" ")),
    )?;
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let sshd = Sshd {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        user,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(sshd.addr).is_err() {
        if Instant::now() > deadline {
            return Err("sshd did not listen within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(sshd)
}

/// The OpenSSH client's options for the benchmark's server, as holtd gives them.
fn client_args(dir: &Path, sshd: &Sshd) -> Vec<String> {
    [
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        &format!("UserKnownHostsFile={}", dir.join("known_hosts").display()),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        &format!("IdentityFile={}", dir.join("client_key").display()),
        "-o",
        "LogLevel=ERROR",
        "-T",
        "-p",
        &sshd.addr.port().to_string(),
        "-l",
        &sshd.user,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Runs `ssh ... 127.0.0.1 true` `n` times in a row with `extra` options; operations per second.
fn raw_ssh(args: &[String], extra: &[&str], n: u64) -> Result<f64, BoxError> {
    let began = Instant::now();
    for _ in 0..n {
        let status = Command::new("ssh")
            .args(extra)
            .args(args)
            .args(["--", "127.0.0.1", "true"])
            .stdin(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(format!("ssh true failed: {status}").into());
        }
    }
    Ok(n as f64 / began.elapsed().as_secs_f64())
}

/// Triggers `template` and waits for it to end; its run time.
async fn run_job(addr: SocketAddr, template: &str) -> Result<Duration, BoxError> {
    let mut client = Client::connect(addr).await?;
    let began = Instant::now();
    let (code, token) = client
        .get(&format!("/api/jobs/trigger?template={template}"))
        .await?;
    if code != 200 {
        return Err(format!("trigger {template}: {code}").into());
    }
    let token = String::from_utf8_lossy(&token).trim().to_owned();
    loop {
        let (code, status) = client
            .get(&format!("/api/jobs/status?token={token}&wait=60"))
            .await?;
        let status = String::from_utf8_lossy(&status).trim().to_owned();
        match (code, status.as_str()) {
            (200, "Succeeded") => return Ok(began.elapsed()),
            (200, "Pending" | "Executing") => continue,
            _ => {
                let (_, log) = client.get(&format!("/api/jobs/logs?token={token}")).await?;
                return Err(format!(
                    "{template} ended {code} {status}: {}",
                    String::from_utf8_lossy(&log)
                )
                .into());
            }
        }
    }
}

/// SSH: `Exec true` per second on one multiplexed connection, and on localhost.
pub(crate) async fn ssh(bench: &Bench, report: &mut Report) -> Result<(), BoxError> {
    let n = bench.sizes.ssh_ops;
    let keys = ScratchDir::new("sshd")?;
    let sshd = start_sshd(keys.path())?;
    let args = client_args(keys.path(), &sshd);

    // Baselines: the OpenSSH client alone, through a master of its own and without one.
    let socket = keys.path().join("cm");
    let mut master = Command::new("ssh")
        .args(["-o", "ControlMaster=yes", "-o"])
        .arg(format!("ControlPath={}", socket.display()))
        .args(["-N"])
        .args(&args)
        .args(["--", "127.0.0.1"])
        .stdin(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        if Instant::now() > deadline {
            let _ = master.kill();
            return Err("the baseline's ssh master did not connect within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let through = format!("ControlPath={}", socket.display());
    let muxed = raw_ssh(&args, &["-o", "ControlMaster=no", "-o", &through], n);
    let _ = master.kill();
    let _ = master.wait();
    let fresh = raw_ssh(
        &args,
        &["-o", "ControlMaster=no", "-o", "ControlPath=none"],
        (n / 4).max(5),
    );
    report.baseline(
        "X",
        "X ssh true through one ControlMaster connection (OpenSSH alone)",
        muxed.map_err(|e| e.to_string()),
        "ops/s",
    );
    report.baseline(
        "Y",
        "Y ssh true, a new connection each (OpenSSH alone)",
        fresh.map_err(|e| e.to_string()),
        "ops/s",
    );

    let credentials = keys.path().join("credentials.toml");
    std::fs::write(
        &credentials,
        format!(
            "[bench]\ntype = \"ssh\"\nuser = \"{}\"\nprivate_key_file = \"{}\"\n",
            sshd.user,
            keys.path().join("client_key").display()
        ),
    )?;
    let body = format!("foreach $i in @Range(1, {n}) {{ Exec true; }}");
    let dir = HoltdDir::new(
        "ssh",
        &[
            ("local", template(&body)),
            (
                "remote",
                template(&format!("for server bench {{ {body} }}")),
            ),
        ],
    )?;
    let admin_hash: String = Sha256::digest(ADMIN_KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let known_hosts = keys.path().join("known_hosts");
    let holtd = Holtd::start(
        &bench.holtd,
        &dir.db(),
        &dir.templates(),
        &[
            "--admin-key-sha256",
            &admin_hash,
            "--credentials",
            &credentials.display().to_string(),
            "--ssh-known-hosts",
            &known_hosts.display().to_string(),
        ],
    )
    .await?;
    let (code, answer) = client::post(
        holtd.addr,
        "/api/infrastructure/servers/create/bench",
        &[("X-ApiKey", ADMIN_KEY)],
        &format!(
            r#"{{"serverType":"ssh","hostName":"127.0.0.1","port":{},"credentialsName":"bench"}}"#,
            sshd.addr.port()
        ),
    )
    .await?;
    if code != 200 {
        return Err(format!(
            "creating the server: {code} {}",
            String::from_utf8_lossy(&answer)
        )
        .into());
    }
    let local = run_job(holtd.addr, "local").await?;
    let remote = run_job(holtd.addr, "remote").await?;
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    report.figure(
        "SSH Exec true on localhost, one job",
        Ok(rate(local)),
        "ops/s",
        None,
        "",
    );
    report.figure(
        "SSH Exec true on an ssh server, one job, one multiplexed connection",
        Ok(rate(remote)),
        "ops/s",
        Some("X"),
        "",
    );
    report.note(format!(
        "SSH: {} operations per job, each run to its end before the next; the ssh server is a \
         real sshd on 127.0.0.1 (each operation is a session: a login shell running true), and \
         the job's connection is made by its first operation ({} ms for the whole remote job, \
         {} ms for the local one)",
        number(n as f64),
        number(remote.as_secs_f64() * 1000.0),
        number(local.as_secs_f64() * 1000.0),
    ));
    Ok(())
}
