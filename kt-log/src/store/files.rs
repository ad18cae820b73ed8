//! The default durable [`LogStore`]: append-only files for the data, a two-slot file for the
//! commit record.
//!
//! Layout of the store's folder:
//! - `entries.bin`: the entries' bytes, back to back;
//! - `offsets.bin`: for entry `i`, the end offset of its bytes in `entries.bin` (`u64` LE), so
//!   entry `i` spans `offsets[i-1] .. offsets[i]`;
//! - `nodes.bin`: every complete tree node's 32-byte hash, in post-order;
//! - `commit.bin`: the committed size and the latest checkpoint ([`super::commit_file`]);
//! - `lock`: empty; an exclusive `flock` on it is held while the store is open, so a second
//!   store on the folder (another process started on the same data) is refused with
//!   [`StoreError::InUse`] before it reads or writes anything. The kernel releases it when the
//!   process ends, however it ends, so a crash leaves no stale lock.
//!
//! **Commit protocol.** An append writes the batch past the committed ends of the three data
//! files, `fdatasync`s each, and only then writes the new size to the commit record and
//! `fdatasync`s it. The commit record is the commit point: bytes past the committed ends are
//! an unfinished append (or zeros, see below) and are never read, and the next append
//! overwrites them. So a crash or power loss at any moment leaves either the old size with its
//! data intact, or the new size with all of the batch's data already synced. Open reads O(1)
//! records and the O(log n) frontier, whatever the log's size; memory use does not grow with
//! the log.
//!
//! **No journal waits.** The data files are kept zero-filled ahead of the data
//! ([`super::zero_filled`]) and the commit file has a fixed length, so none of an append's
//! syncs changes a file's length or allocates blocks: each writes data and flushes the device
//! cache, without waiting for a file-system journal commit.
//!
//! **Earlier layout.** Stores made before `commit.bin` kept the size and checkpoint in a sled
//! database in `state/` (whose flush on Linux is `sync_file_range`, which neither commits
//! metadata nor flushes the device cache: not durable across power loss). Opening such a
//! store copies its record into `commit.bin`, then overwrites the size in `state/` with an
//! impossible one, so that an older binary refuses the folder instead of cutting its files
//! back. A folder whose data files hold data but that has no commit record is refused.
//!
//! **Failures.** A failed append or checkpoint changes nothing a reader sees, and the store
//! stays usable, so a process outlives a full or read-only disk: a failure while writing or
//! syncing the data files happened past the committed ends, which are never read and which the
//! next append overwrites (and syncs) before it commits anything; committed data was synced
//! before, so a failed `fdatasync` cannot lose it. A failed write of the commit record leaves
//! the record on disk unknown (the new one, the old one, or torn): the store then writes the
//! committed record again, to the same slot, before its next write of any kind, and refuses
//! to write until that succeeds. So the commit record on disk never runs ahead of what the
//! store answered while it runs; a crash before that rewrite may still find the new record
//! (its data was synced before it), which is the crash case of any commit.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use super::commit_file::{CommitFile, CommitRecord};
use super::zero_filled::ZeroFilledFile;
use super::{check_entry_range, check_node_position, read_u64, LogStore, StoreError};
use crate::hash::{Hash, HASH_LEN};
use crate::tree::node_count;

/// The sled folder of the earlier layout, and its keys.
const LEGACY_STATE: &str = "state";
const LEGACY_SIZE_KEY: &[u8] = b"size";
const LEGACY_CHECKPOINT_KEY: &[u8] = b"checkpoint";
/// The file whose `flock` marks the folder as open (see the module documentation).
const LOCK_FILE: &str = "lock";
/// The data files, in the order they are synced.
const DATA_FILES: [&str; 3] = ["entries.bin", "offsets.bin", "nodes.bin"];

/// Append-only data files plus a commit record; see the module documentation.
pub struct FileStore {
    entries: ZeroFilledFile,
    offsets: ZeroFilledFile,
    nodes: ZeroFilledFile,
    /// Committed size, published with `Release` after the commit is durable.
    size: AtomicU64,
    /// The latest durable checkpoint note.
    checkpoint: RwLock<Option<Vec<u8>>>,
    writer: Mutex<Writer>,
    /// Holds the folder's exclusive lock for as long as the store is open.
    _lock: File,
}

/// Takes the folder's exclusive lock, or refuses with [`StoreError::InUse`].
fn lock_folder(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// What only the (single) writer touches.
struct Writer {
    /// End of the committed bytes in `entries.bin`.
    data_len: u64,
    commit: CommitFile,
    /// A write of the commit record failed, so the record on disk is unknown: the committed
    /// one (in memory) is written again before any other write (see the module doc).
    commit_unsure: bool,
}

fn open_file(dir: &Path, name: &str) -> Result<ZeroFilledFile, StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(name))?;
    Ok(ZeroFilledFile::new(file, name)?)
}

/// Fails if `file` is shorter than the `len` bytes the commit record needs.
fn check_len(file: &ZeroFilledFile, len: u64, name: &str) -> Result<(), StoreError> {
    let actual = file.file().metadata()?.len();
    if actual < len {
        return Err(StoreError::Corrupt(format!(
            "{name} has {actual} bytes but the commit record needs {len}"
        )));
    }
    Ok(())
}

/// The size written into the earlier layout's sled record once it has moved to `commit.bin`:
/// far beyond any data file, so that a binary of the earlier layout opening the folder fails
/// ("offsets.bin has … bytes but the commit record needs …") instead of cutting the files back
/// to a size of its own.
const LEGACY_RETIRED_SIZE: u64 = 1 << 50;

/// The earlier layout's sled database in `dir`, if there is one.
fn open_legacy(dir: &Path) -> Result<Option<sled::Db>, StoreError> {
    let path = dir.join(LEGACY_STATE);
    if !path.try_exists()? {
        return Ok(None);
    }
    Ok(Some(sled::Config::new().path(path).open()?))
}

/// The commit record for a folder without `commit.bin`: the earlier layout's (`legacy`), or an
/// empty one for a new store. Refuses a folder whose data files hold data but that has no
/// record at all (a lost `commit.bin`): starting it empty would overwrite that data.
fn initial_record(dir: &Path, legacy: Option<&sled::Db>) -> Result<CommitRecord, StoreError> {
    let Some(state) = legacy else {
        for name in DATA_FILES {
            let len = std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
            if len > 0 {
                return Err(StoreError::Corrupt(format!(
                    "{name} holds data but the commit record ({}) is missing",
                    super::commit_file::FILE_NAME
                )));
            }
        }
        return Ok(CommitRecord::default());
    };
    let size = match state.get(LEGACY_SIZE_KEY)? {
        Some(v) => read_u64(&v, "size")?,
        None => 0,
    };
    if size == LEGACY_RETIRED_SIZE {
        return Err(StoreError::Corrupt(format!(
            "{LEGACY_STATE}/ was moved to {} and that file is missing",
            super::commit_file::FILE_NAME
        )));
    }
    let checkpoint = state.get(LEGACY_CHECKPOINT_KEY)?.map(|v| v.to_vec());
    Ok(CommitRecord { size, checkpoint })
}

/// Marks the earlier layout's record as moved (see [`LEGACY_RETIRED_SIZE`]), once `commit.bin`
/// holds it durably.
fn retire_legacy_record(dir: &Path, state: &sled::Db) -> Result<(), StoreError> {
    if state.get(LEGACY_SIZE_KEY)?.as_deref() != Some(&LEGACY_RETIRED_SIZE.to_be_bytes()[..]) {
        state.insert(LEGACY_SIZE_KEY, &LEGACY_RETIRED_SIZE.to_be_bytes())?;
        state.flush()?;
        // sled's flush does not reach the disk's cache; the file's own sync does.
        File::open(dir.join(LEGACY_STATE).join("db"))?.sync_all()?;
    }
    Ok(())
}

impl FileStore {
    /// Opens the store in `dir`, creating it if needed.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        let dir = dir.as_ref();
        if !dir.try_exists()? {
            std::fs::create_dir_all(dir)?;
            // The new folder must survive a crash too: sync the folder that names it.
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
            File::open(parent.unwrap_or(Path::new(".")))?.sync_all()?;
        }
        let lock = lock_folder(dir)?;
        let legacy = open_legacy(dir)?;
        let (commit, record) = CommitFile::open(dir, || initial_record(dir, legacy.as_ref()))?;
        if let Some(legacy) = &legacy {
            retire_legacy_record(dir, legacy)?;
        }
        let size = record.size;
        let [entries, offsets, nodes] = DATA_FILES.map(|name| open_file(dir, name));
        let (entries, offsets, nodes) = (entries?, offsets?, nodes?);
        // New files must survive a crash too: sync the folder that names them.
        File::open(dir)?.sync_all()?;

        check_len(&offsets, 8 * size, "offsets.bin")?;
        check_len(&nodes, HASH_LEN as u64 * node_count(size), "nodes.bin")?;
        let data_len = if size == 0 {
            0
        } else {
            let mut buf = [0u8; 8];
            offsets.file().read_exact_at(&mut buf, 8 * (size - 1))?;
            u64::from_le_bytes(buf)
        };
        check_len(&entries, data_len, "entries.bin")?;

        Ok(FileStore {
            entries,
            offsets,
            nodes,
            size: AtomicU64::new(size),
            checkpoint: RwLock::new(record.checkpoint),
            writer: Mutex::new(Writer {
                data_len,
                commit,
                commit_unsure: false,
            }),
            _lock: lock,
        })
    }

    /// Writes the committed record again if a write of it failed (see the module doc).
    fn settle(&self, writer: &mut Writer) -> Result<(), StoreError> {
        if writer.commit_unsure {
            let checkpoint = self.checkpoint.read().unwrap_or_else(|e| e.into_inner());
            writer.commit.write(&CommitRecord {
                size: self.size(),
                checkpoint: checkpoint.clone(),
            })?;
            writer.commit_unsure = false;
        }
        Ok(())
    }

    /// Writes `record`, noting a failure as an unknown record on disk.
    fn commit(&self, writer: &mut Writer, record: &CommitRecord) -> Result<(), StoreError> {
        let written = writer.commit.write(record);
        writer.commit_unsure = written.is_err();
        written
    }

    /// Writes and syncs the batch's bytes past the committed ends; returns the new end of
    /// `entries.bin`. Commits nothing: a failure here leaves the committed data as it was.
    fn write_data(
        &self,
        writer: &Writer,
        size: u64,
        entries: &[&[u8]],
        nodes: &[Hash],
    ) -> Result<u64, StoreError> {
        let data: Vec<u8> = entries.concat();
        let mut offsets = Vec::with_capacity(8 * entries.len());
        let mut end = writer.data_len;
        for entry in entries {
            end += entry.len() as u64;
            offsets.extend_from_slice(&end.to_le_bytes());
        }
        let node_bytes: Vec<u8> = nodes.iter().flat_map(|h| h.0).collect();
        let nodes_at = HASH_LEN as u64 * node_count(size);

        self.entries.reserve(end)?;
        self.offsets.reserve(8 * size + offsets.len() as u64)?;
        self.nodes.reserve(nodes_at + node_bytes.len() as u64)?;
        self.entries.file().write_all_at(&data, writer.data_len)?;
        self.offsets.file().write_all_at(&offsets, 8 * size)?;
        self.nodes.file().write_all_at(&node_bytes, nodes_at)?;
        self.entries.file().sync_data()?;
        self.offsets.file().sync_data()?;
        self.nodes.file().sync_data()?;
        Ok(end)
    }

    fn offset_end(&self, index: u64) -> Result<u64, StoreError> {
        let mut buf = [0u8; 8];
        self.offsets.file().read_exact_at(&mut buf, 8 * index)?;
        Ok(u64::from_le_bytes(buf))
    }
}

impl LogStore for FileStore {
    fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    fn append(&self, entries: &[&[u8]], nodes: &[Hash]) -> Result<(), StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.settle(&mut writer)?;
        let size = self.size();
        let expected_nodes = node_count(size + entries.len() as u64) - node_count(size);
        if nodes.len() as u64 != expected_nodes {
            return Err(StoreError::Corrupt(format!(
                "append of {} entries brings {} nodes, not {expected_nodes}",
                entries.len(),
                nodes.len()
            )));
        }
        let data_len = self.write_data(&writer, size, entries, nodes)?;
        let new_size = size + entries.len() as u64;
        let checkpoint = self
            .checkpoint
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.commit(
            &mut writer,
            &CommitRecord {
                size: new_size,
                checkpoint,
            },
        )?;
        writer.data_len = data_len;
        self.size.store(new_size, Ordering::Release);
        Ok(())
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        check_entry_range(start, end, self.size())?;
        if start == end {
            return Ok(Vec::new());
        }
        let count = (end - start) as usize;
        let first = if start == 0 {
            0
        } else {
            self.offset_end(start - 1)?
        };
        let mut ends = vec![0u8; 8 * count];
        self.offsets.file().read_exact_at(&mut ends, 8 * start)?;
        let ends: Vec<u64> = ends
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let last = ends[count - 1];
        if last < first || ends.windows(2).any(|w| w[1] < w[0]) {
            return Err(StoreError::Corrupt("entry offsets go backwards".into()));
        }
        let mut data = vec![0u8; (last - first) as usize];
        self.entries.file().read_exact_at(&mut data, first)?;
        let mut out = Vec::with_capacity(count);
        let mut at = first;
        for end in ends {
            out.push(data[(at - first) as usize..(end - first) as usize].to_vec());
            at = end;
        }
        Ok(out)
    }

    fn node(&self, position: u64) -> Result<Hash, StoreError> {
        check_node_position(position, self.size())?;
        let mut buf = [0u8; HASH_LEN];
        self.nodes
            .file()
            .read_exact_at(&mut buf, HASH_LEN as u64 * position)?;
        Ok(Hash(buf))
    }

    fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .checkpoint
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone())
    }

    fn set_checkpoint(&self, note: &[u8]) -> Result<(), StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.settle(&mut writer)?;
        if note.len() > super::commit_file::MAX_NOTE_LEN {
            // Refused before any write: the store stays usable.
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "checkpoint note is too large for the commit record",
            )));
        }
        let record = CommitRecord {
            size: self.size(),
            checkpoint: Some(note.to_vec()),
        };
        self.commit(&mut writer, &record)?;
        *self.checkpoint.write().unwrap_or_else(|e| e.into_inner()) = record.checkpoint;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Log;
    use crate::note::NoteSigner;

    impl FileStore {
        /// Makes writes of the commit record in `dir` fail (a read-only handle) or work again.
        fn break_commit_record(&self, dir: &Path, broken: bool) {
            let mut writer = self.writer.lock().unwrap();
            let file = OpenOptions::new()
                .read(true)
                .write(!broken)
                .open(dir.join(super::super::commit_file::FILE_NAME))
                .unwrap();
            drop(writer.commit.swap_handle(file));
        }
    }

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("example.com/log", &[7; 32]).unwrap()
    }

    #[test]
    fn a_failed_commit_record_write_changes_nothing_and_is_settled_before_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(FileStore::open(dir.path()).unwrap(), signer()).unwrap();
        log.append_and_sign(&[b"a".as_slice(), b"b", b"c"]).unwrap();
        let signed = log.latest_checkpoint();

        log.store().break_commit_record(dir.path(), true);
        assert!(log.append_and_sign(&[b"lost".as_slice()]).is_err());
        assert!(log.append(&[b"lost again".as_slice()]).is_err());
        assert_eq!(log.size(), 3);
        let abc = [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
        assert_eq!(log.entries(0, 3).unwrap(), abc);
        assert_eq!(log.latest_checkpoint().note, signed.note);

        // The fault is gone: the record is settled, then the append goes where the failed
        // ones went.
        log.store().break_commit_record(dir.path(), false);
        let (range, checkpoint) = log.append_and_sign(&[b"d".as_slice()]).unwrap();
        assert_eq!((range, checkpoint.checkpoint.size), (3..4, 4));
        drop(log);
        let log = Log::open(FileStore::open(dir.path()).unwrap(), signer()).unwrap();
        assert_eq!(log.size(), 4);
        assert_eq!(log.entries(3, 4).unwrap(), [b"d".to_vec()]);
        assert_eq!(log.latest_checkpoint().note, checkpoint.note);
    }
}
