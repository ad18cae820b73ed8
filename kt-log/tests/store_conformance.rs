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
        // Many at once: the same hashes, in the order asked, repeats included.
        let positions: Vec<u64> = (0..emitted.len() as u64).rev().chain([0, 0]).collect();
        let expected: Vec<_> = positions.iter().map(|&p| emitted[p as usize]).collect();
        assert_eq!(store.nodes(&positions).unwrap(), expected);
        assert_eq!(store.nodes(&[]).unwrap(), vec![]);
        assert!(store.nodes(&[0, node_count(size)]).is_err());
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

/// The same suite and the fencing of several writers, on PostgreSQL: a database of its own per
/// test on the cluster scripts/pg-cluster starts (or on `KT_TEST_POSTGRES_URL`), see
/// test-support's `postgres` module. Without PostgreSQL these tests fail, they never skip.
#[cfg(feature = "postgres")]
mod postgres_store {
    use std::str::FromStr as _;
    use std::sync::Barrier;
    use std::time::Instant;

    use super::*;
    use kt_log::store::PostgresStore;
    use test_support::postgres::test_database;

    fn open(url: &str) -> PostgresStore {
        PostgresStore::open(url).unwrap_or_else(|e| panic!("PostgresStore::open({url}): {e}"))
    }

    /// The entries and nodes of an append of `entries` after `frontier`.
    fn batch(frontier: &mut Frontier, entries: &[Vec<u8>]) -> Vec<kt_log::Hash> {
        let mut nodes = Vec::new();
        for e in entries {
            frontier.push(leaf_hash(e), |h| nodes.push(h));
        }
        nodes
    }

    #[test]
    fn postgres_store_conforms() {
        let db = test_database();
        // Reopen: a new store (new connections) on the same database.
        conformance(|| open(&db.url), true);
    }

    /// The database stopped (unreachable) and started again under an open store: while it is
    /// down every append, checkpoint and read fails with an error and changes nothing the
    /// store answers; once it is back the store reconnects by itself, everything committed
    /// before is there byte for byte, and appends go on from the same size.
    #[test]
    fn a_postgres_store_survives_its_database_stopping_and_starting_again() {
        let cluster = test_support::postgres::OwnCluster::start();
        let store = open(&cluster.url);
        let mut frontier = Frontier::new();
        append_range(&store, &mut frontier, 0, 10);
        store.set_checkpoint(b"checkpoint at 10").unwrap();
        let before: Vec<Vec<u8>> = store.entries(0, 10).unwrap();

        cluster.stop();
        let mut down = frontier.clone();
        let entries: Vec<Vec<u8>> = (10..13).map(entry).collect();
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        let nodes = batch(&mut down, &entries);
        assert!(matches!(
            store.append(&refs, &nodes),
            Err(StoreError::Postgres(_))
        ));
        assert!(store.set_checkpoint(b"lost checkpoint").is_err());
        assert!(store.entries(0, 10).is_err());
        assert!(store.refresh().is_err());
        // Nothing the store answers changed.
        assert_eq!(store.size(), 10);
        assert_eq!(
            store.checkpoint().unwrap().as_deref(),
            Some(&b"checkpoint at 10"[..])
        );

        cluster.start_again();
        assert_eq!(store.refresh().unwrap(), 10);
        assert_eq!(store.entries(0, 10).unwrap(), before);
        append_range(&store, &mut frontier, 10, 15);
        store.set_checkpoint(b"checkpoint at 15").unwrap();
        assert_eq!(store.size(), 15);
        // A new store on the restarted database sees the same log.
        let reopened = open(&cluster.url);
        assert_eq!(reopened.size(), 15);
        assert_eq!(reopened.entries(0, 10).unwrap(), before);
        assert_eq!(
            reopened.entries(10, 15).unwrap(),
            (10..15).map(entry).collect::<Vec<_>>()
        );
        assert_eq!(
            reopened.checkpoint().unwrap().as_deref(),
            Some(&b"checkpoint at 15"[..])
        );
        let last = node_count(15) - 1;
        assert_eq!(reopened.node(last).unwrap(), store.node(last).unwrap());
    }

    #[test]
    fn two_postgres_stores_cannot_both_append_at_one_size() {
        let db = test_database();
        let first = open(&db.url);
        let mut frontier = Frontier::new();
        append_range(&first, &mut frontier, 0, 5);
        let second = open(&db.url);
        assert_eq!(second.size(), 5);

        // Both believe the log has 5 entries and append different batches at once.
        let barrier = Barrier::new(2);
        let contents = [vec![vec![1u8; 40]; 3], vec![vec![2u8; 50]; 4]];
        let results: Vec<(usize, Result<(), StoreError>, Frontier)> = std::thread::scope(|scope| {
            let handles: Vec<_> = [&first, &second]
                .into_iter()
                .zip(&contents)
                .enumerate()
                .map(|(who, (store, entries))| {
                    let (barrier, mut frontier) = (&barrier, frontier.clone());
                    scope.spawn(move || {
                        let nodes = batch(&mut frontier, entries);
                        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
                        barrier.wait();
                        (who, store.append(&refs, &nodes), frontier)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<_> = results.iter().filter(|(_, r, _)| r.is_ok()).collect();
        assert_eq!(winners.len(), 1, "exactly one append succeeds: {results:?}");
        let (winner, _, won_frontier) = winners[0];
        let (loser, lost, _) = results.iter().find(|(_, r, _)| r.is_err()).unwrap();
        let won = &contents[*winner];
        let found = 5 + won.len() as u64;
        assert!(
            matches!(lost, Err(StoreError::Fenced { expected: 5, found: f }) if *f == found),
            "the other append is fenced: {lost:?}"
        );
        let message = lost.as_ref().unwrap_err().to_string();
        assert!(message.contains("another writer"), "{message}");

        // The log is contiguous: the first 5 entries, then the winner's batch, its nodes.
        let fresh = open(&db.url);
        assert_eq!(fresh.size(), found);
        let mut expected: Vec<Vec<u8>> = (0..5).map(entry).collect();
        expected.extend(won.iter().cloned());
        assert_eq!(fresh.entries(0, found).unwrap(), expected);
        let stored: Vec<_> = Frontier::node_ids(found)
            .into_iter()
            .map(|id| fresh.node(id.postorder()).unwrap())
            .collect();
        assert_eq!(
            Frontier::from_parts(found, stored).unwrap().root(),
            won_frontier.root()
        );

        // The loser still answers its old view, and cannot write a checkpoint for it either.
        let loser_store = [&first, &second][*loser];
        assert_eq!(loser_store.size(), 5);
        assert!(matches!(
            loser_store.set_checkpoint(b"stale"),
            Err(StoreError::Fenced { expected: 5, .. })
        ));
        // After a refresh it continues from the log's size.
        assert_eq!(loser_store.refresh().unwrap(), found);
        let mut frontier = won_frontier.clone();
        let more = vec![vec![3u8; 10]; 2];
        let nodes = batch(&mut frontier, &more);
        let refs: Vec<&[u8]> = more.iter().map(Vec::as_slice).collect();
        loser_store.append(&refs, &nodes).unwrap();
        loser_store.set_checkpoint(b"after refresh").unwrap();
        let fresh = open(&db.url);
        assert_eq!(fresh.size(), found + 2);
        assert_eq!(
            fresh.checkpoint().unwrap().as_deref(),
            Some(&b"after refresh"[..])
        );
    }

    #[test]
    fn two_logs_on_one_postgres_database_never_fork() {
        use kt_log::log::{Log, LogError};
        use kt_log::note::NoteSigner;
        let signer = || NoteSigner::from_seed("test.example/log", &[7; 32]).unwrap();
        let db = test_database();
        let first = Log::open(open(&db.url), signer()).unwrap();
        let second = Log::open(open(&db.url), signer()).unwrap();
        let (range, signed) = first.append_and_sign(&[b"a", b"b", b"c"]).unwrap();
        assert_eq!((range, signed.checkpoint.size), (0..3, 3));
        // The second frontend's view is stale: its append is refused, nothing is written.
        assert!(matches!(
            second.append(&[b"x"]),
            Err(LogError::Store(StoreError::Fenced {
                expected: 0,
                found: 3
            }))
        ));
        // Reopened, it continues from the first's signed state.
        let second = Log::open(open(&db.url), signer()).unwrap();
        assert_eq!(second.latest_checkpoint().note, signed.note);
        let (range, signed) = second.append_and_sign(&[b"d"]).unwrap();
        assert_eq!(range, 3..4);
        assert_eq!(second.consistency_proof(3, 4).unwrap().len(), 3);
        let reopened = Log::open(open(&db.url), signer()).unwrap();
        assert_eq!(reopened.latest_checkpoint().note, signed.note);
        assert_eq!(
            reopened.entries(0, 4).unwrap(),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );
    }

    #[test]
    fn a_fenced_log_refreshes_and_goes_on_from_the_other_writers_tree() {
        use kt_log::log::{Log, LogError};
        use kt_log::note::NoteSigner;
        let signer = || NoteSigner::from_seed("test.example/log", &[7; 32]).unwrap();
        let db = test_database();
        let first = Log::open(open(&db.url), signer()).unwrap();
        let second = Log::open(open(&db.url), signer()).unwrap();
        let (_, signed) = first.append_and_sign(&[b"a", b"b", b"c"]).unwrap();
        // The batch and its checkpoint were stored together.
        assert_eq!(
            first.store().checkpoint().unwrap().as_deref(),
            Some(&signed.note[..])
        );
        let refused = second.append_and_sign(&[b"x"]);
        assert!(
            matches!(
                refused,
                Err(LogError::Store(StoreError::Fenced {
                    expected: 0,
                    found: 3
                }))
            ),
            "{refused:?}"
        );
        assert_eq!(
            (second.size(), second.latest_checkpoint().checkpoint.size),
            (0, 0)
        );
        // Refreshed, it takes the first's tree and checkpoint, and appends after them.
        assert_eq!(second.refresh().unwrap(), 3);
        assert_eq!(second.latest_checkpoint().note, signed.note);
        assert_eq!(second.root_at(3).unwrap(), first.root_at(3).unwrap());
        let (range, signed) = second.append_and_sign(&[b"d", b"e"]).unwrap();
        assert_eq!((range, signed.checkpoint.size), (3..5, 5));
        // Nothing of the refused batch was written.
        assert_eq!(first.refresh().unwrap(), 5);
        assert_eq!(first.latest_checkpoint().note, signed.note);
        assert_eq!(
            first.entries(0, 5).unwrap(),
            [&b"a"[..], b"b", b"c", b"d", b"e"]
                .map(<[u8]>::to_vec)
                .to_vec()
        );
        let old_root = second.root_at(3).unwrap();
        kt_log::verify::verify_consistency(
            3,
            5,
            &old_root,
            &signed.checkpoint.root,
            &first.consistency_proof(3, 5).unwrap(),
        )
        .unwrap();
        // A refresh with nothing new changes nothing.
        assert_eq!(first.refresh().unwrap(), 5);
        let reopened = Log::open(open(&db.url), signer()).unwrap();
        assert_eq!(reopened.root_at(5).unwrap(), first.root_at(5).unwrap());
    }

    #[test]
    fn a_refresh_takes_in_a_short_gap_from_its_entries_and_a_long_one_from_its_nodes() {
        use kt_log::log::Log;
        use kt_log::note::NoteSigner;
        let signer = || NoteSigner::from_seed("test.example/log", &[7; 32]).unwrap();
        let db = test_database();
        let first = Log::open(open(&db.url), signer()).unwrap();
        let second = Log::open(open(&db.url), signer()).unwrap();
        let entry = |i: usize| format!("entry {i}").into_bytes();
        // 3 entries: taken in from the entries themselves, which the second then serves.
        let short: Vec<Vec<u8>> = (0..3).map(entry).collect();
        let refs: Vec<&[u8]> = short.iter().map(Vec::as_slice).collect();
        first.append_and_sign(&refs).unwrap();
        assert_eq!(second.refresh().unwrap(), 3);
        assert_eq!(second.root_at(3).unwrap(), first.root_at(3).unwrap());
        assert_eq!(second.entries(1, 3).unwrap(), short[1..].to_vec());
        // Over a thousand more: taken in from the frontier's nodes.
        let long: Vec<Vec<u8>> = (3..1203).map(entry).collect();
        let refs: Vec<&[u8]> = long.iter().map(Vec::as_slice).collect();
        let (_, signed) = first.append_and_sign(&refs).unwrap();
        assert_eq!(second.refresh().unwrap(), 1203);
        assert_eq!(second.latest_checkpoint().note, signed.note);
        assert_eq!(second.entries(1200, 1203).unwrap(), long[1197..].to_vec());
        // Either way the second appends on the right tree.
        let (_, signed) = second.append_and_sign(&[b"last"]).unwrap();
        assert_eq!(first.refresh().unwrap(), 1204);
        assert_eq!(first.latest_checkpoint().note, signed.note);
        assert_eq!(first.root_at(1204).unwrap(), signed.checkpoint.root);
        assert_eq!(first.entries(1203, 1204).unwrap(), vec![b"last".to_vec()]);
        // Taking the write lock reads the new entries with the state, in one round trip.
        let (_, signed) = first.append_and_sign(&[b"held 1", b"held 2"]).unwrap();
        assert_eq!(second.hold_writes().unwrap(), 1206);
        assert_eq!(second.latest_checkpoint().note, signed.note);
        assert_eq!(
            second.entries(1204, 1206).unwrap(),
            vec![b"held 1".to_vec(), b"held 2".to_vec()]
        );
        assert_eq!(
            second.store().entries(1205, 1206).unwrap(),
            vec![b"held 2".to_vec()]
        );
        let (range, signed) = second.append_and_sign(&[b"after the hold"]).unwrap();
        assert_eq!((range, signed.checkpoint.size), (1206..1207, 1207));
        assert_eq!(first.refresh().unwrap(), 1207);
        assert_eq!(first.root_at(1207).unwrap(), signed.checkpoint.root);
    }

    /// The roots of `pem` (a CA's certificate).
    fn roots_of(pem: &str) -> rustls::RootCertStore {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
            .unwrap();
        roots
    }

    #[test]
    fn a_store_over_tcp_uses_tls_verified_against_the_roots_it_is_given() {
        use kt_log::log::Log;
        use kt_log::note::NoteSigner;
        use test_support::postgres::{OwnCluster, TlsFiles};
        let tls = TlsFiles::generate();
        let cluster = OwnCluster::start_tls(&tls);
        let required = format!("{}?sslmode=require", cluster.url);
        let signer = NoteSigner::from_seed("test.example/log", &[7; 32]).unwrap();
        let store = PostgresStore::open_tls(&required, roots_of(&tls.ca_pem)).unwrap();
        let log = Log::open(store, signer).unwrap();
        log.append_and_sign(&[b"over TLS"]).unwrap();
        // A read, on a reader connection of its own.
        assert_eq!(log.entries(0, 1).unwrap(), vec![b"over TLS".to_vec()]);
        // Every connection the store opened is encrypted.
        let mut check = postgres::Config::from_str(&required)
            .unwrap()
            .connect(kt_log::store::tls_connector(roots_of(&tls.ca_pem)).unwrap())
            .unwrap();
        let row = check
            .query_one(
                "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s \
                 JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'kt-log'",
                &[],
            )
            .unwrap();
        let (connections, encrypted): (i64, Option<bool>) = (row.get(0), row.get(1));
        assert!(connections >= 2, "{connections} connections");
        assert_eq!(encrypted, Some(true));
        // A certificate the store cannot verify fails the connection, whether TLS is required
        // or only preferred (the default): it never falls back to plain text.
        for url in [required.as_str(), cluster.url.as_str()] {
            let refused = PostgresStore::open(url).err().map(|e| e.to_string());
            assert!(
                refused
                    .as_deref()
                    .is_some_and(|e| e.contains("certificate") || e.contains("UnknownIssuer")),
                "{url}: {refused:?}"
            );
        }
        let other = TlsFiles::generate();
        assert!(PostgresStore::open_tls(&required, roots_of(&other.ca_pem)).is_err());
    }

    #[test]
    fn a_held_write_lock_keeps_other_writers_out_until_the_append_commits() {
        use kt_log::log::{Log, LogError};
        use kt_log::note::NoteSigner;
        let signer = || NoteSigner::from_seed("test.example/log", &[7; 32]).unwrap();
        let db = test_database();
        let first = Log::open(open(&db.url), signer()).unwrap();
        let second = Log::open(open(&db.url), signer()).unwrap();
        first.append_and_sign(&[b"a"]).unwrap();
        // The second takes the lock, and with it the first's append.
        assert_eq!(second.hold_writes().unwrap(), 1);
        let (appended, waited) = std::thread::scope(|scope| {
            let blocked = scope.spawn(|| {
                let started = Instant::now();
                (first.append_and_sign(&[b"late"]), started.elapsed())
            });
            std::thread::sleep(std::time::Duration::from_millis(300));
            // The second decides and appends while the first waits.
            let (range, _) = second.append_and_sign(&[b"b", b"c"]).unwrap();
            assert_eq!(range, 1..3);
            blocked.join().unwrap()
        });
        assert!(
            waited >= std::time::Duration::from_millis(250),
            "{waited:?}"
        );
        // The first waited for the lock, then found the log grown: fenced, nothing written.
        assert!(
            matches!(
                appended,
                Err(LogError::Store(StoreError::Fenced {
                    expected: 1,
                    found: 3
                }))
            ),
            "{appended:?}"
        );
        // A lock given back without an append writes nothing and lets the others in.
        assert_eq!(first.hold_writes().unwrap(), 3);
        first.release_writes().unwrap();
        let (range, signed) = second.append_and_sign(&[b"d"]).unwrap();
        assert_eq!((range, signed.checkpoint.size), (3..4, 4));
        // Held again, the lock also ends with a checkpoint-only write.
        assert_eq!(first.hold_writes().unwrap(), 4);
        assert_eq!(first.sign_checkpoint().unwrap().note, signed.note);
        first.release_writes().unwrap();
        let reopened = Log::open(open(&db.url), signer()).unwrap();
        assert_eq!(
            reopened.entries(0, 4).unwrap(),
            [&b"a"[..], b"b", b"c", b"d"].map(<[u8]>::to_vec).to_vec()
        );
    }

    #[test]
    fn a_log_refuses_a_shared_checkpoint_its_key_did_not_sign() {
        use kt_log::log::{Log, LogError};
        use kt_log::note::NoteSigner;
        let db = test_database();
        let ours = Log::open(
            open(&db.url),
            NoteSigner::from_seed("test.example/log", &[7; 32]).unwrap(),
        )
        .unwrap();
        let theirs = Log::open(
            open(&db.url),
            NoteSigner::from_seed("test.example/log", &[8; 32]).unwrap(),
        );
        // A log of another key cannot even open the database's log...
        assert!(theirs.is_err());
        // ...and a checkpoint of another key written beside ours is refused at refresh.
        let other = NoteSigner::from_seed("test.example/log", &[8; 32]).unwrap();
        let store = open(&db.url);
        let mut frontier = Frontier::new();
        let mut nodes = Vec::new();
        frontier.push(kt_log::hash::leaf_hash(b"z"), |h| nodes.push(h));
        let forged = kt_log::checkpoint::Checkpoint {
            origin: "test.example/log".into(),
            size: 1,
            root: frontier.root(),
            extensions: Vec::new(),
        }
        .sign(&other)
        .unwrap();
        store
            .append_checkpointed(&[b"z"], &nodes, &forged.note)
            .unwrap();
        assert!(matches!(ours.refresh(), Err(LogError::Checkpoint(_))));
        assert_eq!(ours.latest_checkpoint().checkpoint.size, 0);
    }

    #[test]
    fn postgres_stores_opened_at_once_on_a_new_database_share_one_schema() {
        let db = test_database();
        let stores: Vec<PostgresStore> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4).map(|_| scope.spawn(|| open(&db.url))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        append_range(&stores[2], &mut Frontier::new(), 0, 2);
        for store in &stores {
            assert_eq!(store.refresh().unwrap(), 2);
            assert_eq!(store.entries(0, 2).unwrap(), vec![entry(0), entry(1)]);
        }
    }

    #[test]
    fn postgres_store_refuses_another_schema_version() {
        let db = test_database();
        let store = open(&db.url);
        append_range(&store, &mut Frontier::new(), 0, 3);
        drop(store);
        let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
        client
            .execute(
                "UPDATE schema_version SET version = 2 WHERE component = 'log'",
                &[],
            )
            .unwrap();
        let refused = PostgresStore::open(&db.url).err();
        assert!(
            matches!(
                refused,
                Some(StoreError::SchemaVersion {
                    found: 2,
                    supported: 1
                })
            ),
            "{refused:?}"
        );
        // And a database holding other tables of the log's names is not taken over.
        let other = test_database();
        let mut client = postgres::Client::connect(&other.url, postgres::NoTls).unwrap();
        client
            .batch_execute("CREATE TABLE log_entries (something text)")
            .unwrap();
        let refused = PostgresStore::open(&other.url).err();
        assert!(
            matches!(refused, Some(StoreError::Postgres(_))),
            "{refused:?}"
        );
        // The server's message is in the error's text.
        let message = refused.unwrap().to_string();
        assert!(message.contains("already exists"), "{message}");
    }

    /// Append throughput in batches of 1,000 entries of 500 bytes (a group commit's shape).
    /// A measurement, not a check:
    /// `cargo test --release -p kt-log --features postgres --test store_conformance --
    /// --ignored --nocapture postgres_store_append_throughput`.
    #[test]
    #[ignore = "a measurement; run it explicitly (see its doc comment)"]
    fn postgres_store_append_throughput() {
        let db = test_database();
        let store = open(&db.url);
        let mut frontier = Frontier::new();
        let mut size = 0u64;
        let mut append_batch = |store: &PostgresStore| {
            let entries: Vec<Vec<u8>> = (size..size + 1000)
                .map(|i| {
                    let mut e = vec![0u8; 500];
                    for (j, b) in e.iter_mut().enumerate() {
                        *b = (i.wrapping_mul(2_654_435_761).wrapping_add(j as u64 * 97) >> 7) as u8;
                    }
                    e
                })
                .collect();
            let nodes = batch(&mut frontier, &entries);
            let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
            store.append(&refs, &nodes).unwrap();
            size += 1000;
        };
        for _ in 0..3 {
            append_batch(&store);
        }
        let batches = 50;
        let start = Instant::now();
        for _ in 0..batches {
            append_batch(&store);
        }
        let elapsed = start.elapsed();
        println!(
            "PostgresStore: {batches} appends of 1,000 entries of 500 bytes in {:.2} s: \
             {:.0} entries/s, {:.1} ms per batch",
            elapsed.as_secs_f64(),
            f64::from(batches * 1000) / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1000.0 / f64::from(batches)
        );
        assert_eq!(store.size(), 53_000);
    }

    /// Reads each node with its own query, as a store without a batched read would.
    struct OneByOne<'a>(&'a PostgresStore);

    impl kt_log::tree::NodeReader for OneByOne<'_> {
        type Error = StoreError;
        fn node(&self, id: kt_log::tree::NodeId) -> Result<kt_log::Hash, StoreError> {
            self.0.node(id.postorder())
        }
    }

    /// Reads a proof's nodes in one query ([`LogStore::nodes`]).
    struct Batched<'a>(&'a PostgresStore);

    impl kt_log::tree::NodeReader for Batched<'_> {
        type Error = StoreError;
        fn node(&self, id: kt_log::tree::NodeId) -> Result<kt_log::Hash, StoreError> {
            self.0.node(id.postorder())
        }
        fn nodes(&self, ids: &[kt_log::tree::NodeId]) -> Result<Vec<kt_log::Hash>, StoreError> {
            let positions: Vec<u64> = ids.iter().map(|id| id.postorder()).collect();
            self.0.nodes(&positions)
        }
    }

    /// Inclusion proofs from a PostgresStore of 100,000 entries, each node read by its own
    /// query against one query per proof, alternately in one run (the same proofs, checked
    /// equal): `cargo test --release -p kt-log --features postgres --test store_conformance
    /// -- --ignored --nocapture postgres_store_proof_reads`.
    #[test]
    #[ignore = "a measurement; run it explicitly (see its doc comment)"]
    fn postgres_store_proof_reads() {
        use kt_log::tree::inclusion_proof;
        let db = test_database();
        let store = open(&db.url);
        let mut frontier = Frontier::new();
        let size = 100_000u64;
        for start in (0..size).step_by(10_000) {
            append_range(&store, &mut frontier, start, start + 10_000);
        }
        let proofs = 2_000u64;
        let indices: Vec<u64> = (0..proofs)
            .map(|i| i.wrapping_mul(2_654_435_761) % size)
            .collect();
        for round in 1..=3 {
            let start = Instant::now();
            let one_by_one: Vec<_> = indices
                .iter()
                .map(|&i| inclusion_proof(&OneByOne(&store), i, size).unwrap())
                .collect();
            let single = start.elapsed();
            let start = Instant::now();
            let batched: Vec<_> = indices
                .iter()
                .map(|&i| inclusion_proof(&Batched(&store), i, size).unwrap())
                .collect();
            let together = start.elapsed();
            assert_eq!(one_by_one, batched);
            let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / proofs as f64;
            println!(
                "round {round}: {proofs} inclusion proofs at size {size}: a query per node \
                 {:.0} µs per proof, one query per proof {:.0} µs per proof ({:.2}×)",
                per(single),
                per(together),
                single.as_secs_f64() / together.as_secs_f64()
            );
        }
    }
}
