//! An in-memory [`LogStore`] for tests, with failure injection.
//!
//! Nothing survives the process. Appends are atomic (one lock), so it honours the rest of the
//! contract, and [`MemoryStore::fail_appends`] lets a test check what the log does when a
//! durable write fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use super::{check_entry_range, LogStore, StoreError};
use crate::hash::Hash;

#[derive(Default)]
struct Contents {
    entries: Vec<Vec<u8>>,
    nodes: Vec<Hash>,
    checkpoint: Option<Vec<u8>>,
}

/// Entries, nodes and checkpoint in memory.
#[derive(Default)]
pub struct MemoryStore {
    contents: RwLock<Contents>,
    fail_appends: AtomicBool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// While `fail` is true, `append` and `set_checkpoint` fail without changing anything.
    pub fn fail_appends(&self, fail: bool) {
        self.fail_appends.store(fail, Ordering::SeqCst);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Contents> {
        // A poisoned lock only means a reader panicked; the data itself is never half-written.
        self.contents.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, Contents>, StoreError> {
        if self.fail_appends.load(Ordering::SeqCst) {
            return Err(StoreError::Injected);
        }
        Ok(self.contents.write().unwrap_or_else(|e| e.into_inner()))
    }
}

impl LogStore for MemoryStore {
    fn size(&self) -> u64 {
        self.read().entries.len() as u64
    }

    fn append(&self, entries: &[&[u8]], nodes: &[Hash]) -> Result<(), StoreError> {
        let mut contents = self.write()?;
        contents.entries.extend(entries.iter().map(|e| e.to_vec()));
        contents.nodes.extend_from_slice(nodes);
        Ok(())
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let contents = self.read();
        check_entry_range(start, end, contents.entries.len() as u64)?;
        Ok(contents.entries[start as usize..end as usize].to_vec())
    }

    fn node(&self, position: u64) -> Result<Hash, StoreError> {
        self.read()
            .nodes
            .get(position as usize)
            .copied()
            .ok_or(StoreError::OutOfRange {
                what: "node",
                index: position,
            })
    }

    fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read().checkpoint.clone())
    }

    fn set_checkpoint(&self, note: &[u8]) -> Result<(), StoreError> {
        self.write()?.checkpoint = Some(note.to_vec());
        Ok(())
    }
}
