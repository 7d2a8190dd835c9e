//! The webhook outbox on PostgreSQL: rows claimed with `FOR UPDATE SKIP LOCKED` and a lease in
//! `next_ms`, so that each webhook is attempted by one node at a time.

use holt_domain::JobToken;
use holt_storage::{Attempted, NewWebhook, StoreError, Webhook};

use crate::PgStore;
use crate::writer::token_of;

impl PgStore {
    pub(crate) async fn add_webhooks_tx(
        &self,
        token: JobToken,
        hooks: Vec<NewWebhook>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.transact(move |tx, _| {
            Box::pin(async move {
                for hook in &hooks {
                    tx.execute(
                        "INSERT INTO webhooks (job_id, url, secret_env, created_ms, next_ms)
                         VALUES ($1, $2, $3, $4, $4)",
                        &[&(token.id() as i64), &hook.url, &hook.secret_env, &at_ms],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }

    pub(crate) async fn claim_webhooks_tx(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Webhook>, StoreError> {
        let rows = self
            .transact(move |tx, _| {
                Box::pin(async move {
                    tx.query(
                        "UPDATE webhooks SET next_ms = $2
                         WHERE id IN (SELECT id FROM webhooks WHERE done = 0 AND next_ms <= $1
                                      ORDER BY next_ms, id LIMIT $3 FOR UPDATE SKIP LOCKED)
                         RETURNING id, job_id, url, secret_env, attempts, created_ms",
                        &[&now_ms, &(now_ms + lease_ms), &(limit as i64)],
                    )
                    .await
                })
            })
            .await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(Webhook {
                    id: row.get(0),
                    token: token_of(row.get(1))?,
                    url: row.get(2),
                    secret_env: row.get(3),
                    attempts: row.get::<_, i32>(4) as u32,
                    created_ms: row.get(5),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        claimed.sort_by_key(|w| w.id);
        Ok(claimed)
    }

    pub(crate) async fn webhook_attempted_tx(
        &self,
        id: i64,
        attempted: Attempted,
    ) -> Result<(), StoreError> {
        let next = match attempted {
            Attempted::Retry { next_ms } => Some(next_ms),
            Attempted::Delivered | Attempted::GaveUp => None,
        };
        let done = attempted.code() as i16;
        self.transact(move |tx, _| {
            Box::pin(async move {
                tx.execute(
                    "UPDATE webhooks SET attempts = attempts + 1, done = $2,
                         next_ms = coalesce($3, next_ms)
                     WHERE id = $1",
                    &[&id, &done, &next],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}
