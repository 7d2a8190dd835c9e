//! What operators ask of one job beyond Otter's API: the job as it was triggered (its
//! variables, secrets hidden) and a re-run of it with the same template and variables.

use std::sync::Arc;

use holt_domain::{JobSummary, JobToken, Template, TriggerSource, VarName};

use crate::{Engine, EngineError, Triggered};

/// A job as an operator sees it: never a secret's value.
#[derive(Debug, Clone)]
pub struct JobView {
    /// What a listing shows of it, its status as of now.
    pub job: JobSummary,
    /// Its variables in name order; `None` for a secret's value.
    pub variables: Vec<(VarName, Option<String>)>,
}

impl Engine {
    /// A job with its variables, secret values left out: those stored sealed and those its
    /// template, as loaded now, declares secret. `None` for an unknown job.
    pub async fn job_view(&self, token: JobToken) -> Result<Option<JobView>, EngineError> {
        let Some(record) = self.inner.store.job(token).await? else {
            return Ok(None);
        };
        let template = self.templates().get(&record.template).cloned();
        let status = match self.inner.queue.summary(token) {
            Some((_, status)) => status,
            None => record.status,
        };
        let mut variables: Vec<(VarName, Option<String>)> = record
            .variables
            .iter()
            .map(|(name, value)| {
                let secret = crate::secrets::is_sealed(value)
                    || template
                        .as_deref()
                        .is_some_and(|t| declared_secret(t, name));
                (name.clone(), (!secret).then(|| value.to_owned()))
            })
            .collect();
        variables.sort_by(|(a, _), (b, _)| a.key().cmp(b.key()));
        Ok(Some(JobView {
            job: JobSummary {
                token,
                template: record.template,
                status,
                source: record.source,
                created_ms: record.created_ms,
                started_ms: record.started_ms,
                finished_ms: record.finished_ms,
            },
            variables,
        }))
    }

    /// Triggers the template of job `token`, as it is loaded now, with the variables that job
    /// ran with (secrets opened with the secrets key), recording `source`. `None` for an
    /// unknown job; a conflict when its template is no longer loaded, its secrets cannot be
    /// opened or its variables no longer pass the template's rules.
    pub async fn rerun(
        &self,
        token: JobToken,
        source: TriggerSource,
    ) -> Result<Option<Triggered>, EngineError> {
        let Some(record) = self.inner.store.job(token).await? else {
            return Ok(None);
        };
        let template: Arc<Template> =
            self.templates()
                .get(&record.template)
                .cloned()
                .ok_or_else(|| {
                    EngineError::Conflict(format!(
                        "job {token}'s template {} is no longer loaded",
                        record.template
                    ))
                })?;
        let variables = crate::secrets::open_variables(
            &self.inner.config.secrets_key,
            &record.variables,
        )
        .ok_or_else(|| {
            EngineError::Conflict(format!(
                "job {token}'s secret variables cannot be opened with the current secrets key"
            ))
        })?;
        template.check_variables(&variables).map_err(|reason| {
            EngineError::Conflict(format!(
                "job {token}'s variables no longer pass template {}: {reason}",
                template.name
            ))
        })?;
        self.trigger_from(&template, &variables, None, source)
            .await
            .map(Some)
    }
}

fn declared_secret(template: &Template, name: &VarName) -> bool {
    template
        .variables
        .iter()
        .any(|decl| decl.secret && decl.name.key() == name.key())
}
