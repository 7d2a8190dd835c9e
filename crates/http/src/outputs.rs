//! A job's outputs, and `run`: a trigger that waits for its job's end and answers with its
//! status and outputs.

use std::sync::Arc;

use holt_domain::{JobStatus, JobToken, Outputs, push_json_string};
use holt_engine::Triggered;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::body::Body;
use crate::jobs::{MAX_WAIT_SECONDS, seconds_param, start};
use crate::limits::LongPoll;
use crate::routes::{Answer, App, Refusal, job_for, read_call, text};

/// `GET|POST /api/jobs/outputs?token=T&key=KEY`: the outputs the job recorded when it ended,
/// as a JSON object (empty before its end); its status in `X-Holt-Status`.
pub(crate) async fn outputs(app: Arc<App>, req: Request<Incoming>) -> Answer {
    let mut call = read_call(&app, req).await?;
    let (token, mut status) = job_for(&app, &mut call).await?;
    // On a cluster a job's committed end can be seen (by a `run` that waited on it) a moment
    // before this node's own view of the job it runs turns terminal: the store decides.
    if !status.is_terminal()
        && let Some(committed) = app.engine.committed_status(token).await?
    {
        status = committed;
    }
    let outputs = read_outputs(&app, token, status).await?;
    let mut response = json(outputs.to_json());
    response
        .headers_mut()
        .insert("x-holt-status", HeaderValue::from_static(status.as_str()));
    Ok(response)
}

/// `GET|POST /api/jobs/run?template=NAME&key=KEY&wait=SECONDS`: triggers a job exactly as
/// `trigger` does, then waits up to `wait` seconds (none when not given, at most 60) for it to
/// end, and answers `{"token", "status", "outputs"}`. A job still `Pending` or `Executing` when
/// the wait runs out has no outputs yet; the client goes on with `status?wait=`.
pub(crate) async fn run(app: Arc<App>, req: Request<Incoming>) -> Answer {
    let mut call = read_call(&app, req).await?;
    // Taken before the trigger reads the rest as variables: `wait` is this call's own.
    let wait = seconds_param(&mut call, "wait", MAX_WAIT_SECONDS)?.unwrap_or_default();
    // The slot is taken before the job is triggered, so that a refusal never leaves a job
    // running whose token the client did not get.
    let slot = (!wait.is_zero())
        .then(|| LongPoll::wait(&app))
        .transpose()?;
    let triggered = start(&app, call).await?;
    let token = triggered.token();
    let status = app
        .engine
        .wait(token, wait)
        .await?
        .ok_or_else(|| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "the job vanished"))?;
    drop(slot);
    let outputs = read_outputs(&app, token, status).await?;
    let mut body = String::from("{\"token\":");
    push_json_string(&mut body, &token.to_string());
    body.push_str(",\"status\":");
    push_json_string(&mut body, status.as_str());
    body.push_str(",\"outputs\":");
    body.push_str(&outputs.to_json());
    body.push('}');
    let mut response = json(body);
    if let Triggered::Existing(_) = triggered {
        response
            .headers_mut()
            .insert("x-holt-existing-job", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A job's outputs once it has ended; none before.
async fn read_outputs(app: &App, token: JobToken, status: JobStatus) -> Result<Outputs, Refusal> {
    if !status.is_terminal() {
        return Ok(Outputs::new());
    }
    Ok(app.engine.outputs(token).await?.unwrap_or_default())
}

fn json(body: String) -> Response<Body> {
    let mut response = text(StatusCode::OK, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
