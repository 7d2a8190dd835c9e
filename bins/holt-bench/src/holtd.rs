//! Building, starting and watching a real `holtd` process, and the scratch directories the
//! benchmark works in.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::BoxError;
use crate::client::Client;
use crate::pg::{PgServer, ScratchDb};

/// The workspace this benchmark was built from, when it is still there.
pub(crate) fn workspace_root() -> Option<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .ok()
        .filter(|root| root.join("Cargo.toml").is_file())
}

/// Builds `holtd` with the cargo and profile that built this benchmark, and returns its path:
/// `target/<profile>/holtd`, next to this executable.
pub(crate) fn build_holtd() -> Result<PathBuf, BoxError> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .ok_or("the benchmark executable has no directory")?
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "holtd", "--bin", "holtd"]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    if let Some(root) = workspace_root() {
        build.current_dir(root);
    }
    let status = build.status()?;
    if !status.success() {
        return Err(format!("cargo build -p holtd failed: {status}").into());
    }
    let binary = profile_dir.join("holtd");
    if !binary.is_file() {
        return Err(format!("{} was not built", binary.display()).into());
    }
    Ok(binary)
}

/// A directory under the system's temporary directory, removed when dropped.
#[derive(Debug)]
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    pub(crate) fn new(tag: &str) -> Result<ScratchDir, BoxError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("holt-bench-{}-{n}-{tag}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(ScratchDir(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A directory for one holtd: `holt.db` and `templates/`.
#[derive(Debug)]
pub(crate) struct HoltdDir {
    dir: ScratchDir,
}

impl HoltdDir {
    /// A fresh directory holding these templates (`(name, toml)`).
    pub(crate) fn new(tag: &str, templates: &[(&str, String)]) -> Result<HoltdDir, BoxError> {
        let dir = ScratchDir::new(tag)?;
        let template_dir = dir.path().join("templates");
        std::fs::create_dir(&template_dir)?;
        for (name, text) in templates {
            std::fs::write(template_dir.join(format!("{name}.toml")), text)?;
        }
        Ok(HoltdDir { dir })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn db(&self) -> PathBuf {
        self.dir.path().join("holt.db")
    }

    pub(crate) fn templates(&self) -> PathBuf {
        self.dir.path().join("templates")
    }
}

/// A template whose plan is `plan`, open to API triggers without a key.
pub(crate) fn template(plan: &str) -> String {
    format!("allow_api = true\nplan = '''\n{plan}\n'''\n")
}

/// A running holtd process; killed with SIGKILL when dropped.
#[derive(Debug)]
pub(crate) struct Holtd {
    child: Option<Child>,
    /// The address it listens on.
    pub(crate) addr: SocketAddr,
    /// From the exec of the process to the first `/healthz` answered 200.
    pub(crate) ready_after: Duration,
}

impl Holtd {
    /// Starts holtd on `127.0.0.1:0` with this database and templates directory, and waits
    /// until `/healthz` answers 200.
    pub(crate) async fn start(
        binary: &Path,
        db: &Path,
        templates: &Path,
        extra: &[&str],
    ) -> Result<Holtd, BoxError> {
        let started = Instant::now();
        let mut child = Command::new(binary)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--db")
            .arg(db)
            .arg("--templates")
            .arg(templates)
            .args(extra)
            .env("HOLT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("holtd has no stdout")?;
        let mut holtd = Holtd {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ready_after: Duration::ZERO,
        };
        let first_line = tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line);
            // Keep draining stdout so holtd never blocks writing to it.
            std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
            read.map(|_| line)
        });
        // A database of a million jobs may take a while to open; a minute is far beyond that.
        let line = tokio::time::timeout(Duration::from_secs(60), first_line)
            .await
            .map_err(|_| "holtd printed nothing for 60 s")???;
        if line.is_empty() {
            return Err("holtd exited before printing its address (its stderr is above)".into());
        }
        let addr = line
            .trim()
            .strip_prefix("holtd listening on http://")
            .ok_or_else(|| format!("unexpected first line from holtd: {line:?}"))?;
        holtd.addr = addr.parse()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut client) = Client::connect(holtd.addr).await
                && let Ok((200, _)) = client.get("/healthz").await
            {
                break;
            }
            if Instant::now() >= deadline {
                return Err("holtd did not answer /healthz within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        holtd.ready_after = started.elapsed();
        Ok(holtd)
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Resident memory now (`VmRSS`), in bytes.
    pub(crate) fn rss(&self) -> Option<u64> {
        proc_status_bytes(self.pid(), "VmRSS")
    }

    /// Peak resident memory over the process's life (`VmHWM`), in bytes.
    pub(crate) fn peak_rss(&self) -> Option<u64> {
        proc_status_bytes(self.pid(), "VmHWM")
    }

    /// Starts sampling `VmRSS` every millisecond until the sampler is stopped.
    pub(crate) fn sample_rss(&self) -> RssSampler {
        RssSampler::start(self.pid())
    }

    /// Ends holtd with SIGKILL: a benchmark instance is disposable, and SIGTERM would wait for
    /// its running jobs.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Ends holtd with SIGTERM, as an operator would, and waits up to `limit` for it to exit;
    /// after that it is killed.
    pub(crate) async fn terminate(&mut self, limit: Duration) -> Result<(), BoxError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        if !sent.success() {
            let _ = child.kill();
            let _ = child.wait();
            return Err("kill -TERM failed".into());
        }
        let deadline = Instant::now() + limit;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("holtd did not exit within {limit:?} of SIGTERM").into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Holtd {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A value from `/proc/<pid>/status` given in kB, in bytes.
pub(crate) fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// Samples a process's `VmRSS` in the background and keeps the largest value seen.
#[derive(Debug)]
pub(crate) struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            loop {
                if let Some(rss) = proc_status_bytes(pid, "VmRSS") {
                    peak = peak.max(rss);
                }
                if flag.load(Ordering::Relaxed) {
                    return peak;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        RssSampler { stop, task }
    }

    /// Stops sampling and returns the largest `VmRSS` seen, in bytes.
    pub(crate) async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or(0)
    }
}

/// Where the holtd processes of a measurement keep their jobs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Store<'a> {
    /// One holtd on a SQLite file of its own.
    Sqlite,
    /// `nodes` holtd processes (nodes of one service) on one fresh database of this server.
    Postgres { server: &'a PgServer, nodes: usize },
}

impl Store<'_> {
    /// What to add to a figure's name in the table: nothing for SQLite, so that its rows read
    /// as they always have.
    pub(crate) fn suffix(&self) -> String {
        match self {
            Store::Sqlite => String::new(),
            Store::Postgres { nodes, .. } => format!(", PostgreSQL, {}", node_count(*nodes)),
        }
    }

    /// The figure's short name in notes: `T1`, or `T1 (PostgreSQL, 3 nodes)`.
    pub(crate) fn name(&self, figure: &str) -> String {
        match self {
            Store::Sqlite => figure.to_owned(),
            Store::Postgres { nodes, .. } => {
                format!("{figure} (PostgreSQL, {})", node_count(*nodes))
            }
        }
    }

    /// The tag of the scratch directory (and database).
    fn tag(&self, figure: &str) -> String {
        match self {
            Store::Sqlite => figure.to_owned(),
            Store::Postgres { nodes, .. } => format!("{figure}_{nodes}n"),
        }
    }
}

fn node_count(nodes: usize) -> String {
    if nodes == 1 {
        "1 node".to_owned()
    } else {
        format!("{nodes} nodes")
    }
}

/// The holtd processes of one measurement and what they stand on. When dropped, every process
/// is killed (fields drop in order), then the database is dropped, then the directory removed.
#[derive(Debug)]
pub(crate) struct Servers {
    nodes: Vec<Holtd>,
    _db: Option<ScratchDb>,
    _dir: HoltdDir,
}

impl Servers {
    /// Starts holtd on a fresh store holding these templates (`(name, toml)`), each process
    /// with the `extra` arguments. On PostgreSQL, every node gets its own `--node-name` and the
    /// same `--secrets-key` file; the first node starts alone, so that it creates the tables and
    /// the key before the others read them.
    pub(crate) async fn start(
        binary: &Path,
        store: Store<'_>,
        figure: &str,
        templates: &[(&str, String)],
        extra: &[&str],
    ) -> Result<Servers, BoxError> {
        let tag = store.tag(figure);
        let dir = HoltdDir::new(&tag, templates)?;
        match store {
            Store::Sqlite => {
                let holtd = Holtd::start(binary, &dir.db(), &dir.templates(), extra).await?;
                Ok(Servers {
                    nodes: vec![holtd],
                    _db: None,
                    _dir: dir,
                })
            }
            Store::Postgres { server, nodes } => {
                let db = server.scratch(&tag.to_ascii_lowercase()).await?;
                let key = dir.path().join("secrets.key");
                let key = key.to_str().ok_or("the scratch directory is not UTF-8")?;
                let mut started = Vec::with_capacity(nodes);
                for i in 1..=nodes {
                    let name = format!("node-{i}");
                    let args = [extra, &["--secrets-key", key, "--node-name", &name]].concat();
                    started.push(
                        Holtd::start(binary, Path::new(db.url()), &dir.templates(), &args).await?,
                    );
                }
                Ok(Servers {
                    nodes: started,
                    _db: Some(db),
                    _dir: dir,
                })
            }
        }
    }

    /// Every node's address, in node order.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|node| node.addr).collect()
    }

    /// The resident memory of all nodes together, in bytes.
    pub(crate) fn rss(&self) -> Option<u64> {
        self.nodes.iter().map(Holtd::rss).sum()
    }

    /// Ends every node with SIGKILL.
    pub(crate) fn kill9(&mut self) {
        for node in &mut self.nodes {
            node.kill9();
        }
    }
}
