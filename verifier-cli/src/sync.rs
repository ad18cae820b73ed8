//! Moving the saved checkpoint forward, only along proven consistency.
//!
//! Guarantee of [`advance`]: the saved checkpoint is replaced by a newer one only after
//! `kt_verify::consistency::check` showed it consistent with the saved one (a verified proof;
//! at equal size, the same root). A fork it finds has its evidence written to the state
//! folder and [`Error::Fork`] returned (exit 4).

use kt_log::checkpoint::VerifiedCheckpoint;
use kt_log::Hash;

use crate::client::{Client, Fetched};
use crate::error::Error;
use crate::state::StateDir;
use crate::wire::{decode_hashes, ConsistencyAnswer};
pub(crate) use kt_verify::consistency::Advance;
use kt_verify::consistency::{self, ConsistencyError};

/// Where consistency proofs come from.
pub(crate) trait ProofSource {
    /// The consistency proof from size `from` to size `to` (`1 ≤ from < to`), unverified.
    fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>, Error>;
    /// A name for the evidence (the server URL).
    fn name(&self) -> Option<String>;
}

impl ProofSource for Client {
    fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>, Error> {
        let path = format!("/v1/log/proof/consistency?from={from}&to={to}");
        // Both sizes are of checkpoints the log signed: an honest log can always prove them
        // consistent, so "no such proof" is a failed verification, not a network error.
        let body = match self.get(&path, 1 << 20)? {
            Fetched::Body(body) => body,
            Fetched::NotFound => {
                return Err(Error::verify(format!(
                    "the server has no consistency proof from size {from} to size {to} (404 \
                     for GET {path})"
                )))
            }
        };
        let answer: ConsistencyAnswer = serde_json::from_slice(&body)
            .map_err(|e| Error::verify(format!("answer of GET {path} is malformed: {e}")))?;
        if answer.from != from || answer.to != to {
            return Err(Error::verify(format!(
                "asked for a consistency proof {from}→{to}, got one for {}→{}",
                answer.from, answer.to
            )));
        }
        decode_hashes(&answer.proof, "consistency proof")
    }
    fn name(&self) -> Option<String> {
        Some(self.base().to_owned())
    }
}

/// A proof given up front (a file), for offline comparisons.
pub(crate) struct GivenProof(pub(crate) Vec<Hash>);

impl ProofSource for GivenProof {
    fn consistency(&self, _from: u64, _to: u64) -> Result<Vec<Hash>, Error> {
        Ok(self.0.clone())
    }
    fn name(&self) -> Option<String> {
        None
    }
}

/// Checks `new` against the saved checkpoint of its log and saves it when it extends it (see
/// the module guarantee).
pub(crate) fn advance(
    state: &StateDir,
    saved: Option<&VerifiedCheckpoint>,
    new: &VerifiedCheckpoint,
    proofs: &dyn ProofSource,
) -> Result<Advance, Error> {
    let outcome = check_consistent(state, saved, new, proofs)?;
    if matches!(outcome, Advance::First | Advance::Extended { .. }) {
        state.save_checkpoint(new)?;
    }
    Ok(outcome)
}

/// The check of [`advance`] without saving anything.
pub(crate) fn check_consistent(
    state: &StateDir,
    saved: Option<&VerifiedCheckpoint>,
    new: &VerifiedCheckpoint,
    proofs: &dyn ProofSource,
) -> Result<Advance, Error> {
    consistency::check(saved, new, |from, to| proofs.consistency(from, to)).map_err(|e| match e {
        ConsistencyError::Fork(fork) => {
            crate::fork::report(crate::fork::evidence_of(&fork, proofs.name()), state.root())
        }
        // The log shows a smaller tree than one it signed before and cannot show that it is
        // a prefix of it: rolled back (an old backup restored?) or a stale mirror. Not yet a
        // fork, but nothing to trust; once it grows again with other entries, the next check
        // finds the fork.
        ConsistencyError::NoProof {
            source: Error::Verification(msg),
            rolled_back: true,
        } => Error::verify(format!(
            "the server's checkpoint (size {}) is older than the saved one (size {}) and is \
             not proven to be its prefix: {msg}",
            new.size(),
            saved.map(VerifiedCheckpoint::size).unwrap_or_default()
        )),
        ConsistencyError::NoProof { source, .. } => source,
        other => Error::verify(other),
    })
}
