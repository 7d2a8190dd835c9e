//! Holt's domain: the pure types and rules every other crate speaks in. Template names, job
//! tokens, the five job statuses, log levels and the text form of a log body, variables and
//! their overriding rule, and job templates with their hashed API keys.
//!
//! This crate does no I/O: no files, no clock, no network, no async runtime. It may depend on
//! `holt-plan` (a template carries its parsed plan) and on small pure libraries (serde, toml,
//! sha2, subtle, and croner and jiff for schedules, with jiff's time zone database compiled in);
//! it must never depend on tokio, hyper or rusqlite. Callers pass in the time.

mod credentials;
mod error;
mod infra;
mod job;
mod key;
mod log;
mod name;
mod outputs;
mod schedule;
mod status;
mod template;
mod token;
mod vars;

pub use credentials::{Credential, Credentials};
pub use error::DomainError;
pub use infra::check::problems as infra_problems;
pub use infra::{
    DEFAULT_SSH_PORT, Environment, EnvironmentPatch, InfraChange, InfraError, InfraKind, InfraName,
    InfraVariables, Inventory, LOCALHOST, Role, RolePatch, Server, ServerPatch, ServerType,
};
pub use job::{JobFilter, JobSummary, TriggerSource};
pub use key::ApiKey;
pub use log::{
    LogEntry, LogLevel, ScopePath, body_is_escaped, escaped_in_text, format_entry, format_line,
    needs_escape, push_escaped, split_message,
};
pub use name::TemplateName;
pub use outputs::{Notify, Outputs, is_env_name, push_json_string, shown_url, url_problem};
pub use schedule::{Due, MAX_SCHEDULE_LEN, Missed, SCHEDULE_SHORTHANDS, Schedule};
pub use status::JobStatus;
pub use template::{
    OnLimit, Targets, Template, TemplateCatalog, TemplateDiagnostic, TemplateError, VariableDecl,
    pattern_source,
};
pub use token::JobToken;
pub use vars::{BUILT_IN_VARIABLES, VarName, Variables, is_built_in_variable};
