//! A [`LogStore`] entirely in sled 0.34: entries, nodes and the commit record in one tree.
//!
//! Keys: `e` ‖ index (u64 BE) → entry; `n` ‖ position (u64 BE) → node hash; `size` → u64 BE;
//! `checkpoint` → note. An append is one sled batch (atomic in sled) holding its entries, its
//! nodes and the new size, followed by `flush` (sled syncs only every 500 ms on its own).
//! On Linux sled's flush is `sync_file_range`, which neither commits file metadata nor flushes
//! the device cache: this store survives a process crash but not necessarily a power loss,
//! one more reason it is not the default.
//! It passes the same conformance suite and crash test as [`super::FileStore`], but sled's
//! write amplification and its in-memory page table make it slower and let memory grow with
//! the log; see docs/architecture.md for the measured comparison.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{check_entry_range, check_node_position, read_u64, LogStore, StoreError};
use crate::hash::Hash;

const SIZE_KEY: &[u8] = b"size";
const CHECKPOINT_KEY: &[u8] = b"checkpoint";

fn key(tag: u8, n: u64) -> [u8; 9] {
    let mut k = [tag; 9];
    k[1..].copy_from_slice(&n.to_be_bytes());
    k
}

/// Everything in one sled tree; see the module documentation.
pub struct SledStore {
    db: sled::Db,
    size: AtomicU64,
}

impl SledStore {
    /// Opens (or creates) the sled database in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<SledStore, StoreError> {
        let db = sled::Config::new().path(dir.as_ref()).open()?;
        let size = match db.get(SIZE_KEY)? {
            Some(v) => read_u64(&v, "size")?,
            None => 0,
        };
        Ok(SledStore {
            db,
            size: AtomicU64::new(size),
        })
    }
}

impl LogStore for SledStore {
    fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    fn append(&self, entries: &[&[u8]], nodes: &[Hash]) -> Result<(), StoreError> {
        let size = self.size();
        let first_node = crate::tree::node_count(size);
        let mut batch = sled::Batch::default();
        for (i, entry) in entries.iter().enumerate() {
            batch.insert(&key(b'e', size + i as u64), *entry);
        }
        for (i, node) in nodes.iter().enumerate() {
            batch.insert(&key(b'n', first_node + i as u64), &node.0);
        }
        let new_size = size + entries.len() as u64;
        batch.insert(SIZE_KEY, &new_size.to_be_bytes());
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        self.size.store(new_size, Ordering::Release);
        Ok(())
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        check_entry_range(start, end, self.size())?;
        (start..end)
            .map(|i| {
                self.db
                    .get(key(b'e', i))?
                    .map(|v| v.to_vec())
                    .ok_or_else(|| StoreError::Corrupt(format!("entry {i} is missing")))
            })
            .collect()
    }

    fn node(&self, position: u64) -> Result<Hash, StoreError> {
        check_node_position(position, self.size())?;
        let value = self
            .db
            .get(key(b'n', position))?
            .ok_or_else(|| StoreError::Corrupt(format!("node {position} is missing")))?;
        Hash::from_slice(&value)
            .ok_or_else(|| StoreError::Corrupt(format!("node {position} is not 32 bytes")))
    }

    fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(CHECKPOINT_KEY)?.map(|v| v.to_vec()))
    }

    fn set_checkpoint(&self, note: &[u8]) -> Result<(), StoreError> {
        self.db.insert(CHECKPOINT_KEY, note)?;
        self.db.flush()?;
        Ok(())
    }
}
