use std::fmt;
use std::str::FromStr;

use crate::DomainError;

/// A job token: what a trigger returns and every other call names a job by.
///
/// Tokens are positive integers today, but clients treat them as opaque strings, so the text
/// form is canonical: decimal digits without sign or leading zeros. Parsing accepts exactly the
/// texts that `Display` produces, which keeps `token.to_string().parse() == token` and makes
/// `007` an invalid token rather than a second name for job 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobToken(u64);

impl JobToken {
    /// A token for a job id; ids start at 1.
    pub fn new(id: u64) -> Option<Self> {
        (id > 0 && id <= i64::MAX as u64).then_some(JobToken(id))
    }

    /// The numeric id behind the token.
    pub fn id(self) -> u64 {
        self.0
    }
}

impl FromStr for JobToken {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let canonical = !s.is_empty()
            && s.len() <= 19
            && s.bytes().all(|b| b.is_ascii_digit())
            && !s.starts_with('0');
        canonical
            .then(|| s.parse::<u64>().ok())
            .flatten()
            .and_then(JobToken::new)
            .ok_or_else(|| DomainError::InvalidToken(s.to_owned()))
    }
}

impl fmt::Display for JobToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn text_round_trip(id in 1u64..=i64::MAX as u64) {
            let token = JobToken::new(id).unwrap();
            prop_assert_eq!(token.to_string().parse::<JobToken>().unwrap(), token);
        }

        #[test]
        fn parse_accepts_only_canonical_text(s in "\\PC{0,24}") {
            if let Ok(token) = s.parse::<JobToken>() {
                prop_assert_eq!(token.to_string(), s);
            }
        }
    }

    #[test]
    fn rejects_non_canonical() {
        for bad in [
            "",
            "0",
            "007",
            "-1",
            "+1",
            "1.0",
            " 1",
            "abc",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<JobToken>().is_err(), "{bad:?} was accepted");
        }
    }
}
