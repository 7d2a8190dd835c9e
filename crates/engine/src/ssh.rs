//! Reaching an `ssh` server with the machine's OpenSSH client: the client's command line, the
//! remote command that runs a program in a process group of its own, and the commands that end
//! that group or close the job's connection.
//!
//! A job reaches each server over one connection: a master client ([`master`]) started on the
//! job's first operation there, in a process group of its own so that ending an operation's
//! group leaves it be, and closed when the job's run ends. Each operation is a client of that
//! master (`ControlPath`); should the master be gone, the client connects on its own. Host keys
//! are always checked (`StrictHostKeyChecking=yes`) and the client never prompts
//! (`BatchMode=yes`).
//! Nothing a job's variables hold reaches the client's own options: the host, port and user come
//! from the inventory and the credentials file, both checked when loaded; values reach the
//! remote side only quoted as single words of the remote command, or on standard input.

use std::path::{Path, PathBuf};
use std::time::Duration;

use holt_domain::{Credentials, Server, ServerType};

pub(crate) mod master;

/// The program the OpenSSH client is started as.
pub(crate) const SSH: &str = "ssh";

/// The first line the remote wrapper writes to standard error: its process group id, so that
/// the group can be ended from another session.
pub(crate) const PGID_MARK: &str = "HOLT-PGID ";

/// How one job reaches one `ssh` server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SshTarget {
    /// The server's name in the inventory, for messages.
    pub(crate) server: String,
    host: String,
    port: u16,
    user: String,
    key: PathBuf,
    known_hosts: Option<PathBuf>,
    connect_timeout: Duration,
    /// The socket of the job's master connection to the server, once there is one.
    control: Option<PathBuf>,
}

impl SshTarget {
    /// The target for `server`. Refused with a one-line reason when the server cannot be
    /// reached over SSH.
    pub(crate) fn new(
        server: &Server,
        credentials: &Credentials,
        known_hosts: Option<&Path>,
        connect_timeout: Duration,
    ) -> Result<SshTarget, String> {
        let name = server.name.as_str();
        if server.server_type != ServerType::Ssh {
            return Err(format!("server {name} is not an ssh server"));
        }
        let host = server
            .host_name
            .clone()
            .ok_or_else(|| format!("server {name} has no hostName"))?;
        let credentials_name = server
            .credentials_name
            .as_deref()
            .ok_or_else(|| format!("server {name} has no credentialsName"))?;
        let credential = credentials.get(credentials_name).ok_or_else(|| {
            format!("server {name}: no credentials named {credentials_name} are loaded (holtd --credentials)")
        })?;
        Ok(SshTarget {
            server: name.to_owned(),
            host,
            port: server.port,
            user: credential.user.clone(),
            key: credential.private_key_file.clone(),
            known_hosts: known_hosts.map(Path::to_path_buf),
            connect_timeout,
            control: None,
        })
    }

    /// The client's options, every one fixed by holtd.
    fn options(&self) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        let mut option = |text: String| {
            args.push("-o".to_owned());
            args.push(text);
        };
        option("BatchMode=yes".into());
        option("StrictHostKeyChecking=yes".into());
        if let Some(file) = &self.known_hosts {
            option(format!("UserKnownHostsFile={}", file.display()));
            option("GlobalKnownHostsFile=/dev/null".into());
        }
        option(format!(
            "ConnectTimeout={}",
            self.connect_timeout.as_secs().max(1)
        ));
        option("IdentitiesOnly=yes".into());
        option(format!("IdentityFile={}", self.key.display()));
        option("ServerAliveInterval=15".into());
        option("LogLevel=ERROR".into());
        args.extend([
            "-T".to_owned(),
            "-p".to_owned(),
            self.port.to_string(),
            "-l".to_owned(),
            self.user.clone(),
        ]);
        args
    }

    /// How long connecting may take.
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The client's arguments to run `remote` (one command line for the remote shell).
    pub(crate) fn run(&self, remote: &str) -> Vec<String> {
        let control = match &self.control {
            Some(path) => format!("ControlPath={}", path.display()),
            None => "ControlPath=none".to_owned(),
        };
        let mut args = vec![
            "-o".to_owned(),
            "ControlMaster=no".to_owned(),
            "-o".to_owned(),
            control,
        ];
        args.extend(self.options());
        args.extend(["--".to_owned(), self.host.clone(), remote.to_owned()]);
        args
    }

    /// This target, reached through the master connection listening at `socket`.
    pub(crate) fn through(mut self, socket: PathBuf) -> SshTarget {
        self.control = Some(socket);
        self
    }

    /// The arguments of a master client listening at `socket`: no remote command, and a local
    /// line ([`master::READY`]) on standard output once it is connected and listening.
    fn master(&self, socket: &Path) -> Vec<String> {
        let mut own = vec![
            "-o".to_owned(),
            "ControlMaster=yes".to_owned(),
            "-o".to_owned(),
            format!("ControlPath={}", socket.display()),
            "-o".to_owned(),
            "ControlPersist=no".to_owned(),
            "-o".to_owned(),
            "PermitLocalCommand=yes".to_owned(),
            "-o".to_owned(),
            format!("LocalCommand=echo {}", master::READY),
            "-N".to_owned(),
        ];
        own.extend(self.options());
        own.extend(["--".to_owned(), self.host.clone()]);
        own
    }
}

/// The remote command that runs `argv` in a new session, so that its whole process tree is one
/// group, after writing that group's id as the first line of standard error. Every word is
/// quoted for the remote shell: no value changes the command's shape.
///
/// A watchdog outside the program's reach (detached, its input and output closed) ends the
/// group should the connection end while the program runs: it watches the server's process of
/// the connection (the parent of the shell that sshd starts for the command, passed as the
/// wrapper's first argument), which ends with the connection. So a program outlives neither a
/// holtd that crashed (the next start ends its local clients, and with them the connection)
/// nor a connection that was lost. It looks once a second, and is gone within a second of the
/// program.
pub(crate) fn remote_exec(argv: &[String]) -> String {
    let wrapper = format!(
        "holt_link=$1; shift\n\
         printf '{PGID_MARK}%s\\n' \"$$\" >&2\n\
         ( ( trap '' TERM\n\
         while kill -0 \"$$\" 2>/dev/null && kill -0 \"$holt_link\" 2>/dev/null; do sleep 1; done\n\
         if kill -0 \"$$\" 2>/dev/null; then\n\
         kill -s TERM -- \"-$$\" 2>/dev/null; sleep {WATCHDOG_GRACE}; kill -s KILL -- \"-$$\" 2>/dev/null\n\
         fi ) </dev/null >/dev/null 2>&1 & )\n\
         exec \"$@\""
    );
    let mut words = vec![
        "setsid".to_owned(),
        "-w".to_owned(),
        "sh".to_owned(),
        "-c".to_owned(),
        wrapper,
        "holt".to_owned(),
    ];
    let mut command: Vec<String> = words.drain(..).map(|w| quote(&w)).collect();
    // Not quoted: the remote shell puts its parent's process id here.
    command.push("\"$PPID\"".to_owned());
    command.extend(argv.iter().map(|w| quote(w)));
    command.join(" ")
}

/// Seconds the watchdog of [`remote_exec`] gives a program between SIGTERM and SIGKILL.
const WATCHDOG_GRACE: u32 = 5;

/// The remote command that sends `signal` to a process group.
pub(crate) fn remote_kill(pgid: u32, signal: &str) -> String {
    format!("kill -s {signal} -- -{pgid} 2>/dev/null; true")
}

/// A word for the remote POSIX shell: single-quoted, a single quote written as `'\''`.
pub(crate) fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The reason an `ssh` client gave for failing to reach a server (its exit code 255), from the
/// last line it wrote to standard error; never a secret (the client is told `LogLevel=ERROR`
/// and holds no password).
pub(crate) fn failure_reason(stderr_lines: &[String]) -> String {
    stderr_lines
        .iter()
        .rev()
        .find(|line| !line.trim().is_empty())
        .map(|line| line.trim().to_owned())
        .unwrap_or_else(|| "the SSH client failed without saying why".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh_server(name: &str, host: &str, port: u16, credentials: &str) -> Server {
        Server {
            name: name.parse().unwrap(),
            server_type: ServerType::Ssh,
            host_name: Some(host.to_owned()),
            port,
            credentials_name: Some(credentials.to_owned()),
            ..Server::localhost()
        }
    }

    fn target() -> SshTarget {
        let server = ssh_server("web1", "127.0.0.1", 2222, "deploy");
        let credentials = Credentials::from_toml(
            "[deploy]\ntype = \"ssh\"\nuser = \"deploy\"\nprivate_key_file = \"/k/id\"\n",
        )
        .unwrap();
        SshTarget::new(
            &server,
            &credentials,
            Some(Path::new("/etc/holt/known_hosts")),
            Duration::from_secs(7),
        )
        .unwrap()
    }

    #[test]
    fn the_client_is_strict_and_never_prompts() {
        let args = target().run("true");
        let joined = args.join(" ");
        for needed in [
            "-o BatchMode=yes",
            "-o StrictHostKeyChecking=yes",
            "-o UserKnownHostsFile=/etc/holt/known_hosts",
            "-o ConnectTimeout=7",
            "-o IdentityFile=/k/id",
            "-o ControlMaster=no",
            "-p 2222 -l deploy -- 127.0.0.1 true",
        ] {
            assert!(joined.contains(needed), "{needed} missing from {joined}");
        }
        assert_eq!(args.last().map(String::as_str), Some("true"));
    }

    #[test]
    fn remote_words_are_quoted_whole() {
        let hostile = [
            "echo".to_owned(),
            "'; touch /tmp/x; '".to_owned(),
            "$(id)".to_owned(),
        ];
        let remote = remote_exec(&hostile);
        assert!(
            remote.ends_with(r"'echo' ''\''; touch /tmp/x; '\''' '$(id)'"),
            "{remote}"
        );
        assert!(remote.starts_with("'setsid' '-w' 'sh' '-c' "));
        // The remote shell reads it back as the same words.
        #[allow(clippy::disallowed_methods)]
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("set -- {remote}; shift 7; printf '%s\\n' \"$@\""),
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "echo\n'; touch /tmp/x; '\n$(id)\n"
        );
    }

    #[test]
    fn unknown_credentials_are_named() {
        let server = ssh_server("db", "h", 22, "gone");
        let error = SshTarget::new(
            &server,
            &Credentials::default(),
            None,
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(error.contains("no credentials named gone"), "{error}");
    }
}
