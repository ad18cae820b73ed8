//! Offline commands: verification of files, with nothing fetched.
//!
//! Each function returns what it verified or the first reason it did not verify; main.rs
//! turns that into output and an exit code.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_log::note::NoteVerifier;
use serde_json::json;

use kt_protocol::directory::vrf::VrfPublicKey;
use kt_verify::bundle::verify_bundle;
use kt_verify::directory::{answer_checkpoint, verify_identity};
use kt_verify::fork::{self, Evidence};
use kt_verify::lookup::verify_lookup;

use crate::describe::{bundle_json, checkpoint_json, describe};
use crate::error::{read_file, Error};
use crate::output::Outcome;
use crate::state::StateDir;
use crate::sync::{check_consistent, GivenProof, ProofSource};
use crate::trust::{Ca, Witnesses};
use crate::wire::{parse_proof_file, CredentialAnswer, IdentityProof};

/// Reads and verifies a checkpoint file under the log key and the witness policy.
pub(crate) fn read_checkpoint(
    path: &Path,
    verifier: &NoteVerifier,
    witnesses: &Witnesses,
) -> Result<VerifiedCheckpoint, Error> {
    let bytes = read_file(path)?;
    let cp = open_checkpoint(&bytes, verifier)
        .map_err(|e| Error::verify(format!("checkpoint {}: {e}", path.display())))?;
    witnesses.check(&cp, verifier, &format!("checkpoint {}", path.display()))?;
    Ok(cp)
}

/// `checkpoint verify`: JSON `origin`, `size`, `root`.
pub(crate) fn checkpoint_verify(
    file: &Path,
    verifier: &NoteVerifier,
    witnesses: &Witnesses,
) -> Result<Outcome, Error> {
    let cp = read_checkpoint(file, verifier, witnesses)?;
    let human = format!(
        "checkpoint verified: origin {} size {} root {}",
        cp.checkpoint().origin,
        cp.size(),
        B64.encode(cp.root().0)
    );
    Ok(Outcome::ok(checkpoint_json(&cp), human))
}

/// `inclusion verify`: JSON `origin`, `size`, `root`, `index`, `leaf_hash` (base64).
pub(crate) fn inclusion_verify(
    verifier: &NoteVerifier,
    witnesses: &Witnesses,
    checkpoint: &Path,
    index: Option<u64>,
    entry: &Path,
    proof: &Path,
) -> Result<Outcome, Error> {
    let cp = read_checkpoint(checkpoint, verifier, witnesses)?;
    let entry = read_file(entry)?;
    let proof = parse_proof_file(&read_file(proof)?)?;
    let index = match (index, proof.index) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::verify(format!(
                "--index {a} but the proof file is for index {b}"
            )))
        }
        (Some(i), _) | (None, Some(i)) => i,
        (None, None) => {
            return Err(Error::Usage(
                "--index is required when the proof file does not name one".into(),
            ))
        }
    };
    if let Some(size) = proof.size {
        if size != cp.size() {
            return Err(Error::verify(format!(
                "the proof is for size {size}, the checkpoint has size {}",
                cp.size()
            )));
        }
    }
    cp.verify_inclusion(index, &entry, &proof.proof)
        .map_err(|e| Error::verify(format!("inclusion proof: {e}")))?;
    let leaf = kt_log::hash::leaf_hash(&entry);
    let mut json = checkpoint_json(&cp);
    json["index"] = json!(index);
    json["leaf_hash"] = json!(B64.encode(leaf.0));
    let human = format!(
        "inclusion verified: entry {index} is in {} at size {}",
        cp.checkpoint().origin,
        cp.size()
    );
    Ok(Outcome::ok(json, human))
}

/// `consistency verify`: JSON `origin`, `old_size`, `old_root`, `new_size`, `new_root`.
pub(crate) fn consistency_verify(
    verifier: &NoteVerifier,
    witnesses: &Witnesses,
    old: &Path,
    new: &Path,
    proof: &Path,
) -> Result<Outcome, Error> {
    let old = read_checkpoint(old, verifier, witnesses)?;
    let new = read_checkpoint(new, verifier, witnesses)?;
    let proof = parse_proof_file(&read_file(proof)?)?;
    if let (Some(from), Some(to)) = (proof.from, proof.to) {
        if from != old.size() || to != new.size() {
            return Err(Error::verify(format!(
                "the proof is for sizes {from}→{to}, the checkpoints have {}→{}",
                old.size(),
                new.size()
            )));
        }
    }
    old.verify_extended_by(&new, &proof.proof)
        .map_err(|e| Error::verify(format!("consistency proof: {e}")))?;
    let json = json!({
        "origin": old.checkpoint().origin,
        "old_size": old.size(),
        "old_root": B64.encode(old.root().0),
        "new_size": new.size(),
        "new_root": B64.encode(new.root().0),
    });
    let human = format!(
        "consistency verified: size {} is a prefix of size {}",
        old.size(),
        new.size()
    );
    Ok(Outcome::ok(json, human))
}

/// Parses a `Credential` JSON file; malformed content fails verification.
pub(crate) fn read_bundle(path: &Path) -> Result<CredentialAnswer, Error> {
    serde_json::from_slice(&read_file(path)?).map_err(|e| {
        Error::verify(format!(
            "{} is not a Credential object: {e}",
            path.display()
        ))
    })
}

/// `bundle verify`: JSON as [`bundle_json`].
pub(crate) fn bundle_verify(
    verifier: &NoteVerifier,
    vrf: &VrfPublicKey,
    witnesses: &Witnesses,
    ca: &Ca,
    file: &Path,
) -> Result<Outcome, Error> {
    let bundle = read_bundle(file)?;
    let verified =
        verify_bundle(&bundle, verifier, vrf, ca, crate::now()).map_err(Error::verify)?;
    let checkpoint = &verified.identity.checkpoint;
    witnesses.check(checkpoint, verifier, "checkpoint of the bundle")?;
    let human = format!(
        "credential verified: {}\nin the identity's state, proven in checkpoint of size {}",
        describe(&verified.identity.identity, &verified.binding),
        checkpoint.size()
    );
    Ok(Outcome::ok(bundle_json(&verified), human))
}

/// `lookup verify FILE`: re-checks a saved lookup answer (as `lookup --save` wrote it, or the
/// server's binary form) with nothing fetched: its checkpoint, the state or absence it proves,
/// every credential under the CA. The answer is true as of its checkpoint: JSON and text as
/// `lookup` (`found` false for a proven absence, exit 1 as online).
pub(crate) fn lookup_verify(
    verifier: &NoteVerifier,
    vrf: &VrfPublicKey,
    witnesses: &Witnesses,
    ca: &Ca,
    file: &Path,
) -> Result<Outcome, Error> {
    let bytes = read_file(file)?;
    // JSON (as `lookup --save` writes it) or the binary form (as the server sends it).
    let answer = match bytes.first() {
        Some(b'{') => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
        _ => IdentityProof::from_binary(&bytes).map_err(|e| e.to_string()),
    }
    .map_err(|e| Error::verify(format!("{} is not an identity answer: {e}", file.display())))?;
    crate::online::check_identity_arg(&answer.identity)?;
    let checkpoint =
        answer_checkpoint(&answer, &answer.identity, verifier).map_err(Error::verify)?;
    witnesses.check(&checkpoint, verifier, "checkpoint of the answer")?;
    let verified = verify_identity(&answer, &checkpoint, vrf).map_err(Error::verify)?;
    let lookup = verify_lookup(verified, ca).map_err(Error::verify)?;
    let (mut json, human) = crate::online::lookup_report(&answer.identity, &lookup);
    // Nothing was compared with a saved checkpoint.
    json["consistency"] = serde_json::Value::Null;
    json["previous_size"] = serde_json::Value::Null;
    Ok(if lookup.identity.state.is_some() {
        Outcome::ok(json, human)
    } else {
        Outcome::failed(json, human)
    })
}

/// `fork verify`: exit 4 when the evidence proves a fork. JSON `fork` (bool), `reason`,
/// `origin`, `older_size`, `newer_size`, `witnesses_cosigned_both` (with a witness policy:
/// its witnesses whose cosignatures are on both sides of a split view; else empty).
pub(crate) fn fork_verify(
    verifier: &NoteVerifier,
    witnesses: &Witnesses,
    file: &Path,
) -> Result<Outcome, Error> {
    let evidence: Evidence = serde_json::from_slice(&read_file(file)?)
        .map_err(|e| Error::verify(format!("{} is not fork evidence: {e}", file.display())))?;
    let proven = fork::check(&evidence, verifier).map_err(Error::verify)?;
    let both = witnesses.policy().map_or_else(Vec::new, |policy| {
        kt_verify::witness_policy::cosigned_both(&proven.older, &proven.newer, policy)
    });
    let json = json!({
        "fork": true,
        "reason": proven.why,
        "origin": proven.older.checkpoint().origin,
        "older_size": proven.older.size(),
        "newer_size": proven.newer.size(),
        "witnesses_cosigned_both": both,
    });
    let mut human = format!(
        "FORK PROVEN for log {}: {}",
        proven.older.checkpoint().origin,
        proven.why
    );
    if !both.is_empty() {
        human.push_str(&format!(
            "\nWITNESS MISBEHAVIOUR: {} cosigned both sides of the split view",
            both.join(", ")
        ));
    }
    Ok(Outcome::with_code(
        crate::error::ExitCode::Fork,
        json,
        human,
    ))
}

/// A checkpoint named on the command line: a checkpoint file, or a state folder holding one.
fn checkpoint_at(path: &Path, verifier: &NoteVerifier) -> Result<VerifiedCheckpoint, Error> {
    if path.is_dir() {
        StateDir::existing(path)?
            .load_checkpoint(verifier)?
            .ok_or_else(|| {
                Error::Usage(format!(
                    "state folder {} has no checkpoint of log {}",
                    path.display(),
                    verifier.name()
                ))
            })
    } else {
        read_checkpoint(path, verifier, &Witnesses::none())
    }
}

/// `compare A B`: two auditors' views (state folders or checkpoint files). Equal sizes must
/// have equal roots; different sizes need a consistency proof, from `proofs` (a server or a
/// proof file). Evidence of a fork goes to `evidence_dir`. JSON `origin`, `a_size`, `b_size`,
/// `a_root`, `b_root`, `consistent` (bool).
pub(crate) fn compare(
    verifier: &NoteVerifier,
    a: &Path,
    b: &Path,
    proofs: Option<&dyn ProofSource>,
    evidence_dir: &Path,
) -> Result<Outcome, Error> {
    let ca = checkpoint_at(a, verifier)?;
    let cb = checkpoint_at(b, verifier)?;
    if ca.size() != cb.size() && proofs.is_none() {
        return Err(Error::Usage(format!(
            "sizes differ ({} and {}): give --server or --proof to prove consistency",
            ca.size(),
            cb.size()
        )));
    }
    let none = GivenProof(Vec::new());
    let proofs = proofs.unwrap_or(&none);
    let evidence_state = StateDir::open(evidence_dir)?;
    check_consistent(&evidence_state, Some(&ca), &cb, proofs)?;
    let json = json!({
        "origin": ca.checkpoint().origin,
        "a_size": ca.size(),
        "a_root": B64.encode(ca.root().0),
        "b_size": cb.size(),
        "b_root": B64.encode(cb.root().0),
        "consistent": true,
    });
    let human = format!(
        "consistent: sizes {} and {} are views of one append-only log",
        ca.size(),
        cb.size()
    );
    Ok(Outcome::ok(json, human))
}
