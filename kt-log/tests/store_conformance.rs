//! One conformance suite for the `LogStore` contract, run against every implementation,
//! plus the file store's recovery rules for unfinished appends and missing data.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kt_log::hash::leaf_hash;
use kt_log::store::{FileStore, LogStore, MemoryStore, SledStore, StoreError};
use kt_log::tree::{node_count, Frontier};

/// Deterministic entry content for index `i`, of varying length (including empty).
fn entry(i: u64) -> Vec<u8> {
    let len = (i * 37 % 700) as usize;
    (0..len).map(|j| (i as usize + j) as u8).collect()
}

/// Runs `open` until it stops failing on a lock still held by a dropped sled database: sled
/// 0.34 releases its file lock from a background thread shortly after `drop`, so a reopen
/// right after one can see it held. Any other error, or a lock held over 10 s, is returned.
fn when_sled_unlocked<T, E: std::fmt::Display>(open: impl Fn() -> Result<T, E>) -> Result<T, E> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open() {
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Appends entries `start..end` to `store` through a frontier, as the log does.
fn append_range(store: &impl LogStore, frontier: &mut Frontier, start: u64, end: u64) {
    let entries: Vec<Vec<u8>> = (start..end).map(entry).collect();
    let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    let mut nodes = Vec::new();
    for e in &refs {
        frontier.push(leaf_hash(e), |h| nodes.push(h));
    }
    store.append(&refs, &nodes).unwrap();
}

/// The suite. `reopen` is `None` for a store that cannot be reopened (memory).
fn conformance<S: LogStore + 'static>(open: impl Fn() -> S, reopen: bool) {
    let store = open();
    // Empty.
    assert_eq!(store.size(), 0);
    assert!(store.checkpoint().unwrap().is_none());
    assert!(store.entries(0, 0).unwrap().is_empty());
    assert!(matches!(
        store.entries(0, 1),
        Err(StoreError::OutOfRange { .. })
    ));
    assert!(matches!(store.node(0), Err(StoreError::OutOfRange { .. })));

    // Batches of awkward sizes; every entry and node reads back exactly.
    let mut frontier = Frontier::new();
    let mut emitted = Vec::new();
    let mut size = 0;
    for batch in [1u64, 2, 3, 64, 1, 200, 7] {
        let entries: Vec<Vec<u8>> = (size..size + batch).map(entry).collect();
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        let mut nodes = Vec::new();
        for e in &refs {
            frontier.push(leaf_hash(e), |h| nodes.push(h));
        }
        store.append(&refs, &nodes).unwrap();
        emitted.extend(nodes);
        size += batch;
        assert_eq!(store.size(), size);
    }
    let check_contents = |store: &S, size: u64| {
        for i in 0..size {
            assert_eq!(
                store.entries(i, i + 1).unwrap(),
                vec![entry(i)],
                "entry {i}"
            );
        }
        let all = store.entries(0, size).unwrap();
        assert_eq!(all, (0..size).map(entry).collect::<Vec<_>>());
        assert_eq!(
            store.entries(5, 9).unwrap(),
            (5..9).map(entry).collect::<Vec<_>>()
        );
        for (pos, hash) in emitted.iter().enumerate() {
            assert_eq!(store.node(pos as u64).unwrap(), *hash, "node {pos}");
        }
        assert!(store.node(node_count(size)).is_err());
        assert!(store.entries(size, size + 1).is_err());
        assert!(store.entries(3, 2).is_err());
    };
    check_contents(&store, size);

    // The largest entry tiles can carry round-trips.
    let big = vec![0xabu8; 65535];
    let mut nodes = Vec::new();
    frontier.push(leaf_hash(&big), |h| nodes.push(h));
    let big_index = size;
    store.append(&[&big], &nodes).unwrap();
    emitted.extend(nodes);
    assert_eq!(store.entries(size, size + 1).unwrap(), vec![big.clone()]);
    size += 1;

    // Checkpoint replace.
    store.set_checkpoint(b"first").unwrap();
    store.set_checkpoint(b"second").unwrap();
    assert_eq!(store.checkpoint().unwrap().as_deref(), Some(&b"second"[..]));

    // Readers alongside a writer see only committed, exact data.
    let store = Arc::new(store);
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, done) = (Arc::clone(&store), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::SeqCst) || reads == 0 {
                    let now = store.size();
                    let i = now - 1 - reads % 50.min(now);
                    let got = store.entries(i, i + 1).unwrap();
                    let expected = if i == big_index {
                        vec![0xab; 65535]
                    } else {
                        entry(i)
                    };
                    assert_eq!(got, vec![expected]);
                    assert!(store.node(node_count(now) - 1).is_ok());
                    reads += 1;
                }
            })
        })
        .collect();
    for _ in 0..20 {
        append_range(&*store, &mut frontier, size, size + 10);
        size += 10;
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(store.size(), size);

    if reopen {
        drop(store);
        let store = open();
        assert_eq!(store.size(), size);
        assert_eq!(store.checkpoint().unwrap().as_deref(), Some(&b"second"[..]));
        assert_eq!(
            store.entries(0, 5).unwrap(),
            (0..5).map(entry).collect::<Vec<_>>()
        );
        let last = node_count(size) - 1;
        let before = store.node(last).unwrap();
        // Appends continue where they left off.
        append_range(&store, &mut frontier, size, size + 3);
        assert_eq!(store.size(), size + 3);
        assert_eq!(store.node(last).unwrap(), before);
        assert_eq!(
            store.entries(size, size + 3).unwrap(),
            (size..size + 3).map(entry).collect::<Vec<_>>()
        );
    }
}

#[test]
fn memory_store_conforms() {
    conformance(MemoryStore::new, false);
}

#[test]
fn file_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance(|| FileStore::open(dir.path()).unwrap(), true);
}

#[test]
fn sled_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance(
        || when_sled_unlocked(|| SledStore::open(dir.path())).unwrap(),
        true,
    );
}

#[test]
fn memory_store_injected_failure_changes_nothing() {
    let store = MemoryStore::new();
    let mut frontier = Frontier::new();
    append_range(&store, &mut frontier, 0, 3);
    store.fail_appends(true);
    assert!(matches!(
        store.append(&[b"x"], &[leaf_hash(b"x")]),
        Err(StoreError::Injected)
    ));
    assert!(store.set_checkpoint(b"c").is_err());
    assert_eq!(store.size(), 3);
    assert!(store.checkpoint().unwrap().is_none());
}

#[test]
fn file_store_overwrites_an_unfinished_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut frontier = Frontier::new();
    {
        let store = FileStore::open(dir.path()).unwrap();
        append_range(&store, &mut frontier, 0, 10);
    }
    // Simulate a crash after the data was written but before the commit record.
    for name in ["entries.bin", "offsets.bin", "nodes.bin"] {
        let mut bytes = std::fs::read(dir.path().join(name)).unwrap();
        bytes.extend_from_slice(&[0x5a; 77]);
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.size(), 10);
    append_range(&store, &mut frontier, 10, 12);
    assert_eq!(
        store.entries(0, 12).unwrap(),
        (0..12).map(entry).collect::<Vec<_>>()
    );
    let stored: Vec<_> = Frontier::node_ids(12)
        .into_iter()
        .map(|id| store.node(id.postorder()).unwrap())
        .collect();
    assert_eq!(
        Frontier::from_parts(12, stored).unwrap().root(),
        frontier.root()
    );
}

#[test]
fn file_store_refuses_missing_committed_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = FileStore::open(dir.path()).unwrap();
        append_range(&store, &mut Frontier::new(), 0, 10);
    }
    let nodes = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("nodes.bin"))
        .unwrap();
    nodes.set_len(32 * 5).unwrap();
    assert!(matches!(
        FileStore::open(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn file_store_moves_an_earlier_sled_commit_record_into_its_commit_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut frontier = Frontier::new();
    {
        let store = FileStore::open(dir.path()).unwrap();
        append_range(&store, &mut frontier, 0, 10);
    }
    // The earlier layout: no commit.bin, the size and checkpoint in a sled database in state/.
    std::fs::remove_file(dir.path().join("commit.bin")).unwrap();
    {
        let legacy = sled::open(dir.path().join("state")).unwrap();
        legacy.insert(b"size", &10u64.to_be_bytes()).unwrap();
        legacy.insert(b"checkpoint", &b"old note"[..]).unwrap();
        legacy.flush().unwrap();
    }
    let store = when_sled_unlocked(|| FileStore::open(dir.path())).unwrap();
    assert_eq!(store.size(), 10);
    assert_eq!(
        store.checkpoint().unwrap().as_deref(),
        Some(&b"old note"[..])
    );
    assert_eq!(
        store.entries(0, 10).unwrap(),
        (0..10).map(entry).collect::<Vec<_>>()
    );
    append_range(&store, &mut frontier, 10, 12);
    drop(store);
    assert_eq!(
        when_sled_unlocked(|| FileStore::open(dir.path()))
            .unwrap()
            .size(),
        12
    );
    // The old record is retired with an impossible size, so that a binary of the earlier
    // layout refuses the folder rather than cutting the files back to 10 entries.
    let retired = when_sled_unlocked(|| sled::open(dir.path().join("state")))
        .unwrap()
        .get(b"size")
        .unwrap()
        .unwrap();
    assert_eq!(retired.as_ref(), &(1u64 << 50).to_be_bytes()[..]);
    // And if commit.bin is lost after that, the store refuses to open.
    std::fs::remove_file(dir.path().join("commit.bin")).unwrap();
    assert!(matches!(
        when_sled_unlocked(|| FileStore::open(dir.path())),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn file_store_refuses_a_second_open_of_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    append_range(&store, &mut Frontier::new(), 0, 3);
    // A second writer would interleave its appends with the first's.
    assert!(matches!(
        FileStore::open(dir.path()),
        Err(StoreError::InUse(path)) if path == dir.path()
    ));
    assert_eq!(store.size(), 3);
    drop(store);
    assert_eq!(FileStore::open(dir.path()).unwrap().size(), 3);
}

#[test]
fn file_store_refuses_data_without_a_commit_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = FileStore::open(dir.path()).unwrap();
        append_range(&store, &mut Frontier::new(), 0, 3);
    }
    // Starting empty would let the next appends overwrite the data.
    std::fs::remove_file(dir.path().join("commit.bin")).unwrap();
    assert!(matches!(
        FileStore::open(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn file_store_data_files_are_allocated_ahead_of_their_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    append_range(&store, &mut Frontier::new(), 0, 100);
    drop(store);
    let entries_len = std::fs::metadata(dir.path().join("entries.bin"))
        .unwrap()
        .len();
    let data: usize = (0..100).map(|i| entry(i).len()).sum();
    assert!(entries_len > data as u64, "{entries_len} <= {data}");
    // Reopening keeps the zero-filled space and the data.
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.size(), 100);
    assert_eq!(store.entries(99, 100).unwrap(), vec![entry(99)]);
}
