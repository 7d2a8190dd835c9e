//! holtd on PostgreSQL (`--db postgres://...`): a job triggered, waited for, followed and read,
//! the same jobs read again after a restart and after a crash, and secret values sealed in the
//! database; each test on a database of its own on the server `HOLT_TEST_POSTGRES` names.

use holt_storage_postgres::scratch::ScratchDatabase;
use holt_tests::Holtd;

use crate::templates;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holtd_on_postgres_runs_jobs_and_keeps_them_across_restarts() {
    let db = ScratchDatabase::create().await;
    let mut holtd = Holtd::start_on_postgres(db.url(), &templates::all(), &[]).await;
    let expected = "DEBUG: Job started from template ablast.\n\
                    INFO: Deploying to ABLSV1\n\
                    INFO: Notifying ops@example.com\n\
                    INFO: Job succeeded.\n";
    let token = holtd
        .trigger("template=ablast&TargetServer=ABLSV1&SendNotification=ops@example.com")
        .await;
    // The waiter is woken by the job's end, committed to PostgreSQL.
    let reply = holtd
        .get(&format!("/api/jobs/status?token={token}&wait=20"))
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "Succeeded"));
    assert_eq!(holtd.logs(&token, "").await, expected);

    // A follower gets every line as it is committed, and the body ends with the job.
    let sleeper = holtd.trigger("template=sleeps&Seconds=1").await;
    let followed = holtd.logs(&sleeper, "&follow=true").await;
    assert_eq!(
        followed,
        "DEBUG: Job started from template sleeps.\n\
         INFO: sleeping 1\n\
         INFO: awake\n\
         INFO: Job succeeded.\n"
    );

    // A clean restart reads the same jobs back.
    assert!(holtd.terminate().success(), "{}", holtd.server_log());
    holtd.restart().await;
    assert_eq!(holtd.status(&token, "").await, "Succeeded");
    assert_eq!(holtd.logs(&token, "").await, expected);
    assert_eq!(holtd.status(&sleeper, "").await, "Succeeded");

    // After a crash, the job that was executing is failed with the explanatory line, and new
    // tokens follow the old ones.
    let running = holtd.trigger("template=sleeps&Seconds=60").await;
    holtd.wait_log(&running, "INFO: sleeping 60\n").await;
    holtd.kill9();
    holtd.restart().await;
    assert_eq!(holtd.status(&running, "").await, "Error");
    assert_eq!(
        holtd.logs(&running, "").await,
        "DEBUG: Job started from template sleeps.\n\
         INFO: sleeping 60\n\
         ERROR: The server stopped while this job was executing; the job did not finish.\n"
    );
    let next = holtd.trigger("template=hdars&key=secure123").await;
    assert_ne!(next, running);
    assert_eq!(
        holtd.wait_terminal(&next, "&key=secure123").await,
        "Succeeded"
    );
    let log = holtd.server_log();
    assert!(log.contains("the database is PostgreSQL"), "{log}");
}

/// With PostgreSQL, holtd wants the secrets key's place said (it cannot go beside the
/// database), and a URL's password never reaches its messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holtd_on_postgres_needs_a_key_file_and_never_prints_the_password() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(holt_tests::holtd_binary())
            .args(["--listen", "127.0.0.1:0", "--templates"])
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run(&["--db", "postgres://holt:pw-s3cr3t@127.0.0.1:5432/holt"]);
    assert!(!ok);
    assert!(err.contains("give --secrets-key FILE"), "{err}");
    let key = dir.path().join("key");
    let key = key.to_str().unwrap();
    // Nothing listens on port 1.
    let (ok, err) = run(&[
        "--db",
        "postgresql://holt:pw-s3cr3t@127.0.0.1:1/holt",
        "--secrets-key",
        key,
    ]);
    assert!(!ok);
    assert!(
        err.contains("cannot open postgres://holt@127.0.0.1:1/holt:"),
        "{err}"
    );
    assert!(!err.contains("pw-s3cr3t"), "{err}");
}

/// Secret values are sealed before they reach PostgreSQL: a dump of the whole database holds
/// neither the value nor anything but its sealed form, the idempotency fingerprint included,
/// and the job runs with the value after a restart with the same key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_are_sealed_in_postgres() {
    let db = ScratchDatabase::create().await;
    let template = "allow_api = true\nplan = 'Log-Information \"pw=$Password\";'\n\
                    [variables.Password]\nsecret = true\ndefault = \"unused-default\"\n";
    let mut holtd = Holtd::start_on_postgres(
        db.url(),
        &[("secret", template), ("sleeps", templates::SLEEPS)],
        &["--max-concurrent-jobs", "1"],
    )
    .await;
    // The first job holds the only slot, so the second is still pending, its variables
    // stored, when holtd stops.
    holtd.trigger("template=sleeps&Seconds=60").await;
    let reply = holtd
        .request(
            "GET",
            "/api/jobs/trigger?template=secret&Password=hunter2-in-postgres",
            &[("idempotency-key", "sealed-1")],
            "",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let pending = reply.body;
    assert_eq!(holtd.status(&pending, "").await, "Pending");
    let dump = std::process::Command::new("pg_dump")
        .args(["--data-only", db.url()])
        .output()
        .expect("run pg_dump");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8(dump.stdout).unwrap();
    // Variables are kept form-encoded: `holt-sealed:v1:<hex>` with its colons escaped.
    assert!(dump.contains("Password=holt-sealed%3Av1%3A"), "{dump}");
    assert!(
        !dump.contains("hunter2"),
        "a secret value is in the database:\n{dump}"
    );
    holtd.kill9();
    holtd.restart().await;
    assert_eq!(holtd.wait_terminal(&pending, "").await, "Succeeded");
    assert_eq!(
        holtd.logs(&pending, "").await,
        "DEBUG: Job started from template secret.\nINFO: pw=***\nINFO: Job succeeded.\n"
    );
}

/// `holtd migrate` copies a SQLite database into an empty PostgreSQL one: the same tokens with
/// the same statuses and logs (a long one in several chunks), idempotency keys, secrets still
/// sealed under the same key, servers and roles; a job interrupted by a crash arrives ended;
/// new tokens follow the old; a database that is not empty is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holtd_migrate_copies_a_sqlite_database_into_postgres() {
    let admin = "migrate-admin";
    let digest = holt_tests::sha256_hex(admin);
    let mut templates = templates::all();
    let long =
        templates::with_plan("foreach $i in @Range(1, 9000) { Log-Information \"line $i\"; }");
    templates.push(("long", &long));
    let mut holtd = Holtd::start(&templates, &["--admin-key-sha256", &digest]).await;
    let infra = |path: &'static str, body: &'static str| {
        let holtd = &holtd;
        async move {
            let reply = holtd
                .request(
                    "POST",
                    &format!("/api/infrastructure/{path}"),
                    &[("x-apikey", admin), ("content-type", "application/json")],
                    body,
                )
                .await;
            assert_eq!(reply.status, 200, "{}", reply.body);
        }
    };
    infra("roles/create/web", "{}").await;
    infra(
        "servers/create/web1",
        r#"{"serverType":"local","roles":["web"],"variables":{"Port":"8080"}}"#,
    )
    .await;
    let done = holtd
        .trigger("template=ablast&TargetServer=ABLSV1&SendNotification=ops@example.com")
        .await;
    let lines = holtd.trigger("template=long").await;
    let keyed = holtd
        .request(
            "GET",
            "/api/jobs/trigger?template=hdars&key=secure123",
            &[("Idempotency-Key", "nightly-1")],
            "",
        )
        .await;
    assert_eq!(keyed.status, 200);
    for token in [&done, &lines, &keyed.body] {
        holtd.wait_terminal(token, "&key=secure123").await;
    }
    let running = holtd.trigger("template=sleeps&Seconds=60").await;
    holtd.wait_log(&running, "INFO: sleeping 60\n").await;
    let before: Vec<(String, String)> = {
        let mut out = Vec::new();
        for token in [&done, &lines, &keyed.body] {
            out.push((
                holtd.status(token, "&key=secure123").await,
                holtd.logs(token, "&key=secure123").await,
            ));
        }
        out
    };
    let servers_before = holtd
        .request(
            "POST",
            "/api/infrastructure/servers/list",
            &[("x-apikey", admin)],
            "",
        )
        .await
        .body;
    // The server stops the hard way, leaving a job executing in the file.
    holtd.kill9();
    let sqlite = holtd.db();
    let key = sqlite.parent().unwrap().join("holt.secrets.key");

    let db = ScratchDatabase::create().await;
    let migrate = || {
        std::process::Command::new(holt_tests::holtd_binary())
            .arg("migrate")
            .arg("--from")
            .arg(&sqlite)
            .arg("--to")
            .arg(db.url())
            .output()
            .unwrap()
    };
    let output = migrate();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("copied 4 jobs (1 interrupted ones ended first)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("idempotency keys and 2 servers, roles and environments"),
        "{stdout}"
    );

    let node = Holtd::start_on_postgres(
        db.url(),
        &templates,
        &[
            "--admin-key-sha256",
            &digest,
            "--secrets-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    for (token, (status, log)) in [&done, &lines, &keyed.body].iter().zip(&before) {
        assert_eq!(&node.status(token, "&key=secure123").await, status);
        assert_eq!(&node.logs(token, "&key=secure123").await, log);
    }
    assert_eq!(before[1].1.lines().count(), 9002);
    assert_eq!(node.status(&running, "").await, "Error");
    assert!(node.logs(&running, "").await.ends_with(
        "ERROR: The server stopped while this job was executing; the job did not finish.\n"
    ));
    let again = node
        .request(
            "GET",
            "/api/jobs/trigger?template=hdars&key=secure123",
            &[("Idempotency-Key", "nightly-1")],
            "",
        )
        .await;
    assert_eq!(
        (again.status, again.body.as_str()),
        (200, keyed.body.as_str())
    );
    let servers_after = node
        .request(
            "POST",
            "/api/infrastructure/servers/list",
            &[("x-apikey", admin)],
            "",
        )
        .await
        .body;
    assert_eq!(servers_after, servers_before);
    let next = node.trigger("template=hdars&key=secure123").await;
    assert!(
        next.parse::<u64>().unwrap() > running.parse::<u64>().unwrap(),
        "{next}"
    );
    assert_eq!(
        node.wait_terminal(&next, "&key=secure123").await,
        "Succeeded"
    );

    // The target now holds jobs: a second copy is refused, naming why.
    let output = migrate();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("already holds jobs or infrastructure"),
        "{stderr}"
    );
    assert!(!stderr.contains("password"), "{stderr}");
}

/// `holtd check --db postgres://...` checks templates against a PostgreSQL database's
/// inventory, naming the database without its password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holtd_check_reads_the_inventory_of_a_postgres_database() {
    let db = ScratchDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lost.toml"),
        "allow_api = true\nservers = [\"gone\"]\nplan = 'Log-Information \"hi\";'\n",
    )
    .unwrap();
    // A test URL without a password reaches a server that trusts its user, which then takes
    // any password.
    let (scheme, rest) = db.url().split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    let url = if user.contains(':') {
        db.url().to_owned()
    } else {
        format!("{scheme}://{user}:pw-s3cr3t@{host}")
    };
    let output = std::process::Command::new(holt_tests::holtd_binary())
        .arg("check")
        .arg("--templates")
        .arg(dir.path())
        .args(["--db", &url])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let problems: Vec<&str> = stderr.lines().filter(|l| !l.contains(" INFO ")).collect();
    let name = holt_storage_postgres::redacted(db.url());
    assert_eq!(
        problems,
        [format!("{name}: template lost: there is no server named gone").as_str()],
        "{stderr}"
    );
    assert!(!stderr.contains("pw-s3cr3t"), "{stderr}");
}
