//! Completion webhooks: when a job ends with a status its template's `[[notify]]` lists, a
//! webhook goes into the store's outbox; a delivery loop on every node takes due webhooks
//! (one node at a time per webhook), POSTs the job's summary signed with HMAC-SHA256, and
//! retries with exponential backoff for at least a day. A webhook never delays or changes the
//! job's status: it is added after the end is recorded, and its failures are only logged.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use holt_domain::{JobStatus, JobToken, TemplateName, push_json_string, shown_url};
use holt_storage::{Attempted, NewWebhook, Webhook};

use crate::clock::now_ms;
use crate::engine::Engine;

/// How a webhook is sent: an HTTP POST, which `holt-http` implements, since the engine names
/// no HTTP stack.
#[async_trait]
pub trait WebhookSender: Send + Sync + std::fmt::Debug {
    /// POSTs `body` to `url` with `headers`; the answer's status code, or why there is none.
    async fn post(
        &self,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: String,
    ) -> Result<u16, String>;
}

/// The wait after a first failed attempt; it doubles with each failure after it.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const MAX_RETRY: Duration = Duration::from_secs(300);
/// How long a webhook is retried before it is given up (counted from the job's end).
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How long one attempt may take, connection included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a claimed webhook is hidden from other claims: longer than any attempt, so that a
/// webhook is attempted by one node at a time, and one whose node died is due again after it.
const LEASE: Duration = Duration::from_secs(60);
/// The most webhooks one node attempts at once.
const BATCH: usize = 16;

/// The wait before the attempt after `failures` failed ones.
fn backoff(failures: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(MAX_RETRY)
}

/// `sha256=HEX`: the HMAC-SHA256 of `body` under `key`.
pub(crate) fn signature(key: &[u8], body: &[u8]) -> String {
    use std::fmt::Write;
    let mut mac = Hmac::<sha2_hmac::Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(body);
    let mut hex = String::from("sha256=");
    for byte in mac.finalize().into_bytes() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

impl Engine {
    /// Starts delivering the outbox's webhooks with `sender`, until shutdown. Without it (an
    /// embedding program that sends none), webhooks wait in the outbox.
    pub fn deliver_webhooks(&self, sender: Arc<dyn WebhookSender>) {
        tokio::spawn(self.clone().delivery_loop(sender));
    }

    /// Adds the webhooks `template` asks for on `status` to the outbox, for a job that has just
    /// ended; failures are logged, never the job's. The template is the one loaded now.
    pub(crate) async fn enqueue_webhooks(
        &self,
        token: JobToken,
        template: &TemplateName,
        status: JobStatus,
    ) {
        let Some(template) = self.templates().get(template).cloned() else {
            return;
        };
        let hooks: Vec<NewWebhook> = template
            .notify
            .iter()
            .filter(|n| n.on.contains(&status))
            .map(|n| NewWebhook {
                url: n.url.clone(),
                secret_env: n.secret_env.clone(),
            })
            .collect();
        if hooks.is_empty() {
            return;
        }
        match self.store().add_webhooks(token, hooks, now_ms()).await {
            Ok(()) => self.inner.webhook_wake.notify_one(),
            Err(e) => {
                tracing::error!(job = %token, error = %e, "could not queue the job's webhooks")
            }
        }
    }

    /// [`Engine::enqueue_webhooks`] for a job ended outside its run (interrupted, settled, a
    /// pending job canceled), whose template is read from the store.
    pub(crate) async fn enqueue_webhooks_of(&self, token: JobToken) {
        match self.store().summary(token).await {
            Ok(Some((template, status))) if status.is_terminal() => {
                self.enqueue_webhooks(token, &template, status).await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(job = %token, error = %e, "could not queue the job's webhooks")
            }
        }
    }

    async fn delivery_loop(self, sender: Arc<dyn WebhookSender>) {
        let store = self.store().clone();
        loop {
            let wake = self.inner.webhook_wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let lease = LEASE.as_millis() as i64;
            let mut pause = match store.claim_webhooks(now_ms(), lease, BATCH).await {
                Ok(claimed) if !claimed.is_empty() => {
                    let attempts = claimed.into_iter().map(|w| self.attempt(&*sender, w));
                    futures_util::future::join_all(attempts).await;
                    continue;
                }
                Ok(_) => match store.next_webhook_ms().await {
                    Ok(Some(at)) => Duration::from_millis((at - now_ms()).max(0) as u64),
                    // Nothing waits: only a job's end (which wakes this loop) adds work.
                    Ok(None) => Duration::from_secs(3600),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the webhook outbox");
                        FIRST_RETRY
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the webhook outbox");
                    FIRST_RETRY
                }
            };
            pause = pause.max(Duration::from_millis(10));
            tokio::select! {
                () = &mut wake => {}
                () = tokio::time::sleep(pause) => {}
                () = self.inner.background.cancelled() => return,
            }
        }
    }

    /// One attempt: the job's summary POSTed, the outcome recorded and counted.
    async fn attempt(&self, sender: &dyn WebhookSender, webhook: Webhook) {
        let store = self.store();
        let shown = shown_url(&webhook.url);
        let attempt = webhook.attempts + 1;
        let result = match self.body(webhook.token).await {
            Ok(Some(body)) => {
                let mut headers = vec![
                    ("content-type", "application/json".to_owned()),
                    ("user-agent", "holt".to_owned()),
                    ("x-holt-delivery", webhook.id.to_string()),
                ];
                let key = match &webhook.secret_env {
                    None => Ok(None),
                    Some(name) => std::env::var(name)
                        .map(Some)
                        .map_err(|_| format!("the environment variable {name} is not set")),
                };
                match key {
                    Ok(key) => {
                        if let Some(key) = key {
                            let sig = signature(key.as_bytes(), body.as_bytes());
                            headers.push(("x-holt-signature", sig));
                        }
                        let post = sender.post(&webhook.url, headers, body);
                        match tokio::time::timeout(ATTEMPT_TIMEOUT, post).await {
                            Ok(Ok(code)) if (200..300).contains(&code) => Ok(code),
                            Ok(Ok(code)) => Err(format!("answered {code}")),
                            Ok(Err(e)) => Err(e),
                            Err(_) => Err(format!(
                                "no answer within {} seconds",
                                ATTEMPT_TIMEOUT.as_secs()
                            )),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            // The job was deleted (retention): there is nothing left to report.
            Ok(None) => Err("the job no longer exists".to_owned()),
            Err(e) => {
                // The store failed, not the receiver: the attempt is not counted against it.
                tracing::warn!(job = %webhook.token, error = %e, "cannot read the job for its webhook");
                return;
            }
        };
        let now = now_ms();
        let outcome = match &result {
            Ok(code) => {
                tracing::info!(job = %webhook.token, url = %shown, attempt, status = code, "webhook delivered");
                self.inner.metrics.webhook("delivered");
                Attempted::Delivered
            }
            Err(e) => {
                let age = Duration::from_millis((now - webhook.created_ms).max(0) as u64);
                let gone = e == "the job no longer exists";
                if gone || age >= GIVE_UP_AFTER {
                    tracing::warn!(job = %webhook.token, url = %shown, attempt, error = %e, "webhook given up");
                    self.inner.metrics.webhook("given_up");
                    Attempted::GaveUp
                } else {
                    let wait = backoff(attempt);
                    tracing::warn!(job = %webhook.token, url = %shown, attempt, error = %e, retry_in_ms = wait.as_millis() as u64, "webhook attempt failed");
                    self.inner.metrics.webhook("failed");
                    Attempted::Retry {
                        next_ms: now + wait.as_millis() as i64,
                    }
                }
            }
        };
        if let Err(e) = store.webhook_attempted(webhook.id, outcome).await {
            tracing::warn!(job = %webhook.token, error = %e, "cannot record a webhook attempt");
        }
    }

    /// The JSON body of a job's webhook: `{token, template, status, created, started,
    /// finished, outputs}`, times in RFC 3339 (`null` when unset); `None` for a deleted job.
    async fn body(&self, token: JobToken) -> Result<Option<String>, holt_storage::StoreError> {
        let Some(job) = self.store().job(token).await? else {
            return Ok(None);
        };
        let outputs = self.store().outputs(token).await?.unwrap_or_default();
        let time = |ms: Option<i64>| match ms {
            None => "null".to_owned(),
            Some(ms) => {
                let at = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
                format!("\"{}\"", humantime::format_rfc3339_millis(at))
            }
        };
        let mut out = String::from("{\"token\":");
        push_json_string(&mut out, &token.to_string());
        out.push_str(",\"template\":");
        push_json_string(&mut out, job.template.as_str());
        out.push_str(",\"status\":");
        push_json_string(&mut out, job.status.as_str());
        out.push_str(&format!(
            ",\"created\":{},\"started\":{},\"finished\":{},\"outputs\":{}}}",
            time(Some(job.created_ms)),
            time(job.started_ms),
            time(job.finished_ms),
            outputs.to_json()
        ));
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_up_to_five_minutes() {
        let waits: Vec<u64> = (1..=12).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX), MAX_RETRY);
    }

    #[test]
    fn signatures_are_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
