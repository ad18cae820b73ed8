//! The log against independent oracles, under tampering, and under failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kt_log::checkpoint::{open_checkpoint, Checkpoint};
use kt_log::hash::{empty_root, leaf_hash, node_hash, Hash};
use kt_log::log::{Log, LogError};
use kt_log::note::NoteSigner;
use kt_log::store::{FileStore, LogStore, MemoryStore};
use kt_log::tiles::{decode_entry_bundle, decode_hash_tile, TileId, TileKind};
use kt_log::tree::fold_right;
use kt_log::verify::{verify_consistency, verify_inclusion, ProofError};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn entry(i: u64) -> Vec<u8> {
    format!("entry {i}").into_bytes()
}

fn signer() -> NoteSigner {
    NoteSigner::from_seed("test.example/log", &[7; 32]).unwrap()
}

fn log_of(size: u64) -> Log<MemoryStore> {
    let log = Log::open(MemoryStore::new(), signer()).unwrap();
    let entries: Vec<Vec<u8>> = (0..size).map(entry).collect();
    for chunk in entries.chunks(97) {
        log.append(chunk).unwrap();
    }
    log
}

/// RFC 9162 §2.1.1 MTH, written out recursively: the naive oracle.
fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

/// rs_merkle with RFC 9162 interior hashing: lone right nodes are promoted, which gives the
/// same tree shape as RFC 9162's split at the largest power of two.
#[derive(Clone)]
struct Rfc9162;
impl rs_merkle::Hasher for Rfc9162 {
    type Hash = [u8; 32];
    fn hash(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }
    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(right) => node_hash(&Hash(*left), &Hash(*right)).0,
            None => *left,
        }
    }
}

fn rs_merkle_root(leaves: &[Hash]) -> Hash {
    let raw: Vec<[u8; 32]> = leaves.iter().map(|h| h.0).collect();
    rs_merkle::MerkleTree::<Rfc9162>::from_leaves(&raw)
        .root()
        .map(Hash)
        .unwrap_or_else(empty_root)
}

#[test]
fn every_proof_of_small_trees_verifies() {
    let log = log_of(70);
    let leaves: Vec<Hash> = (0..70).map(|i| leaf_hash(&entry(i))).collect();
    for size in 1..=70u64 {
        let root = log.root_at(size).unwrap();
        assert_eq!(root, naive_root(&leaves[..size as usize]));
        for index in 0..size {
            let proof = log.inclusion_proof(index, size).unwrap();
            verify_inclusion(index, size, &leaves[index as usize], &proof, &root).unwrap();
        }
        for old in 1..=size {
            let proof = log.consistency_proof(old, size).unwrap();
            let old_root = log.root_at(old).unwrap();
            verify_consistency(old, size, &old_root, &root, &proof).unwrap();
        }
    }
}

/// Every single-edit corruption of a proof: each hash with one of several bits flipped (first,
/// middle, last, and one that moves with the position), each hash removed, and `extra` added.
fn tampered_proofs(proof: &[Hash], extra: Hash) -> Vec<Vec<Hash>> {
    let mut out = Vec::new();
    for i in 0..proof.len() {
        for bit in [0usize, 137, 255, (i % 32) * 8 + 2] {
            let mut flipped = proof.to_vec();
            flipped[i].0[bit / 8] ^= 1 << (bit % 8);
            out.push(flipped);
        }
        let mut shorter = proof.to_vec();
        shorter.remove(i);
        out.push(shorter);
    }
    let mut longer = proof.to_vec();
    longer.push(extra);
    out.push(longer);
    out
}

/// Every way of breaking a valid inclusion proof must be caught. A wrong size is presented
/// with that size's real root: RFC 9162 proofs bind the size only together with its root, as a
/// signed checkpoint carries them (a size-3 proof of leaf 0 also recomputes root₃ under the
/// claim "size 4", so pairing a size with another size's root proves nothing).
fn assert_inclusion_tamper_rejected(
    log: &Log<MemoryStore>,
    index: u64,
    size: u64,
    leaf: Hash,
    proof: &[Hash],
    root: Hash,
) {
    for bad in tampered_proofs(proof, leaf) {
        assert!(verify_inclusion(index, size, &leaf, &bad, &root).is_err());
    }
    if size > 1 {
        let other = (index + 1) % size;
        assert!(verify_inclusion(other, size, &leaf, proof, &root).is_err());
    }
    if size < log.size() {
        let bigger = log.root_at(size + 1).unwrap();
        assert!(verify_inclusion(index, size + 1, &leaf, proof, &bigger).is_err());
    }
    if index + 1 < size {
        let smaller = log.root_at(size - 1).unwrap();
        assert!(verify_inclusion(index, size - 1, &leaf, proof, &smaller).is_err());
    }
    let mut bad_root = root;
    bad_root.0[0] ^= 1;
    assert!(matches!(
        verify_inclusion(index, size, &leaf, proof, &bad_root),
        Err(ProofError::RootMismatch { .. })
    ));
    let mut bad_leaf = leaf;
    bad_leaf.0[31] ^= 0x80;
    assert!(verify_inclusion(index, size, &bad_leaf, proof, &root).is_err());
}

fn assert_consistency_tamper_rejected(
    log: &Log<MemoryStore>,
    old: u64,
    new: u64,
    old_root: Hash,
    new_root: Hash,
    proof: &[Hash],
) {
    for bad in tampered_proofs(proof, old_root) {
        assert!(verify_consistency(old, new, &old_root, &new_root, &bad).is_err());
    }
    if new < log.size() {
        let bigger = log.root_at(new + 1).unwrap();
        assert!(verify_consistency(old, new + 1, &old_root, &bigger, proof).is_err());
    }
    if old > 1 && old < new {
        let smaller = log.root_at(old - 1).unwrap();
        assert!(verify_consistency(old - 1, new, &smaller, &new_root, proof).is_err());
    }
    let mut forked_old = old_root;
    forked_old.0[3] ^= 1;
    assert!(verify_consistency(old, new, &forked_old, &new_root, proof).is_err());
    let mut forked_new = new_root;
    forked_new.0[3] ^= 1;
    assert!(verify_consistency(old, new, &old_root, &forked_new, proof).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn proofs_verify_and_tampering_is_caught(
        size in 1u64..3000,
        picks in proptest::collection::vec((any::<u64>(), any::<u64>()), 8),
    ) {
        let log = log_of(size);
        let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&entry(i))).collect();
        let root = log.root_at(size).unwrap();
        prop_assert_eq!(root, naive_root(&leaves));
        prop_assert_eq!(root, rs_merkle_root(&leaves));
        prop_assert_eq!(root, log.sign_checkpoint().unwrap().checkpoint.root);
        for (a, b) in picks {
            // A past size and an index within it: proofs work for every past size.
            let past = 1 + b % size;
            let index = a % past;
            let past_root = log.root_at(past).unwrap();
            prop_assert_eq!(past_root, naive_root(&leaves[..past as usize]));
            let proof = log.inclusion_proof(index, past).unwrap();
            verify_inclusion(index, past, &leaves[index as usize], &proof, &past_root).unwrap();
            assert_inclusion_tamper_rejected(&log, index, past, leaves[index as usize], &proof, past_root);

            let old = 1 + a % past;
            let old_root = log.root_at(old).unwrap();
            let proof = log.consistency_proof(old, past).unwrap();
            verify_consistency(old, past, &old_root, &past_root, &proof).unwrap();
            assert_consistency_tamper_rejected(&log, old, past, old_root, past_root, &proof);
        }
    }
}

#[test]
fn out_of_range_requests_are_errors() {
    let log = log_of(10);
    assert!(log.inclusion_proof(10, 10).is_err());
    assert!(log.inclusion_proof(0, 11).is_err());
    assert!(log.consistency_proof(0, 5).is_err());
    assert!(log.consistency_proof(6, 5).is_err());
    assert!(log.consistency_proof(5, 11).is_err());
    assert!(log.root_at(11).is_err());
    assert!(log.entry(10).is_err());
    assert!(log.entry(u64::MAX).is_err());
    assert!(log.entries(5, 11).is_err());
    assert_eq!(log.consistency_proof(5, 5).unwrap(), vec![]);
    assert!(matches!(
        verify_inclusion(3, 3, &Hash::default(), &[], &Hash::default()),
        Err(ProofError::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        verify_consistency(4, 3, &Hash::default(), &Hash::default(), &[]),
        Err(ProofError::SizesOutOfOrder { .. })
    ));
}

#[test]
fn oversize_entry_is_refused_and_nothing_is_written() {
    let log = log_of(3);
    let big = vec![0u8; 65536];
    let err = log.append(&[b"ok".to_vec(), big]).unwrap_err();
    assert!(matches!(
        err,
        LogError::EntryTooLarge {
            position: 1,
            len: 65536
        }
    ));
    assert_eq!(log.size(), 3);
    assert_eq!(log.append(&[b"next"]).unwrap(), 3..4);
}

#[test]
fn failed_store_write_leaves_log_unchanged() {
    let log = log_of(5);
    let before = log.latest_checkpoint();
    log.store().fail_appends(true);
    assert!(log.append_and_sign(&[b"lost"]).is_err());
    assert_eq!(log.size(), 5);
    assert_eq!(log.latest_checkpoint(), before);
    log.store().fail_appends(false);
    let (range, checkpoint) = log.append_and_sign(&[b"kept"]).unwrap();
    assert_eq!(range, 5..6);
    assert_eq!(checkpoint.checkpoint.size, 6);
    // The frontier was not advanced by the failed append: the root matches a fresh oracle.
    let mut leaves: Vec<Hash> = (0..5).map(|i| leaf_hash(&entry(i))).collect();
    leaves.push(leaf_hash(b"kept"));
    assert_eq!(checkpoint.checkpoint.root, naive_root(&leaves));
}

#[test]
fn checkpoints_are_signed_over_durable_trees_and_never_go_back() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let log = Log::open(FileStore::open(dir.path()).unwrap(), signer()).unwrap();
        assert_eq!(log.latest_checkpoint().checkpoint.size, 0);
        let (_, cp) = log.append_and_sign(&[b"a", b"b", b"c"]).unwrap();
        let verified = open_checkpoint(&cp.note, &signer().verifier()).unwrap();
        assert_eq!(verified.size(), 3);
        assert_eq!(verified.root(), log.root_at(3).unwrap());
        // Signing again without growth returns the same checkpoint.
        assert_eq!(log.sign_checkpoint().unwrap(), cp);
        log.append(&[b"d"]).unwrap();
        cp
    };
    // Reopen: the latest checkpoint is the persisted one; size 4 was appended but not signed.
    let log = Log::open(FileStore::open(dir.path()).unwrap(), signer()).unwrap();
    assert_eq!(log.latest_checkpoint(), first);
    assert_eq!(log.size(), 4);
    assert_eq!(log.sign_checkpoint().unwrap().checkpoint.size, 4);
}

#[test]
fn open_refuses_a_tree_behind_or_unlike_its_checkpoint() {
    // Behind: a checkpoint for size 5 over a store of 3.
    let store = MemoryStore::new();
    let cp = Checkpoint {
        origin: signer().name().to_owned(),
        size: 5,
        root: empty_root(),
        extensions: vec![],
    }
    .sign(&signer())
    .unwrap();
    store.set_checkpoint(&cp.note).unwrap();
    let log = Log::open(store, signer());
    assert!(matches!(log, Err(LogError::Inconsistent(_))));

    // Unlike: same size, different root.
    let store = memory_store_with(3);
    let forged = Checkpoint {
        origin: signer().name().to_owned(),
        size: 3,
        root: empty_root(),
        extensions: vec![],
    }
    .sign(&signer())
    .unwrap();
    store.set_checkpoint(&forged.note).unwrap();
    assert!(matches!(
        Log::open(store, signer()),
        Err(LogError::Inconsistent(_))
    ));

    // Signed by another key: refused too.
    let store = MemoryStore::new();
    let other = NoteSigner::from_seed("test.example/log", &[8; 32]).unwrap();
    let cp = Checkpoint {
        origin: other.name().to_owned(),
        size: 0,
        root: empty_root(),
        extensions: vec![],
    }
    .sign(&other)
    .unwrap();
    store.set_checkpoint(&cp.note).unwrap();
    assert!(matches!(
        Log::open(store, signer()),
        Err(LogError::Checkpoint(_))
    ));
}

/// A memory store holding entries `0..size`, written directly (no checkpoint).
fn memory_store_with(size: u64) -> MemoryStore {
    let store = MemoryStore::new();
    let entries: Vec<Vec<u8>> = (0..size).map(entry).collect();
    let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    let mut frontier = kt_log::tree::Frontier::new();
    let mut nodes = Vec::new();
    for e in &refs {
        frontier.push(leaf_hash(e), |h| nodes.push(h));
    }
    store.append(&refs, &nodes).unwrap();
    store
}

#[test]
fn tiles_rebuild_the_tree_as_a_tlog_tiles_client_would() {
    // 256·256 + 300 entries: full and partial tiles at levels 0 and 1, one at level 2.
    let size = 65536 + 300;
    let log = log_of(size);
    let root = log.root_at(size).unwrap();

    // Level 0 tiles from entry bundles; level 1 from level 0; level 2 from level 1.
    let mut level_hashes: Vec<Hash> = Vec::new();
    for n in 0..=(size / 256) {
        let width = kt_log::tiles::tile_width(size, None, n);
        let bundle = log.entry_bundle(n, width).unwrap();
        let id = TileId {
            kind: TileKind::Entries,
            index: n,
            width,
        };
        assert_eq!(TileId::parse(&id.path()).unwrap(), id);
        let entries = decode_entry_bundle(&bundle, usize::from(width)).unwrap();
        let hashes: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        let tile = decode_hash_tile(&log.hash_tile(0, n, width).unwrap()).unwrap();
        assert_eq!(tile, hashes, "level 0 tile {n}");
        level_hashes.extend(tile);
    }
    for level in 1u8..=2 {
        let count = size >> (8 * u32::from(level));
        let mut next = Vec::new();
        for n in 0..=(count / 256) {
            let width = kt_log::tiles::tile_width(size, Some(level), n);
            if width == 0 {
                continue;
            }
            let tile = decode_hash_tile(&log.hash_tile(level, n, width).unwrap()).unwrap();
            for (i, h) in tile.iter().enumerate() {
                let start = (n as usize * 256 + i) * 256;
                assert_eq!(*h, naive_root(&level_hashes[start..start + 256]));
            }
            next.extend(tile);
        }
        level_hashes = next;
    }
    assert_eq!(level_hashes.len(), 1);
    // The level-2 hash covers the first 65536 leaves; the rest are the partial tail.
    let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&entry(i))).collect();
    assert_eq!(
        fold_right(&[level_hashes[0], naive_root(&leaves[65536..])]),
        root
    );
    // Tiles the log does not have yet are refused.
    assert!(log.hash_tile(0, size / 256, 255).is_err());
    assert!(log.hash_tile(2, 0, 2).is_err());
    assert!(log.entry_bundle(size / 256 + 1, 1).is_err());
    assert!(log.entry_bundle(0, 0).is_err());
}
