use std::fmt;
use std::str::FromStr;

use crate::DomainError;

/// A job's status, exactly the five words of the Otter API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Accepted and waiting for a slot to run.
    Pending,
    /// Running now.
    Executing,
    /// Ended in the normal execution state.
    Succeeded,
    /// Ended in the warning execution state.
    Warning,
    /// Ended in the failing execution state, was cancelled, or was interrupted.
    Error,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Pending,
        JobStatus::Executing,
        JobStatus::Succeeded,
        JobStatus::Warning,
        JobStatus::Error,
    ];

    /// The word the API answers with.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "Pending",
            JobStatus::Executing => "Executing",
            JobStatus::Succeeded => "Succeeded",
            JobStatus::Warning => "Warning",
            JobStatus::Error => "Error",
        }
    }

    /// Whether the job has ended; a terminal status never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Warning | JobStatus::Error
        )
    }

    /// The stable integer a store keeps for this status.
    pub fn code(self) -> i64 {
        match self {
            JobStatus::Pending => 0,
            JobStatus::Executing => 1,
            JobStatus::Succeeded => 2,
            JobStatus::Warning => 3,
            JobStatus::Error => 4,
        }
    }

    /// The status a stored code stands for.
    pub fn from_code(code: i64) -> Result<Self, DomainError> {
        JobStatus::ALL
            .into_iter()
            .find(|s| s.code() == code)
            .ok_or_else(|| DomainError::InvalidStatus(code.to_string()))
    }
}

impl FromStr for JobStatus {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| DomainError::InvalidStatus(s.to_owned()))
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_codes_round_trip() {
        let words: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            words,
            ["Pending", "Executing", "Succeeded", "Warning", "Error"]
        );
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>().unwrap(), status);
            assert_eq!(JobStatus::from_code(status.code()).unwrap(), status);
        }
        assert!("succeeded".parse::<JobStatus>().is_err());
        assert!(JobStatus::from_code(5).is_err());
    }

    #[test]
    fn only_ended_statuses_are_terminal() {
        let terminal: Vec<JobStatus> = JobStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [JobStatus::Succeeded, JobStatus::Warning, JobStatus::Error]
        );
    }
}
