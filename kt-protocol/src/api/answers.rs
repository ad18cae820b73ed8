//! The API's answers (docs/api.md): one definition that the server writes and every client
//! reads.
//!
//! Nothing in these types is trusted as parsed: `kt-verify` checks every field before a
//! client believes it. Fields the contract does not name are ignored when reading.

use serde::{Deserialize, Serialize};

/// The proof of one identity's complete state, or of its absence, in one checkpoint: what a
/// lookup answers, and what every answer that changes an identity carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdentityProof {
    /// The identity asked about.
    pub identity: String,
    /// The signed checkpoint (note text) everything below is proven against.
    pub checkpoint: String,
    /// The checkpoint's last entry, the map entry with the map's root, base64 of its bytes.
    pub map_entry: String,
    /// The inclusion proof of `map_entry` at index `size - 1` of the checkpoint, base64 hashes.
    pub map_entry_proof: Vec<String>,
    /// The VRF proof of the identity's label, base64 (80 bytes).
    pub vrf_proof: String,
    /// The map proof of the label against the map entry's root, base64 of its encoding.
    pub map_proof: String,
    /// The identity's latest state; absent when the map proof proves the identity absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateProof>,
}

/// An identity's latest version record with what opens its commitment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateProof {
    /// The version record (`kt_protocol::directory::record`), as a JSON object.
    pub record: serde_json::Value,
    /// The commitment's opening, base64 (32 bytes).
    pub opening: String,
    /// The chain head of the version before, base64 (32 bytes; zeros before version 1).
    pub previous_head: String,
}

/// One earlier version of an identity, as an owner's monitor receives it: the change that
/// made it, from which the monitor derives the version record itself
/// (`VersionRecord::next` on the record before), and the opening of its commitment. A change
/// is smaller than the record it makes (one credential, not all the current ones).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryItem {
    /// The change (`kt_protocol::entry::LogEntry`, schemas/change.schema.json), as a JSON
    /// object.
    pub change: serde_json::Value,
    /// The commitment's opening of the version it makes, base64.
    pub opening: String,
}

/// `GET /v1/identities/{identity}/history?after=N`: the latest state's proof and the change of
/// every version between `after` and it, so that a monitor holding version `after` (its
/// record and chain head) can check every change since.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryAnswer {
    /// The latest state's proof.
    #[serde(flatten)]
    pub proof: IdentityProof,
    /// Versions `after + 1` up to the latest one's predecessor, in order.
    pub history: Vec<HistoryItem>,
}

/// `POST /v1/credentials` (201) and `POST /v1/credentials/rotate` (201): the credential and
/// the proof of the identity's new state, which holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CredentialAnswer {
    /// The identity bound.
    pub identity: String,
    /// Certificate serial, lowercase hex.
    pub serial: String,
    /// The certificate, PEM.
    pub certificate: String,
    /// The CA chain, PEM (a verifier trusts its own CA, not this).
    #[serde(default)]
    pub chain: Vec<String>,
    /// Validity start, Unix seconds.
    pub not_before: u64,
    /// Validity end, Unix seconds.
    pub not_after: u64,
    /// The Ed25519 public key, base64.
    pub public_key: String,
    /// Rotation only: the serial replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// The proof of the identity's state after this change.
    pub directory: IdentityProof,
}

/// `POST /v1/admin/identities/{identity}/revoke` and `…/credentials/{serial}/revoke` (200):
/// the serials revoked and the proof of the identity's new state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevocationAnswer {
    /// Whose.
    pub identity: String,
    /// The serials revoked, lowercase hex.
    pub revoked: Vec<String>,
    /// The proof of the identity's state after the revocation.
    pub directory: IdentityProof,
}

/// `POST /v1/admin/identities/{identity}/enable` (200): the proof of the identity's new state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnableAnswer {
    /// Whose.
    pub identity: String,
    /// The proof of the identity's state after the enabling.
    pub directory: IdentityProof,
}

/// One enrolled identity and its single-use token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The identity enrolled.
    pub identity: String,
    /// Its enrollment token: a secret for the identity's owner, used once.
    pub token: String,
    /// When the token expires, Unix seconds.
    pub expires_at: u64,
}

/// `POST /v1/admin/enrollments` (201): a token for each identity, in the request's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentAnswer {
    /// The enrollments.
    pub enrollments: Vec<Enrollment>,
}
