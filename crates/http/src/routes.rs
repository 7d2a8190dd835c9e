//! Routing and the endpoints.

use std::sync::Arc;

use bytes::Bytes;
use holt_domain::{JobToken, Template, TemplateName, VarName, Variables, format_entry};
use holt_engine::{Engine, EngineError};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::body::Body;
use crate::params::{BadParams, Params};
use crate::server::HttpConfig;

/// How many log entries one read of a streamed log body takes.
const LOG_PAGE: usize = 1024;

/// What every endpoint shares.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) engine: Engine,
    pub(crate) config: HttpConfig,
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
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            reason: reason.into(),
            retry_after: None,
        }
    }

    fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    fn into_response(self) -> Response<Body> {
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
        Refusal::new(StatusCode::BAD_REQUEST, e.0)
    }
}

impl From<EngineError> for Refusal {
    fn from(e: EngineError) -> Self {
        match &e {
            EngineError::QueueFull { .. } => {
                tracing::warn!(error = %e, "trigger refused");
                Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).retry_after(5)
            }
            _ => {
                tracing::error!(error = %e, "request failed");
                Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).retry_after(1)
            }
        }
    }
}

impl From<holt_storage::StoreError> for Refusal {
    fn from(e: holt_storage::StoreError) -> Self {
        EngineError::from(e).into()
    }
}

type Answer = Result<Response<Body>, Refusal>;

/// An endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Trigger,
    Status,
    Logs,
    Healthz,
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
    ("/healthz", &[Method::GET], Endpoint::Healthz),
];

/// The routes the server answers, as paths and method names, for documentation checks.
pub fn routes() -> Vec<(&'static str, Vec<&'static str>)> {
    ROUTES
        .iter()
        .map(|(path, methods, _)| (*path, methods.iter().map(Method::as_str).collect()))
        .collect()
}

/// Routes a request and turns refusals into their responses.
pub(crate) async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
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
    let result = match ROUTES.iter().find(|(path, _, _)| *path == req.uri().path()) {
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
            Endpoint::Trigger => trigger(app, req).await,
            Endpoint::Status => status(app, req).await,
            Endpoint::Logs => logs(app, req).await,
            Endpoint::Healthz => healthz(app, req).await,
        },
    };
    result.unwrap_or_else(Refusal::into_response)
}

/// The answer to a request whose handler failed unexpectedly.
pub(crate) fn internal_error() -> Response<Body> {
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the server's log",
    )
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Body::text(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The parameters of a request: its query string, then a form body's pairs, and the API key
/// from the `key` parameter or, failing that, the `X-ApiKey` header.
async fn read_params(
    app: &App,
    req: Request<Incoming>,
) -> Result<(Params, Option<String>), Refusal> {
    let (parts, body) = req.into_parts();
    let mut params = Params::default();
    if let Some(query) = parts.uri.query() {
        params.extend_form(query.as_bytes(), "query string")?;
    }
    if parts.method == Method::POST {
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
                    Refusal::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "request body is larger than {} bytes",
                            app.config.max_body_bytes
                        ),
                    )
                } else {
                    Refusal::new(StatusCode::BAD_REQUEST, "could not read the request body")
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
            if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                return Err(Refusal::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "a request body must be application/x-www-form-urlencoded",
                ));
            }
            params.extend_form(&bytes, "form body")?;
        }
    }
    let key = match params.take("key")? {
        Some(key) => Some(key),
        None => parts
            .headers
            .get("x-apikey")
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| Refusal::new(StatusCode::BAD_REQUEST, "malformed X-ApiKey header"))
            })
            .transpose()?,
    };
    Ok((params, key))
}

/// Refuses unless the template has no key or `key` is its key.
fn check_key(template: &Template, key: Option<&str>) -> Result<(), Refusal> {
    match (&template.api_key, key) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(Refusal::new(StatusCode::FORBIDDEN, "missing API key")),
        (Some(expected), Some(given)) if expected.verify(given) => Ok(()),
        (Some(_), Some(_)) => Err(Refusal::new(StatusCode::FORBIDDEN, "invalid API key")),
    }
}

async fn trigger(app: Arc<App>, req: Request<Incoming>) -> Answer {
    let (mut params, key) = read_params(&app, req).await?;
    let name = params
        .take("template")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Refusal::new(StatusCode::BAD_REQUEST, "missing template parameter"))?;
    let name: TemplateName = name.parse().map_err(|e: holt_domain::DomainError| {
        Refusal::new(StatusCode::BAD_REQUEST, e.to_string())
    })?;
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
    check_key(&template, key.as_deref())?;
    let pairs = params.into_pairs();
    if pairs.len() > app.config.max_variables {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!(
                "too many variables: at most {} are allowed",
                app.config.max_variables
            ),
        ));
    }
    let mut variables = Variables::new();
    for (written, value) in pairs {
        let var: VarName = written.parse().map_err(|e: holt_domain::DomainError| {
            Refusal::new(StatusCode::BAD_REQUEST, e.to_string())
        })?;
        if value.len() > app.config.max_variable_bytes {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "variable {var} is longer than {} bytes",
                    app.config.max_variable_bytes
                ),
            ));
        }
        if variables.contains(&var) {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("variable {var} is given more than once"),
            ));
        }
        variables.insert(var, value);
    }
    let token = app.engine.trigger(&template, &variables).await?;
    Ok(text(StatusCode::OK, token.to_string()))
}

/// Finds the job a status or logs request names and checks the key of its template. The
/// template is looked up as it is loaded now, so a changed key applies to jobs already run; a
/// job whose template is no longer loaded cannot be checked and is refused.
async fn job_for(app: &App, mut params: Params, key: Option<&str>) -> Result<JobToken, Refusal> {
    let text = params
        .take("token")?
        .ok_or_else(|| Refusal::new(StatusCode::BAD_REQUEST, "missing token parameter"))?;
    let token: JobToken = text
        .parse()
        .map_err(|_| Refusal::new(StatusCode::BAD_REQUEST, "invalid token"))?;
    let job = app
        .engine
        .store()
        .job(token)
        .await?
        .ok_or_else(|| Refusal::new(StatusCode::BAD_REQUEST, "unknown token"))?;
    let template = app.engine.templates().get(&job.template).ok_or_else(|| {
        Refusal::new(
            StatusCode::FORBIDDEN,
            format!("the job's template {} is no longer loaded", job.template),
        )
    })?;
    check_key(template, key)?;
    Ok(token)
}

async fn status(app: Arc<App>, req: Request<Incoming>) -> Answer {
    let (params, key) = read_params(&app, req).await?;
    let token = job_for(&app, params, key.as_deref()).await?;
    let status = app
        .engine
        .store()
        .status(token)
        .await?
        .ok_or_else(|| Refusal::new(StatusCode::BAD_REQUEST, "unknown token"))?;
    Ok(text(StatusCode::OK, status.as_str()))
}

async fn logs(app: Arc<App>, req: Request<Incoming>) -> Answer {
    let (params, key) = read_params(&app, req).await?;
    let token = job_for(&app, params, key.as_deref()).await?;
    let store = app.engine.store().clone();
    // The first page is read before answering, so a store failure is still a clean 503.
    let first = store.logs(token, 0, LOG_PAGE).await?;
    let (tx, body) = Body::channel();
    tokio::spawn(async move {
        let mut page = first;
        while let Some(last) = page.last() {
            let next = last.seq + 1;
            let mut chunk = String::with_capacity(page.len() * 64);
            for entry in &page {
                format_entry(&mut chunk, entry);
            }
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
            if page.len() < LOG_PAGE {
                break;
            }
            page = match store.logs(token, next, LOG_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(job = %token, error = %e, "log read failed mid-body");
                    let _ = tx.send(Err(Box::new(e))).await;
                    return;
                }
            };
        }
    });
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

async fn healthz(_app: Arc<App>, _req: Request<Incoming>) -> Answer {
    Ok(text(StatusCode::OK, "ok"))
}
