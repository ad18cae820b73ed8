//! The base64 forms of hashes and bytes in the server's answers, and the consistency answer
//! (the answers that carry the directory's proofs are `kt_protocol::api`'s).
//!
//! Required fields must be present with the documented types; fields the contract does not
//! name are ignored (nothing in them is used). Nothing parsed here is trusted: every value is
//! checked by the verification functions of this crate before it is believed.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::Hash;
use serde::Deserialize;
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
