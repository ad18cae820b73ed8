//! Moving the saved checkpoint forward, only along proven consistency.
//!
//! Guarantee of [`advance`]: the saved checkpoint is replaced by a newer one only after a
//! consistency proof from the saved one to it has verified; a checkpoint of equal size must
//! have the same root. Anything else is a fork: evidence is written to the state folder and
//! [`Error::Fork`] returned (exit 4).

use kt_log::checkpoint::VerifiedCheckpoint;
use kt_log::Hash;

use crate::client::{Client, Fetched};
use crate::error::Error;
use crate::fork::Evidence;
use crate::state::StateDir;
use crate::wire::{decode_hashes, ConsistencyAnswer};

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

/// How the new checkpoint relates to the saved one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Advance {
    /// Nothing was saved: the new checkpoint is the first (trust on first use).
    First,
    /// Same size and root as the saved one.
    Unchanged,
    /// Proven to extend the saved checkpoint of size `from`.
    Extended {
        /// The saved size.
        from: u64,
    },
    /// Older than the saved one (of size `saved`) and proven to be its prefix: a stale view,
    /// not saved.
    Behind {
        /// The saved size.
        saved: u64,
    },
}

impl Advance {
    /// The word printed for this outcome.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Advance::First => "first",
            Advance::Unchanged => "unchanged",
            Advance::Extended { .. } => "extended",
            Advance::Behind { .. } => "behind",
        }
    }
    /// The saved size compared against, if any.
    pub(crate) fn previous_size(self) -> Option<u64> {
        match self {
            Advance::First => None,
            Advance::Unchanged => None,
            Advance::Extended { from } => Some(from),
            Advance::Behind { saved } => Some(saved),
        }
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
    let Some(saved) = saved else {
        return Ok(Advance::First);
    };
    if saved.size() == new.size() {
        if saved.root() == new.root() {
            return Ok(Advance::Unchanged);
        }
        let reason = format!("two different roots for size {}", new.size());
        return Err(Evidence::new(saved, new, &[], reason, proofs.name()).report(state.root()));
    }
    let (older, newer) = if saved.size() < new.size() {
        (saved, new)
    } else {
        (new, saved)
    };
    let proof = if older.size() == 0 {
        Vec::new()
    } else {
        proofs
            .consistency(older.size(), newer.size())
            .map_err(|e| match e {
                // The log shows a smaller tree than one it signed before and cannot show that
                // it is a prefix of it: rolled back (an old backup restored?) or a stale
                // mirror. Not yet a fork, but nothing to trust; once it grows again with other
                // entries, the next check finds the fork.
                Error::Verification(msg) if saved.size() > new.size() => Error::verify(format!(
                    "the server's checkpoint (size {}) is older than the saved one (size {}) \
                     and is not proven to be its prefix: {msg}",
                    new.size(),
                    saved.size()
                )),
                other => other,
            })?
    };
    if let Err(e) = older.verify_extended_by(newer, &proof) {
        let reason = format!("consistency proof does not verify: {e}");
        return Err(Evidence::new(older, newer, &proof, reason, proofs.name()).report(state.root()));
    }
    Ok(if saved.size() < new.size() {
        Advance::Extended { from: saved.size() }
    } else {
        Advance::Behind {
            saved: saved.size(),
        }
    })
}
