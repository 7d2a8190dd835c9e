//! PostgreSQL for the benchmark: the server `--db` names, throwaway databases on it (one per
//! measurement, dropped afterwards), and baseline P, raw PostgreSQL durable group commits of
//! job-sized rows from tokio-postgres, the counterpart of baseline S.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::NoTls;

use crate::BoxError;
use crate::baseline::{self, GroupCommit, Insert, MAX_BATCH, PLAN_100};

/// Whether `url` names a PostgreSQL database, as holtd's `--db` tells them apart.
pub(crate) fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The server the PostgreSQL figures run on, reached through a URL of a database on it where
/// the user may create databases.
#[derive(Debug)]
pub(crate) struct PgServer {
    admin_url: String,
    /// The URL without its password, for the report.
    pub(crate) shown: String,
    /// The server's version and durability settings, for the report.
    pub(crate) settings: String,
}

impl PgServer {
    /// Connects once to check that the server answers, and reads its settings.
    pub(crate) async fn open(url: &str) -> Result<PgServer, BoxError> {
        if !is_postgres_url(url) {
            return Err("--db takes a postgres:// or postgresql:// URL".into());
        }
        let shown = redacted(url)?;
        let client = connect(url)
            .await
            .map_err(|e| format!("no PostgreSQL server answers at {shown}: {e}"))?;
        let mut settings = Vec::new();
        for name in [
            "server_version",
            "synchronous_commit",
            "fsync",
            "wal_sync_method",
        ] {
            let row = client.query_one(&format!("SHOW {name}"), &[]).await?;
            settings.push(format!("{name} {}", row.get::<_, String>(0)));
        }
        Ok(PgServer {
            admin_url: url.to_owned(),
            shown,
            settings: settings.join(", "),
        })
    }

    /// Creates an empty database for one measurement.
    pub(crate) async fn scratch(&self, tag: &str) -> Result<ScratchDb, BoxError> {
        static MADE: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "holt_bench_{}_{}_{tag}_{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed),
            random_suffix()
        );
        let client = connect(&self.admin_url).await?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| {
                format!(
                    "cannot create the database {name} on {}: {} (the user needs CREATEDB)",
                    self.shown,
                    describe(&e)
                )
            })?;
        Ok(ScratchDb {
            admin_url: self.admin_url.clone(),
            url: with_database(&self.admin_url, &name),
            name,
        })
    }
}

/// A database created for one measurement, dropped (with whatever is still connected to it)
/// when this is dropped.
#[derive(Debug)]
pub(crate) struct ScratchDb {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDb {
    /// The URL of the database.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run on the benchmark's runtime, which cannot be blocked on; a thread with a
        // runtime of its own does the work, and is waited for, so that the database is gone
        // before the next measurement starts.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let client = connect(&admin_url).await.map_err(|e| e.to_string())?;
                client.batch_execute(&sql).await.map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("holt-bench: cannot drop the database {}: {e}", self.name),
            Err(_) => eprintln!("holt-bench: dropping the database {} panicked", self.name),
        }
    }
}

/// A connection to `url`, served by a task of its own.
async fn connect(url: &str) -> Result<tokio_postgres::Client, BoxError> {
    let mut config: tokio_postgres::Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    let (client, connection) = config.connect(NoTls).await.map_err(|e| describe(&e))?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped; a lost connection shows as the
        // error of the statement that needed it.
        let _ = connection.await;
    });
    Ok(client)
}

/// An error with its causes, `outer: inner: ...`: tokio-postgres says "error connecting to
/// server" and keeps the reason (refused, timed out, authentication) in its source.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `postgres://USER@HOST:PORT/DBNAME` without the password, or an error for a URL that cannot
/// be read.
fn redacted(url: &str) -> Result<String, BoxError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|_| "--db is not a PostgreSQL URL that can be read")?;
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = match ports {
                [] => 5432,
                [one] => *one,
                many => many.get(i).copied().unwrap_or(5432),
            };
            match host {
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                tokio_postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    Ok(format!(
        "postgres://{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    ))
}

/// `url` with its database replaced by `name`, its query (options) kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(at) => url.split_at(at),
        None => (url, ""),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// Sixteen hexadecimal digits, different for every call: the standard library's randomly keyed
/// hasher over the time.
fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(now);
    format!("{:016x}", hasher.finish())
}

/// The `jobs` table as holtd's PostgreSQL migrations leave it, with all its indexes, so that a
/// baseline row costs what a job row of holtd costs.
const JOBS_SCHEMA: &str = "
    CREATE TABLE jobs (
        id          BIGINT   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        template    TEXT     NOT NULL,
        plan        TEXT     NOT NULL,
        variables   TEXT     NOT NULL,
        status      SMALLINT NOT NULL,
        created_ms  BIGINT   NOT NULL,
        started_ms  BIGINT,
        finished_ms BIGINT,
        owner       BIGINT
    );
    CREATE INDEX jobs_unfinished ON jobs (status, id) WHERE status IN (0, 1);
    CREATE INDEX jobs_finished ON jobs (finished_ms) WHERE finished_ms IS NOT NULL;
    CREATE INDEX jobs_owned ON jobs (owner) WHERE owner IS NOT NULL;
    CREATE INDEX jobs_template_unfinished ON jobs (template, status, id) WHERE status IN (0, 1);";

/// Baseline P: `producers` concurrent tasks each insert one job-sized row and wait for its
/// acknowledgement, again and again; one writer task takes whatever is queued, inserts it in
/// one transaction (one prepared `INSERT ... RETURNING id` after another, as holtd's writer
/// does), commits with the server's `synchronous_commit`, and only then acknowledges each row.
/// The rows go to a database of their own, dropped afterwards.
pub(crate) async fn group_commit(
    server: &PgServer,
    producers: usize,
    duration: Duration,
) -> Result<GroupCommit, BoxError> {
    let db = server.scratch("p").await?;
    let mut client = connect(db.url()).await?;
    client.batch_execute(JOBS_SCHEMA).await?;
    let (sender, mut receiver) = mpsc::channel::<Insert>(8192);
    let writer = tokio::spawn(async move {
        let insert = client
            .prepare(
                "INSERT INTO jobs (template, plan, variables, status, created_ms)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .await?;
        let mut transactions = 0u64;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = receiver.recv().await {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(insert) => batch.push(insert),
                    Err(_) => break,
                }
            }
            let tx = client.transaction().await?;
            let mut ids = Vec::with_capacity(batch.len());
            for row in &batch {
                let id: i64 = tx
                    .query_one(
                        &insert,
                        &[
                            &"bench",
                            &PLAN_100,
                            &"TargetServer=web1&Version=2.4.1",
                            &0i16,
                            &row.created_ms,
                        ],
                    )
                    .await?
                    .get(0);
                ids.push(id);
            }
            tx.commit().await?;
            transactions += 1;
            for (row, id) in batch.drain(..).zip(ids) {
                let _ = row.ack.send(Ok(id));
            }
        }
        Ok::<_, tokio_postgres::Error>(transactions)
    });
    let (commits, elapsed) = baseline::produce(sender, producers, duration).await?;
    let transactions = writer.await??;
    drop(db);
    Ok(GroupCommit {
        commits,
        elapsed,
        transactions,
    })
}

#[cfg(test)]
mod tests {
    use super::{redacted, with_database};

    #[test]
    fn the_database_of_a_url_is_replaced_and_its_options_kept() {
        for (url, expected) in [
            (
                "postgres://postgres@127.0.0.1:5432/test",
                "postgres://postgres@127.0.0.1:5432/x",
            ),
            (
                "postgres://u:p@h/db?options=-c%20a%3Db",
                "postgres://u:p@h/x?options=-c%20a%3Db",
            ),
            ("postgresql://h:1", "postgresql://h:1/x"),
        ] {
            assert_eq!(with_database(url, "x"), expected, "{url}");
        }
    }

    #[test]
    fn a_shown_url_has_no_password() {
        let shown = redacted("postgres://holt:s3cret@db:6543/jobs").unwrap();
        assert_eq!(shown, "postgres://holt@db:6543/jobs");
    }
}
