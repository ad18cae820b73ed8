//! kt_protocol::directory::vrf: the check of the VRF proof that gives an identity's label
//! (RFC 9381 ECVRF-EDWARDS25519-SHA512-TAI with strict decoding), under the fuzz directory's
//! fixed VRF key. The first byte picks what the rest is (`mode % 4`):
//! 0. `identity ‖ NUL ‖ proof` with a proof of any length;
//! 1. an 80-byte proof (the input's first 80 bytes, zero-padded) and the identity after it;
//! 2. `u16be(bit) ‖ identity`: the harness proves the identity with the secret key, then
//!    verifies that proof, the proof with that bit (mod 640) flipped, and the proof for
//!    another identity;
//! 3. a 32-byte public key (`VrfPublicKey::from_bytes`, any length) and a proof as in mode 1.
//!
//! Properties: never panics; `verify` returns a label only for the proof the key's holder
//! makes, so the label is the one `prove` gives that identity, and it is the first 32 bytes of
//! `proof_to_hash`; a proof the key made verifies, with one bit flipped it never does, and it
//! is no proof for another identity; a key that parses writes back to its 32 bytes.
#![no_main]

use std::sync::LazyLock;

use as_server::directory::keys::DirectoryKeys;
use kt_fuzz::{directory_keys, split_mode, split_nul};
use kt_protocol::directory::vrf::{proof_to_hash, VrfError, VrfPublicKey, PROOF_LEN};
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<DirectoryKeys> = LazyLock::new(directory_keys);

/// Verifies `proof` for `identity` under the fuzz key, and checks what a label promises.
fn verify(identity: &str, proof: &[u8]) {
    let key = KEYS.vrf().public_key();
    let result = key.verify(identity, proof);
    let hash = proof_to_hash(proof);
    if proof.len() != PROOF_LEN {
        assert!(hash.is_none());
        assert_eq!(result, Err(VrfError::MalformedProof));
    }
    if hash.is_none() {
        assert_eq!(result, Err(VrfError::MalformedProof));
    }
    if let Ok(label) = result {
        let (expected, _) = KEYS.vrf().prove(identity);
        assert_eq!(label, expected, "a verified label is not the identity's");
        assert_eq!(label.0[..], hash.expect("a verified proof decodes")[..32]);
    }
}

/// The input's first 80 bytes (zero-padded) and the rest as an identity.
fn fixed(data: &[u8]) -> ([u8; PROOF_LEN], String) {
    let n = data.len().min(PROOF_LEN);
    let mut proof = [0u8; PROOF_LEN];
    proof[..n].copy_from_slice(&data[..n]);
    (proof, String::from_utf8_lossy(&data[n..]).into_owned())
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    match mode % 4 {
        0 => {
            let (identity, proof) = split_nul(rest);
            verify(&String::from_utf8_lossy(identity), proof);
        }
        1 => {
            let (proof, identity) = fixed(rest);
            verify(&identity, &proof);
        }
        2 => {
            if rest.len() < 2 {
                return;
            }
            let bit = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % (8 * PROOF_LEN);
            let identity = String::from_utf8_lossy(&rest[2..]);
            let key = KEYS.vrf().public_key();
            let (label, proof) = KEYS.vrf().prove(&identity);
            assert_eq!(
                key.verify(&identity, &proof),
                Ok(label),
                "the key's own proof fails"
            );
            let mut flipped = proof;
            flipped[bit / 8] ^= 0x80 >> (bit % 8);
            assert!(
                key.verify(&identity, &flipped).is_err(),
                "bit {bit} flipped verifies"
            );
            verify(&identity, &flipped);
            let other = format!("{identity}.");
            assert_eq!(key.verify(&other, &proof), Err(VrfError::Invalid));
        }
        _ => {
            let (key_bytes, rest) = rest.split_at(rest.len().min(32));
            let Ok(key) = VrfPublicKey::from_bytes(key_bytes) else {
                return;
            };
            assert_eq!(key.to_bytes()[..], key_bytes[..]);
            let (proof, identity) = fixed(rest);
            if let Ok(label) = key.verify(&identity, &proof) {
                assert_eq!(label.0[..], proof_to_hash(&proof).expect("decodes")[..32]);
            }
        }
    }
});
