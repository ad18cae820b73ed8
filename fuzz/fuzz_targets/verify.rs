//! kt_log::verify: verify_inclusion and verify_consistency.
//!
//! Mode 0: sizes, index, hashes and the proof all cut from the input: never panics.
//! Mode 1: a real tree of up to 300 distinct leaves; proofs made by kt_log::tree from it must
//! verify, and the same proof with one fuzz-chosen change (a flipped bit, a hash added or
//! removed, another index or size) must not.
//! Mode 2: the same for trees of any size up to 2^64-1 whose leaves are all equal (so each
//! level's node hash is one value and proofs of any size are cheap): exercises the size and
//! index arithmetic at the u64 edges.
#![no_main]

use std::sync::LazyLock;

use kt_fuzz::{split_mode, take_u64};
use kt_log::hash::{leaf_hash, node_hash, Hash};
use kt_log::tree::{consistency_proof, inclusion_proof, range_hash, NodeId, NodeReader};
use kt_log::verify::{verify_consistency, verify_inclusion};
use libfuzzer_sys::fuzz_target;

fn take_hash(data: &[u8]) -> (Hash, &[u8]) {
    let n = data.len().min(32);
    let mut h = [0u8; 32];
    h[..n].copy_from_slice(&data[..n]);
    (Hash(h), &data[n..])
}

fn hashes(data: &[u8]) -> Vec<Hash> {
    data.chunks(32).map(|c| take_hash(c).0).collect()
}

/// A tree of distinct leaves, all complete nodes precomputed (levels[l][i]).
struct SmallTree {
    levels: Vec<Vec<Hash>>,
}

impl SmallTree {
    fn new(size: u64, salt: u8) -> SmallTree {
        let leaves: Vec<Hash> = (0..size)
            .map(|i| leaf_hash(&[&i.to_be_bytes()[..], &[salt]].concat()))
            .collect();
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().expect("non-empty");
            let up = below.chunks_exact(2).map(|p| node_hash(&p[0], &p[1])).collect();
            levels.push(up);
        }
        SmallTree { levels }
    }
}

impl NodeReader for SmallTree {
    type Error = ();
    fn node(&self, id: NodeId) -> Result<Hash, ()> {
        self.levels
            .get(id.level as usize)
            .and_then(|l| l.get(usize::try_from(id.index).ok()?))
            .copied()
            .ok_or(())
    }
}

/// A tree of any size whose leaves all hash to `leaf_hash(b"")`: node (l, i) is LEVEL[l].
struct UniformTree;

static LEVEL: LazyLock<Vec<Hash>> = LazyLock::new(|| {
    let mut levels = vec![leaf_hash(b"")];
    for l in 0..64 {
        let h = levels[l];
        levels.push(node_hash(&h, &h));
    }
    levels
});

impl NodeReader for UniformTree {
    type Error = ();
    fn node(&self, id: NodeId) -> Result<Hash, ()> {
        LEVEL.get(id.level as usize).copied().ok_or(())
    }
}

/// One change to a valid proof that must make it fail.
fn mutate(proof: &[Hash], how: u8, at: u64) -> Option<Vec<Hash>> {
    let mut p = proof.to_vec();
    match how % 3 {
        0 if !p.is_empty() => {
            let i = (at % p.len() as u64) as usize;
            let bit = (at >> 8) % 256;
            p[i].0[(bit / 8) as usize] ^= 1 << (bit % 8);
        }
        1 => p.push(Hash([how; 32])),
        2 if !p.is_empty() => {
            p.remove((at % p.len() as u64) as usize);
        }
        _ => return None,
    }
    Some(p)
}

fn differential<R: NodeReader<Error = ()>>(reader: &R, size: u64, a: u64, b: u64, how: u8, at: u64, distinct: bool) {
    if size == 0 {
        return;
    }
    let root = range_hash(reader, 0, size).expect("in tree");
    // Inclusion of leaf `index`.
    let index = a % size;
    let leaf = reader.node(NodeId { level: 0, index }).expect("in tree");
    let proof = inclusion_proof(reader, index, size).expect("in tree");
    let ok = verify_inclusion(index, size, &leaf, &proof, &root);
    assert!(ok.is_ok(), "valid inclusion proof refused: index {index} size {size}: {ok:?}");
    if let Some(bad) = mutate(&proof, how, at) {
        assert!(
            verify_inclusion(index, size, &leaf, &bad, &root).is_err(),
            "changed inclusion proof accepted: index {index} size {size} change {how}"
        );
    }
    if distinct && size > 1 {
        let other = (index + 1 + at % (size - 1)) % size;
        assert!(
            verify_inclusion(other, size, &leaf, &proof, &root).is_err(),
            "proof of {index} accepted for {other} (size {size})"
        );
    }
    assert!(verify_inclusion(index, size, &leaf, &proof, &Hash([0xAA; 32])).is_err());
    // Consistency from `old` to `size`.
    let old = b.checked_rem(size.wrapping_add(1)).unwrap_or(b); // any old <= size
    let old_root = range_hash(reader, 0, old).expect("in tree");
    let cproof = if old == 0 {
        Vec::new()
    } else {
        consistency_proof(reader, old, size).expect("in tree")
    };
    let ok = verify_consistency(old, size, &old_root, &root, &cproof);
    assert!(ok.is_ok(), "valid consistency proof refused: {old} -> {size}: {ok:?}");
    if let Some(bad) = mutate(&cproof, how, at) {
        assert!(
            verify_consistency(old, size, &old_root, &root, &bad).is_err(),
            "changed consistency proof accepted: {old} -> {size} change {how}"
        );
    }
    if old > 0 && old < size {
        let wrong = Hash([0x55; 32]);
        assert!(verify_consistency(old, size, &wrong, &root, &cproof).is_err());
        assert!(verify_consistency(old, size, &old_root, &wrong, &cproof).is_err());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    match mode % 3 {
        0 => {
            let (x, rest) = take_u64(rest);
            let (y, rest) = take_u64(rest);
            let (h1, rest) = take_hash(rest);
            let (h2, rest) = take_hash(rest);
            let proof = hashes(rest);
            if mode & 0x10 == 0 {
                let _ = verify_inclusion(x, y, &h1, &proof, &h2);
            } else {
                let _ = verify_consistency(x, y, &h1, &h2, &proof);
            }
        }
        1 => {
            let (size, _) = take_u64(rest.get(..2).unwrap_or(rest));
            let rest = data.get(3..).unwrap_or_default();
            let (a, rest) = take_u64(rest);
            let (b, rest) = take_u64(rest);
            let (at, rest) = take_u64(rest);
            let how = rest.first().copied().unwrap_or(0);
            let size = size % 301;
            differential(&SmallTree::new(size, mode), size, a, b, how, at, true);
        }
        _ => {
            let (size, rest) = take_u64(rest);
            let (a, rest) = take_u64(rest);
            let (b, rest) = take_u64(rest);
            let (at, rest) = take_u64(rest);
            let how = rest.first().copied().unwrap_or(0);
            differential(&UniformTree, size, a, b, how, at, false);
        }
    }
});
