//! Durable storage benchmarks: append throughput at batch sizes 1, 64 and 1024 with 500-byte
//! entries (file store and sled store), store-backed proof generation at 1 M and 10 M entries,
//! and reopening a 10 M-entry log. (Resident memory is measured by `examples/open_and_prove.rs`
//! in a process of its own.)
//!
//! The 1 M and 10 M logs (32-byte entries; the figures measured do not depend on entry size)
//! are built once under Cargo's target tmp folder and reused by later runs.
//! `KTLOG_BENCH_BIG=<entries>` overrides the large size.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kt_log::log::Log;
use kt_log::note::NoteSigner;
use kt_log::store::{FileStore, SledStore};
use kt_log::verify::verify_inclusion;

fn signer() -> NoteSigner {
    NoteSigner::from_seed("bench.example/log", &[9; 32]).unwrap()
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable_append_500B");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(4));
    for batch in [1usize, 64, 1024] {
        let entries: Vec<Vec<u8>> = (0..batch).map(|i| vec![(i % 251) as u8; 500]).collect();
        group.throughput(Throughput::Elements(batch as u64));

        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(FileStore::open(dir.path()).unwrap(), signer()).unwrap();
        group.bench_function(format!("file/batch_{batch}"), |b| {
            b.iter(|| log.append(&entries).unwrap())
        });
        group.bench_function(format!("file_and_checkpoint/batch_{batch}"), |b| {
            b.iter(|| log.append_and_sign(&entries).unwrap())
        });
        drop(log);

        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(SledStore::open(dir.path()).unwrap(), signer()).unwrap();
        group.bench_function(format!("sled/batch_{batch}"), |b| {
            b.iter(|| log.append(&entries).unwrap())
        });
    }
    group.finish();
}

/// A file-store log of `size` 32-byte entries, built on first use and kept for later runs.
fn big_log(size: u64) -> (PathBuf, Log<FileStore>) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kt-log-bench-{size}"));
    let log = Log::open(FileStore::open(&dir).unwrap(), signer()).unwrap();
    if log.size() < size {
        let start = Instant::now();
        while log.size() < size {
            let from = log.size();
            let to = (from + 65536).min(size);
            let entries: Vec<[u8; 32]> = (from..to)
                .map(|i| {
                    let mut e = [0u8; 32];
                    e[..8].copy_from_slice(&i.to_be_bytes());
                    e
                })
                .collect();
            log.append(&entries).unwrap();
        }
        log.sign_checkpoint().unwrap();
        eprintln!("built a {size}-entry log in {:?}", start.elapsed());
    }
    (dir, log)
}

fn big_size() -> u64 {
    std::env::var("KTLOG_BENCH_BIG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000)
}

fn proofs(c: &mut Criterion) {
    for size in [1_000_000u64, big_size()] {
        let (_, log) = big_log(size);
        let root = log.root_at(size).unwrap();
        let mut group = c.benchmark_group(format!("file_store_proofs_{size}"));
        let mut i = 0u64;
        group.bench_function("inclusion_generate", |b| {
            b.iter(|| {
                i = (i + 7_919_993) % size;
                log.inclusion_proof(i, size).unwrap()
            })
        });
        let mut old = 0u64;
        group.bench_function("consistency_generate", |b| {
            b.iter(|| {
                old = (old + 7_919_993) % size;
                log.consistency_proof(old.max(1), size).unwrap()
            })
        });
        let index = size / 3;
        let leaf = kt_log::hash::leaf_hash(&log.entry(index).unwrap());
        let proof = log.inclusion_proof(index, size).unwrap();
        group.bench_function("inclusion_verify", |b| {
            b.iter(|| verify_inclusion(index, size, &leaf, &proof, &root).unwrap())
        });
        group.finish();
    }
}

fn reopen(c: &mut Criterion) {
    let size = big_size();
    let (dir, log) = big_log(size);
    drop(log); // The store's folder is locked while open.
    let mut group = c.benchmark_group("reopen");
    group.sample_size(20);
    group.bench_function(format!("file_store_{size}"), |b| {
        b.iter(|| {
            let log = Log::open(FileStore::open(&dir).unwrap(), signer()).unwrap();
            assert_eq!(log.size(), size);
        })
    });
    group.finish();
}

criterion_group!(benches, append, proofs, reopen);
criterion_main!(benches);
