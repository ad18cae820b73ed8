//! Tree geometry, the append frontier, and RFC 9162 proof generation.
//!
//! A log of `n` entries is stored as its *complete* subtrees only: node `(level, index)` is the
//! root of the `2^level` leaves `index·2^level .. (index+1)·2^level`, and it exists once all of
//! them do. Such nodes never change, so they can be written once, in post-order, to an
//! append-only store ([`NodeId::postorder`]). Every other hash — the root of any past size, the
//! right-edge siblings in proofs — is recomputed from O(log n) complete nodes, which is what
//! lets the log prove inclusion and consistency for *every* past size without storing them.
//!
//! Proof generation here is pure: it reads complete nodes through a [`NodeReader`] and follows
//! RFC 9162 §2.1.3.1 (PATH) and §2.1.4.1 (SUBPROOF) literally.

use crate::hash::{empty_root, node_hash, Hash};

/// A complete subtree: the root of leaves `index·2^level .. (index+1)·2^level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId {
    /// Height above the leaves (leaves are level 0).
    pub level: u32,
    /// Position among the nodes of that level, from the left.
    pub index: u64,
}

impl NodeId {
    /// The node's position in post-order (left subtree, right subtree, node), counting from 0.
    ///
    /// Post-order makes the set of complete nodes append-only: appending leaf `n` adds the leaf
    /// and then exactly the parents it completes, at the next positions.
    pub fn postorder(self) -> u64 {
        let first_leaf = self.index << self.level;
        node_count(first_leaf) + (1u64 << (self.level + 1)) - 2
    }
}

/// Number of complete nodes in a tree of `size` leaves: `2·size − popcount(size)`.
pub fn node_count(size: u64) -> u64 {
    2 * size - u64::from(size.count_ones())
}

/// The complete subtrees whose concatenation is the leaf range `start..end`, left to right.
///
/// `start` must be a multiple of a power of two at least `end - start` (true of every range
/// RFC 9162's recursions produce, and of `0..n`); the result then has the RFC 9162 shape and
/// [`fold_right`] of its hashes is the range's Merkle tree hash.
pub fn range_nodes(start: u64, end: u64) -> Vec<NodeId> {
    let mut nodes = Vec::new();
    let mut at = start;
    while at < end {
        let mut level = if at == 0 { 63 } else { at.trailing_zeros() };
        while level > 0 && (1u64 << level) > end - at {
            level -= 1;
        }
        nodes.push(NodeId {
            level,
            index: at >> level,
        });
        at += 1u64 << level;
    }
    nodes
}

/// Combines subtree hashes listed left to right into their Merkle tree hash, right to left.
pub fn fold_right(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |acc, left| node_hash(left, &acc))
}

/// Largest power of two strictly less than `n` (`n ≥ 2`).
fn split_point(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Where proof generation reads complete subtree hashes from.
pub trait NodeReader {
    /// What a failed read reports.
    type Error;
    /// The hash of complete node `id`. Called only for nodes of the tree being proven.
    fn node(&self, id: NodeId) -> Result<Hash, Self::Error>;

    /// The hashes of complete nodes `ids`, one per id, in order: what one proof needs, read
    /// at once (a store across a network answers them in one round trip). By default one
    /// [`node`](NodeReader::node) call each.
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error> {
        ids.iter().map(|&id| self.node(id)).collect()
    }
}

/// The Merkle tree hashes of leaf ranges `ranges` (each as [`range_hash`]), their nodes read
/// in one [`NodeReader::nodes`] call.
fn range_hashes<R: NodeReader>(reader: &R, ranges: &[(u64, u64)]) -> Result<Vec<Hash>, R::Error> {
    let per_range: Vec<Vec<NodeId>> = ranges
        .iter()
        .map(|&(start, end)| range_nodes(start, end))
        .collect();
    let ids: Vec<NodeId> = per_range.iter().flatten().copied().collect();
    let mut hashes = reader.nodes(&ids)?;
    if hashes.len() != ids.len() {
        // A reader that broke the one-hash-per-id contract: read them one by one instead.
        hashes = ids
            .iter()
            .map(|&id| reader.node(id))
            .collect::<Result<_, _>>()?;
    }
    let mut rest = hashes.as_slice();
    Ok(per_range
        .iter()
        .map(|nodes| {
            let (these, after) = rest.split_at(nodes.len());
            rest = after;
            fold_right(these)
        })
        .collect())
}

/// Merkle tree hash of leaves `start..end` (see [`range_nodes`] for the precondition).
pub fn range_hash<R: NodeReader>(reader: &R, start: u64, end: u64) -> Result<Hash, R::Error> {
    let hashes = range_nodes(start, end)
        .into_iter()
        .map(|id| reader.node(id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(fold_right(&hashes))
}

/// RFC 9162 §2.1.3.1 audit path for leaf `index` in the tree of the first `size` leaves,
/// bottom-up. The caller checks `index < size ≤` the stored size.
pub fn inclusion_proof<R: NodeReader>(
    reader: &R,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, R::Error> {
    let mut ranges = Vec::new();
    path(index, 0, size, &mut ranges);
    range_hashes(reader, &ranges)
}

/// The leaf ranges whose hashes make the audit path of leaf `m` in `lo..hi`, bottom-up.
fn path(m: u64, lo: u64, hi: u64, out: &mut Vec<(u64, u64)>) {
    let n = hi - lo;
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if m < k {
        path(m, lo, lo + k, out);
        out.push((lo + k, hi));
    } else {
        path(m - k, lo + k, hi, out);
        out.push((lo, lo + k));
    }
}

/// RFC 9162 §2.1.4.1 consistency proof from the first `old` leaves to the first `new`.
/// The caller checks `1 ≤ old ≤ new ≤` the stored size. Empty when `old == new`.
pub fn consistency_proof<R: NodeReader>(
    reader: &R,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, R::Error> {
    let mut ranges = Vec::new();
    if old < new {
        subproof(old, 0, new, true, &mut ranges);
    }
    range_hashes(reader, &ranges)
}

/// The leaf ranges whose hashes make the consistency proof of the first `m` leaves of
/// `lo..hi` (RFC 9162 SUBPROOF; `whole`: `lo..lo + m` is the whole old tree).
fn subproof(m: u64, lo: u64, hi: u64, whole: bool, out: &mut Vec<(u64, u64)>) {
    let n = hi - lo;
    if m == n {
        if !whole {
            out.push((lo, hi));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(m, lo, lo + k, whole, out);
        out.push((lo + k, hi));
    } else {
        subproof(m - k, lo + k, hi, false, out);
        out.push((lo, lo + k));
    }
}

/// The right edge of a growing tree: the hashes of the complete subtrees that make up its
/// first `size` leaves (one per set bit of `size`, largest first).
///
/// It is all the state needed to append leaves and to compute the current root, so a log
/// reopens by reading these O(log n) hashes and nothing else. Auditors use it to recompute a
/// tree from downloaded entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// The complete nodes a frontier of `size` leaves consists of, left to right.
    pub fn node_ids(size: u64) -> Vec<NodeId> {
        range_nodes(0, size)
    }

    /// Rebuilds the frontier of `size` leaves from the hashes of [`Frontier::node_ids`].
    /// Returns `None` when the number of hashes does not match.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Option<Frontier> {
        (hashes.len() == size.count_ones() as usize).then_some(Frontier { size, hashes })
    }

    /// Number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its hashes, left to right: the nodes of [`Frontier::node_ids`] (to save it).
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends a leaf hash. `emit` receives the leaf and then every node the leaf completes,
    /// bottom-up: exactly the next nodes in post-order.
    pub fn push(&mut self, leaf: Hash, mut emit: impl FnMut(Hash)) {
        emit(leaf);
        let mut hash = leaf;
        let mut completed = self.size;
        while completed & 1 == 1 {
            // A set low bit means the last frontier hash is this node's left sibling.
            let Some(left) = self.hashes.pop() else {
                break;
            };
            hash = node_hash(&left, &hash);
            emit(hash);
            completed >>= 1;
        }
        self.hashes.push(hash);
        self.size += 1;
    }

    /// The RFC 9162 Merkle tree hash of the leaves appended so far.
    pub fn root(&self) -> Hash {
        fold_right(&self.hashes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn postorder_positions_are_dense_and_ordered() {
        // Appending leaves 0..64 must emit positions 0,1,2,… in order.
        let mut frontier = Frontier::new();
        let mut emitted = Vec::new();
        for i in 0..64u64 {
            frontier.push(leaf_hash(&i.to_be_bytes()), |h| emitted.push(h));
        }
        assert_eq!(emitted.len() as u64, node_count(64));
        for level in 0..=6u32 {
            for index in 0..(64u64 >> level) {
                let id = NodeId { level, index };
                let pos = id.postorder() as usize;
                let leaves = (index << level)..((index + 1) << level);
                let hashes: Vec<Hash> = leaves.map(|i| leaf_hash(&i.to_be_bytes())).collect();
                assert_eq!(emitted[pos], fold_right_complete(&hashes), "{id:?}");
            }
        }
    }

    fn fold_right_complete(leaves: &[Hash]) -> Hash {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let half = leaves.len() / 2;
        node_hash(
            &fold_right_complete(&leaves[..half]),
            &fold_right_complete(&leaves[half..]),
        )
    }

    #[test]
    fn range_nodes_decompose_by_binary_digits() {
        assert_eq!(range_nodes(0, 0), vec![]);
        let ids: Vec<(u32, u64)> = range_nodes(0, 13)
            .into_iter()
            .map(|n| (n.level, n.index))
            .collect();
        assert_eq!(ids, vec![(3, 0), (2, 2), (0, 12)]);
        let ids: Vec<(u32, u64)> = range_nodes(8, 15)
            .into_iter()
            .map(|n| (n.level, n.index))
            .collect();
        assert_eq!(ids, vec![(2, 2), (1, 6), (0, 14)]);
    }

    #[test]
    fn split_point_is_largest_smaller_power_of_two() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(1 << 40), 1 << 39);
    }

    #[test]
    fn frontier_from_parts_checks_count() {
        assert!(Frontier::from_parts(5, vec![Hash::default()]).is_none());
        assert!(Frontier::from_parts(5, vec![Hash::default(); 2]).is_some());
    }
}
