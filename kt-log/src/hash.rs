//! RFC 9162 §2.1 hashing: SHA-256 with domain separation between leaves and interior nodes.
//!
//! - leaf hash: `SHA-256(0x00 ‖ entry)`
//! - node hash: `SHA-256(0x01 ‖ left ‖ right)`
//! - root of the empty tree: `SHA-256("")`
//!
//! The one-byte prefixes make a leaf hash and an interior hash unequal for any inputs, so a
//! proof can never pass an interior node off as an entry (the second-preimage attack RFC 6962
//! §2.1 closes).

use std::fmt;

use sha2::{Digest, Sha256};

/// Length of every hash in the tree, in bytes.
pub const HASH_LEN: usize = 32;

/// A SHA-256 value: a leaf hash, an interior node hash or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

impl Hash {
    /// The bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Reads a hash from exactly 32 bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Hash> {
        <[u8; HASH_LEN]>::try_from(bytes).ok().map(Hash)
    }

    /// Lower-case hexadecimal form, as logs and errors print it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hexadecimal digits.
    pub fn from_hex(text: &str) -> Option<Hash> {
        if text.len() != 2 * HASH_LEN || !text.is_ascii() {
            return None;
        }
        let mut out = [0u8; HASH_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Hash(out))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// `SHA-256(0x00 ‖ entry)`: the hash of one log entry.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(entry);
    Hash(hasher.finalize().into())
}

/// `SHA-256(0x01 ‖ left ‖ right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    hash_children(&left.0, &right.0)
}

/// `SHA-256(0x01 ‖ left ‖ right)` over arbitrary byte strings (RFC 6962 test vectors use
/// children that are not 32 bytes; the tree itself only ever passes hashes).
pub fn hash_children(left: &[u8], right: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    Hash(hasher.finalize().into())
}

/// `SHA-256("")`: the root of the tree with no entries.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(Hash::from_hex("00"), None);
        assert_eq!(Hash::from_hex(&"g".repeat(64)), None);
        assert_eq!(Hash::from_hex(&"é".repeat(32)), None);
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        let l = leaf_hash(b"");
        let n = node_hash(&l, &l);
        let mut concat = Vec::new();
        concat.extend_from_slice(&l.0);
        concat.extend_from_slice(&l.0);
        assert_ne!(leaf_hash(&concat), n);
    }
}
