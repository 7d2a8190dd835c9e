//! The infrastructure model in PostgreSQL: one row per entry, its JSON in Otter's shape.

use holt_domain::{Environment, InfraChange, Inventory, Role, Server};
use holt_storage::StoreError;
use tokio_postgres::GenericClient;

const SERVER: &str = "server";
const ROLE: &str = "role";
const ENVIRONMENT: &str = "environment";

/// The advisory lock a change holds until its transaction ends: a change is checked against the
/// model as stored, so two changes (from two nodes, say) must not both check the same model and
/// then both write.
const INFRA_LOCK: i64 = 0x686f_6c74_0002; // "holt" and 2

/// Reads the whole model.
pub(crate) async fn load(client: &impl GenericClient) -> Result<Inventory, StoreError> {
    load_rows(client).await?
}

async fn load_rows(
    client: &impl GenericClient,
) -> Result<Result<Inventory, StoreError>, StoreError> {
    let rows = client
        .query("SELECT kind, body FROM infra", &[])
        .await
        .map_err(crate::error::db_error)?;
    Ok(from_rows(rows.iter().map(|row| (row.get(0), row.get(1)))))
}

fn from_rows<'a>(rows: impl Iterator<Item = (&'a str, &'a str)>) -> Result<Inventory, StoreError> {
    let mut servers: Vec<Server> = Vec::new();
    let mut roles: Vec<Role> = Vec::new();
    let mut environments: Vec<Environment> = Vec::new();
    for (kind, body) in rows {
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("{kind} entry: {e}"));
        match kind {
            SERVER => servers.push(serde_json::from_str(body).map_err(corrupt)?),
            ROLE => roles.push(serde_json::from_str(body).map_err(corrupt)?),
            ENVIRONMENT => environments.push(serde_json::from_str(body).map_err(corrupt)?),
            other => return Err(StoreError::Corrupt(format!("infra kind {other:?}"))),
        }
    }
    Ok(Inventory::new(servers, roles, environments))
}

/// Applies a change inside the writer's transaction; refused changes write nothing.
pub(crate) async fn change(
    tx: &deadpool_postgres::Transaction<'_>,
    change: InfraChange,
) -> Result<Result<Inventory, StoreError>, tokio_postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INFRA_LOCK])
        .await?;
    let rows = tx.query("SELECT kind, body FROM infra", &[]).await?;
    let mut inventory = match from_rows(rows.iter().map(|row| (row.get(0), row.get(1)))) {
        Ok(inventory) => inventory,
        Err(e) => return Ok(Err(e)),
    };
    let write = match &change {
        InfraChange::CreateServer(s) | InfraChange::UpdateServer(s) => {
            (SERVER, s.name.key(), Some(to_json(s)))
        }
        InfraChange::CreateRole(r) | InfraChange::UpdateRole(r) => {
            (ROLE, r.name.key(), Some(to_json(r)))
        }
        InfraChange::CreateEnvironment(e) | InfraChange::UpdateEnvironment(e) => {
            (ENVIRONMENT, e.name.key(), Some(to_json(e)))
        }
        InfraChange::DeleteServer(name) => (SERVER, name.key(), None),
        InfraChange::DeleteRole(name) => (ROLE, name.key(), None),
        InfraChange::DeleteEnvironment(name) => (ENVIRONMENT, name.key(), None),
    };
    if let Err(e) = inventory.apply(change) {
        return Ok(Err(e.into()));
    }
    let (kind, key, body) = write;
    match body {
        Some(Ok(body)) => {
            let upsert = tx
                .prepare_cached(
                    "INSERT INTO infra (kind, name_key, body) VALUES ($1, $2, $3)
                     ON CONFLICT (kind, name_key) DO UPDATE SET body = excluded.body",
                )
                .await?;
            tx.execute(&upsert, &[&kind, &key, &body]).await?;
        }
        Some(Err(e)) => return Ok(Err(e)),
        None => {
            let delete = tx
                .prepare_cached("DELETE FROM infra WHERE kind = $1 AND name_key = $2")
                .await?;
            tx.execute(&delete, &[&kind, &key]).await?;
        }
    }
    Ok(Ok(inventory))
}

fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Database(Box::new(e)))
}
