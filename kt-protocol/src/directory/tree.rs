//! The map in memory: every label's leaf, the root over them, and proofs.
//!
//! **The tree** (what the root commits to; [`super::proof`] verifies against it). Over a set
//! of leaves whose labels share their first `d` bits, the subtree hash is [`EMPTY`] for no
//! leaf, the leaf's [`leaf_hash`] for one, and otherwise `inner_hash(left, right)` of the
//! subtrees of the leaves whose bit `d` is 0 and 1. The root is the subtree of all leaves at
//! depth 0. So the tree has one shape per set of leaves, whatever order they came in, and a
//! path is as deep as the label's longest common prefix with another label (about `log2 n`
//! for VRF labels).
//!
//! **The layout** (how it is kept, not part of the protocol). Leaves sit in 2^16 buckets by
//! their first 16 bits, each sorted by label and shared (`Arc`), so that a copy of the whole
//! map for a snapshot costs 2^16 reference counts. Above the buckets a complete binary heap
//! holds each of the top 16 levels' subtree hashes and leaf counts; inside a bucket (about
//! `n / 65,536` leaves) the hashes are recomputed when needed. A proof therefore costs about
//! two hashes per leaf of one bucket, and a change of `k` labels about `k` bucket hashes plus
//! `16 k` heap hashes at most.
//!
//! **Changes come in batches**: [`Map::stage`] computes a batch's new buckets, heap nodes
//! and root beside the map without changing it, and [`Map::commit`] swaps them in. The AS
//! stages a batch, makes the log durable, and only then commits, so that a reader always sees
//! a map whose root is in the log.

use std::sync::Arc;

use super::hash::{inner_hash, leaf_hash, Hash32, LeafValue, EMPTY};
use super::proof::{MapProof, Terminal};
use super::vrf::Label;

/// Bits of a label that choose its bucket.
const BUCKET_BITS: usize = 16;
/// Number of buckets; also the heap index of the first bucket node.
const BUCKETS: usize = 1 << BUCKET_BITS;
/// Bytes of one leaf in [`Map::write_leaves`].
pub const LEAF_BYTES: usize = 72;

/// One label's leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// Where.
    pub label: Label,
    /// What.
    pub value: LeafValue,
}

impl Leaf {
    /// The leaf written as `label ‖ u64be(version) ‖ head` ([`Map::write_leaves`]).
    pub fn from_bytes(bytes: &[u8; LEAF_BYTES]) -> Leaf {
        let mut label = [0u8; 32];
        label.copy_from_slice(&bytes[..32]);
        let mut version = [0u8; 8];
        version.copy_from_slice(&bytes[32..40]);
        let mut head = [0u8; 32];
        head.copy_from_slice(&bytes[40..]);
        Leaf {
            label: Label(label),
            value: LeafValue {
                version: u64::from_be_bytes(version),
                head,
            },
        }
    }
}

/// The map; see the module documentation.
#[derive(Clone)]
pub struct Map {
    buckets: Vec<Arc<Vec<Leaf>>>,
    /// Heap of subtree hashes: node 1 is the root, node `i` has children `2i` and `2i + 1`,
    /// nodes `BUCKETS..2 * BUCKETS` are the buckets' subtrees (depth 16).
    nodes: Vec<Hash32>,
    /// Leaves under each heap node, indexed like `nodes`.
    counts: Vec<u64>,
}

impl Default for Map {
    fn default() -> Self {
        Map::new()
    }
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("len", &self.len())
            .field("root", &self.root())
            .finish()
    }
}

/// A batch's changes, computed by [`Map::stage`] and applied by [`Map::commit`].
#[derive(Debug)]
pub struct Staged {
    buckets: Vec<(usize, Arc<Vec<Leaf>>)>,
    nodes: Vec<(usize, Hash32, u64)>,
    root: Hash32,
    len: u64,
}

impl Staged {
    /// The map's root once committed.
    pub fn root(&self) -> Hash32 {
        self.root
    }

    /// The map's number of labels once committed.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the map will be empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Map {
    /// The empty map.
    pub fn new() -> Map {
        Map {
            // One shared empty bucket: buckets are never changed in place, only replaced.
            buckets: std::iter::repeat_n(Arc::new(Vec::new()), BUCKETS).collect(),
            nodes: vec![EMPTY; 2 * BUCKETS],
            counts: vec![0; 2 * BUCKETS],
        }
    }

    /// The map of `leaves`, which must be sorted by label with no label twice (`None`
    /// otherwise).
    pub fn from_sorted(leaves: impl IntoIterator<Item = Leaf>) -> Option<Map> {
        let mut buckets: Vec<Vec<Leaf>> = vec![Vec::new(); BUCKETS];
        let mut last: Option<Label> = None;
        for leaf in leaves {
            if last.is_some_and(|l| l >= leaf.label) || leaf.value.version == 0 {
                return None;
            }
            last = Some(leaf.label);
            buckets[bucket_of(&leaf.label)].push(leaf);
        }
        let mut map = Map::new();
        for (b, mut leaves) in buckets.into_iter().enumerate() {
            // Filled by pushes, a bucket may hold room for as many leaves again: kept for
            // good, that room would be a large part of the map's memory.
            leaves.shrink_to_fit();
            map.counts[BUCKETS + b] = leaves.len() as u64;
            map.nodes[BUCKETS + b] = subtree(&leaves, BUCKET_BITS);
            map.buckets[b] = Arc::new(leaves);
        }
        for i in (1..BUCKETS).rev() {
            let (hash, count) = combine(
                (map.nodes[2 * i], map.counts[2 * i]),
                (map.nodes[2 * i + 1], map.counts[2 * i + 1]),
            );
            map.nodes[i] = hash;
            map.counts[i] = count;
        }
        Some(map)
    }

    /// The root hash.
    pub fn root(&self) -> Hash32 {
        self.nodes[1]
    }

    /// The number of labels.
    pub fn len(&self) -> u64 {
        self.counts[1]
    }

    /// Whether the map holds no label.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `label`, if it is in the map.
    pub fn get(&self, label: &Label) -> Option<LeafValue> {
        let bucket = &self.buckets[bucket_of(label)];
        bucket
            .binary_search_by(|leaf| leaf.label.cmp(label))
            .ok()
            .map(|i| bucket[i].value)
    }

    /// Every leaf, sorted by label.
    pub fn leaves(&self) -> impl Iterator<Item = &Leaf> + '_ {
        self.buckets.iter().flat_map(|b| b.iter())
    }

    /// Writes every leaf, sorted by label, as [`LEAF_BYTES`] bytes each (`label ‖
    /// u64be(version) ‖ head`): the one form in which the map is saved (the AS's snapshot,
    /// an auditor's resumable state).
    pub fn write_leaves(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        for leaf in self.leaves() {
            out.write_all(&leaf.label.0)?;
            out.write_all(&leaf.value.version.to_be_bytes())?;
            out.write_all(&leaf.value.head)?;
        }
        Ok(())
    }

    /// The map of leaves written by [`Map::write_leaves`]; `None` unless `bytes` are whole
    /// leaves, sorted, each label once, no version 0.
    pub fn read_leaves(bytes: &[u8]) -> Option<Map> {
        if !bytes.len().is_multiple_of(LEAF_BYTES) {
            return None;
        }
        Map::from_sorted(
            bytes
                .chunks_exact(LEAF_BYTES)
                .filter_map(|chunk| chunk.try_into().ok())
                .map(Leaf::from_bytes),
        )
    }

    /// The proof of `label` against [`Map::root`], and its value if present.
    pub fn prove(&self, label: &Label) -> (MapProof, Option<LeafValue>) {
        (self.path(label), self.get(label))
    }

    /// The path of `label` (see [`super::proof`]).
    fn path(&self, label: &Label) -> MapProof {
        let mut siblings = Vec::new();
        let mut i = 1;
        while i < BUCKETS {
            if self.counts[i] <= 1 {
                let terminal = match self.counts[i] {
                    0 => Terminal::Empty,
                    _ => {
                        let mut j = i;
                        while j < BUCKETS {
                            j = if self.counts[2 * j] == 1 {
                                2 * j
                            } else {
                                2 * j + 1
                            };
                        }
                        terminal_of(label, &self.buckets[j - BUCKETS][0])
                    }
                };
                return finish(siblings, terminal);
            }
            let depth = siblings.len();
            let (near, far) = if label.bit(depth) {
                (2 * i + 1, 2 * i)
            } else {
                (2 * i, 2 * i + 1)
            };
            siblings.push(self.nodes[far]);
            i = near;
        }
        let mut leaves: &[Leaf] = &self.buckets[i - BUCKETS];
        loop {
            match leaves {
                [] => return finish(siblings, Terminal::Empty),
                [leaf] => return finish(siblings, terminal_of(label, leaf)),
                _ => {
                    let depth = siblings.len();
                    let split = leaves.partition_point(|l| !l.label.bit(depth));
                    let (zero, one) = leaves.split_at(split);
                    let (near, far) = if label.bit(depth) {
                        (one, zero)
                    } else {
                        (zero, one)
                    };
                    siblings.push(subtree(far, depth + 1));
                    leaves = near;
                }
            }
        }
    }

    /// The map's changes if each `(label, value)` is set (later ones win), without changing
    /// the map.
    pub fn stage(&self, changes: &[(Label, LeafValue)]) -> Staged {
        // The changes by bucket, in their order within each bucket (so later ones win).
        let mut order: Vec<(usize, usize)> = changes
            .iter()
            .enumerate()
            .map(|(i, (label, _))| (bucket_of(label), i))
            .collect();
        order.sort_unstable();
        let mut buckets = Vec::new();
        // The staged heap nodes of one level, sorted by index: all at one depth, since every
        // path starts at a bucket node.
        let mut level: Vec<(usize, Hash32, u64)> = Vec::new();
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            let b = group[0].0;
            let mut leaves = self.buckets[b].as_ref().clone();
            leaves.reserve(group.len());
            for &(_, i) in group {
                let (label, value) = changes[i];
                let leaf = Leaf { label, value };
                match leaves.binary_search_by(|l| l.label.cmp(&label)) {
                    Ok(at) => leaves[at] = leaf,
                    Err(at) => leaves.insert(at, leaf),
                }
            }
            level.push((
                BUCKETS + b,
                subtree(&leaves, BUCKET_BITS),
                leaves.len() as u64,
            ));
            buckets.push((b, Arc::new(leaves)));
        }
        let mut nodes = Vec::with_capacity(level.len() * 2 + BUCKET_BITS);
        while level.first().is_some_and(|node| node.0 > 1) {
            let mut above = Vec::with_capacity(level.len().div_ceil(2));
            for pair in level.chunk_by(|a, b| a.0 / 2 == b.0 / 2) {
                let parent = pair[0].0 / 2;
                let mut children =
                    [2 * parent, 2 * parent + 1].map(|j| (self.nodes[j], self.counts[j]));
                for &(j, hash, count) in pair {
                    children[j % 2] = (hash, count);
                }
                let (hash, count) = combine(children[0], children[1]);
                above.push((parent, hash, count));
            }
            nodes.append(&mut level);
            level = above;
        }
        let (root, len) = level
            .first()
            .map_or((self.nodes[1], self.counts[1]), |&(_, hash, count)| {
                (hash, count)
            });
        nodes.append(&mut level);
        Staged {
            buckets,
            nodes,
            root,
            len,
        }
    }

    /// Applies a batch that [`Map::stage`] computed on this map as it is now.
    pub fn commit(&mut self, staged: Staged) {
        for (b, leaves) in staged.buckets {
            self.buckets[b] = leaves;
        }
        for (i, hash, count) in staged.nodes {
            self.nodes[i] = hash;
            self.counts[i] = count;
        }
    }
}

/// The hash and count of a heap node from its children's.
fn combine((l, lc): (Hash32, u64), (r, rc): (Hash32, u64)) -> (Hash32, u64) {
    let hash = match lc + rc {
        0 => EMPTY,
        // One leaf below: the subtree is that leaf.
        1 => {
            if lc == 1 {
                l
            } else {
                r
            }
        }
        _ => inner_hash(&l, &r),
    };
    (hash, lc + rc)
}

/// The bucket of `label`: its first 16 bits.
fn bucket_of(label: &Label) -> usize {
    usize::from(u16::from_be_bytes([label.0[0], label.0[1]]))
}

/// The subtree hash of `leaves` (sorted, sharing their first `depth` bits).
fn subtree(leaves: &[Leaf], depth: usize) -> Hash32 {
    match leaves {
        [] => EMPTY,
        [leaf] => leaf_hash(&leaf.label, &leaf.value),
        _ => {
            let split = leaves.partition_point(|l| !l.label.bit(depth));
            let (zero, one) = leaves.split_at(split);
            inner_hash(&subtree(zero, depth + 1), &subtree(one, depth + 1))
        }
    }
}

/// What a path for `asked` that ends at `leaf` ends in.
fn terminal_of(asked: &Label, leaf: &Leaf) -> Terminal {
    if leaf.label == *asked {
        Terminal::Asked
    } else {
        Terminal::Other {
            label: leaf.label,
            value: leaf.value,
        }
    }
}

fn finish(siblings: Vec<Hash32>, terminal: Terminal) -> MapProof {
    MapProof { siblings, terminal }
}
