//! Routing, what every endpoint shares, and the small endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use holt_domain::{JobStatus, JobToken, Template};
use holt_engine::{Engine, EngineError};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::body::Body;
use crate::jobs;
use crate::limits::LongPolls;
use crate::metrics::HttpMetrics;
use crate::params::{BadParams, Params};
use crate::server::HttpConfig;

/// What every endpoint shares.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) engine: Engine,
    pub(crate) config: HttpConfig,
    pub(crate) metrics: HttpMetrics,
    /// Slots of status calls that wait and logs that follow.
    pub(crate) long_polls: LongPolls,
    /// Numbers requests for the server's own log.
    pub(crate) next_request: AtomicU64,
}

/// A refusal: a status code and one line saying what was wrong.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    reason: String,
    /// Seconds after which a retry may succeed, sent as `Retry-After`.
    retry_after: Option<u32>,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        // A reason may quote what the client sent (a member's name, a bad value); escaping its
        // control characters keeps every refusal to one line whatever was sent.
        let reason = reason.into();
        let reason = if holt_domain::needs_escape(&reason) {
            let mut line = String::with_capacity(reason.len() + 8);
            holt_domain::push_escaped(&mut line, &reason);
            line
        } else {
            reason
        };
        Refusal {
            status,
            reason,
            retry_after: None,
        }
    }

    pub(crate) fn bad(reason: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, reason)
    }

    pub(crate) fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub(crate) fn into_response(self) -> Response<Body> {
        let mut response = text(self.status, self.reason);
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<BadParams> for Refusal {
    fn from(e: BadParams) -> Self {
        Refusal::bad(e.0)
    }
}

impl From<EngineError> for Refusal {
    fn from(e: EngineError) -> Self {
        match &e {
            EngineError::QueueFull { .. } => {
                tracing::warn!(error = %e, "trigger refused");
                Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).retry_after(5)
            }
            EngineError::AtLimit { .. } => {
                Refusal::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()).retry_after(5)
            }
            EngineError::Conflict(reason) => Refusal::new(StatusCode::CONFLICT, reason.clone()),
            _ => {
                tracing::error!(error = %e, "request failed");
                Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).retry_after(1)
            }
        }
    }
}

pub(crate) type Answer = Result<Response<Body>, Refusal>;

/// An endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Trigger,
    Status,
    Logs,
    Cancel,
    ListJobs,
    ShowJob,
    Rerun,
    ListTemplates,
    Healthz,
    Metrics,
    Outputs,
    Run,
}

/// Every route the server answers: its path, its methods and its endpoint.
const ROUTES: &[(&str, &[Method], Endpoint)] = &[
    (
        "/api/jobs/trigger",
        &[Method::GET, Method::POST],
        Endpoint::Trigger,
    ),
    (
        "/api/jobs/status",
        &[Method::GET, Method::POST],
        Endpoint::Status,
    ),
    (
        "/api/jobs/logs",
        &[Method::GET, Method::POST],
        Endpoint::Logs,
    ),
    ("/api/jobs/cancel", &[Method::POST], Endpoint::Cancel),
    ("/api/jobs/list", &[Method::GET], Endpoint::ListJobs),
    ("/api/jobs/show", &[Method::GET], Endpoint::ShowJob),
    ("/api/jobs/rerun", &[Method::POST], Endpoint::Rerun),
    (
        "/api/templates/list",
        &[Method::GET],
        Endpoint::ListTemplates,
    ),
    ("/healthz", &[Method::GET], Endpoint::Healthz),
    ("/metrics", &[Method::GET], Endpoint::Metrics),
    (
        "/api/jobs/outputs",
        &[Method::GET, Method::POST],
        Endpoint::Outputs,
    ),
    ("/api/jobs/run", &[Method::GET, Method::POST], Endpoint::Run),
];

/// The routes the server answers, as paths and method names, for documentation checks.
pub fn routes() -> Vec<(&'static str, Vec<&'static str>)> {
    ROUTES
        .iter()
        .map(|(path, methods, _)| (*path, methods.iter().map(Method::as_str).collect()))
        .chain(
            crate::infra::ROUTE_TEMPLATES
                .iter()
                .map(|path| (*path, vec![Method::POST.as_str()])),
        )
        .collect()
}

/// Routes a request, turns refusals into their responses, and counts and logs it. Only the
/// path is logged: the query string may hold an API key.
pub(crate) async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let id = app.next_request.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = ROUTES.iter().find(|(p, _, _)| *p == path);
    let infra = route.is_none() && path.starts_with(crate::infra::PREFIX);
    let ui = route.is_none().then(|| crate::ui::asset(&path)).flatten();
    let response = match ui {
        Some(asset) => {
            crate::ui::serve(&app, asset, &method).unwrap_or_else(Refusal::into_response)
        }
        None => route_request(app.clone(), route, req).await,
    };
    let elapsed = started.elapsed();
    app.metrics.observe(
        if infra {
            "/api/infrastructure"
        } else if ui.is_some() {
            "ui"
        } else {
            route.map_or("other", |(p, _, _)| p)
        },
        response.status().as_u16(),
        elapsed,
    );
    tracing::debug!(request = id, %method, %path, status = response.status().as_u16(), micros = elapsed.as_micros() as u64, "request");
    response
}

async fn route_request(
    app: Arc<App>,
    route: Option<&(&str, &[Method], Endpoint)>,
    req: Request<Incoming>,
) -> Response<Body> {
    let head: usize = req.uri().to_string().len()
        + req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if head > app.config.max_head_bytes {
        return Refusal::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "request head is larger than {} bytes",
                app.config.max_head_bytes
            ),
        )
        .into_response();
    }
    if req.uri().path().starts_with("/api/")
        && let Err(refusal) = crate::ui::check_same_origin(req.headers())
    {
        return refusal.into_response();
    }
    let result = match route {
        None if req.uri().path().starts_with(crate::infra::PREFIX) => {
            crate::infra::handle(app, req).await
        }
        None => Err(Refusal::new(StatusCode::NOT_FOUND, "no such path")),
        Some((_, methods, _)) if !methods.contains(req.method()) => {
            let allow = methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method {} is not allowed here", req.method()),
            );
            if let Ok(value) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            Ok(response)
        }
        Some((_, _, endpoint)) => match endpoint {
            Endpoint::Trigger => jobs::trigger(app, req).await,
            Endpoint::Status => jobs::status(app, req).await,
            Endpoint::Logs => jobs::logs(app, req).await,
            Endpoint::Cancel => jobs::cancel(app, req).await,
            Endpoint::ListJobs => crate::listing::jobs(app, req).await,
            Endpoint::ShowJob => crate::listing::show(app, req).await,
            Endpoint::Rerun => crate::listing::rerun(app, req).await,
            Endpoint::ListTemplates => crate::listing::templates(app, req).await,
            Endpoint::Healthz => match app.engine.health() {
                Ok(()) => Ok(text(StatusCode::OK, "ok")),
                Err(e) => Err(Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
            },
            Endpoint::Metrics => Ok(metrics(&app).await),
            Endpoint::Outputs => crate::outputs::outputs(app, req).await,
            Endpoint::Run => crate::outputs::run(app, req).await,
        },
    };
    result.unwrap_or_else(Refusal::into_response)
}

async fn metrics(app: &App) -> Response<Body> {
    let mut out = String::new();
    app.engine.render_metrics(&mut out).await;
    app.metrics.render(&mut out);
    let mut response = text(StatusCode::OK, out);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The answer to a request whose handler failed unexpectedly.
pub(crate) fn internal_error() -> Response<Body> {
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the server's log",
    )
}

pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Body::text(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A request's parameters, its API key and its headers.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) params: Params,
    pub(crate) key: Option<String>,
    pub(crate) headers: HeaderMap,
}

/// The parameters of a request: its query string, then the body's pairs (a form, or a flat
/// JSON object of strings), and the API key from the `key` parameter (`API_Key` in JSON) or,
/// failing that, the `X-ApiKey` header.
pub(crate) async fn read_call(app: &App, req: Request<Incoming>) -> Result<Call, Refusal> {
    let (parts, body) = req.into_parts();
    let mut params = Params::default();
    if let Some(query) = parts.uri.query() {
        params.extend_form(query.as_bytes(), "query string")?;
    }
    if parts.method == Method::POST {
        // A declared length over the limit is refused before any of the body is read: the
        // client hears at once instead of after sending it all (or after the read timeout).
        // A body longer than declared, or without a declared length, meets `Limited` below.
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > app.config.max_body_bytes as u64) {
            return Err(too_large(app));
        }
        let read = Limited::new(body, app.config.max_body_bytes).collect();
        let bytes = tokio::time::timeout(app.config.body_read_timeout, read)
            .await
            .map_err(|_| {
                Refusal::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {} seconds",
                        app.config.body_read_timeout.as_secs()
                    ),
                )
            })?
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large(app)
                } else {
                    Refusal::bad("could not read the request body")
                }
            })?
            .to_bytes();
        if !bytes.is_empty() {
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let essence = content_type.split(';').next().unwrap_or("").trim();
            if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                params.extend_form(&bytes, "form body")?;
            } else if essence.eq_ignore_ascii_case("application/json") {
                params.extend_json(&bytes)?;
            } else {
                return Err(Refusal::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "a request body must be application/x-www-form-urlencoded or application/json",
                ));
            }
        }
    }
    let key = key_of(&mut params, &parts.headers)?;
    Ok(Call {
        params,
        key,
        headers: parts.headers,
    })
}

fn too_large(app: &App) -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body is larger than {} bytes",
            app.config.max_body_bytes
        ),
    )
}

/// The API key a request carries: the `key` parameter or, failing that, the `X-ApiKey` header.
pub(crate) fn key_of(params: &mut Params, headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    match params.take("key")? {
        Some(key) => Ok(Some(key)),
        None => headers
            .get("x-apikey")
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| Refusal::bad("malformed X-ApiKey header"))
            })
            .transpose(),
    }
}

/// Refuses unless the template has no key, or `key` is its key or an admin key (operators
/// read and cancel any job).
pub(crate) fn check_key(app: &App, template: &Template, key: Option<&str>) -> Result<(), Refusal> {
    match (&template.api_key, key) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(Refusal::new(StatusCode::FORBIDDEN, "missing API key")),
        (Some(expected), Some(given)) if expected.verify(given) || is_admin(app, given) => Ok(()),
        (Some(_), Some(_)) => Err(Refusal::new(StatusCode::FORBIDDEN, "invalid API key")),
    }
}

/// Whether `key` is one of the admin keys. Every key is compared, so the time taken says
/// nothing about which matched.
pub(crate) fn is_admin(app: &App, key: &str) -> bool {
    app.config
        .admin_keys
        .iter()
        .fold(false, |matched, admin| admin.verify(key) | matched)
}

/// Finds the job a request names by `token` and checks the key of its template. The template
/// is looked up as it is loaded now, so a changed key applies to jobs already run; a job whose
/// template is no longer loaded cannot be checked and is refused.
pub(crate) async fn job_for(app: &App, call: &mut Call) -> Result<(JobToken, JobStatus), Refusal> {
    let text = call
        .params
        .take("token")?
        .ok_or_else(|| Refusal::bad("missing token parameter"))?;
    let token: JobToken = text.parse().map_err(|_| Refusal::bad("invalid token"))?;
    let (template, status) = app
        .engine
        .summary(token)
        .await?
        .ok_or_else(|| Refusal::bad("unknown token"))?;
    // An admin key opens every job, those of templates no longer loaded too.
    if call.key.as_deref().is_some_and(|key| is_admin(app, key)) {
        return Ok((token, status));
    }
    let template = app
        .engine
        .templates()
        .get(&template)
        .cloned()
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::FORBIDDEN,
                format!("the job's template {template} is no longer loaded"),
            )
        })?;
    check_key(app, &template, call.key.as_deref())?;
    Ok((token, status))
}
