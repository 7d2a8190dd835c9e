//! `for server`, `for role`, `foreach server in` and `foreach role in`: running a block with
//! servers of the inventory in context.

use std::sync::Arc;

use holt_domain::Server;
use holt_plan::{Block, Expr, TargetKind};

use super::value::Value;
use super::{Ctx, Flow, Place, Signal};

impl Ctx {
    /// Runs `body` once per server the target names, in a log scope named after each: a server
    /// by its name (inactive or not: it was asked for), a role by its active servers in name
    /// order. A name the inventory does not know raises an error before anything runs.
    pub(super) async fn target(&mut self, kind: TargetKind, target: &Expr, body: &Block) -> Flow {
        let names = match self.eval(target) {
            Ok(Value::Scalar(name)) => vec![name],
            Ok(Value::List(items)) => {
                let mut names = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::Scalar(name) => names.push(name),
                        other => {
                            return self
                                .raise(format!(
                                    "a {} name must be a string, found {}",
                                    kind.word(),
                                    other.kind()
                                ))
                                .await;
                        }
                    }
                }
                names
            }
            Ok(Value::Map(_)) => {
                return self
                    .raise(format!(
                        "a {} name must be a string, found a map",
                        kind.word()
                    ))
                    .await;
            }
            Err(message) => return self.raise(message).await,
        };
        let mut runs: Vec<(Arc<Server>, Option<String>)> = Vec::new();
        let inventory = self.shared.inventory.clone();
        for name in names {
            match kind {
                TargetKind::Server => match inventory.server(name.trim()) {
                    Some(server) => runs.push((Arc::new(server.clone()), self.place.role.clone())),
                    None => {
                        return self
                            .raise(format!("there is no server named \"{name}\""))
                            .await;
                    }
                },
                TargetKind::Role => match inventory.role(name.trim()) {
                    Some(role) => {
                        let role_name = role.name.as_str().to_owned();
                        for server in inventory.servers_in_role(role.name.as_str(), false) {
                            runs.push((Arc::new(server.clone()), Some(role_name.clone())));
                        }
                    }
                    None => {
                        return self
                            .raise(format!("there is no role named \"{name}\""))
                            .await;
                    }
                },
            }
        }
        for (server, role) in runs {
            // The environment in context stays when the server is in it; otherwise it is the
            // server's first environment, if it has one.
            let environment = self
                .place
                .environment
                .clone()
                .filter(|outer| {
                    server
                        .environments
                        .iter()
                        .any(|e| e.as_str().eq_ignore_ascii_case(outer))
                })
                .or_else(|| {
                    let mut own: Vec<_> = server.environments.iter().collect();
                    own.sort();
                    own.first().map(|e| e.as_str().to_owned())
                });
            let scope = self.scope.child(server.name.as_str());
            let outer_scope = std::mem::replace(&mut self.scope, scope);
            let place = Place {
                server: Some(server),
                role,
                environment,
            };
            let outer_place = std::mem::replace(&mut self.place, place);
            self.env.push();
            let flow = self.statements(body).await;
            self.env.pop();
            self.place = outer_place;
            self.scope = outer_scope;
            match flow {
                Ok(()) | Err(Signal::Continue) => {}
                Err(Signal::Break) => break,
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }
}
