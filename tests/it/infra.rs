//! Otter's Infrastructure Management API against a real holtd: servers, roles and environments,
//! their refusals, the admin key, and persistence across a restart.

use holt_tests::Holtd;

const ADMIN: &str = "admin-secret";

async fn admin_holtd() -> Holtd {
    let hex = holt_tests::sha256_hex(ADMIN);
    Holtd::start(&[], &["--admin-key-sha256", &hex]).await
}

async fn call(holtd: &Holtd, path: &str, body: &str) -> (u16, String) {
    let reply = holtd
        .request(
            "POST",
            &format!("/api/infrastructure/{path}"),
            &[("x-apikey", ADMIN), ("content-type", "application/json")],
            body,
        )
        .await;
    (reply.status, reply.body)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn servers_roles_and_environments_round_trip_and_persist() {
    let mut holtd = admin_holtd().await;
    let (status, body) = call(&holtd, "servers/list", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)[0]["name"], "localhost");
    assert_eq!(json(&body)[0]["serverType"], "local");

    assert_eq!(
        call(
            &holtd,
            "roles/create",
            r#"{"name":"web","variables":{"Port":"80"}}"#
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&holtd, "environments/create", r#"{"name":"prod"}"#)
            .await
            .0,
        200
    );
    assert_eq!(
        call(
            &holtd,
            "environments/create/prod-eu",
            r#"{"parentName":"prod"}"#
        )
        .await
        .0,
        200
    );
    let (status, body) = call(
        &holtd,
        "servers/create",
        r#"{"name":"web1","serverType":"ssh","hostName":"127.0.0.1","port":2222,"credentialsName":"deploy","roles":["web"],"environments":["prod-eu"],"variables":{"Greeting":"hi there"},"drift":"none"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["port"], 2222);

    // Update keeps what it leaves out.
    let (status, body) = call(&holtd, "servers/update/web1", r#"{"active":false}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["active"], false);
    assert_eq!(json(&body)["hostName"], "127.0.0.1");

    // It survives a restart.
    holtd.kill9();
    holtd.restart().await;
    let (status, body) = call(&holtd, "servers/list?name=WEB1", "").await;
    assert_eq!(status, 200, "{body}");
    let listed = json(&body);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(listed[0]["name"], "web1");
    assert_eq!(listed[0]["roles"], serde_json::json!(["web"]));
    assert_eq!(listed[0]["variables"]["Greeting"], "hi there");
    assert_eq!(listed[0]["active"], false);
    let (_, envs) = call(&holtd, "environments/list", "").await;
    assert_eq!(json(&envs)[1]["parentName"], "prod");

    // Deleting what is in use is refused, naming the users.
    assert_eq!(
        call(&holtd, "roles/delete/web", "").await,
        (400, "role web is still used by servers: web1".into())
    );
    assert_eq!(
        call(&holtd, "environments/delete/prod", "").await,
        (
            400,
            "environment prod is the parent of environments: prod-eu".into()
        )
    );
    assert_eq!(call(&holtd, "servers/delete/web1", "").await.0, 200);
    assert_eq!(call(&holtd, "roles/delete/web", "").await.0, 200);
    assert_eq!(
        call(&holtd, "roles/delete/web", "").await,
        (404, "no role named web".into())
    );
}

#[tokio::test]
async fn refusals_are_precise_one_liners() {
    let holtd = admin_holtd().await;
    let cases: &[(&str, &str, u16, &str)] = &[
        ("servers/create", "{", 400, "bad JSON"),
        (
            "servers/create",
            r#"{"name":"a","name":"b","serverType":"local"}"#,
            400,
            "duplicate field",
        ),
        (
            "servers/create",
            r#"{"name":"a","serverType":"local","colour":1}"#,
            400,
            "unknown field",
        ),
        (
            "servers/create",
            r#"{"name":"a","serverType":"windows"}"#,
            400,
            "Holt supports local and ssh",
        ),
        (
            "servers/create",
            r#"{"name":"a","serverType":"local","roles":["nope"]}"#,
            400,
            "no role named nope",
        ),
        (
            "servers/create",
            r#"{"name":"1bad","serverType":"local"}"#,
            400,
            "invalid name",
        ),
        (
            "servers/create",
            r#"{"name":"a","serverType":"ssh","hostName":"-oProxyCommand=touch /tmp/x","credentialsName":"c"}"#,
            400,
            "invalid hostName",
        ),
        (
            "servers/create",
            r#"{"name":"localhost","serverType":"local"}"#,
            400,
            "already exists",
        ),
        (
            "servers/update/ghost",
            r#"{"active":false}"#,
            404,
            "no server named ghost",
        ),
        ("servers/delete/ghost", "", 404, "no server named ghost"),
        ("servers/delete/localhost", "", 400, "built in"),
        (
            "servers/update/localhost",
            r#"{"name":"other"}"#,
            400,
            "renaming is not supported",
        ),
        ("servers/frobnicate", "", 404, "no such path"),
        ("widgets/list", "", 404, "no such path"),
        (
            "environments/create",
            r#"{"name":"e","parentName":"e"}"#,
            400,
            "cannot be inside of itself",
        ),
    ];
    for (path, body, status, expect) in cases {
        let (got, text) = call(&holtd, path, body).await;
        assert_eq!(got, *status, "{path} {body}: {text}");
        assert!(text.contains(expect), "{path} {body}: {text}");
        assert!(!text.contains('\n'), "{path}: {text:?}");
    }
    let (status, _) = call(&holtd, "servers/list", "").await;
    assert_eq!(status, 200);
    let get = holtd.get("/api/infrastructure/servers/list").await;
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
}

#[tokio::test]
async fn the_admin_key_guards_every_route() {
    let holtd = admin_holtd().await;
    for (headers, expect) in [
        (vec![], "missing admin key"),
        (vec![("x-apikey", "wrong")], "invalid admin key"),
    ] {
        let reply = holtd
            .request("POST", "/api/infrastructure/servers/list", &headers, "")
            .await;
        assert_eq!((reply.status, reply.body.as_str()), (403, expect));
    }
    let reply = holtd
        .request(
            "POST",
            &format!("/api/infrastructure/roles/create?key={ADMIN}"),
            &[],
            r#"{"name":"r"}"#,
        )
        .await;
    assert_eq!(
        reply.status, 200,
        "the key also comes as key=: {}",
        reply.body
    );

    // Without an admin key configured, nobody gets in.
    let closed = Holtd::start(&[], &[]).await;
    let reply = closed
        .request(
            "POST",
            "/api/infrastructure/servers/list",
            &[("x-apikey", ADMIN)],
            "",
        )
        .await;
    assert_eq!(reply.status, 403);
    assert!(reply.body.contains("--admin-key-sha256"), "{}", reply.body);
    assert!(
        !closed.server_log().contains(ADMIN),
        "the key never reaches holtd's log"
    );
}

#[tokio::test]
async fn concurrent_creates_of_one_name_make_one_entry() {
    let holtd = admin_holtd().await;
    let addr = holtd.addr;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        tasks.push(tokio::spawn(async move {
            holt_tests::request(
                addr,
                "POST",
                "/api/infrastructure/roles/create",
                &[("x-apikey", ADMIN)],
                r#"{"name":"db"}"#,
            )
            .await
            .status
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            200 => ok += 1,
            400 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1);
}
