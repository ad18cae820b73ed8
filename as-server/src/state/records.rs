//! The records the state store holds, one per identity, credential, enrollment and revoked
//! credential.

use serde::{Deserialize, Serialize};

use super::directory::LabelRow;
use crate::entry::RevocationReason;

/// Whether an identity may hold credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityStatus {
    /// May enroll and hold credentials.
    Active,
    /// Revoked by an admin: no enrollment, no credentials, until enabled again.
    Revoked,
}

/// An identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    /// Active or revoked.
    pub status: IdentityStatus,
    /// Counts revocations; enrollments made in an earlier epoch are void.
    pub epoch: u64,
    /// Serials of its credentials that are neither superseded nor revoked (maybe expired).
    pub current: Vec<String>,
    /// Whether the log has an entry of it. Until then it is only enrolled, which is not public
    /// (enrollments are not logged), and lookups answer as for a name never enrolled.
    #[serde(default)]
    pub logged: bool,
    /// Times of its rotations in the last day of its latest one, oldest first: what the
    /// rotation budget ([`crate::rotation`]) is decided from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_rotations: Vec<u64>,
}

impl IdentityRecord {
    /// The record of an identity the state has not seen before.
    pub fn new() -> IdentityRecord {
        IdentityRecord {
            status: IdentityStatus::Active,
            epoch: 0,
            current: Vec::new(),
            logged: false,
            recent_rotations: Vec::new(),
        }
    }
}

impl Default for IdentityRecord {
    fn default() -> Self {
        IdentityRecord::new()
    }
}

/// Where a credential stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialStatus {
    /// Current (unless expired).
    Current,
    /// Replaced by a rotation.
    Superseded,
    /// Revoked by an admin.
    Revoked,
}

/// A credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// Whose.
    pub identity: String,
    /// Ed25519 public key, base64.
    pub public_key: String,
    /// Validity start.
    pub not_before: u64,
    /// Validity end.
    pub not_after: u64,
    /// Index of the entry that issued it.
    pub log_index: u64,
    /// Current, superseded or revoked.
    pub status: CredentialStatus,
}

/// An enrollment: the right to one credential for one identity, until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentRecord {
    /// For whom.
    pub identity: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// The identity's epoch when it was made.
    pub epoch: u64,
    /// The serial it was used for, once used.
    pub used_by: Option<String>,
    /// The identity's label and VRF proof, computed when the enrollment was made if the
    /// identity was not logged yet, so that its issuance need not (a VRF proof is the largest
    /// part of an issuance's work); dropped when the enrollment is used. Only a shortcut: an
    /// enrollment without it (made before, restored from the journal, or taken in from
    /// another frontend) has its label computed at the issuance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepared_label: Option<LabelRow>,
}

/// A revoked credential, as the CRL lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRecord {
    /// When, Unix seconds.
    pub revoked_at: u64,
    /// Why.
    pub reason: RevocationReason,
}
