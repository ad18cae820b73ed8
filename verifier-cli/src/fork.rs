//! Fork evidence: two checkpoints signed by the log key that cannot both be honest.
//!
//! Evidence is a JSON file anyone holding the log key can re-check offline with
//! `verifier-cli fork verify`. It proves a fork when both notes verify under the key and
//! either they have the same size and different roots, or the consistency proof that was
//! offered between them does not verify. (An honest log can always produce a valid proof, and
//! never signs two roots for one size; a proof that fails shows the log could not.)
//!
//! File shape (field names are stable):
//! ```json
//! {"kt_fork_evidence": 1, "origin": "…", "reason": "…", "detected_at": 1795000000,
//!  "server": "https://…" | null,
//!  "older": {"size": 10, "root": "<b64>", "checkpoint": "<signed note>"},
//!  "newer": {"size": 12, "root": "<b64>", "checkpoint": "<signed note>"},
//!  "proof": ["<b64 hash>", …]}
//! ```
//! `older` is the smaller size (the first one seen when sizes are equal).

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_log::note::NoteVerifier;
use kt_log::Hash;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::state::{escape_origin, write_atomic};
use crate::wire::{decode_hashes, encode_hashes};

/// One side of the evidence.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Side {
    /// Tree size (informational; the note is authoritative).
    pub(crate) size: u64,
    /// Root, base64 (informational).
    pub(crate) root: String,
    /// The signed checkpoint note, exact text.
    pub(crate) checkpoint: String,
}

/// A fork evidence file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Evidence {
    /// Format version, 1.
    pub(crate) kt_fork_evidence: u32,
    /// The log's origin.
    pub(crate) origin: String,
    /// Human explanation.
    pub(crate) reason: String,
    /// When the fork was detected, Unix seconds.
    pub(crate) detected_at: u64,
    /// The server that served the newer checkpoint, if any.
    pub(crate) server: Option<String>,
    /// The smaller checkpoint.
    pub(crate) older: Side,
    /// The larger checkpoint.
    pub(crate) newer: Side,
    /// The consistency proof offered from `older` to `newer` (empty at equal sizes).
    pub(crate) proof: Vec<String>,
}

fn side(cp: &VerifiedCheckpoint) -> Side {
    Side {
        size: cp.size(),
        root: B64.encode(cp.root().0),
        checkpoint: String::from_utf8_lossy(cp.note()).into_owned(),
    }
}

impl Evidence {
    /// Builds evidence from two verified checkpoints (in any order) and the offered proof.
    pub(crate) fn new(
        a: &VerifiedCheckpoint,
        b: &VerifiedCheckpoint,
        proof: &[Hash],
        reason: String,
        server: Option<String>,
    ) -> Evidence {
        let (older, newer) = if b.size() < a.size() { (b, a) } else { (a, b) };
        Evidence {
            kt_fork_evidence: 1,
            origin: older.checkpoint().origin.clone(),
            reason,
            detected_at: crate::now(),
            server,
            older: side(older),
            newer: side(newer),
            proof: encode_hashes(proof),
        }
    }

    /// Writes the evidence into `dir` as `fork-<origin>-<old>-<new>-<time>.json` and returns
    /// the path. Never overwrites an existing file.
    pub(crate) fn write(&self, dir: &Path) -> Result<PathBuf, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        let stem = format!(
            "fork-{}-{}-{}-{}",
            escape_origin(&self.origin),
            self.older.size,
            self.newer.size,
            self.detected_at
        );
        let mut path = dir.join(format!("{stem}.json"));
        let mut n = 1;
        while path.exists() {
            path = dir.join(format!("{stem}-{n}.json"));
            n += 1;
        }
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Network(format!("cannot encode evidence: {e}")))?;
        write_atomic(&path, &json)?;
        Ok(path)
    }

    /// Writes the evidence and returns the fork error that reports it (exit 4).
    pub(crate) fn report(self, dir: &Path) -> Error {
        let detail = format!(
            "log {} checkpoints of sizes {} and {} are inconsistent: {}",
            self.origin, self.older.size, self.newer.size, self.reason
        );
        match self.write(dir) {
            Ok(evidence) => Error::Fork { detail, evidence },
            Err(e) => Error::Fork {
                detail: format!("{detail} (writing the evidence failed: {e})"),
                evidence: PathBuf::new(),
            },
        }
    }
}

/// What re-checking evidence established.
#[derive(Clone, Debug)]
pub(crate) struct ForkProven {
    /// Why the two checkpoints cannot both be honest.
    pub(crate) why: String,
    /// The smaller checkpoint.
    pub(crate) older: VerifiedCheckpoint,
    /// The larger checkpoint.
    pub(crate) newer: VerifiedCheckpoint,
}

/// Re-checks evidence offline. `Ok` only if it proves a fork (see the module doc); evidence
/// that does not (a note that does not verify, a proof that does verify, equal roots) is a
/// verification failure.
pub(crate) fn check(evidence: &Evidence, verifier: &NoteVerifier) -> Result<ForkProven, Error> {
    let open = |s: &Side, which: &str| {
        open_checkpoint(s.checkpoint.as_bytes(), verifier)
            .map_err(|e| Error::verify(format!("evidence: {which} checkpoint: {e}")))
    };
    let (a, b) = (
        open(&evidence.older, "older")?,
        open(&evidence.newer, "newer")?,
    );
    let (older, newer) = if b.size() < a.size() { (b, a) } else { (a, b) };
    let proof = decode_hashes(&evidence.proof, "evidence proof")?;
    let why = if older.size() == newer.size() {
        if older.root() == newer.root() {
            return Err(Error::verify(
                "evidence does not prove a fork: same size and same root",
            ));
        }
        format!(
            "two different roots signed for size {}: {} and {}",
            older.size(),
            older.root(),
            newer.root()
        )
    } else {
        match older.verify_extended_by(&newer, &proof) {
            Ok(_) => {
                return Err(Error::verify(
                    "evidence does not prove a fork: the consistency proof verifies",
                ))
            }
            Err(e) => format!(
                "the consistency proof from size {} to {} fails: {e}",
                older.size(),
                newer.size()
            ),
        }
    };
    Ok(ForkProven { why, older, newer })
}
