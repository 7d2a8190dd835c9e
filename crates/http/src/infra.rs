//! Otter's Infrastructure Management API:
//! `POST /api/infrastructure/{servers|roles|environments}/{list|create|update|delete}[/NAME]`,
//! guarded by an admin key.

use std::sync::Arc;

use holt_domain::{
    EnvironmentPatch, InfraChange, InfraError, InfraKind, InfraName, Inventory, RolePatch,
    ServerPatch,
};
use holt_engine::EngineError;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::body::Body;
use crate::params::Params;
use crate::routes::{Answer, App, Refusal, key_of, text};

/// The path every infrastructure route starts with.
pub(crate) const PREFIX: &str = "/api/infrastructure/";

/// The infrastructure routes as templates, for documentation checks: `{kind}` is `servers`,
/// `roles` or `environments`, `{operation}` is `list`, `create`, `update` or `delete`.
pub(crate) const ROUTE_TEMPLATES: &[&str] = &[
    "/api/infrastructure/{kind}/{operation}",
    "/api/infrastructure/{kind}/{operation}/{name}",
];

/// What a request asks of which kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    List,
    Create,
    Update,
    Delete,
}

pub(crate) async fn handle(app: Arc<App>, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_owned();
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    let mut segments = rest.split('/');
    let kind = match segments.next() {
        Some("servers") => InfraKind::Server,
        Some("roles") => InfraKind::Role,
        Some("environments") => InfraKind::Environment,
        _ => return Err(Refusal::new(StatusCode::NOT_FOUND, "no such path")),
    };
    let op = match segments.next() {
        Some("list") => Op::List,
        Some("create") => Op::Create,
        Some("update") => Op::Update,
        Some("delete") => Op::Delete,
        _ => return Err(Refusal::new(StatusCode::NOT_FOUND, "no such path")),
    };
    let path_name = segments.next().filter(|s| !s.is_empty());
    if segments.next().is_some() {
        return Err(Refusal::new(StatusCode::NOT_FOUND, "no such path"));
    }
    if req.method() != hyper::Method::POST {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {} is not allowed here", req.method()),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Ok(response);
    }
    let (parts, body) = req.into_parts();
    let mut params = Params::default();
    if let Some(query) = parts.uri.query() {
        params.extend_form(query.as_bytes(), "query string")?;
    }
    let key = key_of(&mut params, &parts.headers)?;
    check_admin_key(&app, key.as_deref())?;
    let query_name = params.take("name")?;
    let name = match (path_name, query_name.as_deref()) {
        (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => {
            return Err(Refusal::bad(format!(
                "the path names {a} but the name parameter names {b}"
            )));
        }
        (Some(name), _) | (None, Some(name)) => Some(
            name.parse::<InfraName>()
                .map_err(|e| Refusal::bad(e.to_string()))?,
        ),
        (None, None) => None,
    };
    let bytes = Limited::new(body, app.config.max_body_bytes)
        .collect()
        .await
        .map_err(|_| {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is larger than {} bytes",
                    app.config.max_body_bytes
                ),
            )
        })?
        .to_bytes();

    let engine = &app.engine;
    if op == Op::List {
        let inventory = engine.inventory().await?;
        return Ok(json(list(&inventory, kind, name.as_ref())));
    }
    if op == Op::Delete {
        let name = name.ok_or_else(|| Refusal::bad("delete needs the entry's name in the path"))?;
        let change = match kind {
            InfraKind::Server => InfraChange::DeleteServer(name),
            InfraKind::Role => InfraChange::DeleteRole(name),
            InfraKind::Environment => InfraChange::DeleteEnvironment(name),
        };
        engine.change_inventory(change).await.map_err(refusal)?;
        return Ok(text(StatusCode::OK, ""));
    }
    // Create and update: the body is the entry, checked against the model as it is now; the
    // store checks it again inside its transaction, so a concurrent change cannot slip by.
    let inventory = engine.inventory().await?;
    let bad_json =
        |e: serde_json::Error| Refusal::bad(format!("bad JSON: {}", one_line(&e.to_string())));
    let body: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
    let create = op == Op::Create;
    let (change, shown) = match kind {
        InfraKind::Server => {
            let patch: ServerPatch = serde_json::from_slice(body).map_err(bad_json)?;
            let base = current(&inventory, kind, name.as_ref(), patch.name.as_ref(), create)?;
            let server = patch
                .apply(
                    name.as_ref(),
                    base.as_ref().and_then(|n| inventory.server(n.as_str())),
                )
                .map_err(infra_refusal)?;
            let shown = to_json(&server);
            let change = if create {
                InfraChange::CreateServer(server)
            } else {
                InfraChange::UpdateServer(server)
            };
            (change, shown)
        }
        InfraKind::Role => {
            let patch: RolePatch = serde_json::from_slice(body).map_err(bad_json)?;
            let base = current(&inventory, kind, name.as_ref(), patch.name.as_ref(), create)?;
            let role = patch
                .apply(
                    name.as_ref(),
                    base.as_ref().and_then(|n| inventory.role(n.as_str())),
                )
                .map_err(infra_refusal)?;
            let shown = to_json(&role);
            let change = if create {
                InfraChange::CreateRole(role)
            } else {
                InfraChange::UpdateRole(role)
            };
            (change, shown)
        }
        InfraKind::Environment => {
            let patch: EnvironmentPatch = serde_json::from_slice(body).map_err(bad_json)?;
            let base = current(&inventory, kind, name.as_ref(), patch.name.as_ref(), create)?;
            let environment = patch
                .apply(
                    name.as_ref(),
                    base.as_ref()
                        .and_then(|n| inventory.environment(n.as_str())),
                )
                .map_err(infra_refusal)?;
            let shown = to_json(&environment);
            let change = if create {
                InfraChange::CreateEnvironment(environment)
            } else {
                InfraChange::UpdateEnvironment(environment)
            };
            (change, shown)
        }
    };
    engine.change_inventory(change).await.map_err(refusal)?;
    Ok(json(shown))
}

/// On update, the entry being changed (404 when missing); on create, none.
fn current(
    inventory: &Inventory,
    kind: InfraKind,
    url: Option<&InfraName>,
    body: Option<&InfraName>,
    create: bool,
) -> Result<Option<InfraName>, Refusal> {
    if create {
        return Ok(None);
    }
    let name = url
        .or(body)
        .ok_or_else(|| Refusal::bad("update needs the entry's name in the path or the body"))?;
    let exists = match kind {
        InfraKind::Server => inventory.server(name.as_str()).is_some(),
        InfraKind::Role => inventory.role(name.as_str()).is_some(),
        InfraKind::Environment => inventory.environment(name.as_str()).is_some(),
    };
    if exists {
        Ok(Some(name.clone()))
    } else {
        Err(infra_refusal(InfraError::NotFound {
            kind,
            name: name.to_string(),
        }))
    }
}

fn list(inventory: &Inventory, kind: InfraKind, name: Option<&InfraName>) -> serde_json::Value {
    let wanted = |entry: &InfraName| name.is_none_or(|n| n == entry);
    let entries: Vec<serde_json::Value> = match kind {
        InfraKind::Server => inventory
            .servers()
            .filter(|s| wanted(&s.name))
            .map(to_json)
            .collect(),
        InfraKind::Role => inventory
            .roles()
            .filter(|r| wanted(&r.name))
            .map(to_json)
            .collect(),
        InfraKind::Environment => inventory
            .environments()
            .filter(|e| wanted(&e.name))
            .map(to_json)
            .collect(),
    };
    serde_json::Value::Array(entries)
}

fn to_json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

fn json(value: serde_json::Value) -> Response<Body> {
    let mut response = text(StatusCode::OK, value.to_string());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Refuses unless `key` is one of the admin keys; with none configured, refuses everyone.
pub(crate) fn check_admin_key(app: &App, key: Option<&str>) -> Result<(), Refusal> {
    let keys = &app.config.admin_keys;
    if keys.is_empty() {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "no admin key is configured: start holtd with --admin-key-sha256 to enable this API",
        ));
    }
    let Some(key) = key else {
        return Err(Refusal::new(StatusCode::FORBIDDEN, "missing admin key"));
    };
    if crate::routes::is_admin(app, key) {
        Ok(())
    } else {
        Err(Refusal::new(StatusCode::FORBIDDEN, "invalid admin key"))
    }
}

fn infra_refusal(e: InfraError) -> Refusal {
    match e {
        InfraError::NotFound { .. } => Refusal::new(StatusCode::NOT_FOUND, e.to_string()),
        _ => Refusal::bad(one_line(&e.to_string())),
    }
}

fn refusal(e: EngineError) -> Refusal {
    match e {
        EngineError::Infra(e) => infra_refusal(e),
        e => e.into(),
    }
}

/// A message as one line: control characters (which a hostile body could slip into a field
/// name that an error message quotes) are shown escaped.
fn one_line(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}
