//! How the engine runs jobs: every limit, with its default defined here once.

use std::time::Duration;

/// How the engine runs jobs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The most jobs that execute at once; the rest wait, `Pending`, in trigger order.
    pub max_concurrent_jobs: usize,
    /// How long shutdown lets running jobs go on before ending them.
    pub shutdown_grace: Duration,
    /// How long a job's processes get between SIGTERM and SIGKILL when they are ended.
    pub kill_grace: Duration,
    /// The most jobs that may wait to run; a trigger beyond it is refused.
    pub max_pending_jobs: usize,
    /// The most log entries one job keeps; later ones are dropped after one line saying so.
    pub max_log_lines_per_job: u64,
    /// The longest log entry kept, in bytes; longer ones are cut and marked.
    pub max_log_line_bytes: usize,
    /// The most bytes of log text one job keeps; later lines are dropped after one line saying so.
    pub max_log_bytes_per_job: u64,
    /// How long a trigger waits for the store to confirm the new job.
    pub store_timeout: Duration,
    /// How long an idempotency key stands for its first job.
    pub idempotency_window: Duration,
    /// How many days finished jobs are kept (a template's `retain_days` overrides it); `None`
    /// keeps them forever.
    pub retain_days: Option<u32>,
    /// How often retention runs.
    pub retention_interval: Duration,
    /// The known-hosts file every SSH connection checks the server's host key against; `None`
    /// is OpenSSH's own default for the user running holtd.
    pub ssh_known_hosts: Option<std::path::PathBuf>,
    /// How long an SSH connection may take to be established.
    pub ssh_connect_timeout: Duration,
    /// Seals secret variable values before they are stored and keys idempotency fingerprints
    /// (see the `secrets` module). The default is a random key for this process only.
    pub secrets_key: crate::secrets::SecretsKey,
    /// This node's name when the store is shared by several nodes (`None`: the host's name).
    /// Nodes on one machine need names of their own: the name marks the node's processes.
    pub node_name: Option<String>,
    /// How long a node's lease lasts without renewal, when the store is shared: a node that
    /// stops renewing is taken for dead this long after its last renewal, and its jobs are
    /// settled by the others.
    pub node_lease: Duration,
    /// The wall clock schedules are read by: the system's, or a test's.
    pub clock: crate::Clock,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_concurrent_jobs: 8,
            shutdown_grace: Duration::from_secs(30),
            kill_grace: Duration::from_secs(5),
            max_pending_jobs: 100_000,
            max_log_lines_per_job: 10_000_000,
            max_log_line_bytes: 64 * 1024,
            max_log_bytes_per_job: 1024 * 1024 * 1024,
            store_timeout: Duration::from_secs(10),
            idempotency_window: Duration::from_secs(24 * 60 * 60),
            retain_days: None,
            retention_interval: Duration::from_secs(60),
            ssh_known_hosts: None,
            ssh_connect_timeout: Duration::from_secs(10),
            secrets_key: crate::secrets::SecretsKey::default(),
            node_name: None,
            node_lease: Duration::from_secs(5),
            clock: crate::Clock::System,
        }
    }
}

/// The longest any of the engine's durations may be: a week. Longer values are typing mistakes,
/// and values near `u64::MAX` seconds overflow the clock's arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The most jobs that may execute at once on one server.
pub(crate) const MAX_CONCURRENT_JOBS: usize = 100_000;

/// The most jobs that may wait to run.
pub(crate) const MAX_PENDING_JOBS: usize = 100_000_000;

/// The longest log line a job may keep: 16 MiB.
pub(crate) const MAX_LOG_LINE_BYTES: usize = 16 * 1024 * 1024;

/// The most days finished jobs may be kept before retention deletes them: a hundred years.
pub(crate) const MAX_RETAIN_DAYS: u32 = 36_500;

impl EngineConfig {
    /// Every setting outside its sensible range, one line each, naming the setting as the
    /// command line spells it. Empty when the configuration can run.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut range = |name: &str, value: u128, min: u128, max: u128, unit: &str| {
            if value < min || value > max {
                problems.push(format!(
                    "--{name} must be from {min} to {max}{unit}, given {value}"
                ));
            }
        };
        let week = MAX_DURATION.as_secs() as u128;
        range(
            "max-concurrent-jobs",
            self.max_concurrent_jobs as u128,
            1,
            MAX_CONCURRENT_JOBS as u128,
            "",
        );
        range(
            "shutdown-grace",
            self.shutdown_grace.as_secs() as u128,
            0,
            week,
            " seconds",
        );
        range(
            "kill-grace",
            self.kill_grace.as_secs() as u128,
            0,
            week,
            " seconds",
        );
        range(
            "max-pending-jobs",
            self.max_pending_jobs as u128,
            1,
            MAX_PENDING_JOBS as u128,
            "",
        );
        range(
            "max-log-lines-per-job",
            u128::from(self.max_log_lines_per_job),
            1,
            u128::from(u64::MAX / 2),
            "",
        );
        range(
            "max-log-line-bytes",
            self.max_log_line_bytes as u128,
            1,
            MAX_LOG_LINE_BYTES as u128,
            "",
        );
        range(
            "max-log-bytes-per-job",
            u128::from(self.max_log_bytes_per_job),
            1,
            u128::from(u64::MAX / 2),
            "",
        );
        range(
            "store-timeout",
            self.store_timeout.as_secs() as u128,
            1,
            week,
            " seconds",
        );
        range(
            "idempotency-window",
            self.idempotency_window.as_secs() as u128,
            1,
            week * 52,
            " seconds",
        );
        if let Some(days) = self.retain_days {
            range(
                "retain-days",
                u128::from(days),
                1,
                u128::from(MAX_RETAIN_DAYS),
                "",
            );
        }
        range(
            "retention-interval",
            self.retention_interval.as_secs() as u128,
            1,
            week,
            " seconds",
        );
        range(
            "ssh-connect-timeout",
            self.ssh_connect_timeout.as_secs() as u128,
            1,
            600,
            " seconds",
        );
        range(
            "node-lease-seconds",
            self.node_lease.as_secs() as u128,
            1,
            300,
            " seconds",
        );
        if let Some(name) = &self.node_name
            && !crate::cluster::is_node_name(name)
        {
            problems.push(format!(
                "--node-name must be 1 to 64 letters, digits, '.', '_' or '-', given {name:?}"
            ));
        }
        problems
    }
}
