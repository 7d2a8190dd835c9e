//! The storage test suite, written against `JobStore` alone so that every backend runs the same
//! cases. Each case takes a fresh, empty store and panics on a broken rule.
//!
//! Compiled only for this crate's own tests and with the `conformance` feature, so it is no part
//! of the public API. A backend runs the whole suite with one line in its tests:
//! `holt_storage::conformance_tests!(fresh);`, where `fresh` is an async function returning a
//! guard (a temporary directory, a scratch database) and an empty `Arc<dyn JobStore>`.

/// Defines one `#[tokio::test]` per conformance case, each on a fresh store made by `$fresh`
/// (an async function returning `(guard, Arc<dyn JobStore>)`; the guard lives until the case
/// ends). A new case is added to this list once and runs against every backend.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@cases $fresh;
            create_and_read,
            instance_id,
            unknown_job,
            status_transitions,
            logs_in_order,
            log_reads_are_bounded,
            logs_of_unknown_jobs_are_dropped,
            flush_makes_logs_durable,
            recovery,
            concurrent_creates,
            idempotency,
            retention,
            retention_takes_the_oldest_first,
            retention_forgets_the_keys_of_deleted_jobs,
            log_pages_are_bounded_by_bytes,
            control_characters_are_escaped_in_text,
            commits_wake_watchers,
            infrastructure,
            listing,
            outputs_are_recorded_with_the_end,
            webhooks_are_claimed_once_and_retried,
            schedule_firings,
            a_slot_fires_once_among_concurrent_firings,
        );
    };
    (@cases $fresh:path; $($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let (_guard, store) = $fresh().await;
            $crate::conformance::$case(store).await;
        }
    )*};
}

use std::sync::Arc;

use holt_domain::{
    JobFilter, JobStatus, JobToken, LogEntry, LogLevel, ScopePath, TriggerSource, Variables,
};

use crate::{JobStore, NewJob};

fn new_job(template: &str, vars: &[(&str, &str)]) -> NewJob {
    NewJob {
        template: template.parse().unwrap(),
        plan: "Log-Information \"hi\";\n".into(),
        variables: vars
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), (*v).to_owned()))
            .collect::<Variables>(),
        created_ms: 1_000,
        idempotency: None,
    }
}

fn entry(seq: u64, level: LogLevel, text: &str) -> LogEntry {
    LogEntry {
        seq,
        level,
        scope: ScopePath::root().child("Deploy"),
        time_ms: 2_000 + seq as i64,
        text: text.into(),
    }
}

/// A created job reads back exactly, `Pending`, with distinct tokens for distinct jobs.
pub async fn create_and_read(store: Arc<dyn JobStore>) {
    let vars = [("TargetServer", "HDARSV1"), ("Odd", "a&b=c %20 ü\n")];
    let a = store
        .create_job(new_job("hdars", &vars))
        .await
        .unwrap()
        .token;
    let b = store
        .create_job(new_job("ablast", &[]))
        .await
        .unwrap()
        .token;
    assert_ne!(a, b);
    let job = store.job(a).await.unwrap().unwrap();
    assert_eq!(job.token, a);
    assert_eq!(job.template.as_str(), "hdars");
    assert_eq!(job.plan, "Log-Information \"hi\";\n");
    assert_eq!(job.variables.get("targetserver"), Some("HDARSV1"));
    assert_eq!(job.variables.get("Odd"), Some("a&b=c %20 ü\n"));
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(
        (job.created_ms, job.started_ms, job.finished_ms),
        (1_000, None, None)
    );
    assert_eq!(store.status(b).await.unwrap(), Some(JobStatus::Pending));
    let (template, status) = store.summary(a).await.unwrap().unwrap();
    assert_eq!((template.as_str(), status), ("hdars", JobStatus::Pending));
    assert_eq!(
        store
            .summary(JobToken::new(999_999).unwrap())
            .await
            .unwrap(),
        None
    );
}

/// The instance id is non-empty, alphanumeric and stable for one store, and a fresh store is
/// healthy.
pub async fn instance_id(store: Arc<dyn JobStore>) {
    store.health().unwrap();
    let id = store.instance_id().to_owned();
    assert!(!id.is_empty());
    assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
    assert_eq!(store.instance_id(), id);
}

/// Unknown tokens are `None`, not errors.
pub async fn unknown_job(store: Arc<dyn JobStore>) {
    let token = JobToken::new(424_242).unwrap();
    assert_eq!(store.job(token).await.unwrap(), None);
    assert_eq!(store.status(token).await.unwrap(), None);
    assert!(store.logs(token, 0, 10).await.unwrap().is_empty());
}

/// Status changes set the start and finish times.
pub async fn status_transitions(store: Arc<dyn JobStore>) {
    let t = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    store.set_status(t, JobStatus::Executing, 5).await.unwrap();
    let job = store.job(t).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.started_ms, job.finished_ms),
        (JobStatus::Executing, Some(5), None)
    );
    store.set_status(t, JobStatus::Warning, 9).await.unwrap();
    let job = store.job(t).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.started_ms, job.finished_ms),
        (JobStatus::Warning, Some(5), Some(9))
    );
    let missing = JobToken::new(99_999).unwrap();
    assert!(
        store
            .set_status(missing, JobStatus::Error, 1)
            .await
            .is_err()
    );
}

/// Logs come back in sequence order, from any offset, with every field, and the logs appended
/// before an awaited status change are readable once it returns.
pub async fn logs_in_order(store: Arc<dyn JobStore>) {
    let t = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    let other = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    store
        .append_logs(t, vec![entry(0, LogLevel::Debug, "start")])
        .await
        .unwrap();
    store
        .append_logs(other, vec![entry(0, LogLevel::Info, "elsewhere")])
        .await
        .unwrap();
    store
        .append_logs(
            t,
            vec![
                entry(1, LogLevel::Info, "one"),
                entry(2, LogLevel::Error, "two"),
            ],
        )
        .await
        .unwrap();
    store.set_status(t, JobStatus::Error, 10).await.unwrap();
    let all = store.logs(t, 0, 100).await.unwrap();
    assert_eq!(
        all,
        vec![
            entry(0, LogLevel::Debug, "start"),
            entry(1, LogLevel::Info, "one"),
            entry(2, LogLevel::Error, "two")
        ]
    );
    let (text, last) = store.logs_text(t, 0, 3, 100).await.unwrap();
    assert_eq!(
        (text.as_str(), last),
        ("DEBUG: start\nINFO: one\nERROR: two\n", Some(2))
    );
    let (text, last) = store.logs_text(t, 1, 2, 100).await.unwrap();
    assert_eq!((text.as_str(), last), ("INFO: one\n", Some(1)));
    let (text, last) = store.logs_text(t, 3, 10, 100).await.unwrap();
    assert_eq!((text.as_str(), last), ("", None));
    let tail = store.logs(t, 1, 1).await.unwrap();
    assert_eq!(tail, vec![entry(1, LogLevel::Info, "one")]);
    assert!(store.logs(t, 3, 100).await.unwrap().is_empty());
}

/// `flush` makes queued logs readable.
pub async fn flush_makes_logs_durable(store: Arc<dyn JobStore>) {
    let t = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    let entries: Vec<LogEntry> = (0..500)
        .map(|i| entry(i, LogLevel::Info, &format!("line {i}")))
        .collect();
    for chunk in entries.chunks(7) {
        store.append_logs(t, chunk.to_vec()).await.unwrap();
    }
    store.flush().await.unwrap();
    assert_eq!(store.logs(t, 0, 1000).await.unwrap(), entries);
}

/// Recovery fails executing jobs with an explanatory line after their last entry, leaves
/// finished jobs alone, and returns pending jobs oldest first.
pub async fn recovery(store: Arc<dyn JobStore>) {
    let running = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    let done = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    let waiting1 = store
        .create_job(new_job("ablast", &[("A", "1")]))
        .await
        .unwrap()
        .token;
    let waiting2 = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    let fresh = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    store
        .set_status(running, JobStatus::Executing, 1)
        .await
        .unwrap();
    store
        .set_status(fresh, JobStatus::Executing, 1)
        .await
        .unwrap();
    store
        .append_logs(running, vec![entry(0, LogLevel::Info, "working")])
        .await
        .unwrap();
    store
        .set_status(done, JobStatus::Succeeded, 2)
        .await
        .unwrap();

    let found = store
        .recover("The server stopped while this job ran.", 50)
        .await
        .unwrap();
    assert_eq!(found.interrupted, vec![running, fresh]);
    let pending: Vec<JobToken> = found.pending.iter().map(|j| j.token).collect();
    assert_eq!(pending, vec![waiting1, waiting2]);
    assert_eq!(found.pending[0].variables.get("a"), Some("1"));

    let job = store.job(running).await.unwrap().unwrap();
    assert_eq!((job.status, job.finished_ms), (JobStatus::Error, Some(50)));
    let logs = store.logs(running, 0, 10).await.unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(
        (logs[1].seq, logs[1].level, logs[1].text.as_str()),
        (1, LogLevel::Error, "The server stopped while this job ran.")
    );
    let logs = store.logs(fresh, 0, 10).await.unwrap();
    assert_eq!((logs.len(), logs[0].seq), (1, 0));
    assert_eq!(
        store.status(done).await.unwrap(),
        Some(JobStatus::Succeeded)
    );

    let again = store.recover("again", 60).await.unwrap();
    assert!(again.interrupted.is_empty());
    assert_eq!(again.pending.len(), 2);
}

/// Many concurrent writers all get distinct durable tokens.
pub async fn concurrent_creates(store: Arc<dyn JobStore>) {
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create_job(new_job("hdars", &[("I", &i.to_string())]))
                .await
                .unwrap()
                .token
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap());
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 64);
    for token in tokens {
        assert_eq!(store.status(token).await.unwrap(), Some(JobStatus::Pending));
    }
}

/// An idempotency key creates one job; reusing it for the same request returns that job, for
/// another request is a conflict, and after its window it creates again.
pub async fn idempotency(store: Arc<dyn JobStore>) {
    let keyed = |fingerprint: &str, not_before_ms: i64| {
        let mut job = new_job("hdars", &[]);
        job.idempotency = Some(crate::Idempotency {
            key: "retry-1".into(),
            fingerprint: fingerprint.into(),
            not_before_ms,
        });
        job
    };
    let first = store.create_job(keyed("a", 0)).await.unwrap();
    assert!(first.fresh);
    let again = store.create_job(keyed("a", 0)).await.unwrap();
    assert_eq!((again.token, again.fresh), (first.token, false));
    let err = store.create_job(keyed("b", 0)).await.unwrap_err();
    assert!(matches!(err, crate::StoreError::Conflict(_)), "{err}");
    // Outside the window (the first use is at 1_000), the key is free again.
    let later = store.create_job(keyed("b", 5_000)).await.unwrap();
    assert!(later.fresh);
    assert_ne!(later.token, first.token);
    assert_eq!(store.prune_idempotency(2_000).await.unwrap(), 1);
}

/// Retention deletes only finished jobs older than the cutoff, with their logs.
pub async fn retention(store: Arc<dyn JobStore>) {
    let old = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    let recent = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    let running = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    let other = store
        .create_job(new_job("ablast", &[]))
        .await
        .unwrap()
        .token;
    store
        .append_logs(old, vec![entry(0, LogLevel::Info, "x")])
        .await
        .unwrap();
    store
        .set_status(old, JobStatus::Succeeded, 100)
        .await
        .unwrap();
    store
        .set_status(recent, JobStatus::Error, 900)
        .await
        .unwrap();
    store
        .set_status(running, JobStatus::Executing, 50)
        .await
        .unwrap();
    store
        .set_status(other, JobStatus::Warning, 100)
        .await
        .unwrap();
    assert_eq!(store.last_seq(old).await.unwrap(), Some(0));
    assert_eq!(store.last_seq(recent).await.unwrap(), None);
    let rule = crate::RetentionRule {
        before_ms: 500,
        template: None,
        except: vec!["ablast".parse().unwrap()],
    };
    assert_eq!(store.delete_finished(&rule, 10).await.unwrap(), 1);
    assert_eq!(store.job(old).await.unwrap(), None);
    assert!(store.logs(old, 0, 10).await.unwrap().is_empty());
    for kept in [recent, running, other] {
        assert!(store.job(kept).await.unwrap().is_some());
    }
    let rule = crate::RetentionRule {
        before_ms: 500,
        template: Some("ablast".parse().unwrap()),
        except: Vec::new(),
    };
    assert_eq!(store.delete_finished(&rule, 10).await.unwrap(), 1);
    assert_eq!(store.job(other).await.unwrap(), None);
}

/// The infrastructure model: `localhost` from the start, changes checked against what is
/// stored, refused changes leave nothing, concurrent creates of one name make one entry.
pub async fn infrastructure(store: Arc<dyn JobStore>) {
    use holt_domain::{InfraChange, InfraError, ServerPatch, ServerType};
    let empty = store.inventory().await.unwrap();
    let names: Vec<&str> = empty.servers().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["localhost"]);
    let role = holt_domain::RolePatch::default()
        .apply(Some(&"web".parse().unwrap()), None)
        .unwrap();
    store
        .change_inventory(InfraChange::CreateRole(role))
        .await
        .unwrap();
    let server = |name: &str, roles: &[&str]| {
        ServerPatch {
            name: Some(name.parse().unwrap()),
            server_type: Some("ssh".into()),
            host_name: Some(Some("127.0.0.1".into())),
            credentials_name: Some(Some("deploy".into())),
            roles: Some(roles.iter().map(|r| r.parse().unwrap()).collect()),
            ..ServerPatch::default()
        }
        .apply(None, None)
        .unwrap()
    };
    let refused = store
        .change_inventory(InfraChange::CreateServer(server("web1", &["db"])))
        .await;
    assert!(
        matches!(&refused, Err(crate::StoreError::Infra(InfraError::Invalid(m))) if m.contains("no role named db")),
        "{refused:?}"
    );
    assert!(store.inventory().await.unwrap().server("web1").is_none());
    let mut creates = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let web1 = server("web1", &["web"]);
        creates.push(tokio::spawn(async move {
            store
                .change_inventory(InfraChange::CreateServer(web1))
                .await
        }));
    }
    let mut created = 0;
    for create in creates {
        if create.await.unwrap().is_ok() {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    let now = store.inventory().await.unwrap();
    let web1 = now.server("WEB1").unwrap();
    assert_eq!(web1.server_type, ServerType::Ssh);
    assert_eq!(web1.port, 22);
    assert_eq!(web1.roles, ["web".parse().unwrap()]);
    assert!(matches!(
        store
            .change_inventory(InfraChange::DeleteRole("web".parse().unwrap()))
            .await,
        Err(crate::StoreError::Infra(InfraError::Invalid(_)))
    ));
    store
        .change_inventory(InfraChange::DeleteServer("web1".parse().unwrap()))
        .await
        .unwrap();
    store
        .change_inventory(InfraChange::DeleteRole("web".parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(store.inventory().await.unwrap(), empty);
}

/// Log reads stop at their limit and their end, and say which entry they ended with.
pub async fn log_reads_are_bounded(store: Arc<dyn JobStore>) {
    let t = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    let entries: Vec<LogEntry> = (0..10)
        .map(|i| entry(i, LogLevel::Info, &format!("line {i}")))
        .collect();
    store.append_logs(t, entries.clone()).await.unwrap();
    store.flush().await.unwrap();
    assert_eq!(store.logs(t, 0, 4).await.unwrap(), entries[..4]);
    assert_eq!(store.logs(t, 8, 100).await.unwrap(), entries[8..]);
    assert!(store.logs(t, 0, 0).await.unwrap().is_empty());
    // Each line is 13 bytes: a page of 52 bytes holds four.
    let (text, last) = store.logs_text(t, 0, u64::MAX, 52).await.unwrap();
    assert_eq!(
        (text.as_str(), last),
        (
            "INFO: line 0\nINFO: line 1\nINFO: line 2\nINFO: line 3\n",
            Some(3)
        )
    );
    let (text, last) = store.logs_text(t, 7, u64::MAX, 100).await.unwrap();
    assert_eq!(
        (text.as_str(), last),
        ("INFO: line 7\nINFO: line 8\nINFO: line 9\n", Some(9))
    );
    let (text, last) = store.logs_text(t, 5, 5, 100).await.unwrap();
    assert_eq!((text.as_str(), last), ("", None));
    assert_eq!(store.last_seq(t).await.unwrap(), Some(9));
}

/// Entries handed over for a job that does not exist are dropped, and the store goes on.
pub async fn logs_of_unknown_jobs_are_dropped(store: Arc<dyn JobStore>) {
    let missing = JobToken::new(999_999).unwrap();
    store
        .append_logs(missing, vec![entry(0, LogLevel::Info, "nobody")])
        .await
        .unwrap();
    store.flush().await.unwrap();
    assert!(store.logs(missing, 0, 10).await.unwrap().is_empty());
    assert_eq!(store.job(missing).await.unwrap(), None);
    let t = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    store
        .append_logs(t, vec![entry(0, LogLevel::Info, "kept")])
        .await
        .unwrap();
    store.set_status(t, JobStatus::Succeeded, 3).await.unwrap();
    assert_eq!(
        store.logs(t, 0, 10).await.unwrap(),
        vec![entry(0, LogLevel::Info, "kept")]
    );
}

/// Within its limit, retention deletes the jobs that finished first.
pub async fn retention_takes_the_oldest_first(store: Arc<dyn JobStore>) {
    let mut tokens = Vec::new();
    // Created in one order, finished in another.
    for finished in [300, 100, 200] {
        let t = store.create_job(new_job("hdars", &[])).await.unwrap().token;
        store
            .set_status(t, JobStatus::Succeeded, finished)
            .await
            .unwrap();
        tokens.push(t);
    }
    let rule = crate::RetentionRule {
        before_ms: 1_000,
        template: None,
        except: Vec::new(),
    };
    assert_eq!(store.delete_finished(&rule, 2).await.unwrap(), 2);
    assert_eq!(store.job(tokens[1]).await.unwrap(), None);
    assert_eq!(store.job(tokens[2]).await.unwrap(), None);
    assert!(store.job(tokens[0]).await.unwrap().is_some());
    assert_eq!(store.delete_finished(&rule, 2).await.unwrap(), 1);
    assert_eq!(store.delete_finished(&rule, 2).await.unwrap(), 0);
}

/// A deleted job's idempotency key goes with it: the same request makes a new job.
pub async fn retention_forgets_the_keys_of_deleted_jobs(store: Arc<dyn JobStore>) {
    let keyed = || {
        let mut job = new_job("hdars", &[]);
        job.idempotency = Some(crate::Idempotency {
            key: "deploy-7".into(),
            fingerprint: "f".into(),
            not_before_ms: 0,
        });
        job
    };
    let first = store.create_job(keyed()).await.unwrap();
    store
        .set_status(first.token, JobStatus::Succeeded, 10)
        .await
        .unwrap();
    let rule = crate::RetentionRule {
        before_ms: 1_000,
        template: None,
        except: Vec::new(),
    };
    assert_eq!(store.delete_finished(&rule, 10).await.unwrap(), 1);
    let again = store.create_job(keyed()).await.unwrap();
    assert!(again.fresh);
    assert_eq!(
        store.status(again.token).await.unwrap(),
        Some(JobStatus::Pending)
    );
    assert_eq!(store.prune_idempotency(0).await.unwrap(), 0);
}

/// Log pages hold at most the bytes asked for (at least one entry), cut at entry boundaries,
/// and reading page after page gives the whole log exactly once.
pub async fn log_pages_are_bounded_by_bytes(store: Arc<dyn JobStore>) {
    let t = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    let entries: Vec<LogEntry> = (0..300)
        .map(|i| {
            entry(
                i,
                LogLevel::Info,
                &format!("{i:03} {}", "x".repeat(i as usize)),
            )
        })
        .collect();
    for part in entries.chunks(37) {
        store.append_logs(t, part.to_vec()).await.unwrap();
    }
    store.flush().await.unwrap();
    let mut whole = String::new();
    for entry in &entries {
        holt_domain::format_entry(&mut whole, entry);
    }
    for max in [1, 100, 1000, 4096, 50_000] {
        let mut body = String::new();
        let mut next = 0;
        loop {
            let (page, last) = store.logs_text(t, next, 300, max).await.unwrap();
            let Some(last) = last else { break };
            assert!(
                page.len() <= max || page.lines().count() == 1,
                "{max}: {}",
                page.len()
            );
            assert_eq!(page.lines().count() as u64, last + 1 - next);
            body.push_str(&page);
            next = last + 1;
        }
        assert_eq!(body, whole, "pages of {max} bytes");
        let mut seen = Vec::new();
        let mut next = 0;
        loop {
            let page = store.logs_within(t, next, max).await.unwrap();
            let Some(last) = page.last() else { break };
            let size: usize = page.iter().map(|e| e.text.len()).sum();
            assert!(size <= max || page.len() == 1, "{max}: {size}");
            next = last.seq + 1;
            seen.extend(page);
        }
        assert_eq!(seen, entries, "entries within {max} bytes");
    }
}

/// Control characters in entry texts are escaped in the text form, one line per entry, and
/// the entries themselves keep the exact text.
pub async fn control_characters_are_escaped_in_text(store: Arc<dyn JobStore>) {
    let t = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    let texts = [
        "ok\rERROR: forged",
        "a\u{2028}WARN: b",
        "\u{1b}[1A\u{1b}[2Kc\u{85}d",
    ];
    let entries: Vec<LogEntry> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| entry(i as u64, LogLevel::Info, text))
        .collect();
    store.append_logs(t, entries.clone()).await.unwrap();
    store.flush().await.unwrap();
    let (text, last) = store.logs_text(t, 0, 10, 10_000).await.unwrap();
    assert_eq!(
        (text.as_str(), last),
        (
            "INFO: ok\\x0dERROR: forged\nINFO: a\\u2028WARN: b\nINFO: \\x1b[1A\\x1b[2Kc\\x85d\n",
            Some(2)
        )
    );
    assert_eq!(store.logs(t, 0, 10).await.unwrap(), entries);

    // Every character from U+0000 to U+3000 and around the line separators, one entry each in
    // one chunk: what is stored and sent agrees with a fresh render, whole and from any offset.
    let t = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    let entries: Vec<LogEntry> = (0..0x3000u32)
        .filter_map(char::from_u32)
        .enumerate()
        .map(|(i, c)| entry(i as u64, LogLevel::Info, &format!("a{c}b")))
        .collect();
    store.append_logs(t, entries.clone()).await.unwrap();
    store.flush().await.unwrap();
    let mut fresh = String::new();
    for entry in &entries {
        holt_domain::format_entry(&mut fresh, entry);
    }
    let (text, _) = store.logs_text(t, 0, u64::MAX, usize::MAX).await.unwrap();
    assert_eq!(text.lines().count(), entries.len());
    assert!(text == fresh, "the stored text differs from a fresh render");
    for from in [1, 0x0a, 0x0d, 0x85, 0x2028] {
        let (text, _) = store
            .logs_text(t, from, u64::MAX, usize::MAX)
            .await
            .unwrap();
        assert!(fresh.ends_with(&text) && text.lines().count() == entries.len() - from as usize);
    }
}

/// A watch over a job's committed log changes after the commit of its entries (they are
/// readable by then) and closes when the job's terminal status is committed.
pub async fn commits_wake_watchers(store: Arc<dyn JobStore>) {
    let t = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    let other = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    let mut watch = store.watch_committed(t);
    store
        .append_logs(other, vec![entry(0, LogLevel::Info, "elsewhere")])
        .await
        .unwrap();
    store.flush().await.unwrap();
    assert!(
        !watch.has_changed().unwrap(),
        "another job's log woke the watch"
    );
    store
        .append_logs(
            t,
            vec![entry(0, LogLevel::Info, "a"), entry(1, LogLevel::Info, "b")],
        )
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), watch.changed())
        .await
        .expect("woken within 10 s")
        .unwrap();
    assert_eq!(*watch.borrow_and_update(), 2);
    assert_eq!(store.logs(t, 0, 10).await.unwrap().len(), 2);
    store.set_status(t, JobStatus::Succeeded, 5).await.unwrap();
    assert!(
        watch.changed().await.is_err(),
        "the watch closes at the end"
    );
}

/// Listing: newest first, filtered by template, status or both, paged by token so that the
/// pages of a listing join without a gap or a repeat while jobs are created meanwhile; each job
/// with its times and what triggered it (`create_job` records `api`).
pub async fn listing(store: Arc<dyn JobStore>) {
    let filter = |template: Option<&str>, status: Option<JobStatus>, before, limit| JobFilter {
        template: template.map(|t| t.parse().unwrap()),
        status,
        before,
        limit,
    };
    let tokens = |jobs: Vec<holt_domain::JobSummary>| -> Vec<JobToken> {
        jobs.into_iter().map(|j| j.token).collect()
    };
    // Six jobs: a, b, a, b, a, b; the first of each template ends, the second starts.
    let mut made = Vec::new();
    for (i, source) in [
        TriggerSource::Api,
        TriggerSource::Ui,
        TriggerSource::Schedule,
    ]
    .into_iter()
    .cycle()
    .take(6)
    .enumerate()
    {
        let template = if i % 2 == 0 { "alpha" } else { "beta" };
        let job = new_job(template, &[]);
        let token = if i == 0 {
            store.create_job(job).await.unwrap().token
        } else {
            store.create_job_from(job, source).await.unwrap().token
        };
        made.push(token);
    }
    store
        .set_status(made[0], JobStatus::Executing, 1_500)
        .await
        .unwrap();
    store
        .set_status(made[0], JobStatus::Succeeded, 1_700)
        .await
        .unwrap();
    store
        .set_status(made[1], JobStatus::Executing, 1_600)
        .await
        .unwrap();
    let newest_first: Vec<JobToken> = made.iter().rev().copied().collect();

    let all = store
        .list_jobs(&filter(None, None, None, 100))
        .await
        .unwrap();
    assert_eq!(tokens(all.clone()), newest_first);
    let first = all.iter().find(|j| j.token == made[0]).unwrap();
    assert_eq!(first.template.as_str(), "alpha");
    assert_eq!(first.status, JobStatus::Succeeded);
    assert_eq!(first.source, TriggerSource::Api);
    assert_eq!(
        (first.created_ms, first.started_ms, first.finished_ms),
        (1_000, Some(1_500), Some(1_700))
    );
    let second = all.iter().find(|j| j.token == made[1]).unwrap();
    assert_eq!(second.source, TriggerSource::Ui);
    assert_eq!((second.started_ms, second.finished_ms), (Some(1_600), None));
    assert_eq!(
        all.iter().find(|j| j.token == made[2]).unwrap().source,
        TriggerSource::Schedule
    );
    assert_eq!(
        store.job(made[1]).await.unwrap().unwrap().source,
        TriggerSource::Ui
    );

    let alpha = store
        .list_jobs(&filter(Some("alpha"), None, None, 100))
        .await
        .unwrap();
    assert_eq!(tokens(alpha), [made[4], made[2], made[0]]);
    let pending = store
        .list_jobs(&filter(None, Some(JobStatus::Pending), None, 100))
        .await
        .unwrap();
    assert_eq!(tokens(pending), [made[5], made[4], made[3], made[2]]);
    let beta_pending = store
        .list_jobs(&filter(Some("beta"), Some(JobStatus::Pending), None, 100))
        .await
        .unwrap();
    assert_eq!(tokens(beta_pending), [made[5], made[3]]);
    let none = store
        .list_jobs(&filter(Some("gamma"), None, None, 100))
        .await
        .unwrap();
    assert!(none.is_empty());

    // Pages of two, each before the last token of the previous one, with a job created
    // between pages: the pages join into the listing as it was, and the new job is not in it.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = tokens(
            store
                .list_jobs(&filter(None, None, before, 2))
                .await
                .unwrap(),
        );
        assert!(page.len() <= 2);
        let Some(&last) = page.last() else { break };
        paged.extend(page);
        before = Some(last);
        store.create_job(new_job("alpha", &[])).await.unwrap();
    }
    assert_eq!(paged, newest_first);

    // A bound need not name a job (one deleted by retention, or one never made): a token past
    // the newest lists from the newest; the oldest job's own token lists nothing.
    let far = JobToken::new(made[5].id() + 1_000).unwrap();
    let from_far = store
        .list_jobs(&filter(None, None, Some(far), 1))
        .await
        .unwrap();
    assert_eq!(from_far.len(), 1);
    assert!(from_far[0].token > made[5]);
    let below_first = store
        .list_jobs(&filter(None, None, Some(made[0]), 10))
        .await
        .unwrap();
    assert!(below_first.is_empty());
    let zero = store.list_jobs(&filter(None, None, None, 0)).await.unwrap();
    assert!(zero.is_empty());
}

/// A job's outputs are recorded with its terminal status, in declaration order, values byte for
/// byte; before its end, and for an end recorded without them, a job has none; an unknown job
/// has no outputs at all.
pub async fn outputs_are_recorded_with_the_end(store: Arc<dyn JobStore>) {
    let t = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    let plain = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    assert_eq!(
        store.outputs(t).await.unwrap(),
        Some(holt_domain::Outputs::new())
    );
    store.set_status(t, JobStatus::Executing, 5).await.unwrap();
    let outputs: holt_domain::Outputs = [("Version", "1.2.3"), ("ArtifactUrl", "a&b=\"c\" ü\n")]
        .into_iter()
        .map(|(k, v)| (k.parse().unwrap(), v.to_owned()))
        .collect();
    store
        .end_job(t, JobStatus::Succeeded, 9, &outputs)
        .await
        .unwrap();
    let job = store.job(t).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.finished_ms),
        (JobStatus::Succeeded, Some(9))
    );
    let read = store.outputs(t).await.unwrap().unwrap();
    assert_eq!(read, outputs);
    let names: Vec<_> = read.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Version", "ArtifactUrl"]);
    store.set_status(plain, JobStatus::Error, 9).await.unwrap();
    assert_eq!(
        store.outputs(plain).await.unwrap(),
        Some(holt_domain::Outputs::new())
    );
    let unknown = JobToken::new(424_242).unwrap();
    assert_eq!(store.outputs(unknown).await.unwrap(), None);
    assert!(
        store
            .end_job(unknown, JobStatus::Error, 9, &outputs)
            .await
            .is_err()
    );
}

/// The webhook outbox: a webhook is due at once, a claim hides it from other claims until its
/// lease runs out, a retry makes it due at its time, and delivered or given-up webhooks leave.
pub async fn webhooks_are_claimed_once_and_retried(store: Arc<dyn JobStore>) {
    use crate::{Attempted, NewWebhook};
    let t = store.create_job(new_job("hdars", &[])).await.unwrap().token;
    store.set_status(t, JobStatus::Error, 10).await.unwrap();
    assert_eq!(store.next_webhook_ms().await.unwrap(), None);
    let hook = |url: &str, env: Option<&str>| NewWebhook {
        url: url.into(),
        secret_env: env.map(str::to_owned),
    };
    store
        .add_webhooks(
            t,
            vec![hook("http://a/1", Some("K")), hook("http://b/2", None)],
            100,
        )
        .await
        .unwrap();
    assert_eq!(store.next_webhook_ms().await.unwrap(), Some(100));
    assert!(
        store
            .claim_webhooks(99, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = store.claim_webhooks(100, 1_000, 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let first = claimed[0].clone();
    assert_eq!(
        (first.token, first.url.as_str(), first.secret_env.as_deref()),
        (t, "http://a/1", Some("K"))
    );
    assert_eq!((first.attempts, first.created_ms), (0, 100));
    // The other is still due; the claimed one is not, until its lease runs out.
    let second = store.claim_webhooks(200, 1_000, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].url, "http://b/2");
    assert!(
        store
            .claim_webhooks(500, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store.claim_webhooks(1_100, 1_000, 10).await.unwrap();
    assert_eq!(again.iter().map(|w| w.id).collect::<Vec<_>>(), [first.id]);
    // A failed attempt counts and is due at its retry time; a delivered one leaves.
    store
        .webhook_attempted(first.id, Attempted::Retry { next_ms: 5_000 })
        .await
        .unwrap();
    store
        .webhook_attempted(second[0].id, Attempted::Delivered)
        .await
        .unwrap();
    assert_eq!(store.next_webhook_ms().await.unwrap(), Some(5_000));
    assert!(
        store
            .claim_webhooks(4_999, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let retried = store.claim_webhooks(5_000, 1_000, 10).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);
    store
        .webhook_attempted(retried[0].id, Attempted::GaveUp)
        .await
        .unwrap();
    assert_eq!(store.next_webhook_ms().await.unwrap(), None);
    assert!(
        store
            .claim_webhooks(i64::MAX / 2, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

fn firing(template: &str, slot_ms: i64) -> crate::Firing {
    crate::Firing {
        template: template.parse().unwrap(),
        slot_ms,
        at_ms: slot_ms + 5,
    }
}

/// A firing and its job are recorded together; a slot at or before the newest recorded one
/// never fires again, with or without a job; firings of one template leave another's alone.
pub async fn schedule_firings(store: Arc<dyn JobStore>) {
    let nightly: holt_domain::TemplateName = "nightly".parse().unwrap();
    assert_eq!(store.last_firing(&nightly).await.unwrap(), None);
    let hour = 3_600_000;
    let first = 1_800_000_000_000;
    let token = store
        .create_scheduled_job(
            &firing("nightly", first),
            new_job("nightly", &[("ScheduledFor", "x")]),
        )
        .await
        .unwrap()
        .expect("a first firing creates its job");
    let job = store.job(token).await.unwrap().unwrap();
    assert_eq!(job.source, TriggerSource::Schedule);
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.template, nightly);
    assert_eq!(job.variables.get("scheduledfor"), Some("x"));
    assert_eq!(store.last_firing(&nightly).await.unwrap(), Some(first));
    // The same slot again, or an earlier one: nothing is written.
    for slot in [first, first - hour] {
        assert_eq!(
            store
                .create_scheduled_job(&firing("nightly", slot), new_job("nightly", &[]))
                .await
                .unwrap(),
            None
        );
        assert!(
            !store
                .record_firing(&firing("nightly", slot), None)
                .await
                .unwrap()
        );
    }
    let filter = JobFilter {
        template: Some(nightly.clone()),
        status: None,
        before: None,
        limit: 10,
    };
    let listed = store.list_jobs(&filter).await.unwrap();
    assert_eq!(listed.len(), 1, "a refused firing created a job");
    // A refused slot (the policy said no) is recorded without a job and still counts.
    assert!(
        store
            .record_firing(&firing("nightly", first + hour), None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.last_firing(&nightly).await.unwrap(),
        Some(first + hour)
    );
    assert_eq!(
        store
            .create_scheduled_job(&firing("nightly", first + hour), new_job("nightly", &[]))
            .await
            .unwrap(),
        None
    );
    // An existing job standing for a slot.
    assert!(
        store
            .record_firing(&firing("nightly", first + 2 * hour), Some(token))
            .await
            .unwrap()
    );
    // Another template has slots of its own.
    let other: holt_domain::TemplateName = "other".parse().unwrap();
    assert_eq!(store.last_firing(&other).await.unwrap(), None);
    assert!(
        store
            .create_scheduled_job(&firing("other", first), new_job("other", &[]))
            .await
            .unwrap()
            .is_some()
    );
    // Far later slots still fire, and forget the old ones without losing the newest.
    let later = first + 3 * crate::FIRING_HISTORY_MS;
    assert!(
        store
            .record_firing(&firing("nightly", later), None)
            .await
            .unwrap()
    );
    assert_eq!(store.last_firing(&nightly).await.unwrap(), Some(later));
    assert!(
        !store
            .record_firing(&firing("nightly", first + 3 * hour), None)
            .await
            .unwrap()
    );
}

/// Of many concurrent firings of one slot, exactly one creates a job.
pub async fn a_slot_fires_once_among_concurrent_firings(store: Arc<dyn JobStore>) {
    let slot = 1_800_000_000_000;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                store
                    .create_scheduled_job(&firing("every", slot), new_job("every", &[]))
                    .await
                    .unwrap()
                    .is_some()
            } else {
                store
                    .record_firing(&firing("every", slot), None)
                    .await
                    .unwrap()
            }
        }));
    }
    let mut fired = 0;
    for task in tasks {
        fired += usize::from(task.await.unwrap());
    }
    assert_eq!(fired, 1);
    assert_eq!(
        store.last_firing(&"every".parse().unwrap()).await.unwrap(),
        Some(slot)
    );
}

#[cfg(test)]
mod tests {
    /// Every case defined here is in the list every backend runs.
    #[test]
    fn every_case_is_in_the_suite() {
        let source = include_str!("conformance.rs");
        let (_, list) = source.split_once("@cases $fresh;").unwrap();
        let (list, _) = list.split_once(");").unwrap();
        let mut listed: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let mut defined: Vec<&str> = source
            .lines()
            .filter_map(|l| l.strip_prefix("pub async fn "))
            .filter_map(|l| l.split_once('(').map(|(name, _)| name))
            .collect();
        listed.sort_unstable();
        defined.sort_unstable();
        assert_eq!(listed, defined);
    }
}
