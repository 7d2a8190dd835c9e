//! The accept loop: HTTP/1.1 connections on a bound listener, with a graceful drain.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use holt_engine::Engine;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::Body;
use crate::limits::LongPolls;
use crate::routes::{App, handle, internal_error};
use explain::Explained;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::sync::Semaphore;

/// Limits and timeouts of the HTTP server. Every one bounds what a client can make the server
/// hold: memory, a connection, a task.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The largest request head (request line and headers) read; a larger one is answered
    /// with 431. hyper needs at least 8192.
    pub max_head_bytes: usize,
    /// The largest request body read; a larger one is answered with 413.
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's head; then the connection is closed.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body; then it is answered with 408.
    pub body_read_timeout: Duration,
    /// The most connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// The most job variables a trigger may carry.
    pub max_variables: usize,
    /// The longest value a job variable may have, in bytes.
    pub max_variable_bytes: usize,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
    /// The admin keys (as SHA-256 digests) that open the infrastructure API; with none, it
    /// answers 403 to everyone.
    pub admin_keys: Vec<holt_domain::ApiKey>,
    /// The most followers (`follow=true`) of one job at once; more are answered with 503.
    pub max_followers_per_job: usize,
    /// The most long-lived requests (status calls that wait, logs that follow) at once; more
    /// are answered with 503, so they never take the connections other requests need.
    pub max_long_polls: usize,
    /// The longest a followed log streams; then its body ends cleanly and the client goes on
    /// with `offset`.
    pub max_stream_duration: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_head_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_variables: 100,
            max_variable_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(10),
            admin_keys: Vec::new(),
            max_followers_per_job: 64,
            max_long_polls: 1024,
            max_stream_duration: Duration::from_secs(3600),
        }
    }
}

impl HttpConfig {
    /// Every setting outside its sensible range, one line each, naming the setting as the
    /// command line spells it. Empty when the server can run with it.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut range = |name: &str, value: u128, min: u128, max: u128| {
            if value < min || value > max {
                problems.push(format!(
                    "--{name} must be from {min} to {max}, given {value}"
                ));
            }
        };
        let mib = 1024 * 1024;
        let week = holt_engine::MAX_DURATION.as_secs() as u128;
        range(
            "max-head-bytes",
            self.max_head_bytes as u128,
            1024,
            16 * mib,
        );
        range(
            "max-body-bytes",
            self.max_body_bytes as u128,
            1024,
            1024 * mib,
        );
        range(
            "max-connections",
            self.max_connections as u128,
            1,
            1_000_000,
        );
        range("max-variables", self.max_variables as u128, 1, 100_000);
        range(
            "max-variable-bytes",
            self.max_variable_bytes as u128,
            1,
            64 * mib,
        );
        range(
            "header-read-timeout",
            self.header_read_timeout.as_secs() as u128,
            1,
            week,
        );
        range(
            "body-read-timeout",
            self.body_read_timeout.as_secs() as u128,
            1,
            week,
        );
        range(
            "max-followers-per-job",
            self.max_followers_per_job as u128,
            1,
            1_000_000,
        );
        range("max-long-polls", self.max_long_polls as u128, 1, 1_000_000);
        range(
            "max-stream-seconds",
            self.max_stream_duration.as_secs() as u128,
            1,
            week,
        );
        range(
            "drain-timeout",
            self.drain_timeout.as_secs() as u128,
            0,
            week,
        );
        problems
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
    serve_with(listener, engine, config, shutdown, route).await;
}

/// What answers a request: the router, or a stand-in in tests.
pub(crate) type Handler =
    fn(Arc<App>, Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

fn route(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
    Box::pin(handle(app, req))
}

pub(crate) async fn serve_with(
    listener: TcpListener,
    engine: Engine,
    config: HttpConfig,
    shutdown: impl Future<Output = ()>,
    handler: Handler,
) {
    let drain_timeout = config.drain_timeout;
    let header_read_timeout = config.header_read_timeout;
    // hyper enforces its buffer size only roughly (a single read may take more); it is the hard
    // bound, and the router checks the configured limit exactly.
    let max_head_bytes = config.max_head_bytes.saturating_mul(2).max(8192);
    let configured_head_bytes = config.max_head_bytes;
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let app = Arc::new(App {
        engine,
        long_polls: LongPolls::new(config.max_long_polls, config.max_followers_per_job),
        config,
        metrics: Default::default(),
        next_request: Default::default(),
    });
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // A permit per connection: at the limit, the loop stops accepting until one closes.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
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
                let method = req.method().clone();
                // Only the path is logged: the query string may hold an API key.
                let path = req.uri().path().to_owned();
                // Each request runs in its own task, so a panic in a handler is caught here and
                // answered with 500 instead of taking the connection, or the server, down.
                let response = match tokio::spawn(handler(app, req)).await {
                    Ok(response) => response,
                    Err(e) => {
                        tracing::error!(%method, %path, error = %e, "request handler panicked");
                        internal_error()
                    }
                };
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let io = TokioIo::new(Explained::new(stream, configured_head_bytes));
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .max_buf_size(max_head_bytes)
            .serve_connection(io, service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
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

mod explain;
#[cfg(test)]
mod tests;
