//! A job's outputs: the final values of the variables its template declares as outputs, taken
//! when the plan has ended and recorded with the job's terminal status.

use holt_domain::{JobStatus, JobToken, LogLevel, Outputs, ScopePath, Template};

use crate::EngineError;
use crate::engine::Engine;
use crate::interp::value::{Globals, final_value};
use crate::joblog::JobLog;

/// The outputs of a run whose plan ran once per entry of `runs` (once per targeted server, in
/// name order; once for a plain plan): each declared output's final value, from the last run
/// that set it. Values are masked like log lines, so a secret copied into an output is `***`;
/// a value longer than [`Outputs::MAX_VALUE_BYTES`] is left out, with a warning in the log.
pub(crate) async fn collect(
    template: Option<&Template>,
    runs: &[Globals],
    log: &JobLog,
) -> Result<Outputs, EngineError> {
    let mut outputs = Outputs::new();
    let Some(template) = template else {
        return Ok(outputs);
    };
    for name in &template.outputs {
        let Some(value) = runs
            .iter()
            .rev()
            .find_map(|globals| final_value(globals, name.key()))
        else {
            continue;
        };
        let value = log.masked(&value);
        if value.len() > Outputs::MAX_VALUE_BYTES {
            let line = format!(
                "Output {name} is longer than {} bytes; it is not recorded.",
                Outputs::MAX_VALUE_BYTES
            );
            log.write(LogLevel::Warn, &ScopePath::root(), &line).await?;
            continue;
        }
        outputs.insert(name.clone(), value);
    }
    Ok(outputs)
}

impl Engine {
    /// A job's outputs: those recorded with its end (none before it ends); `None` for an
    /// unknown job.
    pub async fn outputs(&self, token: JobToken) -> Result<Option<Outputs>, EngineError> {
        Ok(self.inner.store.outputs(token).await?)
    }

    /// A job's status as the store has committed it, which on a cluster may be terminal a
    /// moment before this node's own view of a job it runs. `None` for an unknown job.
    pub async fn committed_status(
        &self,
        token: JobToken,
    ) -> Result<Option<JobStatus>, EngineError> {
        Ok(self.inner.store.status(token).await?)
    }
}
