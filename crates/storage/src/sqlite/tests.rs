use std::sync::Arc;

use super::*;
use crate::conformance;

fn temp_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("holt.db"))).unwrap();
    (dir, store)
}

macro_rules! conformance_tests {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let (_dir, store) = temp_store();
            conformance::$case(Arc::new(store)).await;
        }
    )*};
}

conformance_tests!(
    create_and_read,
    instance_id,
    unknown_job,
    status_transitions,
    logs_in_order,
    flush_makes_logs_durable,
    recovery,
    concurrent_creates,
    idempotency,
    retention,
);

#[tokio::test]
async fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::new(dir.path().join("holt.db"));
    let (token, instance) = {
        let store = SqliteStore::open(&config).unwrap();
        let token = store
            .create_job(NewJob {
                template: "hdars".parse().unwrap(),
                plan: "Sleep 1;".into(),
                variables: Variables::new(),
                created_ms: 7,
                idempotency: None,
            })
            .await
            .unwrap()
            .token;
        store
            .set_status(token, JobStatus::Succeeded, 8)
            .await
            .unwrap();
        (token, store.instance_id().to_owned())
    };
    let store = SqliteStore::open(&config).unwrap();
    assert_eq!(
        store.status(token).await.unwrap(),
        Some(JobStatus::Succeeded)
    );
    assert_eq!(store.instance_id(), instance);
    let other = tempfile::tempdir().unwrap();
    let other = SqliteStore::open(&SqliteConfig::new(other.path().join("holt.db"))).unwrap();
    assert_ne!(store.instance_id(), other.instance_id());
}

#[test]
fn migrating_twice_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = Connection::open(dir.path().join("holt.db")).unwrap();
    migrations::apply(&mut conn).unwrap();
    migrations::apply(&mut conn).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, migrations::CURRENT);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("holt.db");
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", migrations::CURRENT + 1)
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(&SqliteConfig::new(&path)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "database schema version {} is newer than this build of Holt understands (up to {}); use a newer holtd",
            migrations::CURRENT + 1,
            migrations::CURRENT
        )
    );
}
