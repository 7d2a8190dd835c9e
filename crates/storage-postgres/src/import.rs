//! Filling an empty database with the rows of another (`holtd migrate`): jobs keep their tokens,
//! so every client's token still names its job.

use holt_storage::StoreError;
use holt_storage::dump::{Batch, InfraRow};

use crate::PgStore;
use crate::error::{db_error, pool_error};

impl PgStore {
    /// Whether the database holds no job and no infrastructure: the only kind a copy goes into,
    /// so that nothing is mixed or overwritten.
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        let client = self.cluster_pool.get().await.map_err(pool_error)?;
        let row = client
            .query_one(
                "SELECT NOT EXISTS (SELECT 1 FROM jobs) AND NOT EXISTS (SELECT 1 FROM infra)",
                &[],
            )
            .await
            .map_err(db_error)?;
        Ok(row.get(0))
    }

    /// Writes a batch of copied rows in one transaction, each job under its own token. Jobs
    /// come before their chunks and keys; an `Executing` job is refused (stop the source's
    /// server, whose next start ends such jobs, before copying).
    pub async fn import(&self, batch: &Batch) -> Result<(), StoreError> {
        if let Some(job) = batch.jobs.iter().find(|j| j.status == 1) {
            return Err(StoreError::Conflict(format!(
                "job {} is still executing in the source database",
                job.id
            )));
        }
        let mut client = self.cluster_pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        let insert_job = tx
            .prepare_cached(
                "INSERT INTO jobs (id, template, plan, variables, status, created_ms, started_ms,
                                   finished_ms, source, outputs)
                 OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .await
            .map_err(db_error)?;
        for job in &batch.jobs {
            let status = i16::try_from(job.status)
                .map_err(|_| StoreError::Corrupt(format!("status {}", job.status)))?;
            let source = i16::try_from(job.source)
                .map_err(|_| StoreError::Corrupt(format!("source {}", job.source)))?;
            tx.execute(
                &insert_job,
                &[
                    &job.id,
                    &job.template,
                    &job.plan,
                    &job.variables,
                    &status,
                    &job.created_ms,
                    &job.started_ms,
                    &job.finished_ms,
                    &source,
                    &job.outputs,
                ],
            )
            .await
            .map_err(db_error)?;
        }
        let insert_chunk = tx
            .prepare_cached(
                "INSERT INTO log_chunks (job_id, first_seq, last_seq, body, entries)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .await
            .map_err(db_error)?;
        for chunk in &batch.chunks {
            tx.execute(
                &insert_chunk,
                &[
                    &chunk.job_id,
                    &chunk.first_seq,
                    &chunk.last_seq,
                    &chunk.body,
                    &chunk.entries,
                ],
            )
            .await
            .map_err(db_error)?;
        }
        let insert_key = tx
            .prepare_cached(
                "INSERT INTO idempotency (key, fingerprint, job_id, created_ms)
                 VALUES ($1, $2, $3, $4)",
            )
            .await
            .map_err(db_error)?;
        for key in &batch.keys {
            tx.execute(
                &insert_key,
                &[&key.key, &key.fingerprint, &key.job_id, &key.created_ms],
            )
            .await
            .map_err(db_error)?;
        }
        insert_infra(&tx, &batch.infra).await?;
        // New jobs are numbered after the copied ones.
        tx.execute(
            "SELECT setval(pg_get_serial_sequence('jobs', 'id'),
                           COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM jobs",
            &[],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }
}

async fn insert_infra(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &[InfraRow],
) -> Result<(), StoreError> {
    let insert = tx
        .prepare_cached("INSERT INTO infra (kind, name_key, body) VALUES ($1, $2, $3)")
        .await
        .map_err(db_error)?;
    for row in rows {
        tx.execute(&insert, &[&row.kind, &row.name_key, &row.body])
            .await
            .map_err(db_error)?;
    }
    Ok(())
}
