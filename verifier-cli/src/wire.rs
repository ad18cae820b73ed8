//! The tool's own JSON objects: problem documents, proof files. The requests it sends and
//! the server's answers are `kt_protocol::api`'s.

use kt_log::Hash;
use serde::Deserialize;

use crate::error::Error;
pub(crate) use kt_protocol::api::{CredentialAnswer, HistoryAnswer, IdentityProof};
pub(crate) use kt_verify::wire::{encode_hashes, ConsistencyAnswer};

/// An RFC 9457 problem document.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Problem {
    /// `https://kt-as.dev/problems/<code>`.
    #[serde(rename = "type", default)]
    pub(crate) kind: String,
    /// Short summary.
    #[serde(default)]
    pub(crate) title: String,
    /// Details.
    #[serde(default)]
    pub(crate) detail: Option<String>,
}

/// Decodes base64 hashes, failing verification (exit 1) on any bad element.
pub(crate) fn decode_hashes(items: &[String], what: &'static str) -> Result<Vec<Hash>, Error> {
    kt_verify::wire::decode_hashes(items, what).map_err(Error::verify)
}

/// A proof file: a JSON array of base64 hashes, or an object with a `proof` array and the
/// index/size (`{"index","size","proof"}`) or sizes (`{"from","to","proof"}`) it is for.
#[derive(Clone, Debug, Default)]
pub(crate) struct ProofFile {
    /// The hashes.
    pub(crate) proof: Vec<Hash>,
    /// `index` of an inclusion proof object.
    pub(crate) index: Option<u64>,
    /// `size` of an inclusion proof object.
    pub(crate) size: Option<u64>,
    /// `from` of a consistency proof object.
    pub(crate) from: Option<u64>,
    /// `to` of a consistency proof object.
    pub(crate) to: Option<u64>,
}

/// Parses a proof file (see [`ProofFile`]); malformed content fails verification (exit 1).
pub(crate) fn parse_proof_file(bytes: &[u8]) -> Result<ProofFile, Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Object {
        proof: Vec<String>,
        index: Option<u64>,
        size: Option<u64>,
        from: Option<u64>,
        to: Option<u64>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        List(Vec<String>),
        Object(Object),
    }
    let shape: Shape = serde_json::from_slice(bytes).map_err(|_| {
        Error::verify(
            "proof file is not a JSON array of base64 hashes nor an object with a \"proof\" array",
        )
    })?;
    Ok(match shape {
        Shape::List(items) => ProofFile {
            proof: decode_hashes(&items, "proof")?,
            ..ProofFile::default()
        },
        Shape::Object(o) => ProofFile {
            proof: decode_hashes(&o.proof, "proof")?,
            index: o.index,
            size: o.size,
            from: o.from,
            to: o.to,
        },
    })
}
