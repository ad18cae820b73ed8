//! Verifying an identity's complete state, or its absence, in a checkpoint (an
//! [`IdentityProof`]: what a lookup answers and every change's answer carries).
//!
//! In two steps, so that the caller can check the checkpoint against what it saw before and
//! refuse one older than its newest before it believes the rest (an older answer is true as
//! of then, which is exactly how a revocation or a new key gets hidden):
//! 1. [`answer_checkpoint`]: the answer is about the identity asked for, and its checkpoint
//!    is signed by the log key;
//! 2. [`verify_identity`]: the checkpoint's last entry is a map entry (inclusion proof at
//!    `size − 1`); the VRF proof gives the identity's label under the AS's VRF key; and either
//!    the record shown, its opening and the previous chain head make the label's leaf (its
//!    commitment, chained) and the map proof leads from that leaf to the map entry's root, or
//!    there is no record and the map proof shows the label absent under that root.
//!
//! Guarantee of a [`VerifiedIdentity`]: as of its checkpoint, the record is the identity's
//! complete state (its status and every current credential) and its latest version, or the
//! identity has nothing in the directory. A dropped credential, a hidden revocation, another
//! identity's or an older record, or a false absence each fail here (short of a SHA-256
//! collision or a forged signature).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::{open_checkpoint, CheckpointError, VerifiedCheckpoint};
use kt_log::note::NoteVerifier;
use kt_log::verify::ProofError;
use kt_protocol::api::IdentityProof;
use kt_protocol::directory::hash::{chain, commitment, Hash32, LeafValue};
use kt_protocol::directory::proof::{MapProof, MapProofError};
use kt_protocol::directory::public_entry::PublicEntry;
use kt_protocol::directory::record::{RecordError, VersionRecord};
use kt_protocol::directory::vrf::{Label, VrfError, VrfPublicKey};
use thiserror::Error;

use crate::wire::{decode_b64, decode_hashes, EncodingError};

/// Why an identity proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The answer is about another identity than the one asked for.
    #[error("the answer is about another identity")]
    OtherIdentity,
    /// The checkpoint is not signed by the log key.
    #[error("identity answer checkpoint: {0}")]
    Checkpoint(CheckpointError),
    /// A field does not decode.
    #[error(transparent)]
    Encoding(#[from] EncodingError),
    /// The checkpoint is of the empty log, which holds no map.
    #[error("the checkpoint is of the empty log: it holds no map root")]
    EmptyLog,
    /// The map entry is not the checkpoint's last entry.
    #[error("map entry at index {index}: {source}")]
    MapEntryInclusion {
        /// The index it should be at.
        index: u64,
        /// Why the inclusion proof failed.
        source: ProofError,
    },
    /// The checkpoint's last entry is not a map entry.
    #[error("the checkpoint's last entry is not a map entry: {0}")]
    NotAMapEntry(String),
    /// The VRF proof is not the identity's.
    #[error("VRF proof: {0}")]
    Vrf(#[from] VrfError),
    /// The map proof is malformed or of the wrong kind.
    #[error(transparent)]
    MapProof(#[from] MapProofError),
    /// The record is malformed.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The record is another identity's.
    #[error("the record is about {0}")]
    RecordOfOther(String),
    /// The map proof does not lead to the map entry's root.
    #[error("the map proof of this {0} does not lead to the checkpoint's map root")]
    Root(&'static str),
}

/// An identity's state, verified; only [`verify_identity`] makes one.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifiedIdentity {
    /// The identity.
    pub identity: String,
    /// The checkpoint it is proven in.
    pub checkpoint: VerifiedCheckpoint,
    /// Its label.
    pub label: Label,
    /// The map root of that checkpoint.
    pub map_root: Hash32,
    /// Its state, or `None`: absent from the directory.
    pub state: Option<VerifiedState>,
}

/// An identity's latest record and its leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedState {
    /// The complete state.
    pub record: VersionRecord,
    /// The label's leaf: the record's version and the chain head after it.
    pub leaf: LeafValue,
    /// The chain head before this version, as the answer gave it (checked by a monitor).
    pub previous_head: Hash32,
}

/// Step 1 (see the module doc): the answer is about `identity` and its checkpoint verifies
/// under the log key.
pub fn answer_checkpoint(
    proof: &IdentityProof,
    identity: &str,
    log_key: &NoteVerifier,
) -> Result<VerifiedCheckpoint, DirectoryError> {
    if proof.identity != identity {
        return Err(DirectoryError::OtherIdentity);
    }
    open_checkpoint(proof.checkpoint.as_bytes(), log_key).map_err(DirectoryError::Checkpoint)
}

/// Step 2 (see the module doc), against the checkpoint step 1 returned.
pub fn verify_identity(
    proof: &IdentityProof,
    checkpoint: &VerifiedCheckpoint,
    vrf_key: &VrfPublicKey,
) -> Result<VerifiedIdentity, DirectoryError> {
    let map_root = map_root(proof, checkpoint)?;
    let label = vrf_key.verify(&proof.identity, &decode_b64(&proof.vrf_proof, "vrf_proof")?)?;
    let map_proof = MapProof::decode(&decode_b64(&proof.map_proof, "map_proof")?)?;
    let Some(shown) = &proof.state else {
        if map_proof.root_without(&label)? != map_root {
            return Err(DirectoryError::Root("absence"));
        }
        return Ok(VerifiedIdentity {
            identity: proof.identity.clone(),
            checkpoint: checkpoint.clone(),
            label,
            map_root,
            state: None,
        });
    };
    let record = VersionRecord::from_json(&shown.record)?;
    if record.identity != proof.identity {
        return Err(DirectoryError::RecordOfOther(record.identity));
    }
    let opening = hash32(&shown.opening, "state.opening")?;
    let previous_head = hash32(&shown.previous_head, "state.previous_head")?;
    let committed = commitment(&opening, &label, record.version, &record.to_bytes());
    let leaf = LeafValue {
        version: record.version,
        head: chain(&previous_head, &committed),
    };
    if map_proof.root_with(&label, &leaf)? != map_root {
        return Err(DirectoryError::Root("state"));
    }
    Ok(VerifiedIdentity {
        identity: proof.identity.clone(),
        checkpoint: checkpoint.clone(),
        label,
        map_root,
        state: Some(VerifiedState {
            record,
            leaf,
            previous_head,
        }),
    })
}

/// The root of the map entry that ends `checkpoint`'s tree.
fn map_root(
    proof: &IdentityProof,
    checkpoint: &VerifiedCheckpoint,
) -> Result<Hash32, DirectoryError> {
    let index = checkpoint
        .size()
        .checked_sub(1)
        .ok_or(DirectoryError::EmptyLog)?;
    let entry = decode_b64(&proof.map_entry, "map_entry")?;
    let hashes = decode_hashes(&proof.map_entry_proof, "map_entry_proof")?;
    checkpoint
        .verify_inclusion(index, &entry, &hashes)
        .map_err(|source| DirectoryError::MapEntryInclusion { index, source })?;
    match PublicEntry::parse(&entry) {
        Ok(PublicEntry::Map(map)) => Ok(map.root),
        Ok(PublicEntry::Update(_)) => Err(DirectoryError::NotAMapEntry("an update".into())),
        Err(e) => Err(DirectoryError::NotAMapEntry(e.to_string())),
    }
}

/// 32 bytes of base64 named `what`.
pub(crate) fn hash32(text: &str, what: &'static str) -> Result<Hash32, DirectoryError> {
    B64.decode(text)
        .ok()
        .and_then(|b| Hash32::try_from(b).ok())
        .ok_or(DirectoryError::Encoding(EncodingError::Base64 { what }))
}
