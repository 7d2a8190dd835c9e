//! The infrastructure model in SQLite: one row per entry, its JSON in Otter's shape.

use holt_domain::{Environment, InfraChange, Inventory, Role, Server};
use rusqlite::Connection;

use crate::StoreError;

const SERVER: &str = "server";
const ROLE: &str = "role";
const ENVIRONMENT: &str = "environment";

/// Reads the whole model.
pub(crate) fn load(conn: &Connection) -> Result<Inventory, StoreError> {
    let mut servers: Vec<Server> = Vec::new();
    let mut roles: Vec<Role> = Vec::new();
    let mut environments: Vec<Environment> = Vec::new();
    let mut statement = conn.prepare_cached("SELECT kind, body FROM infra")?;
    let rows = statement.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (kind, body) = row?;
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("{kind} entry: {e}"));
        match kind.as_str() {
            SERVER => servers.push(serde_json::from_str(&body).map_err(corrupt)?),
            ROLE => roles.push(serde_json::from_str(&body).map_err(corrupt)?),
            ENVIRONMENT => environments.push(serde_json::from_str(&body).map_err(corrupt)?),
            other => return Err(StoreError::Corrupt(format!("infra kind {other:?}"))),
        }
    }
    Ok(Inventory::new(servers, roles, environments))
}

/// Applies a change inside the writer's transaction; refused changes write nothing.
pub(crate) fn change(conn: &Connection, change: InfraChange) -> Result<Inventory, StoreError> {
    let mut inventory = load(conn)?;
    let write = match &change {
        InfraChange::CreateServer(s) | InfraChange::UpdateServer(s) => {
            Some((SERVER, s.name.key(), Some(to_json(s)?)))
        }
        InfraChange::CreateRole(r) | InfraChange::UpdateRole(r) => {
            Some((ROLE, r.name.key(), Some(to_json(r)?)))
        }
        InfraChange::CreateEnvironment(e) | InfraChange::UpdateEnvironment(e) => {
            Some((ENVIRONMENT, e.name.key(), Some(to_json(e)?)))
        }
        InfraChange::DeleteServer(name) => Some((SERVER, name.key(), None)),
        InfraChange::DeleteRole(name) => Some((ROLE, name.key(), None)),
        InfraChange::DeleteEnvironment(name) => Some((ENVIRONMENT, name.key(), None)),
    };
    inventory.apply(change)?;
    if let Some((kind, key, body)) = write {
        match body {
            Some(body) => {
                conn.prepare_cached(
                    "INSERT INTO infra (kind, name_key, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT (kind, name_key) DO UPDATE SET body = excluded.body",
                )?
                .execute((kind, &key, &body))?;
            }
            None => {
                conn.prepare_cached("DELETE FROM infra WHERE kind = ?1 AND name_key = ?2")?
                    .execute((kind, &key))?;
            }
        }
    }
    Ok(inventory)
}

fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Database(Box::new(e)))
}
