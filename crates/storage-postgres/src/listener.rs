//! The notification listener: one connection that `LISTEN`s on the database's channel and hands
//! every commit notice (this store's and every other store's on the same database) to the
//! watchers. When the connection is lost it connects again, and then brings every watch up to
//! what is committed, since notices sent meanwhile never arrive.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::future::poll_fn;
use holt_domain::{JobStatus, JobToken};
use holt_storage::StoreError;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use crate::committed::{Committed, Event, parse};
use crate::error::{db_error, describe, pool_error};

/// How long the listener waits before connecting again, at first and at most.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Notices read from the connection but not yet handed to the watchers; past this the
/// connection is not read until the watchers catch up (the server holds the rest).
const NOTICES_BUFFERED: usize = 1024;

/// Listens until `stop`; `ready` hears whether the first connection listens (an error ends the
/// listener, and the store is not opened).
pub(crate) async fn run(
    pg: tokio_postgres::Config,
    channel: String,
    committed: Arc<Committed>,
    reads: Pool,
    stop: CancellationToken,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    let mut ready = Some(ready);
    let mut delay = RETRY_FIRST;
    loop {
        let listening = tokio::select! {
            () = stop.cancelled() => return,
            listening = listen(&pg, &channel) => listening,
        };
        match listening {
            Ok((client, mut notices)) => {
                match ready.take() {
                    Some(ready) => drop(ready.send(Ok(()))),
                    None => {
                        tracing::info!("listening for commit notices again");
                        // Jobs may have been created or ended meanwhile.
                        committed.wake_work();
                        // Whatever was committed while nobody listened.
                        if let Err(e) = catch_up(&reads, &committed).await {
                            tracing::warn!(error = %e, "cannot bring followed jobs up to date");
                        }
                    }
                }
                delay = RETRY_FIRST;
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        notice = notices.recv() => match notice {
                            Some(payload) => committed.publish(&parse(&payload)),
                            None => break,
                        },
                    }
                }
                drop(client);
                tracing::warn!(
                    "lost the connection that listens for commit notices; connecting again"
                );
            }
            Err(e) => {
                if let Some(ready) = ready.take() {
                    drop(ready.send(Err(e)));
                    return;
                }
                tracing::warn!(error = %e, "cannot listen for commit notices; trying again");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RETRY_MAX);
    }
}

/// A connection listening on `channel`, and the notices' payloads as they arrive; the receiver
/// ends when the connection does.
async fn listen(
    pg: &tokio_postgres::Config,
    channel: &str,
) -> Result<(tokio_postgres::Client, mpsc::Receiver<String>), StoreError> {
    let (client, mut connection) = pg.connect(NoTls).await.map_err(db_error)?;
    let (sender, notices) = mpsc::channel(NOTICES_BUFFERED);
    tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(notice)) => {
                    if sender.send(notice.payload().to_owned()).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %describe(&e), "the connection listening for commit notices failed");
                    return;
                }
            }
        }
    });
    // The channel is named after the instance id, which is alphanumeric: nothing to quote.
    client
        .batch_execute(&format!("LISTEN {channel}"))
        .await
        .map_err(db_error)?;
    Ok((client, notices))
}

/// Moves every watch to what is committed now: its job's log as far as it goes, and closed if
/// the job has ended or is gone.
async fn catch_up(reads: &Pool, committed: &Committed) -> Result<(), StoreError> {
    let mut watched = committed.watched();
    watched.extend(committed.watched_statuses());
    watched.sort_unstable();
    watched.dedup();
    if watched.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = watched.iter().map(|t| t.id() as i64).collect();
    let client = reads.get().await.map_err(pool_error)?;
    let rows = client
        .query(
            "SELECT j.id, j.status,
                    (SELECT MAX(c.last_seq) FROM log_chunks c WHERE c.job_id = j.id)
             FROM jobs j WHERE j.id = ANY ($1)",
            &[&ids],
        )
        .await
        .map_err(db_error)?;
    let mut events = Vec::new();
    let mut found = Vec::new();
    for row in rows {
        let Some(token) = JobToken::new(row.get::<_, i64>(0) as u64) else {
            continue;
        };
        found.push(token);
        if let Some(last) = row.get::<_, Option<i64>>(2) {
            events.push(Event::Logged {
                token,
                next: last as u64 + 1,
            });
        }
        if let Ok(status) = JobStatus::from_code(i64::from(row.get::<_, i16>(1))) {
            events.push(Event::Status { token, status });
        }
    }
    // A watched job that is gone (retention) has ended too.
    for token in watched.into_iter().filter(|t| !found.contains(t)) {
        events.push(Event::Status {
            token,
            status: JobStatus::Error,
        });
    }
    committed.publish(&events);
    Ok(())
}
