//! `holt-client`: typed async calls over Holt's HTTP API (trigger, status and waiting, logs as
//! a stream, cancel, and the operators' listings), for the `holt` command line and for Rust
//! services that call Holt.
//!
//! It speaks plain HTTP/1.1 over hyper's own client connection (`hyper::client::conn` with
//! hyper-util's tokio glue), one connection per call, so there is no second HTTP stack and no
//! TLS: put a TLS-terminating proxy in front of holtd to reach it across machines. It may
//! depend on `holt-domain` (statuses, trigger sources), hyper, hyper-util and tokio; it must
//! not depend on the engine, the stores or the HTTP server crate. The key is sent in the
//! `X-ApiKey` header, never in a URL. Every failure is one [`Error`]: the server refused (with
//! its status code and one-line reason), the server could not be reached, or the server
//! answered what the API does not promise.
//!
//! ```no_run
//! # async fn run() -> Result<(), holt_client::Error> {
//! use holt_client::{Client, LogFormat, LogOptions};
//!
//! let client = Client::new("http://127.0.0.1:8446")?.with_key("secure123");
//! let job = client
//!     .trigger("hdars", &[("TargetServer", "web1")], None)
//!     .await?;
//! let mut log = client
//!     .logs(&job.token, LogOptions { follow: true, format: LogFormat::Text, offset: 0 })
//!     .await?;
//! while let Some(text) = log.chunk().await? {
//!     print!("{}", String::from_utf8_lossy(&text));
//! }
//! let status = client.wait_for_end(&job.token).await?;
//! println!("{} ended {status}", job.token);
//! # Ok(())
//! # }
//! ```

mod error;
mod listing;
mod outputs;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::TokioIo;

pub use error::Error;
pub use holt_domain::{JobStatus, TriggerSource};
pub use listing::{JobInfo, JobPage, JobQuery, Targets, TemplateInfo, VariableInfo};
pub use outputs::Ran;

/// How long connecting to the server may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest one status call waits on the server (the server's own bound).
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The most of a non-streamed answer read into memory: listings are bounded pages, and a
/// refusal is one line.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// A handle on one holtd: its address and the key sent with every call. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    /// `host:port` to connect to.
    authority: String,
    /// The path the API's paths are appended to (empty, or a proxy's prefix without a final
    /// slash).
    prefix: String,
    key: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is never shown.
        f.debug_struct("Client")
            .field("authority", &self.authority)
            .field("prefix", &self.prefix)
            .field("key", &self.key.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// A trigger's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triggered {
    /// The job's token.
    pub token: String,
    /// True when an idempotency key or the template's policy answered with an existing job.
    pub existing: bool,
}

/// How a log body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Otter's `LEVEL: text` lines.
    #[default]
    Text,
    /// One JSON object per entry.
    Ndjson,
}

/// What part of a log to read, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOptions {
    /// Keep the body open and stream entries as they are logged, until the job ends.
    pub follow: bool,
    /// Text or ndjson.
    pub format: LogFormat,
    /// The first entry's sequence number.
    pub offset: u64,
}

/// A log body as it arrives.
#[derive(Debug)]
pub struct LogStream {
    body: Incoming,
    /// The job's status when the body started.
    pub status: Option<JobStatus>,
    /// For a body that is not followed, the offset to read from next time.
    pub next_offset: Option<u64>,
}

impl LogStream {
    /// The next piece of the body, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        while let Some(frame) = self.body.frame().await {
            let frame =
                frame.map_err(|e| Error::unreachable("the log stream broke", Box::new(e)))?;
            if let Ok(data) = frame.into_data() {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }
}

/// What a cancel found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canceled {
    /// The job is canceled and ended with this status (`Error`).
    Stopped(JobStatus),
    /// The job was still ending when the call stopped waiting.
    Stopping,
    /// The job had already ended, with this status.
    AlreadyEnded(JobStatus),
}

impl Client {
    /// A client of the holtd at `url` (`http://host:port`, optionally with a path prefix).
    pub fn new(url: &str) -> Result<Client, Error> {
        let bad = |why: &str| Error::InvalidUrl(format!("{url:?}: {why}"));
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(bad(
                    "https is not supported; reach holtd over http (behind a TLS proxy)",
                ));
            }
            _ => return Err(bad("use http://host:port")),
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user names in the URL are not supported; use the key"));
        }
        let port = authority.port_u16().unwrap_or(80);
        let host = authority.host();
        Ok(Client {
            authority: format!("{host}:{port}"),
            prefix: uri.path().trim_end_matches('/').to_owned(),
            key: None,
        })
    }

    /// The same client, sending `key` (a template's key or an admin key) with every call.
    pub fn with_key(mut self, key: impl Into<String>) -> Client {
        self.key = Some(key.into());
        self
    }

    /// Triggers a job of `template` with `variables` and, optionally, an idempotency key.
    pub async fn trigger<N: AsRef<str>, V: AsRef<str>>(
        &self,
        template: &str,
        variables: &[(N, V)],
        idempotency_key: Option<&str>,
    ) -> Result<Triggered, Error> {
        let (headers, body) = trigger_form(&[("template", template)], variables, idempotency_key)?;
        let response = self
            .send(Method::POST, "/api/jobs/trigger", headers, body.into())
            .await?;
        let existing = response.headers().contains_key("x-holt-existing-job");
        let token = read_answer(response).await?;
        Ok(Triggered { token, existing })
    }

    /// A job's status now.
    pub async fn status(&self, token: &str) -> Result<JobStatus, Error> {
        self.status_call(token, None).await
    }

    /// A job's status once it ends or `at_most` passes (at most [`MAX_WAIT`]), whichever comes
    /// first: the server answers as soon as the job ends.
    pub async fn wait(&self, token: &str, at_most: Duration) -> Result<JobStatus, Error> {
        self.status_call(token, Some(at_most.min(MAX_WAIT))).await
    }

    /// A job's final status, however long it takes: long waits one after another.
    pub async fn wait_for_end(&self, token: &str) -> Result<JobStatus, Error> {
        loop {
            let status = self.wait(token, MAX_WAIT).await?;
            if status.is_terminal() {
                return Ok(status);
            }
        }
    }

    async fn status_call(&self, token: &str, wait: Option<Duration>) -> Result<JobStatus, Error> {
        let wait = wait.map(|w| format!("{:.3}", w.as_secs_f64()));
        let mut pairs = vec![("token", token)];
        if let Some(wait) = &wait {
            pairs.push(("wait", wait));
        }
        let path = with_query("/api/jobs/status", &pairs)?;
        let response = self
            .send(Method::GET, &path, Vec::new(), Bytes::new())
            .await?;
        parse_status(&read_answer(response).await?)
    }

    /// A job's log, from `options.offset`, followed until the job ends if asked.
    pub async fn logs(&self, token: &str, options: LogOptions) -> Result<LogStream, Error> {
        let offset = options.offset.to_string();
        let format = match options.format {
            LogFormat::Text => "text",
            LogFormat::Ndjson => "ndjson",
        };
        let follow = if options.follow { "true" } else { "false" };
        let path = with_query(
            "/api/jobs/logs",
            &[
                ("token", token),
                ("offset", &offset),
                ("format", format),
                ("follow", follow),
            ],
        )?;
        let response = self
            .send(Method::GET, &path, Vec::new(), Bytes::new())
            .await?;
        if !response.status().is_success() {
            return Err(refusal(response).await);
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let status = header("x-holt-status").and_then(|s| s.parse().ok());
        let next_offset = header("x-holt-next-offset").and_then(|s| s.parse().ok());
        Ok(LogStream {
            body: response.into_body(),
            status,
            next_offset,
        })
    }

    /// Cancels a job and waits (as the server does) for it to end.
    pub async fn cancel(&self, token: &str) -> Result<Canceled, Error> {
        let path = with_query("/api/jobs/cancel", &[("token", token)])?;
        let response = self
            .send(Method::POST, &path, Vec::new(), Bytes::new())
            .await?;
        let code = response.status().as_u16();
        if !matches!(code, 200 | 202 | 409) {
            return Err(refusal(response).await);
        }
        let status = parse_status(&read_body(response).await?)?;
        Ok(match code {
            200 => Canceled::Stopped(status),
            202 => Canceled::Stopping,
            _ => Canceled::AlreadyEnded(status),
        })
    }

    /// A page of jobs, newest first (needs an admin key).
    pub async fn list_jobs(&self, query: &JobQuery) -> Result<JobPage, Error> {
        let pairs = query.pairs();
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let path = with_query("/api/jobs/list", &pairs)?;
        let response = self
            .send(Method::GET, &path, Vec::new(), Bytes::new())
            .await?;
        listing::parse_jobs(&read_answer(response).await?)
    }

    /// Every loaded template in name order (needs an admin key).
    pub async fn list_templates(&self) -> Result<Vec<TemplateInfo>, Error> {
        let response = self
            .send(Method::GET, "/api/templates/list", Vec::new(), Bytes::new())
            .await?;
        listing::parse_templates(&read_answer(response).await?)
    }

    /// Sends one request on a new connection and returns the response, its body unread.
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: Vec<(header::HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> Result<Response<Incoming>, Error> {
        let unreachable = |e| Error::unreachable(&format!("cannot reach {}", self.authority), e);
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect(&self.authority),
        )
        .await
        .map_err(|_| Error::Unreachable {
            reason: format!(
                "cannot reach {}: no answer within {} seconds",
                self.authority,
                CONNECT_TIMEOUT.as_secs()
            ),
            source: None,
        })?
        .map_err(|e| unreachable(Box::new(e)))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(Box::new(e)))?;
        // The connection is driven by a task of its own; it ends when the response body has
        // been read or dropped.
        tokio::spawn(connection);
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(header::HOST, &self.authority);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        if let Some(key) = &self.key {
            let value = HeaderValue::from_str(key)
                .map_err(|_| Error::Protocol("the key is not a valid header value".into()))?;
            builder = builder.header("x-apikey", value);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| Error::Protocol(e.to_string()))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(Box::new(e)))
    }
}

/// A trigger's form body (`fixed` pairs, then the variables) and headers.
pub(crate) fn trigger_form<N: AsRef<str>, V: AsRef<str>>(
    fixed: &[(&str, &str)],
    variables: &[(N, V)],
    idempotency_key: Option<&str>,
) -> Result<(Vec<(header::HeaderName, HeaderValue)>, String), Error> {
    let mut pairs: Vec<(&str, &str)> = fixed.to_vec();
    pairs.extend(variables.iter().map(|(n, v)| (n.as_ref(), v.as_ref())));
    let body = serde_urlencoded::to_string(&pairs).map_err(|e| Error::Protocol(e.to_string()))?;
    let mut headers = vec![(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    )];
    if let Some(key) = idempotency_key {
        let value = HeaderValue::from_str(key)
            .map_err(|_| Error::Protocol("the idempotency key is not a header value".into()))?;
        headers.push((header::HeaderName::from_static("idempotency-key"), value));
    }
    Ok((headers, body))
}

/// `path?query`, form-encoded.
fn with_query(path: &str, pairs: &[(&str, &str)]) -> Result<String, Error> {
    let query = serde_urlencoded::to_string(pairs).map_err(|e| Error::Protocol(e.to_string()))?;
    Ok(if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    })
}

fn parse_status(text: &str) -> Result<JobStatus, Error> {
    text.parse()
        .map_err(|_| Error::Protocol(format!("not a job status: {text:?}")))
}

/// The body of a successful answer as text; a refusal otherwise.
async fn read_answer(response: Response<Incoming>) -> Result<String, Error> {
    if !response.status().is_success() {
        return Err(refusal(response).await);
    }
    read_body(response).await
}

async fn read_body(response: Response<Incoming>) -> Result<String, Error> {
    let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| Error::Unreachable {
            reason: "the answer broke off".into(),
            source: Some(e),
        })?
        .to_bytes();
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::Protocol("the answer is not UTF-8".into()))
}

/// A refusal: the status code and the server's one line.
async fn refusal(response: Response<Incoming>) -> Error {
    let status = response.status().as_u16();
    let reason = match read_body(response).await {
        Ok(text) => text.lines().next().unwrap_or("").trim().to_owned(),
        Err(e) => e.to_string(),
    };
    Error::Refused { status, reason }
}
