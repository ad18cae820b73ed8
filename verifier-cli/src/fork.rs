//! Fork evidence on disk: written into the state folder when a fork is found, and the error
//! that reports it (exit 4). The evidence itself, and its re-check, are `kt_verify::fork`.

use std::path::{Path, PathBuf};

use kt_log::checkpoint::VerifiedCheckpoint;
use kt_log::Hash;
use kt_verify::consistency::Fork;
use kt_verify::fork::Evidence;

use crate::error::Error;
use crate::state::{escape_origin, write_atomic};

/// Evidence from two verified checkpoints (in any order) and the offered proof, detected now.
pub(crate) fn evidence(
    a: &VerifiedCheckpoint,
    b: &VerifiedCheckpoint,
    proof: &[Hash],
    reason: String,
    server: Option<String>,
) -> Evidence {
    Evidence::new(a, b, proof, reason, server, crate::now())
}

/// The evidence of a fork that consistency checking found.
pub(crate) fn evidence_of(fork: &Fork, server: Option<String>) -> Evidence {
    evidence(
        &fork.older,
        &fork.newer,
        &fork.proof,
        fork.reason.to_string(),
        server,
    )
}

/// Writes the evidence into `dir` as `fork-<origin>-<old>-<new>-<time>.json` and returns
/// the path. Never overwrites an existing file.
fn write(evidence: &Evidence, dir: &Path) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    let stem = format!(
        "fork-{}-{}-{}-{}",
        escape_origin(&evidence.origin),
        evidence.older.size,
        evidence.newer.size,
        evidence.detected_at
    );
    let mut path = dir.join(format!("{stem}.json"));
    let mut n = 1;
    while path.exists() {
        path = dir.join(format!("{stem}-{n}.json"));
        n += 1;
    }
    let json = serde_json::to_vec_pretty(evidence)
        .map_err(|e| Error::Network(format!("cannot encode evidence: {e}")))?;
    write_atomic(&path, &json)?;
    Ok(path)
}

/// Writes the evidence and returns the fork error that reports it (exit 4).
pub(crate) fn report(evidence: Evidence, dir: &Path) -> Error {
    let detail = format!(
        "log {} checkpoints of sizes {} and {} are inconsistent: {}",
        evidence.origin, evidence.older.size, evidence.newer.size, evidence.reason
    );
    match write(&evidence, dir) {
        Ok(evidence) => Error::Fork { detail, evidence },
        Err(e) => Error::Fork {
            detail: format!("{detail} (writing the evidence failed: {e})"),
            evidence: PathBuf::new(),
        },
    }
}
