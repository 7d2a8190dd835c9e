//! Templates that target servers, and the plan functions about servers, against a real holtd
//! whose inventory is built through the Infrastructure Management API.

use holt_tests::Holtd;

const ADMIN: &str = "targets-admin";

async fn holtd_with(templates: &[(&str, &str)]) -> Holtd {
    Holtd::start(
        templates,
        &["--admin-key-sha256", &holt_tests::sha256_hex(ADMIN)],
    )
    .await
}

async fn admin(holtd: &Holtd, path: &str, body: &str) {
    let reply = holtd
        .request(
            "POST",
            &format!("/api/infrastructure/{path}"),
            &[("x-apikey", ADMIN), ("content-type", "application/json")],
            body,
        )
        .await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
}

/// Roles `web` and `db`, environments `prod` and `prod-eu` inside it, and four local servers:
/// `web2` (web, prod-eu), `web1` (web, prod), `db1` (db, prod), `old` (web, inactive).
async fn inventory(holtd: &Holtd) {
    admin(
        holtd,
        "roles/create/web",
        r#"{"variables":{"Tier":"role-web"}}"#,
    )
    .await;
    admin(
        holtd,
        "roles/create/db",
        r#"{"variables":{"Tier":"role-db"}}"#,
    )
    .await;
    admin(
        holtd,
        "environments/create/prod",
        r#"{"variables":{"Tier":"env-prod","Region":"world"}}"#,
    )
    .await;
    admin(
        holtd,
        "environments/create/prod-eu",
        r#"{"parentName":"prod"}"#,
    )
    .await;
    admin(
        holtd,
        "servers/create/web2",
        r#"{"serverType":"local","roles":["web"],"environments":["prod-eu"]}"#,
    )
    .await;
    admin(
        holtd,
        "servers/create/web1",
        r#"{"serverType":"local","roles":["web"],"environments":["prod"],"variables":{"Tier":"server-web1"}}"#,
    )
    .await;
    admin(
        holtd,
        "servers/create/db1",
        r#"{"serverType":"local","roles":["db"],"environments":["prod"]}"#,
    )
    .await;
    admin(
        holtd,
        "servers/create/old",
        r#"{"serverType":"local","roles":["web"],"active":false}"#,
    )
    .await;
}

fn template(targets: &str, plan: &str) -> String {
    format!("allow_api = true\n{targets}\nplan = '''\n{plan}\n'''\n")
}

async fn run(holtd: &Holtd, name: &str) -> (String, String) {
    let token = holtd.trigger(&format!("template={name}")).await;
    let status = holtd.wait_terminal(&token, "").await;
    (status, holtd.logs(&token, "").await)
}

/// Each entry's scope path and text, from the ndjson log.
async fn scoped(holtd: &Holtd, token: &str) -> Vec<(Vec<String>, String)> {
    holtd
        .logs(token, "&format=ndjson")
        .await
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            let scope = entry["scope"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect();
            (scope, entry["text"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// The lines logged by `Log-Information`, in order.
fn infos(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|l| l.strip_prefix("INFO: "))
        .filter(|l| !l.starts_with("Job "))
        .collect()
}

#[tokio::test]
async fn a_template_runs_on_each_targeted_server_in_name_order() {
    let plan = "Log-Information $ServerName/$RoleName/$EnvironmentName/$Tier;";
    let holtd = holtd_with(&[
        (
            "direct",
            &template(r#"servers = ["web2", "db1", "old"]"#, plan),
        ),
        ("by-role", &template(r#"roles = ["web"]"#, plan)),
        ("by-env", &template(r#"environments = ["prod"]"#, plan)),
        (
            "role-and-env",
            &template(
                r#"roles = ["web"]
environments = ["prod-eu"]"#,
                plan,
            ),
        ),
        (
            "nowhere",
            &template(
                r#"roles = ["db"]
environments = ["prod-eu"]"#,
                plan,
            ),
        ),
        (
            "untargeted",
            &template(
                "",
                "Log-Information $ServerName/$RoleName/$EnvironmentName;",
            ),
        ),
    ])
    .await;
    inventory(&holtd).await;

    let (status, log) = run(&holtd, "direct").await;
    assert_eq!(status, "Succeeded", "{log}");
    assert_eq!(infos(&log), ["db1///role-db", "web2///role-web"], "{log}");

    let (status, log) = run(&holtd, "by-role").await;
    assert_eq!(status, "Succeeded", "{log}");
    assert_eq!(
        infos(&log),
        ["web1/web//server-web1", "web2/web//role-web"],
        "{log}"
    );

    let (status, log) = run(&holtd, "by-env").await;
    assert_eq!(status, "Succeeded", "{log}");
    assert_eq!(
        infos(&log),
        [
            "db1//prod/role-db",
            "web1//prod/server-web1",
            "web2//prod-eu/role-web"
        ],
        "{log}"
    );

    let (status, log) = run(&holtd, "role-and-env").await;
    assert_eq!(status, "Succeeded", "{log}");
    assert_eq!(infos(&log), ["web2/web/prod-eu/role-web"], "{log}");

    let (status, log) = run(&holtd, "nowhere").await;
    assert_eq!(status, "Error", "{log}");
    assert!(
        log.contains("ERROR: The template targets no active server"),
        "{log}"
    );

    let (status, log) = run(&holtd, "untargeted").await;
    assert_eq!(status, "Succeeded", "{log}");
    assert_eq!(infos(&log), ["localhost//"], "{log}");
}

#[tokio::test]
async fn the_final_status_is_the_worst_of_the_servers() {
    let plan = r#"if $ServerName == web1 { Log-Warning careful; }
if $ServerName == web2 { throw broken; }
Log-Information done on $ServerName;"#;
    let holtd = holtd_with(&[("mixed", &template(r#"roles = ["web", "db"]"#, plan))]).await;
    inventory(&holtd).await;
    let token = holtd.trigger("template=mixed").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Error");
    let entries = scoped(&holtd, &token).await;
    let inner: Vec<_> = entries[1..entries.len() - 1]
        .iter()
        .map(|(scope, text)| (scope.join("/"), text.as_str()))
        .collect();
    assert_eq!(
        inner,
        [
            ("db1".to_owned(), "done on db1"),
            ("web1".to_owned(), "careful"),
            ("web1".to_owned(), "done on web1"),
            ("web2".to_owned(), "broken"),
        ]
    );
}

/// Each server's run waits until every server of the template has started, which only
/// `parallel_servers` large enough lets happen; one at a time, the first server waits alone
/// until the job's timeout ends it.
#[tokio::test]
async fn parallel_servers_runs_servers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    let script = dir.path().join("meet.sh");
    std::fs::write(
        &script,
        format!(
            "touch '{marks}'/\"$1\"\nfor i in $(seq 1 400); do\n  [ $(ls '{marks}' | wc -l) -ge 3 ] && exit 0\n  sleep 0.05\ndone\nexit 1\n",
            marks = marks.display()
        ),
    )
    .unwrap();
    let plan = format!("SHExec >>sh '{}' $ServerName>>;", script.display());
    let holtd = holtd_with(&[
        (
            "together",
            &template("roles = [\"web\", \"db\"]\nparallel_servers = 3", &plan),
        ),
        (
            "alone",
            &template("roles = [\"web\", \"db\"]\ntimeout = \"3s\"", &plan),
        ),
    ])
    .await;
    inventory(&holtd).await;
    let (status, log) = run(&holtd, "together").await;
    assert_eq!(status, "Succeeded", "{log}");
    for entry in std::fs::read_dir(&marks).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let (status, log) = run(&holtd, "alone").await;
    assert_eq!(status, "Error", "{log}");
    let started: Vec<_> = std::fs::read_dir(&marks)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(started, ["db1"], "{log}");
}

#[tokio::test]
async fn server_functions_list_the_inventory() {
    let plan = r#"Log-Information @AllServers;
Log-Information @AllServers(true);
Log-Information @AllRoles;
Log-Information @AllEnvironments;
Log-Information @ServersInRole(web);
Log-Information @ServersInRole(web, true);
Log-Information @ServersInEnvironment(prod);
Log-Information @ServersInRoleAndEnvironment(web, prod-eu);
Log-Information $Region;"#;
    let holtd = holtd_with(&[("lists", &template(r#"servers = ["web2"]"#, plan))]).await;
    inventory(&holtd).await;
    let (status, log) = run(&holtd, "lists").await;
    assert_eq!(status, "Succeeded", "{log}");
    assert_eq!(
        infos(&log),
        [
            "@(db1, localhost, web1, web2)",
            "@(db1, localhost, old, web1, web2)",
            "@(db, web)",
            "@(prod, prod-eu)",
            "@(web1, web2)",
            "@(old, web1, web2)",
            "@(db1, web1, web2)",
            "@(web2)",
            "world",
        ],
        "{log}"
    );
}

#[tokio::test]
async fn plans_target_servers_and_roles_themselves() {
    let plan = r#"set $who = web1;
for server $who { Log-Information server $ServerName/$RoleName/$EnvironmentName/$Tier; }
for role web { Log-Information role $ServerName/$RoleName/$EnvironmentName/$Tier; }
foreach server in @ServersInRole(db) { Log-Information each $ServerName/$Tier; }
foreach role in @(db, web) {
    with async { Log-Information async $ServerName/$RoleName; }
}
await;
for server old { Log-Information named $ServerName; }
Log-Information back on $ServerName;
for server nosuch { Log-Information never; }"#;
    let holtd = holtd_with(&[("custom", &template("", plan))]).await;
    inventory(&holtd).await;
    let token = holtd.trigger("template=custom").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Error");
    let entries = scoped(&holtd, &token).await;
    let inner: Vec<_> = entries[1..entries.len() - 1]
        .iter()
        .map(|(scope, text)| (scope.join("/"), text.as_str()))
        .collect();
    let mut asyncs: Vec<_> = inner
        .iter()
        .filter(|(_, text)| text.starts_with("async "))
        .cloned()
        .collect();
    asyncs.sort();
    assert_eq!(
        asyncs,
        [
            ("db1".to_owned(), "async db1/db"),
            ("web1".to_owned(), "async web1/web"),
            ("web2".to_owned(), "async web2/web"),
        ]
    );
    let rest: Vec<_> = inner
        .into_iter()
        .filter(|(_, text)| !text.starts_with("async "))
        .collect();
    assert_eq!(
        rest,
        [
            ("web1".to_owned(), "server web1//prod/server-web1"),
            ("web1".to_owned(), "role web1/web/prod/server-web1"),
            ("web2".to_owned(), "role web2/web/prod-eu/role-web"),
            ("db1".to_owned(), "each db1/role-db"),
            ("old".to_owned(), "named old"),
            (String::new(), "back on localhost"),
            (String::new(), "there is no server named \"nosuch\""),
        ]
    );
}

#[tokio::test]
async fn server_names_cannot_be_forged_by_a_trigger() {
    let holtd = holtd_with(&[("forge", &template("", "Log-Information $ServerName;"))]).await;
    let reply = holtd
        .get("/api/jobs/trigger?template=forge&ServerName=web1")
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
}

#[tokio::test]
async fn plan_and_job_variables_come_before_the_servers() {
    let plan = r#"Log-Information $Tier/$Region;
{ set local $Tier = plan; Log-Information $Tier; }"#;
    let holtd = holtd_with(&[("order", &template(r#"servers = ["web1"]"#, plan))]).await;
    inventory(&holtd).await;
    let token = holtd.trigger("template=order").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    let log = holtd.logs(&token, "").await;
    assert_eq!(infos(&log), ["server-web1/world", "plan"], "{log}");
    let token = holtd.trigger("template=order&Tier=job").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    let log = holtd.logs(&token, "").await;
    assert_eq!(infos(&log), ["job/world", "plan"], "{log}");
}
