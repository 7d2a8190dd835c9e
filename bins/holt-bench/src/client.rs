//! The load generator: HTTP/1.1 keep-alive connections, each sending requests back to back,
//! bounded by a request count and a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HOST, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::BoxError;

/// One keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub(crate) struct Client {
    sender: SendRequest<Empty<Bytes>>,
    host: HeaderValue,
}

impl Client {
    /// Connects to `addr` (with `TCP_NODELAY`, as a load generator like wrk does).
    pub(crate) async fn connect(addr: SocketAddr) -> Result<Client, BoxError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the client is dropped or the server closes it; either
            // way the request that needed it reports the error.
            let _ = connection.await;
        });
        Ok(Client {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    /// Sends `GET path` and returns the response with its body unread.
    pub(crate) async fn send(&mut self, path: &str) -> Result<Response<Incoming>, BoxError> {
        self.sender.ready().await?;
        let request = Request::get(path)
            .header(HOST, self.host.clone())
            .body(Empty::new())?;
        Ok(self.sender.send_request(request).await?)
    }

    /// Sends `GET path` and returns the status code and the whole body.
    pub(crate) async fn get(&mut self, path: &str) -> Result<(u16, Bytes), BoxError> {
        let response = self.send(path).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// Sends one `POST path` with a JSON `body` and `headers` on a connection of its own, and
/// returns the status code and the whole answer.
pub(crate) async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, Bytes), BoxError> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = Request::post(path)
        .header(HOST, addr.to_string())
        .header(hyper::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(http_body_util::Full::new(Bytes::from(body.to_owned())))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// How a load run is bounded and what it keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// Concurrent keep-alive connections.
    pub(crate) connections: usize,
    /// No request starts after this long.
    pub(crate) duration: Duration,
    /// No more than this many requests start.
    pub(crate) max_requests: u64,
    /// Keep each request's latency.
    pub(crate) keep_latencies: bool,
    /// Keep the body of each 200 answer, with the request's index.
    pub(crate) keep_bodies: bool,
}

impl Load {
    /// `connections` connections for at most `duration`, with no count bound.
    pub(crate) fn timed(connections: usize, duration: Duration) -> Load {
        Load {
            connections,
            duration,
            max_requests: u64::MAX,
            keep_latencies: false,
            keep_bodies: false,
        }
    }

    /// `count` requests over `connections` connections, within at most `duration`.
    pub(crate) fn counted(connections: usize, count: u64, duration: Duration) -> Load {
        Load {
            connections,
            duration,
            max_requests: count,
            keep_latencies: false,
            keep_bodies: false,
        }
    }

    pub(crate) fn with_latencies(mut self) -> Load {
        self.keep_latencies = true;
        self
    }

    pub(crate) fn with_bodies(mut self) -> Load {
        self.keep_bodies = true;
        self
    }
}

/// What a load run measured.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Requests answered 200.
    pub(crate) ok: u64,
    /// Requests answered with another status, or lost with their connection.
    pub(crate) failed: u64,
    /// The first failure, to show.
    pub(crate) first_failure: Option<String>,
    /// From the start of the first request to the end of the last.
    pub(crate) elapsed: Duration,
    /// Latency of every answered request, in microseconds (when kept).
    pub(crate) latencies_us: Vec<u32>,
    /// `(request index, body)` of every 200 answer (when kept).
    pub(crate) bodies: Vec<(u64, Bytes)>,
}

impl Outcome {
    /// 200 answers per second.
    pub(crate) fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A note about failures, if there were any.
    pub(crate) fn failure_note(&self, what: &str) -> Option<String> {
        (self.failed > 0).then(|| {
            format!(
                "{what}: {} of {} requests failed; first: {}",
                self.failed,
                self.failed + self.ok,
                self.first_failure.as_deref().unwrap_or("?")
            )
        })
    }

    fn merge(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.failed += other.failed;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
        self.latencies_us.extend(other.latencies_us);
        self.bodies.extend(other.bodies);
    }
}

/// Runs `load` against `addr`: request `i` is `GET path(i)`; `observe(i, body)` sees every 200
/// answer as it arrives. Connections are opened before the clock starts.
pub(crate) async fn run<P, O>(
    addr: SocketAddr,
    load: Load,
    path: P,
    observe: O,
) -> Result<Outcome, BoxError>
where
    P: Fn(u64) -> String + Send + Sync + 'static,
    O: Fn(u64, &Bytes) + Send + Sync + 'static,
{
    run_on(&[addr], load, path, observe).await
}

/// Runs `load` as [`run`] does, against several servers: connection `j` goes to
/// `addrs[j % addrs.len()]`, so the connections, and with them the requests, are spread
/// round-robin, as a load balancer without stickiness would spread them.
pub(crate) async fn run_on<P, O>(
    addrs: &[SocketAddr],
    load: Load,
    path: P,
    observe: O,
) -> Result<Outcome, BoxError>
where
    P: Fn(u64) -> String + Send + Sync + 'static,
    O: Fn(u64, &Bytes) + Send + Sync + 'static,
{
    if addrs.is_empty() {
        return Err("no server to send the load to".into());
    }
    let mut clients = Vec::with_capacity(load.connections);
    for j in 0..load.connections {
        clients.push(Client::connect(addrs[j % addrs.len()]).await?);
    }
    let path = Arc::new(path);
    let observe = Arc::new(observe);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + load.duration;
    let mut workers = Vec::with_capacity(clients.len());
    for mut client in clients {
        let path = path.clone();
        let observe = observe.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= load.max_requests {
                    break;
                }
                let target = path(i);
                let sent = Instant::now();
                match client.get(&target).await {
                    Ok((200, body)) => {
                        outcome.ok += 1;
                        if load.keep_latencies {
                            let micros = sent.elapsed().as_micros();
                            outcome
                                .latencies_us
                                .push(micros.min(u32::MAX as u128) as u32);
                        }
                        observe(i, &body);
                        if load.keep_bodies {
                            outcome.bodies.push((i, body));
                        }
                    }
                    Ok((status, body)) => {
                        outcome.failed += 1;
                        if load.keep_latencies {
                            let micros = sent.elapsed().as_micros();
                            outcome
                                .latencies_us
                                .push(micros.min(u32::MAX as u128) as u32);
                        }
                        outcome.first_failure.get_or_insert_with(|| {
                            format!(
                                "{status} {}",
                                String::from_utf8_lossy(&body[..body.len().min(200)]).trim()
                            )
                        });
                    }
                    Err(e) => {
                        // The connection is gone; this worker stops rather than reconnecting,
                        // so a failing server shows up as failures, not as a stalled run.
                        outcome.failed += 1;
                        outcome
                            .first_failure
                            .get_or_insert_with(|| format!("transport error: {e}"));
                        break;
                    }
                }
            }
            outcome
        }));
    }
    let mut total = Outcome::default();
    for worker in workers {
        total.merge(worker.await?);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// The `q` quantile (0..=1) of sorted latencies, nearest rank, in milliseconds.
pub(crate) fn quantile_ms(sorted_us: &[u32], q: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    Some(f64::from(sorted_us[rank - 1]) / 1000.0)
}
