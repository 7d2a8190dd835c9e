//! The operators' endpoints, all behind an admin key: `GET /api/jobs/list` (a page of jobs,
//! newest first), `GET /api/jobs/show` (one job and its variables), `POST /api/jobs/rerun`
//! (the same template and variables again) and `GET /api/templates/list` (every loaded
//! template and its declared variables). None shows a key, a secret value or a secret default.

use std::sync::Arc;
use std::time::Duration;

use holt_domain::{JobFilter, JobStatus, JobSummary, JobToken, Template, TemplateName};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::body::Body;
use crate::infra::check_admin_key;
use crate::params::Params;
use crate::routes::{Answer, App, Refusal, key_of, text};

/// Jobs in a page when the request does not say.
pub(crate) const DEFAULT_LIMIT: usize = 50;

/// The most jobs one page holds: a page is built whole in memory, so its size is bounded.
pub(crate) const MAX_LIMIT: usize = 1000;

/// The query string's parameters and the admin key, with nothing else allowed: a misspelt
/// filter must not silently list everything.
fn admin_params(app: &App, req: &Request<Incoming>, known: &[&str]) -> Result<Params, Refusal> {
    let mut params = Params::default();
    if let Some(query) = req.uri().query() {
        params.extend_form(query.as_bytes(), "query string")?;
    }
    let key = key_of(&mut params, req.headers())?;
    check_admin_key(app, key.as_deref())?;
    let mut kept = Params::default();
    for name in known {
        if let Some(value) = params.take(name)? {
            kept.push(name, value);
        }
    }
    if let Some((name, _)) = params.into_pairs().into_iter().next() {
        return Err(Refusal::bad(format!("unknown parameter {name}")));
    }
    Ok(kept)
}

pub(crate) async fn jobs(app: Arc<App>, req: Request<Incoming>) -> Answer {
    let mut params = admin_params(&app, &req, &["template", "status", "limit", "before"])?;
    let template = match params.take("template")?.filter(|t| !t.is_empty()) {
        None => None,
        Some(name) => Some(
            name.parse::<TemplateName>()
                .map_err(|e| Refusal::bad(e.to_string()))?,
        ),
    };
    let status = match params.take("status")?.filter(|s| !s.is_empty()) {
        None => None,
        Some(word) => Some(word.parse::<JobStatus>().map_err(|_| {
            Refusal::bad("status must be Pending, Executing, Succeeded, Warning or Error")
        })?),
    };
    let limit = match params.take("limit")? {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                Refusal::bad(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}"
                ))
            })?,
    };
    let before = match params.take("before")?.filter(|b| !b.is_empty()) {
        None => None,
        Some(text) => Some(
            text.parse::<JobToken>()
                .map_err(|_| Refusal::bad("before must be a job token"))?,
        ),
    };
    let page = app
        .engine
        .list_jobs(&JobFilter {
            template,
            status,
            before,
            limit,
        })
        .await?;
    // A full page may have more after it; a short one is the last.
    let next = (page.len() == limit)
        .then(|| page.last().map(|j| j.token.to_string()))
        .flatten();
    let jobs: Vec<Value> = page.iter().map(job_json).collect();
    Ok(json_response(json!({ "jobs": jobs, "next": next })))
}

/// The job `token` names, refused as the job endpoints refuse.
fn token_param(params: &mut Params) -> Result<JobToken, Refusal> {
    params
        .take("token")?
        .ok_or_else(|| Refusal::bad("missing token parameter"))?
        .parse::<JobToken>()
        .map_err(|_| Refusal::bad("invalid token"))
}

pub(crate) async fn show(app: Arc<App>, req: Request<Incoming>) -> Answer {
    let mut params = admin_params(&app, &req, &["token"])?;
    let token = token_param(&mut params)?;
    let job = app
        .engine
        .job_view(token)
        .await?
        .ok_or_else(|| Refusal::bad("unknown token"))?;
    let variables: Vec<Value> = job
        .variables
        .iter()
        .map(|(name, value)| {
            json!({ "name": name.as_str(), "value": value, "secret": value.is_none() })
        })
        .collect();
    let mut shown = job_json(&job.job);
    shown["variables"] = Value::Array(variables);
    Ok(json_response(shown))
}

pub(crate) async fn rerun(app: Arc<App>, req: Request<Incoming>) -> Answer {
    let source = crate::jobs::source_of(req.headers())?;
    let mut params = admin_params(&app, &req, &["token"])?;
    let token = token_param(&mut params)?;
    let triggered = app
        .engine
        .rerun(token, source)
        .await?
        .ok_or_else(|| Refusal::bad("unknown token"))?;
    Ok(text(StatusCode::OK, triggered.token().to_string()))
}

fn job_json(job: &JobSummary) -> Value {
    json!({
        "token": job.token.to_string(),
        "template": job.template.as_str(),
        "status": job.status.as_str(),
        "source": job.source.as_str(),
        "created": time(Some(job.created_ms)),
        "started": time(job.started_ms),
        "finished": time(job.finished_ms),
    })
}

/// A time as RFC 3339 in UTC with milliseconds, as ndjson logs give it.
fn time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |ms| {
        let at = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
        Value::String(humantime::format_rfc3339_millis(at).to_string())
    })
}

pub(crate) async fn templates(app: Arc<App>, req: Request<Incoming>) -> Answer {
    admin_params(&app, &req, &[])?;
    let catalog = app.engine.templates();
    let mut all: Vec<&Arc<Template>> = catalog.iter().collect();
    all.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    let templates: Vec<Value> = all.iter().map(|t| template_json(t)).collect();
    Ok(json_response(json!({ "templates": templates })))
}

/// What an operator needs to trigger a template: never its key (only whether it has one) and
/// never a secret variable's default (only whether there is one).
fn template_json(template: &Template) -> Value {
    let names = |list: &[holt_domain::InfraName]| -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    };
    let variables: Vec<Value> = template
        .variables
        .iter()
        .map(|v| {
            json!({
                "name": v.name.as_str(),
                "description": v.description,
                "required": v.required,
                "secret": v.secret,
                "default": if v.secret { None } else { v.default.as_deref() },
                "has_default": v.default.is_some(),
                "allowed": v.allowed,
                "pattern": v.pattern.as_ref().map(holt_domain::pattern_source),
            })
        })
        .collect();
    json!({
        "name": template.name.as_str(),
        "description": template.description,
        "allow_api": template.allow_api,
        "has_key": template.api_key.is_some(),
        "targets": {
            "servers": names(&template.targets.servers),
            "roles": names(&template.targets.roles),
            "environments": names(&template.targets.environments),
        },
        "variables": variables,
        "allow_undeclared_variables": template.allow_undeclared_variables,
        "max_concurrent": template.max_concurrent,
        "timeout_seconds": template.timeout.map(|t| t.as_secs()),
        "schedule": template.schedule.as_ref().map(|s| json!({
            "cron": s.expression(),
            "timezone": s.zone(),
            "missed": s.missed().as_str(),
        })),
        "outputs": template.outputs.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
    })
}

fn json_response(value: Value) -> Response<Body> {
    let mut response = text(StatusCode::OK, value.to_string());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
