//! Reading holtd's credentials file: named entries of TOML, each naming a private key file.

use std::path::Path;

use holt_domain::Credentials;

use crate::templates::LoadError;

/// Loads and checks a credentials file: its TOML, and that every private key file it names is a
/// readable file that only its owner can read (the SSH client refuses any other).
pub fn load_file(path: &Path) -> Result<Credentials, LoadError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        problems: vec![format!("{shown}: {e}")],
    })?;
    let credentials = Credentials::from_toml(&text).map_err(|problems| LoadError {
        problems: problems
            .into_iter()
            .map(|p| format!("{shown}: {p}"))
            .collect(),
    })?;
    let mut problems = Vec::new();
    for (name, entry) in credentials.iter() {
        let key = entry.private_key_file.display();
        match std::fs::metadata(&entry.private_key_file) {
            Err(e) => problems.push(format!("{shown}: [{name}]: private key {key}: {e}")),
            Ok(meta) if !meta.is_file() => {
                problems.push(format!(
                    "{shown}: [{name}]: private key {key} is not a file"
                ));
            }
            Ok(meta) => {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o077 != 0 {
                    problems.push(format!(
                        "{shown}: [{name}]: private key {key} can be read by others than its owner (chmod 600 it)"
                    ));
                } else if let Err(e) = std::fs::File::open(&entry.private_key_file) {
                    problems.push(format!("{shown}: [{name}]: private key {key}: {e}"));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(credentials)
    } else {
        Err(LoadError { problems })
    }
}
