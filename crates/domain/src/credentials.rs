//! Credentials for reaching servers: named entries of holtd's credentials file (TOML), kept out
//! of the database. Only the path of a private key is held, never the key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// One named entry: how to log in to an `ssh` server.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// The kind of entry; Holt knows `ssh`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The user to log in as.
    pub user: String,
    /// The private key file the SSH client uses.
    pub private_key_file: PathBuf,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("kind", &self.kind)
            .field("user", &self.user)
            .field("private_key_file", &self.private_key_file)
            .finish()
    }
}

/// Every entry of a credentials file, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    by_name: BTreeMap<String, Credential>,
}

impl Credentials {
    /// Parses a credentials file's text; every problem is reported, one per line.
    pub fn from_toml(text: &str) -> Result<Credentials, Vec<String>> {
        let by_name: BTreeMap<String, Credential> =
            toml::from_str(text).map_err(|e| vec![e.to_string().trim().replace('\n', " ")])?;
        let mut problems = Vec::new();
        for (name, entry) in &by_name {
            if entry.kind != "ssh" {
                problems.push(format!(
                    "[{name}]: type {:?} is not supported: Holt supports ssh",
                    entry.kind
                ));
            }
            // The user reaches the SSH client's command line: it must read as a user name,
            // never as an option or more than one word.
            let valid_user = !entry.user.is_empty()
                && entry.user.len() <= 64
                && !entry.user.starts_with('-')
                && entry
                    .user
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid_user {
                problems.push(format!(
                    "[{name}]: invalid user {:?}: use letters, digits, '.', '_' or '-'",
                    entry.user
                ));
            }
            if !entry.private_key_file.is_absolute() {
                problems.push(format!(
                    "[{name}]: private_key_file must be an absolute path"
                ));
            }
        }
        if problems.is_empty() {
            Ok(Credentials { by_name })
        } else {
            Err(problems)
        }
    }

    /// The entry of that name.
    pub fn get(&self, name: &str) -> Option<&Credential> {
        self.by_name.get(name)
    }

    /// The entries, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Credential)> {
        self.by_name
            .iter()
            .map(|(name, entry)| (name.as_str(), entry))
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_checked() {
        let ok = Credentials::from_toml(
            "[deploy]\ntype = \"ssh\"\nuser = \"deploy\"\nprivate_key_file = \"/etc/holt/id\"\n",
        )
        .unwrap();
        assert_eq!(ok.get("deploy").unwrap().user, "deploy");
        let problems = Credentials::from_toml(
            "[a]\ntype = \"winrm\"\nuser = \"-oProxyCommand=x\"\nprivate_key_file = \"rel\"\n",
        )
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            Credentials::from_toml(
                "[a]\ntype=\"ssh\"\nuser=\"u\"\nprivate_key_file=\"/k\"\npassword=\"x\"\n"
            )
            .is_err()
        );
    }
}
