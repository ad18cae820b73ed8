//! The durable log: appends batches, signs checkpoints, and answers proofs and tiles for any
//! size up to the committed one.
//!
//! Guarantees, given a store that honours the [`LogStore`] contract:
//! - [`Log::append`] returns only after the whole batch is durable.
//! - A checkpoint is returned only over the durable tree, and is persisted as the latest before
//!   it is returned ([`Log::append_and_sign`] signs it before the store commits, and drops it
//!   unpublished if the commit fails). Sizes only grow and the tree is append-only, so the log never signs two
//!   roots for one size nor a smaller size after a larger one.
//! - [`Log::open`] refuses a store whose tree does not reach, or does not match, the latest
//!   checkpoint it signed: after any crash the log resumes at or beyond every checkpoint.
//! - An append that fails leaves the log as it was (the in-memory frontier is replaced only
//!   after the store committed).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, RwLock};

use thiserror::Error;

use crate::checkpoint::{open_checkpoint, Checkpoint, CheckpointError, SignedCheckpoint};
use crate::hash::{leaf_hash, Hash};
use crate::note::NoteSigner;
use crate::store::{LogStore, StoreError};
use crate::tiles::{self, TileError, TILE_HEIGHT, TILE_WIDTH};
use crate::tree::{self, Frontier, NodeId, NodeReader};

/// Why a log operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LogError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An entry is over the 65,535-byte tlog-tiles limit; nothing was appended.
    #[error("entry {position} of the batch is {len} bytes; entries are limited to 65535")]
    EntryTooLarge {
        /// Position of the entry within the batch.
        position: usize,
        /// Its length.
        len: usize,
    },
    /// A request named a size, index or tile the log does not have.
    #[error("{0}")]
    OutOfRange(String),
    /// Signing or reading back a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The stored tree is behind, or disagrees with, a checkpoint the log signed.
    #[error("log state contradicts its signed checkpoint: {0}")]
    Inconsistent(String),
    /// Tile bytes could not be built.
    #[error(transparent)]
    Tile(#[from] TileError),
}

/// Lowest tree level whose nodes are cached: there are `n / 2^8` of them, and a proof at the
/// top of a large tree reads most of its nodes from these levels.
const CACHED_LEVEL: u32 = 8;
/// Most nodes cached (about 5 MB): memory stays bounded whatever the log's size. At 10 M
/// entries every node at level ≥ 8 fits (about 78,000).
const CACHE_CAPACITY: usize = 1 << 17;

/// Reads complete nodes through a bounded cache of the upper levels. Complete nodes never
/// change once written, so a cached hash can never be stale.
struct CachedNodes<'a, S> {
    store: &'a S,
    cache: &'a RwLock<HashMap<u64, Hash>>,
}

impl<S: LogStore> NodeReader for CachedNodes<'_, S> {
    type Error = StoreError;
    fn node(&self, id: NodeId) -> Result<Hash, StoreError> {
        let position = id.postorder();
        if id.level < CACHED_LEVEL {
            return self.store.node(position);
        }
        if let Some(hash) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&position)
        {
            return Ok(*hash);
        }
        let hash = self.store.node(position)?;
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() < CACHE_CAPACITY {
            cache.insert(position, hash);
        }
        Ok(hash)
    }

    /// The cached ones from the cache, all the others in one [`LogStore::nodes`] read.
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        let mut hashes: Vec<Option<Hash>> = {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            ids.iter()
                .map(|id| {
                    (id.level >= CACHED_LEVEL)
                        .then(|| cache.get(&id.postorder()).copied())
                        .flatten()
                })
                .collect()
        };
        let missing: Vec<usize> = (0..ids.len()).filter(|&i| hashes[i].is_none()).collect();
        if !missing.is_empty() {
            let positions: Vec<u64> = missing.iter().map(|&i| ids[i].postorder()).collect();
            let read = self.store.nodes(&positions)?;
            if read.len() != positions.len() {
                return Err(StoreError::Corrupt(format!(
                    "asked for {} nodes, the store gave {}",
                    positions.len(),
                    read.len()
                )));
            }
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            for (&i, hash) in missing.iter().zip(read) {
                if ids[i].level >= CACHED_LEVEL && cache.len() < CACHE_CAPACITY {
                    cache.insert(ids[i].postorder(), hash);
                }
                hashes[i] = Some(hash);
            }
        }
        Ok(hashes.into_iter().flatten().collect())
    }
}

/// The frontier after `entries`, and the nodes they complete; refuses an oversized entry.
fn grown(frontier: &Frontier, entries: &[&[u8]]) -> Result<(Frontier, Vec<Hash>), LogError> {
    if let Some((position, e)) = entries
        .iter()
        .enumerate()
        .find(|(_, e)| e.len() > tiles::MAX_ENTRY_LEN)
    {
        return Err(LogError::EntryTooLarge {
            position,
            len: e.len(),
        });
    }
    let mut next = frontier.clone();
    let mut nodes = Vec::with_capacity(2 * entries.len() + 64);
    for entry in entries {
        next.push(leaf_hash(entry), |h| nodes.push(h));
    }
    Ok((next, nodes))
}

/// A transparency log over a store, signing with one note key whose name is the origin.
pub struct Log<S: LogStore> {
    store: S,
    signer: NoteSigner,
    /// The writer's view: the frontier of the committed tree. Held while appending/signing.
    frontier: Mutex<Frontier>,
    latest: RwLock<Arc<SignedCheckpoint>>,
    /// Upper-level complete nodes, see [`CachedNodes`].
    node_cache: RwLock<HashMap<u64, Hash>>,
    /// The entries the last take-in read ([`Log::refresh`], [`Log::hold_writes`]).
    taken_in: RwLock<TakenIn>,
}

/// Most entries one take-in reads itself: the frontier is then computed from them rather than
/// read, and they stay in memory for the caller's catch-up ([`Log::entries`]), so that taking
/// in another writer's batch is one read of the store. A longer gap reads the frontier's nodes
/// instead.
const TAKE_IN_ENTRIES: u64 = 1024;

/// Entries `first ..` as another writer committed them, kept after a take-in. Committed
/// entries never change, so the copy stays true; it is replaced at the next take-in.
#[derive(Default)]
struct TakenIn {
    first: u64,
    entries: Vec<Vec<u8>>,
}

impl TakenIn {
    /// Entries `start .. end` if all of them are here.
    fn get(&self, start: u64, end: u64) -> Option<Vec<Vec<u8>>> {
        let from = usize::try_from(start.checked_sub(self.first)?).ok()?;
        let to = usize::try_from(end.checked_sub(self.first)?).ok()?;
        self.entries.get(from..to).map(<[Vec<u8>]>::to_vec)
    }
}

impl<S: LogStore> Log<S> {
    /// Opens the log over `store`. The origin is the signer's key name. Checks the stored
    /// checkpoint against the tree (see the module guarantees) and signs one if there is none.
    pub fn open(store: S, signer: NoteSigner) -> Result<Log<S>, LogError> {
        let size = store.size();
        let node_cache = RwLock::new(HashMap::new());
        let reader = CachedNodes {
            store: &store,
            cache: &node_cache,
        };
        let hashes = Frontier::node_ids(size)
            .into_iter()
            .map(|id| reader.node(id))
            .collect::<Result<Vec<_>, _>>()?;
        let frontier = Frontier::from_parts(size, hashes)
            .ok_or_else(|| LogError::Inconsistent("frontier has the wrong shape".into()))?;

        let latest = match store.checkpoint()? {
            Some(note) => {
                let verified = open_checkpoint(&note, &signer.verifier())?;
                if verified.size() > size {
                    return Err(LogError::Inconsistent(format!(
                        "checkpoint of size {} but only {size} entries are stored",
                        verified.size()
                    )));
                }
                let root = tree::range_hash(&reader, 0, verified.size())?;
                if root != verified.root() {
                    return Err(LogError::Inconsistent(format!(
                        "checkpoint root {} at size {} but the stored tree has {root}",
                        verified.root(),
                        verified.size()
                    )));
                }
                SignedCheckpoint {
                    checkpoint: verified.checkpoint().clone(),
                    note,
                }
            }
            None => {
                let signed = Self::checkpoint_for(&signer, &frontier)?;
                store.set_checkpoint(&signed.note)?;
                signed
            }
        };
        Ok(Log {
            store,
            signer,
            frontier: Mutex::new(frontier),
            latest: RwLock::new(Arc::new(latest)),
            node_cache,
            taken_in: RwLock::default(),
        })
    }

    fn checkpoint_for(
        signer: &NoteSigner,
        frontier: &Frontier,
    ) -> Result<SignedCheckpoint, LogError> {
        let checkpoint = Checkpoint {
            origin: signer.name().to_owned(),
            size: frontier.size(),
            root: frontier.root(),
            extensions: Vec::new(),
        };
        Ok(checkpoint.sign(signer)?)
    }

    fn lock_frontier(&self) -> std::sync::MutexGuard<'_, Frontier> {
        // The frontier is replaced whole after a commit, never left half-updated.
        self.frontier.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn nodes(&self) -> CachedNodes<'_, S> {
        CachedNodes {
            store: &self.store,
            cache: &self.node_cache,
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The log's origin (its key name).
    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// Number of durably committed entries.
    pub fn size(&self) -> u64 {
        self.store.size()
    }

    /// Appends a batch durably and returns the indices it received.
    pub fn append<E: AsRef<[u8]>>(&self, entries: &[E]) -> Result<Range<u64>, LogError> {
        let mut frontier = self.lock_frontier();
        self.append_locked(&mut frontier, entries)
    }

    fn append_locked<E: AsRef<[u8]>>(
        &self,
        frontier: &mut Frontier,
        entries: &[E],
    ) -> Result<Range<u64>, LogError> {
        let entries: Vec<&[u8]> = entries.iter().map(AsRef::as_ref).collect();
        let (next, nodes) = grown(frontier, &entries)?;
        self.store.append(&entries, &nodes)?;
        let range = frontier.size()..next.size();
        *frontier = next;
        Ok(range)
    }

    /// Signs a checkpoint over the current durable tree (or returns the latest one if the tree
    /// has not grown), persists it, and returns it.
    pub fn sign_checkpoint(&self) -> Result<Arc<SignedCheckpoint>, LogError> {
        let frontier = self.lock_frontier();
        self.sign_locked(&frontier)
    }

    fn sign_locked(&self, frontier: &Frontier) -> Result<Arc<SignedCheckpoint>, LogError> {
        let latest = self.latest_checkpoint();
        if latest.checkpoint.size == frontier.size() {
            return Ok(latest);
        }
        let signed = Arc::new(Self::checkpoint_for(&self.signer, frontier)?);
        self.store.set_checkpoint(&signed.note)?;
        *self.latest.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&signed);
        Ok(signed)
    }

    /// Appends a batch and signs a checkpoint covering it, as one step: what a sequencer does
    /// for each group commit. The checkpoint is signed over the tree the batch makes and
    /// given to the store with the batch ([`LogStore::append_checkpointed`]: one transaction
    /// on a shared store); it is returned, and becomes the latest, only once both are durable.
    /// If the store took the entries but not the checkpoint, the log goes on from the grown
    /// tree (as after [`append`](Log::append)) and the error is returned.
    pub fn append_and_sign<E: AsRef<[u8]>>(
        &self,
        entries: &[E],
    ) -> Result<(Range<u64>, Arc<SignedCheckpoint>), LogError> {
        let mut frontier = self.lock_frontier();
        if entries.is_empty() {
            let size = frontier.size();
            return Ok((size..size, self.sign_locked(&frontier)?));
        }
        let entries: Vec<&[u8]> = entries.iter().map(AsRef::as_ref).collect();
        let (next, nodes) = grown(&frontier, &entries)?;
        let signed = Arc::new(Self::checkpoint_for(&self.signer, &next)?);
        let range = frontier.size()..next.size();
        if let Err(e) = self
            .store
            .append_checkpointed(&entries, &nodes, &signed.note)
        {
            if self.store.size() == next.size() {
                // The entries are durable, the checkpoint is not.
                *frontier = next;
            }
            return Err(e.into());
        }
        *frontier = next;
        *self.latest.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&signed);
        Ok((range, signed))
    }

    /// Takes in what other writers of a shared store appended ([`LogStore::refresh`]): the
    /// frontier at the store's new size (computed from the new entries, which [`Log::entries`]
    /// then serves from memory, if there are at most 1,024; else read from the
    /// stored nodes), and the store's checkpoint, once verified with this log's key and
    /// against that tree, becomes the latest. Returns the size. A store that only this log
    /// writes never grows here.
    pub fn refresh(&self) -> Result<u64, LogError> {
        let mut frontier = self.lock_frontier();
        let size = self.store.refresh()?;
        self.take_in(&mut frontier, size)
    }

    /// Takes the store's write lock ([`LogStore::hold_writes`]) and takes in what other
    /// writers appended, as [`refresh`](Log::refresh); returns the size. Until the next
    /// append (or [`release_writes`](Log::release_writes)) no other writer appends, so the
    /// caller can decide its batch on the log's latest state and append it unfenced.
    pub fn hold_writes(&self) -> Result<u64, LogError> {
        let mut frontier = self.lock_frontier();
        let size = self.store.hold_writes()?;
        self.take_in(&mut frontier, size)
    }

    /// Gives back the write lock of [`hold_writes`](Log::hold_writes) if no append did.
    pub fn release_writes(&self) -> Result<(), LogError> {
        let _frontier = self.lock_frontier();
        Ok(self.store.release_writes()?)
    }

    /// Makes the log's frontier and latest checkpoint those of the store at `size`.
    fn take_in(&self, frontier: &mut Frontier, size: u64) -> Result<u64, LogError> {
        if size == frontier.size() {
            return Ok(size);
        }
        if size < frontier.size() {
            return Err(LogError::Inconsistent(format!(
                "the store went back from {} to {size} entries",
                frontier.size()
            )));
        }
        let reader = self.nodes();
        let (next, taken_in) = if size - frontier.size() <= TAKE_IN_ENTRIES {
            // The new leaves give the frontier: one read, which the caller's catch-up reuses.
            let entries = self.store.entries(frontier.size(), size)?;
            let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
            let (next, _nodes) = grown(frontier, &refs)?;
            let first = frontier.size();
            (next, Some(TakenIn { first, entries }))
        } else {
            let hashes = reader.nodes(&Frontier::node_ids(size))?;
            let next = Frontier::from_parts(size, hashes)
                .ok_or_else(|| LogError::Inconsistent("frontier has the wrong shape".into()))?;
            (next, None)
        };
        if let Some(note) = self.store.checkpoint()? {
            let verified = open_checkpoint(&note, &self.signer.verifier())?;
            let latest = self.latest_checkpoint();
            if verified.size() > latest.checkpoint.size {
                // At the store's size the frontier gives the root without another read.
                let matches = match verified.size().cmp(&size) {
                    std::cmp::Ordering::Equal => next.root() == verified.root(),
                    std::cmp::Ordering::Less => {
                        tree::range_hash(&reader, 0, verified.size())? == verified.root()
                    }
                    std::cmp::Ordering::Greater => false,
                };
                if !matches {
                    return Err(LogError::Inconsistent(format!(
                        "the stored checkpoint of size {} does not match the stored tree",
                        verified.size()
                    )));
                }
                *self.latest.write().unwrap_or_else(|e| e.into_inner()) =
                    Arc::new(SignedCheckpoint {
                        checkpoint: verified.checkpoint().clone(),
                        note,
                    });
            }
        }
        *frontier = next;
        *self.taken_in.write().unwrap_or_else(|e| e.into_inner()) = taken_in.unwrap_or_default();
        Ok(size)
    }

    /// The latest signed checkpoint.
    pub fn latest_checkpoint(&self) -> Arc<SignedCheckpoint> {
        Arc::clone(&self.latest.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn check_size(&self, size: u64) -> Result<(), LogError> {
        let have = self.size();
        if size > have {
            return Err(LogError::OutOfRange(format!(
                "size {size} is larger than the log ({have})"
            )));
        }
        Ok(())
    }

    /// The root hash of the tree of the first `size` entries.
    pub fn root_at(&self, size: u64) -> Result<Hash, LogError> {
        self.check_size(size)?;
        Ok(tree::range_hash(&self.nodes(), 0, size)?)
    }

    /// Inclusion proof of entry `index` in the tree of the first `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(size)?;
        if index >= size {
            return Err(LogError::OutOfRange(format!(
                "index {index} is not below size {size}"
            )));
        }
        Ok(tree::inclusion_proof(&self.nodes(), index, size)?)
    }

    /// Consistency proof from the first `old` entries to the first `new` (`1 ≤ old ≤ new`).
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(new)?;
        if old == 0 || old > new {
            return Err(LogError::OutOfRange(format!(
                "consistency needs 1 <= old <= new, got {old} and {new}"
            )));
        }
        Ok(tree::consistency_proof(&self.nodes(), old, new)?)
    }

    /// Entry `index`.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LogError> {
        self.check_size(index.saturating_add(1))?;
        let mut entries = self.store.entries(index, index + 1)?;
        entries
            .pop()
            .ok_or_else(|| LogError::OutOfRange(format!("no entry {index}")))
    }

    /// Entries `start .. end`.
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LogError> {
        self.check_size(end)?;
        if start < end {
            let taken_in = self.taken_in.read().unwrap_or_else(|e| e.into_inner());
            if let Some(entries) = taken_in.get(start, end) {
                return Ok(entries);
            }
        }
        Ok(self.store.entries(start, end)?)
    }

    /// The bytes of hash tile (`level`, `index`) with `width` hashes, if the log has them.
    pub fn hash_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<u8>, LogError> {
        let available = tiles::tile_width(self.size(), Some(level), index);
        if width == 0 || width > available {
            return Err(LogError::OutOfRange(format!(
                "tile {level}/{index} has {available} hashes, not {width}"
            )));
        }
        let tree_level = u32::from(level) * TILE_HEIGHT;
        let first = index * TILE_WIDTH;
        let mut out = Vec::with_capacity(32 * usize::from(width));
        for i in first..first + u64::from(width) {
            let id = NodeId {
                level: tree_level,
                index: i,
            };
            out.extend_from_slice(&self.store.node(id.postorder())?.0);
        }
        Ok(out)
    }

    /// The bytes of entry bundle `index` with `width` entries, if the log has them.
    pub fn entry_bundle(&self, index: u64, width: u16) -> Result<Vec<u8>, LogError> {
        let available = tiles::tile_width(self.size(), None, index);
        if width == 0 || width > available {
            return Err(LogError::OutOfRange(format!(
                "entry bundle {index} has {available} entries, not {width}"
            )));
        }
        let first = index * TILE_WIDTH;
        let entries = self.store.entries(first, first + u64::from(width))?;
        Ok(tiles::encode_entry_bundle(&entries)?)
    }
}
