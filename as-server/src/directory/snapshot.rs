//! Saved copies of the map, so that a restart reads the map instead of replaying the log.
//!
//! A snapshot is only a cache: the log alone makes the map ([`kt_protocol::directory::batch::
//! Replay`]), and a snapshot is used only if it reads back whole and ends exactly where the log
//! has a map entry with its root and label count ([`super::Directory::open`] checks). So a lost,
//! torn, stale or foreign snapshot costs a replay, never a wrong map.
//!
//! File format of [`FileMapStore`] (`directory.snapshot` in the data folder): `"KTMAPv1\n"`,
//! `u64be(log size)`, `u64be(leaf count)`, then each leaf sorted by label (`label ‖
//! u64be(version) ‖ head`, 72 bytes), then the SHA-256 of everything before. Written
//! atomically (temp file, fsync, rename, folder fsync).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use kt_protocol::directory::tree::{Leaf, Map, LEAF_BYTES};
use sha2::{Digest, Sha256};

use crate::secret_file::write_atomic_with;

/// The map after the log's first `log_size` entries.
pub struct Snapshot {
    /// How many log entries made it (the last one a map entry).
    pub log_size: u64,
    /// The map.
    pub map: Map,
}

/// Where snapshots are kept.
///
/// Contract: [`MapStore::save`] replaces the saved snapshot as a whole and durably (after
/// it returns `Ok`, a crash or power loss leaves this snapshot or a later one, never a torn
/// one); [`MapStore::load`] returns the latest snapshot saved whole, or `None` if there is
/// none or it does not read back whole (which is not an error: the log rebuilds the map).
/// One writer at a time; loads happen at start only.
pub trait MapStore: Send + Sync {
    /// The latest snapshot saved whole, if any.
    fn load(&self) -> io::Result<Option<Snapshot>>;
    /// Durably replaces the saved snapshot.
    fn save(&self, log_size: u64, map: &Map) -> io::Result<()>;
}

const MAGIC: &[u8; 8] = b"KTMAPv1\n";

/// A snapshot in one file of the data folder; see the module documentation.
pub struct FileMapStore {
    path: PathBuf,
}

impl FileMapStore {
    /// The store at `path`.
    pub fn new(path: &Path) -> FileMapStore {
        FileMapStore {
            path: path.to_path_buf(),
        }
    }
}

/// A writer that hashes what passes through.
struct Hashing<'a> {
    out: &'a mut dyn Write,
    hash: Sha256,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl MapStore for FileMapStore {
    fn save(&self, log_size: u64, map: &Map) -> io::Result<()> {
        write_atomic_with(&self.path, false, |out| {
            let mut w = Hashing {
                out,
                hash: Sha256::new(),
            };
            w.write_all(MAGIC)?;
            w.write_all(&log_size.to_be_bytes())?;
            w.write_all(&map.len().to_be_bytes())?;
            map.write_leaves(&mut w)?;
            let digest = w.hash.finalize();
            w.out.write_all(&digest)
        })
    }

    fn load(&self) -> io::Result<Option<Snapshot>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let file_len = file.metadata()?.len();
        read(io::BufReader::new(file), file_len)
    }
}

/// The snapshot `reader` holds (`file_len` bytes), if whole. Read leaf by leaf, without a
/// copy of the file in memory (72 MB at a million labels); I/O errors are errors, a file
/// that is not a whole snapshot is `None`.
fn read(mut reader: impl Read, file_len: u64) -> io::Result<Option<Snapshot>> {
    let mut hash = Sha256::new();
    let mut header = [0u8; 24];
    if file_len < 24 + 32 {
        return Ok(None);
    }
    reader.read_exact(&mut header)?;
    hash.update(header);
    let number = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&header[at..at + 8]);
        u64::from_be_bytes(bytes)
    };
    let (log_size, count) = (number(8), number(16));
    let expected_len = count
        .checked_mul(LEAF_BYTES as u64)
        .and_then(|leaves| leaves.checked_add(24 + 32));
    if header[..8] != MAGIC[..] || expected_len != Some(file_len) {
        return Ok(None);
    }
    let mut failed = None;
    let leaves = (0..count).map_while(|_| {
        let mut bytes = [0u8; LEAF_BYTES];
        match reader.read_exact(&mut bytes) {
            Ok(()) => {
                hash.update(bytes);
                Some(Leaf::from_bytes(&bytes))
            }
            Err(error) => {
                failed = Some(error);
                None
            }
        }
    });
    let map = Map::from_sorted(leaves);
    if let Some(error) = failed {
        return Err(error);
    }
    let mut digest = [0u8; 32];
    reader.read_exact(&mut digest)?;
    match map {
        Some(map) if map.len() == count && hash.finalize().as_slice() == digest => {
            Ok(Some(Snapshot { log_size, map }))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kt_protocol::directory::hash::LeafValue;
    use kt_protocol::directory::vrf::Label;

    fn map_of(n: u8) -> Map {
        let changes: Vec<_> = (0..n)
            .map(|i| {
                (
                    Label([i; 32]),
                    LeafValue {
                        version: u64::from(i) + 1,
                        head: [i ^ 0x55; 32],
                    },
                )
            })
            .collect();
        let mut map = Map::new();
        let staged = map.stage(&changes);
        map.commit(staged);
        map
    }

    #[test]
    fn a_saved_snapshot_loads_back_and_a_damaged_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileMapStore::new(&dir.path().join("directory.snapshot"));
        assert!(store.load().unwrap().is_none());
        let map = map_of(40);
        store.save(123, &map).unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.log_size, 123);
        assert_eq!(loaded.map.root(), map.root());
        assert_eq!(loaded.map.len(), 40);
        let path = dir.path().join("directory.snapshot");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[30] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(store.load().unwrap().is_none());
        std::fs::write(&path, &bytes[..100]).unwrap();
        assert!(store.load().unwrap().is_none());
        std::fs::write(&path, b"").unwrap();
        assert!(store.load().unwrap().is_none());
    }
}
