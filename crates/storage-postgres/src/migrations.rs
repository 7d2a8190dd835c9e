//! The schema, as an append-only list of migrations, and the table that records how far a
//! database has come.

use holt_storage::StoreError;
use tokio_postgres::Client;

use crate::error::db_error;

/// Each entry moves the schema from version `index` to `index + 1`. Entries are never edited
/// once released; a change is a new entry. The tables hold what the SQLite store's do, in the
/// same forms (variables form-encoded, log chunks as Otter text plus JSON), so that a row copied
/// from one reads back the same from the other.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: jobs, their log chunks, idempotency keys, facts about the database, and the
    // infrastructure model.
    "CREATE TABLE jobs (
        id          BIGINT   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        template    TEXT     NOT NULL,
        plan        TEXT     NOT NULL,
        variables   TEXT     NOT NULL,
        status      SMALLINT NOT NULL,
        created_ms  BIGINT   NOT NULL,
        started_ms  BIGINT,
        finished_ms BIGINT
    );
    -- Only unfinished jobs are looked up by status (recovery, queues), so only they are indexed.
    CREATE INDEX jobs_unfinished ON jobs (status, id) WHERE status IN (0, 1);
    -- Retention deletes by finish time.
    CREATE INDEX jobs_finished ON jobs (finished_ms) WHERE finished_ms IS NOT NULL;
    -- A run of consecutive entries of one job: `body` in the Otter text form, `entries` a JSON
    -- array of [level, time_ms, scope, text], one per entry, for structured reads.
    CREATE TABLE log_chunks (
        job_id    BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        first_seq BIGINT NOT NULL,
        last_seq  BIGINT NOT NULL,
        body      TEXT   NOT NULL,
        entries   TEXT   NOT NULL,
        PRIMARY KEY (job_id, last_seq)
    );
    CREATE TABLE idempotency (
        key         TEXT   PRIMARY KEY,
        fingerprint TEXT   NOT NULL,
        job_id      BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        created_ms  BIGINT NOT NULL
    );
    CREATE INDEX idempotency_job ON idempotency (job_id);
    -- `instance` names the database, so that the processes its jobs start can be told apart
    -- from those of a holtd on another database; it also names the notification channel.
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO meta (key, value)
        VALUES ('instance', substr(md5(gen_random_uuid()::text), 1, 16));
    -- Servers, roles and environments, each as its JSON in Otter's shape, keyed by kind and
    -- lowercase name (names compare ignoring case).
    CREATE TABLE infra (
        kind     TEXT NOT NULL,
        name_key TEXT NOT NULL,
        body     TEXT NOT NULL,
        PRIMARY KEY (kind, name_key)
    );",
    // 2: nodes of a cluster, each with its lease; the lease generation that claimed an
    // executing job; the index admission and claims count a template's jobs by.
    "CREATE TABLE nodes (
        generation BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name       TEXT        NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX nodes_expiry ON nodes (expires_at);
    ALTER TABLE jobs ADD COLUMN owner BIGINT;
    CREATE INDEX jobs_owned ON jobs (owner) WHERE owner IS NOT NULL;
    CREATE INDEX jobs_template_unfinished ON jobs (template, status, id) WHERE status IN (0, 1);",
    // 3: what triggered each job (0 api, 1 ui, 2 schedule; jobs recorded before read as api),
    // and the indexes a listing pages by: each yields a template's or a status's jobs (or
    // both) in token order, so a page newest first reads only its own rows.
    "ALTER TABLE jobs ADD COLUMN source SMALLINT NOT NULL DEFAULT 0;
    CREATE INDEX jobs_template ON jobs (template, id);
    CREATE INDEX jobs_status ON jobs (status, id);
    CREATE INDEX jobs_template_status ON jobs (template, status, id);",
    // 4: the outputs a job recorded when it ended, a JSON array of [name, value] pairs in
    // declaration order (NULL: none); the webhook outbox: one row per completion webhook of an
    // ended job, due at `next_ms` (also pushed forward while a node's attempt holds it),
    // `done` 0 waiting, 1 delivered, 2 given up.
    "ALTER TABLE jobs ADD COLUMN outputs TEXT;
    CREATE TABLE webhooks (
        id         BIGINT   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job_id     BIGINT   NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        url        TEXT     NOT NULL,
        secret_env TEXT,
        created_ms BIGINT   NOT NULL,
        attempts   INTEGER  NOT NULL DEFAULT 0,
        next_ms    BIGINT   NOT NULL,
        done       SMALLINT NOT NULL DEFAULT 0
    );
    CREATE INDEX webhooks_due ON webhooks (next_ms) WHERE done = 0;
    CREATE INDEX webhooks_job ON webhooks (job_id);",
    // 5: the slots schedules fired, recorded in the transaction that admits their jobs: the key
    // decides which node fires a slot. `job_id` is the job that stood for the slot, if any
    // (retention may have deleted it since).
    "CREATE TABLE schedule_firings (
        template    TEXT   NOT NULL,
        slot_ms     BIGINT NOT NULL,
        recorded_ms BIGINT NOT NULL,
        job_id      BIGINT,
        PRIMARY KEY (template, slot_ms)
    );",
];

/// The schema version this build writes.
pub(crate) const CURRENT: i64 = MIGRATIONS.len() as i64;

/// The advisory lock key migrations hold, so that two nodes starting together on an empty
/// database do not both create the tables: one migrates, the other then finds it done.
/// Transaction-scoped, so a node that dies mid-migration releases it with its connection.
const MIGRATION_LOCK: i64 = 0x686f_6c74_0001; // "holt" and 1

/// Brings the database to the current version in one transaction under the migration lock, or
/// refuses a database written by a newer schema.
pub(crate) async fn apply(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(db_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS holt_schema (
            only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
            version  BIGINT  NOT NULL
        )",
    )
    .await
    .map_err(db_error)?;
    let found: i64 = tx
        .query_opt("SELECT version FROM holt_schema", &[])
        .await
        .map_err(db_error)?
        .map_or(0, |row| row.get(0));
    if found < 0 {
        return Err(StoreError::Corrupt(format!("schema version {found}")));
    }
    if found > CURRENT {
        return Err(StoreError::NewerSchema {
            found,
            known: CURRENT,
        });
    }
    for sql in &MIGRATIONS[found as usize..] {
        tx.batch_execute(sql).await.map_err(db_error)?;
    }
    tx.execute(
        "INSERT INTO holt_schema (version) VALUES ($1)
         ON CONFLICT (only_row) DO UPDATE SET version = excluded.version",
        &[&CURRENT],
    )
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(())
}
