use super::*;

fn name(text: &str) -> InfraName {
    text.parse().unwrap()
}

fn server(json: &str) -> Server {
    let patch: ServerPatch = serde_json::from_str(json).unwrap();
    patch.apply(None, None).unwrap()
}

fn model() -> Inventory {
    let mut inventory = Inventory::default();
    for change in [
        InfraChange::CreateRole(
            RolePatch::default()
                .apply(Some(&name("web")), None)
                .unwrap(),
        ),
        InfraChange::CreateEnvironment(
            serde_json::from_str::<EnvironmentPatch>(r#"{"name":"prod"}"#)
                .unwrap()
                .apply(None, None)
                .unwrap(),
        ),
        InfraChange::CreateEnvironment(
            serde_json::from_str::<EnvironmentPatch>(r#"{"name":"prod-eu","parentName":"prod"}"#)
                .unwrap()
                .apply(None, None)
                .unwrap(),
        ),
        InfraChange::CreateServer(server(
            r#"{"name":"web1","serverType":"ssh","hostName":"10.0.0.1","credentialsName":"deploy","roles":["web"],"environments":["prod-eu"]}"#,
        )),
    ] {
        inventory.apply(change).unwrap();
    }
    inventory
}

#[test]
fn names_follow_otters_rule() {
    for ok in ["web1", "W", "a-b_c", &"x".repeat(50)] {
        assert_eq!(ok.parse::<InfraName>().unwrap().as_str(), ok);
    }
    for bad in [
        "",
        "1web",
        "-a",
        "web-",
        "web_",
        "a b",
        "a/b",
        "ä",
        &"x".repeat(51),
    ] {
        assert!(bad.parse::<InfraName>().is_err(), "{bad:?}");
    }
    assert_eq!(name("Web1"), name("web1"));
}

#[test]
fn localhost_is_always_there_and_built_in() {
    let mut inventory = Inventory::default();
    let localhost = inventory.server("LOCALHOST").unwrap().clone();
    assert_eq!(localhost.server_type, ServerType::Local);
    assert!(matches!(
        inventory.apply(InfraChange::DeleteServer(name("localhost"))),
        Err(InfraError::Invalid(m)) if m.contains("built in")
    ));
    let mut changed = localhost;
    changed.server_type = ServerType::Ssh;
    assert!(inventory.apply(InfraChange::UpdateServer(changed)).is_err());
}

#[test]
fn references_are_checked() {
    let mut inventory = model();
    let before = inventory.clone();
    let unknown = server(r#"{"name":"web2","serverType":"local","roles":["db"]}"#);
    assert_eq!(
        inventory.apply(InfraChange::CreateServer(unknown)),
        Err(InfraError::Invalid("server web2: no role named db".into()))
    );
    assert_eq!(
        inventory.apply(InfraChange::DeleteRole(name("web"))),
        Err(InfraError::Invalid(
            "role web is still used by servers: web1".into()
        ))
    );
    assert_eq!(
        inventory.apply(InfraChange::DeleteEnvironment(name("prod"))),
        Err(InfraError::Invalid(
            "environment prod is the parent of environments: prod-eu".into()
        ))
    );
    assert_eq!(
        inventory.apply(InfraChange::DeleteServer(name("nope"))),
        Err(InfraError::NotFound {
            kind: InfraKind::Server,
            name: "nope".into()
        })
    );
    assert_eq!(inventory, before, "refused changes leave nothing behind");
    let cycle = serde_json::from_str::<EnvironmentPatch>(r#"{"parentName":"prod-eu"}"#)
        .unwrap()
        .apply(None, inventory.environment("prod"))
        .unwrap();
    assert!(matches!(
        inventory.apply(InfraChange::UpdateEnvironment(cycle)),
        Err(InfraError::Invalid(m)) if m.contains("inside of itself")
    ));
}

#[test]
fn ssh_servers_need_a_safe_host_and_credentials() {
    let mut inventory = Inventory::default();
    for (json, expect) in [
        (
            r#"{"name":"a","serverType":"ssh","credentialsName":"c"}"#,
            "hostName is required",
        ),
        (
            r#"{"name":"a","serverType":"ssh","hostName":"h"}"#,
            "credentialsName is required",
        ),
        (
            r#"{"name":"a","serverType":"ssh","hostName":"-oProxyCommand=x","credentialsName":"c"}"#,
            "invalid hostName",
        ),
        (
            r#"{"name":"a","serverType":"ssh","hostName":"h h","credentialsName":"c"}"#,
            "invalid hostName",
        ),
        (
            r#"{"name":"a","serverType":"ssh","hostName":"h","port":0,"credentialsName":"c"}"#,
            "port must be",
        ),
    ] {
        let result = inventory.apply(InfraChange::CreateServer(server(json)));
        assert!(
            matches!(&result, Err(InfraError::Invalid(m)) if m.contains(expect)),
            "{json}: {result:?}"
        );
    }
    let patch: ServerPatch =
        serde_json::from_str(r#"{"name":"a","serverType":"windows"}"#).unwrap();
    assert_eq!(
        patch.apply(None, None).unwrap_err().to_string(),
        "serverType \"windows\" is not supported: Holt supports local and ssh"
    );
}

#[test]
fn bodies_are_strict_json_in_otters_shape() {
    for bad in [
        r#"{"name":"a","serverType":"local","colour":"red"}"#,
        r#"{"name":"a","name":"b","serverType":"local"}"#,
        r#"{"name":"a b","serverType":"local"}"#,
        r#"{"name":"a","serverType":"local","port":70000}"#,
    ] {
        assert!(serde_json::from_str::<ServerPatch>(bad).is_err(), "{bad}");
    }
    let accepted: ServerPatch = serde_json::from_str(
        r#"{"name":"a","serverType":"local","drift":"reportOnly","credentialsType":"UsernamePassword"}"#,
    )
    .unwrap();
    assert!(accepted.apply(None, None).is_ok());
    let shown = serde_json::to_value(model().server("web1").unwrap()).unwrap();
    assert_eq!(
        shown,
        serde_json::json!({
            "name": "web1", "serverType": "ssh", "hostName": "10.0.0.1", "port": 22,
            "credentialsName": "deploy", "roles": ["web"], "environments": ["prod-eu"],
            "variables": {}, "active": true, "tempPath": null
        })
    );
}

#[test]
fn updates_keep_what_they_leave_out_and_never_rename() {
    let inventory = model();
    let base = inventory.server("web1").unwrap();
    let patch: ServerPatch = serde_json::from_str(r#"{"active":false}"#).unwrap();
    let updated = patch.apply(Some(&name("web1")), Some(base)).unwrap();
    assert!(!updated.active);
    assert_eq!(updated.roles, base.roles);
    assert_eq!(updated.host_name.as_deref(), Some("10.0.0.1"));
    let rename: ServerPatch = serde_json::from_str(r#"{"name":"web9"}"#).unwrap();
    assert!(matches!(
        rename.apply(Some(&name("web1")), Some(base)),
        Err(InfraError::Invalid(m)) if m.contains("renaming is not supported")
    ));
}

#[test]
fn environments_nest_for_targeting() {
    let inventory = model();
    let names = |servers: Vec<&Server>| {
        servers
            .iter()
            .map(|s| s.name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(inventory.servers_in_environment("prod", false)),
        ["web1"]
    );
    assert_eq!(
        names(inventory.servers_in_environment("PROD-EU", false)),
        ["web1"]
    );
    assert_eq!(names(inventory.servers_in_role("web", false)), ["web1"]);
}
