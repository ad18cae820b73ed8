//! kt-verify on server answers: the verifier's parsing and checks of every answer it reads from
//! an AS it does not trust. The first byte picks what the rest is (`mode % 6`):
//! 0. a `POST /v1/credentials` answer (`kt_protocol::api::CredentialAnswer`, JSON) given to
//!    `bundle::verify_bundle`;
//! 1. a lookup answer (`IdentityProof`, its binary form or JSON) given to
//!    `directory::answer_checkpoint`, then `directory::verify_identity`,
//!    `lookup::verify_lookup` and `validate::validate`;
//! 2. a consistency answer given to `wire::decode_hashes`;
//! 3. a certificate (PEM or DER) given to `credential::parse_certificate` and
//!    `Ca::verify_certificate`;
//! 4. a CRL given to `Ca::verify_crl`;
//! 5. a monitor's answer (`HistoryAnswer`, JSON) given to `answer_checkpoint`,
//!    `verify_identity` and `monitor::advance`: from no watch, and (`mode / 6 = k > 0`) from
//!    a watch holding the answer's first `k` versions, the answer keeping the rest.
//!
//! Trusted: the fuzz log key and the fuzz directory's VRF key (both fixed, so that the seeds,
//! real answers made by `examples/gen_seeds.rs`, pass the checkpoint and directory checks and
//! mutations start deep), and a CA made once per process, which signed nothing fuzzed.
//!
//! Properties: never panics; a binary lookup answer read is written back to the same bytes;
//! nothing the CA must have signed verifies (no bundle, no lookup with a credential, no
//! certificate, no CRL); a verified identity is the one asked about, with the label its VRF
//! proof gives and the record the answer shows (or none); a monitor run that succeeds from no
//! watch succeeds the same from a watch of its first `k` versions (same final watch, the same
//! changes after them), and running it again from its own result reports no change.
#![no_main]

use std::sync::LazyLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_fuzz::{signer, split_mode, vrf_public};
use kt_protocol::api::{CredentialAnswer, HistoryAnswer, IdentityProof};
use kt_protocol::directory::hash::{chain, commitment, EMPTY};
use kt_protocol::directory::record::VersionRecord;
use kt_protocol::directory::vrf::VrfPublicKey;
use kt_protocol::entry::LogEntry;
use kt_verify::credential::Ca;
use kt_verify::directory::{answer_checkpoint, verify_identity, VerifiedIdentity};
use kt_verify::monitor::{advance, Watch};
use kt_verify::wire::{decode_hashes, ConsistencyAnswer};
use libfuzzer_sys::fuzz_target;

/// A CA no fuzzed input was signed by.
static CA: LazyLock<Ca> = LazyLock::new(|| {
    let made = as_server::ca::Ca::generate("fuzz CA", 1_700_000_000, 86_400 * 3650)
        .expect("a CA can be made");
    Ca::from_bytes(made.cert_pem().as_bytes()).expect("its certificate parses")
});

/// The fuzz directory's VRF public key.
static VRF: LazyLock<VrfPublicKey> = LazyLock::new(vrf_public);

const NOW: u64 = 1_800_000_000;

/// Steps 1 and 2 of `kt_verify::directory` on `proof`, asked about its own identity; checks
/// what a verified identity promises.
fn verify(proof: &IdentityProof) -> Option<VerifiedIdentity> {
    let checkpoint = answer_checkpoint(proof, &proof.identity, &signer().verifier()).ok()?;
    let verified = verify_identity(proof, &checkpoint, &VRF).ok()?;
    assert_eq!(verified.identity, proof.identity);
    assert_eq!(verified.checkpoint.note(), checkpoint.note());
    let vrf_proof = B64
        .decode(&proof.vrf_proof)
        .expect("a verified VRF proof is base64");
    assert_eq!(VRF.verify(&proof.identity, &vrf_proof), Ok(verified.label));
    assert_eq!(verified.state.is_some(), proof.state.is_some());
    if let Some(state) = &verified.state {
        assert_eq!(state.record.identity, proof.identity);
        assert_eq!(state.leaf.version, state.record.version);
        let shown = &proof.state.as_ref().expect("shown").record;
        assert_eq!(VersionRecord::from_json(shown).as_ref(), Ok(&state.record));
    }
    Some(verified)
}

/// Mode 5: a monitor's run from no watch, from a watch of the first `k` versions, and again
/// from its own result.
fn monitor(answer: &HistoryAnswer, k: usize) {
    let Some(verified) = verify(&answer.proof) else {
        return;
    };
    let full = advance(None, answer, &verified);
    if let Ok(progress) = &full {
        let latest = verified.state.as_ref().map_or(0, |s| s.record.version);
        assert_eq!(progress.watch.version(), latest);
        assert_eq!(progress.changes.len() as u64, latest);
        assert_eq!(progress.watch.records, progress.changes);
        if let Some(state) = &verified.state {
            assert_eq!(progress.watch.head, state.leaf.head);
        }
        let again = advance(Some(&progress.watch), answer, &verified)
            .unwrap_or_else(|e| panic!("a run from its own result failed: {e}"));
        assert!(
            again.changes.is_empty(),
            "a run from its own result found changes"
        );
        assert_eq!(again.watch, progress.watch);
    }
    if k == 0 || k > answer.history.len() {
        return;
    }
    // The watch of an owner that saw versions 1..=k: those records and the head they chain to.
    let mut watch = Watch {
        records: Vec::with_capacity(k),
        head: EMPTY,
    };
    for item in &answer.history[..k] {
        let Ok(entry) = LogEntry::from_json(&item.change) else {
            return;
        };
        let Ok(record) = VersionRecord::next(watch.records.last(), &entry) else {
            return;
        };
        let Some(opening) = B64
            .decode(&item.opening)
            .ok()
            .and_then(|o| o.try_into().ok())
        else {
            return;
        };
        watch.head = chain(
            &watch.head,
            &commitment(
                &opening,
                &verified.label,
                record.version,
                &record.to_bytes(),
            ),
        );
        watch.records.push(record);
    }
    let rest = HistoryAnswer {
        proof: answer.proof.clone(),
        history: answer.history[k..].to_vec(),
    };
    let split = advance(Some(&watch), &rest, &verified);
    if let Ok(progress) = full {
        let split = split.unwrap_or_else(|e| {
            panic!("the run from no watch passed, from the watch of {k} versions: {e}")
        });
        assert_eq!(split.watch, progress.watch);
        assert_eq!(split.changes[..], progress.changes[k..]);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    match mode % 6 {
        0 => {
            if let Ok(bundle) = serde_json::from_slice::<CredentialAnswer>(rest) {
                let verified =
                    kt_verify::bundle::verify_bundle(&bundle, &signer().verifier(), &VRF, &CA, NOW);
                assert!(verified.is_err(), "a fuzzed bundle verified");
            }
        }
        1 => {
            // JSON, or the binary form: one byte form, the bytes it reads are the bytes it
            // writes.
            let binary = IdentityProof::from_binary(rest);
            if let Ok(proof) = &binary {
                assert_eq!(proof.to_binary().as_deref(), Ok(rest), "one byte form");
            }
            if let Ok(proof) = binary.or_else(|_| serde_json::from_slice::<IdentityProof>(rest)) {
                let Some(verified) = verify(&proof) else {
                    return;
                };
                let holds = verified
                    .state
                    .as_ref()
                    .is_some_and(|s| !s.record.credentials.is_empty());
                let lookup = kt_verify::lookup::verify_lookup(verified, &CA);
                // Without credentials there is nothing the CA must have signed.
                assert!(lookup.is_err() || !holds, "a fuzzed credential verified");
                if let Ok(lookup) = lookup {
                    let key = [0u8; 32];
                    let valid = kt_verify::validate::validate(&lookup, &key, &CA, NOW, || {
                        Ok::<_, ()>(Vec::new())
                    });
                    assert!(
                        valid.is_err(),
                        "a key of a state without credentials is valid"
                    );
                }
            }
        }
        2 => {
            if let Ok(answer) = serde_json::from_slice::<ConsistencyAnswer>(rest) {
                if let Ok(hashes) = decode_hashes(&answer.proof, "proof") {
                    assert_eq!(hashes.len(), answer.proof.len());
                }
            }
        }
        3 => {
            let _ = kt_verify::credential::parse_certificate(rest);
            assert!(
                CA.verify_certificate(rest).is_err(),
                "a fuzzed certificate verified"
            );
        }
        4 => assert!(CA.verify_crl(rest, NOW).is_err(), "a fuzzed CRL verified"),
        _ => {
            if let Ok(answer) = serde_json::from_slice::<HistoryAnswer>(rest) {
                monitor(&answer, usize::from(mode / 6));
            }
        }
    }
});
