use std::sync::Arc;
use std::time::Duration;

use holt_domain::{LogLevel, ScopePath, Variables};

use super::*;
use crate::scratch::ScratchDatabase;

/// A fresh store on a database of its own, for the conformance suite.
async fn fresh() -> (ScratchDatabase, Arc<dyn JobStore>) {
    let (db, store) = scratch_store().await;
    (db, Arc::new(store))
}

async fn scratch_store() -> (ScratchDatabase, PgStore) {
    let db = ScratchDatabase::create().await;
    let store = PgStore::connect(db.url(), &PgConfig::default())
        .await
        .unwrap();
    (db, store)
}

holt_storage::conformance_tests!(fresh);

fn job(template: &str) -> NewJob {
    NewJob {
        template: template.parse().unwrap(),
        plan: "Sleep 1;".into(),
        variables: Variables::new(),
        created_ms: 7,
        idempotency: None,
    }
}

fn entry(seq: u64, text: &str) -> LogEntry {
    LogEntry {
        seq,
        level: LogLevel::Info,
        scope: ScopePath::root(),
        time_ms: seq as i64,
        text: text.into(),
    }
}

async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_twice_is_harmless() {
    let db = ScratchDatabase::create().await;
    let mut client = admin_client(db.url()).await;
    migrations::apply(&mut client).await.unwrap();
    migrations::apply(&mut client).await.unwrap();
    let version: i64 = client
        .query_one("SELECT version FROM holt_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, migrations::CURRENT);
    let rows: i64 = client
        .query_one("SELECT count(*) FROM holt_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    let instances: i64 = client
        .query_one("SELECT count(*) FROM meta WHERE key = 'instance'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(instances, 1);
}

/// Nodes starting together on an empty database: one migrates, the others wait for it and find
/// the schema current; all open the same database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_opening_together_migrate_once() {
    let db = ScratchDatabase::create().await;
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url().to_owned();
            tokio::spawn(async move { PgStore::connect(&url, &PgConfig::default()).await })
        })
        .collect();
    let mut instances = Vec::new();
    for open in opens {
        instances.push(open.await.unwrap().unwrap().instance_id().to_owned());
    }
    instances.dedup();
    assert_eq!(instances.len(), 1, "{instances:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let db = ScratchDatabase::create().await;
    drop(
        PgStore::connect(db.url(), &PgConfig::default())
            .await
            .unwrap(),
    );
    let client = admin_client(db.url()).await;
    client
        .execute(
            "UPDATE holt_schema SET version = $1",
            &[&(migrations::CURRENT + 1)],
        )
        .await
        .unwrap();
    let err = PgStore::connect(db.url(), &PgConfig::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "database schema version {} is newer than this build of Holt understands (up to {}); use a newer holtd",
            migrations::CURRENT + 1,
            migrations::CURRENT
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_everything() {
    let db = ScratchDatabase::create().await;
    let (token, instance) = {
        let store = PgStore::connect(db.url(), &PgConfig::default())
            .await
            .unwrap();
        let token = store.create_job(job("hdars")).await.unwrap().token;
        store
            .append_logs(token, vec![entry(0, "kept")])
            .await
            .unwrap();
        store
            .set_status(token, JobStatus::Succeeded, 8)
            .await
            .unwrap();
        (token, store.instance_id().to_owned())
    };
    let store = PgStore::connect(db.url(), &PgConfig::default())
        .await
        .unwrap();
    assert_eq!(
        store.status(token).await.unwrap(),
        Some(JobStatus::Succeeded)
    );
    assert_eq!(store.logs(token, 0, 10).await.unwrap(), [entry(0, "kept")]);
    assert_eq!(store.instance_id(), instance);
    let (_other_db, other) = scratch_store().await;
    assert_ne!(store.instance_id(), other.instance_id());
}

/// A follower of a job on one store wakes when another store on the same database commits the
/// job's log, and its watch closes when that store commits the job's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_on_one_store_wakes_a_watcher_on_another() {
    let (db, a) = scratch_store().await;
    let b = PgStore::connect(db.url(), &PgConfig::default())
        .await
        .unwrap();
    let token = a.create_job(job("hdars")).await.unwrap().token;
    let other = a.create_job(job("hdars")).await.unwrap().token;
    let mut watch = b.watch_committed(token);
    a.append_logs(other, vec![entry(0, "elsewhere")])
        .await
        .unwrap();
    a.append_logs(token, vec![entry(0, "one"), entry(1, "two")])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), watch.changed())
        .await
        .expect("woken within 10 s")
        .unwrap();
    assert_eq!(*watch.borrow_and_update(), 2);
    // What woke it is readable through the other store.
    assert_eq!(b.logs(token, 0, 10).await.unwrap().len(), 2);
    a.append_logs(token, vec![entry(2, "three")]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), watch.changed())
        .await
        .expect("woken within 10 s")
        .unwrap();
    assert_eq!(*watch.borrow_and_update(), 3);
    a.set_status(token, JobStatus::Succeeded, 5).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), watch.changed())
        .await
        .expect("closed within 10 s");
    assert!(closed.is_err(), "the watch closes at the job's end");
}

/// Concurrent creates with one idempotency key on two stores of one database make one job:
/// every caller gets its token, and exactly one of them created it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_on_two_stores_makes_one_job() {
    let (db, a) = scratch_store().await;
    let b = PgStore::connect(db.url(), &PgConfig::default())
        .await
        .unwrap();
    for round in 0..5 {
        let mut calls = Vec::new();
        for i in 0..16 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let mut new = job("hdars");
            new.idempotency = Some(holt_storage::Idempotency {
                key: format!("deploy-{round}"),
                fingerprint: "same".into(),
                not_before_ms: 0,
            });
            calls.push(tokio::spawn(async move { store.create_job(new).await }));
        }
        let mut created = Vec::new();
        for call in calls {
            created.push(call.await.unwrap().unwrap());
        }
        let fresh = created.iter().filter(|c| c.fresh).count();
        assert_eq!(fresh, 1, "round {round}: {created:?}");
        assert!(created.iter().all(|c| c.token == created[0].token));
    }
    let client = admin_client(db.url()).await;
    let jobs: i64 = client
        .query_one("SELECT count(*) FROM jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 5);
}

/// Connection errors never show the password of the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_never_show_the_password() {
    for url in [
        // Nothing listens on port 1.
        "postgres://holt:s3cr3tpw@127.0.0.1:1/holt",
        "postgres://holt:s3cr3tpw@127.0.0.1:notaport/holt",
        "postgresql://holt:s3cr3tpw@127.0.0.1:1/holt?bogus=1",
        "host=127.0.0.1 port=1 password=s3cr3tpw user=holt",
    ] {
        let err = PgStore::connect(url, &PgConfig::default())
            .await
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("s3cr3tpw"), "{url}: {shown}");
        assert!(!redacted(url).contains("s3cr3tpw"));
    }
    assert_eq!(
        redacted("postgres://holt:s3cr3tpw@db.example:6543/jobs?options=-c%20x%3Dy"),
        "postgres://holt@db.example:6543/jobs"
    );
    assert_eq!(
        redacted("postgresql://holt:s3cr3tpw@a,b:6000/jobs"),
        "postgres://holt@a:5432,b:6000/jobs"
    );
    assert_eq!(
        redacted("host=a,b port=1,2 user=holt password=s3cr3tpw dbname=jobs"),
        "postgres://holt@a:1,b:2/jobs"
    );
    assert_eq!(
        redacted("host=a,b port=7 user=holt password=s3cr3tpw dbname=jobs"),
        "postgres://holt@a:7,b:7/jobs"
    );
    // Nor does a store opened with a password show it when formatted. A test URL without a
    // password reaches a server that trusts its user, which then takes any password.
    let db = ScratchDatabase::create().await;
    let (scheme, rest) = db.url().split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    if !user.contains(':') {
        let url = format!("{scheme}://{user}:s3cr3tpw@{host}");
        let store = PgStore::connect(&url, &PgConfig::default()).await.unwrap();
        let shown = format!("{store:?}");
        assert!(shown.contains("instance"), "{shown}");
        assert!(!shown.contains("s3cr3tpw"), "{shown}");
    }
}

#[test]
fn postgres_urls_are_told_from_paths() {
    for db in ["postgres://h/db", "postgresql://u@h/db", "POSTGRES://h"] {
        assert!(is_postgres_url(db), "{db}");
    }
    for db in [
        "holt.db",
        "/var/lib/holt/holt.db",
        "postgres.db",
        "./postgres://x",
    ] {
        assert!(!is_postgres_url(db), "{db}");
    }
}

/// Entries handed over by many concurrent appends of many jobs read back whole and in order,
/// from any offset, through the chunks of many commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_appends_read_back_from_any_offset() {
    let (_db, store) = scratch_store().await;
    let token = store.create_job(job("hdars")).await.unwrap().token;
    let total = 10_000u64;
    for start in (0..total).step_by(7) {
        let entries = (start..(start + 7).min(total))
            .map(|seq| entry(seq, &format!("line {seq}")))
            .collect();
        store.append_logs(token, entries).await.unwrap();
    }
    store.flush().await.unwrap();
    assert_eq!(store.last_seq(token).await.unwrap(), Some(total - 1));
    for from in [0, 1, 4095, 4096, 4097, 9_999] {
        let seqs: Vec<u64> = store
            .logs(token, from, 3)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        let expected: Vec<u64> = (from..(from + 3).min(total)).collect();
        assert_eq!(seqs, expected, "from {from}");
    }
    let (text, last) = store
        .logs_text(token, 0, u64::MAX, usize::MAX)
        .await
        .unwrap();
    assert_eq!(text.lines().count() as u64, total);
    assert_eq!(last, Some(total - 1));
    let all = store.logs_within(token, 0, usize::MAX).await.unwrap();
    assert_eq!(all.len() as u64, total);
}

/// Entries and the job's end committed together move a watch to the last entry before it
/// closes, on the committing store and on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_moves_to_the_last_entry_before_it_closes() {
    let (db, a) = scratch_store().await;
    let b = PgStore::connect(db.url(), &PgConfig::default())
        .await
        .unwrap();
    let token = a.create_job(job("hdars")).await.unwrap().token;
    let mut watches = [a.watch_committed(token), b.watch_committed(token)];
    a.append_logs(token, vec![entry(0, "one"), entry(1, "two")])
        .await
        .unwrap();
    a.set_status(token, JobStatus::Succeeded, 5).await.unwrap();
    for watch in &mut watches {
        let mut seen = Vec::new();
        while tokio::time::timeout(Duration::from_secs(10), watch.changed())
            .await
            .expect("woken within 10 s")
            .is_ok()
        {
            seen.push(*watch.borrow_and_update());
        }
        assert_eq!(seen.last(), Some(&2), "{seen:?}");
    }
}

/// Ends the server processes of the database's connections that match `filter` (a condition on
/// `pg_stat_activity`), but the caller's own; returns how many.
async fn terminate(url: &str, filter: &str) -> i64 {
    let client = admin_client(url).await;
    client
        .query_one(
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid() AND {filter}"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Connections the server ends under a running store (a restart, an administrator) are opened
/// again: log entries and a status change handed over meanwhile are kept and committed, and the
/// store goes on writing and reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_the_loss_of_every_connection() {
    let (db, store) = scratch_store().await;
    let token = store.create_job(job("hdars")).await.unwrap().token;
    assert_eq!(store.status(token).await.unwrap(), Some(JobStatus::Pending));
    assert!(terminate(db.url(), "true").await >= 2);
    store
        .append_logs(token, vec![entry(0, "one"), entry(1, "two")])
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        store.set_status(token, JobStatus::Succeeded, 9),
    )
    .await
    .expect("committed within 20 s")
    .unwrap();
    assert_eq!(
        store.logs(token, 0, 10).await.unwrap(),
        [entry(0, "one"), entry(1, "two")]
    );
    assert_eq!(
        store.status(token).await.unwrap(),
        Some(JobStatus::Succeeded)
    );
    let next = store.create_job(job("hdars")).await.unwrap();
    assert!(next.fresh && next.token > token);
}

/// A store whose listening connection was ended listens again, and a watcher on it still wakes
/// for what another store committed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listener_listens_again_and_catches_up() {
    let (db, a) = scratch_store().await;
    let b = PgStore::connect(db.url(), &PgConfig::default())
        .await
        .unwrap();
    let token = a.create_job(job("hdars")).await.unwrap().token;
    let mut watch = b.watch_committed(token);
    assert_eq!(terminate(db.url(), "query LIKE 'LISTEN %'").await, 2);
    a.append_logs(token, vec![entry(0, "one"), entry(1, "two")])
        .await
        .unwrap();
    a.flush().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while *watch.borrow_and_update() < 2 {
            watch.changed().await.unwrap();
        }
    })
    .await
    .expect("woken within 20 s");
    a.set_status(token, JobStatus::Succeeded, 5).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        while watch.changed().await.is_ok() {}
    })
    .await;
    assert!(closed.is_ok(), "the watch closes at the job's end");
}

/// A URL's `options` reach the server: with a `search_path`, Holt's tables live in that schema,
/// and stores on two schemas of one database are two databases to Holt (their own instance
/// ids, their own notification channels).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_path_in_the_url_keeps_holt_in_its_schema() {
    let db = ScratchDatabase::create().await;
    let admin = admin_client(db.url()).await;
    admin
        .batch_execute("CREATE SCHEMA holt_a; CREATE SCHEMA holt_b")
        .await
        .unwrap();
    let in_schema = |schema: &str| format!("{}?options=-c%20search_path%3D{schema}", db.url());
    let a = PgStore::connect(&in_schema("holt_a"), &PgConfig::default())
        .await
        .unwrap();
    let b = PgStore::connect(&in_schema("holt_b"), &PgConfig::default())
        .await
        .unwrap();
    assert_ne!(a.instance_id(), b.instance_id());
    let token = a.create_job(job("hdars")).await.unwrap().token;
    let count = |sql: &'static str| {
        let admin = &admin;
        async move { admin.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM holt_a.jobs").await, 1);
    assert_eq!(count("SELECT count(*) FROM holt_b.jobs").await, 0);
    assert_eq!(
        count("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").await,
        0
    );
    // The same job id on the other schema: its watcher hears nothing of this one's commits.
    let twin = b.create_job(job("hdars")).await.unwrap().token;
    assert_eq!(twin, token);
    let mut watch_a = a.watch_committed(token);
    let mut watch_b = b.watch_committed(twin);
    a.append_logs(token, vec![entry(0, "a")]).await.unwrap();
    a.set_status(token, JobStatus::Succeeded, 5).await.unwrap();
    while watch_a.changed().await.is_ok() {}
    // Had a's notices reached b's listener, the end of job `token` would have closed this
    // watch of the same id (the server sends them in commit order, before b's own).
    b.append_logs(twin, vec![entry(0, "b1"), entry(1, "b2")])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), watch_b.changed())
        .await
        .expect("woken within 10 s")
        .unwrap();
    assert_eq!(*watch_b.borrow_and_update(), 2);
    assert!(
        !watch_b.has_changed().unwrap(),
        "the other schema's end closed this watch"
    );
}

/// A command the server refuses (text holding a NUL character, which PostgreSQL does not
/// store) fails alone: the commands sharing its transaction are applied again without it and
/// committed, logs included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_command_fails_alone_in_its_batch() {
    let (_db, store) = scratch_store().await;
    let logged = store.create_job(job("hdars")).await.unwrap().token;
    let mut calls = Vec::new();
    for i in 0..32 {
        let store = store.clone();
        calls.push(tokio::spawn(async move {
            let mut new = job("hdars");
            if i == 16 {
                new.plan = "Log-Information \"a\0b\";".into();
            }
            store
                .append_logs(logged, vec![entry(i, &format!("line {i}"))])
                .await
                .unwrap();
            (i, store.create_job(new).await)
        }));
    }
    let mut created = Vec::new();
    for call in calls {
        match call.await.unwrap() {
            (16, result) => assert!(
                matches!(&result, Err(StoreError::Database(e)) if e.to_string().contains("0x00")),
                "{result:?}"
            ),
            (_, result) => created.push(result.unwrap().token),
        }
    }
    assert_eq!(created.len(), 31);
    for token in created {
        assert_eq!(store.status(token).await.unwrap(), Some(JobStatus::Pending));
    }
    store.flush().await.unwrap();
    let mut seqs: Vec<u64> = store
        .logs(logged, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..32).collect::<Vec<u64>>());
}

/// `Durability::Normal` turns synchronous commits off on the store's connections; `Full`
/// leaves the server's setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_durability_turns_synchronous_commit_off() {
    let db = ScratchDatabase::create().await;
    let server: String = admin_client(db.url())
        .await
        .query_one("SHOW synchronous_commit", &[])
        .await
        .unwrap()
        .get(0);
    for (durability, expected) in [
        (Durability::Full, server.as_str()),
        (Durability::Normal, "off"),
    ] {
        let config = PgConfig {
            durability,
            ..PgConfig::default()
        };
        let store = PgStore::connect(db.url(), &config).await.unwrap();
        let row = store
            .read_opt("SHOW synchronous_commit", &[])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.get::<_, &str>(0), expected, "{durability:?}");
        let token = store.create_job(job("hdars")).await.unwrap().token;
        assert!(store.job(token).await.unwrap().is_some());
    }
}

/// A copied job keeps what triggered it and its outputs (`holtd migrate`), and a listing reads
/// them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_job_keeps_its_trigger_source() {
    let (_db, store) = scratch_store().await;
    let batch = holt_storage::dump::Batch {
        jobs: vec![holt_storage::dump::JobRow {
            id: 5,
            template: "hdars".into(),
            plan: String::new(),
            variables: String::new(),
            status: JobStatus::Succeeded.code(),
            created_ms: 1,
            started_ms: Some(2),
            finished_ms: Some(3),
            source: holt_domain::TriggerSource::Schedule.code(),
            outputs: Some(r#"[["Version","1.2"]]"#.into()),
        }],
        ..Default::default()
    };
    store.import(&batch).await.unwrap();
    let token = JobToken::new(5).unwrap();
    let record = store.job(token).await.unwrap().unwrap();
    assert_eq!(record.source, holt_domain::TriggerSource::Schedule);
    let outputs = store.outputs(token).await.unwrap().unwrap();
    assert_eq!(outputs.get("version"), Some("1.2"));
    let page = store
        .list_jobs(&holt_domain::JobFilter {
            template: Some("hdars".parse().unwrap()),
            status: Some(JobStatus::Succeeded),
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].source, holt_domain::TriggerSource::Schedule);
}

/// Each listing statement is read from an index on PostgreSQL too: over 200,000 analysed rows,
/// the plan of every combination of filters uses the listing's index for it and never scans
/// the table. (For a handful of matches the planner may gather them by bitmap and sort them;
/// that costs the matches, not the table.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_are_read_from_an_index_on_postgres() {
    let (db, _store) = scratch_store().await;
    let client = admin_client(db.url()).await;
    client
        .batch_execute(
            "INSERT INTO jobs (template, plan, variables, status, created_ms)
             SELECT 't' || (i % 10), '', '', CASE WHEN i % 1000 = 0 THEN 4 ELSE 2 END, i
             FROM generate_series(1, 200000) AS i;
             ANALYZE jobs;",
        )
        .await
        .unwrap();
    let cases = [
        ("WHERE id < 150000 ORDER BY id DESC LIMIT 50", "jobs_pkey"),
        (
            "WHERE template = 't3' AND id < 150000 ORDER BY id DESC LIMIT 50",
            "jobs_template",
        ),
        (
            "WHERE status = 4 AND id < 150000 ORDER BY id DESC LIMIT 50",
            "jobs_status",
        ),
        (
            "WHERE template = 't0' AND status = 4 AND id < 150000 ORDER BY id DESC LIMIT 50",
            "jobs_template_status",
        ),
    ];
    for (tail, index) in cases {
        let rows = client
            .query(
                &format!(
                    "EXPLAIN SELECT id, template, status, source, created_ms, started_ms,
                                    finished_ms FROM jobs {tail}"
                ),
                &[],
            )
            .await
            .unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
        let plan = plan.join("\n");
        // A common template's page may be read from the primary key, filtered: its rows are
        // dense among the newest, so the planner rightly reads few more than the page.
        let uses = |name: &str| plan.split_whitespace().any(|word| word == name);
        assert!(
            uses(index) || (index == "jobs_template" && uses("jobs_pkey")),
            "{tail}:\n{plan}"
        );
        assert!(!plan.contains("Seq Scan"), "{tail}:\n{plan}");
    }
}

/// Two nodes firing the same slots at once, through the cluster's admission: each slot gets
/// exactly one answer, one job and one firing row, and nobody's batch fails for the race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_fires_once_across_two_stores() {
    let (db, a) = scratch_store().await;
    let b = PgStore::connect(db.url(), &PgConfig::default())
        .await
        .unwrap();
    let policy = holt_storage::Policy {
        max_concurrent: None,
        on_limit: holt_domain::OnLimit::Queue,
        max_pending: 1000,
    };
    let rounds = 6;
    for round in 0..rounds {
        let firing = holt_storage::Firing {
            template: "nightly".parse().unwrap(),
            slot_ms: 1_800_000_000_000 + round * 1000,
            at_ms: 1_800_000_000_000 + round * 1000,
        };
        let mut calls = Vec::new();
        for i in 0..16 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (firing, policy) = (firing.clone(), policy.clone());
            calls.push(tokio::spawn(async move {
                let cluster = store.cluster().unwrap();
                cluster
                    .admit_scheduled(&firing, job("nightly"), &policy)
                    .await
            }));
        }
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap().unwrap());
        }
        let won: Vec<_> = answers.iter().flatten().collect();
        assert_eq!(won.len(), 1, "round {round}: {answers:?}");
        assert!(matches!(won[0], holt_storage::Admitted::Created(_)));
    }
    let client = admin_client(db.url()).await;
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        count("SELECT count(*) FROM jobs WHERE source = 2").await,
        rounds
    );
    assert_eq!(
        count("SELECT count(*) FROM schedule_firings WHERE job_id IS NOT NULL").await,
        rounds
    );
    assert_eq!(
        a.last_firing(&"nightly".parse().unwrap()).await.unwrap(),
        Some(1_800_000_000_000 + (rounds - 1) * 1000)
    );
}

/// A firing the policy refuses is still the slot's firing: recorded, and no other node fires it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_firing_is_recorded_once() {
    let (db, a) = scratch_store().await;
    let b = PgStore::connect(db.url(), &PgConfig::default())
        .await
        .unwrap();
    let full = holt_storage::Policy {
        max_concurrent: None,
        on_limit: holt_domain::OnLimit::Queue,
        max_pending: 0,
    };
    let firing = holt_storage::Firing {
        template: "nightly".parse().unwrap(),
        slot_ms: 1_800_000_000_000,
        at_ms: 1_800_000_000_000,
    };
    let first = a
        .cluster()
        .unwrap()
        .admit_scheduled(&firing, job("nightly"), &full);
    assert_eq!(
        first.await.unwrap(),
        Some(holt_storage::Admitted::QueueFull)
    );
    let roomy = holt_storage::Policy {
        max_pending: 10,
        ..full
    };
    let second = b
        .cluster()
        .unwrap()
        .admit_scheduled(&firing, job("nightly"), &roomy);
    assert_eq!(second.await.unwrap(), None);
    let client = admin_client(db.url()).await;
    let jobs: i64 = client
        .query_one("SELECT count(*) FROM jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 0);
}
