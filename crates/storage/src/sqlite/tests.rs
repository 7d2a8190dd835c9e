use std::sync::Arc;

use holt_domain::Variables;

use super::*;

fn temp_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("holt.db"))).unwrap();
    (dir, store)
}

/// Records a job of `template` with no plan and no variables.
async fn empty_job(store: &SqliteStore, template: &str) -> JobToken {
    store
        .create_job(NewJob {
            template: template.parse().unwrap(),
            plan: String::new(),
            variables: Variables::new(),
            created_ms: 0,
            idempotency: None,
        })
        .await
        .unwrap()
        .token
}

/// A fresh store in a temporary directory, for the conformance suite.
async fn fresh() -> (tempfile::TempDir, Arc<dyn JobStore>) {
    let (dir, store) = temp_store();
    (dir, Arc::new(store))
}

crate::conformance_tests!(fresh);

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

#[test]
fn migrating_from_one_row_per_line_keeps_every_entry() {
    // A database at schema 3 with logs in the old per-line table is carried to chunks.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("holt.db");
    let mut conn = Connection::open(&path).unwrap();
    let tx = conn.transaction().unwrap();
    for sql in &migrations::MIGRATIONS[..3] {
        tx.execute_batch(sql).unwrap();
    }
    tx.pragma_update(None, "user_version", 3).unwrap();
    tx.execute_batch(
        "INSERT INTO jobs (id, template, plan, variables, status, created_ms) VALUES (1, 'hdars', '', '', 2, 0);
         INSERT INTO log_entries VALUES (1, 0, 0, '', 10, 'start');
         INSERT INTO log_entries VALUES (1, 1, 1, 'Deploy', 11, 'one \"quoted\"');
         INSERT INTO log_entries VALUES (1, 2, 3, '', 12, 'done');",
    )
    .unwrap();
    tx.commit().unwrap();
    drop(conn);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(&SqliteConfig::new(&path)).unwrap();
        let token = JobToken::new(1).unwrap();
        let entries = store.logs(token, 0, 10).await.unwrap();
        let seen: Vec<(u64, &str, &str)> = entries
            .iter()
            .map(|e| (e.seq, e.level.as_str(), e.text.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (0, "DEBUG", "start"),
                (1, "INFO", "one \"quoted\""),
                (2, "ERROR", "done")
            ]
        );
        assert_eq!(entries[1].scope.segments(), ["Deploy"]);
        assert_eq!(entries[1].time_ms, 11);
        let (text, last) = store.logs_text(token, 0, 10, 1000).await.unwrap();
        assert_eq!(
            (text.as_str(), last),
            ("DEBUG: start\nINFO: one \"quoted\"\nERROR: done\n", Some(2))
        );
        assert_eq!(store.last_seq(token).await.unwrap(), Some(2));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_appends_in_one_batch_read_back_from_any_offset() {
    let (_dir, store) = temp_store();
    let token = empty_job(&store, "hdars").await;
    // More entries than one chunk holds, handed over in small appends.
    let total = 10_000u64;
    for start in (0..total).step_by(7) {
        let entries = (start..(start + 7).min(total))
            .map(|seq| holt_domain::LogEntry {
                seq,
                level: holt_domain::LogLevel::Info,
                scope: holt_domain::ScopePath::root(),
                time_ms: seq as i64,
                text: format!("line {seq}"),
            })
            .collect();
        store.append_logs(token, entries).await.unwrap();
    }
    store.flush().await.unwrap();
    assert_eq!(store.last_seq(token).await.unwrap(), Some(total - 1));
    for from in [0, 1, 4095, 4096, 4097, 9_999] {
        let entries = store.logs(token, from, 3).await.unwrap();
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        let expected: Vec<u64> = (from..(from + 3).min(total)).collect();
        assert_eq!(seqs, expected, "from {from}");
        let (text, last) = store.logs_text(token, from, from + 2, 100).await.unwrap();
        let lines: Vec<String> = (from..(from + 2).min(total))
            .map(|s| format!("INFO: line {s}\n"))
            .collect();
        assert_eq!(
            (text, last),
            (lines.concat(), Some((from + 1).min(total - 1))),
            "from {from}"
        );
    }
    let (text, last) = store
        .logs_text(token, 0, u64::MAX, usize::MAX)
        .await
        .unwrap();
    assert_eq!(text.lines().count() as u64, total);
    assert_eq!(last, Some(total - 1));
    // A byte limit inside the first chunk cuts it at a line end.
    let (text, last) = store.logs_text(token, 0, u64::MAX, 5000).await.unwrap();
    let lines = text.lines().count() as u64;
    assert!(text.len() <= 5000 && text.len() > 4900, "{}", text.len());
    assert_eq!(last, Some(lines - 1));
    assert!(text.ends_with(&format!("INFO: line {}\n", lines - 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_stored_before_escaping_are_rendered_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("holt.db");
    let store = SqliteStore::open(&SqliteConfig::new(&path)).unwrap();
    let token = empty_job(&store, "hdars").await;
    store.flush().await.unwrap();
    // A chunk as an older build wrote it: the carriage return kept raw in the stored text.
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO log_chunks (job_id, first_seq, last_seq, body, entries) VALUES (?1, 0, 1, ?2, ?3)",
        params![
            token.id() as i64,
            "INFO: ok\rERROR: forged\nINFO: two\n",
            r#"[[1,0,"","ok\rERROR: forged"],[1,0,"","two"]]"#
        ],
    )
    .unwrap();
    drop(conn);
    let (text, last) = store.logs_text(token, 0, 10, 1000).await.unwrap();
    assert_eq!(
        (text.as_str(), last),
        ("INFO: ok\\x0dERROR: forged\nINFO: two\n", Some(1))
    );
    let (text, _) = store.logs_text(token, 1, 10, 1000).await.unwrap();
    assert_eq!(text, "INFO: two\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_entries_beyond_the_log_budget_are_all_kept_in_bounded_chunks() {
    let (_dir, store) = temp_store();
    let token = empty_job(&store, "long").await;
    let entry = |seq: u64| holt_domain::LogEntry {
        seq,
        level: holt_domain::LogLevel::Info,
        scope: holt_domain::ScopePath::root(),
        time_ms: 0,
        text: format!("{seq:06}{}", "x".repeat(300_000)),
    };
    // One append larger than the whole budget goes through alone; then appends that must wait
    // for the writer to give budget back.
    store
        .append_logs(token, (0..40).map(entry).collect())
        .await
        .unwrap();
    for seq in 40..80 {
        store.append_logs(token, vec![entry(seq)]).await.unwrap();
    }
    store.flush().await.unwrap();
    for from in [0, 39, 40, 79] {
        let got = store.logs(token, from, 1).await.unwrap();
        assert_eq!(got, vec![entry(from)], "from {from}");
    }
    let (text, last) = store
        .logs_text(token, 0, u64::MAX, usize::MAX)
        .await
        .unwrap();
    assert_eq!((text.lines().count(), last), (80, Some(79)));
    let largest: i64 = store
        .read(|conn| {
            Ok(
                conn.query_row("SELECT max(length(body)) FROM log_chunks", [], |row| {
                    row.get(0)
                })?,
            )
        })
        .await
        .unwrap();
    assert!(
        largest as usize <= crate::backend::MAX_CHUNK_BYTES + 80 * 8,
        "a chunk holds {largest} bytes"
    );
}

/// When a batch cannot be committed, every caller waiting on it hears why, the ones whose work
/// never got to run included (they used to hear only that the store was closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_answers_every_caller_with_its_reason() {
    let (_dir, store) = temp_store();
    // A database that may not grow: the next page it needs fails the batch as a full disk does.
    let pages: i64 = store
        .in_batch(|tx| {
            let used: i64 = tx.query_row("PRAGMA page_count", [], |row| row.get(0))?;
            tx.query_row(&format!("PRAGMA max_page_count = {used}"), [], |row| {
                row.get::<_, i64>(0)
            })?;
            Ok(used)
        })
        .await
        .unwrap();
    assert!(pages > 0);
    let mut calls = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        calls.push(tokio::spawn(async move {
            if i % 2 == 0 {
                store
                    .create_job(NewJob {
                        template: "hdars".parse().unwrap(),
                        plan: "x".repeat(4096),
                        variables: Variables::new(),
                        created_ms: 0,
                        idempotency: None,
                    })
                    .await
                    .map(|_| ())
            } else {
                store.flush().await
            }
        }));
    }
    let mut unavailable = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(()) => {}
            Err(StoreError::Unavailable(_)) => unavailable += 1,
            Err(other) => panic!("a caller heard {other:?} instead of the batch's failure"),
        }
    }
    assert!(unavailable > 0, "the database never filled up");
}

/// Every listing statement is served by an index in token order: SQLite searches (never scans
/// the table) and never sorts, so a page costs its own rows with a million jobs as with ten.
/// The million rows themselves are in `a_page_of_a_million_jobs_reads_only_its_rows`.
#[test]
fn listing_pages_are_read_from_an_index_without_sorting() {
    let mut conn = Connection::open_in_memory().unwrap();
    migrations::apply(&mut conn).unwrap();
    let expected = [
        ((false, false), "INTEGER PRIMARY KEY"),
        ((true, false), "INDEX jobs_template "),
        ((false, true), "INDEX jobs_status "),
        ((true, true), "INDEX jobs_template_status "),
    ];
    for ((template, status), index) in expected {
        let sql = format!("EXPLAIN QUERY PLAN {}", list_sql(template, status));
        let params: Vec<rusqlite::types::Value> = [
            Some(rusqlite::types::Value::Integer(100)),
            Some(rusqlite::types::Value::Integer(10)),
            template.then(|| rusqlite::types::Value::Text("t".into())),
            status.then_some(rusqlite::types::Value::Integer(2)),
        ]
        .into_iter()
        .flatten()
        .collect();
        let plan: Vec<String> = conn
            .prepare(&sql)
            .unwrap()
            .query_map(rusqlite::params_from_iter(params), |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("; ");
        assert!(plan.starts_with("SEARCH jobs USING"), "{plan}");
        assert!(plan.contains(index), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}

/// A database with a million jobs answers a filtered page at once: the page's rows are all
/// SQLite reads, whatever the filters, measured as virtual-machine steps rather than time.
#[test]
fn a_page_of_a_million_jobs_reads_only_its_rows() {
    let mut conn = Connection::open_in_memory().unwrap();
    migrations::apply(&mut conn).unwrap();
    // Templates t0..t9 in turn, one in a thousand jobs Error, the rest Succeeded.
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
         INSERT INTO jobs (id, template, plan, variables, status, created_ms)
         SELECT i, 't' || (i % 10), '', '', CASE WHEN i % 1000 = 0 THEN 4 ELSE 2 END, i FROM n;",
    )
    .unwrap();
    let filters = [
        (None, None),
        (Some("t3"), None),
        (None, Some(JobStatus::Error)),
        (Some("t0"), Some(JobStatus::Error)),
    ];
    for (template, status) in filters {
        let filter = JobFilter {
            template: template.map(|t| t.parse().unwrap()),
            status,
            before: JobToken::new(900_000),
            limit: 50,
        };
        let page = list_jobs(&conn, &filter).unwrap();
        assert_eq!(page.len(), 50, "{filter:?}");
        assert!(page.windows(2).all(|w| w[0].token > w[1].token));
        assert!(page.iter().all(|j| j.token.id() < 900_000));
        assert!(page.iter().all(|j| j.source == TriggerSource::Api));
        let sql = list_sql(template.is_some(), status.is_some());
        let stmt = conn.prepare_cached(sql).unwrap();
        let steps = stmt.get_status(rusqlite::StatementStatus::VmStep);
        assert!(steps < 5_000, "{filter:?}: {steps} steps for a page of 50");
    }
}
