//! Times rebuilding the AS state from the log and the enrollment journal: what a start after a
//! lost or damaged state store costs (docs/benchmarks.md, "State rebuild").
//!
//! On a data folder made by `make_log`, it writes an enrollment journal with one record per
//! issuance (the enrollment each one used, as after a bulk enrollment that was all used),
//! moves `state/` away, and times [`as_server::recovery::open_state`] building it again, then a
//! second open of the intact store:
//!
//! ```sh
//! cargo run --release -p as-server --example make_log -- --data target/bench-as --tiles target/bench-tiles --entries 1000000
//! cargo run --release -p as-server --example rebuild -- --data target/bench-as
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Instant;

use as_server::directory::keys::DirectoryKeys;
use as_server::enrollment_journal::{EnrollmentJournal, JournalRecord};
use as_server::entry::EntryBody;
use clap::Parser;
use kt_log::log::Log;
use kt_log::note::NoteSigner;
use kt_log::store::{FileStore, LogStore};

#[derive(Parser)]
struct Args {
    /// Data folder made by `make_log`.
    #[arg(long)]
    data: PathBuf,
    /// Keep an existing state store: time only the reopen.
    #[arg(long)]
    reopen_only: bool,
}

fn main() {
    let args = Args::parse();
    let key = std::fs::read_to_string(args.data.join("log-key")).unwrap();
    let signer = NoteSigner::parse(key.trim()).unwrap();
    let store: Box<dyn LogStore> = Box::new(FileStore::open(args.data.join("log")).unwrap());
    let log = Log::open(store, signer).unwrap();
    let size = log.size();
    let keys = DirectoryKeys::load_or_create(&args.data).unwrap();

    let journal = args.data.join("enrollments");
    if !journal.exists() {
        let mut records = Vec::new();
        for start in (0..size).step_by(4096) {
            for bytes in log.entries(start, size.min(start + 4096)).unwrap() {
                let change = as_server::directory::open_change(&keys, &bytes).unwrap();
                if let Some(EntryBody::Issue {
                    identity,
                    enrollment,
                    ..
                }) = change.map(|c| c.entry.body)
                {
                    records.push(JournalRecord {
                        id: enrollment.to_hex(),
                        identity,
                        expires_at: u64::MAX,
                        epoch: 0,
                    });
                }
            }
        }
        EnrollmentJournal::create(&journal, &records).unwrap();
    }
    let journal_len = std::fs::metadata(&journal).unwrap().len();
    let started = Instant::now();
    let records = EnrollmentJournal::open(&journal).unwrap().records.len();
    let journal_read = started.elapsed();

    let state = args.data.join("state");
    let (rebuilt, replayed) = if args.reopen_only {
        (std::time::Duration::ZERO, size)
    } else {
        if state.exists() {
            std::fs::remove_dir_all(&state).unwrap();
        }
        let started = Instant::now();
        let (opened, replayed) =
            as_server::recovery::open_state(&state, &journal, &log, &keys).unwrap();
        let rebuilt = started.elapsed();
        drop(opened);
        (rebuilt, replayed)
    };
    let started = Instant::now();
    drop(sled::open(&state).unwrap());
    let sled_open = started.elapsed();
    let started = Instant::now();
    let (opened, again) = as_server::recovery::open_state(&state, &journal, &log, &keys).unwrap();
    let reopened = started.elapsed();
    drop(opened);
    assert_eq!((replayed, again), (size, 0));
    println!(
        "log {size} entries, journal {journal_len} bytes ({records} records, read in {:.2} s): \
         rebuilt in {:.1} s ({:.0} entries/s), reopened in {:.2} s (sled's own open: {:.2} s)",
        journal_read.as_secs_f64(),
        rebuilt.as_secs_f64(),
        size as f64 / rebuilt.as_secs_f64().max(1e-9),
        reopened.as_secs_f64(),
        sled_open.as_secs_f64()
    );
}
