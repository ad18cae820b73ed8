//! Crash safety: a child process appends and signs in a loop, reporting each acknowledged batch
//! and checkpoint; the parent kills it with SIGKILL at random moments, reopens the store, and
//! checks that every acknowledged entry is there with its exact bytes and that the tree matches
//! every checkpoint signed before the kill. Runs against both durable stores.
//!
//! Reproduce a run with `KTLOG_CRASH_SEED=<seed printed on failure>`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kt_log::hash::Hash;
use kt_log::log::Log;
use kt_log::note::NoteSigner;
use kt_log::store::{FileStore, LogStore, SledStore};

/// Set in the child: `<store kind>:<folder>`.
const CHILD_ENV: &str = "KTLOG_CRASH_CHILD";
const ROUNDS: usize = 24;

fn signer() -> NoteSigner {
    NoteSigner::from_seed("crash.example/log", &[3; 32]).unwrap()
}

/// The bytes of entry `i`: deterministic, so the parent knows what every index must hold.
fn entry(i: u64) -> Vec<u8> {
    let mut e = format!("entry {i} ").into_bytes();
    e.resize(100 + (i % 400) as usize, (i % 251) as u8);
    e
}

fn open_store(kind: &str, dir: &Path) -> Box<dyn LogStore> {
    match kind {
        "file" => Box::new(FileStore::open(dir).unwrap()),
        "sled" => Box::new(SledStore::open(dir).unwrap()),
        other => panic!("unknown store kind {other}"),
    }
}

/// The child: append batches of 1..=64 entries forever, printing `ACK <end> <size> <root>` once
/// each batch and its checkpoint are durable.
#[test]
#[ignore = "the crash test's child process; runs only when the parent starts it"]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (kind, dir) = spec.split_once(':').unwrap();
    let log = Log::open(open_store(kind, Path::new(dir)), signer()).unwrap();
    let mut next = log.size();
    let mut rng = Rng(next.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    loop {
        let batch = 1 + rng.below(64);
        let entries: Vec<Vec<u8>> = (next..next + batch).map(entry).collect();
        let (range, cp) = log.append_and_sign(&entries).unwrap();
        println!(
            "ACK {} {} {}",
            range.end,
            cp.checkpoint.size,
            cp.checkpoint.root.to_hex()
        );
        next = range.end;
    }
}

/// xorshift64*: enough randomness for kill timing, reproducible from a seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

struct Ack {
    end: u64,
    checkpoint: (u64, Hash),
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    let end = parts.next()?.parse().ok()?;
    let size = parts.next()?.parse().ok()?;
    let root = Hash::from_hex(parts.next()?)?;
    Some(Ack {
        end,
        checkpoint: (size, root),
    })
}

fn crash_test(kind: &str) {
    let seed = std::env::var("KTLOG_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("{kind} crash test seed {seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acked: u64 = 0;
    let mut checkpoints: Vec<(u64, Hash)> = Vec::new();
    let mut verified_entries: u64 = 0;
    let mut rounds_with_progress = 0;

    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{kind}:{}", dir.path().display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| parse_ack(&l))
                .collect::<Vec<Ack>>()
        });
        // Random moments, including during start-up and recovery.
        std::thread::sleep(Duration::from_millis(5 + rng.below(400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        if !acks.is_empty() {
            rounds_with_progress += 1;
        }
        for ack in acks {
            acked = acked.max(ack.end);
            checkpoints.push(ack.checkpoint);
        }

        let log = Log::open(open_store(kind, dir.path()), signer())
            .unwrap_or_else(|e| panic!("seed {seed} round {round}: reopen failed: {e}"));
        let size = log.size();
        assert!(
            size >= acked,
            "seed {seed} round {round}: size {size} < acknowledged {acked}"
        );
        let latest = log.latest_checkpoint();
        let newest_acked = checkpoints.iter().map(|c| c.0).max().unwrap_or(0);
        assert!(
            latest.checkpoint.size >= newest_acked,
            "seed {seed} round {round}: latest checkpoint went back behind an acknowledged one"
        );
        for &(cp_size, cp_root) in &checkpoints {
            assert_eq!(
                log.root_at(cp_size).unwrap(),
                cp_root,
                "seed {seed} round {round}: tree disagrees with checkpoint at size {cp_size}"
            );
        }
        // Every committed entry (acknowledged or not) holds exactly the bytes written.
        for (offset, got) in log
            .entries(verified_entries, size)
            .unwrap()
            .iter()
            .enumerate()
        {
            let i = verified_entries + offset as u64;
            assert_eq!(
                *got,
                entry(i),
                "seed {seed} round {round}: entry {i} differs"
            );
        }
        verified_entries = size;
    }
    eprintln!("{kind}: {rounds_with_progress}/{ROUNDS} rounds acknowledged entries; {acked} entries, {} checkpoints checked", checkpoints.len());
    assert!(
        rounds_with_progress >= ROUNDS / 2,
        "seed {seed}: too few rounds got as far as an acknowledgement to test anything"
    );
}

#[test]
fn file_store_survives_sigkill() {
    crash_test("file");
}

#[test]
fn sled_store_survives_sigkill() {
    crash_test("sled");
}
