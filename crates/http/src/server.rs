//! The accept loop: HTTP/1.1 connections on a bound listener, with a graceful drain.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use holt_engine::Engine;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::routes::{App, handle};

/// Limits and timeouts of the HTTP server.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The largest request body read; a larger one is answered with 413.
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's head.
    pub header_read_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `engine` on `listener` until `shutdown` completes, then stops accepting and waits up
/// to the drain timeout for requests in flight.
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    config: HttpConfig,
    shutdown: impl Future<Output = ()>,
) {
    let drain_timeout = config.drain_timeout;
    let header_read_timeout = config.header_read_timeout;
    let app = Arc::new(App { engine, config });
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Running out of file descriptors is the usual cause; pausing lets some close.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Responses are small and written whole; Nagle's delay would only add latency.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move {
                let started = Instant::now();
                let method = req.method().clone();
                // Only the path is logged: the query string may hold an API key.
                let path = req.uri().path().to_owned();
                let response = handle(app, req).await;
                tracing::debug!(%method, %path, status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!("requests still in flight at the end of the drain timeout were cut off");
        }
    }
}
