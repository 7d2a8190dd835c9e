//! The end-to-end test harness: starts a real `holtd` process on `127.0.0.1:0` with a real
//! SQLite file (or a real PostgreSQL database) and template files in a temporary directory, and
//! talks to it over real HTTP.
//!
//! The harness builds `holtd` with the same cargo and profile that built the tests, so a test
//! never runs a stale server binary.

#![allow(
    clippy::disallowed_methods,
    reason = "the harness starts holtd, cargo and kill as a user would, outside any job"
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod sshd;
pub use sshd::Sshd;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// The `holtd` binary, built once per test process.
pub fn holtd_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_binary("holtd"))
}

/// The `holt` command line, built once per test process.
pub fn holt_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_binary("holt"))
}

/// Builds the binary `name` of the package of the same name in the test's own profile.
fn build_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/it-<hash> -> target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable in target/<profile>/deps")
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", name, "--bin", name]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "cargo build -p {name} failed");
    let binary = profile_dir.join(name);
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

/// A running holtd with its own directory, database and templates.
#[derive(Debug)]
pub struct Holtd {
    child: Option<Child>,
    /// The address it listens on.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    db: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Holtd {
    /// Starts holtd with these templates (`(name, toml)`) and extra arguments.
    pub async fn start(templates: &[(&str, &str)], args: &[&str]) -> Holtd {
        Holtd::start_on(None, templates, args).await
    }

    /// Starts holtd on the PostgreSQL database `url` instead of a SQLite file, with its
    /// secrets key in its directory.
    pub async fn start_on_postgres(url: &str, templates: &[(&str, &str)], args: &[&str]) -> Holtd {
        Holtd::start_on(Some(url), templates, args).await
    }

    async fn start_on(db: Option<&str>, templates: &[(&str, &str)], args: &[&str]) -> Holtd {
        let dir = tempfile::tempdir().expect("temp dir");
        let template_dir = dir.path().join("templates");
        std::fs::create_dir(&template_dir).expect("templates dir");
        for (name, text) in templates {
            std::fs::write(template_dir.join(format!("{name}.toml")), text)
                .expect("write template");
        }
        let mut holtd = Holtd {
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            db: db.map_or_else(|| dir.path().join("holt.db"), PathBuf::from),
            dir,
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            env: Vec::new(),
        };
        holtd.spawn().await;
        holtd
    }

    /// The directory holding `holt.db` and `templates/`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where holtd's own log (its standard error) goes.
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("holtd.log")
    }

    /// holtd's own log so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// Restarts holtd (stopped) with other extra arguments.
    pub async fn restart_with_args(&mut self, args: &[&str]) {
        self.args = args.iter().map(|s| (*s).to_owned()).collect();
        self.restart().await;
    }

    /// Restarts holtd (stopped) with extra environment variables, e.g. `HOLT_LOG=debug`.
    pub async fn restart_with_env(&mut self, env: &[(&str, &str)]) {
        self.env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.restart().await;
    }

    /// The database file (or PostgreSQL URL).
    pub fn db(&self) -> PathBuf {
        self.db.clone()
    }

    /// Stops holtd and starts it again with its database at `db`.
    pub async fn restart_with_db(&mut self, db: PathBuf) {
        self.kill9();
        self.db = db;
        self.restart().await;
    }

    /// The process id, while running.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("holtd is running").id()
    }

    /// holtd's resident memory now, in bytes (`VmRSS` of /proc/<pid>/status).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kb * 1024
    }

    async fn spawn(&mut self) {
        // A key beside the database is holtd's default only for a SQLite file.
        let on_postgres = self
            .db
            .to_str()
            .is_some_and(|db| db.starts_with("postgres"));
        let key = (on_postgres && !self.args.iter().any(|a| a == "--secrets-key")).then(|| {
            [
                "--secrets-key".into(),
                self.dir.path().join("holt.secrets.key"),
            ]
        });
        let mut child = Command::new(holtd_binary())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--db")
            .arg(self.db())
            .arg("--templates")
            .arg(self.dir.path().join("templates"))
            .args(key.iter().flatten())
            .args(&self.args)
            .env("HOLT_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.log_file())
                    .expect("open holtd.log"),
            ))
            .spawn()
            .expect("start holtd");
        let stdout = child.stdout.take().expect("holtd stdout");
        let line = tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            reader.read_line(&mut line).expect("read holtd stdout");
            // Keep draining stdout so holtd never blocks writing to it.
            std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
            line
        })
        .await
        .unwrap();
        let addr = line
            .trim()
            .strip_prefix("holtd listening on http://")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line from holtd: {line:?}; its log:\n{}",
                    self.server_log()
                )
            });
        self.addr = addr.parse().expect("bound address");
        self.child = Some(child);
        let reply = self.get("/healthz").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    }

    /// Kills holtd with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill holtd");
            child.wait().expect("reap holtd");
        }
    }

    /// Sends SIGTERM and waits (up to a minute) for holtd to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(60))
    }

    /// Sends a signal (`"TERM"`, `"INT"`, ...) without waiting.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for holtd to exit, failing after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("holtd is running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait for holtd") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "holtd did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts holtd again on the same directory (after `kill9` or `terminate`).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "holtd is still running");
        self.spawn().await;
    }

    /// Writes (or replaces) a template file; it takes effect at the next start.
    pub fn write_template(&self, name: &str, text: &str) {
        std::fs::write(
            self.dir
                .path()
                .join("templates")
                .join(format!("{name}.toml")),
            text,
        )
        .expect("write template");
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, &[], "").await
    }

    /// `POST path` with a form body.
    pub async fn post_form(&self, path: &str, body: &str) -> Reply {
        request(
            self.addr,
            "POST",
            path,
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await
    }

    /// Any request.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        request(self.addr, method, path, headers, body).await
    }

    /// Triggers a job and returns its token, asserting a 200.
    pub async fn trigger(&self, query: &str) -> String {
        let reply = self.get(&format!("/api/jobs/trigger?{query}")).await;
        assert_eq!(reply.status, 200, "trigger {query}: {}", reply.body);
        reply.body
    }

    /// The status of a job (asserting a 200), with `extra` query pairs such as `&key=...`.
    pub async fn status(&self, token: &str, extra: &str) -> String {
        let reply = self
            .get(&format!("/api/jobs/status?token={token}{extra}"))
            .await;
        assert_eq!(reply.status, 200, "status {token}: {}", reply.body);
        reply.body
    }

    /// The log body of a job (asserting a 200).
    pub async fn logs(&self, token: &str, extra: &str) -> String {
        let reply = self
            .get(&format!("/api/jobs/logs?token={token}{extra}"))
            .await;
        assert_eq!(reply.status, 200, "logs {token}: {}", reply.body);
        reply.body
    }

    /// Polls the status until it is `status`; fails after 20 seconds.
    pub async fn wait_status(&self, token: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.status(token, "").await;
            if now == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "job {token} is {now}, never {status}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls the log until it contains `text`; fails after 20 seconds.
    pub async fn wait_log(&self, token: &str, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let body = self.logs(token, "").await;
            if body.contains(text) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "job {token} never logged {text:?}:\n{body}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls the status until it is terminal and returns it; fails after 20 seconds.
    pub async fn wait_terminal(&self, token: &str, extra: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.status(token, extra).await;
            if matches!(status.as_str(), "Succeeded" | "Warning" | "Error") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "job {token} still {status} after 20 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Holtd {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The SHA-256 hex digest of `text`, as an operator makes an admin key's digest for holtd
/// (`printf %s KEY | sha256sum`).
pub fn sha256_hex(text: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child
        .stdin
        .take()
        .expect("sha256sum's input")
        .write_all(text.as_bytes())
        .expect("write to sha256sum");
    let out = child.wait_with_output().expect("sha256sum's output");
    String::from_utf8(out.stdout).expect("hex digits")[..64].to_owned()
}

/// Whether a process is alive (a zombie has exited and does not count).
pub fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// Sends raw bytes on a new connection and reads one response: its status, its headers (names
/// lowercase) and its body (by `Content-Length`, or to the end of the connection). Fails after
/// `within`. For requests no well-behaved client would send.
pub async fn raw_request(
    addr: SocketAddr,
    bytes: &[u8],
    within: Duration,
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    // A server may answer before it has read everything (and close); the answer is what counts.
    let _ = stream.write_all(bytes).await;
    tokio::time::timeout(within, async {
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).into_owned();
                let mut lines = head.split("\r\n");
                let status = lines
                    .next()
                    .and_then(|l| l.split(' ').nth(1))
                    .and_then(|s| s.parse().ok())
                    .ok_or("no status line")?;
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let length = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse::<usize>().ok());
                let body_start = end + 4;
                let complete = length.is_some_and(|l| got.len() >= body_start + l);
                if complete {
                    let body = got[body_start..body_start + length.unwrap_or(0)].to_vec();
                    return Ok(Reply {
                        status,
                        headers,
                        body: String::from_utf8(body)?,
                    });
                }
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err("the connection closed before a whole response".into());
            }
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await?
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// The value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request on a new connection and reads the whole response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    try_request(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Like [`request`], but a failure to connect or to read the answer is returned, for clients
/// that expect the server to go away (crash tests).
pub async fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(Bytes::from(body.to_owned())))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec())?,
    })
}
