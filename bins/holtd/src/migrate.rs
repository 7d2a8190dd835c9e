//! `holtd migrate --from FILE --to URL`: copies a SQLite database into an empty PostgreSQL one,
//! so that a single holtd can become a cluster without losing a job. Jobs keep their tokens;
//! logs, idempotency keys and the infrastructure model come along; secret values stay sealed,
//! so the nodes must use the same secrets key file as the old server.

use std::path::Path;
use std::process::ExitCode;

use holt_storage::{JobStore, SqliteConfig, SqliteStore};
use holt_storage_postgres::{PgConfig, PgStore};

/// Jobs per copied page.
const JOBS_PER_PAGE: usize = 1000;

/// Log chunks per copied page (each at most 1 MiB of text, most far smaller).
const CHUNKS_PER_PAGE: usize = 64;

pub(crate) fn run(from: &Path, to: &str) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("holtd migrate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(copy(from, to)) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("holtd migrate: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn copy(from: &Path, to: &str) -> Result<String, String> {
    if !holt_storage_postgres::is_postgres_url(to) {
        return Err("--to must be a postgres:// or postgresql:// URL".to_owned());
    }
    if !from.is_file() {
        return Err(format!("{}: no such database", from.display()));
    }
    let shown = holt_storage_postgres::redacted(to);
    let source = SqliteStore::open(&SqliteConfig::new(from))
        .map_err(|e| format!("cannot open {}: {e}", from.display()))?;
    // What a start would do first: jobs a stopped server left executing end with the usual
    // line, so that no job arrives executing with no node to run it.
    let recovery = source
        .recover(holt_engine::INTERRUPTED_MESSAGE, now_ms())
        .await
        .map_err(|e| format!("cannot recover {}: {e}", from.display()))?;
    let target = PgStore::connect(to, &PgConfig::default())
        .await
        .map_err(|e| format!("cannot open {shown}: {e}"))?;
    if !target
        .is_empty()
        .await
        .map_err(|e| format!("cannot read {shown}: {e}"))?
    {
        return Err(format!(
            "{shown} already holds jobs or infrastructure; copy into an empty database"
        ));
    }
    let (mut jobs, mut keys, mut chunks) = (0usize, 0usize, 0usize);
    let mut after = 0;
    loop {
        let batch = source
            .dump_jobs(after, JOBS_PER_PAGE)
            .await
            .map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let Some(last) = batch.jobs.last() else { break };
        after = last.id;
        jobs += batch.jobs.len();
        keys += batch.keys.len();
        target
            .import(&batch)
            .await
            .map_err(|e| format!("cannot write {shown}: {e}"))?;
    }
    let mut position = (0, -1);
    loop {
        let page = source
            .dump_chunks(position, CHUNKS_PER_PAGE)
            .await
            .map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let Some(last) = page.last() else { break };
        position = (last.job_id, last.last_seq);
        chunks += page.len();
        let batch = holt_storage::dump::Batch {
            chunks: page,
            ..Default::default()
        };
        target
            .import(&batch)
            .await
            .map_err(|e| format!("cannot write {shown}: {e}"))?;
    }
    let infra = source
        .dump_infra()
        .await
        .map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    let infra_rows = infra.len();
    target
        .import(&holt_storage::dump::Batch {
            infra,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot write {shown}: {e}"))?;
    Ok(format!(
        "copied {jobs} jobs ({} interrupted ones ended first), {chunks} log chunks, {keys} \
         idempotency keys and {infra_rows} servers, roles and environments from {} to {shown}; \
         start every node with the secrets key the old server used (--secrets-key)",
        recovery.interrupted.len(),
        from.display()
    ))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
