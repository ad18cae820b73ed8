//! Pure tree benchmarks (no storage): hashing throughput, proof generation over an in-memory
//! node source, and proof verification, at 1 M and 10 M entries.
//!
//! Large trees cost nothing to set up here: in a tree whose leaves are all equal, every node at
//! level L has the same hash, so a node source that returns `level_hash[L]` describes a fully
//! consistent tree of any size, and proofs from it verify against its real root.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kt_log::hash::{leaf_hash, node_hash, Hash};
use kt_log::tree::{self, Frontier, NodeId, NodeReader};
use kt_log::verify::{verify_consistency, verify_inclusion};

struct UniformTree {
    level_hash: Vec<Hash>,
}

impl UniformTree {
    fn new() -> UniformTree {
        let mut level_hash = vec![leaf_hash(b"uniform leaf")];
        for l in 1..64 {
            let below = level_hash[l - 1];
            level_hash.push(node_hash(&below, &below));
        }
        UniformTree { level_hash }
    }
}

impl NodeReader for UniformTree {
    type Error = Infallible;
    fn node(&self, id: NodeId) -> Result<Hash, Infallible> {
        Ok(self.level_hash[id.level as usize])
    }
}

fn hashing(c: &mut Criterion) {
    let mut group = c.benchmark_group("tree_hashing");
    const N: u64 = 4096;
    group.throughput(Throughput::Elements(N));
    let leaves: Vec<Hash> = (0..N).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    group.bench_function("interior_nodes_per_leaf", |b| {
        b.iter_batched(
            Frontier::new,
            |mut f| {
                for leaf in &leaves {
                    f.push(*leaf, |_| {});
                }
                f.root()
            },
            BatchSize::SmallInput,
        )
    });
    let entries: Vec<Vec<u8>> = (0..N).map(|i| vec![(i % 251) as u8; 500]).collect();
    group.bench_function("leaf_and_interior_500B_entries", |b| {
        b.iter_batched(
            Frontier::new,
            |mut f| {
                for e in &entries {
                    f.push(leaf_hash(e), |_| {});
                }
                f.root()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn proofs(c: &mut Criterion) {
    let tree = UniformTree::new();
    for size in [1_000_000u64, 10_000_000] {
        let label = format!("{}M", size / 1_000_000);
        let root = tree::range_hash(&tree, 0, size).unwrap();
        let mut group = c.benchmark_group(format!("proofs_{label}"));
        let mut i = 0u64;
        group.bench_function("inclusion_generate", |b| {
            b.iter(|| {
                i = (i + 7_919_993) % size;
                tree::inclusion_proof(&tree, i, size).unwrap()
            })
        });
        let index = size / 3;
        let proof = tree::inclusion_proof(&tree, index, size).unwrap();
        let leaf = tree.level_hash[0];
        verify_inclusion(index, size, &leaf, &proof, &root).unwrap();
        group.bench_function("inclusion_verify", |b| {
            b.iter(|| verify_inclusion(index, size, &leaf, &proof, &root).unwrap())
        });
        let old = size / 3 + 1;
        let old_root = tree::range_hash(&tree, 0, old).unwrap();
        let proof = tree::consistency_proof(&tree, old, size).unwrap();
        verify_consistency(old, size, &old_root, &root, &proof).unwrap();
        group.bench_function("consistency_generate", |b| {
            b.iter(|| tree::consistency_proof(&tree, old, size).unwrap())
        });
        group.bench_function("consistency_verify", |b| {
            b.iter(|| verify_consistency(old, size, &old_root, &root, &proof).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, hashing, proofs);
criterion_main!(benches);
