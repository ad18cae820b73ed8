//! kt-verify on server answers: the verifier's parsing and checks of every answer it reads from
//! an AS it does not trust. The first byte picks what the rest is: a `POST /v1/credentials`
//! answer (JSON) given to `verify_bundle`; a `GET /v1/identities/…` answer given to
//! `answer_checkpoint` and `verify_lookup`; a consistency answer given to `decode_hashes`; a
//! certificate (PEM or DER) given to `parse_certificate` and `Ca::verify_certificate`; a CRL
//! given to `Ca::verify_crl`. Trusted: the fuzz log key and a CA made once per process.
//! Properties: never panics; nothing made by neither key is accepted (a bundle, lookup,
//! certificate or CRL verifies only if the harness's CA signed it, which no fuzzed input is).
#![no_main]

use std::sync::LazyLock;

use kt_fuzz::{signer, split_mode};
use kt_verify::credential::Ca;
use kt_verify::wire::{decode_hashes, ConsistencyAnswer, Credential, IdentityAnswer};
use libfuzzer_sys::fuzz_target;

/// A CA no fuzzed input was signed by.
static CA: LazyLock<Ca> = LazyLock::new(|| {
    let made = as_server::ca::Ca::generate("fuzz CA", 1_700_000_000, 86_400 * 3650)
        .expect("a CA can be made");
    Ca::from_bytes(made.cert_pem().as_bytes()).expect("its certificate parses")
});

const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    let verifier = signer().verifier();
    match mode % 5 {
        0 => {
            if let Ok(bundle) = serde_json::from_slice::<Credential>(rest) {
                let verified = kt_verify::bundle::verify_bundle(&bundle, &verifier, &CA, NOW);
                assert!(verified.is_err(), "a fuzzed bundle verified");
            }
        }
        1 => {
            if let Ok(answer) = serde_json::from_slice::<IdentityAnswer>(rest) {
                let identity = answer.identity.clone();
                if let Ok(checkpoint) =
                    kt_verify::lookup::answer_checkpoint(&answer, &identity, &verifier)
                {
                    let lookup = kt_verify::lookup::verify_lookup(&answer, &identity, checkpoint, &CA);
                    // Without credentials there is nothing the CA must have signed.
                    assert!(lookup.is_err() || answer.credentials.is_empty());
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
            assert!(CA.verify_certificate(rest).is_err(), "a fuzzed certificate verified");
        }
        _ => assert!(CA.verify_crl(rest, NOW).is_err(), "a fuzzed CRL verified"),
    }
});
