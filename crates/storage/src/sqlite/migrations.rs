//! The schema, as an append-only list of migrations keyed by `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// Each entry moves the schema from version `index` to `index + 1`. Entries are never edited
/// once released; a change is a new entry.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: jobs and their logs.
    "CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY,
        template    TEXT    NOT NULL,
        plan        TEXT    NOT NULL,
        variables   TEXT    NOT NULL,
        status      INTEGER NOT NULL,
        created_ms  INTEGER NOT NULL,
        started_ms  INTEGER,
        finished_ms INTEGER
    );
    -- Only unfinished jobs are looked up by status (recovery, queues), so only they are indexed.
    CREATE INDEX jobs_unfinished ON jobs (status, id) WHERE status IN (0, 1);
    CREATE TABLE log_entries (
        job_id  INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        seq     INTEGER NOT NULL,
        level   INTEGER NOT NULL,
        scope   TEXT    NOT NULL,
        time_ms INTEGER NOT NULL,
        text    TEXT    NOT NULL,
        PRIMARY KEY (job_id, seq)
    ) WITHOUT ROWID;",
    // 2: facts about the database itself; `instance` names it, so that the processes its jobs
    // start can be told apart from those of another holtd on the same machine.
    "CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('instance', lower(hex(randomblob(8))));",
    // 3: idempotency keys, and the index retention deletes by.
    "CREATE TABLE idempotency (
        key         TEXT    PRIMARY KEY,
        fingerprint TEXT    NOT NULL,
        job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        created_ms  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_job ON idempotency (job_id);
    CREATE INDEX jobs_finished ON jobs (finished_ms) WHERE finished_ms IS NOT NULL;",
    // 4: logs kept in chunks of consecutive entries instead of one row per line. `body` is the
    // chunk in the Otter text form, so a whole log is read as a few large strings; `entries`
    // is a JSON array of [level, time_ms, scope, text], one per entry, for structured reads.
    "CREATE TABLE log_chunks (
        job_id    INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        first_seq INTEGER NOT NULL,
        last_seq  INTEGER NOT NULL,
        body      TEXT    NOT NULL,
        entries   TEXT    NOT NULL
    );
    CREATE UNIQUE INDEX log_chunks_job ON log_chunks (job_id, last_seq);
    INSERT INTO log_chunks (job_id, first_seq, last_seq, body, entries)
        SELECT job_id, seq, seq,
               CASE level WHEN 0 THEN 'DEBUG: ' WHEN 1 THEN 'INFO: ' WHEN 2 THEN 'WARN: ' ELSE 'ERROR: ' END
                   || text || char(10),
               json_array(json_array(level, time_ms, scope, text))
        FROM log_entries;
    DROP TABLE log_entries;",
    // 5: the infrastructure model: servers, roles and environments, each as its JSON in Otter's
    // shape, keyed by kind and lowercase name (names compare ignoring case).
    "CREATE TABLE infra (
        kind     TEXT NOT NULL,
        name_key TEXT NOT NULL,
        body     TEXT NOT NULL,
        PRIMARY KEY (kind, name_key)
    ) WITHOUT ROWID;",
    // 6: what triggered each job (0 api, 1 ui, 2 schedule; jobs recorded before read as api),
    // and the indexes a listing pages by: each yields a template's or a status's jobs (or
    // both) in token order, so a page newest first reads only its own rows.
    "ALTER TABLE jobs ADD COLUMN source INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX jobs_template ON jobs (template, id);
    CREATE INDEX jobs_status ON jobs (status, id);
    CREATE INDEX jobs_template_status ON jobs (template, status, id);",
    // 7: the outputs a job recorded when it ended, a JSON array of [name, value] pairs in
    // declaration order (NULL: none); the webhook outbox: one row per completion webhook of an
    // ended job, due at `next_ms` (also pushed forward while an attempt holds it), `done` 0
    // waiting, 1 delivered, 2 given up.
    "ALTER TABLE jobs ADD COLUMN outputs TEXT;
    CREATE TABLE webhooks (
        id         INTEGER PRIMARY KEY,
        job_id     INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        url        TEXT    NOT NULL,
        secret_env TEXT,
        created_ms INTEGER NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        next_ms    INTEGER NOT NULL,
        done       INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX webhooks_due ON webhooks (next_ms) WHERE done = 0;
    CREATE INDEX webhooks_job ON webhooks (job_id);",
    // 8: the slots schedules fired, recorded before (or with) their jobs: the key decides that
    // a slot fires once. `job_id` is the job that stood for the slot, if any (retention may
    // have deleted it since).
    "CREATE TABLE schedule_firings (
        template    TEXT    NOT NULL,
        slot_ms     INTEGER NOT NULL,
        recorded_ms INTEGER NOT NULL,
        job_id      INTEGER,
        PRIMARY KEY (template, slot_ms)
    ) WITHOUT ROWID;",
];

/// The schema version this build writes.
pub(crate) const CURRENT: i64 = MIGRATIONS.len() as i64;

/// Brings the database to the current version in one exclusive transaction, or refuses a
/// database written by a newer schema.
pub(crate) fn apply(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
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
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", CURRENT)?;
    tx.commit()?;
    Ok(())
}
