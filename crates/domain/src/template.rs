use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

mod ends;

use crate::{ApiKey, InfraName, Inventory, Server, TemplateName, VarName, Variables};

/// A job template: a plan, its variables' defaults, and whether and how the API may trigger it.
#[derive(Debug, Clone)]
pub struct Template {
    /// The template's name: its file stem.
    pub name: TemplateName,
    /// What the template does, for people.
    pub description: Option<String>,
    /// Whether the Job Orchestration API may trigger it; templates opt in.
    pub allow_api: bool,
    /// The key a request must carry, if any.
    pub api_key: Option<ApiKey>,
    /// The plan's text exactly as written; a job records it so it can show what it ran.
    pub plan_source: String,
    /// The parsed plan, shared by every job of the template.
    pub plan: std::sync::Arc<holt_plan::Plan>,
    /// Declared variables, in file order.
    pub variables: Vec<VariableDecl>,
    /// Whether a trigger may set variables the template does not declare.
    pub allow_undeclared_variables: bool,
    /// The most jobs of this template that execute at once, if limited.
    pub max_concurrent: Option<u32>,
    /// What a trigger does when `max_concurrent` jobs already execute.
    pub on_limit: OnLimit,
    /// How long a job may run before it is stopped, if limited.
    pub timeout: Option<Duration>,
    /// How many days finished jobs are kept, overriding the server's setting.
    pub retain_days: Option<u32>,
    /// The servers the plan runs on; none named means `localhost`.
    pub targets: Targets,
    /// How many targeted servers the plan runs on at once (one when not given).
    pub parallel_servers: u32,
    /// The variables whose final values a job hands back when it ends, in declaration order.
    pub outputs: Vec<VarName>,
    /// The completion webhooks sent when a job ends.
    pub notify: Vec<crate::Notify>,
    /// When the server triggers the template by itself, if ever.
    pub schedule: Option<crate::Schedule>,
    /// Where the plan's first character is in the file, as (line, column).
    plan_origin: (u32, u32),
}

/// The servers a template's plan runs on: those named, and those in any of the roles (only those
/// in the environments, when both are given) or in the environments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// Servers named directly.
    pub servers: Vec<InfraName>,
    /// Roles whose servers are targeted.
    pub roles: Vec<InfraName>,
    /// Environments whose servers (those of their child environments too) are targeted.
    pub environments: Vec<InfraName>,
}

impl Targets {
    /// Whether the template names no target, and so runs on `localhost` as a plain job.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.roles.is_empty() && self.environments.is_empty()
    }

    /// The active servers targeted, in name order, each once.
    pub fn resolve<'a>(&self, inventory: &'a Inventory) -> Vec<&'a Server> {
        inventory
            .servers()
            .filter(|s| s.active)
            .filter(|s| {
                let direct = self.servers.contains(&s.name);
                let in_role = s.roles.iter().any(|r| self.roles.contains(r));
                let in_environment = s
                    .environments
                    .iter()
                    .any(|e| self.environments.iter().any(|a| inventory.is_within(e, a)));
                let indirect = match (self.roles.is_empty(), self.environments.is_empty()) {
                    (true, true) => false,
                    (false, true) => in_role,
                    (true, false) => in_environment,
                    (false, false) => in_role && in_environment,
                };
                direct || indirect
            })
            .collect()
    }
}

/// What a trigger does when a template's `max_concurrent` jobs already execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnLimit {
    /// The job waits, `Pending`, and runs in trigger order.
    #[default]
    Queue,
    /// The trigger is refused (429 with Retry-After).
    Reject,
    /// When a job of the template is already waiting, the trigger returns its token.
    SkipIfPending,
}

/// A variable a template declares, with its default and rules.
#[derive(Debug, Clone)]
pub struct VariableDecl {
    /// The variable's name.
    pub name: VarName,
    /// Its value when a trigger does not give one.
    pub default: Option<String>,
    /// Whether its value is masked as `***` in every log line.
    pub secret: bool,
    /// Whether a trigger must give it (when it has no default).
    pub required: bool,
    /// The values it may take, if restricted.
    pub allowed: Vec<String>,
    /// A regular expression the whole value must match, if any.
    pub pattern: Option<regex::Regex>,
    /// What it is for, for people.
    pub description: Option<String>,
}

impl PartialEq for VariableDecl {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.default == other.default
            && self.secret == other.secret
            && self.required == other.required
            && self.allowed == other.allowed
            && self.pattern.as_ref().map(regex::Regex::as_str)
                == other.pattern.as_ref().map(regex::Regex::as_str)
            && self.description == other.description
    }
}

impl VariableDecl {
    /// The shortest non-empty value a secret variable may have, in characters. Masking replaces
    /// every occurrence of a secret's value in the log, so a shorter one would garble ordinary
    /// words and numbers and, by what it garbles, give the secret away.
    pub const MIN_SECRET_CHARS: usize = 4;

    /// Checks one value against the declaration's rules; the message names the variable and
    /// the rule it breaks. An empty secret is allowed (there is nothing to mask).
    pub fn check(&self, value: &str) -> Result<(), String> {
        let chars = value.chars().count();
        if self.secret && (1..Self::MIN_SECRET_CHARS).contains(&chars) {
            return Err(format!(
                "variable {} is secret and must be empty or at least {} characters long",
                self.name,
                Self::MIN_SECRET_CHARS
            ));
        }
        if !self.allowed.is_empty() && !self.allowed.iter().any(|a| a == value) {
            return Err(format!(
                "variable {} must be one of: {}",
                self.name,
                self.allowed.join(", ")
            ));
        }
        if let Some(pattern) = &self.pattern
            && !pattern.is_match(value)
        {
            return Err(format!(
                "variable {} must match the pattern {}",
                self.name,
                pattern_source(pattern)
            ));
        }
        Ok(())
    }
}

/// The pattern as written in the template (without the anchors Holt adds).
pub fn pattern_source(pattern: &regex::Regex) -> &str {
    let s = pattern.as_str();
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
}

impl Template {
    /// Where a position of the plan (1-based line and column) is in the template file, so that
    /// later checks of the plan report in the file's coordinates like syntax errors do.
    pub fn plan_position_in_file(&self, line: u32, column: u32) -> (u32, u32) {
        shift(self.plan_origin, line, column)
    }

    /// Checks a trigger's variables against the declarations: built-in names, undeclared names
    /// (when not allowed), missing required variables, values outside `allowed` or `pattern`,
    /// secrets too short to mask. The message names the variable and the rule.
    pub fn check_variables(&self, given: &Variables) -> Result<(), String> {
        for (name, value) in given.iter() {
            if name.is_built_in() {
                return Err(format!(
                    "variable {name} is built in: only the engine sets it, a trigger cannot"
                ));
            }
            match self.variables.iter().find(|d| d.name == *name) {
                Some(decl) => decl.check(value)?,
                None if !self.allow_undeclared_variables => {
                    return Err(format!(
                        "variable {name} is not declared by template {}",
                        self.name
                    ));
                }
                None => {}
            }
        }
        for decl in &self.variables {
            if decl.required && decl.default.is_none() && !given.contains(&decl.name) {
                return Err(format!("variable {} is required", decl.name));
            }
            if !given.contains(&decl.name)
                && let Some(default) = &decl.default
            {
                decl.check(default)?;
            }
        }
        Ok(())
    }

    /// The template's default values, before a job's own values override them.
    pub fn defaults(&self) -> Variables {
        self.variables
            .iter()
            .filter_map(|decl| Some((decl.name.clone(), decl.default.clone()?)))
            .collect()
    }

    /// Reads a template from its TOML text. Every problem found is reported with the line and
    /// column in that text, plan syntax errors included.
    pub fn from_toml(name: TemplateName, text: &str) -> Result<Template, TemplateError> {
        let file: TemplateFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |span| span.start);
            TemplateError::at(text, at, e.message().trim())
        })?;
        let mut errors = Vec::new();

        let api_key = match (&file.api_key, &file.api_key_sha256) {
            (Some(key), None) if key.get_ref().is_empty() => {
                errors.push(diag(text, key.span(), "api_key must not be empty".into()));
                None
            }
            (Some(key), None) => Some(ApiKey::from_plain(key.get_ref())),
            (None, Some(hex)) => match ApiKey::from_sha256_hex(hex.get_ref()) {
                Ok(key) => Some(key),
                Err(e) => {
                    errors.push(diag(text, hex.span(), e.to_string()));
                    None
                }
            },
            (Some(key), Some(_)) => {
                errors.push(diag(
                    text,
                    key.span(),
                    "give api_key or api_key_sha256, not both".into(),
                ));
                None
            }
            (None, None) => None,
        };

        let mut variables: Vec<VariableDecl> = Vec::new();
        for (written, spec) in &file.variables {
            let name = match written.parse::<VarName>() {
                Ok(name) => name,
                Err(e) => {
                    errors.push(diag(text, spec.span(), e.to_string()));
                    continue;
                }
            };
            if name.is_built_in() {
                errors.push(diag(
                    text,
                    spec.span(),
                    format!(
                        "variable {name} is built in: only the engine sets it, a template cannot declare it"
                    ),
                ));
                continue;
            }
            if variables.iter().any(|d| d.name == name) {
                errors.push(diag(
                    text,
                    spec.span(),
                    format!("variable {name} is declared twice (names ignore case)"),
                ));
                continue;
            }
            match VariableDecl::from_spec(name, spec.get_ref()) {
                Ok(decl) => variables.push(decl),
                Err(message) => errors.push(diag(text, spec.span(), message)),
            }
        }

        let plan_source = file.plan.get_ref().clone();
        let plan_origin = content_start(text, file.plan.span());
        let plan = match holt_plan::parse(&plan_source) {
            Ok(plan) => Some(plan),
            Err(diagnostics) => {
                for d in diagnostics.0 {
                    let (line, column) = shift(plan_origin, d.pos.line, d.pos.column);
                    errors.push(TemplateDiagnostic {
                        line,
                        column,
                        message: d.message,
                    });
                }
                None
            }
        };

        let timeout = match &file.timeout {
            None => None,
            Some(value) => match humantime::parse_duration(value.get_ref()) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => {
                    errors.push(diag(
                        text,
                        value.span(),
                        "timeout must be longer than zero".into(),
                    ));
                    None
                }
                Err(e) => {
                    errors.push(diag(
                        text,
                        value.span(),
                        format!("timeout must be a duration like \"90s\", \"30m\" or \"2h\": {e}"),
                    ));
                    None
                }
            },
        };
        if file.max_concurrent == Some(0) {
            errors.push(diag(text, 0..0, "max_concurrent must be at least 1".into()));
        }
        if file.parallel_servers == Some(0) {
            errors.push(diag(
                text,
                0..0,
                "parallel_servers must be at least 1".into(),
            ));
        }
        let mut names = |key: &str, list: &[String]| -> Vec<InfraName> {
            list.iter()
                .filter_map(|n| match n.parse::<InfraName>() {
                    Ok(name) => Some(name),
                    Err(e) => {
                        errors.push(diag(text, 0..0, format!("{key}: {e}")));
                        None
                    }
                })
                .collect()
        };
        let targets = Targets {
            servers: names("servers", &file.servers),
            roles: names("roles", &file.roles),
            environments: names("environments", &file.environments),
        };
        let schedule = schedule_of(text, &file, &variables, &mut errors);

        let outputs = ends::read_outputs(text, &file.outputs, &variables, &mut errors);
        let notify = ends::read_notify(text, &file.notify, &mut errors);

        match plan {
            Some(plan) if errors.is_empty() => Ok(Template {
                name,
                description: file.description,
                allow_api: file.allow_api,
                api_key,
                plan_source,
                plan: std::sync::Arc::new(plan),
                variables,
                allow_undeclared_variables: file.allow_undeclared_variables,
                max_concurrent: file.max_concurrent,
                on_limit: file.on_limit,
                timeout,
                retain_days: file.retain_days,
                targets,
                parallel_servers: file.parallel_servers.unwrap_or(1),
                schedule,
                plan_origin,
                outputs,
                notify,
            }),
            _ => Err(TemplateError {
                diagnostics: errors,
            }),
        }
    }
}

/// Moves a position in a plan to the file holding it, given where the plan starts.
fn shift(origin: (u32, u32), line: u32, column: u32) -> (u32, u32) {
    if line == 1 {
        (origin.0, origin.1 + column - 1)
    } else {
        (origin.0 + line - 1, column)
    }
}

impl VariableDecl {
    fn from_spec(name: VarName, spec: &toml::Value) -> Result<VariableDecl, String> {
        let scalar = |default: String| VariableDecl {
            name: name.clone(),
            default: Some(default),
            secret: false,
            required: false,
            allowed: Vec::new(),
            pattern: None,
            description: None,
        };
        match spec {
            toml::Value::String(s) => Ok(scalar(s.clone())),
            toml::Value::Integer(i) => Ok(scalar(i.to_string())),
            toml::Value::Float(f) => Ok(scalar(f.to_string())),
            toml::Value::Boolean(b) => Ok(scalar(b.to_string())),
            toml::Value::Table(_) => {
                let table: VariableTable =
                    spec.clone().try_into().map_err(|e: toml::de::Error| {
                        format!("variable {name}: {}", e.message().trim())
                    })?;
                let pattern = match &table.pattern {
                    None => None,
                    // The whole value must match, whatever anchors the pattern has.
                    Some(p) => Some(regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                        let first = e
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or_default()
                            .trim()
                            .to_owned();
                        format!("variable {name}: invalid pattern: {first}")
                    })?),
                };
                let decl = VariableDecl {
                    name,
                    default: table.default,
                    secret: table.secret,
                    required: table.required,
                    allowed: table.allowed,
                    pattern,
                    description: table.description,
                };
                if let Some(default) = &decl.default {
                    decl.check(default)
                        .map_err(|e| format!("the default breaks its own rule: {e}"))?;
                }
                Ok(decl)
            }
            toml::Value::Array(_) | toml::Value::Datetime(_) => Err(format!(
                "variable {name}: expected a string, number or boolean, or a table"
            )),
        }
    }
}

/// The file format, as serde reads it; `Template::from_toml` turns it into a `Template`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    description: Option<String>,
    #[serde(default)]
    allow_api: bool,
    api_key: Option<Spanned<String>>,
    api_key_sha256: Option<Spanned<String>>,
    plan: Spanned<String>,
    #[serde(default)]
    variables: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default = "yes")]
    allow_undeclared_variables: bool,
    max_concurrent: Option<u32>,
    #[serde(default)]
    on_limit: OnLimit,
    timeout: Option<Spanned<String>>,
    retain_days: Option<u32>,
    #[serde(default)]
    servers: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    environments: Vec<String>,
    parallel_servers: Option<u32>,
    #[serde(default)]
    outputs: Vec<Spanned<String>>,
    #[serde(default)]
    notify: Vec<Spanned<ends::NotifySpec>>,
    schedule: Option<Spanned<String>>,
    schedule_timezone: Option<Spanned<String>>,
    missed: Option<Spanned<crate::Missed>>,
}

/// The template's schedule, if it has one; problems go to `errors`. A scheduled job gets no
/// variables from a trigger, so every required variable needs a default.
fn schedule_of(
    text: &str,
    file: &TemplateFile,
    variables: &[VariableDecl],
    errors: &mut Vec<TemplateDiagnostic>,
) -> Option<crate::Schedule> {
    let Some(expression) = &file.schedule else {
        for (key, span) in [
            (
                "schedule_timezone",
                file.schedule_timezone.as_ref().map(|z| z.span()),
            ),
            ("missed", file.missed.as_ref().map(|m| m.span())),
        ] {
            if let Some(span) = span {
                errors.push(diag(text, span, format!("{key} needs a schedule")));
            }
        }
        return None;
    };
    for decl in variables {
        if decl.required && decl.default.is_none() {
            errors.push(diag(
                text,
                expression.span(),
                format!(
                    "variable {} is required but has no default, and a scheduled job gets no variables",
                    decl.name
                ),
            ));
        }
    }
    let missed = file
        .missed
        .as_ref()
        .map(|m| *m.get_ref())
        .unwrap_or_default();
    let zone = file.schedule_timezone.as_ref();
    match crate::Schedule::new(
        expression.get_ref(),
        zone.map(|z| z.get_ref().as_str()),
        missed,
    ) {
        Ok(schedule) => Some(schedule),
        Err(message) => {
            let span = match zone {
                Some(zone) if message.starts_with("schedule_timezone") => zone.span(),
                _ => expression.span(),
            };
            errors.push(diag(text, span, message));
            None
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VariableTable {
    default: Option<String>,
    #[serde(default)]
    secret: bool,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    allowed: Vec<String>,
    pattern: Option<String>,
    description: Option<String>,
}

/// Why a template file was refused: every problem found, each at a line and column of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// The problems, in the order they were found.
    pub diagnostics: Vec<TemplateDiagnostic>,
}

/// One problem in a template file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateDiagnostic {
    /// 1-based line in the file.
    pub line: u32,
    /// 1-based column in the file, in characters.
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

impl TemplateError {
    fn at(text: &str, offset: usize, message: &str) -> Self {
        let (line, column) = line_column(text, offset);
        TemplateError {
            diagnostics: vec![TemplateDiagnostic {
                line,
                column,
                message: message.replace('\n', " "),
            }],
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}:{}: {}", d.line, d.column, d.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for TemplateError {}

fn diag(text: &str, span: Range<usize>, message: String) -> TemplateDiagnostic {
    let (line, column) = line_column(text, span.start);
    TemplateDiagnostic {
        line,
        column,
        message,
    }
}

/// The 1-based line and character column of a byte offset.
fn line_column(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line as u32, column as u32)
}

/// Where a string value's content starts in the file, so plan diagnostics can be moved from
/// plan coordinates to file coordinates. A multi-line string's delimiter and the line break
/// right after it are not content, as TOML says.
fn content_start(text: &str, span: Range<usize>) -> (u32, u32) {
    let raw = text.get(span.start..span.end).unwrap_or("");
    let mut start = span.start;
    if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
        start += 3;
        let rest = &text[start..];
        if rest.starts_with("\r\n") {
            start += 2;
        } else if rest.starts_with('\n') {
            start += 1;
        }
    } else if raw.starts_with('\'') || raw.starts_with('"') {
        start += 1;
    }
    line_column(text, start)
}

#[cfg(test)]
mod tests;

/// The templates a server has loaded, by name.
#[derive(Debug, Clone, Default)]
pub struct TemplateCatalog {
    by_name: std::collections::HashMap<TemplateName, std::sync::Arc<Template>>,
}

impl TemplateCatalog {
    /// A catalog of these templates; a later template replaces an earlier one of the same name.
    pub fn new(templates: impl IntoIterator<Item = Template>) -> Self {
        TemplateCatalog {
            by_name: templates
                .into_iter()
                .map(|t| (t.name.clone(), std::sync::Arc::new(t)))
                .collect(),
        }
    }

    /// A catalog of templates already shared, such as those kept from an earlier catalog.
    pub fn from_shared(templates: impl IntoIterator<Item = std::sync::Arc<Template>>) -> Self {
        TemplateCatalog {
            by_name: templates.into_iter().map(|t| (t.name.clone(), t)).collect(),
        }
    }

    /// The template of that name, if loaded.
    pub fn get(&self, name: &TemplateName) -> Option<&std::sync::Arc<Template>> {
        self.by_name.get(name)
    }

    /// How many templates are loaded.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether no template is loaded.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The loaded templates, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &std::sync::Arc<Template>> {
        self.by_name.values()
    }
}
