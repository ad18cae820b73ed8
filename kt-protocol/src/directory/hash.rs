//! Every hash the directory defines, in one place (SHA-256 throughout).
//!
//! | what | input |
//! |---|---|
//! | map leaf | `0x02 ‖ label ‖ u64be(version) ‖ head` |
//! | map inner node | `0x03 ‖ left ‖ right` |
//! | empty subtree | no hash: 32 zero bytes |
//! | commitment | `"kt-as directory commitment v1" ‖ 0x00 ‖ opening ‖ label ‖ u64be(version) ‖ record` |
//! | chain head | `"kt-as directory chain v1" ‖ 0x00 ‖ previous head ‖ commitment`; before version 1 the head is 32 zero bytes |
//!
//! The prefixes 0x02 and 0x03 keep map nodes apart from each other and from the log's
//! RFC 9162 leaves (0x00) and nodes (0x01). A commitment hides its record (the 32-byte opening
//! is secret until the AS shows it to a client) and binds it (SHA-256 collision resistance),
//! and it names its label and version, so it cannot be moved to another place in the map.

use sha2::{Digest, Sha256};

use super::vrf::Label;

/// A 32-byte SHA-256 output (or the empty subtree's zeros).
pub type Hash32 = [u8; 32];

/// The value of an empty subtree, and the chain head before the first version.
pub const EMPTY: Hash32 = [0u8; 32];

const LEAF_PREFIX: u8 = 0x02;
const INNER_PREFIX: u8 = 0x03;
const COMMITMENT_DOMAIN: &[u8] = b"kt-as directory commitment v1\0";
const CHAIN_DOMAIN: &[u8] = b"kt-as directory chain v1\0";

/// What the map holds for a label: its latest version and the head of its version chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafValue {
    /// The latest version, from 1.
    pub version: u64,
    /// The chain head after that version.
    pub head: Hash32,
}

/// The hash of the map leaf of `label` holding `value`.
pub fn leaf_hash(label: &Label, value: &LeafValue) -> Hash32 {
    Sha256::new()
        .chain_update([LEAF_PREFIX])
        .chain_update(label.0)
        .chain_update(value.version.to_be_bytes())
        .chain_update(value.head)
        .finalize()
        .into()
}

/// The hash of an inner node over its two subtrees (either may be [`EMPTY`]).
pub fn inner_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    Sha256::new()
        .chain_update([INNER_PREFIX])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The commitment to version `version` of `label`, whose record has canonical bytes `record`.
pub fn commitment(opening: &Hash32, label: &Label, version: u64, record: &[u8]) -> Hash32 {
    Sha256::new()
        .chain_update(COMMITMENT_DOMAIN)
        .chain_update(opening)
        .chain_update(label.0)
        .chain_update(version.to_be_bytes())
        .chain_update(record)
        .finalize()
        .into()
}

/// The chain head after appending `commitment` to the chain whose head is `previous`.
pub fn chain(previous: &Hash32, commitment: &Hash32) -> Hash32 {
    Sha256::new()
        .chain_update(CHAIN_DOMAIN)
        .chain_update(previous)
        .chain_update(commitment)
        .finalize()
        .into()
}
