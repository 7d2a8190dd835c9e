//! Checks across the inventory, the templates and the credentials file, for `holtd check`: what
//! each is fine on its own but wrong together.

use super::{Inventory, ServerType};
use crate::{Credentials, Targets};

/// Every problem found, one line each: a template targeting a server, role or environment the
/// inventory does not have, and an `ssh` server that cannot be reached as configured (no host
/// name, no credentials name, or, when a credentials file is given, credentials it lacks).
pub fn problems<'a>(
    inventory: &Inventory,
    templates: impl IntoIterator<Item = (&'a str, &'a Targets)>,
    credentials: Option<&Credentials>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (template, targets) in templates {
        for name in &targets.servers {
            if inventory.server(name.as_str()).is_none() {
                out.push(format!(
                    "template {template}: there is no server named {name}"
                ));
            }
        }
        for name in &targets.roles {
            if inventory.role(name.as_str()).is_none() {
                out.push(format!(
                    "template {template}: there is no role named {name}"
                ));
            }
        }
        for name in &targets.environments {
            if inventory.environment(name.as_str()).is_none() {
                out.push(format!(
                    "template {template}: there is no environment named {name}"
                ));
            }
        }
    }
    for server in inventory.servers() {
        if server.server_type != ServerType::Ssh {
            continue;
        }
        let name = &server.name;
        if server.host_name.is_none() {
            out.push(format!("server {name}: an ssh server needs a hostName"));
        }
        match (&server.credentials_name, credentials) {
            (None, _) => out.push(format!(
                "server {name}: an ssh server needs a credentialsName"
            )),
            (Some(entry), Some(credentials)) if credentials.get(entry).is_none() => out.push(
                format!("server {name}: the credentials file has no entry named {entry}"),
            ),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InfraName, Server};

    fn name(text: &str) -> InfraName {
        text.parse().unwrap()
    }

    #[test]
    fn unknown_targets_and_unreachable_servers_are_named() {
        let ssh = |n: &str, credentials: Option<&str>| Server {
            name: name(n),
            server_type: ServerType::Ssh,
            host_name: Some("h".into()),
            credentials_name: credentials.map(str::to_owned),
            ..Server::localhost()
        };
        let inventory = Inventory::new(
            vec![
                ssh("web1", Some("deploy")),
                ssh("web2", Some("gone")),
                ssh("web3", None),
            ],
            Vec::new(),
            Vec::new(),
        );
        let targets = Targets {
            servers: vec![name("web1"), name("db9")],
            roles: vec![name("web")],
            environments: vec![name("prod")],
        };
        let credentials = Credentials::from_toml(
            "[deploy]\ntype = \"ssh\"\nuser = \"u\"\nprivate_key_file = \"/k\"\n",
        )
        .unwrap();
        let found = problems(&inventory, [("deploy", &targets)], Some(&credentials));
        assert_eq!(
            found,
            [
                "template deploy: there is no server named db9",
                "template deploy: there is no role named web",
                "template deploy: there is no environment named prod",
                "server web2: the credentials file has no entry named gone",
                "server web3: an ssh server needs a credentialsName",
            ]
        );
        // Without a credentials file, only what the inventory itself lacks is a problem.
        let found = problems(&inventory, [], None);
        assert_eq!(
            found,
            ["server web3: an ssh server needs a credentialsName"]
        );
    }
}
