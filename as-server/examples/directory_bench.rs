//! Measures the directory against issue 12's targets (docs/benchmarks.md, "The directory"):
//! a map of N labels (default 1,000,000) with one identity of 8 real versions, a log of N
//! updates and their batches' map entries, then the lookup answer's size, the server's work
//! per proof, the client's verification, an owner's monitor run, rebuilding the map from the
//! log, and saving and reopening the map's snapshot, with the process's memory.
//!
//! ```sh
//! cargo run --release -p as-server --example directory_bench -- --labels 1000000
//! ```
//!
//! Every figure comes from the real code paths (kt-protocol's map and records, kt-verify's
//! checks, kt-log's tree, the server's keys and snapshot store); only the other identities'
//! labels and heads are random (as VRF outputs and hashes are).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use as_server::directory::keys::DirectoryKeys;
use as_server::directory::snapshot::{FileMapStore, MapStore};
use as_server::entry::{Binding, EnrollmentId, EntryBody, LogEntry, Serial};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use clap::Parser;
use kt_log::log::Log;
use kt_log::note::NoteSigner;
use kt_log::store::MemoryStore;
use kt_protocol::api::{HistoryAnswer, HistoryItem, IdentityProof, StateProof};
use kt_protocol::directory::batch::{Batch, Replay};
use kt_protocol::directory::hash::{chain, commitment, LeafValue, EMPTY};
use kt_protocol::directory::proof::{MapProof, Terminal};
use kt_protocol::directory::public_entry::{MapRoot, PublicEntry, Update};
use kt_protocol::directory::record::VersionRecord;
use kt_protocol::directory::tree::{Leaf, Map};
use kt_protocol::directory::vrf::Label;
use kt_verify::directory::{answer_checkpoint, verify_identity};

#[derive(Parser)]
struct Args {
    /// Labels in the map (identities with something logged).
    #[arg(long, default_value_t = 1_000_000)]
    labels: u64,
    /// Updates per batch in the log (each batch ends with a map entry).
    #[arg(long, default_value_t = 64)]
    batch: u64,
}

const ALICE: &str = "alice@bench.example";

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).unwrap();
    out
}

/// Resident memory of this process, MB.
fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / 1e6
}

/// Median of `runs` timings of `f`, each over `per` calls, in µs per call.
fn time_us(runs: usize, per: usize, mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / per as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[runs / 2]
}

/// Alice's 8 versions: two issuances, five rotations, a credential revocation.
fn alice_changes() -> Vec<LogEntry> {
    let now = as_server::unix_now();
    let ca = as_server::ca::Ca::generate("Bench CA", now - 60, 86_400 * 365).unwrap();
    let mut serials: Vec<[u8; 16]> = Vec::new();
    let binding = |n: u8| {
        let key = ed25519_dalek::SigningKey::from_bytes(&[n; 32]).verifying_key();
        let serial = [n; 16];
        let der = ca
            .issue(ALICE, &key, &serial, now - 60, now + 86_400)
            .unwrap();
        Binding {
            serial: Serial(serial),
            public_key: key.to_bytes(),
            not_before: now - 60,
            not_after: now + 86_400,
            certificate: der,
        }
    };
    let mut changes = Vec::new();
    for n in 1..=2u8 {
        changes.push(LogEntry::new(EntryBody::Issue {
            time: now,
            identity: ALICE.into(),
            binding: binding(n),
            enrollment: EnrollmentId([n; 32]),
        }));
        serials.push([n; 16]);
    }
    for n in 3..=7u8 {
        let replaces = serials.remove(0);
        changes.push(LogEntry::new(EntryBody::Rotate {
            time: now,
            identity: ALICE.into(),
            binding: binding(n),
            replaces: Serial(replaces),
        }));
        serials.push([n; 16]);
    }
    changes.push(LogEntry::new(EntryBody::Revoke {
        time: now,
        identity: ALICE.into(),
        serials: vec![Serial(serials.remove(0))],
        scope: kt_protocol::entry::RevocationScope::Credential,
        reason: kt_protocol::entry::RevocationReason::KeyCompromise,
        admin: "admin".into(),
    }));
    changes
}

fn main() {
    let args = Args::parse();
    let n = args.labels;
    let keys = DirectoryKeys::from_secret(&random());
    let signer = NoteSigner::generate("bench.example/log").unwrap();
    let log_key = signer.verifier();
    let vrf_key = keys.vrf().public_key().clone();
    println!("labels {n}, batches of {} updates", args.batch);
    let rss0 = rss_mb();

    // Alice: 8 honest versions.
    let (label, vrf_proof) = keys.vrf().prove(ALICE);
    let mut records: Vec<(VersionRecord, [u8; 32], [u8; 32])> = Vec::new();
    let mut head = EMPTY;
    for change in alice_changes() {
        let previous = records.last().map(|r| &r.0);
        let record = VersionRecord::next(previous, &change).unwrap();
        let opening = keys.opening(&label, record.version);
        let previous_head = head;
        head = chain(
            &head,
            &commitment(&opening, &label, record.version, &record.to_bytes()),
        );
        records.push((record, opening, previous_head));
    }
    let alice_leaf = Leaf {
        label,
        value: LeafValue {
            version: records.len() as u64,
            head,
        },
    };

    // The map: N − 1 random labels and alice's.
    let started = Instant::now();
    let mut leaves: Vec<Leaf> = (1..n)
        .map(|_| Leaf {
            label: Label(random()),
            value: LeafValue {
                version: 1,
                head: random(),
            },
        })
        .collect();
    leaves.push(alice_leaf);
    leaves.sort_by_key(|l| l.label);
    leaves.dedup_by_key(|l| l.label);
    let map = Map::from_sorted(leaves).unwrap();
    println!(
        "map built in {:.2} s; resident memory {:.0} MB (+{:.0} MB)",
        started.elapsed().as_secs_f64(),
        rss_mb(),
        rss_mb() - rss0
    );

    // A log of the size N labels make: N updates, one map entry per batch, the map's last.
    let log = Log::open(MemoryStore::new(), signer).unwrap();
    let size = 1 + n + n.div_ceil(args.batch);
    let filler: Vec<Vec<u8>> = (0..4096).map(|_| random::<32>().to_vec()).collect();
    let mut appended = 0;
    while appended < size - 1 {
        let count = (size - 1 - appended).min(4096) as usize;
        log.append(&filler[..count]).unwrap();
        appended += count as u64;
    }
    let map_entry = PublicEntry::Map(MapRoot {
        root: map.root(),
        labels: map.len(),
    })
    .to_bytes();
    log.append(std::slice::from_ref(&map_entry)).unwrap();
    let checkpoint = log.sign_checkpoint().unwrap();
    let note = String::from_utf8(checkpoint.note.clone()).unwrap();

    // What the server does per lookup proof (the label and VRF proof come from the state).
    let (last_record, last_opening, last_previous) = records.last().unwrap().clone();
    let build = |record: &VersionRecord, opening: &[u8; 32], previous_head: &[u8; 32]| {
        let (map_proof, _) = map.prove(&label);
        let inclusion = log.inclusion_proof(size - 1, size).unwrap();
        IdentityProof {
            identity: ALICE.into(),
            checkpoint: note.clone(),
            map_entry: B64.encode(&map_entry),
            map_entry_proof: inclusion.iter().map(|h| B64.encode(h.0)).collect(),
            vrf_proof: B64.encode(vrf_proof),
            map_proof: B64.encode(map_proof.encode()),
            state: Some(StateProof {
                record: record.to_json(),
                opening: B64.encode(opening),
                previous_head: B64.encode(previous_head),
            }),
        }
    };
    let answer = build(&last_record, &last_opening, &last_previous);
    let server_us = time_us(9, 2000, || {
        let proof = build(&last_record, &last_opening, &last_previous);
        std::hint::black_box(serde_json::to_vec(&proof).unwrap());
    });
    let bytes = serde_json::to_vec(&answer).unwrap();
    let certificates: usize = last_record
        .credentials
        .iter()
        .map(|c| B64.encode(&c.certificate).len())
        .sum();
    let (map_proof, _) = map.prove(&label);
    println!(
        "lookup answer: {} bytes, {} without its {} credential certificate(s) ({} map proof siblings, {} log proof hashes)",
        bytes.len(),
        bytes.len() - certificates,
        last_record.credentials.len(),
        map_proof.siblings.len(),
        answer.map_entry_proof.len()
    );
    println!("server work per lookup proof (map proof, log proof, JSON): {server_us:.1} µs");
    let binary = answer.to_binary().unwrap();
    println!(
        "lookup answer, binary form: {} bytes, {} without the certificate(s)",
        binary.len(),
        binary.len() - certificates
    );
    let server_binary_us = time_us(9, 2000, || {
        let proof = build(&last_record, &last_opening, &last_previous);
        std::hint::black_box(proof.to_binary().unwrap());
    });
    println!("server work per lookup proof, binary form: {server_binary_us:.1} µs");
    // Alice's label is one random draw: the size of the same answer over 10,000 other
    // random labels (absent ones: their paths are as deep as present ones').
    // (Each path's encoding as if it ended in its own leaf, as a present identity's does.)
    let as_present = |proof: MapProof| {
        MapProof {
            siblings: proof.siblings,
            terminal: Terminal::Asked,
        }
        .encode()
        .len()
    };
    let mut sizes: Vec<usize> = (0..10_000)
        .map(|_| as_present(map.prove(&Label(random())).0))
        .collect();
    sizes.sort_unstable();
    let at = |q: usize| {
        binary.len() - certificates - map_proof.encode().len() + sizes[(sizes.len() - 1) * q / 100]
    };
    println!(
        "binary answer without the certificate over 10,000 random labels: median {} bytes, \
         p99 {}, max {}",
        at(50),
        at(99),
        at(100)
    );
    let vrf_us = time_us(5, 200, || {
        std::hint::black_box(keys.vrf().prove(ALICE));
    });
    println!("VRF proof of a label not cached (absent identities, first change): {vrf_us:.1} µs");

    // The client: steps 1 and 2 of kt_verify::directory.
    let client_us = time_us(9, 500, || {
        let parsed: IdentityProof = serde_json::from_slice(&bytes).unwrap();
        let cp = answer_checkpoint(&parsed, ALICE, &log_key).unwrap();
        std::hint::black_box(verify_identity(&parsed, &cp, &vrf_key).unwrap());
    });
    println!("client verification of the lookup (parse, checkpoint, VRF, map, record): {client_us:.1} µs");
    let client_binary_us = time_us(9, 500, || {
        let parsed = IdentityProof::from_binary(&binary).unwrap();
        let cp = answer_checkpoint(&parsed, ALICE, &log_key).unwrap();
        std::hint::black_box(verify_identity(&parsed, &cp, &vrf_key).unwrap());
    });
    println!("client verification of the lookup, binary form: {client_binary_us:.1} µs");

    // An owner's monitor: a first run (all 8 versions) and a run with nothing new.
    let history = |after: u64| HistoryAnswer {
        proof: answer.clone(),
        history: records
            .iter()
            .filter(|(r, _, _)| r.version > after && r.version < records.len() as u64)
            .map(|(r, o, _)| HistoryItem {
                change: r.entry().unwrap().to_json(),
                opening: B64.encode(o),
            })
            .collect(),
    };
    let first = history(0);
    let first_bytes = serde_json::to_vec(&first).unwrap();
    let verified = {
        let cp = answer_checkpoint(&first.proof, ALICE, &log_key).unwrap();
        verify_identity(&first.proof, &cp, &vrf_key).unwrap()
    };
    let watch = kt_verify::monitor::advance(None, &first, &verified)
        .unwrap()
        .watch;
    let again = history(8);
    let again_bytes = serde_json::to_vec(&again).unwrap();
    let first_us = time_us(5, 100, || {
        let parsed: HistoryAnswer = serde_json::from_slice(&first_bytes).unwrap();
        let cp = answer_checkpoint(&parsed.proof, ALICE, &log_key).unwrap();
        let v = verify_identity(&parsed.proof, &cp, &vrf_key).unwrap();
        std::hint::black_box(kt_verify::monitor::advance(None, &parsed, &v).unwrap());
    });
    let again_us = time_us(5, 100, || {
        let parsed: HistoryAnswer = serde_json::from_slice(&again_bytes).unwrap();
        let cp = answer_checkpoint(&parsed.proof, ALICE, &log_key).unwrap();
        let v = verify_identity(&parsed.proof, &cp, &vrf_key).unwrap();
        std::hint::black_box(kt_verify::monitor::advance(Some(&watch), &parsed, &v).unwrap());
    });
    println!(
        "monitor, identity with 8 versions: first run {} bytes, {first_us:.0} µs; a run with nothing new {} bytes, {again_us:.0} µs",
        first_bytes.len(),
        again_bytes.len()
    );

    // Rebuilding the map from the log: N update entries in batches, each closed by its map
    // entry (a sealed change of a realistic size: an issuance's, ~1.2 KB before sealing).
    let sealed = random::<1200>().to_vec();
    let mut entries: Vec<Vec<u8>> = Vec::with_capacity((n + n / args.batch + 1) as usize);
    let mut building = Map::new();
    let mut batch = Batch::new();
    for i in 0..n {
        let update = Update {
            label: Label(random()),
            version: 1,
            commitment: random(),
            sealed: sealed.clone(),
        };
        batch
            .push(&building, &update.label, 1, &update.commitment)
            .unwrap();
        entries.push(PublicEntry::Update(update).to_bytes());
        if (i + 1) % args.batch == 0 || i + 1 == n {
            let (staged, root) = std::mem::take(&mut batch).stage(&building);
            building.commit(staged);
            entries.push(PublicEntry::Map(root).to_bytes());
        }
    }
    drop(building);
    let started = Instant::now();
    let mut replay = Replay::new();
    for bytes in &entries {
        replay.apply(&PublicEntry::parse(bytes).unwrap()).unwrap();
    }
    let rebuild = started.elapsed();
    println!(
        "map rebuilt from {} log entries (every map root checked) in {:.1} s: {:.0} entries/s",
        entries.len(),
        rebuild.as_secs_f64(),
        entries.len() as f64 / rebuild.as_secs_f64()
    );
    drop(entries);
    drop(replay);

    // The snapshot: save, then reopen (read, checksum, rebuild every bucket's hash).
    let dir = tempfile::tempdir().unwrap();
    let store = FileMapStore::new(&dir.path().join("directory.snapshot"));
    let started = Instant::now();
    store.save(size, &map).unwrap();
    let saved = started.elapsed();
    let file = std::fs::metadata(dir.path().join("directory.snapshot"))
        .unwrap()
        .len();
    drop(map);
    let rss_before = rss_mb();
    let started = Instant::now();
    let snapshot = store.load().unwrap().unwrap();
    let reopened: Duration = started.elapsed();
    assert_eq!(snapshot.map.len(), n);
    println!(
        "snapshot: {:.0} MB written in {:.2} s; reopened in {:.2} s; process resident memory {:.0} MB (map {:.0} MB)",
        file as f64 / 1e6,
        saved.as_secs_f64(),
        reopened.as_secs_f64(),
        rss_mb(),
        rss_mb() - rss_before
    );
}
