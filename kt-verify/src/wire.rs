//! The server's answers that carry something to verify (docs/api.md), parsed with strict
//! types, and the base64 forms of hashes and bytes in them.
//!
//! Required fields must be present with the documented types; fields the contract does not
//! name are ignored (nothing in them is used). Nothing parsed here is trusted: every value is
//! checked by the verification functions of this crate before it is believed.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::Hash;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A base64 value of an answer that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodingError {
    /// Element `index` of the hash list `what` is not base64 of 32 bytes.
    #[error("{what}[{index}] is not a base64 32-byte hash")]
    Hash {
        /// Which list.
        what: &'static str,
        /// Which element.
        index: usize,
    },
    /// The field `what` is not standard base64.
    #[error("{what} is not standard base64")]
    Base64 {
        /// Which field.
        what: &'static str,
    },
}

/// `Credential`, the answer of `POST /v1/credentials` (and of rotation, with `replaces`).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Credential {
    /// The identity bound.
    pub identity: String,
    /// Certificate serial, lowercase hex.
    pub serial: String,
    /// The certificate, PEM.
    pub certificate: String,
    /// CA chain, PEM (the verifier trusts its own CA, not this).
    #[serde(default)]
    pub chain: Vec<String>,
    /// Validity start, Unix seconds.
    pub not_before: u64,
    /// Validity end, Unix seconds.
    pub not_after: u64,
    /// The Ed25519 public key, base64.
    pub public_key: String,
    /// The logged entry's index.
    pub log_index: u64,
    /// The entry's exact bytes, base64.
    pub entry: String,
    /// Inclusion proof of `entry` at `log_index` in `checkpoint`, base64 hashes.
    pub inclusion_proof: Vec<String>,
    /// Signed checkpoint note.
    pub checkpoint: String,
    /// Rotation only: the serial replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// One credential of `GET /v1/identities/{identity}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct IdentityCredential {
    /// Serial, lowercase hex.
    pub serial: String,
    /// Ed25519 key, base64.
    pub public_key: String,
    /// Validity start.
    pub not_before: u64,
    /// Validity end.
    pub not_after: u64,
    /// Certificate PEM.
    pub certificate: String,
    /// Entry index.
    pub log_index: u64,
    /// Entry bytes, base64.
    pub entry: String,
    /// Inclusion proof against the answer's checkpoint.
    pub inclusion_proof: Vec<String>,
}

/// `GET /v1/identities/{identity}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct IdentityAnswer {
    /// The identity.
    pub identity: String,
    /// `active` or `revoked`.
    pub status: String,
    /// Signed checkpoint every proof is against.
    pub checkpoint: String,
    /// Current credentials.
    pub credentials: Vec<IdentityCredential>,
}

/// `GET /v1/log/proof/consistency`.
#[derive(Clone, Debug, Deserialize)]
pub struct ConsistencyAnswer {
    /// Older size.
    pub from: u64,
    /// Newer size.
    pub to: u64,
    /// Proof hashes, base64.
    pub proof: Vec<String>,
}

/// Decodes base64 hashes of a proof; any bad element fails the whole proof.
pub fn decode_hashes(items: &[String], what: &'static str) -> Result<Vec<Hash>, EncodingError> {
    items
        .iter()
        .enumerate()
        .map(|(index, s)| {
            B64.decode(s)
                .ok()
                .and_then(|b| Hash::from_slice(&b))
                .ok_or(EncodingError::Hash { what, index })
        })
        .collect()
}

/// Base64 of hashes, for output and evidence.
pub fn encode_hashes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| B64.encode(h.0)).collect()
}

/// Decodes standard base64, naming `what` on failure.
pub fn decode_b64(text: &str, what: &'static str) -> Result<Vec<u8>, EncodingError> {
    B64.decode(text).map_err(|_| EncodingError::Base64 { what })
}
