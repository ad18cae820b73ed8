//! Where the log keeps its entries, its complete tree nodes and its latest checkpoint.
//!
//! Three implementations run the same conformance suite (`tests/store_conformance.rs`):
//! - [`FileStore`], the default: entries and tree nodes in append-only files with `fsync`,
//!   the commit record (size) and the latest checkpoint in a two-slot commit file;
//! - [`SledStore`]: everything in sled, kept to compare against (see docs/architecture.md);
//! - [`MemoryStore`]: in memory, for tests, with failure injection;
//! - `PostgresStore` (feature `postgres`): the log in a PostgreSQL database that several
//!   frontends may share, appends fenced on the stored size (issue 14, in progress).

mod commit_file;
mod files;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod sled_store;
mod zero_filled;

pub use files::FileStore;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{
    describe as describe_postgres_error, off_runtime, tls_connector, PostgresStore,
};
pub use sled_store::SledStore;

use std::sync::Arc;

use thiserror::Error;

use crate::hash::Hash;

/// Why a store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The operating system refused a read, write or sync.
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The sled database failed.
    #[error("sled failed: {0}")]
    Sled(#[from] sled::Error),
    /// Stored data contradicts itself (missing committed bytes, a malformed record).
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    /// A read asked for data beyond the committed size.
    #[error("{what} {index} is beyond the committed data")]
    OutOfRange {
        /// What was asked for ("entry", "node").
        what: &'static str,
        /// The index or position asked for.
        index: u64,
    },
    /// Another open store (in this process or another) holds the folder: two writers would
    /// interleave their appends, so the second is refused.
    #[error("{0} is in use by another open store (another process?)")]
    InUse(std::path::PathBuf),
    /// Failure injected by a test ([`MemoryStore`] only).
    #[error("injected failure")]
    Injected,
    /// The TLS settings for the database could not be made (`PostgresStore` only).
    #[cfg(feature = "postgres")]
    #[error("TLS for the database: {0}")]
    Tls(String),
    /// PostgreSQL failed: connection, query or commit (`PostgresStore` only).
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL failed: {}", postgres::describe(.0))]
    Postgres(#[from] ::postgres::Error),
    /// The shared log is not at the size this store expected: another writer (another
    /// frontend) appended since this store last read the size, so this write was refused
    /// rather than forking the log. Reopen (or refresh) the store to continue from its size.
    #[error(
        "the log is at size {found}, not {expected} as this store expected: another writer \
         appended meanwhile; reopen the store to continue from its size"
    )]
    Fenced {
        /// The size this store expected.
        expected: u64,
        /// The size the log has.
        found: u64,
    },
    /// The database holds the log's tables in a schema version this build does not know.
    #[error(
        "the database's log schema is version {found}; this build reads version {supported} \
         only (a newer build wrote it?)"
    )]
    SchemaVersion {
        /// The version in the database.
        found: i64,
        /// The version this build reads and writes.
        supported: i64,
    },
    /// The database would acknowledge commits it may lose (e.g. PostgreSQL with `fsync = off`).
    #[error("the database is not durable: {0}")]
    NotDurable(String),
}

/// The storage contract of the log.
///
/// **Durability.** When [`append`](LogStore::append) or
/// [`set_checkpoint`](LogStore::set_checkpoint) returns `Ok`, the data survives a process
/// crash or power loss. **Atomicity.** An append is all or nothing: after a crash at any
/// moment the store reopens with either the whole batch or none of it, and never with a
/// size whose entries or nodes are missing. **Ordering.** Appends are applied in call order;
/// a checkpoint set after an append is never recovered without that append.
/// **Concurrency.** Any number of readers may run alongside one writer; callers must not
/// call `append` or `set_checkpoint` concurrently (the log serialises them). Readers see
/// only committed data: everything below [`size`](LogStore::size) as it was when they read it.
/// **Failure.** A failed `append` or `set_checkpoint` (a full or read-only disk, an I/O error)
/// changes nothing readers see. [`FileStore`] and [`MemoryStore`] also take writes again once
/// the fault is gone, without a reopen; [`SledStore`] does not (sled refuses every write after
/// a failed one until it is reopened).
pub trait LogStore: Send + Sync {
    /// Number of entries durably committed.
    fn size(&self) -> u64;

    /// Appends `entries` at indices `size() .. size() + entries.len()` together with `nodes`,
    /// the hashes of every complete tree node those entries complete, in post-order
    /// (positions `node_count(size()) ..`, see [`crate::tree::NodeId::postorder`]).
    /// Durable and atomic as the trait documentation says; one sync for the whole batch.
    fn append(&self, entries: &[&[u8]], nodes: &[Hash]) -> Result<(), StoreError>;

    /// Entries `start .. end` (all below `size()`), in order.
    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError>;

    /// The complete node at post-order `position` (below `node_count(size())`).
    fn node(&self, position: u64) -> Result<Hash, StoreError>;

    /// The complete nodes at `positions` (each as [`node`](LogStore::node)), one hash per
    /// position, in order: a proof's nodes at once. By default one `node` call each; a store
    /// across a network reads them in one round trip.
    fn nodes(&self, positions: &[u64]) -> Result<Vec<Hash>, StoreError> {
        positions.iter().map(|&p| self.node(p)).collect()
    }

    /// The latest checkpoint note stored with [`set_checkpoint`](LogStore::set_checkpoint).
    fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError>;

    /// Durably replaces the latest checkpoint note.
    fn set_checkpoint(&self, note: &[u8]) -> Result<(), StoreError>;

    /// Appends as [`append`](LogStore::append) and stores `note`, the checkpoint of the tree
    /// the append makes, as [`set_checkpoint`](LogStore::set_checkpoint) would. By default the
    /// two calls in turn; a store shared by several writers does both in one transaction, so
    /// that another writer's append cannot come between them.
    fn append_checkpointed(
        &self,
        entries: &[&[u8]],
        nodes: &[Hash],
        note: &[u8],
    ) -> Result<(), StoreError> {
        self.append(entries, nodes)?;
        self.set_checkpoint(note)
    }

    /// Learns what other writers committed since this store last read or wrote, and returns
    /// the size it now answers with. Only a store that several writers share (one database,
    /// several frontends) can grow this way; by default nothing changes.
    fn refresh(&self) -> Result<u64, StoreError> {
        Ok(self.size())
    }

    /// For a store that several writers share: takes the store's write lock, waiting while
    /// another writer holds it, learns what the others committed (as
    /// [`refresh`](LogStore::refresh)) and returns the size. The lock is held until this
    /// writer's next append or checkpointed append ends (committed or not), or until
    /// [`release_writes`](LogStore::release_writes). Holding it, a writer can read the log's
    /// latest state, decide what to append, and append it without another writer's append
    /// coming between: without it the append would be fenced, and the work done again. The
    /// lock serialises work only; fencing alone keeps the log from forking. By default (one
    /// writer) a refresh.
    fn hold_writes(&self) -> Result<u64, StoreError> {
        self.refresh()
    }

    /// Gives back the write lock [`hold_writes`](LogStore::hold_writes) took, if no append
    /// ended it. By default nothing.
    fn release_writes(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Forwards every call, so a boxed or shared store is a store with the same contract.
macro_rules! forward_log_store {
    ($($wrapper:ident),*) => {$(
        impl<T: LogStore + ?Sized> LogStore for $wrapper<T> {
            fn size(&self) -> u64 {
                (**self).size()
            }
            fn append(&self, entries: &[&[u8]], nodes: &[Hash]) -> Result<(), StoreError> {
                (**self).append(entries, nodes)
            }
            fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
                (**self).entries(start, end)
            }
            fn node(&self, position: u64) -> Result<Hash, StoreError> {
                (**self).node(position)
            }
            fn nodes(&self, positions: &[u64]) -> Result<Vec<Hash>, StoreError> {
                (**self).nodes(positions)
            }
            fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
                (**self).checkpoint()
            }
            fn set_checkpoint(&self, note: &[u8]) -> Result<(), StoreError> {
                (**self).set_checkpoint(note)
            }
            fn append_checkpointed(
                &self,
                entries: &[&[u8]],
                nodes: &[Hash],
                note: &[u8],
            ) -> Result<(), StoreError> {
                (**self).append_checkpointed(entries, nodes, note)
            }
            fn refresh(&self) -> Result<u64, StoreError> {
                (**self).refresh()
            }
            fn hold_writes(&self) -> Result<u64, StoreError> {
                (**self).hold_writes()
            }
            fn release_writes(&self) -> Result<(), StoreError> {
                (**self).release_writes()
            }
        }
    )*};
}
forward_log_store!(Box, Arc);

/// Big-endian `u64` from a stored 8-byte value.
fn read_u64(bytes: &[u8], what: &str) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt(format!("{what} is not 8 bytes")))
}

/// Checks that node `position` lies within a committed tree of `size` leaves.
fn check_node_position(position: u64, size: u64) -> Result<(), StoreError> {
    if position >= crate::tree::node_count(size) {
        return Err(StoreError::OutOfRange {
            what: "node",
            index: position,
        });
    }
    Ok(())
}

/// Checks that `start..end` lies within the committed `size`.
fn check_entry_range(start: u64, end: u64, size: u64) -> Result<(), StoreError> {
    if start > end || end > size {
        return Err(StoreError::OutOfRange {
            what: "entry",
            index: end.max(start),
        });
    }
    Ok(())
}
