//! The default durable [`LogStore`]: append-only files for the bulk data, sled for the commit.
//!
//! Layout of the store's folder:
//! - `entries.bin`: the entries' bytes, back to back;
//! - `offsets.bin`: for entry `i`, the end offset of its bytes in `entries.bin` (`u64` LE), so
//!   entry `i` spans `offsets[i-1] .. offsets[i]`;
//! - `nodes.bin`: every complete tree node's 32-byte hash, in post-order;
//! - `state/`: a sled database holding the committed size and the latest checkpoint.
//!
//! **Commit protocol.** An append writes the batch past the committed ends of the three files,
//! `fdatasync`s each, and only then stores the new size in sled and flushes it. The size in
//! sled is the commit point: bytes past it are an unfinished append and are cut off on open.
//! So a crash at any moment leaves either the old size with its data intact, or the new size
//! with all of the batch's data already synced. Open reads O(1) records and the O(log n)
//! frontier, whatever the log's size; memory use does not grow with the log.
//!
//! After any failed write or sync the store is poisoned (see [`StoreError::Poisoned`]).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::{check_entry_range, check_node_position, read_u64, LogStore, StoreError};
use crate::hash::{Hash, HASH_LEN};
use crate::tree::node_count;

const SIZE_KEY: &[u8] = b"size";
const CHECKPOINT_KEY: &[u8] = b"checkpoint";

/// Append-only files plus a sled commit record; see the module documentation.
pub struct FileStore {
    entries: File,
    offsets: File,
    nodes: File,
    state: sled::Db,
    /// Committed size, published with `Release` after the commit is durable.
    size: AtomicU64,
    writer: Mutex<Writer>,
}

/// What only the (single) writer touches.
struct Writer {
    /// End of the committed bytes in `entries.bin`.
    data_len: u64,
    /// Set after a failed write; appends are refused until reopen.
    poisoned: bool,
}

fn open_file(dir: &Path, name: &str) -> Result<File, StoreError> {
    Ok(OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(name))?)
}

/// Cuts `file` back to `len` bytes (an unfinished append), or fails if it is shorter.
fn trim_to(file: &File, len: u64, name: &str) -> Result<(), StoreError> {
    let actual = file.metadata()?.len();
    if actual < len {
        return Err(StoreError::Corrupt(format!(
            "{name} has {actual} bytes but the commit record needs {len}"
        )));
    }
    if actual > len {
        file.set_len(len)?;
        file.sync_all()?;
    }
    Ok(())
}

impl FileStore {
    /// Opens the store in `dir`, creating it if needed, and cuts off any unfinished append.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        let state = sled::Config::new().path(dir.join("state")).open()?;
        let size = match state.get(SIZE_KEY)? {
            Some(v) => read_u64(&v, "size")?,
            None => 0,
        };
        let entries = open_file(dir, "entries.bin")?;
        let offsets = open_file(dir, "offsets.bin")?;
        let nodes = open_file(dir, "nodes.bin")?;
        // New files must survive a crash too: sync the folder that names them.
        File::open(dir)?.sync_all()?;

        trim_to(&offsets, 8 * size, "offsets.bin")?;
        trim_to(&nodes, HASH_LEN as u64 * node_count(size), "nodes.bin")?;
        let data_len = if size == 0 {
            0
        } else {
            let mut buf = [0u8; 8];
            offsets.read_exact_at(&mut buf, 8 * (size - 1))?;
            u64::from_le_bytes(buf)
        };
        trim_to(&entries, data_len, "entries.bin")?;

        Ok(FileStore {
            entries,
            offsets,
            nodes,
            state,
            size: AtomicU64::new(size),
            writer: Mutex::new(Writer {
                data_len,
                poisoned: false,
            }),
        })
    }

    /// Writes and syncs the batch's bytes past the committed ends, then commits the size.
    fn write_batch(
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

        self.entries.write_all_at(&data, writer.data_len)?;
        self.offsets.write_all_at(&offsets, 8 * size)?;
        self.nodes
            .write_all_at(&node_bytes, HASH_LEN as u64 * node_count(size))?;
        self.entries.sync_data()?;
        self.offsets.sync_data()?;
        self.nodes.sync_data()?;

        let new_size = size + entries.len() as u64;
        self.state.insert(SIZE_KEY, &new_size.to_be_bytes())?;
        self.state.flush()?;
        Ok(end)
    }

    fn offset_end(&self, index: u64) -> Result<u64, StoreError> {
        let mut buf = [0u8; 8];
        self.offsets.read_exact_at(&mut buf, 8 * index)?;
        Ok(u64::from_le_bytes(buf))
    }
}

impl LogStore for FileStore {
    fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    fn append(&self, entries: &[&[u8]], nodes: &[Hash]) -> Result<(), StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if writer.poisoned {
            return Err(StoreError::Poisoned);
        }
        let size = self.size();
        let expected_nodes = node_count(size + entries.len() as u64) - node_count(size);
        if nodes.len() as u64 != expected_nodes {
            return Err(StoreError::Corrupt(format!(
                "append of {} entries brings {} nodes, not {expected_nodes}",
                entries.len(),
                nodes.len()
            )));
        }
        match self.write_batch(&writer, size, entries, nodes) {
            Ok(data_len) => {
                writer.data_len = data_len;
                self.size
                    .store(size + entries.len() as u64, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                writer.poisoned = true;
                Err(e)
            }
        }
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
        self.offsets.read_exact_at(&mut ends, 8 * start)?;
        let ends: Vec<u64> = ends
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let last = ends[count - 1];
        if last < first || ends.windows(2).any(|w| w[1] < w[0]) {
            return Err(StoreError::Corrupt("entry offsets go backwards".into()));
        }
        let mut data = vec![0u8; (last - first) as usize];
        self.entries.read_exact_at(&mut data, first)?;
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
            .read_exact_at(&mut buf, HASH_LEN as u64 * position)?;
        Ok(Hash(buf))
    }

    fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state.get(CHECKPOINT_KEY)?.map(|v| v.to_vec()))
    }

    fn set_checkpoint(&self, note: &[u8]) -> Result<(), StoreError> {
        self.state.insert(CHECKPOINT_KEY, note)?;
        self.state.flush()?;
        Ok(())
    }
}
