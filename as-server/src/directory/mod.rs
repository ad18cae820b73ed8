//! The directory on the server: the map of every identity's latest version, the checkpoint it
//! is published in, and the proofs lookups and changes answer with.
//!
//! The map (`kt_protocol::directory::tree`) lives in memory. The sequencer stages each
//! batch's updates beside it, makes the log durable with the batch's map entry last, writes
//! the state, and only then [`Directory::publish`]es the new map together with the checkpoint
//! that ends in its map entry, under one lock. So a reader sees a map and a checkpoint that
//! belong together, and the state already holds the record of every version the map shows.
//!
//! At start [`Directory::open`] takes the latest snapshot ([`snapshot`]) if it reads back whole
//! and the log has, where it ends, a map entry with its root and count; then it replays the
//! log's entries after it through the public rules (every map entry checked). Without a usable
//! snapshot it replays the whole log. So the map never depends on anything but the log.
//! Snapshots are written in the background every [`SNAPSHOT_EVERY`] changed labels or
//! [`SNAPSHOT_AFTER`] with a change, so a reopen replays a bounded tail.

pub mod keys;
pub mod snapshot;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use kt_log::checkpoint::SignedCheckpoint;
use kt_protocol::api::IdentityProof;
use kt_protocol::directory::batch::{check_map_entry, Replay};
use kt_protocol::directory::hash::LeafValue;
use kt_protocol::directory::proof::MapProof;
use kt_protocol::directory::public_entry::{MapRoot, PublicEntry};
use kt_protocol::directory::tree::{Map, Staged};
use kt_protocol::directory::vrf::{Label, PROOF_LEN};

use crate::as_log::AsLog;
use crate::encoding::{b64, proof_b64};
use crate::state::directory::VersionRow;
use keys::DirectoryKeys;
use snapshot::MapStore;

/// Changed labels after which a snapshot is written.
pub const SNAPSHOT_EVERY: u64 = 100_000;
/// Time after which a snapshot is written if anything changed.
pub const SNAPSHOT_AFTER: Duration = Duration::from_secs(60);
/// Most labels computed ahead by request handlers and not yet logged.
const LABEL_CACHE: usize = 65_536;

/// The map and the checkpoint whose last entry is its map entry.
pub struct Published {
    /// The map.
    pub map: Map,
    /// The checkpoint.
    pub checkpoint: Arc<SignedCheckpoint>,
    /// The checkpoint's last entry and its inclusion proof, if they could be read when it was
    /// published (see [`LastEntry`]).
    pub last: Option<Arc<LastEntry>>,
}

/// A checkpoint's last entry (the map entry) and its inclusion proof in that checkpoint, read
/// once when the checkpoint is published: every lookup answer carries them, and read each
/// time they would cost each lookup reads of the log's store (queries, on PostgreSQL).
pub struct LastEntry {
    /// The entry's bytes.
    pub bytes: Vec<u8>,
    /// Its inclusion proof.
    pub proof: Vec<kt_log::Hash>,
}

impl LastEntry {
    /// The last entry of `checkpoint` in `log`, or `None` (logged) if it cannot be read now:
    /// lookups then read it themselves.
    fn read(log: &AsLog, checkpoint: &SignedCheckpoint) -> Option<Arc<LastEntry>> {
        let size = checkpoint.checkpoint.size;
        let index = size.checked_sub(1)?;
        let read = log
            .entry(index)
            .and_then(|bytes| Ok((bytes, log.inclusion_proof(index, size)?)));
        match read {
            Ok((bytes, proof)) => Some(Arc::new(LastEntry { bytes, proof })),
            Err(e) => {
                tracing::warn!(error = %e, size, "reading the published checkpoint's map entry");
                None
            }
        }
    }
}

/// What a proof of one identity is made of, read under one lock (see [`Directory::prove`]).
pub struct ProofParts {
    /// The checkpoint.
    pub checkpoint: Arc<SignedCheckpoint>,
    /// Its last entry, if it was read when published.
    pub last: Option<Arc<LastEntry>>,
    /// The identity's label and VRF proof.
    pub label: (Label, [u8; PROOF_LEN]),
    /// The map proof of the label.
    pub map_proof: MapProof,
    /// The label's leaf, if present.
    pub value: Option<LeafValue>,
}

/// The directory; see the module documentation.
pub struct Directory {
    keys: DirectoryKeys,
    published: RwLock<Published>,
    /// Labels computed by request handlers for identities not yet logged.
    labels: Mutex<HashMap<String, (Label, [u8; PROOF_LEN])>>,
    store: Arc<dyn MapStore>,
    /// Labels changed since the last snapshot, and when it was taken.
    unsaved: AtomicU64,
    saved_at: Mutex<Instant>,
    saving: Arc<AtomicBool>,
}

/// Why the map could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The log holds an entry that is not of the directory's format.
    #[error("log entry {index} is not a directory entry: {error}")]
    Entry {
        /// Its index.
        index: u64,
        /// Why.
        error: String,
    },
    /// The log breaks the directory's public rules.
    #[error("log entry {index} breaks the directory's rules: {error}")]
    Rules {
        /// Its index.
        index: u64,
        /// Which rule.
        error: String,
    },
    /// The log does not end with a map entry.
    #[error("the log's last entry is not a map entry")]
    Unfinished,
    /// Reading the log failed.
    #[error("reading the log: {0}")]
    Log(#[from] kt_log::log::LogError),
}

/// Why the proof of an identity could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// Reading the log failed (on PostgreSQL, the database may be unreachable).
    #[error("reading the log: {0}")]
    Log(#[from] kt_log::log::LogError),
    /// The state and the map disagree, or a stored record does not read back.
    #[error("{0}")]
    Record(String),
}

impl Directory {
    /// Opens the map of `log` (see the module documentation), published with `checkpoint`,
    /// which must be of the log's whole tree.
    pub fn open(
        keys: DirectoryKeys,
        store: Arc<dyn MapStore>,
        log: &AsLog,
        checkpoint: Arc<SignedCheckpoint>,
    ) -> Result<(Directory, u64), OpenError> {
        let size = log.size();
        let (mut replay, from) = match store.load() {
            Ok(Some(snapshot)) if snapshot_fits(log, snapshot.log_size, &snapshot.map) => {
                (Replay::from_map(snapshot.map), snapshot.log_size)
            }
            Ok(Some(_)) => {
                tracing::warn!("the directory snapshot does not fit the log: replaying the log");
                (Replay::new(), 0)
            }
            Ok(None) => (Replay::new(), 0),
            Err(e) => {
                tracing::warn!(error = %e, "the directory snapshot cannot be read: replaying the log");
                (Replay::new(), 0)
            }
        };
        replay_entries(&mut replay, log, from..size)?;
        let replayed = size - from;
        let directory = Directory {
            keys,
            published: RwLock::new(Published {
                map: replay.into_map(),
                last: LastEntry::read(log, &checkpoint),
                checkpoint,
            }),
            labels: Mutex::new(HashMap::new()),
            store,
            unsaved: AtomicU64::new(replayed),
            saved_at: Mutex::new(Instant::now()),
            saving: Arc::new(AtomicBool::new(false)),
        };
        Ok((directory, replayed))
    }

    /// The keys.
    pub fn keys(&self) -> &DirectoryKeys {
        &self.keys
    }

    /// The published map and checkpoint, read-locked.
    pub fn read(&self) -> RwLockReadGuard<'_, Published> {
        self.published.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The label of `identity` for a change: `known` (from the state) if it was logged before,
    /// else one computed ahead by [`Directory::compute_label`], else computed now. Either way
    /// the one kept ahead goes, so that a label kept for an identity logged meanwhile does not
    /// hold a place in the bounded cache.
    pub fn label_for(
        &self,
        identity: &str,
        known: Option<(Label, [u8; PROOF_LEN])>,
    ) -> (Label, [u8; PROOF_LEN]) {
        let cached = self
            .labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(identity);
        known
            .or(cached)
            .unwrap_or_else(|| self.keys.vrf().prove(identity))
    }

    /// Computes the label of an identity about to be logged for the first time, outside the
    /// sequencer (a VRF proof is a few scalar multiplications): the sequencer then takes it
    /// from [`Directory::label_for`].
    pub fn compute_label(&self, identity: &str) {
        self.keep_label(identity, self.keys.vrf().prove(identity));
    }

    /// Keeps `label`, the label and VRF proof of `identity` computed earlier (when its
    /// enrollment was made), for [`Directory::label_for`]. The caller vouches for it: it
    /// comes from this AS's own store, as the labels of logged identities do.
    pub fn keep_label(&self, identity: &str, label: (Label, [u8; PROOF_LEN])) {
        let mut labels = self.labels.lock().unwrap_or_else(|e| e.into_inner());
        if labels.len() < LABEL_CACHE {
            labels.insert(identity.to_owned(), label);
        }
    }

    /// Drops the label kept for `identity`, if any: its issuance was refused, so no change
    /// takes it, and it would hold a place in the bounded cache.
    pub fn forget_label(&self, identity: &str) {
        self.labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(identity);
    }

    /// The labels and VRF proofs of `identities`, in order, computed on every core: what an
    /// enrollment prepares for identities not logged yet, so that their issuances need not.
    pub fn compute_labels(&self, identities: &[&str]) -> Vec<(Label, [u8; PROOF_LEN])> {
        let vrf = self.keys.vrf();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        if cores == 1 || identities.len() < 64 {
            return identities.iter().map(|i| vrf.prove(i)).collect();
        }
        let per_thread = identities.len().div_ceil(cores);
        std::thread::scope(|scope| {
            let parts: Vec<_> = identities
                .chunks(per_thread)
                .map(|part| {
                    scope.spawn(move || part.iter().map(|i| vrf.prove(i)).collect::<Vec<_>>())
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|part| part.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect::<Vec<_>>()
        })
    }

    /// Publishes a batch's map with the checkpoint that ends in its map entry, and starts a
    /// snapshot if one is due.
    pub fn publish(
        &self,
        log: &AsLog,
        staged: Staged,
        changed: u64,
        checkpoint: Arc<SignedCheckpoint>,
    ) {
        let last = LastEntry::read(log, &checkpoint);
        {
            let mut published = self.published.write().unwrap_or_else(|e| e.into_inner());
            published.map.commit(staged);
            published.checkpoint = checkpoint;
            published.last = last;
        }
        self.saved(changed);
    }

    /// Counts `changed` more unsaved changes, and starts a snapshot if one is due.
    fn saved(&self, changed: u64) {
        let unsaved = self.unsaved.fetch_add(changed, Ordering::Relaxed) + changed;
        let due = unsaved >= SNAPSHOT_EVERY
            || (unsaved > 0
                && self
                    .saved_at
                    .lock()
                    .is_ok_and(|at| at.elapsed() >= SNAPSHOT_AFTER));
        if due {
            self.snapshot_in_background();
        }
    }

    /// Brings the published map level with the log up to `checkpoint` (of the log's whole
    /// tree, ending in a map entry) and publishes them together: after a storage fault left
    /// batches in the log whose map was never published ([`crate::resync`]). The entries past
    /// the published checkpoint are replayed through the public rules, as at [`Directory::open`],
    /// on a copy of the map; nothing is published unless all of them follow the rules.
    /// Returns how many entries were replayed.
    ///
    /// The published map is not copied when the entries are one batch (what a frontend of a
    /// shared log takes in before each of its own): that batch is staged beside it, checked,
    /// and committed, as the sequencer's own are. Only this thread (the sequencer's) publishes,
    /// so the map does not change between the staging and the commit.
    ///
    /// `read_last`: read the checkpoint's map entry and proof for lookups ([`LastEntry`]); a
    /// sequencer about to publish its own batch passes `false` (lookups read them from the log
    /// meanwhile), saving the reads in its critical section.
    pub fn catch_up(
        &self,
        log: &AsLog,
        checkpoint: Arc<SignedCheckpoint>,
        read_last: bool,
    ) -> Result<u64, OpenError> {
        let from = self.read().checkpoint.checkpoint.size;
        let size = checkpoint.checkpoint.size;
        if from >= size {
            return Ok(0);
        }
        let entries = log.entries(from, size).map_err(OpenError::Log)?;
        let parsed = (from..size)
            .zip(&entries)
            .map(|(index, bytes)| {
                PublicEntry::parse(bytes).map_err(|e| OpenError::Entry {
                    index,
                    error: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batches = parsed
            .iter()
            .filter(|e| matches!(e, PublicEntry::Map(_)))
            .count();
        let next = if batches <= MAX_STAGED_BATCHES {
            NextMap::Staged(stage_batches(&self.read().map, from, &parsed)?)
        } else {
            let mut replay = Replay::from_map(self.read().map.clone());
            for (index, entry) in (from..size).zip(&parsed) {
                replay.apply(entry).map_err(|e| OpenError::Rules {
                    index,
                    error: e.to_string(),
                })?;
            }
            if replay.in_batch() {
                return Err(OpenError::Unfinished);
            }
            NextMap::Replayed(replay.into_map())
        };
        let last = if read_last {
            LastEntry::read(log, &checkpoint)
        } else {
            None
        };
        {
            let mut published = self.published.write().unwrap_or_else(|e| e.into_inner());
            match next {
                NextMap::Replayed(map) => published.map = map,
                NextMap::Staged(staged) => published.map.commit(staged),
            }
            published.checkpoint = checkpoint;
            published.last = last;
        }
        self.saved(size - from);
        Ok(size - from)
    }

    /// Writes a snapshot of the published map on another thread, unless one is being written.
    fn snapshot_in_background(&self) {
        if self.saving.swap(true, Ordering::AcqRel) {
            return;
        }
        let (map, size) = {
            let published = self.read();
            (published.map.clone(), published.checkpoint.checkpoint.size)
        };
        self.unsaved.store(0, Ordering::Relaxed);
        if let Ok(mut at) = self.saved_at.lock() {
            *at = Instant::now();
        }
        let store = Arc::clone(&self.store);
        let saving = Arc::clone(&self.saving);
        let spawned = std::thread::Builder::new()
            .name("map-snapshot".into())
            .spawn(move || {
                if let Err(e) = store.save(size, &map) {
                    tracing::warn!(error = %e, "writing the directory snapshot failed");
                }
                saving.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.saving.store(false, Ordering::Release);
        }
    }

    /// Writes a snapshot of the published map now (at shutdown, and for tests).
    pub fn snapshot_now(&self) -> std::io::Result<()> {
        let published = self.read();
        self.store
            .save(published.checkpoint.checkpoint.size, &published.map)
    }

    /// Reads, under one lock, the published checkpoint, and the map proof and leaf of the
    /// label of `identity` (`label`: from the state, or `None` to compute it).
    pub fn prove(&self, identity: &str, label: Option<(Label, [u8; PROOF_LEN])>) -> ProofParts {
        let label = label.unwrap_or_else(|| self.keys.vrf().prove(identity));
        let published = self.read();
        let (map_proof, value) = published.map.prove(&label.0);
        ProofParts {
            checkpoint: Arc::clone(&published.checkpoint),
            last: published.last.clone(),
            label,
            map_proof,
            value,
        }
    }

    /// The answer's proof of `identity` from `parts`, with `row` the version row of
    /// `parts.value` (absent if the identity is absent).
    pub fn identity_proof(
        &self,
        log: &AsLog,
        identity: &str,
        parts: &ProofParts,
        row: Option<&VersionRow>,
    ) -> Result<IdentityProof, ProofError> {
        let size = parts.checkpoint.checkpoint.size;
        let index = size
            .checked_sub(1)
            .ok_or_else(|| ProofError::Record("the checkpoint is of the empty log".into()))?;
        let (map_entry, map_entry_proof) = match &parts.last {
            Some(last) => (last.bytes.clone(), last.proof.clone()),
            None => (log.entry(index)?, log.inclusion_proof(index, size)?),
        };
        let state = match (parts.value, row) {
            (Some(value), Some(row)) => Some(kt_protocol::api::StateProof {
                record: serde_json::from_str(&row.record)
                    .map_err(|e| ProofError::Record(e.to_string()))?,
                opening: b64(&self.keys.opening(&parts.label.0, value.version)),
                previous_head: row.previous_head.clone(),
            }),
            (None, _) => None,
            (Some(value), None) => {
                return Err(ProofError::Record(format!(
                    "version {} of {identity} is in the map but not in the state",
                    value.version
                )))
            }
        };
        Ok(IdentityProof {
            identity: identity.to_owned(),
            checkpoint: String::from_utf8_lossy(&parts.checkpoint.note).into_owned(),
            map_entry: b64(&map_entry),
            map_entry_proof: proof_b64(&map_entry_proof),
            vrf_proof: b64(&parts.label.1),
            map_proof: b64(&parts.map_proof.encode()),
            state,
        })
    }
}

/// Log entry `bytes` as the state sees it: the change an update seals, opened with `keys`
/// (`None` for a map entry). An entry that does not parse or does not open is an error: the
/// log is the AS's own, so it is damaged or not this AS's.
pub fn open_change(
    keys: &DirectoryKeys,
    bytes: &[u8],
) -> Result<Option<crate::state::directory::OpenedChange>, String> {
    Ok(match open_entry(keys, bytes)? {
        OpenedEntry::Change(change) => Some(*change),
        OpenedEntry::Map(_) => None,
    })
}

/// A log entry opened with the directory's keys: what a frontend of a shared log needs of
/// another frontend's entries to take them into its state and its map at once.
pub enum OpenedEntry {
    /// An update: the change it seals, with its label, version and commitment.
    Change(Box<crate::state::directory::OpenedChange>),
    /// A map entry, which closes a batch.
    Map(MapRoot),
}

/// Log entry `bytes`, opened as [`open_change`] does, a map entry kept.
pub fn open_entry(keys: &DirectoryKeys, bytes: &[u8]) -> Result<OpenedEntry, String> {
    match PublicEntry::parse(bytes).map_err(|e| e.to_string())? {
        PublicEntry::Map(root) => Ok(OpenedEntry::Map(root)),
        PublicEntry::Update(update) => {
            let opened = keys
                .unseal(&update.label, update.version, &update.sealed)
                .ok_or("its sealed change does not open with this AS's directory key")?;
            let entry = crate::entry::LogEntry::parse(&opened.entry)
                .map_err(|e| format!("its sealed change does not parse: {e}"))?;
            Ok(OpenedEntry::Change(Box::new(
                crate::state::directory::OpenedChange {
                    label: update.label,
                    vrf_proof: opened.vrf_proof,
                    version: update.version,
                    opening: keys.opening(&update.label, update.version),
                    commitment: Some(update.commitment),
                    entry,
                },
            )))
        }
    }
}

/// Runs the log's entries `range` through `replay` (the public rules); the last must end a
/// batch.
fn replay_entries(
    replay: &mut Replay,
    log: &AsLog,
    range: std::ops::Range<u64>,
) -> Result<(), OpenError> {
    let mut index = range.start;
    while index < range.end {
        let end = range.end.min(index + 4096);
        let entries = log.entries(index, end).map_err(OpenError::Log)?;
        for (i, bytes) in (index..end).zip(entries) {
            let entry = PublicEntry::parse(&bytes).map_err(|e| OpenError::Entry {
                index: i,
                error: e.to_string(),
            })?;
            replay.apply(&entry).map_err(|e| OpenError::Rules {
                index: i,
                error: e.to_string(),
            })?;
        }
        index = end;
    }
    if replay.in_batch() {
        return Err(OpenError::Unfinished);
    }
    Ok(())
}

/// The map after entries taken in by [`Directory::catch_up`].
enum NextMap {
    /// A few batches, staged beside the published map.
    Staged(Staged),
    /// More, replayed on a copy of it.
    Replayed(Map),
}

/// Most batches [`stage_batches`] stages beside the map (each map entry stages the batches
/// so far again, so the work grows with their square); more are replayed on a copy.
const MAX_STAGED_BATCHES: usize = 8;

/// The staged effect on `map` of a few whole batches of the log: `entries` (from index
/// `from`), each batch's updates then its map entry, checked against the public rules as
/// [`Replay`] does. The batches' updates gather in one [`Batch`](kt_protocol::directory::batch::Batch),
/// whose rules read the map as the earlier batches left it; at each map entry the updates so
/// far are staged on `map`, which gives the map after that batch (a map is the function of
/// its leaves), and checked against the entry. No copy of the map is made.
fn stage_batches(map: &Map, from: u64, entries: &[PublicEntry]) -> Result<Staged, OpenError> {
    let mut batch = kt_protocol::directory::batch::Batch::new();
    let rules = |index: u64, error: kt_protocol::directory::batch::MapViolation| OpenError::Rules {
        index,
        error: error.to_string(),
    };
    let mut staged = None;
    for (index, entry) in (from..).zip(entries) {
        match entry {
            PublicEntry::Update(update) => {
                staged = None;
                batch
                    .push(map, &update.label, update.version, &update.commitment)
                    .map_err(|e| rules(index, e))?;
            }
            PublicEntry::Map(found) => {
                let (after, expected) = batch.stage(map);
                check_map_entry(found, &expected).map_err(|e| rules(index, e))?;
                staged = Some(after);
            }
        }
    }
    // The last entry must close a batch.
    staged.ok_or(OpenError::Unfinished)
}

/// Whether a snapshot of `size` entries with `map` ends where the log has a map entry with
/// its root and count.
fn snapshot_fits(log: &AsLog, size: u64, map: &Map) -> bool {
    if size == 0 || size > log.size() {
        return size == 0 && map.is_empty();
    }
    let Ok(bytes) = log.entry(size - 1) else {
        return false;
    };
    matches!(
        PublicEntry::parse(&bytes),
        Ok(PublicEntry::Map(MapRoot { root, labels })) if root == map.root() && labels == map.len()
    )
}

/// The map entry of the empty map: a new log's first entry, so that every checkpoint ends in
/// a map entry.
pub fn empty_map_entry() -> Vec<u8> {
    PublicEntry::Map(MapRoot {
        root: Map::new().root(),
        labels: 0,
    })
    .to_bytes()
}

/// Directory logs for the server's unit tests, made as the sequencer makes them.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashMap;
    use std::path::Path;

    use kt_log::log::Log;
    use kt_log::note::NoteSigner;
    use kt_log::store::{FileStore, LogStore};
    use kt_protocol::directory::batch::Batch;
    use kt_protocol::directory::public_entry::PublicEntry;
    use kt_protocol::directory::tree::Map;

    use super::empty_map_entry;
    use super::keys::DirectoryKeys;
    use super::snapshot::MapStore;
    use crate::as_log::AsLog;
    use crate::entry::LogEntry;
    use crate::state::directory::{make_version, VersionRow};

    /// The keys the tests use.
    pub(crate) fn keys() -> DirectoryKeys {
        DirectoryKeys::from_secret(&[1; 32])
    }

    /// A store that keeps nothing.
    pub(crate) struct NoSnapshots;

    impl MapStore for NoSnapshots {
        fn load(&self) -> std::io::Result<Option<super::snapshot::Snapshot>> {
            Ok(None)
        }
        fn save(&self, _: u64, _: &Map) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The directory of `log` (made with [`directory_log`]), with [`keys`] and no snapshots.
    pub(crate) fn directory_of(log: &AsLog) -> super::Directory {
        let checkpoint = log.latest_checkpoint();
        super::Directory::open(keys(), std::sync::Arc::new(NoSnapshots), log, checkpoint)
            .unwrap()
            .0
    }

    /// A log in `dir` holding the empty map's entry, then `changes` as one batch (updates and
    /// its map entry), signed.
    pub(crate) fn directory_log(dir: &Path, changes: &[LogEntry]) -> AsLog {
        let signer = NoteSigner::generate("example.com/test").unwrap();
        let store: Box<dyn LogStore> = Box::new(FileStore::open(dir).unwrap());
        let log = Log::open(store, signer).unwrap();
        log.append(&[empty_map_entry()]).unwrap();
        if !changes.is_empty() {
            log.append(&first_batch(changes)).unwrap();
        }
        log.sign_checkpoint().unwrap();
        log
    }

    /// The entries of `changes` as the first batch of a log (updates on the empty map, then its
    /// map entry).
    pub(crate) fn first_batch(changes: &[LogEntry]) -> Vec<Vec<u8>> {
        batches(&[changes]).concat()
    }

    /// The entries of each of `batches` as consecutive batches of a log from its first (each
    /// one's updates, then its map entry).
    pub(crate) fn batches(batches: &[&[LogEntry]]) -> Vec<Vec<Vec<u8>>> {
        let keys = keys();
        let mut map = Map::new();
        let mut rows: HashMap<String, VersionRow> = HashMap::new();
        let mut out = Vec::new();
        for changes in batches {
            let mut batch = Batch::new();
            let mut entries = Vec::new();
            for entry in *changes {
                let identity = entry.body.identity().to_owned();
                let (label, proof) = keys.vrf().prove(&identity);
                let version = batch.next_version(&map, &label);
                let (recorded, row) = make_version(
                    &label,
                    version,
                    rows.get(&identity),
                    entry,
                    &keys.opening(&label, version),
                    None,
                )
                .unwrap();
                batch
                    .push(&map, &label, version, &recorded.commitment)
                    .unwrap();
                rows.insert(identity, row);
                entries.push(
                    keys.update_entry(
                        &label,
                        version,
                        &recorded.commitment,
                        &proof,
                        &entry.to_bytes(),
                    )
                    .unwrap(),
                );
            }
            let (staged, map_entry) = batch.stage(&map);
            map.commit(staged);
            entries.push(PublicEntry::Map(map_entry).to_bytes());
            out.push(entries);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kt_protocol::directory::public_entry::{MapRoot, PublicEntry};

    use super::testing::{directory_log, directory_of, first_batch};
    use super::*;
    use crate::state::test_ids::issue;

    /// A log holding only the empty map's entry, in a folder of its own, and its directory.
    fn empty_directory() -> (tempfile::TempDir, AsLog, Directory) {
        let dir = tempfile::tempdir().unwrap();
        let log = directory_log(dir.path(), &[]);
        let directory = directory_of(&log);
        (dir, log, directory)
    }

    #[test]
    fn labels_computed_together_are_each_identitys_own_in_order() {
        let (_dir, _log, directory) = empty_directory();
        // Over 64: computed on every core, and joined back in order.
        let identities: Vec<String> = (0..150).map(|n| format!("u{n}@b.co")).collect();
        let names: Vec<&str> = identities.iter().map(String::as_str).collect();
        let computed = directory.compute_labels(&names);
        assert_eq!(computed.len(), names.len());
        for (identity, label) in names.iter().zip(&computed) {
            assert_eq!(*label, directory.keys().vrf().prove(identity));
        }
        assert_eq!(directory.compute_labels(&names[..2]), computed[..2]);

        // A label kept for an identity is what its change takes.
        directory.keep_label("u0@b.co", computed[0]);
        assert_eq!(directory.label_for("u0@b.co", None), computed[0]);
        let kept = || directory.labels.lock().unwrap().len();
        assert_eq!(kept(), 0);
        // One kept for an identity already logged: the state's label is taken, and the kept
        // one goes with the change all the same.
        directory.keep_label("u1@b.co", computed[2]);
        assert_eq!(kept(), 1);
        assert_eq!(
            directory.label_for("u1@b.co", Some(computed[1])),
            computed[1]
        );
        assert_eq!(kept(), 0);
        // One kept for an issuance that was refused goes too.
        directory.keep_label("u3@b.co", computed[3]);
        directory.forget_label("u3@b.co");
        assert_eq!(kept(), 0);
    }

    #[test]
    fn catch_up_publishes_the_batches_the_log_holds_beyond_the_map_or_nothing() {
        let (_dir, log, directory) = empty_directory();
        let published = log.latest_checkpoint();

        // A batch in the log whose map was never published (a storage fault), then a map
        // entry that breaks the rules: nothing is published.
        let batch = first_batch(&[issue("a@b.co", "s1", "e1")]);
        log.append(&batch[..batch.len() - 1]).unwrap();
        let wrong = PublicEntry::Map(MapRoot {
            root: [9; 32],
            labels: 1,
        });
        log.append(&[wrong.to_bytes()]).unwrap();
        let bad = log.sign_checkpoint().unwrap();
        assert!(matches!(
            directory.catch_up(&log, bad, true),
            Err(OpenError::Rules { .. })
        ));
        assert_eq!(directory.read().checkpoint.note, published.note);
        assert!(directory.prove("a@b.co", None).value.is_none());

        // A log whose tail follows the rules is published with its checkpoint.
        let (_dir, log, directory) = empty_directory();
        log.append(&batch).unwrap();
        let checkpoint = log.sign_checkpoint().unwrap();
        let replayed = directory
            .catch_up(&log, Arc::clone(&checkpoint), true)
            .unwrap();
        assert_eq!(replayed, batch.len() as u64);
        assert_eq!(directory.read().checkpoint.note, checkpoint.note);
        assert_eq!(directory.prove("a@b.co", None).value.unwrap().version, 1);
        assert_eq!(directory.catch_up(&log, checkpoint, true).unwrap(), 0);

        // Several batches at once: the first batch, then a batch of no update (its map entry
        // repeats the root), or one whose map entry is wrong.
        let closing = batch.last().unwrap().clone();
        for (second, accepted) in [(closing.clone(), true), (wrong.to_bytes(), false)] {
            let (_dir, log, directory) = empty_directory();
            let before = directory.read().checkpoint.note.clone();
            log.append(&batch).unwrap();
            log.append(&[second]).unwrap();
            let checkpoint = log.sign_checkpoint().unwrap();
            let caught = directory.catch_up(&log, Arc::clone(&checkpoint), false);
            assert_eq!(caught.is_ok(), accepted, "{:?}", caught.err());
            let shown = directory.read().checkpoint.note.clone();
            assert_eq!(
                shown,
                if accepted {
                    checkpoint.note.clone()
                } else {
                    before
                }
            );
            assert_eq!(directory.prove("a@b.co", None).value.is_some(), accepted);
        }
    }

    #[test]
    fn catch_up_stages_a_few_batches_beside_the_map_and_replays_more_alike() {
        let first = [issue("a@b.co", "s1", "e1"), issue("b@b.co", "s2", "e2")];
        let second = [issue("a@b.co", "s3", "e3"), issue("c@b.co", "s4", "e4")];
        let third = [issue("a@b.co", "s5", "e5"), issue("b@b.co", "s6", "e6")];
        // One label changes in every batch: each map entry is checked against the batches so
        // far, and the staged map is the replayed one.
        let logged = testing::batches(&[&first, &second, &third]);
        for empty_batches in [0, MAX_STAGED_BATCHES] {
            let (_dir, log, directory) = empty_directory();
            for batch in &logged {
                log.append(batch).unwrap();
            }
            // Batches of no update (their map entries repeat the root) past the staging limit
            // send the catch-up to the replay.
            let closing = logged.last().unwrap().last().unwrap().clone();
            for _ in 0..empty_batches {
                log.append(std::slice::from_ref(&closing)).unwrap();
            }
            let checkpoint = log.sign_checkpoint().unwrap();
            directory
                .catch_up(&log, Arc::clone(&checkpoint), true)
                .unwrap();
            assert_eq!(directory.read().checkpoint.note, checkpoint.note);
            let version = |identity| directory.prove(identity, None).value.unwrap().version;
            assert_eq!(
                [version("a@b.co"), version("b@b.co"), version("c@b.co")],
                [3, 2, 1]
            );
            let mut replay = Replay::new();
            for bytes in log.entries(0, log.size()).unwrap() {
                replay.apply(&PublicEntry::parse(&bytes).unwrap()).unwrap();
            }
            assert_eq!(directory.read().map.root(), replay.map().root());

            // A wrong map entry in the middle is refused, and nothing is published.
            let (_dir, log, directory) = empty_directory();
            let before = directory.read().checkpoint.note.clone();
            let mut wrong_second = logged[1].clone();
            *wrong_second.last_mut().unwrap() = logged[0].last().unwrap().clone();
            for batch in [&logged[0], &wrong_second, &logged[2]] {
                log.append(batch).unwrap();
            }
            let checkpoint = log.sign_checkpoint().unwrap();
            assert!(matches!(
                directory.catch_up(&log, checkpoint, true),
                Err(OpenError::Rules { .. })
            ));
            assert_eq!(directory.read().checkpoint.note, before);
        }
    }
}
