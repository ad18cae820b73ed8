//! Builds a data folder whose log holds N realistic issuances (CA-signed Ed25519 certificates
//! to N identities), as the directory's update entries in batches of 4,096 each closed by its
//! map entry, and writes the log's C2SP tlog-tiles (checkpoint, hash tiles, entry bundles) to a
//! folder, so `verifier-cli audit --tiles DIR` can be measured on local tiles:
//!
//! ```sh
//! cargo run --release -p as-server --example make_log -- --data target/bench-as --tiles target/bench-tiles --entries 1000000
//! target/release/verifier-cli audit --tiles target/bench-tiles --log-key target/bench-as/log-key.pub \
//!   --ca target/bench-as/ca-cert.pem --state target/bench-state
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use as_server::config::ServeArgs;
use as_server::entry::{Binding, EnrollmentId, EntryBody, LogEntry, Serial};
use as_server::state::directory::make_version;
use clap::Parser;
use ed25519_dalek::SigningKey;
use kt_log::log::Log;
use kt_log::store::FileStore;
use kt_log::tiles::{tile_width, TileId, TileKind, TILE_WIDTH};
use kt_protocol::directory::batch::Batch;
use kt_protocol::directory::public_entry::PublicEntry;
use kt_protocol::directory::tree::Map;

#[derive(Parser)]
struct Args {
    /// Data folder to create (must not exist).
    #[arg(long)]
    data: PathBuf,
    /// Folder to write the tiles to.
    #[arg(long)]
    tiles: PathBuf,
    /// Entries to log.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
}

fn write(path: PathBuf, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn main() {
    let args = Args::parse();
    assert!(!args.data.exists(), "{} exists", args.data.display());
    let config = ServeArgs {
        data: Some(args.data.clone()),
        admin_token_out: Some(args.data.with_extension("admin-token")),
        ..ServeArgs::default()
    }
    .resolve()
    .unwrap();
    let material = as_server::setup::load_or_create(&config).unwrap();
    let log = Log::open(
        FileStore::open(args.data.join("log")).unwrap(),
        material.log_signer,
    )
    .unwrap();
    let now = as_server::unix_now();
    let keys = &material.directory_keys;
    let mut map = Map::new();
    if log.size() == 0 {
        log.append(&[as_server::directory::empty_map_entry()])
            .unwrap();
    }
    let mut done = 0u64;
    while done < args.entries {
        let indices: Vec<u64> = (done..args.entries.min(done + 4096)).collect();
        // The labels (VRF proofs) and certificates on both cores.
        let made: Vec<(LogEntry, _)> = std::thread::scope(|scope| {
            let halves: Vec<_> = indices
                .chunks(indices.len().div_ceil(2).max(1))
                .map(|chunk| {
                    let ca = &material.ca;
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|&i| {
                                let key = SigningKey::from_bytes(&Sha256Seed::of(i));
                                let serial = as_server::ca::random_serial().unwrap();
                                let identity = format!("user{i}@bench.example");
                                let der = ca
                                    .issue(
                                        &identity,
                                        &key.verifying_key(),
                                        &serial,
                                        now - 60,
                                        now + 86_400,
                                    )
                                    .unwrap();
                                let label = keys.vrf().prove(&identity);
                                let entry = LogEntry::new(EntryBody::Issue {
                                    time: now,
                                    identity,
                                    binding: Binding {
                                        serial: Serial(serial),
                                        public_key: key.verifying_key().to_bytes(),
                                        not_before: now - 60,
                                        not_after: now + 86_400,
                                        certificate: der,
                                    },
                                    enrollment: EnrollmentId(Sha256Seed::of(i)),
                                });
                                (entry, label)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            halves.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let mut batch = Batch::new();
        let mut entries: Vec<Vec<u8>> = Vec::with_capacity(made.len() + 1);
        for (entry, (label, proof)) in made {
            let opening = keys.opening(&label, 1);
            let (recorded, _) = make_version(&label, 1, None, &entry, &opening, None).unwrap();
            batch.push(&map, &label, 1, &recorded.commitment).unwrap();
            entries.push(
                keys.update_entry(&label, 1, &recorded.commitment, &proof, &entry.to_bytes())
                    .unwrap(),
            );
        }
        let (staged, map_entry) = batch.stage(&map);
        map.commit(staged);
        entries.push(PublicEntry::Map(map_entry).to_bytes());
        done += indices.len() as u64;
        log.append(&entries).unwrap();
    }
    let checkpoint = log.sign_checkpoint().unwrap();
    let size = log.size();
    write(args.tiles.join("checkpoint"), &checkpoint.note);
    for index in 0..size.div_ceil(TILE_WIDTH) {
        let width = tile_width(size, None, index);
        let id = TileId {
            kind: TileKind::Entries,
            index,
            width,
        };
        write(
            args.tiles.join(id.path()),
            &log.entry_bundle(index, width).unwrap(),
        );
    }
    let mut level = 0u8;
    loop {
        let hashes_at_level = size >> (8 * u32::from(level));
        if hashes_at_level == 0 {
            break;
        }
        for index in 0..hashes_at_level.div_ceil(TILE_WIDTH) {
            let width = tile_width(size, Some(level), index);
            if width == 0 {
                continue;
            }
            let id = TileId {
                kind: TileKind::Hashes { level },
                index,
                width,
            };
            write(
                args.tiles.join(id.path()),
                &log.hash_tile(level, index, width).unwrap(),
            );
        }
        level += 1;
    }
    println!(
        "{size} entries; data {}; tiles {}",
        args.data.display(),
        args.tiles.display()
    );
}

/// A deterministic 32-byte seed per index (a bench needs many distinct keys, not secret ones).
struct Sha256Seed;

impl Sha256Seed {
    fn of(i: u64) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(i.to_be_bytes()).into()
    }
}
