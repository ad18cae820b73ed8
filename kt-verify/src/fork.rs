//! Fork evidence: two checkpoints signed by the log key that cannot both be honest.
//!
//! Evidence is a JSON object anyone holding the log key can re-check offline
//! (`verifier-cli fork verify`, [`check`]). It proves a fork when both notes verify under the
//! key and either they have the same size and different roots, or the consistency proof that
//! was offered between them does not verify. (An honest log can always produce a valid proof,
//! and never signs two roots for one size; a proof that fails shows the log could not.)
//!
//! Shape (field names are stable; schemas/fork-evidence.schema.json):
//! ```json
//! {"kt_fork_evidence": 1, "origin": "…", "reason": "…", "detected_at": 1795000000,
//!  "server": "https://…" | null,
//!  "older": {"size": 10, "root": "<b64>", "checkpoint": "<signed note>"},
//!  "newer": {"size": 12, "root": "<b64>", "checkpoint": "<signed note>"},
//!  "proof": ["<b64 hash>", …]}
//! ```
//! `older` is the smaller size (the first one seen when sizes are equal).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::{open_checkpoint, CheckpointError, VerifiedCheckpoint};
use kt_log::note::NoteVerifier;
use kt_log::Hash;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::wire::{decode_hashes, encode_hashes, EncodingError};

/// One side of the evidence.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Side {
    /// Tree size (informational; the note is authoritative).
    pub size: u64,
    /// Root, base64 (informational).
    pub root: String,
    /// The signed checkpoint note, exact text.
    pub checkpoint: String,
}

/// A fork evidence object.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Format version, 1.
    pub kt_fork_evidence: u32,
    /// The log's origin.
    pub origin: String,
    /// Human explanation.
    pub reason: String,
    /// When the fork was detected, Unix seconds.
    pub detected_at: u64,
    /// The server that served the newer checkpoint, if any.
    pub server: Option<String>,
    /// The smaller checkpoint.
    pub older: Side,
    /// The larger checkpoint.
    pub newer: Side,
    /// The consistency proof offered from `older` to `newer` (empty at equal sizes).
    pub proof: Vec<String>,
}

fn side(cp: &VerifiedCheckpoint) -> Side {
    Side {
        size: cp.size(),
        root: B64.encode(cp.root().0),
        checkpoint: String::from_utf8_lossy(cp.note()).into_owned(),
    }
}

impl Evidence {
    /// Evidence from two verified checkpoints (in any order) and the offered proof, detected
    /// at `detected_at` (Unix seconds).
    pub fn new(
        a: &VerifiedCheckpoint,
        b: &VerifiedCheckpoint,
        proof: &[Hash],
        reason: String,
        server: Option<String>,
        detected_at: u64,
    ) -> Evidence {
        let (older, newer) = if b.size() < a.size() { (b, a) } else { (a, b) };
        Evidence {
            kt_fork_evidence: 1,
            origin: older.checkpoint().origin.clone(),
            reason,
            detected_at,
            server,
            older: side(older),
            newer: side(newer),
            proof: encode_hashes(proof),
        }
    }
}

/// Why evidence does not prove a fork.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ForkError {
    /// One of its notes does not verify under the log key.
    #[error("evidence: {which} checkpoint: {source}")]
    Checkpoint {
        /// `older` or `newer`.
        which: &'static str,
        /// Why.
        source: CheckpointError,
    },
    /// Its proof is not a list of base64 hashes.
    #[error(transparent)]
    Encoding(#[from] EncodingError),
    /// Same size, same root: one view, no fork.
    #[error("evidence does not prove a fork: same size and same root")]
    SameRoot,
    /// The consistency proof verifies: the two are views of one log.
    #[error("evidence does not prove a fork: the consistency proof verifies")]
    ProofVerifies,
}

/// What re-checking evidence established.
#[derive(Clone, Debug)]
pub struct ForkProven {
    /// Why the two checkpoints cannot both be honest.
    pub why: String,
    /// The smaller checkpoint.
    pub older: VerifiedCheckpoint,
    /// The larger checkpoint.
    pub newer: VerifiedCheckpoint,
}

/// Re-checks evidence. `Ok` only if it proves a fork (see the module doc).
pub fn check(evidence: &Evidence, verifier: &NoteVerifier) -> Result<ForkProven, ForkError> {
    let open = |s: &Side, which: &'static str| {
        open_checkpoint(s.checkpoint.as_bytes(), verifier)
            .map_err(|source| ForkError::Checkpoint { which, source })
    };
    let (a, b) = (
        open(&evidence.older, "older")?,
        open(&evidence.newer, "newer")?,
    );
    let (older, newer) = if b.size() < a.size() { (b, a) } else { (a, b) };
    let proof = decode_hashes(&evidence.proof, "evidence proof")?;
    let why = if older.size() == newer.size() {
        if older.root() == newer.root() {
            return Err(ForkError::SameRoot);
        }
        format!(
            "two different roots signed for size {}: {} and {}",
            older.size(),
            older.root(),
            newer.root()
        )
    } else {
        match older.verify_extended_by(&newer, &proof) {
            Ok(_) => return Err(ForkError::ProofVerifies),
            Err(e) => format!(
                "the consistency proof from size {} to {} fails: {e}",
                older.size(),
                newer.size()
            ),
        }
    };
    Ok(ForkProven { why, older, newer })
}
