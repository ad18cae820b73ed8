//! The server's JSON objects (docs/api.md), parsed with strict types.
//!
//! Required fields must be present with the documented types; fields the contract does not
//! name are ignored (nothing in them is used). Nothing parsed here is trusted: every value is
//! checked by the verification functions before it is believed.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::Hash;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// `Credential`, the answer of `POST /v1/credentials` (and of rotation, with `replaces`).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct Credential {
    /// The identity bound.
    pub(crate) identity: String,
    /// Certificate serial, lowercase hex.
    pub(crate) serial: String,
    /// The certificate, PEM.
    pub(crate) certificate: String,
    /// CA chain, PEM (the tool trusts its own `--ca`, not this).
    #[serde(default)]
    pub(crate) chain: Vec<String>,
    /// Validity start, Unix seconds.
    pub(crate) not_before: u64,
    /// Validity end, Unix seconds.
    pub(crate) not_after: u64,
    /// The Ed25519 public key, base64.
    pub(crate) public_key: String,
    /// The logged entry's index.
    pub(crate) log_index: u64,
    /// The entry's exact bytes, base64.
    pub(crate) entry: String,
    /// Inclusion proof of `entry` at `log_index` in `checkpoint`, base64 hashes.
    pub(crate) inclusion_proof: Vec<String>,
    /// Signed checkpoint note.
    pub(crate) checkpoint: String,
    /// Rotation only: the serial replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) replaces: Option<String>,
}

/// One credential of `GET /v1/identities/{identity}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct IdentityCredential {
    /// Serial, lowercase hex.
    pub(crate) serial: String,
    /// Ed25519 key, base64.
    pub(crate) public_key: String,
    /// Validity start.
    pub(crate) not_before: u64,
    /// Validity end.
    pub(crate) not_after: u64,
    /// Certificate PEM.
    pub(crate) certificate: String,
    /// Entry index.
    pub(crate) log_index: u64,
    /// Entry bytes, base64.
    pub(crate) entry: String,
    /// Inclusion proof against the answer's checkpoint.
    pub(crate) inclusion_proof: Vec<String>,
}

/// `GET /v1/identities/{identity}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct IdentityAnswer {
    /// The identity.
    pub(crate) identity: String,
    /// `active` or `revoked`.
    pub(crate) status: String,
    /// Signed checkpoint every proof is against.
    pub(crate) checkpoint: String,
    /// Current credentials.
    pub(crate) credentials: Vec<IdentityCredential>,
}

/// `GET /v1/log/proof/consistency`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ConsistencyAnswer {
    /// Older size.
    pub(crate) from: u64,
    /// Newer size.
    pub(crate) to: u64,
    /// Proof hashes, base64.
    pub(crate) proof: Vec<String>,
}

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

/// Request of `POST /v1/credentials`, signature form.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct CredentialRequest<'a> {
    /// Identity to enroll.
    pub(crate) identity: &'a str,
    /// Enrollment token.
    pub(crate) token: &'a str,
    /// New public key, base64.
    pub(crate) public_key: String,
    /// Proof-of-possession signature, base64.
    pub(crate) signature: String,
}

/// Request of `POST /v1/credentials/rotate`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RotationRequest<'a> {
    /// Identity holding the credential.
    pub(crate) identity: &'a str,
    /// Serial of the current credential, lowercase hex.
    pub(crate) serial: &'a str,
    /// New public key, base64.
    pub(crate) public_key: String,
    /// Signature of the rotation text by the current key, base64.
    pub(crate) signature_current: String,
    /// Signature of the rotation text by the new key, base64.
    pub(crate) signature_new: String,
}

/// Decodes base64 hashes of a proof; any bad element fails the whole proof.
pub(crate) fn decode_hashes(items: &[String], what: &str) -> Result<Vec<Hash>, Error> {
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            B64.decode(s)
                .ok()
                .and_then(|b| Hash::from_slice(&b))
                .ok_or_else(|| Error::verify(format!("{what}[{i}] is not a base64 32-byte hash")))
        })
        .collect()
}

/// Base64 of hashes, for output and evidence.
pub(crate) fn encode_hashes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| B64.encode(h.0)).collect()
}

/// Decodes standard base64 or fails verification naming `what`.
pub(crate) fn b64(text: &str, what: &str) -> Result<Vec<u8>, Error> {
    B64.decode(text)
        .map_err(|_| Error::verify(format!("{what} is not standard base64")))
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
