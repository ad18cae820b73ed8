//! Verification of inclusion and consistency proofs, RFC 9162 §2.1.3.2 and §2.1.4.2.
//!
//! Guarantees: [`verify_inclusion`] returns [`VerifiedInclusion`] only if `leaf_hash` is the
//! hash at `index` of the tree of `size` leaves whose root is `root`; [`verify_consistency`]
//! returns [`VerifiedConsistency`] only if the tree with root `old_root` of `old_size` leaves
//! is a prefix of the tree with root `new_root` of `new_size` leaves (under SHA-256 collision
//! resistance). The proof length is checked exactly, so a hash added to or removed from a
//! valid proof is rejected rather than ignored. Both result types have private fields: holding
//! one is evidence that the check ran and passed.

use thiserror::Error;

use crate::hash::{node_hash, Hash};

/// Why a proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The index claimed.
        index: u64,
        /// The tree size claimed.
        size: u64,
    },
    /// The older size is larger than the newer one.
    #[error("old size {old} is larger than new size {new}")]
    SizesOutOfOrder {
        /// The older size claimed.
        old: u64,
        /// The newer size claimed.
        new: u64,
    },
    /// The proof has the wrong number of hashes for the sizes claimed.
    #[error("proof has {got} hashes, sizes require {expected}")]
    WrongProofLength {
        /// How many the sizes require.
        expected: usize,
        /// How many the proof has.
        got: usize,
    },
    /// The proof recomputes a root other than the one claimed.
    #[error("proof computes root {computed}, expected {expected}")]
    RootMismatch {
        /// The root the proof leads to.
        computed: Hash,
        /// The root it was checked against.
        expected: Hash,
    },
    /// The proof recomputes an older root other than the one claimed.
    #[error("proof computes old root {computed}, expected {expected}")]
    OldRootMismatch {
        /// The old root the proof leads to.
        computed: Hash,
        /// The old root it was checked against.
        expected: Hash,
    },
    /// Two checkpoints compared for consistency name different logs.
    #[error("the checkpoints are of different logs")]
    DifferentLogs,
}

/// Evidence that a leaf is included in a tree: made only by [`verify_inclusion`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedInclusion {
    index: u64,
    size: u64,
    root: Hash,
}

impl VerifiedInclusion {
    /// The verified leaf index.
    pub fn index(&self) -> u64 {
        self.index
    }
    /// The size of the tree the leaf is in.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The root the leaf was proven against.
    pub fn root(&self) -> Hash {
        self.root
    }
}

/// Evidence that one tree is a prefix of another: made only by [`verify_consistency`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedConsistency {
    old_size: u64,
    new_size: u64,
}

impl VerifiedConsistency {
    /// Size of the older tree.
    pub fn old_size(&self) -> u64 {
        self.old_size
    }
    /// Size of the newer tree.
    pub fn new_size(&self) -> u64 {
        self.new_size
    }
}

/// Number of hashes in an inclusion proof for `index` in a tree of `size` leaves.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    // Levels where the path has a sibling: bits below the highest bit in which index and the
    // last index differ, plus the levels above it that the right edge still has.
    let last = size - 1;
    let inner = 64 - (index ^ last).leading_zeros();
    // `inner` is 64 when the top bits differ: nothing is left above it (a plain `>>` by 64
    // would overflow; found by fuzzing).
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Checks that `leaf_hash` is leaf `index` of the tree of `size` leaves with root `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<VerifiedInclusion, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    let mut f_n = index;
    let mut s_n = size - 1;
    let mut r = *leaf_hash;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if r != *root {
        return Err(ProofError::RootMismatch {
            computed: r,
            expected: *root,
        });
    }
    Ok(VerifiedInclusion {
        index,
        size,
        root: *root,
    })
}

/// Number of hashes in a consistency proof from `old` to `new` leaves (`0 < old < new`).
fn consistency_proof_len(old: u64, new: u64) -> usize {
    // The old tree's complete left part shares a prefix with the new tree; below the highest
    // differing bit of (old-1, new-1) the path is as in an inclusion proof of leaf old-1.
    let shift = (old).trailing_zeros();
    let f_n = (old - 1) >> shift;
    let s_n = (new - 1) >> shift;
    let inner = 64 - (f_n ^ s_n).leading_zeros();
    let border = f_n.checked_shr(inner).unwrap_or(0).count_ones();
    // A power-of-two old tree is its own first hash, which the proof then omits.
    let first = usize::from(!old.is_power_of_two());
    (inner + border) as usize + first
}

/// Checks that the tree (`old_size`, `old_root`) is a prefix of (`new_size`, `new_root`).
///
/// An empty old tree is a prefix of every tree (empty proof required); equal sizes require an
/// empty proof and equal roots.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<VerifiedConsistency, ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder {
            old: old_size,
            new: new_size,
        });
    }
    let ok = VerifiedConsistency { old_size, new_size };
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if old_size == new_size && old_root != new_root {
            return Err(ProofError::RootMismatch {
                computed: *old_root,
                expected: *new_root,
            });
        }
        return Ok(ok);
    }
    let expected = consistency_proof_len(old_size, new_size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    // RFC 9162 §2.1.4.2: a power-of-two old tree is the first node of the path.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);

    let mut f_n = old_size - 1;
    let mut s_n = new_size - 1;
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let mut f_r = path[0];
    let mut s_r = path[0];
    for c in &path[1..] {
        if s_n == 0 {
            return Err(ProofError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if f_r != *old_root {
        return Err(ProofError::OldRootMismatch {
            computed: f_r,
            expected: *old_root,
        });
    }
    if s_r != *new_root {
        return Err(ProofError::RootMismatch {
            computed: s_r,
            expected: *new_root,
        });
    }
    Ok(ok)
}
