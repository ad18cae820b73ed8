//! A map proof: the path of one label from the map's root down to where it ends, which proves
//! either the label's leaf (membership) or that the label is absent.
//!
//! The map is a binary prefix tree over 256-bit labels in which every subtree holding one
//! leaf is that leaf's hash and every empty subtree is [`EMPTY`] (see [`super::tree`]). The
//! path of label `L` goes from the root (depth 0) down, taking branch `L.bit(i)` at depth `i`,
//! until a subtree that holds at most one leaf. The proof gives the sibling subtree's hash at
//! each depth above, and what the path ends in: nothing ([`Terminal::Empty`]), the leaf of `L`
//! itself ([`Terminal::Asked`]), or the leaf of another label ([`Terminal::Other`]) that shares
//! `L`'s first `depth` bits.
//!
//! **Encoding** (one byte string per proof; [`MapProof::decode`] refuses any other):
//! `u16be(depth)` (at most 256), a bitmap of `ceil(depth / 8)` bytes whose bit `i` (most
//! significant first) is set when sibling `i` is not empty (padding bits zero), the non-empty
//! siblings (32 bytes each, never all zeros) from the root down, then the terminal: `0x00`
//! empty, `0x01 ‖ label ‖ u64be(version) ‖ head` another label's leaf, `0x02` the asked label.
//!
//! **Guarantee** of [`MapProof::root_with`] and [`MapProof::root_without`]: the root they
//! return equals a map's root only if, in that map, the label holds exactly that value, or
//! respectively holds nothing (short of a SHA-256 collision). Proofs whose shape no map can
//! have (a last sibling empty, another label that does not share the path or equals the
//! asked one) are refused outright.

use thiserror::Error;

use super::hash::{inner_hash, leaf_hash, Hash32, LeafValue, EMPTY};
use super::vrf::Label;
use crate::reader::{EndsEarly, Reader};

/// Deepest a path can go: the labels' bit length.
pub const MAX_DEPTH: usize = 256;

/// What a label's path ends in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminal {
    /// An empty subtree: the label is absent.
    Empty,
    /// The leaf of the label asked about.
    Asked,
    /// The leaf of another label sharing the path: the label asked about is absent.
    Other {
        /// That label.
        label: Label,
        /// Its value.
        value: LeafValue,
    },
}

/// The proof of one label; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapProof {
    /// Sibling hashes from the root (depth 0) down; their count is the terminal's depth.
    pub siblings: Vec<Hash32>,
    /// What the path ends in.
    pub terminal: Terminal,
}

/// Why a map proof was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MapProofError {
    /// The bytes are not the encoding of a proof.
    #[error("malformed map proof: {0}")]
    Malformed(&'static str),
    /// A proof of membership was needed and this one proves absence, or the reverse.
    #[error("the map proof shows {found}, not {wanted}")]
    WrongKind {
        /// What was needed.
        wanted: &'static str,
        /// What the proof shows.
        found: &'static str,
    },
    /// The proof's shape is one no map has (see the module documentation).
    #[error("impossible map proof: {0}")]
    Impossible(&'static str),
}

impl MapProof {
    /// The proof's one encoding.
    pub fn encode(&self) -> Vec<u8> {
        let depth = self.siblings.len();
        let mut out = Vec::with_capacity(2 + depth.div_ceil(8) + 32 * depth + 73);
        out.extend_from_slice(&(depth as u16).to_be_bytes());
        let mut bitmap = vec![0u8; depth.div_ceil(8)];
        for (i, sibling) in self.siblings.iter().enumerate() {
            if *sibling != EMPTY {
                bitmap[i / 8] |= 0x80 >> (i % 8);
            }
        }
        out.extend_from_slice(&bitmap);
        for sibling in self.siblings.iter().filter(|s| **s != EMPTY) {
            out.extend_from_slice(sibling);
        }
        match &self.terminal {
            Terminal::Empty => out.push(0),
            Terminal::Other { label, value } => {
                out.push(1);
                out.extend_from_slice(&label.0);
                out.extend_from_slice(&value.version.to_be_bytes());
                out.extend_from_slice(&value.head);
            }
            Terminal::Asked => out.push(2),
        }
        out
    }

    /// Decodes the one encoding of a proof (see the module documentation).
    pub fn decode(bytes: &[u8]) -> Result<MapProof, MapProofError> {
        let mut reader = Reader(bytes);
        let depth = usize::from(u16::from_be_bytes(reader.array()?));
        if depth > MAX_DEPTH {
            return Err(MapProofError::Malformed("deeper than 256"));
        }
        let bitmap = reader.take(depth.div_ceil(8))?;
        if depth % 8 != 0
            && bitmap
                .last()
                .is_some_and(|b| b & (0xff >> (depth % 8)) != 0)
        {
            return Err(MapProofError::Malformed("bitmap padding is not zero"));
        }
        let mut siblings = Vec::with_capacity(depth);
        for i in 0..depth {
            if bitmap[i / 8] & (0x80 >> (i % 8)) == 0 {
                siblings.push(EMPTY);
                continue;
            }
            let hash: Hash32 = reader.array()?;
            if hash == EMPTY {
                return Err(MapProofError::Malformed(
                    "an empty sibling marked non-empty",
                ));
            }
            siblings.push(hash);
        }
        let terminal = match reader.array::<1>()?[0] {
            0 => Terminal::Empty,
            1 => Terminal::Other {
                label: Label(reader.array()?),
                value: LeafValue {
                    version: u64::from_be_bytes(reader.array()?),
                    head: reader.array()?,
                },
            },
            2 => Terminal::Asked,
            _ => return Err(MapProofError::Malformed("unknown terminal")),
        };
        if !reader.0.is_empty() {
            return Err(MapProofError::Malformed("bytes after the proof"));
        }
        Ok(MapProof { siblings, terminal })
    }

    /// Whether the proof shows the asked label present.
    pub fn is_membership(&self) -> bool {
        self.terminal == Terminal::Asked
    }

    /// The root of a map in which `label` holds `value`, if this proof shows membership.
    pub fn root_with(&self, label: &Label, value: &LeafValue) -> Result<Hash32, MapProofError> {
        if self.terminal != Terminal::Asked {
            return Err(MapProofError::WrongKind {
                wanted: "membership",
                found: "absence",
            });
        }
        if value.version == 0 {
            return Err(MapProofError::Impossible("a leaf of version 0"));
        }
        self.fold(label, leaf_hash(label, value))
    }

    /// The root of a map in which `label` is absent, if this proof shows absence.
    pub fn root_without(&self, label: &Label) -> Result<Hash32, MapProofError> {
        let bottom = match &self.terminal {
            Terminal::Asked => {
                return Err(MapProofError::WrongKind {
                    wanted: "absence",
                    found: "membership",
                })
            }
            Terminal::Empty => EMPTY,
            Terminal::Other {
                label: other,
                value,
            } => {
                if other == label {
                    return Err(MapProofError::Impossible(
                        "the other leaf is the asked label",
                    ));
                }
                if (0..self.siblings.len()).any(|i| other.bit(i) != label.bit(i)) {
                    return Err(MapProofError::Impossible("the other leaf is off the path"));
                }
                if value.version == 0 {
                    return Err(MapProofError::Impossible("a leaf of version 0"));
                }
                leaf_hash(other, value)
            }
        };
        self.fold(label, bottom)
    }

    /// Hashes `bottom` up the path of `label` to the root.
    fn fold(&self, label: &Label, bottom: Hash32) -> Result<Hash32, MapProofError> {
        // Below the root, the subtree beside the path's end always holds something: else the
        // end would have been one level higher.
        if self.siblings.last() == Some(&EMPTY) {
            return Err(MapProofError::Impossible("the last sibling is empty"));
        }
        let mut hash = bottom;
        for (depth, sibling) in self.siblings.iter().enumerate().rev() {
            hash = if label.bit(depth) {
                inner_hash(sibling, &hash)
            } else {
                inner_hash(&hash, sibling)
            };
        }
        Ok(hash)
    }
}

impl From<EndsEarly> for MapProofError {
    fn from(_: EndsEarly) -> MapProofError {
        MapProofError::Malformed("too short")
    }
}
