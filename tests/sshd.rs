//! A real OpenSSH server for the tests: `sshd` on a loopback port with its own host key, one
//! authorized client key and a known-hosts file naming it, all in a temporary directory.
//!
//! It runs as the user running the tests and accepts only that user, with the client key.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's openssh-server puts the daemon.
const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd and the files a client needs to reach it.
#[derive(Debug)]
pub struct Sshd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The user it accepts: the one running the tests.
    pub user: String,
}

impl Sshd {
    /// Starts sshd, failing with a clear message when it is not installed.
    pub fn start() -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install Debian's openssh-server (.ci/run does)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |name: &str| dir.path().join(name);
        for (key, comment) in [
            ("host_key", "holt-test-host"),
            ("client_key", "holt-test-client"),
        ] {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(path(key))
                .status()
                .expect("run ssh-keygen");
            assert!(status.success(), "ssh-keygen failed");
        }
        std::fs::copy(path("client_key.pub"), path("authorized_keys")).expect("authorized_keys");
        // sshd refuses to run without its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(whoami);
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {pid}\n\
             AuthorizedKeysFile {auth}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
             AllowUsers {user}\nMaxSessions 100\nMaxStartups 100:30:200\nLogLevel ERROR\n",
            host = path("host_key").display(),
            pid = path("sshd.pid").display(),
            auth = path("authorized_keys").display(),
        );
        std::fs::write(path("sshd_config"), config).expect("sshd_config");
        let host_key = std::fs::read_to_string(path("host_key.pub")).expect("host key");
        let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        std::fs::write(
            path("known_hosts"),
            format!("[127.0.0.1]:{port} {}\n", host_key.join(" ")),
        )
        .expect("known_hosts");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(path("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(path("sshd.log")).expect("sshd.log"),
            ))
            .spawn()
            .expect("start sshd");
        let sshd = Sshd {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
            user,
        };
        sshd.wait_listening();
        sshd
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd never listened on {}: {}",
                self.addr,
                std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The directory holding its files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The client's private key.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// A known-hosts file naming this server's host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// A known-hosts file naming another key for this server, as after a host key change.
    pub fn wrong_known_hosts(&self) -> PathBuf {
        let other = self.dir.path().join("other_host_key");
        if !other.exists() {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&other)
                .status()
                .expect("run ssh-keygen");
            assert!(status.success());
        }
        let key = std::fs::read_to_string(other.with_extension("pub")).expect("other key");
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        let path = self.dir.path().join("wrong_known_hosts");
        std::fs::write(
            &path,
            format!("[127.0.0.1]:{} {}\n", self.addr.port(), key.join(" ")),
        )
        .expect("wrong_known_hosts");
        path
    }

    /// A holtd credentials file with one entry, `name`, for this server's user and key.
    pub fn credentials_toml(&self, name: &str) -> String {
        format!(
            "[{name}]\ntype = \"ssh\"\nuser = \"{}\"\nprivate_key_file = \"{}\"\n",
            self.user,
            self.client_key().display()
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
