//! Enrollment and admin tokens: random bearer secrets that the AS stores only as SHA-256.
//!
//! Guarantees: a token is 32 bytes from the operating system's random source (base64url, 43
//! characters), so its hash identifies it without revealing it. The AS keeps only hashes;
//! admin tokens are checked by comparing hashes in constant time ([`AdminTokens::check`]), and
//! enrollment tokens are looked up by their hash (the lookup key is public once used: it is the
//! `enrollment` field of the issuance entry, and useless without the token).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::encoding::from_hex;

/// Makes a new random token.
pub fn generate_token() -> std::io::Result<String> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(raw))
}

/// SHA-256 of the token's ASCII bytes.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// One admin token as stored: a label (named in the log entries of its actions) and a hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredAdminToken {
    /// Who holds it, e.g. `admin`.
    pub label: String,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
}

/// The admin tokens the server accepts.
#[derive(Clone, Debug, Default)]
pub struct AdminTokens {
    tokens: Vec<(String, [u8; 32])>,
}

impl AdminTokens {
    /// From the stored list; entries whose hash is not 32 bytes of hex are skipped.
    pub fn new(stored: &[StoredAdminToken]) -> AdminTokens {
        let tokens = stored
            .iter()
            .filter_map(|t| {
                let hash: [u8; 32] = from_hex(&t.sha256, 32)?.try_into().ok()?;
                Some((t.label.clone(), hash))
            })
            .collect();
        AdminTokens { tokens }
    }

    /// The label of the admin token `presented`, if it is one. Every stored hash is compared,
    /// in constant time, whatever matches.
    pub fn check(&self, presented: &str) -> Option<&str> {
        let hash = token_hash(presented);
        let mut found = None;
        for (label, stored) in &self.tokens {
            if bool::from(stored.ct_eq(&hash)) {
                found = Some(label.as_str());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::hex;

    #[test]
    fn tokens_are_random_and_checked_by_hash() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        let tokens = AdminTokens::new(&[StoredAdminToken {
            label: "admin".into(),
            sha256: hex(&token_hash(&a)),
        }]);
        assert_eq!(tokens.check(&a), Some("admin"));
        assert_eq!(tokens.check(&b), None);
        assert_eq!(tokens.check(""), None);
    }
}
