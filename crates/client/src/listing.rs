//! The operators' listings: the query of `/api/jobs/list` and the typed forms of both answers.

use holt_domain::{JobStatus, TriggerSource};
use serde_json::Value;

use crate::Error;

/// Which jobs to list; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobQuery {
    /// Only jobs of this template.
    pub template: Option<String>,
    /// Only jobs with this status.
    pub status: Option<JobStatus>,
    /// At most this many jobs (the server takes 1 to 1000; 50 when absent).
    pub limit: Option<usize>,
    /// Only jobs older than this token: the `next` of the previous page.
    pub before: Option<String>,
}

impl JobQuery {
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(t) = &self.template {
            pairs.push(("template", t.clone()));
        }
        if let Some(s) = self.status {
            pairs.push(("status", s.as_str().to_owned()));
        }
        if let Some(l) = self.limit {
            pairs.push(("limit", l.to_string()));
        }
        if let Some(b) = &self.before {
            pairs.push(("before", b.clone()));
        }
        pairs
    }
}

/// A page of jobs, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<JobInfo>,
    /// The `before` of the next page; `None` on the last page.
    pub next: Option<String>,
}

/// One job of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    /// Its token.
    pub token: String,
    /// Its template.
    pub template: String,
    /// Its status when listed.
    pub status: JobStatus,
    /// What triggered it.
    pub source: TriggerSource,
    /// When it was created (RFC 3339).
    pub created: String,
    /// When it started (RFC 3339).
    pub started: Option<String>,
    /// When it ended (RFC 3339).
    pub finished: Option<String>,
}

/// One template of a listing: what an operator needs to trigger it. A key or a secret default
/// is never part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateInfo {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Whether it may be triggered over the API.
    pub allow_api: bool,
    /// Whether it has a key of its own.
    pub has_key: bool,
    /// The servers, roles and environments it runs on.
    pub targets: Targets,
    /// Its declared variables.
    pub variables: Vec<VariableInfo>,
}

/// Where a template runs: empty lists run it on holtd's own host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// Servers named directly.
    pub servers: Vec<String>,
    /// Roles whose servers are targeted.
    pub roles: Vec<String>,
    /// Environments whose servers are targeted.
    pub environments: Vec<String>,
}

/// A declared variable and its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableInfo {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Whether a trigger must give it.
    pub required: bool,
    /// Whether its value is secret.
    pub secret: bool,
    /// Its default; never given for a secret variable.
    pub default: Option<String>,
    /// The values allowed (any, when empty).
    pub allowed: Vec<String>,
    /// The pattern a value must match, as written in the template.
    pub pattern: Option<String>,
}

fn parse(text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|e| Error::Protocol(format!("bad JSON: {e}")))
}

fn missing(what: &str) -> Error {
    Error::Protocol(format!("the listing has no valid {what}"))
}

fn string(value: &Value, name: &str) -> Result<String, Error> {
    value[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| missing(name))
}

fn optional(value: &Value, name: &str) -> Option<String> {
    value[name].as_str().map(str::to_owned)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn parse_jobs(text: &str) -> Result<JobPage, Error> {
    let value = parse(text)?;
    let jobs = value["jobs"]
        .as_array()
        .ok_or_else(|| missing("jobs"))?
        .iter()
        .map(|job| {
            Ok(JobInfo {
                token: string(job, "token")?,
                template: string(job, "template")?,
                status: string(job, "status")?
                    .parse()
                    .map_err(|_| missing("status"))?,
                source: string(job, "source")?
                    .parse()
                    .map_err(|_| missing("source"))?,
                created: string(job, "created")?,
                started: optional(job, "started"),
                finished: optional(job, "finished"),
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(JobPage {
        jobs,
        next: optional(&value, "next"),
    })
}

pub(crate) fn parse_templates(text: &str) -> Result<Vec<TemplateInfo>, Error> {
    let value = parse(text)?;
    value["templates"]
        .as_array()
        .ok_or_else(|| missing("templates"))?
        .iter()
        .map(|t| {
            let variables = t["variables"]
                .as_array()
                .ok_or_else(|| missing("variables"))?
                .iter()
                .map(|v| {
                    Ok(VariableInfo {
                        name: string(v, "name")?,
                        description: optional(v, "description"),
                        required: v["required"].as_bool().unwrap_or(false),
                        secret: v["secret"].as_bool().unwrap_or(false),
                        default: optional(v, "default"),
                        allowed: strings(&v["allowed"]),
                        pattern: optional(v, "pattern"),
                    })
                })
                .collect::<Result<_, Error>>()?;
            Ok(TemplateInfo {
                name: string(t, "name")?,
                description: optional(t, "description"),
                allow_api: t["allow_api"].as_bool().unwrap_or(false),
                has_key: t["has_key"].as_bool().unwrap_or(false),
                targets: Targets {
                    servers: strings(&t["targets"]["servers"]),
                    roles: strings(&t["targets"]["roles"]),
                    environments: strings(&t["targets"]["environments"]),
                },
                variables,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_reads_back_typed() {
        let page = parse_jobs(
            r#"{"jobs":[{"token":"7","template":"t","status":"Warning","source":"ui",
            "created":"2026-01-01T00:00:00.000Z","started":null,"finished":null}],"next":"7"}"#,
        )
        .unwrap();
        assert_eq!(page.next.as_deref(), Some("7"));
        assert_eq!(page.jobs[0].status, JobStatus::Warning);
        assert_eq!(page.jobs[0].source, TriggerSource::Ui);
        assert_eq!(page.jobs[0].started, None);
        assert!(matches!(
            parse_jobs(r#"{"jobs":[{"token":"7"}]}"#),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(parse_jobs("<html>"), Err(Error::Protocol(_))));
    }

    #[test]
    fn a_query_names_only_what_it_sets() {
        let query = JobQuery {
            status: Some(JobStatus::Error),
            before: Some("9".into()),
            ..JobQuery::default()
        };
        assert_eq!(
            query.pairs(),
            [("status", "Error".to_owned()), ("before", "9".to_owned())]
        );
    }
}
