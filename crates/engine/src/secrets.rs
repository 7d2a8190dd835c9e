//! Secret variable values at rest: sealed with XChaCha20-Poly1305 under a key kept in a file
//! beside the database, so that the database alone reveals no secret.
//!
//! A pending job needs its variables after a restart, so they are stored; the values of the
//! variables its template declares secret are stored as envelopes,
//! `holt-sealed:v1:<hex of a random 24-byte nonce, the ciphertext and its tag>`, with the
//! variable's (case-folded) name as associated data, so an envelope moved to another variable
//! does not open. The store sees only envelopes and stays unaware of them. Any value that
//! merely looks like an envelope is sealed too, whatever its variable, so every stored value
//! that starts with the prefix is an envelope and a caller cannot pass one off as another's.
//!
//! The idempotency fingerprint, which is stored with a key and covers every value of the
//! trigger, is kept only as a SHA-256 digest keyed with the same key.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, Generate, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use holt_domain::{JobStatus, JobToken, LogLevel, Template, Variables};
use holt_storage::JobStore;
use sha2::{Digest, Sha256};

use crate::EngineError;
use crate::clock::now_ms;
use crate::joblog::{JobLog, LogLimits};

/// What a sealed value starts with.
const PREFIX: &str = "holt-sealed:v1:";

/// The length of a key, in bytes.
const KEY_BYTES: usize = 32;

/// The length of a nonce, in bytes.
const NONCE_BYTES: usize = 24;

/// The line a pending job gets when its sealed values cannot be opened.
pub(crate) const UNDECRYPTABLE_MESSAGE: &str = "This job's secret variables cannot be decrypted with the current key (the secrets key file was replaced or lost since the job was triggered); the job cannot run.";

/// The key that seals secret values and keys the idempotency fingerprints.
#[derive(Clone)]
pub struct SecretsKey([u8; KEY_BYTES]);

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(..)")
    }
}

impl Default for SecretsKey {
    /// A new random key, which lives as long as the process: an engine without a key file can
    /// still run, but its pending jobs with secrets cannot run after a restart.
    fn default() -> Self {
        SecretsKey::generate()
    }
}

impl SecretsKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> SecretsKey {
        SecretsKey(<[u8; KEY_BYTES]>::generate())
    }

    /// Reads the key from `path`, or, when there is no such file, creates one with a new
    /// random key, readable and writable by its owner only (mode 0600). An existing file that
    /// other users may read or write is refused, as is one that does not hold a key.
    pub fn load_or_create(path: &Path) -> Result<SecretsKey, EngineError> {
        let fail = |reason: String| EngineError::SecretsKey {
            path: path.to_owned(),
            reason,
        };
        match std::fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(fail(format!(
                        "the secrets key file is open to other users (mode {mode:03o}); make it private with `chmod 600`"
                    )));
                }
                let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
                decode_hex(text.trim())
                    .and_then(|bytes| <[u8; KEY_BYTES]>::try_from(bytes).ok())
                    .map(SecretsKey)
                    .ok_or_else(|| {
                        fail(format!(
                            "the secrets key file must hold {} hexadecimal digits",
                            KEY_BYTES * 2
                        ))
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SecretsKey::generate();
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| fail(e.to_string()))?;
                file.write_all(format!("{}\n", encode_hex(&key.0)).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| fail(e.to_string()))?;
                Ok(key)
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }

    fn seal(&self, name: &str, value: &str) -> String {
        let nonce = XNonce::generate();
        let sealed = XChaCha20Poly1305::new(&self.0.into())
            .encrypt(
                &nonce,
                Payload {
                    msg: value.as_bytes(),
                    aad: &associated_data(name),
                },
            )
            .expect("a variable value is far below the cipher's message limit");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}", encode_hex(&bytes))
    }

    fn open(&self, name: &str, envelope: &str) -> Option<String> {
        let bytes = decode_hex(envelope.strip_prefix(PREFIX)?)?;
        if bytes.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce).ok()?;
        let plain = XChaCha20Poly1305::new(&self.0.into())
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: &associated_data(name),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }

    /// A digest of `text` keyed with this key, in hex: equal texts give equal digests, and the
    /// digest reveals nothing of the text to whoever lacks the key.
    pub(crate) fn digest(&self, text: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(b"holt-fingerprint:v1:");
        hash.update(self.0);
        hash.update(text.as_bytes());
        encode_hex(&hash.finalize())
    }
}

/// A new random key as text, 64 hexadecimal digits (256 bits from the system's generator): the
/// key holtd writes to a missing admin key file.
pub fn random_key_text() -> String {
    encode_hex(&<[u8; KEY_BYTES]>::generate())
}

/// Whether a stored value is a sealed envelope (every value with the prefix is one).
pub(crate) fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX)
}

fn associated_data(name: &str) -> Vec<u8> {
    let mut aad = PREFIX.as_bytes().to_vec();
    aad.extend_from_slice(name.to_lowercase().as_bytes());
    aad
}

/// `variables` as they are to be stored: the values of the variables `template` declares
/// secret, and any value that looks sealed, are sealed.
pub(crate) fn seal_variables(
    key: &SecretsKey,
    template: &Template,
    variables: &Variables,
) -> Variables {
    variables
        .iter()
        .map(|(name, value)| {
            let secret = template
                .variables
                .iter()
                .any(|decl| decl.secret && decl.name.key() == name.key());
            let stored = if secret || value.starts_with(PREFIX) {
                key.seal(name.key(), value)
            } else {
                value.to_owned()
            };
            (name.clone(), stored)
        })
        .collect()
}

/// Stored variables with every sealed value opened; `None` when one cannot be opened with
/// `key`.
pub(crate) fn open_variables(key: &SecretsKey, variables: &Variables) -> Option<Variables> {
    variables
        .iter()
        .map(|(name, value)| {
            let value = if value.starts_with(PREFIX) {
                key.open(name.key(), value)?
            } else {
                value.to_owned()
            };
            Some((name.clone(), value))
        })
        .collect()
}

/// Ends a pending job whose sealed values cannot be opened: one `ERROR` line saying why, and
/// status `Error`. Other jobs are not affected.
pub(crate) async fn fail_undecryptable(
    store: &Arc<dyn JobStore>,
    token: JobToken,
    limits: LogLimits,
) -> Result<(), EngineError> {
    tracing::error!(job = %token, "a pending job's secret variables cannot be decrypted with the current secrets key; the job fails");
    let log = JobLog::new(token, store.clone(), 0, Vec::new(), limits, None);
    log.write_final(LogLevel::Error, UNDECRYPTABLE_MESSAGE)
        .await?;
    store.set_status(token, JobStatus::Error, now_ms()).await?;
    Ok(())
}

fn encode_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests;
