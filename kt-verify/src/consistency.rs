//! Consistency of a new checkpoint with the one saved before.
//!
//! Guarantee of [`check`]: it returns [`Advance::Extended`] or [`Advance::Behind`] only after
//! an RFC 9162 consistency proof between the two checkpoints verified, and
//! [`Advance::Unchanged`] only for the same size and root. Two roots for one size, or a proof
//! that does not verify, is a [`Fork`]: both checkpoints are signed by the log key and an
//! honest log can always prove them consistent, so the evidence is in the error. Where the
//! proof comes from is the caller's: `proof(from, to)` is called at most once, only for
//! `1 ≤ from < to`. Nothing is saved: the caller saves the new checkpoint when it is
//! [`Advance::First`] or [`Advance::Extended`].

use kt_log::checkpoint::VerifiedCheckpoint;
use kt_log::verify::ProofError;
use kt_log::Hash;
use thiserror::Error;

/// How the new checkpoint relates to the saved one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advance {
    /// Nothing was saved: the new checkpoint is the first (trust on first use).
    First,
    /// Same size and root as the saved one.
    Unchanged,
    /// Proven to extend the saved checkpoint of size `from`.
    Extended {
        /// The saved size.
        from: u64,
    },
    /// Older than the saved one (of size `saved`) and proven to be its prefix: a stale view.
    Behind {
        /// The saved size.
        saved: u64,
    },
}

impl Advance {
    /// The word `verifier-cli` prints for this outcome.
    pub fn word(self) -> &'static str {
        match self {
            Advance::First => "first",
            Advance::Unchanged => "unchanged",
            Advance::Extended { .. } => "extended",
            Advance::Behind { .. } => "behind",
        }
    }
    /// The saved size compared against, if any.
    pub fn previous_size(self) -> Option<u64> {
        match self {
            Advance::First | Advance::Unchanged => None,
            Advance::Extended { from } => Some(from),
            Advance::Behind { saved } => Some(saved),
        }
    }
}

/// Why two signed checkpoints cannot both be honest.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ForkReason {
    /// Two roots signed for one size.
    #[error("two different roots for size {size}")]
    TwoRoots {
        /// The size.
        size: u64,
    },
    /// The consistency proof offered between them does not verify.
    #[error("consistency proof does not verify: {0}")]
    BadProof(ProofError),
}

/// A fork: the two checkpoints (`older` has the smaller size, or is the saved one at equal
/// sizes), the proof offered between them, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    /// The smaller checkpoint.
    pub older: VerifiedCheckpoint,
    /// The larger checkpoint.
    pub newer: VerifiedCheckpoint,
    /// The proof offered (empty at equal sizes).
    pub proof: Vec<Hash>,
    /// Why they cannot both be honest.
    pub reason: ForkReason,
}

/// Why [`check`] did not show the checkpoints consistent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConsistencyError<E> {
    /// The two checkpoints prove a fork.
    #[error("{}", .0.reason)]
    Fork(Box<Fork>),
    /// The proof could not be had (the caller's error). `rolled_back`: the new checkpoint is
    /// smaller than the saved one, which the log then cannot show to be a prefix of it.
    #[error("{source}")]
    NoProof {
        /// The caller's error.
        source: E,
        /// Whether the new checkpoint is the smaller one.
        rolled_back: bool,
    },
}

/// Checks `new` against `saved` (see the module guarantee).
pub fn check<E>(
    saved: Option<&VerifiedCheckpoint>,
    new: &VerifiedCheckpoint,
    proof: impl FnOnce(u64, u64) -> Result<Vec<Hash>, E>,
) -> Result<Advance, ConsistencyError<E>> {
    let Some(saved) = saved else {
        return Ok(Advance::First);
    };
    let fork = |older: &VerifiedCheckpoint, newer: &VerifiedCheckpoint, proof, reason| {
        ConsistencyError::Fork(Box::new(Fork {
            older: older.clone(),
            newer: newer.clone(),
            proof,
            reason,
        }))
    };
    if saved.size() == new.size() {
        if saved.root() == new.root() {
            return Ok(Advance::Unchanged);
        }
        let reason = ForkReason::TwoRoots { size: new.size() };
        return Err(fork(saved, new, Vec::new(), reason));
    }
    let (older, newer) = if saved.size() < new.size() {
        (saved, new)
    } else {
        (new, saved)
    };
    let hashes = if older.size() == 0 {
        Vec::new()
    } else {
        proof(older.size(), newer.size()).map_err(|source| ConsistencyError::NoProof {
            source,
            rolled_back: saved.size() > new.size(),
        })?
    };
    if let Err(e) = older.verify_extended_by(newer, &hashes) {
        return Err(fork(older, newer, hashes, ForkReason::BadProof(e)));
    }
    Ok(if saved.size() < new.size() {
        Advance::Extended { from: saved.size() }
    } else {
        Advance::Behind {
            saved: saved.size(),
        }
    })
}
