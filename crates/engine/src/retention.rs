//! Retention: finished jobs older than their template's (or the server's) limit are deleted in
//! small batches, so it never holds the store's writer long.

use holt_domain::TemplateName;
use holt_storage::RetentionRule;

use crate::EngineError;
use crate::clock::now_ms;
use crate::engine::Engine;

/// How many finished jobs one retention transaction deletes.
const RETENTION_BATCH: usize = 200;

impl Engine {
    /// Deletes old finished jobs every `retention_interval`, until shutdown.
    pub(crate) fn start_retention(&self) {
        let engine = self.clone();
        tokio::spawn(async move {
            let stop = engine.inner.background.clone();
            loop {
                if let Err(e) = engine.retain_once().await {
                    tracing::warn!(error = %e, "retention failed; it will be tried again");
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(engine.inner.config.retention_interval) => {}
                }
            }
        });
    }

    async fn retain_once(&self) -> Result<(), EngineError> {
        // Read each time, so a reload's new `retain_days` applies from the next run on.
        let with_own: Vec<(TemplateName, u32)> = self
            .templates()
            .iter()
            .filter_map(|t| Some((t.name.clone(), t.retain_days?)))
            .collect();
        let day_ms = 24 * 60 * 60 * 1000_i64;
        let now = now_ms();
        let mut rules: Vec<RetentionRule> = with_own
            .iter()
            .map(|(name, days)| RetentionRule {
                before_ms: now - i64::from(*days) * day_ms,
                template: Some(name.clone()),
                except: Vec::new(),
            })
            .collect();
        if let Some(days) = self.inner.config.retain_days {
            rules.push(RetentionRule {
                before_ms: now - i64::from(days) * day_ms,
                template: None,
                except: with_own.iter().map(|(name, _)| name.clone()).collect(),
            });
        }
        let store = &self.inner.store;
        for rule in &rules {
            loop {
                let deleted = store.delete_finished(rule, RETENTION_BATCH).await?;
                if deleted > 0 {
                    tracing::info!(jobs = deleted, "retention deleted finished jobs");
                }
                if deleted < RETENTION_BATCH || self.inner.background.is_cancelled() {
                    break;
                }
                // Let triggers and log writes through between batches.
                tokio::task::yield_now().await;
            }
        }
        store
            .prune_idempotency(now - self.inner.config.idempotency_window.as_millis() as i64)
            .await?;
        Ok(())
    }
}
