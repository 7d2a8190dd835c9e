use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::DomainError;

/// The variables the engine defines for every job, written as documented. Their values come
/// from the engine alone: a trigger, a template or a plan cannot set them, because a plan relies
/// on them (a work directory named after `$JobToken`, a branch on `$ExecutionState`) and a forged
/// value would turn that trust against it.
pub const BUILT_IN_VARIABLES: &[&str] = &[
    "JobToken",
    "ExecutionState",
    "ServerName",
    "RoleName",
    "EnvironmentName",
    "ScheduledFor",
];

/// Whether a scalar variable name (in any case) is one of [`BUILT_IN_VARIABLES`].
pub fn is_built_in_variable(name: &str) -> bool {
    BUILT_IN_VARIABLES
        .iter()
        .any(|b| b.eq_ignore_ascii_case(name))
}

/// A variable name: up to 50 letters, digits, `_` or `-`, starting with a letter.
///
/// Names compare case-insensitively, as in the plan language: `$TargetServer` and
/// `$targetserver` are one variable. The spelling first written is kept for display.
#[derive(Debug, Clone)]
pub struct VarName {
    written: String,
    key: String,
}

impl VarName {
    /// The longest name accepted.
    pub const MAX_LEN: usize = 50;

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// The case-folded form that identifies the variable.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether this is the name of a built-in variable, which only the engine sets.
    pub fn is_built_in(&self) -> bool {
        is_built_in_variable(&self.key)
    }
}

impl FromStr for VarName {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if valid {
            Ok(VarName {
                written: s.to_owned(),
                key: s.to_ascii_lowercase(),
            })
        } else {
            Err(DomainError::InvalidVariableName(s.to_owned()))
        }
    }
}

impl PartialEq for VarName {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for VarName {}

impl Hash for VarName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl PartialOrd for VarName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for VarName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

impl fmt::Display for VarName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

/// A set of scalar variables with case-insensitive names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables(BTreeMap<VarName, String>);

impl Variables {
    /// No variables.
    pub fn new() -> Self {
        Variables::default()
    }

    /// Sets a variable, replacing any value under the same name in any case. The spelling of
    /// the new name wins.
    pub fn insert(&mut self, name: VarName, value: String) {
        self.0.remove(&name);
        self.0.insert(name, value);
    }

    /// The value of a variable, by name in any case.
    pub fn get(&self, name: &str) -> Option<&str> {
        let key = name.parse::<VarName>().ok()?;
        self.0.get(&key).map(String::as_str)
    }

    /// Whether a variable of that name (in any case) is set.
    pub fn contains(&self, name: &VarName) -> bool {
        self.0.contains_key(name)
    }

    /// The variables, ordered by case-folded name.
    pub fn iter(&self) -> impl Iterator<Item = (&VarName, &str)> {
        self.0.iter().map(|(k, v)| (k, v.as_str()))
    }

    /// How many variables are set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no variable is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The template's defaults with the job's own values laid over them: a job-scoped value
    /// overrides a default of the same name in any case.
    pub fn overridden_by(&self, job: &Variables) -> Variables {
        let mut merged = self.clone();
        for (name, value) in job.iter() {
            merged.insert(name.clone(), value.to_owned());
        }
        merged
    }
}

impl FromIterator<(VarName, String)> for Variables {
    fn from_iter<I: IntoIterator<Item = (VarName, String)>>(iter: I) -> Self {
        let mut vars = Variables::new();
        for (name, value) in iter {
            vars.insert(name, value);
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = VarName> {
        "[a-cA-C][a-c_-]{0,3}".prop_map(|s| s.parse().unwrap())
    }

    fn vars() -> impl Strategy<Value = Variables> {
        prop::collection::vec((name(), "[a-z]{0,5}"), 0..8)
            .prop_map(|pairs| pairs.into_iter().collect())
    }

    #[test]
    fn names_are_case_insensitive() {
        let a: VarName = "TargetServer".parse().unwrap();
        let b: VarName = "targetSERVER".parse().unwrap();
        assert_eq!(a, b);
        let mut vars = Variables::new();
        vars.insert(a, "one".into());
        vars.insert(b, "two".into());
        assert_eq!(vars.len(), 1);
        assert_eq!(vars.get("TARGETSERVER"), Some("two"));
        assert_eq!(vars.iter().next().unwrap().0.as_str(), "targetSERVER");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "1abc", "_x", "a b", "a$", "é", &"a".repeat(51)] {
            assert!(bad.parse::<VarName>().is_err(), "{bad:?} was accepted");
        }
        assert!("a".repeat(50).parse::<VarName>().is_ok());
    }

    proptest! {
        #[test]
        fn job_values_override_defaults(defaults in vars(), job in vars()) {
            let merged = defaults.overridden_by(&job);
            for (name, value) in job.iter() {
                prop_assert_eq!(merged.get(name.as_str()), Some(value));
            }
            for (name, value) in defaults.iter() {
                if !job.contains(name) {
                    prop_assert_eq!(merged.get(name.as_str()), Some(value));
                }
            }
            let expected = defaults.iter().filter(|(n, _)| !job.contains(n)).count() + job.len();
            prop_assert_eq!(merged.len(), expected);
        }
    }
}
