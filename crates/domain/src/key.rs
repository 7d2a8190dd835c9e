use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::DomainError;

/// A template's API key, held only as its SHA-256 digest.
///
/// A candidate key is hashed and the digests compared in constant time, so a wrong key costs
/// the same as a right one and the comparison leaks nothing about how much of it matched.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey([u8; 32]);

impl ApiKey {
    /// The key for a plain-text secret; the text itself is not kept.
    pub fn from_plain(key: &str) -> Self {
        ApiKey(Sha256::digest(key.as_bytes()).into())
    }

    /// The key for a hex SHA-256 digest, as written in `api_key_sha256`.
    pub fn from_sha256_hex(hex: &str) -> Result<Self, DomainError> {
        let hex = hex.trim().as_bytes();
        if hex.len() != 64 {
            return Err(DomainError::InvalidKeyHash);
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.chunks(2)) {
            let text = std::str::from_utf8(pair).map_err(|_| DomainError::InvalidKeyHash)?;
            *byte = u8::from_str_radix(text, 16).map_err(|_| DomainError::InvalidKeyHash)?;
        }
        Ok(ApiKey(digest))
    }

    /// Whether `candidate` is this key, compared in constant time.
    pub fn verify(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        digest.ct_eq(&self.0).into()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The digest of a short key can be brute-forced, so even it stays out of debug output.
        f.write_str("ApiKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_hashed_keys_verify() {
        let plain = ApiKey::from_plain("secure123");
        assert!(plain.verify("secure123"));
        assert!(!plain.verify("secure124"));
        assert!(!plain.verify(""));
        let real = format!("{:x}", Sha256::digest(b"secure123"));
        let hashed = ApiKey::from_sha256_hex(&real.to_uppercase()).unwrap();
        assert_eq!(hashed, plain);
        assert!(hashed.verify("secure123"));
        assert_eq!(format!("{hashed:?}"), "ApiKey(<redacted>)");
    }

    #[test]
    fn rejects_malformed_hashes() {
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(63), &"é".repeat(32)] {
            assert_eq!(
                ApiKey::from_sha256_hex(bad),
                Err(DomainError::InvalidKeyHash)
            );
        }
    }
}
