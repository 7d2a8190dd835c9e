//! The infrastructure model of Otter's Infrastructure Management API: servers, roles and
//! environments, their name rules, and the rules a change must keep (no server names an unknown
//! role, no environment is its own ancestor, nothing still in use is deleted).
//!
//! The whole model is small (an organisation's inventory), so a change is checked against the
//! whole [`Inventory`] and stores keep it as one consistent set.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The name of the built-in server: holtd's own host.
pub const LOCALHOST: &str = "localhost";

/// The port of an `ssh` server that names none.
pub const DEFAULT_SSH_PORT: u16 = 22;

/// The name of a server, a role or an environment: 1 to 50 letters, digits, `-` and `_`,
/// starting with a letter and not ending with `-` or `_`. Names compare ignoring ASCII case, as
/// Otter's do; the spelling first given is kept.
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct InfraName(String);

impl InfraName {
    /// The longest name accepted.
    pub const MAX_LEN: usize = 50;

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as compared: lowercase.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl FromStr for InfraName {
    type Err = InfraError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && !s.ends_with(['-', '_'])
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if valid {
            Ok(InfraName(s.to_owned()))
        } else {
            Err(InfraError::InvalidName(s.to_owned()))
        }
    }
}

impl<'de> Deserialize<'de> for InfraName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl PartialEq for InfraName {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for InfraName {}

impl PartialOrd for InfraName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InfraName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl std::hash::Hash for InfraName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl fmt::Display for InfraName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InfraName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Variables of a server, role or environment: names of 1 to 50 letters, digits, `-`, `_` and
/// spaces, starting with a letter.
pub type InfraVariables = BTreeMap<String, String>;

fn check_variables(owner: &str, variables: &InfraVariables) -> Result<(), InfraError> {
    for name in variables.keys() {
        let valid = !name.is_empty()
            && name.len() <= 50
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ' '));
        if !valid {
            return Err(InfraError::Invalid(format!(
                "{owner}: invalid variable name {name:?}: use up to 50 letters, digits, '-', '_' or spaces, starting with a letter"
            )));
        }
    }
    Ok(())
}

/// How Holt reaches a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerType {
    /// holtd's own host: processes start directly.
    Local,
    /// A host reached with the machine's OpenSSH client.
    Ssh,
}

impl FromStr for ServerType {
    type Err = InfraError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "local" => Ok(ServerType::Local),
            "ssh" => Ok(ServerType::Ssh),
            _ => Err(InfraError::Invalid(format!(
                "serverType {s:?} is not supported: Holt supports local and ssh"
            ))),
        }
    }
}

/// A server Holt can run work on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    /// Its name.
    pub name: InfraName,
    /// How it is reached.
    pub server_type: ServerType,
    /// Its host name or address (`ssh`).
    pub host_name: Option<String>,
    /// Its SSH port.
    pub port: u16,
    /// The entry of holtd's credentials file used to log in (`ssh`).
    pub credentials_name: Option<String>,
    /// The roles it has.
    pub roles: Vec<InfraName>,
    /// The environments it is in.
    pub environments: Vec<InfraName>,
    /// Its variables.
    pub variables: InfraVariables,
    /// Whether targeting picks it (inactive servers are left out unless asked for).
    pub active: bool,
    /// Where work on it keeps temporary files.
    pub temp_path: Option<String>,
}

impl Server {
    /// The built-in server: holtd's own host.
    pub fn localhost() -> Server {
        Server {
            name: InfraName(LOCALHOST.to_owned()),
            server_type: ServerType::Local,
            host_name: None,
            port: DEFAULT_SSH_PORT,
            credentials_name: None,
            roles: Vec::new(),
            environments: Vec::new(),
            variables: InfraVariables::new(),
            active: true,
            temp_path: None,
        }
    }

    /// Whether this is the built-in `localhost`.
    pub fn is_localhost(&self) -> bool {
        self.name.as_str().eq_ignore_ascii_case(LOCALHOST)
    }
}

/// A role: servers that play the same part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    /// Its name.
    pub name: InfraName,
    /// Its variables.
    pub variables: InfraVariables,
}

/// An environment, possibly inside a parent environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// Its name.
    pub name: InfraName,
    /// The environment it is inside of, if any.
    pub parent_name: Option<InfraName>,
    /// Its variables.
    pub variables: InfraVariables,
}

/// The three kinds of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfraKind {
    /// Servers.
    Server,
    /// Roles.
    Role,
    /// Environments.
    Environment,
}

impl InfraKind {
    /// The kind's word in messages.
    pub fn word(self) -> &'static str {
        match self {
            InfraKind::Server => "server",
            InfraKind::Role => "role",
            InfraKind::Environment => "environment",
        }
    }
}

/// Why a change to the inventory is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InfraError {
    /// A name breaks the naming rule.
    #[error(
        "invalid name {0:?}: use 1 to 50 letters, digits, '-' or '_', starting with a letter and not ending with '-' or '_'"
    )]
    InvalidName(String),
    /// The entry is not valid, or the change would break the model's rules; the message says
    /// which.
    #[error("{0}")]
    Invalid(String),
    /// No such entry.
    #[error("no {} named {name}", kind.word())]
    NotFound {
        /// Its kind.
        kind: InfraKind,
        /// The name asked for.
        name: String,
    },
}

/// A change to the inventory.
#[derive(Debug, Clone)]
pub enum InfraChange {
    /// Adds a server; one of that name must not exist.
    CreateServer(Server),
    /// Replaces the server of that name.
    UpdateServer(Server),
    /// Deletes a server.
    DeleteServer(InfraName),
    /// Adds a role.
    CreateRole(Role),
    /// Replaces a role.
    UpdateRole(Role),
    /// Deletes a role no server has.
    DeleteRole(InfraName),
    /// Adds an environment.
    CreateEnvironment(Environment),
    /// Replaces an environment.
    UpdateEnvironment(Environment),
    /// Deletes an environment no server is in and no environment is inside of.
    DeleteEnvironment(InfraName),
}

/// Every server, role and environment, in name order. `localhost` is always there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    servers: BTreeMap<InfraName, Server>,
    roles: BTreeMap<InfraName, Role>,
    environments: BTreeMap<InfraName, Environment>,
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory::new(Vec::new(), Vec::new(), Vec::new())
    }
}

impl Inventory {
    /// An inventory of these entries (as a store read them back), with `localhost` added when
    /// missing.
    pub fn new(servers: Vec<Server>, roles: Vec<Role>, environments: Vec<Environment>) -> Self {
        let mut inventory = Inventory {
            servers: servers.into_iter().map(|s| (s.name.clone(), s)).collect(),
            roles: roles.into_iter().map(|r| (r.name.clone(), r)).collect(),
            environments: environments
                .into_iter()
                .map(|e| (e.name.clone(), e))
                .collect(),
        };
        let localhost = Server::localhost();
        inventory
            .servers
            .entry(localhost.name.clone())
            .or_insert(localhost);
        inventory
    }

    /// The servers, in name order.
    pub fn servers(&self) -> impl Iterator<Item = &Server> {
        self.servers.values()
    }

    /// The roles, in name order.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// The environments, in name order.
    pub fn environments(&self) -> impl Iterator<Item = &Environment> {
        self.environments.values()
    }

    /// The server of that name.
    pub fn server(&self, name: &str) -> Option<&Server> {
        self.servers.get(&InfraName(name.to_owned()))
    }

    /// The role of that name.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(&InfraName(name.to_owned()))
    }

    /// The environment of that name.
    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.get(&InfraName(name.to_owned()))
    }

    /// Applies a change if it keeps every rule; the inventory is unchanged when it is refused.
    pub fn apply(&mut self, change: InfraChange) -> Result<(), InfraError> {
        match change {
            InfraChange::CreateServer(server) => {
                if self.servers.contains_key(&server.name) {
                    return Err(exists(InfraKind::Server, &server.name));
                }
                self.check_server(&server)?;
                self.servers.insert(server.name.clone(), server);
            }
            InfraChange::UpdateServer(server) => {
                self.find(InfraKind::Server, &server.name)?;
                self.check_server(&server)?;
                self.servers.insert(server.name.clone(), server);
            }
            InfraChange::DeleteServer(name) => {
                self.find(InfraKind::Server, &name)?;
                if name.as_str().eq_ignore_ascii_case(LOCALHOST) {
                    return Err(InfraError::Invalid(
                        "localhost is built in and cannot be deleted".to_owned(),
                    ));
                }
                self.servers.remove(&name);
            }
            InfraChange::CreateRole(role) => {
                if self.roles.contains_key(&role.name) {
                    return Err(exists(InfraKind::Role, &role.name));
                }
                check_variables(&format!("role {}", role.name), &role.variables)?;
                self.roles.insert(role.name.clone(), role);
            }
            InfraChange::UpdateRole(role) => {
                self.find(InfraKind::Role, &role.name)?;
                check_variables(&format!("role {}", role.name), &role.variables)?;
                self.roles.insert(role.name.clone(), role);
            }
            InfraChange::DeleteRole(name) => {
                self.find(InfraKind::Role, &name)?;
                let users = self.servers_with(|s| s.roles.contains(&name));
                if !users.is_empty() {
                    return Err(InfraError::Invalid(format!(
                        "role {name} is still used by servers: {users}"
                    )));
                }
                self.roles.remove(&name);
            }
            InfraChange::CreateEnvironment(environment) => {
                if self.environments.contains_key(&environment.name) {
                    return Err(exists(InfraKind::Environment, &environment.name));
                }
                self.check_environment(&environment)?;
                self.environments
                    .insert(environment.name.clone(), environment);
            }
            InfraChange::UpdateEnvironment(environment) => {
                self.find(InfraKind::Environment, &environment.name)?;
                self.check_environment(&environment)?;
                self.environments
                    .insert(environment.name.clone(), environment);
            }
            InfraChange::DeleteEnvironment(name) => {
                self.find(InfraKind::Environment, &name)?;
                let users = self.servers_with(|s| s.environments.contains(&name));
                if !users.is_empty() {
                    return Err(InfraError::Invalid(format!(
                        "environment {name} is still used by servers: {users}"
                    )));
                }
                let children: Vec<&str> = self
                    .environments
                    .values()
                    .filter(|e| e.parent_name.as_ref() == Some(&name))
                    .map(|e| e.name.as_str())
                    .collect();
                if !children.is_empty() {
                    return Err(InfraError::Invalid(format!(
                        "environment {name} is the parent of environments: {}",
                        children.join(", ")
                    )));
                }
                self.environments.remove(&name);
            }
        }
        Ok(())
    }

    fn find(&self, kind: InfraKind, name: &InfraName) -> Result<(), InfraError> {
        let found = match kind {
            InfraKind::Server => self.servers.contains_key(name),
            InfraKind::Role => self.roles.contains_key(name),
            InfraKind::Environment => self.environments.contains_key(name),
        };
        if found {
            Ok(())
        } else {
            Err(InfraError::NotFound {
                kind,
                name: name.to_string(),
            })
        }
    }

    fn servers_with(&self, uses: impl Fn(&Server) -> bool) -> String {
        self.servers
            .values()
            .filter(|s| uses(s))
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn check_server(&self, server: &Server) -> Result<(), InfraError> {
        let name = &server.name;
        if server.is_localhost() && server.server_type != ServerType::Local {
            return Err(InfraError::Invalid(
                "localhost is built in and stays of serverType local".to_owned(),
            ));
        }
        if server.server_type == ServerType::Ssh {
            if server.host_name.as_deref().is_none_or(str::is_empty) {
                return Err(InfraError::Invalid(format!(
                    "server {name}: hostName is required for serverType ssh"
                )));
            }
            if server.credentials_name.as_deref().is_none_or(str::is_empty) {
                return Err(InfraError::Invalid(format!(
                    "server {name}: credentialsName is required for serverType ssh"
                )));
            }
        }
        if let Some(host) = &server.host_name {
            // A host name reaches the SSH client's command line: only what a host name or an
            // address can hold is accepted, so it can never read as an option.
            let valid = !host.is_empty()
                && host.len() <= 253
                && !host.starts_with('-')
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
            if !valid {
                return Err(InfraError::Invalid(format!(
                    "server {name}: invalid hostName {host:?}: use a host name or an IP address"
                )));
            }
        }
        if server.port == 0 {
            return Err(InfraError::Invalid(format!(
                "server {name}: port must be from 1 to 65535"
            )));
        }
        for role in &server.roles {
            if !self.roles.contains_key(role) {
                return Err(InfraError::Invalid(format!(
                    "server {name}: no role named {role}"
                )));
            }
        }
        for environment in &server.environments {
            if !self.environments.contains_key(environment) {
                return Err(InfraError::Invalid(format!(
                    "server {name}: no environment named {environment}"
                )));
            }
        }
        check_variables(&format!("server {name}"), &server.variables)
    }

    fn check_environment(&self, environment: &Environment) -> Result<(), InfraError> {
        let name = &environment.name;
        check_variables(&format!("environment {name}"), &environment.variables)?;
        let mut parent = environment.parent_name.clone();
        let mut seen = 0;
        while let Some(current) = parent {
            if &current == name {
                return Err(InfraError::Invalid(format!(
                    "environment {name} cannot be inside of itself"
                )));
            }
            let Some(found) = self.environments.get(&current) else {
                return Err(InfraError::Invalid(format!(
                    "environment {name}: no parent environment named {current}"
                )));
            };
            parent = found.parent_name.clone();
            seen += 1;
            if seen > self.environments.len() {
                break;
            }
        }
        Ok(())
    }

    /// The active servers in a role, in name order (`include_inactive` adds the others).
    pub fn servers_in_role(&self, role: &str, include_inactive: bool) -> Vec<&Server> {
        let role = InfraName(role.to_owned());
        self.servers
            .values()
            .filter(|s| (s.active || include_inactive) && s.roles.contains(&role))
            .collect()
    }

    /// The active servers in an environment or in one inside of it, in name order.
    pub fn servers_in_environment(
        &self,
        environment: &str,
        include_inactive: bool,
    ) -> Vec<&Server> {
        let environment = InfraName(environment.to_owned());
        self.servers
            .values()
            .filter(|s| {
                (s.active || include_inactive)
                    && s.environments
                        .iter()
                        .any(|e| self.is_within(e, &environment))
            })
            .collect()
    }

    /// Whether `environment` is `ancestor` or inside of it.
    pub fn is_within(&self, environment: &InfraName, ancestor: &InfraName) -> bool {
        let mut current = Some(environment.clone());
        let mut steps = 0;
        while let Some(name) = current {
            if &name == ancestor {
                return true;
            }
            current = self
                .environments
                .get(&name)
                .and_then(|e| e.parent_name.clone());
            steps += 1;
            if steps > self.environments.len() {
                return false;
            }
        }
        false
    }
}

/// A server as a `create` or `update` body gives it, in Otter's JSON shape: on update, a
/// property left out keeps its value. `drift` and `credentialsType` are accepted and ignored
/// (Holt has no configuration drift, and its credentials have one type per entry).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerPatch {
    /// `name`.
    pub name: Option<InfraName>,
    /// `serverType`.
    pub server_type: Option<String>,
    /// `hostName`.
    #[serde(default, deserialize_with = "present")]
    pub host_name: Option<Option<String>>,
    /// `port`.
    pub port: Option<u16>,
    /// `credentialsName`.
    #[serde(default, deserialize_with = "present")]
    pub credentials_name: Option<Option<String>>,
    /// `credentialsType`, ignored.
    pub credentials_type: Option<serde::de::IgnoredAny>,
    /// `roles`.
    pub roles: Option<Vec<InfraName>>,
    /// `environments`.
    pub environments: Option<Vec<InfraName>>,
    /// `variables`.
    pub variables: Option<InfraVariables>,
    /// `active`.
    pub active: Option<bool>,
    /// `tempPath`.
    #[serde(default, deserialize_with = "present")]
    pub temp_path: Option<Option<String>>,
    /// `drift`, ignored.
    pub drift: Option<serde::de::IgnoredAny>,
}

/// A role as a body gives it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolePatch {
    /// `name`.
    pub name: Option<InfraName>,
    /// `variables`.
    pub variables: Option<InfraVariables>,
}

/// An environment as a body gives it; `parentName: null` takes it out of its parent.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentPatch {
    /// `name`.
    pub name: Option<InfraName>,
    /// `parentName`.
    #[serde(default, deserialize_with = "present")]
    pub parent_name: Option<Option<InfraName>>,
    /// `variables`.
    pub variables: Option<InfraVariables>,
}

/// A property that is present (possibly `null`), as opposed to left out.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The entry a request names: by the URL, else by the body; both must agree when both name one.
fn named(url: Option<&InfraName>, body: Option<&InfraName>) -> Result<InfraName, InfraError> {
    match (url, body) {
        (Some(url), Some(body)) if url != body => Err(InfraError::Invalid(format!(
            "the URL names {url} but the body names {body}; renaming is not supported"
        ))),
        (Some(name), _) | (None, Some(name)) => Ok(name.clone()),
        (None, None) => Err(InfraError::Invalid(
            "the entry's name is missing".to_owned(),
        )),
    }
}

impl ServerPatch {
    /// The server this patch makes of `base` (the current entry on update, `None` on create).
    pub fn apply(
        self,
        url: Option<&InfraName>,
        base: Option<&Server>,
    ) -> Result<Server, InfraError> {
        let name = named(url.or(base.map(|b| &b.name)), self.name.as_ref())?;
        let mut server = match base {
            Some(base) => base.clone(),
            None => Server {
                name: name.clone(),
                server_type: ServerType::Local,
                ..Server::localhost()
            },
        };
        if base.is_none() && self.server_type.is_none() {
            return Err(InfraError::Invalid(format!(
                "server {name}: serverType is required (local or ssh)"
            )));
        }
        if let Some(kind) = self.server_type {
            server.server_type = kind.parse()?;
        }
        if let Some(host) = self.host_name {
            server.host_name = host.filter(|h| !h.is_empty());
        }
        if let Some(port) = self.port {
            server.port = port;
        }
        if let Some(credentials) = self.credentials_name {
            server.credentials_name = credentials.filter(|c| !c.is_empty());
        }
        if let Some(roles) = self.roles {
            server.roles = dedup(roles);
        }
        if let Some(environments) = self.environments {
            server.environments = dedup(environments);
        }
        if let Some(variables) = self.variables {
            server.variables = variables;
        }
        if let Some(active) = self.active {
            server.active = active;
        }
        if let Some(temp) = self.temp_path {
            server.temp_path = temp.filter(|t| !t.is_empty());
        }
        Ok(server)
    }
}

impl RolePatch {
    /// The role this patch makes of `base`.
    pub fn apply(self, url: Option<&InfraName>, base: Option<&Role>) -> Result<Role, InfraError> {
        let name = named(url.or(base.map(|b| &b.name)), self.name.as_ref())?;
        let mut role = base.cloned().unwrap_or(Role {
            name,
            variables: InfraVariables::new(),
        });
        if let Some(variables) = self.variables {
            role.variables = variables;
        }
        Ok(role)
    }
}

impl EnvironmentPatch {
    /// The environment this patch makes of `base`.
    pub fn apply(
        self,
        url: Option<&InfraName>,
        base: Option<&Environment>,
    ) -> Result<Environment, InfraError> {
        let name = named(url.or(base.map(|b| &b.name)), self.name.as_ref())?;
        let mut environment = base.cloned().unwrap_or(Environment {
            name,
            parent_name: None,
            variables: InfraVariables::new(),
        });
        if let Some(parent) = self.parent_name {
            environment.parent_name = parent;
        }
        if let Some(variables) = self.variables {
            environment.variables = variables;
        }
        Ok(environment)
    }
}

/// Names in their first order, each once.
fn dedup(names: Vec<InfraName>) -> Vec<InfraName> {
    let mut out: Vec<InfraName> = Vec::with_capacity(names.len());
    for name in names {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn exists(kind: InfraKind, name: &InfraName) -> InfraError {
    InfraError::Invalid(format!("a {} named {name} already exists", kind.word()))
}

#[cfg(test)]
mod tests;

pub(crate) mod check;
