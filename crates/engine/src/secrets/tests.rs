use std::os::unix::fs::PermissionsExt;

use holt_domain::{Template, Variables};

use super::{PREFIX, SecretsKey, open_variables, seal_variables};

fn template() -> Template {
    let toml = "plan = ''\n[variables.Password]\nsecret = true\n[variables.Name]\n";
    Template::from_toml("t".parse().unwrap(), toml).unwrap()
}

fn vars(pairs: &[(&str, &str)]) -> Variables {
    pairs
        .iter()
        .map(|(k, v)| (k.parse().unwrap(), (*v).to_owned()))
        .collect()
}

#[test]
fn secret_values_are_sealed_and_open_with_the_same_key_only() {
    let key = SecretsKey::generate();
    let given = vars(&[("password", "hunter2"), ("Name", "plain")]);
    let stored = seal_variables(&key, &template(), &given);
    let sealed = stored.get("Password").unwrap();
    assert!(sealed.starts_with(PREFIX) && !sealed.contains("hunter2"));
    assert_eq!(stored.get("Name"), Some("plain"));
    // A fresh nonce each time: the same value never seals the same way twice.
    assert_ne!(
        seal_variables(&key, &template(), &given).get("Password"),
        Some(sealed)
    );
    assert_eq!(open_variables(&key, &stored), Some(given));
    assert_eq!(open_variables(&SecretsKey::generate(), &stored), None);
}

#[test]
fn an_envelope_opens_only_for_its_own_variable() {
    let key = SecretsKey::generate();
    let stored = seal_variables(&key, &template(), &vars(&[("Password", "hunter2")]));
    let moved = vars(&[("Name", stored.get("Password").unwrap())]);
    assert_eq!(open_variables(&key, &moved), None);
}

#[test]
fn a_value_that_looks_sealed_is_sealed_and_comes_back_as_given() {
    let key = SecretsKey::generate();
    let other = seal_variables(&key, &template(), &vars(&[("Password", "x")]));
    let lookalike = other.get("Password").unwrap().to_owned();
    let given = vars(&[("Name", &lookalike)]);
    let stored = seal_variables(&key, &template(), &given);
    assert_ne!(stored.get("Name"), Some(lookalike.as_str()));
    assert_eq!(open_variables(&key, &stored), Some(given));
}

#[test]
fn fingerprints_are_keyed_digests() {
    let key = SecretsKey::generate();
    let digest = key.digest("5:t;8:password=7:hunter2");
    assert_eq!(digest.len(), 64);
    assert!(!digest.contains("hunter2"));
    assert_eq!(digest, key.digest("5:t;8:password=7:hunter2"));
    assert_ne!(digest, key.digest("5:t;8:password=7:hunter3"));
    assert_ne!(
        digest,
        SecretsKey::generate().digest("5:t;8:password=7:hunter2")
    );
}

#[test]
fn the_key_file_is_created_private_and_an_open_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("holt.secrets.key");
    let key = SecretsKey::load_or_create(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = SecretsKey::load_or_create(&path).unwrap();
    assert_eq!(key.digest("x"), again.digest("x"));

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = SecretsKey::load_or_create(&path).unwrap_err().to_string();
    assert!(
        refused.contains("open to other users (mode 644)"),
        "{refused}"
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, "not a key\n").unwrap();
    let refused = SecretsKey::load_or_create(&path).unwrap_err().to_string();
    assert!(
        refused.contains("must hold 64 hexadecimal digits"),
        "{refused}"
    );
}
