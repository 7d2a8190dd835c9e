use std::fmt;
use std::str::FromStr;

use crate::DomainError;

/// The name of a job template: the stem of its file and the `template` parameter of a trigger.
///
/// Names are 1 to 100 characters from `[A-Za-z0-9_.-]`, starting with a letter or digit, so a
/// name is always a safe file stem and never a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateName(String);

impl TemplateName {
    /// The longest name accepted.
    pub const MAX_LEN: usize = 100;

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TemplateName {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if valid {
            Ok(TemplateName(s.to_owned()))
        } else {
            Err(DomainError::InvalidTemplateName(s.to_owned()))
        }
    }
}

impl fmt::Display for TemplateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        for ok in ["hdars", "ablast", "Deploy-1.2_x", "9lives"] {
            assert_eq!(ok.parse::<TemplateName>().unwrap().as_str(), ok);
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "../etc",
            "a b",
            "é",
            &"x".repeat(101),
        ] {
            assert!(bad.parse::<TemplateName>().is_err(), "{bad:?} was accepted");
        }
    }
}
