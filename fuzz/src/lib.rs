//! Helpers shared by the fuzz targets and the seed generator: fixed keys (so that seeds made
//! by `examples/gen_seeds.rs` carry signatures the targets accept), input splitting, and an
//! independent statement of the directory map's root (the reference the map targets compare
//! kt_protocol's map with).

use std::collections::BTreeMap;

use as_server::directory::keys::DirectoryKeys;
use kt_log::note::{NoteSigner, NoteVerifier};
use kt_protocol::directory::hash::{inner_hash, leaf_hash, Hash32, LeafValue, EMPTY};
use kt_protocol::directory::vrf::{Label, VrfPublicKey};

/// Origin (note key name) of the fuzz log key.
pub const ORIGIN: &str = "fuzz.example/log";
/// Seed of the fuzz log key (fixed: seeds signed with it verify in the targets).
pub const SEED: [u8; 32] = [7u8; 32];

/// Secret of the fuzz directory (fixed: the VRF proofs, openings and sealed changes of the
/// seeds verify, open and unseal in the targets).
pub const DIRECTORY_SECRET: [u8; 32] = [6u8; 32];

/// Verifier keys of kt-log/testdata/signed-note.json (C2SP / Go sumdb vectors).
pub const VECTOR_VKEYS: [&str; 2] = [
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
];

/// The fuzz log's signer.
pub fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &SEED).expect("fixed name is valid")
}

/// A second signer under another name, for witness-like co-signatures.
pub fn witness() -> NoteSigner {
    NoteSigner::from_seed("witness.example", &[9u8; 32]).expect("fixed name is valid")
}

/// The log key's successor: another key of the same name (a rotation), which may co-sign.
pub fn rotated() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[8u8; 32]).expect("fixed name is valid")
}

/// The verifiers a note target knows: the fuzz key, its rotated successor, the witness and
/// the vector keys.
pub fn known_verifiers() -> Vec<NoteVerifier> {
    let mut known = vec![signer().verifier(), rotated().verifier(), witness().verifier()];
    known.extend(
        VECTOR_VKEYS
            .iter()
            .map(|v| NoteVerifier::parse(v).expect("vector key parses")),
    );
    known
}

/// The fuzz directory's keys (VRF key, openings, sealing), as as-server derives them from
/// [`DIRECTORY_SECRET`].
pub fn directory_keys() -> DirectoryKeys {
    DirectoryKeys::from_secret(&DIRECTORY_SECRET)
}

/// The fuzz directory's VRF public key.
pub fn vrf_public() -> VrfPublicKey {
    directory_keys().vrf().public_key().clone()
}

/// The map root of `leaves`, straight from its definition (kt_protocol::directory::tree's
/// module documentation), with none of the map's layout: the subtree of no leaf is
/// [`EMPTY`], of one leaf its leaf hash, of more the inner hash of the subtrees split on the
/// next bit.
pub fn reference_root(leaves: &BTreeMap<Label, LeafValue>) -> Hash32 {
    fn subtree(leaves: &[(&Label, &LeafValue)], depth: usize) -> Hash32 {
        match leaves {
            [] => EMPTY,
            [(label, value)] => leaf_hash(label, value),
            _ => {
                assert!(depth < 256, "two equal labels below depth 256");
                let (zero, one): (Vec<_>, Vec<_>) =
                    leaves.iter().partition(|(label, _)| !label.bit(depth));
                inner_hash(&subtree(&zero, depth + 1), &subtree(&one, depth + 1))
            }
        }
    }
    let all: Vec<_> = leaves.iter().collect();
    subtree(&all, 0)
}

/// Splits off the first byte (a mode selector) from the rest.
pub fn split_mode(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(m, rest)| (*m, rest))
}

/// Reads a big-endian u64 from up to 8 bytes at the front; returns it and the rest.
pub fn take_u64(data: &[u8]) -> (u64, &[u8]) {
    let n = data.len().min(8);
    let mut buf = [0u8; 8];
    buf[8 - n..].copy_from_slice(&data[..n]);
    (u64::from_be_bytes(buf), &data[n..])
}

/// Splits `data` at the first 0x00 byte: (before, after); all of it and nothing if none.
pub fn split_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Wraps DER bytes in a PEM envelope with `label`, 64-column base64.
pub fn pem_wrap(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
