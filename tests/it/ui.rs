//! The web UI: its pages and headers over HTTP, the operators' job endpoints behind it
//! (`show`, `rerun`), cross-site refusals, and the UI itself in a real headless Chromium driven
//! by `tests/ui/ui.mjs` (playwright-core from npm, Debian's `/usr/bin/chromium`; `scripts/test`
//! installs both when missing). Screenshots land in `$CARGO_TARGET_TMPDIR/ui-screenshots`.

use std::path::{Path, PathBuf};
use std::process::Command;

use holt_tests::Holtd;

const ADMIN: &str = "ui-admin-key-3f9a";

/// A job with nested scopes and a warning, which waits after its first line until the file
/// `$Gate` exists: the browser opens its page while it runs, then lets it go on.
const SCOPES: &str = r#"
allow_api = true
api_key = "scopes-key"
allow_undeclared_variables = true
plan = '''
# Prepare
{
    Log-Information "step 1";
    with timeout=60
    {
        SHExec >>
            while [ ! -e $Gate ]; do sleep 0.05; done
        >>;
    }
}
# Deploy
{
    foreach $Server in @(web1, web2)
    {
        # Copy files
        {
            Log-Information "copy to $Server";
            Log-Warning "slow disk on $Server";
        }
    }
    Sleep 1;
}
Log-Information "all done";
'''
"#;

const QUICK: &str = r#"
allow_api = true
plan = '''
Log-Information "quick";
'''
"#;

const LONG: &str = r#"
allow_api = true
plan = '''
Log-Information "working";
Exec sleep (Arguments: 120);
'''
"#;

/// A trigger form's rules: a pattern, a required choice, a secret.
const RELEASE: &str = r#"
description = "Release a version to a target"
allow_api = true
api_key = "release-key"
allow_undeclared_variables = false
outputs = ["Artifact"]
plan = '''
Log-Information "releasing $Version to $Target";
set $Artifact = "app-$Version.tgz";
if $Password == "hunter2-long-secret" { Log-Information "secret ok"; }
Log-Information "masked: $Password";
'''

[variables.Version]
description = "the version to release"
required = true
pattern = '[0-9]+\.[0-9]+\.[0-9]+'

[variables.Target]
required = true
allowed = ["staging", "production"]

[variables.Password]
secret = true
default = "hunter2-long-secret"
"#;

/// A keyless template: the one a forged cross-site request would aim at.
const OPEN: &str = r#"
allow_api = true
allow_undeclared_variables = true
plan = '''
Log-Information "note: $Note";
'''
"#;

const ECHO: &str = r#"
allow_api = true
allow_undeclared_variables = true
plan = '''
Log-Information "payload: $Payload";
'''
"#;

const PAYLOAD: &str =
    r#"<script>window.holtPwned=1</script><img src=x onerror="window.holtPwned=2">&amp;"'"#;

async fn ui_holtd() -> Holtd {
    let hex = holt_tests::sha256_hex(ADMIN);
    Holtd::start(
        &[
            ("scopes", SCOPES),
            ("quick", QUICK),
            ("long", LONG),
            ("release", RELEASE),
            ("open", OPEN),
            ("echo", ECHO),
        ],
        &["--admin-key-sha256", &hex],
    )
    .await
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn admin(holtd: &Holtd, method: &str, path: &str) -> holt_tests::Reply {
    holtd
        .request(method, path, &[("x-apikey", ADMIN)], "")
        .await
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Runs one scenario of `tests/ui/ui.mjs` in Chromium against `holtd`, with `env` added,
/// asserting it passed; returns what it printed.
async fn browser(holtd: &Holtd, scenario: &str, env: &[(&str, &str)]) -> String {
    let ui = workspace().join("tests/ui");
    assert!(
        ui.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in tests/ui: run scripts/test (it runs npm ci there)"
    );
    let chromium = std::env::var("HOLT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run scripts/test (it installs Debian's chromium)"
    );
    let mut command = Command::new("node");
    command
        .arg(ui.join("ui.mjs"))
        .arg(scenario)
        .env("HOLT_URL", format!("http://{}", holtd.addr))
        .env("HOLT_KEY", ADMIN)
        .env("HOLT_SHOTS", screenshots());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "scenario {scenario} failed:\n{stdout}\n{}\nholtd's log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        holtd.server_log()
    );
    stdout
}

fn printed_token(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("TOKEN="))
        .unwrap_or_else(|| panic!("no TOKEN= line in {stdout:?}"))
        .to_owned()
}

#[tokio::test]
async fn pages_are_served_with_a_strict_policy_and_only_with_an_admin_key() {
    let holtd = ui_holtd().await;
    for path in ["/", "/jobs/12", "/templates", "/servers"] {
        let reply = holtd.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let policy = reply.header("content-security-policy").unwrap();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert_eq!(reply.header("x-frame-options"), Some("DENY"));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert!(
            reply
                .body
                .contains(r#"<script src="/ui/app.js" defer></script>"#)
        );
    }
    let script = holtd.get("/ui/app.js").await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    // The script never parses data as markup.
    assert!(!script.body.contains("innerHTML") && !script.body.contains("insertAdjacentHTML"));
    assert_eq!(holtd.get("/ui/app.css").await.status, 200);
    for path in [
        "/jobs/",
        "/jobs/1/2",
        "/jobs/%3Cscript%3E",
        "/ui/other.js",
        "/admin",
    ] {
        assert_eq!(holtd.get(path).await.status, 404, "{path}");
    }
    assert_eq!(holtd.request("POST", "/", &[], "").await.status, 405);

    // Without an admin key the UI is off, and holtd says how to turn it on.
    let plain = Holtd::start(&[("quick", QUICK)], &[]).await;
    for path in ["/", "/jobs/1", "/templates", "/servers", "/ui/app.js"] {
        let reply = plain.get(path).await;
        assert_eq!(reply.status, 404, "{path}");
        assert!(reply.body.contains("--admin-key-file"), "{}", reply.body);
    }
}

#[tokio::test]
async fn holtd_prints_how_to_enable_the_ui_and_creates_an_admin_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(templates.join("quick.toml"), QUICK).unwrap();
    let first_lines = |args: &[&str]| {
        let mut child = Command::new(holt_tests::holtd_binary())
            .args(["--listen", "127.0.0.1:0", "--db"])
            .arg(dir.path().join("holt.db"))
            .arg("--templates")
            .arg(&templates)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut lines = String::new();
        for _ in 0..2 {
            std::io::BufRead::read_line(&mut reader, &mut lines).unwrap();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        lines
    };
    let off = first_lines(&[]);
    assert!(off.contains("the web UI is off"), "{off}");
    assert!(off.contains("--admin-key-file"), "{off}");

    let key_file = dir.path().join("holt.admin.key");
    let key_arg = key_file.to_str().unwrap();
    let on = first_lines(&["--admin-key-file", key_arg]);
    assert!(
        on.contains(&format!("(sign in with the admin key in {key_arg})")),
        "{on}"
    );
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&key_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(key.len(), 64, "{key}");
    assert!(!on.contains(&key), "the key itself is never printed");
    // The same file gives the same key at the next start; a file others may read is refused.
    let again = first_lines(&["--admin-key-file", key_arg]);
    assert!(again.contains("web UI: http://"), "{again}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), key);
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = Command::new(holt_tests::holtd_binary())
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("holt.db"))
        .arg("--templates")
        .arg(&templates)
        .args(["--admin-key-file", key_arg])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

#[tokio::test]
async fn show_hides_secrets_and_rerun_repeats_the_job_with_them() {
    let holtd = ui_holtd().await;
    let token = holtd
        .trigger("template=release&key=release-key&Version=1.2.3&Target=staging&Password=hunter2-long-secret")
        .await;
    assert_eq!(
        holtd.wait_terminal(&token, "&key=release-key").await,
        "Succeeded"
    );

    let reply = admin(&holtd, "GET", &format!("/api/jobs/show?token={token}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(!reply.body.contains("hunter2"), "{}", reply.body);
    let job = json(&reply.body);
    assert_eq!(job["template"], "release");
    assert_eq!(job["status"], "Succeeded");
    assert_eq!(job["source"], "api");
    let vars = job["variables"].as_array().unwrap();
    let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Password", "Target", "Version"]);
    assert_eq!(vars[0]["secret"], true);
    assert_eq!(vars[0]["value"], serde_json::Value::Null);
    assert_eq!(vars[2]["value"], "1.2.3");

    // Only an admin key opens them; a template's own key does not.
    for (key, status) in [("release-key", 403), ("wrong", 403)] {
        let path = format!("/api/jobs/show?token={token}");
        let reply = holtd.request("GET", &path, &[("x-apikey", key)], "").await;
        assert_eq!(reply.status, status, "{key}: {}", reply.body);
    }
    for (path, status, reason) in [
        ("/api/jobs/show", 400, "missing token parameter"),
        ("/api/jobs/show?token=nope", 400, "invalid token"),
        ("/api/jobs/show?token=999999", 400, "unknown token"),
        (
            "/api/jobs/show?token=1&extra=1",
            400,
            "unknown parameter extra",
        ),
    ] {
        let reply = admin(&holtd, "GET", path).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (status, reason),
            "{path}"
        );
    }

    // A re-run is a new job of the same template with the same values, the secret included,
    // recorded with the source the UI names.
    let path = format!("/api/jobs/rerun?token={token}");
    let reply = holtd
        .request(
            "POST",
            &path,
            &[("x-apikey", ADMIN), ("x-holt-source", "ui")],
            "",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let again = reply.body;
    assert_ne!(again, token);
    assert_eq!(
        holtd.wait_terminal(&again, "&key=release-key").await,
        "Succeeded"
    );
    let log = holtd.logs(&again, "&key=release-key").await;
    assert!(log.contains("INFO: releasing 1.2.3 to staging\n"), "{log}");
    assert!(log.contains("INFO: secret ok\n"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
    let shown = json(
        &admin(&holtd, "GET", &format!("/api/jobs/show?token={again}"))
            .await
            .body,
    );
    assert_eq!(shown["source"], "ui");
    assert_eq!(shown["variables"], job["variables"]);

    assert_eq!(admin(&holtd, "GET", &path).await.status, 405);
    let reply = holtd
        .request("POST", &path, &[("x-apikey", "release-key")], "")
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let reply = holtd
        .request(
            "POST",
            &path,
            &[("x-apikey", ADMIN), ("x-holt-source", "schedule")],
            "",
        )
        .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (400, "X-Holt-Source must be api or ui")
    );

    // A template that now refuses the job's values refuses its re-run, saying why.
    holtd.write_template(
        "release",
        &RELEASE.replace(r#"["staging", "production"]"#, r#"["production"]"#),
    );
    holtd.signal("HUP");
    let mut reply = admin(&holtd, "POST", &path).await;
    for _ in 0..100 {
        if reply.status != 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        reply = admin(&holtd, "POST", &path).await;
    }
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert!(
        reply.body.contains("Target must be one of: production"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn cross_site_requests_are_refused_and_same_origin_ones_pass() {
    let holtd = ui_holtd().await;
    let host = holtd.addr.to_string();
    let origin = format!("http://{host}");
    let path = "/api/jobs/trigger?template=open&Note=forged";
    for headers in [
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "http://evil.example"), ("host", host.as_str())],
        vec![("origin", "null"), ("host", host.as_str())],
    ] {
        for method in ["GET", "POST"] {
            let reply = holtd.request(method, path, &headers, "").await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (403, "cross-site request refused"),
                "{method} {headers:?}"
            );
        }
    }
    let list = admin(&holtd, "GET", "/api/jobs/list").await;
    assert_eq!(
        json(&list.body)["jobs"].as_array().unwrap().len(),
        0,
        "{}",
        list.body
    );
    // The UI's own requests, and programs that send neither header, pass.
    let same = [
        ("sec-fetch-site", "same-origin"),
        ("origin", origin.as_str()),
        ("host", host.as_str()),
        ("x-holt-source", "ui"),
    ];
    let reply = holtd.request("POST", path, &same, "").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let token = holtd.trigger("template=open").await;
    let list = json(&admin(&holtd, "GET", "/api/jobs/list").await.body);
    let sources: Vec<(&str, &str)> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["token"].as_str().unwrap(), j["source"].as_str().unwrap()))
        .collect();
    assert_eq!(
        sources,
        [(token.as_str(), "api"), (reply.body.as_str(), "ui")]
    );
}

#[tokio::test]
async fn browser_signs_in_with_the_admin_key() {
    let holtd = ui_holtd().await;
    browser(&holtd, "sign-in", &[]).await;
}

#[tokio::test]
async fn browser_list_shows_new_jobs_without_a_reload() {
    let holtd = ui_holtd().await;
    browser(&holtd, "live-list", &[("HOLT_TEMPLATE", "quick")]).await;
}

#[tokio::test]
async fn browser_job_page_follows_the_log_as_a_scope_tree() {
    let holtd = ui_holtd().await;
    let gate = holtd.dir().join("gate");
    let gate = gate.to_str().unwrap();
    let token = holtd
        .trigger(&format!("template=scopes&key=scopes-key&Gate={gate}"))
        .await;
    browser(
        &holtd,
        "job-page",
        &[("HOLT_TOKEN", &token), ("HOLT_GATE", gate)],
    )
    .await;
}

#[tokio::test]
async fn browser_cancel_ends_the_job() {
    let holtd = ui_holtd().await;
    let token = holtd.trigger("template=long").await;
    browser(&holtd, "cancel", &[("HOLT_TOKEN", &token)]).await;
    assert_eq!(holtd.status(&token, "").await, "Error");
    let log = holtd.logs(&token, "").await;
    assert!(log.ends_with("ERROR: Job canceled.\n"), "{log}");
}

#[tokio::test]
async fn browser_rerun_repeats_the_job() {
    let holtd = ui_holtd().await;
    let token = holtd
        .trigger("template=release&key=release-key&Version=2.0.0&Target=production&Password=hunter2-long-secret")
        .await;
    holtd.wait_terminal(&token, "&key=release-key").await;
    let out = browser(&holtd, "rerun", &[("HOLT_TOKEN", &token)]).await;
    let again = printed_token(&out);
    let log = holtd.logs(&again, "&key=release-key").await;
    assert!(
        log.contains("INFO: releasing 2.0.0 to production\n"),
        "{log}"
    );
    assert!(log.contains("INFO: secret ok\n"), "{log}");
    let shown = json(
        &admin(&holtd, "GET", &format!("/api/jobs/show?token={again}"))
            .await
            .body,
    );
    assert_eq!(shown["source"], "ui");
}

#[tokio::test]
async fn browser_trigger_form_checks_rules_before_sending() {
    let holtd = ui_holtd().await;
    let out = browser(&holtd, "trigger-form", &[("HOLT_TEMPLATE", "release")]).await;
    let token = printed_token(&out);
    let job = json(
        &admin(&holtd, "GET", &format!("/api/jobs/show?token={token}"))
            .await
            .body,
    );
    assert_eq!(job["template"], "release");
    assert_eq!(job["source"], "ui");
    let values: Vec<(String, serde_json::Value)> = job["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_owned(), v["value"].clone()))
        .collect();
    assert_eq!(
        values,
        [
            ("Password".to_owned(), serde_json::Value::Null),
            ("Target".to_owned(), "production".into()),
            ("Version".to_owned(), "1.2.3".into()),
        ]
    );
    // The invalid attempt sent nothing: this is the only job.
    let list = json(&admin(&holtd, "GET", "/api/jobs/list").await.body);
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn browser_shows_markup_in_values_and_logs_as_text() {
    let holtd = ui_holtd().await;
    let encoded: String = PAYLOAD
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let body = format!("Payload={encoded}");
    let reply = holtd
        .post_form("/api/jobs/trigger?template=echo", &body)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let token = reply.body;
    holtd.wait_terminal(&token, "").await;
    browser(
        &holtd,
        "escaping",
        &[("HOLT_TOKEN", &token), ("HOLT_PAYLOAD", PAYLOAD)],
    )
    .await;
}

#[tokio::test]
async fn browser_pages_hold_no_secret_and_no_key() {
    let holtd = ui_holtd().await;
    let secret = "pw-Zq81-never-shown";
    let token = holtd
        .trigger(&format!(
            "template=release&key=release-key&Version=3.1.4&Target=staging&Password={secret}"
        ))
        .await;
    holtd.wait_terminal(&token, "&key=release-key").await;
    browser(
        &holtd,
        "secrets",
        &[("HOLT_TOKEN", &token), ("HOLT_SECRET", secret)],
    )
    .await;
}

#[tokio::test]
async fn browser_servers_page_shows_the_infrastructure() {
    let holtd = ui_holtd().await;
    for (path, body) in [
        (
            "/api/infrastructure/roles/create/frontend",
            r#"{"variables":{"Port":"8080"}}"#,
        ),
        ("/api/infrastructure/environments/create/prod", "{}"),
        (
            "/api/infrastructure/environments/create/prod-eu",
            r#"{"parentName":"prod"}"#,
        ),
        (
            "/api/infrastructure/servers/create/web-1",
            r#"{"serverType":"ssh","hostName":"web.example.com","credentialsName":"deploy","roles":["frontend"],"environments":["prod-eu"]}"#,
        ),
    ] {
        let reply = holtd
            .request(
                "POST",
                path,
                &[("x-apikey", ADMIN), ("content-type", "application/json")],
                body,
            )
            .await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
    browser(&holtd, "servers", &[]).await;
}

#[tokio::test]
async fn browser_forged_cross_site_requests_trigger_nothing() {
    let holtd = ui_holtd().await;
    browser(&holtd, "cross-site", &[("HOLT_TEMPLATE", "open")]).await;
    let list = json(&admin(&holtd, "GET", "/api/jobs/list").await.body);
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0, "{list}");
}
