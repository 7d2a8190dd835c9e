//! holtd: the Holt server. It reads its configuration, opens the store, loads the templates,
//! starts the engine and serves HTTP until SIGINT or SIGTERM; nothing else lives here.

mod migrate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use holt_domain::TemplateCatalog;
use holt_engine::{Engine, EngineConfig};
use holt_http::HttpConfig;
use holt_storage::templates::{self, LoadError};
use holt_storage::{Durability, JobStore, SqliteConfig, SqliteStore};
use holt_storage_postgres::{PgConfig, PgStore};

/// The port holtd listens on when `--listen` is not given.
const DEFAULT_LISTEN: &str = "127.0.0.1:8446";

#[derive(Debug, Parser)]
#[command(
    name = "holtd",
    version,
    about = "Holt: a job orchestration server speaking Otter's Job Orchestration API"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validates every template in a directory and prints all problems; exits non-zero if any.
    Check {
        /// The templates directory.
        #[arg(long, default_value = "templates")]
        templates: PathBuf,
        /// A credentials file to validate too.
        #[arg(long)]
        credentials: Option<PathBuf>,
        /// A database whose inventory the templates' targets and the servers' credentials are
        /// checked against.
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Copies a SQLite database (jobs with their tokens, logs, idempotency keys, servers, roles
    /// and environments) into an empty PostgreSQL database, for a cluster of nodes. Stop the
    /// server using the SQLite file first.
    Migrate {
        /// The SQLite database file.
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL database: postgres://USER@HOST:PORT/DBNAME.
        #[arg(long)]
        to: String,
    },
}

/// The defaults, each defined once in the configuration it belongs to and shown by `--help`.
fn engine_defaults() -> EngineConfig {
    EngineConfig::default()
}

fn http_defaults() -> HttpConfig {
    HttpConfig::default()
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The address to listen on; port 0 picks a free port. The bound address is printed.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The database: a SQLite file, created when missing, or a PostgreSQL URL
    /// (`postgres://USER@HOST:PORT/DBNAME` or `postgresql://...`, any libpq-style URL), whose
    /// tables are created when missing.
    #[arg(
        long,
        env = "HOLT_DB",
        hide_env_values = true,
        default_value = "holt.db"
    )]
    db: PathBuf,
    /// The key that seals secret variable values in the database: 64 hexadecimal digits,
    /// created (mode 0600) when missing. Default: `holt.secrets.key` in the SQLite database's
    /// directory; required with PostgreSQL. A key file other users may read is refused.
    #[arg(long)]
    secrets_key: Option<PathBuf>,
    /// The directory of template files (`NAME.toml`). SIGHUP loads it again.
    #[arg(long, default_value = "templates")]
    templates: PathBuf,
    /// The most jobs that execute at once; the rest wait as Pending.
    #[arg(long, default_value_t = engine_defaults().max_concurrent_jobs)]
    max_concurrent_jobs: usize,
    /// full: an acknowledged write is on disk (with PostgreSQL: as the server's settings
    /// promise). normal: it survives a crash of holtd but the last moments may be lost on power
    /// loss (with PostgreSQL: should the server crash; `synchronous_commit = off`).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Full)]
    durability: DurabilityArg,
    /// Seconds that shutdown lets running jobs go on before stopping them.
    #[arg(long, default_value_t = engine_defaults().shutdown_grace.as_secs())]
    shutdown_grace: u64,
    /// Seconds a job's processes get between SIGTERM and SIGKILL when they are ended.
    #[arg(long, default_value_t = engine_defaults().kill_grace.as_secs())]
    kill_grace: u64,
    /// The most jobs that may wait to run; further triggers get 503 with Retry-After.
    #[arg(long, default_value_t = engine_defaults().max_pending_jobs)]
    max_pending_jobs: usize,
    /// The most log lines one job keeps; later lines are dropped after a WARN line.
    #[arg(long, default_value_t = engine_defaults().max_log_lines_per_job)]
    max_log_lines_per_job: u64,
    /// The longest log line kept, in bytes; longer lines are cut and marked.
    #[arg(long, default_value_t = engine_defaults().max_log_line_bytes)]
    max_log_line_bytes: usize,
    /// The most bytes of log text one job keeps; later lines are dropped after a WARN line.
    #[arg(long, default_value_t = engine_defaults().max_log_bytes_per_job)]
    max_log_bytes_per_job: u64,
    /// The largest request head (request line and headers), in bytes; larger gets 431.
    #[arg(long, default_value_t = http_defaults().max_head_bytes)]
    max_head_bytes: usize,
    /// The largest request body, in bytes; larger gets 413.
    #[arg(long, default_value_t = http_defaults().max_body_bytes)]
    max_body_bytes: usize,
    /// The most connections served at once; further clients wait to be accepted.
    #[arg(long, default_value_t = http_defaults().max_connections)]
    max_connections: usize,
    /// The most variables one trigger may carry.
    #[arg(long, default_value_t = http_defaults().max_variables)]
    max_variables: usize,
    /// The longest variable value, in bytes.
    #[arg(long, default_value_t = http_defaults().max_variable_bytes)]
    max_variable_bytes: usize,
    /// Seconds a client may take to send a request head before the connection is closed.
    #[arg(long, default_value_t = http_defaults().header_read_timeout.as_secs())]
    header_read_timeout: u64,
    /// Days finished jobs and their logs are kept; a template's `retain_days` overrides it.
    /// Without it, finished jobs are kept forever.
    #[arg(long)]
    retain_days: Option<u32>,
    /// Seconds between retention runs (the first runs at start).
    #[arg(long, default_value_t = engine_defaults().retention_interval.as_secs())]
    retention_interval: u64,
    /// The SHA-256 hex digest of an admin key, which opens the web UI, the infrastructure API
    /// and the operators' endpoints; repeatable (or comma-separated in the environment
    /// variable). Without any admin key, those answer 403 and the web UI is off.
    #[arg(
        long = "admin-key-sha256",
        env = "HOLT_ADMIN_KEY_SHA256",
        hide_env_values = true,
        value_delimiter = ','
    )]
    admin_key_sha256: Vec<String>,
    /// A file holding an admin key (its text, trimmed), created with a new random key (mode
    /// 0600) when missing: the simplest way to enable the web UI. It adds to
    /// --admin-key-sha256. A file other users may read is refused.
    #[arg(long, env = "HOLT_ADMIN_KEY_FILE")]
    admin_key_file: Option<PathBuf>,
    /// The credentials file (TOML): named entries a server's credentialsName refers to.
    /// SIGHUP loads it again.
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// The known-hosts file SSH host keys are checked against (default: OpenSSH's own default
    /// for the user running holtd). An unknown or changed host key fails the work.
    #[arg(long)]
    ssh_known_hosts: Option<PathBuf>,
    /// Seconds an SSH connection may take to be established.
    #[arg(long, default_value_t = engine_defaults().ssh_connect_timeout.as_secs())]
    ssh_connect_timeout: u64,
    /// This node's name, when several holtd share a PostgreSQL database (default: the host's
    /// name). Nodes on one machine need names of their own.
    #[arg(long, env = "HOLT_NODE_NAME")]
    node_name: Option<String>,
    /// Seconds a node's lease lasts, when several holtd share a PostgreSQL database: a node
    /// that stops renewing it is taken for dead that long after its last renewal, and another
    /// node settles its jobs.
    #[arg(long, default_value_t = engine_defaults().node_lease.as_secs())]
    node_lease_seconds: u64,
    /// Seconds a client may take to send a request body before it gets 408.
    #[arg(long, default_value_t = http_defaults().body_read_timeout.as_secs())]
    body_read_timeout: u64,
    /// The most followers (`follow=true`) of one job at once; more get 503 with Retry-After.
    #[arg(long, default_value_t = HttpConfig::default().max_followers_per_job)]
    max_followers_per_job: usize,
    /// The most status calls that wait and logs that follow at once, over all jobs; more get
    /// 503 with Retry-After.
    #[arg(long, default_value_t = HttpConfig::default().max_long_polls)]
    max_long_polls: usize,
    /// Seconds a followed log streams at most; then its body ends and the client goes on with
    /// `offset`.
    #[arg(long, default_value_t = HttpConfig::default().max_stream_duration.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    max_stream_seconds: u64,
    /// A PEM file of CA certificates trusted for `https://` webhooks, besides the public web
    /// PKI roots (for internal receivers). Certificates are always verified.
    #[arg(long, env = "HOLT_WEBHOOK_CA_FILE")]
    webhook_ca_file: Option<PathBuf>,
}

/// Seconds as a duration, refusing values no clock can add (the configuration's own ranges
/// then name the setting).
fn seconds(value: u64) -> Duration {
    Duration::from_secs(value.min(u64::from(u32::MAX)))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DurabilityArg {
    Full,
    Normal,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOLT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cli.command {
        Some(Command::Check {
            templates,
            credentials,
            db,
        }) => check(&templates, credentials.as_deref(), db.as_deref()),
        Some(Command::Migrate { from, to }) => migrate::run(&from, &to),
        None => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .thread_stack_size(holt_engine::WORKER_STACK_BYTES)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("holtd: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(cli.serve)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("holtd: {message}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn load_templates(dir: &Path) -> Result<TemplateCatalog, LoadError> {
    templates::load_dir(dir, holt_engine::check_template)
}

fn check(dir: &Path, credentials: Option<&Path>, db: Option<&Path>) -> ExitCode {
    let mut ok = true;
    let catalog = match load_templates(dir) {
        Ok(catalog) => {
            println!("{}: {} templates OK", dir.display(), catalog.len());
            print_schedules(&catalog);
            Some(catalog)
        }
        Err(e) => {
            eprintln!("{e}");
            ok = false;
            None
        }
    };
    let credentials = match credentials {
        Some(path) => match holt_storage::credentials::load_file(path) {
            Ok(entries) => {
                println!("{}: {} credentials OK", path.display(), entries.len());
                Some(entries)
            }
            Err(e) => {
                eprintln!("{e}");
                ok = false;
                None
            }
        },
        None => None,
    };
    if let Some(db) = db {
        match read_inventory(db) {
            Ok(inventory) => {
                let targets = catalog
                    .iter()
                    .flat_map(|c| c.iter())
                    .map(|t| (t.name.as_str(), &t.targets));
                let problems =
                    holt_domain::infra_problems(&inventory, targets, credentials.as_ref());
                for problem in &problems {
                    eprintln!("{}: {problem}", shown_db(db));
                }
                if problems.is_empty() {
                    println!(
                        "{}: {} servers, {} roles, {} environments OK",
                        shown_db(db),
                        inventory.servers().count(),
                        inventory.roles().count(),
                        inventory.environments().count()
                    );
                } else {
                    ok = false;
                }
            }
            Err(e) => {
                eprintln!("{}: {e}", shown_db(db));
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Each scheduled template's schedule and its next three slots, in name order.
fn print_schedules(catalog: &TemplateCatalog) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut scheduled: Vec<_> = catalog
        .iter()
        .filter_map(|t| Some((t.name.as_str(), t.schedule.as_ref()?)))
        .collect();
    scheduled.sort_by_key(|(name, _)| *name);
    for (name, schedule) in scheduled {
        let next: Vec<String> = schedule
            .upcoming(now, 3)
            .into_iter()
            .map(|slot| schedule.format(slot))
            .collect();
        println!(
            "{name}: schedule {schedule}, missed = {}; next {}",
            schedule.missed().as_str(),
            next.join(", ")
        );
    }
}

/// How a `--db` value is shown: a PostgreSQL URL without its password.
fn shown_db(db: &Path) -> String {
    match db.to_str() {
        Some(url) if holt_storage_postgres::is_postgres_url(url) => {
            holt_storage_postgres::redacted(url)
        }
        _ => db.display().to_string(),
    }
}

/// The inventory of an existing database (brought to this build's schema, as a start would).
fn read_inventory(db: &Path) -> Result<holt_domain::Inventory, String> {
    let postgres = db
        .to_str()
        .filter(|db| holt_storage_postgres::is_postgres_url(db));
    if postgres.is_none() && !db.is_file() {
        return Err("no such database".to_owned());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let store: Arc<dyn JobStore> = match postgres {
            Some(url) => Arc::new(
                PgStore::connect(url, &PgConfig::default())
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            None => Arc::new(SqliteStore::open(&SqliteConfig::new(db)).map_err(|e| e.to_string())?),
        };
        store.inventory().await.map_err(|e| e.to_string())
    })
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let catalog =
        load_templates(&args.templates).map_err(|e| format!("templates not loaded:\n{e}"))?;
    let (engine_config, http_config) = configs(&args)?;
    let webhooks = match &args.webhook_ca_file {
        Some(path) => holt_http::WebhookClient::with_ca_file(path)?,
        None => holt_http::WebhookClient::new(),
    };
    let http_ui_on = !http_config.admin_keys.is_empty();
    let credentials = match &args.credentials {
        Some(path) => holt_storage::credentials::load_file(path)
            .map_err(|e| format!("credentials not loaded:\n{e}"))?,
        None => holt_domain::Credentials::default(),
    };
    let postgres = args
        .db
        .to_str()
        .filter(|db| holt_storage_postgres::is_postgres_url(db));
    let key_path = match (&args.secrets_key, postgres) {
        (Some(path), _) => path.clone(),
        (None, None) => args
            .db
            .parent()
            .unwrap_or(Path::new(""))
            .join("holt.secrets.key"),
        // A key beside the database has no place when the database is on a server, and every
        // node on one database must seal with the same key: the operator says where it is.
        (None, Some(_)) => {
            return Err(
                "with a PostgreSQL database, give --secrets-key FILE: the key that seals secret \
                 values, kept outside the database (every node on the database uses the same one)"
                    .to_owned(),
            );
        }
    };
    let secrets_key = holt_engine::SecretsKey::load_or_create(&key_path)
        .map_err(|e| format!("cannot use the secrets key {e}"))?;
    let store = open_store(&args, postgres).await?;
    let engine_config = EngineConfig {
        secrets_key,
        ..engine_config
    };
    // Processes that escape a job's process group are re-parented to holtd, which ends them.
    if let Err(e) = holt_engine::adopt_escaped_processes() {
        tracing::warn!(error = %e, "cannot adopt processes that escape their job; they may outlive it");
    }
    let engine = Engine::start(store, catalog, engine_config)
        .await
        .map_err(|e| format!("cannot start the engine: {e}"))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    // Scripts and tests read the bound address from this line (port 0 picks a free port).
    println!("holtd listening on http://{addr}");
    if http_ui_on {
        match &args.admin_key_file {
            Some(file) => println!(
                "web UI: http://{addr}/ (sign in with the admin key in {})",
                file.display()
            ),
            None => println!("web UI: http://{addr}/ (sign in with an admin key)"),
        }
    } else {
        println!("{}", holt_http::UI_OFF);
    }
    tracing::info!(%addr, templates = engine.templates().len(), "holtd ready");

    engine.set_credentials(credentials);
    engine.deliver_webhooks(Arc::new(webhooks));
    tokio::spawn(reload_on_hangup(
        engine.clone(),
        args.templates.clone(),
        args.credentials.clone(),
    ));
    holt_http::serve(listener, engine.clone(), http_config, shutdown_signal()).await;
    tracing::info!("stopped accepting; waiting for running jobs");
    tokio::spawn(async {
        shutdown_signal().await;
        tracing::warn!("second signal: exiting at once");
        std::process::exit(1);
    });
    engine.shutdown().await;
    tracing::info!("holtd stopped");
    Ok(())
}

/// Opens the store `--db` names: PostgreSQL for a `postgres://` or `postgresql://` URL, the
/// SQLite file otherwise. A message names the database without its password.
async fn open_store(args: &ServeArgs, postgres: Option<&str>) -> Result<Arc<dyn JobStore>, String> {
    let durability = match args.durability {
        DurabilityArg::Full => Durability::Full,
        DurabilityArg::Normal => Durability::Normal,
    };
    if let Some(url) = postgres {
        let config = PgConfig {
            durability,
            ..PgConfig::default()
        };
        let store = PgStore::connect(url, &config)
            .await
            .map_err(|e| format!("cannot open {}: {e}", holt_storage_postgres::redacted(url)))?;
        tracing::info!(db = %holt_storage_postgres::redacted(url), "the database is PostgreSQL");
        return Ok(Arc::new(store));
    }
    let mut config = SqliteConfig::new(&args.db);
    config.durability = durability;
    let store = SqliteStore::open(&config)
        .map_err(|e| format!("cannot open {}: {e}", args.db.display()))?;
    Ok(Arc::new(store))
}

/// The engine's and the HTTP server's configuration from the command line, refused whole when
/// any setting is outside its sensible range.
fn configs(args: &ServeArgs) -> Result<(EngineConfig, HttpConfig), String> {
    let engine_config = EngineConfig {
        max_concurrent_jobs: args.max_concurrent_jobs,
        shutdown_grace: seconds(args.shutdown_grace),
        kill_grace: seconds(args.kill_grace),
        max_pending_jobs: args.max_pending_jobs,
        max_log_lines_per_job: args.max_log_lines_per_job,
        max_log_line_bytes: args.max_log_line_bytes,
        max_log_bytes_per_job: args.max_log_bytes_per_job,
        retain_days: args.retain_days,
        retention_interval: seconds(args.retention_interval),
        ssh_known_hosts: args.ssh_known_hosts.clone(),
        ssh_connect_timeout: seconds(args.ssh_connect_timeout),
        node_name: args.node_name.clone(),
        node_lease: seconds(args.node_lease_seconds),
        ..EngineConfig::default()
    };
    let http_config = HttpConfig {
        max_head_bytes: args.max_head_bytes,
        max_body_bytes: args.max_body_bytes,
        max_connections: args.max_connections,
        max_variables: args.max_variables,
        max_variable_bytes: args.max_variable_bytes,
        header_read_timeout: seconds(args.header_read_timeout),
        body_read_timeout: seconds(args.body_read_timeout),
        admin_keys: admin_keys(&args.admin_key_sha256, args.admin_key_file.as_deref())?,
        max_followers_per_job: args.max_followers_per_job,
        max_long_polls: args.max_long_polls,
        max_stream_duration: seconds(args.max_stream_seconds),
        ..HttpConfig::default()
    };
    let mut problems = engine_config.problems();
    problems.extend(http_config.problems());
    if !problems.is_empty() {
        return Err(format!(
            "refusing to start with these settings:\n  {}",
            problems.join("\n  ")
        ));
    }
    Ok((engine_config, http_config))
}

/// The admin keys from their hex digests and the admin key file; a malformed one is refused,
/// never skipped.
fn admin_keys(digests: &[String], file: Option<&Path>) -> Result<Vec<holt_domain::ApiKey>, String> {
    let mut keys = digests
        .iter()
        .filter(|d| !d.trim().is_empty())
        .map(|digest| {
            holt_domain::ApiKey::from_sha256_hex(digest).map_err(|_| {
                "--admin-key-sha256 must be 64 hexadecimal digits (the SHA-256 digest of the key)"
                    .to_owned()
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if let Some(path) = file {
        keys.push(holt_domain::ApiKey::from_plain(&admin_key_file(path)?));
    }
    Ok(keys)
}

/// The key in the admin key file, which is created with a new random key when missing.
fn admin_key_file(path: &Path) -> Result<String, String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |reason: String| format!("admin key file {}: {reason}", path.display());
    match std::fs::metadata(path) {
        Ok(meta) => {
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(fail(
                    "other users may read or write it; make it readable by its owner only (chmod 600)"
                        .into(),
                ));
            }
            let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
            let key = text.trim();
            if key.is_empty() {
                return Err(fail("it is empty".into()));
            }
            Ok(key.to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = holt_engine::random_key_text();
            let mut created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| fail(e.to_string()))?;
            created
                .write_all(format!("{key}\n").as_bytes())
                .and_then(|()| created.sync_all())
                .map_err(|e| fail(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

/// Loads the templates again on every SIGHUP. A template whose file fails to load keeps its
/// earlier version, and every problem is logged; requests are served throughout.
async fn reload_on_hangup(engine: Engine, dir: PathBuf, credentials: Option<PathBuf>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => hangup,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; templates cannot be reloaded");
            return;
        }
    };
    while hangup.recv().await.is_some() {
        let current = engine.templates();
        let load_dir = dir.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            templates::reload_dir(&load_dir, holt_engine::check_template, &current)
        })
        .await;
        let Ok((catalog, problems)) = loaded else {
            tracing::error!("template reload failed unexpectedly; the loaded templates stay");
            continue;
        };
        for problem in &problems {
            tracing::error!(%problem, "template not reloaded");
        }
        let count = catalog.len();
        engine.reload_templates(catalog);
        tracing::info!(
            templates = count,
            problems = problems.len(),
            "templates reloaded"
        );
        if let Some(path) = &credentials {
            // A credentials file that fails to load keeps the entries loaded before.
            match holt_storage::credentials::load_file(path) {
                Ok(entries) => {
                    let count = entries.len();
                    engine.set_credentials(entries);
                    tracing::info!(credentials = count, "credentials reloaded");
                }
                Err(e) => {
                    for problem in &e.problems {
                        tracing::error!(%problem, "credentials not reloaded; the loaded ones stay");
                    }
                }
            }
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
