use std::fmt;
use std::str::FromStr;

use crate::{DomainError, JobStatus, JobToken, TemplateName};

/// Which jobs a listing (holt-storage's `JobStore::list_jobs`) returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs of this template.
    pub template: Option<TemplateName>,
    /// Only jobs with this status.
    pub status: Option<JobStatus>,
    /// Only jobs older than this one (with a smaller token): the last token of the previous
    /// page. The job need not exist any more.
    pub before: Option<JobToken>,
    /// At most this many jobs.
    pub limit: usize,
}

/// What a listing shows of a job: everything but its plan, variables and log, so that a page
/// of many jobs stays small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    /// Its token.
    pub token: JobToken,
    /// The template it was created from.
    pub template: TemplateName,
    /// Its status when read.
    pub status: JobStatus,
    /// What triggered it.
    pub source: TriggerSource,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When it started executing.
    pub started_ms: Option<i64>,
    /// When it ended.
    pub finished_ms: Option<i64>,
}

/// What made a job: a call of the API, the web UI, or a schedule. Stored with every job and
/// shown in listings, so that an operator can tell a person's run from an automatic one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TriggerSource {
    /// A call of the trigger endpoint (the CLI and the client crate included). Jobs recorded
    /// before the source was kept read as this.
    #[default]
    Api,
    /// The web UI's trigger form.
    Ui,
    /// A schedule.
    Schedule,
}

impl TriggerSource {
    /// Every source.
    pub const ALL: [TriggerSource; 3] = [
        TriggerSource::Api,
        TriggerSource::Ui,
        TriggerSource::Schedule,
    ];

    /// The word listings show.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerSource::Api => "api",
            TriggerSource::Ui => "ui",
            TriggerSource::Schedule => "schedule",
        }
    }

    /// The stable integer a store keeps for this source; 0 is the default of existing rows.
    pub fn code(self) -> i64 {
        match self {
            TriggerSource::Api => 0,
            TriggerSource::Ui => 1,
            TriggerSource::Schedule => 2,
        }
    }

    /// The source a stored code stands for.
    pub fn from_code(code: i64) -> Result<Self, DomainError> {
        TriggerSource::ALL
            .into_iter()
            .find(|s| s.code() == code)
            .ok_or_else(|| DomainError::InvalidSource(code.to_string()))
    }
}

impl FromStr for TriggerSource {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TriggerSource::ALL
            .into_iter()
            .find(|source| source.as_str() == s)
            .ok_or_else(|| DomainError::InvalidSource(s.to_owned()))
    }
}

impl fmt::Display for TriggerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_codes_round_trip() {
        let words: Vec<&str> = TriggerSource::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(words, ["api", "ui", "schedule"]);
        for source in TriggerSource::ALL {
            assert_eq!(source.as_str().parse::<TriggerSource>().unwrap(), source);
            assert_eq!(TriggerSource::from_code(source.code()).unwrap(), source);
        }
        assert_eq!(TriggerSource::default().code(), 0);
        assert!("API".parse::<TriggerSource>().is_err());
        assert!(TriggerSource::from_code(3).is_err());
    }
}
