//! Opens a file-store log, generates and verifies inclusion proofs at its full size, and
//! prints the time to open and the process's resident memory: the memory figure of
//! docs/benchmarks.md, measured in a process that does nothing else.
//!
//! `cargo run --release -p kt-log --example open_and_prove -- <store folder> [proofs]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use kt_log::hash::leaf_hash;
use kt_log::log::Log;
use kt_log::note::NoteSigner;
use kt_log::store::FileStore;
use kt_log::verify::verify_inclusion;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: open_and_prove <store folder> [proofs]");
    let proofs: u64 = args
        .next()
        .map(|n| n.parse().expect("proofs"))
        .unwrap_or(100_000);
    // The signer must be the one the log was built with (the storage bench's).
    let signer = NoteSigner::from_seed("bench.example/log", &[9; 32]).unwrap();
    let start = Instant::now();
    let log = Log::open(FileStore::open(&dir).unwrap(), signer).unwrap();
    let opened = start.elapsed();
    let size = log.size();
    let root = log.root_at(size).unwrap();
    let start = Instant::now();
    for i in 0..proofs {
        let index = i.wrapping_mul(7_919_993) % size;
        let proof = log.inclusion_proof(index, size).unwrap();
        let leaf = leaf_hash(&log.entry(index).unwrap());
        verify_inclusion(index, size, &leaf, &proof, &root).unwrap();
    }
    let per_proof = start.elapsed() / proofs.max(1) as u32;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .collect();
    println!(
        "size {size}: opened in {opened:?}; {proofs} proofs (read entry + generate + verify) at {per_proof:?} each; {}",
        rss.join(", ").replace('\t', " ")
    );
}
