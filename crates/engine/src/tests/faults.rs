//! A run that panics fails its job alone and frees its slot.

use super::*;

/// A `MemoryStore` with faults: it panics when handed a log line containing `boom`, as a bug
/// in a store (or in anything a job's run calls) would, and after recording a job it says so
/// and lets other tasks run before it answers, as a store that commits elsewhere does.
#[derive(Debug, Default)]
pub(super) struct Faulty {
    inner: MemoryStore,
    pub(super) created: tokio::sync::Notify,
}

#[async_trait]
impl JobStore for Faulty {
    fn instance_id(&self) -> &str {
        self.inner.instance_id()
    }
    async fn create_job_from(
        &self,
        job: NewJob,
        source: holt_domain::TriggerSource,
    ) -> Result<Created, StoreError> {
        let created = self.inner.create_job_from(job, source).await;
        self.created.notify_one();
        tokio::task::yield_now().await;
        created
    }
    async fn list_jobs(
        &self,
        filter: &holt_domain::JobFilter,
    ) -> Result<Vec<holt_domain::JobSummary>, StoreError> {
        self.inner.list_jobs(filter).await
    }
    async fn set_status(
        &self,
        token: JobToken,
        status: JobStatus,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.inner.set_status(token, status, at_ms).await
    }
    async fn end_job(
        &self,
        token: JobToken,
        status: JobStatus,
        at_ms: i64,
        outputs: &holt_domain::Outputs,
    ) -> Result<(), StoreError> {
        self.inner.end_job(token, status, at_ms, outputs).await
    }
    async fn outputs(&self, token: JobToken) -> Result<Option<holt_domain::Outputs>, StoreError> {
        self.inner.outputs(token).await
    }
    async fn add_webhooks(
        &self,
        token: JobToken,
        hooks: Vec<holt_storage::NewWebhook>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.inner.add_webhooks(token, hooks, at_ms).await
    }
    async fn claim_webhooks(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<holt_storage::Webhook>, StoreError> {
        self.inner.claim_webhooks(now_ms, lease_ms, limit).await
    }
    async fn webhook_attempted(
        &self,
        id: i64,
        attempted: holt_storage::Attempted,
    ) -> Result<(), StoreError> {
        self.inner.webhook_attempted(id, attempted).await
    }
    async fn next_webhook_ms(&self) -> Result<Option<i64>, StoreError> {
        self.inner.next_webhook_ms().await
    }
    async fn append_logs(&self, token: JobToken, entries: Vec<LogEntry>) -> Result<(), StoreError> {
        assert!(
            !entries.iter().any(|e| e.text.contains("boom")),
            "the store broke down"
        );
        self.inner.append_logs(token, entries).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush().await
    }
    async fn job(&self, token: JobToken) -> Result<Option<JobRecord>, StoreError> {
        self.inner.job(token).await
    }
    async fn last_seq(&self, token: JobToken) -> Result<Option<u64>, StoreError> {
        self.inner.last_seq(token).await
    }
    async fn delete_finished(
        &self,
        rule: &RetentionRule,
        limit: usize,
    ) -> Result<usize, StoreError> {
        self.inner.delete_finished(rule, limit).await
    }
    async fn prune_idempotency(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.inner.prune_idempotency(before_ms).await
    }
    async fn summary(
        &self,
        token: JobToken,
    ) -> Result<Option<(TemplateName, JobStatus)>, StoreError> {
        self.inner.summary(token).await
    }
    async fn status(&self, token: JobToken) -> Result<Option<JobStatus>, StoreError> {
        self.inner.status(token).await
    }
    async fn logs(
        &self,
        token: JobToken,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.inner.logs(token, from_seq, limit).await
    }
    async fn recover(&self, message: &str, at_ms: i64) -> Result<Recovery, StoreError> {
        self.inner.recover(message, at_ms).await
    }
    async fn last_firing(&self, template: &TemplateName) -> Result<Option<i64>, StoreError> {
        self.inner.last_firing(template).await
    }
    async fn create_scheduled_job(
        &self,
        firing: &holt_storage::Firing,
        job: NewJob,
    ) -> Result<Option<JobToken>, StoreError> {
        self.inner.create_scheduled_job(firing, job).await
    }
    async fn record_firing(
        &self,
        firing: &holt_storage::Firing,
        existing: Option<JobToken>,
    ) -> Result<bool, StoreError> {
        self.inner.record_firing(firing, existing).await
    }
    fn watch_committed(&self, token: JobToken) -> tokio::sync::watch::Receiver<u64> {
        self.inner.watch_committed(token)
    }
    async fn inventory(&self) -> Result<holt_domain::Inventory, StoreError> {
        self.inner.inventory().await
    }
    async fn change_inventory(
        &self,
        change: holt_domain::InfraChange,
    ) -> Result<holt_domain::Inventory, StoreError> {
        self.inner.change_inventory(change).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_run_fails_only_that_job() {
    let config = EngineConfig {
        max_concurrent_jobs: 1,
        ..EngineConfig::default()
    };
    let store = Arc::new(Faulty::default());
    let engine = start_on(
        store,
        &[
            ("bad", "plan = 'Log-Information boom;'"),
            ("good", "plan = 'Log-Information fine;'"),
        ],
        config,
    )
    .await;
    let bad = trigger(&engine, "bad").await.token();
    // Queued behind the bad job: it starts only once the bad job's slot is freed.
    let good = trigger(&engine, "good").await.token();
    assert_eq!(ended(&engine, bad).await, JobStatus::Error);
    assert_eq!(
        log_text(&engine, bad).await,
        format!("DEBUG: Job started from template bad.\nERROR: {INTERNAL_ERROR_MESSAGE}\n")
    );
    assert_eq!(ended(&engine, good).await, JobStatus::Succeeded);
    assert_eq!(
        log_text(&engine, good).await,
        "DEBUG: Job started from template good.\nINFO: fine\nINFO: Job succeeded.\n"
    );
    // And another after it, on the same single slot.
    let again = trigger(&engine, "good").await.token();
    assert_eq!(ended(&engine, again).await, JobStatus::Succeeded);
    tokio::time::timeout(PATIENCE, engine.shutdown())
        .await
        .expect("shutdown returns");
}
