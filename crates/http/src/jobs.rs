//! The job endpoints: trigger, status, logs and cancel.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use holt_domain::{
    JobStatus, JobToken, LogEntry, TemplateName, TriggerSource, VarName, Variables, format_entry,
};
use holt_engine::{Canceled, Engine, LogFollower, TextPage, Triggered};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::body::Body;
use crate::limits::LongPoll;
use crate::routes::{Answer, App, Call, Refusal, check_key, job_for, read_call, text};

/// The most text one read of a log body takes, and so about what a streamed body holds per
/// chunk: a reader that does not read holds the few chunks of its channel and no more, and a
/// page this size is still large enough that a whole log streams in few round trips.
const PAGE_BYTES: usize = 256 * 1024;

/// The most entry text one page of an ndjson body takes: rendered with its JSON fields around
/// it, a page comes to about `PAGE_BYTES` for short lines.
const ENTRIES_PAGE_BYTES: usize = PAGE_BYTES / 2;

/// The longest a status call may wait for its job to end.
pub(crate) const MAX_WAIT_SECONDS: f64 = 60.0;

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

pub(crate) async fn trigger(app: Arc<App>, req: Request<Incoming>) -> Answer {
    let call = read_call(&app, req).await?;
    let triggered = start(&app, call).await?;
    let mut response = text(StatusCode::OK, triggered.token().to_string());
    if let Triggered::Existing(_) = triggered {
        response
            .headers_mut()
            .insert("x-holt-existing-job", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Triggers the job a call asks for: its template, key, `Idempotency-Key` and variables
/// checked as the trigger endpoint documents. What `trigger` and `run` share.
pub(crate) async fn start(app: &App, mut call: Call) -> Result<Triggered, Refusal> {
    let name = call
        .params
        .take("template")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Refusal::bad("missing template parameter"))?;
    let name: TemplateName = name
        .parse()
        .map_err(|e: holt_domain::DomainError| Refusal::bad(e.to_string()))?;
    let template =
        app.engine.templates().get(&name).cloned().ok_or_else(|| {
            Refusal::new(StatusCode::NOT_FOUND, format!("no template named {name}"))
        })?;
    if !template.allow_api {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!("template {name} does not allow API use"),
        ));
    }
    check_key(app, &template, call.key.as_deref())?;
    let idempotency_key = match call.headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let key = value
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
                .ok_or_else(|| {
                    Refusal::bad(format!(
                        "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                    ))
                })?;
            Some(key.to_owned())
        }
    };
    let pairs = std::mem::take(&mut call.params).into_pairs();
    if pairs.len() > app.config.max_variables {
        return Err(Refusal::bad(format!(
            "too many variables: at most {} are allowed",
            app.config.max_variables
        )));
    }
    let mut variables = Variables::new();
    for (written, value) in pairs {
        let var: VarName = written
            .parse()
            .map_err(|e: holt_domain::DomainError| Refusal::bad(e.to_string()))?;
        if value.len() > app.config.max_variable_bytes {
            return Err(Refusal::bad(format!(
                "variable {var} is longer than {} bytes",
                app.config.max_variable_bytes
            )));
        }
        if variables.contains(&var) {
            return Err(Refusal::bad(format!(
                "variable {var} is given more than once"
            )));
        }
        variables.insert(var, value);
    }
    template.check_variables(&variables).map_err(Refusal::bad)?;
    let source = source_of(&call.headers)?;
    Ok(app
        .engine
        .trigger_from(&template, &variables, idempotency_key.as_deref(), source)
        .await?)
}

/// What a trigger says triggered it, in its `X-Holt-Source` header: `api` (the default) or
/// `ui` (the web UI sends it). Only holtd's own scheduler triggers as `schedule`.
pub(crate) fn source_of(headers: &hyper::HeaderMap) -> Result<TriggerSource, Refusal> {
    match headers.get("x-holt-source").map(HeaderValue::as_bytes) {
        None | Some(b"api") => Ok(TriggerSource::Api),
        Some(b"ui") => Ok(TriggerSource::Ui),
        Some(_) => Err(Refusal::bad("X-Holt-Source must be api or ui")),
    }
}

/// Parses an optional non-negative number of seconds no larger than `max`.
pub(crate) fn seconds_param(
    call: &mut Call,
    name: &str,
    max: f64,
) -> Result<Option<Duration>, Refusal> {
    let Some(text) = call.params.take(name)? else {
        return Ok(None);
    };
    let value: f64 = text
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| (0.0..=max).contains(v))
        .ok_or_else(|| {
            Refusal::bad(format!(
                "{name} must be a number of seconds from 0 to {max}"
            ))
        })?;
    Ok(Some(Duration::from_secs_f64(value)))
}

pub(crate) async fn status(app: Arc<App>, req: Request<Incoming>) -> Answer {
    let mut call = read_call(&app, req).await?;
    let wait = seconds_param(&mut call, "wait", MAX_WAIT_SECONDS)?;
    let (token, mut status) = job_for(&app, &mut call).await?;
    if let Some(wait) = wait.filter(|w| !status.is_terminal() && !w.is_zero()) {
        let _slot = LongPoll::wait(&app)?;
        status = app
            .engine
            .wait(token, wait)
            .await?
            .ok_or_else(|| Refusal::bad("unknown token"))?;
    }
    let mut response = text(StatusCode::OK, status.as_str());
    if status == JobStatus::Pending
        && let Some(position) = app.engine.queue_position(token).await
    {
        response
            .headers_mut()
            .insert("x-holt-queue-position", HeaderValue::from(position));
    }
    Ok(response)
}

/// How a log body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Otter's `LEVEL: text` lines.
    Text,
    /// One JSON object per entry.
    Ndjson,
}

fn render(format: Format, entries: &[LogEntry]) -> Bytes {
    let mut out = String::with_capacity(entries.len() * 64);
    for entry in entries {
        match format {
            Format::Text => format_entry(&mut out, entry),
            Format::Ndjson => {
                let time =
                    std::time::UNIX_EPOCH + Duration::from_millis(entry.time_ms.max(0) as u64);
                let line = serde_json::json!({
                    "sequence": entry.seq,
                    "time": humantime::format_rfc3339_millis(time).to_string(),
                    "level": entry.level.as_str(),
                    "scope": entry.scope.segments(),
                    "text": entry.text,
                });
                out.push_str(&line.to_string());
                out.push('\n');
            }
        }
    }
    Bytes::from(out)
}

pub(crate) async fn logs(app: Arc<App>, req: Request<Incoming>) -> Answer {
    let mut call = read_call(&app, req).await?;
    let offset = match call.params.take("offset")? {
        None => 0,
        Some(text) => text
            .parse::<u64>()
            .map_err(|_| Refusal::bad("offset must be a whole number from 0"))?,
    };
    let follow = match call.params.take("follow")?.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => return Err(Refusal::bad("follow must be true or false")),
    };
    let format = match call.params.take("format")?.as_deref() {
        None | Some("text") => Format::Text,
        Some("ndjson") => Format::Ndjson,
        Some(_) => return Err(Refusal::bad("format must be text or ndjson")),
    };
    // The status is read before the end of the log: a job whose status is terminal has all
    // of its log committed, so a body read after it is complete.
    let (token, status) = job_for(&app, &mut call).await?;
    let follower = if follow {
        app.engine.follow_log(token).await?
    } else {
        None
    };
    let (tx, body) = Body::channel();
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(match format {
            Format::Text => "text/plain; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }),
    );
    headers.insert("x-holt-status", HeaderValue::from_static(status.as_str()));
    if let Some(follower) = follower {
        let slot = LongPoll::follow(&app, token)?;
        let deadline = tokio::time::Instant::now() + app.config.max_stream_duration;
        tokio::spawn(follow_log(follower, offset, format, tx, slot, deadline));
        return Ok(response);
    }
    let next = app.engine.log_end(token).await?.max(offset);
    headers.insert("x-holt-next-offset", HeaderValue::from(next));
    // The first page is read before answering, so a store failure is still a clean 503.
    let engine = app.engine.clone();
    if format == Format::Text {
        let first = engine
            .log_text_page(token, offset, next, PAGE_BYTES)
            .await?;
        tokio::spawn(stream_text(engine, token, next, first, tx));
        return Ok(response);
    }
    let first = engine
        .log_entries(token, offset, ENTRIES_PAGE_BYTES)
        .await?;
    tokio::spawn(stream_entries(engine, token, next, first, tx));
    Ok(response)
}

type Sender = tokio::sync::mpsc::Sender<Result<Bytes, crate::body::BodyError>>;

/// Streams a text log body up to `next`, reading each page while the previous one is sent.
/// The channel holds a few pages, so a reader that does not read stops the reads.
async fn stream_text(engine: Engine, token: JobToken, next: u64, first: TextPage, tx: Sender) {
    let TextPage { mut text, mut last } = first;
    while let Some(seq) = last {
        let more = seq + 1 < next;
        let send = tx.send(Ok(Bytes::from(std::mem::take(&mut text))));
        let read = async {
            if more {
                engine.log_text_page(token, seq + 1, next, PAGE_BYTES).await
            } else {
                Ok(TextPage::default())
            }
        };
        let (sent, read) = tokio::join!(send, read);
        if sent.is_err() {
            return;
        }
        match read {
            Ok(page) => {
                text = page.text;
                last = page.last;
            }
            Err(e) => return fail(&tx, token, e).await,
        }
    }
}

/// Streams an ndjson log body up to `next`, page by page.
async fn stream_entries(
    engine: Engine,
    token: JobToken,
    next: u64,
    first: Vec<LogEntry>,
    tx: Sender,
) {
    let mut page = first;
    loop {
        page.retain(|e| e.seq < next);
        let Some(last) = page.last().map(|e| e.seq) else {
            return;
        };
        if tx.send(Ok(render(Format::Ndjson, &page))).await.is_err() || last + 1 >= next {
            return;
        }
        page = match engine
            .log_entries(token, last + 1, ENTRIES_PAGE_BYTES)
            .await
        {
            Ok(page) => page,
            Err(e) => return fail(&tx, token, e).await,
        };
    }
}

/// Ends a body whose read failed half-way: the connection is closed rather than a short body
/// passing for a whole one.
async fn fail(tx: &Sender, token: JobToken, e: holt_engine::EngineError) {
    tracing::error!(job = %token, error = %e, "log read failed mid-body");
    let _ = tx.send(Err(Box::new(e))).await;
}

/// Streams a job's log as it is committed, until the job has ended and every entry is sent, the
/// client goes away, or the stream's lifetime is over (the body then ends cleanly, and the
/// client goes on with `offset`). The long-poll slot is held for as long.
async fn follow_log(
    mut follower: LogFollower,
    mut next: u64,
    format: Format,
    tx: Sender,
    _slot: LongPoll,
    deadline: tokio::time::Instant,
) {
    loop {
        let page = tokio::select! {
            page = follower.next(next, ENTRIES_PAGE_BYTES) => page,
            () = tokio::time::sleep_until(deadline) => return,
            () = tx.closed() => return,
        };
        match page {
            Ok(Some(page)) => {
                next = page.last().map_or(next, |e| e.seq + 1);
                if tx.send(Ok(render(format, &page))).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "log read failed mid-body");
                let _ = tx.send(Err(Box::new(e))).await;
                return;
            }
        }
    }
}

pub(crate) async fn cancel(app: Arc<App>, req: Request<Incoming>) -> Answer {
    let mut call = read_call(&app, req).await?;
    let (token, _) = job_for(&app, &mut call).await?;
    match app.engine.cancel(token).await? {
        Canceled::Stopped(status) => Ok(text(StatusCode::OK, status.as_str())),
        Canceled::Stopping => Ok(text(StatusCode::ACCEPTED, JobStatus::Executing.as_str())),
        Canceled::AlreadyEnded(status) => Ok(text(StatusCode::CONFLICT, status.as_str())),
        Canceled::Unknown => Err(Refusal::bad("unknown token")),
    }
}
