//! The auditing mode: the witness fetches the entries a checkpoint adds from the log's tiles
//! (over HTTP) and cosigns only if they keep the directory's rules and hash to its root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{config_text, TestLog};
use kt_protocol::directory::batch::Batch;
use kt_protocol::directory::public_entry::{MapRoot, PublicEntry, Update};
use kt_protocol::directory::tree::Map;
use kt_protocol::directory::vrf::Label;
use kt_witness::config::Config;
use kt_witness::witness::{AddError, Witness};
use test_support::file_server::FileServer;

const ORIGIN: &str = "as.example/log";

/// A directory log built by the rules: batches of updates, each closed by its map entry.
#[derive(Default)]
struct Directory {
    map: Map,
    entries: Vec<Vec<u8>>,
}

fn update(label: u8, version: u64) -> Vec<u8> {
    PublicEntry::Update(Update {
        label: Label([label; 32]),
        version,
        commitment: [version as u8; 32],
        sealed: vec![label, 1, 2, 3],
    })
    .to_bytes()
}

impl Directory {
    /// One honest batch updating `labels` (each to its next version); returns the size.
    fn batch(&mut self, labels: &[u8]) -> usize {
        let mut batch = Batch::new();
        for &label in labels {
            let label = Label([label; 32]);
            let version = batch.next_version(&self.map, &label);
            batch
                .push(&self.map, &label, version, &[version as u8; 32])
                .unwrap();
            self.entries.push(update(label.0[0], version));
        }
        let (staged, root) = batch.stage(&self.map);
        self.map.commit(staged);
        self.entries.push(PublicEntry::Map(root).to_bytes());
        self.entries.len()
    }
}

/// A witness auditing `log` through the tiles at `url`, in `dir`.
fn open(dir: &std::path::Path, log: &TestLog, url: &str) -> Witness {
    let text = format!(
        "{}[log.audit]\nurl = \"{url}/\"\n",
        config_text("w.example/audit", &[log])
    );
    Witness::open(&Config::parse(&text).unwrap(), &dir.join("witness")).unwrap()
}

fn status(result: Result<String, AddError>) -> u16 {
    result.map(|_| 200).unwrap_or_else(|e| e.status())
}

#[test]
fn cosigns_a_directory_that_keeps_the_rules_across_tiles_and_restarts() {
    let mut directory = Directory::default();
    let first = directory.batch(&[1, 2, 3]);
    // 300 labels: the second checkpoint spans a full bundle and a partial one.
    let labels: Vec<u8> = (0..=255).chain(0..44).collect();
    let second = directory.batch(&labels);
    let third = directory.batch(&[2, 2, 9]);
    let log = TestLog::from_entries(ORIGIN, directory.entries.clone());
    let dir = tempfile::tempdir().unwrap();
    let tiles = dir.path().join("tiles");
    let server = FileServer::start(&tiles);

    log.write_bundles(&tiles, first);
    let witness = open(dir.path(), &log, &server.url);
    assert_eq!(status(witness.add_checkpoint(&log.request(0, first))), 200);
    log.write_bundles(&tiles, second);
    assert_eq!(
        status(witness.add_checkpoint(&log.request(first, second))),
        200
    );
    assert_eq!(witness.audited_entries(), second as u64);
    // The same checkpoint again needs no audit.
    assert_eq!(
        status(witness.add_checkpoint(&log.request(second, second))),
        200
    );
    assert_eq!(witness.audited_entries(), second as u64);

    // Reopened (progress not saved for so few entries): it audits from the first entry.
    drop(witness);
    log.write_bundles(&tiles, third);
    let witness = open(dir.path(), &log, &server.url);
    assert_eq!(
        status(witness.add_checkpoint(&log.request(second, third))),
        200
    );
    assert_eq!(witness.audited_entries(), third as u64);
    assert_eq!(witness.latest_size(ORIGIN), Some(third as u64));
    assert_eq!(witness.audit_failures(), 0);
}

/// Cosigns `good` entries, then is shown a checkpoint over `bad` (the log signed it, the
/// consistency proof holds); returns the answer's error.
fn refused_after(good: &Directory, bad: Vec<Vec<u8>>) -> AddError {
    let good_size = good.entries.len();
    let mut entries = good.entries.clone();
    entries.extend(bad);
    let log = TestLog::from_entries(ORIGIN, entries);
    let size = log.entries.len();
    let dir = tempfile::tempdir().unwrap();
    let tiles = dir.path().join("tiles");
    let server = FileServer::start(&tiles);
    log.write_bundles(&tiles, good_size);
    let witness = open(dir.path(), &log, &server.url);
    assert_eq!(
        status(witness.add_checkpoint(&log.request(0, good_size))),
        200
    );
    log.write_bundles(&tiles, size);
    let error = witness
        .add_checkpoint(&log.request(good_size, size))
        .unwrap_err();
    assert_eq!(error.status(), 422, "{error}");
    assert_eq!(witness.latest_size(ORIGIN), Some(good_size as u64));
    assert_eq!(witness.audit_failures(), 1);
    error
}

#[test]
fn refuses_checkpoints_whose_entries_break_the_directory_rules() {
    let mut good = Directory::default();
    good.batch(&[1, 2]);
    let honest_root = |labels: &[u8]| {
        let mut copy = Directory {
            map: Map::read_leaves(&{
                let mut bytes = Vec::new();
                good.map.write_leaves(&mut bytes).unwrap();
                bytes
            })
            .unwrap(),
            entries: vec![],
        };
        copy.batch(labels);
        copy.entries.pop().unwrap()
    };

    // A version skipped (label 1 is at 1; 3 is not its next version).
    let error = refused_after(&good, vec![update(1, 3), honest_root(&[1])]);
    assert!(matches!(error, AddError::DirectoryRules(_)), "{error}");
    // A version rewound: label 2 written again at version 1.
    let error = refused_after(&good, vec![update(2, 1), honest_root(&[2])]);
    assert!(matches!(error, AddError::DirectoryRules(_)), "{error}");
    // A map entry whose root is not the map the updates made.
    let wrong = PublicEntry::Map(MapRoot {
        root: [7; 32],
        labels: 3,
    })
    .to_bytes();
    let error = refused_after(&good, vec![update(3, 1), wrong]);
    assert!(format!("{error}").contains("rules"), "{error}");
    // A checkpoint that ends inside a batch (no map entry vouches for it).
    let error = refused_after(&good, vec![update(3, 1)]);
    assert!(format!("{error}").contains("map entry"), "{error}");
    // An entry that is not a directory entry.
    let error = refused_after(&good, vec![b"{\"v\":1}".to_vec(), honest_root(&[])]);
    assert!(matches!(error, AddError::DirectoryRules(_)), "{error}");
}

#[test]
fn refuses_tiles_that_are_not_the_checkpoints_entries() {
    let mut signed = Directory::default();
    let size = signed.batch(&[1, 2, 3]);
    // The tiles hold another valid directory of the same size.
    let mut served = Directory::default();
    assert_eq!(served.batch(&[4, 5, 6]), size);
    let log = TestLog::from_entries(ORIGIN, signed.entries);
    let other = TestLog::from_entries(ORIGIN, served.entries);
    let dir = tempfile::tempdir().unwrap();
    let tiles = dir.path().join("tiles");
    let server = FileServer::start(&tiles);
    other.write_bundles(&tiles, size);
    let witness = open(dir.path(), &log, &server.url);
    let error = witness.add_checkpoint(&log.request(0, size)).unwrap_err();
    assert_eq!(error.status(), 422);
    assert!(format!("{error}").contains("root"), "{error}");
    assert_eq!(witness.latest_size(ORIGIN), None);
}

#[test]
fn an_unreachable_log_is_503_then_cosigned_once_it_is_back() {
    let mut directory = Directory::default();
    let size = directory.batch(&[1, 2, 3]);
    let log = TestLog::from_entries(ORIGIN, directory.entries);
    let dir = tempfile::tempdir().unwrap();
    let tiles = dir.path().join("tiles");
    log.write_bundles(&tiles, size);
    let server = FileServer::start(&tiles);
    let (url, port) = (server.url.clone(), server.port());
    drop(server);
    let witness = open(dir.path(), &log, &url);
    let error = witness.add_checkpoint(&log.request(0, size)).unwrap_err();
    assert!(matches!(error, AddError::AuditUnavailable(_)), "{error}");
    assert_eq!(error.status(), 503);
    assert_eq!(witness.latest_size(ORIGIN), None);
    // Missing tiles are the same: nothing to judge the checkpoint by.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let server = FileServer::start_on(&empty, port);
    let error = witness.add_checkpoint(&log.request(0, size)).unwrap_err();
    assert!(matches!(error, AddError::AuditUnavailable(_)), "{error}");
    drop(server);
    let _server = FileServer::start_on(&tiles, port);
    assert_eq!(status(witness.add_checkpoint(&log.request(0, size))), 200);
    assert_eq!(witness.audit_failures(), 0);
}
