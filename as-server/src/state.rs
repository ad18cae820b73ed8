//! The AS's state: identities, credentials and enrollments, in sled.
//!
//! Source of truth: the log. Identities' and credentials' records are a view derived from the
//! log's entries by [`Overlay::apply_entry`], and the state records how many entries it has applied
//! (`m/applied`) in the same atomic sled batch as the changes. The state is therefore never
//! ahead of the log, and [`State::catch_up`] (run at start) re-applies whatever a crash lost,
//! so the state is not fsynced per batch: the log is.
//!
//! Only enrollments are not in the log (their tokens are secrets): [`State::add_enrollments`]
//! writes them to the [`EnrollmentJournal`] (synced) before the store, and [`State::open`]
//! puts back every journaled enrollment the store lacks. Which enrollment an issuance used is
//! in its entry, so re-applying it marks the enrollment used again. The store is therefore a
//! cache of the log and the journal: [`crate::recovery`] rebuilds it from them when it is
//! damaged or disagrees with the log.
//!
//! Keys of the one sled tree (one tree, so that one batch is atomic):
//! `i/<identity>` → [`IdentityRecord`], `c/<serial>` → [`CredentialRecord`],
//! `e/<enrollment id>` → [`EnrollmentRecord`], `r/<serial>` → [`RevocationRecord`] (the CRL),
//! `m/applied` → u64 big-endian, `m/applied-root` → the log's root hash at that size,
//! `m/journal-end` → how much of the enrollment journal the store holds.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::enrollment_journal::{EnrollmentJournal, JournalRecord};
use crate::entry::{EntryBody, LogEntry, RevocationReason, RevocationScope};

/// Why the state failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StateError {
    /// sled failed.
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record does not decode.
    #[error("state record {key} is corrupt: {error}")]
    Corrupt {
        /// Its key.
        key: String,
        /// The decode error.
        error: String,
    },
    /// The enrollment journal cannot be read or written: not a fault of the store.
    #[error("enrollment journal: {0}")]
    Journal(std::io::Error),
    /// The store disagrees with the enrollment journal: it lost records it says it holds.
    #[error("state store disagrees with the enrollment journal: {0}")]
    Disagrees(String),
    /// sled panicked while opening its files (it does on some damaged files).
    #[error("state store: sled panicked while opening it")]
    Panicked,
    /// A log entry does not decode.
    #[error("log entry {index} does not parse: {error}")]
    BadEntry {
        /// Its index.
        index: u64,
        /// The parse error.
        error: String,
    },
}

/// Whether an identity may hold credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityStatus {
    /// May enroll and hold credentials.
    Active,
    /// Revoked by an admin: no enrollment, no credentials, until enabled again.
    Revoked,
}

/// An identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    /// Active or revoked.
    pub status: IdentityStatus,
    /// Counts revocations; enrollments made in an earlier epoch are void.
    pub epoch: u64,
    /// Serials of its credentials that are neither superseded nor revoked (maybe expired).
    pub current: Vec<String>,
    /// Whether the log has an entry of it. Until then it is only enrolled, which is not public
    /// (enrollments are not logged), and lookups answer as for a name never enrolled.
    #[serde(default)]
    pub logged: bool,
    /// Times of its rotations in the last day of its latest one, oldest first: what the
    /// rotation budget ([`crate::rotation`]) is decided from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_rotations: Vec<u64>,
}

impl IdentityRecord {
    /// The record of an identity the state has not seen before.
    pub fn new() -> IdentityRecord {
        IdentityRecord {
            status: IdentityStatus::Active,
            epoch: 0,
            current: Vec::new(),
            logged: false,
            recent_rotations: Vec::new(),
        }
    }
}

impl Default for IdentityRecord {
    fn default() -> Self {
        IdentityRecord::new()
    }
}

/// Where a credential stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialStatus {
    /// Current (unless expired).
    Current,
    /// Replaced by a rotation.
    Superseded,
    /// Revoked by an admin.
    Revoked,
}

/// A credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// Whose.
    pub identity: String,
    /// Ed25519 public key, base64.
    pub public_key: String,
    /// Validity start.
    pub not_before: u64,
    /// Validity end.
    pub not_after: u64,
    /// Index of the entry that issued it.
    pub log_index: u64,
    /// Current, superseded or revoked.
    pub status: CredentialStatus,
}

/// An enrollment: the right to one credential for one identity, until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentRecord {
    /// For whom.
    pub identity: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// The identity's epoch when it was made.
    pub epoch: u64,
    /// The serial it was used for, once used.
    pub used_by: Option<String>,
}

/// A revoked credential, as the CRL lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRecord {
    /// When, Unix seconds.
    pub revoked_at: u64,
    /// Why.
    pub reason: RevocationReason,
}

fn identity_key(identity: &str) -> Vec<u8> {
    [b"i/", identity.as_bytes()].concat()
}
fn credential_key(serial: &str) -> Vec<u8> {
    [b"c/", serial.as_bytes()].concat()
}
fn enrollment_key(id: &str) -> Vec<u8> {
    [b"e/", id.as_bytes()].concat()
}
fn revocation_key(serial: &str) -> Vec<u8> {
    [b"r/", serial.as_bytes()].concat()
}
const APPLIED_KEY: &[u8] = b"m/applied";
/// The log's root hash at `m/applied` entries, written with it: which log the state is of.
const APPLIED_ROOT_KEY: &[u8] = b"m/applied-root";
/// The enrollment journal's generation (16 bytes) and a length (u64 big-endian) up to which
/// every journaled enrollment is in the store.
const JOURNAL_END_KEY: &[u8] = b"m/journal-end";
/// Enrollments written per sled transaction (see [`State::add_enrollments`]).
pub const ENROLLMENT_CHUNK: usize = 1_000;
/// Index of the latest revocation entry applied (JSON number): what the CRL cache checks.
const LAST_REVOCATION_KEY: &[u8] = b"m/last-revocation";
/// Version of the records' layout (u64 big-endian); absent before version 1.
const FORMAT_KEY: &[u8] = b"m/format";
/// Version 1: identity records say whether the log has an entry of them (`logged`).
const FORMAT: u64 = 1;

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        error: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // The records are plain strings, integers and enums: serializing cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Journaled enrollments that expired this long ago are dropped from the journal at start
/// (no token can use them any more), once they are at least half of it.
const JOURNAL_KEEPS_EXPIRED_FOR: u64 = 24 * 3600;
/// ... and at least this many: small journals are not worth rewriting.
const JOURNAL_COMPACTS_FROM: usize = 1_024;

/// The enrollments of `tree` still usable (unused, unexpired), as journal records.
fn pending_enrollments(tree: &sled::Tree) -> Result<Vec<JournalRecord>, StateError> {
    let now = crate::unix_now();
    let mut pending = Vec::new();
    for item in tree.scan_prefix(b"e/") {
        let (key, value) = item?;
        let record: EnrollmentRecord = decode(&key, &value)?;
        if record.used_by.is_none() && record.expires_at > now {
            pending.push(JournalRecord {
                id: String::from_utf8_lossy(&key[2..]).into_owned(),
                identity: record.identity,
                expires_at: record.expires_at,
                epoch: record.epoch,
            });
        }
    }
    Ok(pending)
}

/// The state store.
#[derive(Clone)]
pub struct State {
    db: sled::Db,
    tree: sled::Tree,
    /// sled's data file, synced after a flush that must survive power loss.
    data_file: std::path::PathBuf,
    /// The durable record of enrollments.
    journal: std::sync::Arc<EnrollmentJournal>,
    /// Held while enrollments are journaled and stored, so that the journal's records reach
    /// the store in journal order and [`JOURNAL_END_KEY`] can say up to where they are in it.
    enrolling: std::sync::Arc<std::sync::Mutex<()>>,
}

impl State {
    /// Opens (or creates) the state store in `dir` and the enrollment journal at `journal`,
    /// and puts every journaled enrollment the store lacks back into it (see the module doc).
    /// The store may still be behind the log: [`State::catch_up`] brings it level.
    pub fn open(dir: &std::path::Path, journal: &std::path::Path) -> Result<State, StateError> {
        // The log is the durable record and catch_up re-applies what a crash loses, so the
        // state is not flushed per batch. sled's background flush every 500 ms still writes it
        // out in small steps: left to the kernel's 30-second writeback, it leaves in bursts of
        // over 100 MB that stall the log's syncs behind them. sled panics on some damaged
        // files instead of answering an error: that is a damaged store too.
        let config = sled::Config::new().path(dir).flush_every_ms(Some(500));
        let db = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open()))
            .map_err(|_| StateError::Panicked)??;
        let tree = db.open_tree("as")?;
        if !journal.try_exists().map_err(StateError::Journal)? {
            // A store from before the journal holds the only copy of its pending enrollments:
            // the journal starts with them, created whole or not at all.
            let pending = pending_enrollments(&tree)?;
            EnrollmentJournal::create(journal, &pending).map_err(StateError::Journal)?;
            if !pending.is_empty() {
                tracing::info!(
                    copied = pending.len(),
                    "pending enrollments copied into the new enrollment journal"
                );
            }
        }
        let opened = EnrollmentJournal::open(journal).map_err(StateError::Journal)?;
        if opened.torn_bytes > 0 {
            tracing::warn!(
                bytes = opened.torn_bytes,
                "the enrollment journal ended in a torn record (a crash during an enrollment \
                 that was never answered); cut off, and kept beside it"
            );
        }
        let state = State {
            db,
            tree,
            data_file: dir.join("db"),
            journal: std::sync::Arc::new(opened.journal),
            enrolling: Default::default(),
        };
        state.upgrade()?;
        state.restore_enrollments(&opened.records, &opened.ends)?;
        state.compact_journal(opened.records, crate::unix_now())?;
        Ok(state)
    }

    /// Where the store says the journal's records are all in it, if it is this journal.
    fn journal_end(&self) -> Result<Option<u64>, StateError> {
        let Some(value) = self.tree.get(JOURNAL_END_KEY)? else {
            return Ok(None);
        };
        let generation = self.journal.generation();
        if value.len() != 24 || value[..16] != generation {
            return Ok(None);
        }
        let mut end = [0u8; 8];
        end.copy_from_slice(&value[16..]);
        Ok(Some(u64::from_be_bytes(end)))
    }

    fn journal_end_value(&self, end: u64) -> Vec<u8> {
        [&self.journal.generation()[..], &end.to_be_bytes()].concat()
    }

    /// Writes each journaled enrollment the store does not hold (with its identity's record,
    /// if that is missing too), in atomic batches; records present are left alone, since the
    /// store's own copy may already say which issuance used it. `ends` are where the records
    /// end in the journal: those up to [`JOURNAL_END_KEY`] are in the store already (the last
    /// of them is checked), so a start reads only the store for the newer ones.
    fn restore_enrollments(
        &self,
        records: &[JournalRecord],
        ends: &[u64],
    ) -> Result<(), StateError> {
        let mut from = 0;
        if let Some(end) = self.journal_end()? {
            let stored = ends.partition_point(|&e| e <= end);
            let on_boundary = stored == 0 || ends[stored - 1] == end;
            if on_boundary && stored > 0 {
                let last = &records[stored - 1];
                if self.tree.get(enrollment_key(&last.id))?.is_none() {
                    return Err(StateError::Disagrees(format!(
                        "it says it holds the journal's enrollments up to {end}, but not {}",
                        last.id
                    )));
                }
            }
            if on_boundary {
                from = stored;
            }
        }
        let mut restored = 0usize;
        for chunk in records[from..].chunks(ENROLLMENT_CHUNK) {
            let mut batch = sled::Batch::default();
            let mut new_identities = std::collections::HashSet::new();
            for record in chunk {
                let key = enrollment_key(&record.id);
                if self.tree.get(&key)?.is_some() {
                    continue;
                }
                let identity = identity_key(&record.identity);
                if self.tree.get(&identity)?.is_none() && new_identities.insert(identity.clone()) {
                    batch.insert(identity, encode(&IdentityRecord::new()));
                }
                let enrollment = EnrollmentRecord {
                    identity: record.identity.clone(),
                    expires_at: record.expires_at,
                    epoch: record.epoch,
                    used_by: None,
                };
                batch.insert(key, encode(&enrollment));
                restored += 1;
            }
            self.tree.apply_batch(batch)?;
        }
        self.tree
            .insert(JOURNAL_END_KEY, self.journal_end_value(self.journal.end()))?;
        if restored > 0 {
            tracing::info!(restored, "enrollments restored from the enrollment journal");
        }
        Ok(())
    }

    /// Rewrites the journal without the enrollments that expired more than a day ago, when
    /// they are most of it, so that it does not grow without bound.
    fn compact_journal(&self, records: Vec<JournalRecord>, now: u64) -> Result<(), StateError> {
        let total = records.len();
        let keep: Vec<JournalRecord> = records
            .into_iter()
            .filter(|r| r.expires_at.saturating_add(JOURNAL_KEEPS_EXPIRED_FOR) > now)
            .collect();
        let dropped = total - keep.len();
        if dropped >= JOURNAL_COMPACTS_FROM && dropped * 2 >= total {
            let end = self.journal.rewrite(&keep).map_err(StateError::Journal)?;
            // Every kept record is in the store: restored above.
            self.tree
                .insert(JOURNAL_END_KEY, self.journal_end_value(end))?;
            tracing::info!(dropped, kept = keep.len(), "enrollment journal compacted");
        }
        Ok(())
    }

    /// Brings records of an earlier layout to [`FORMAT`], in one atomic batch with the new
    /// format number. Before version 1, identity records had no `logged`: an identity has an
    /// entry in the log exactly if it holds or held a credential (issuance), or was ever
    /// revoked (which moves its epoch), since every entry kind does one of these.
    fn upgrade(&self) -> Result<(), StateError> {
        let format = self
            .tree
            .get(FORMAT_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        if format >= FORMAT {
            return Ok(());
        }
        let mut holders = std::collections::HashSet::new();
        for item in self.tree.scan_prefix(b"c/") {
            let (key, value) = item?;
            let credential: CredentialRecord = decode(&key, &value)?;
            holders.insert(credential.identity);
        }
        let mut batch = sled::Batch::default();
        for item in self.tree.scan_prefix(b"i/") {
            let (key, value) = item?;
            let mut record: IdentityRecord = decode(&key, &value)?;
            let name = String::from_utf8_lossy(&key[2..]).into_owned();
            record.logged = record.status == IdentityStatus::Revoked
                || record.epoch > 0
                || !record.current.is_empty()
                || holders.contains(&name);
            batch.insert(key, encode(&record));
        }
        batch.insert(FORMAT_KEY, &FORMAT.to_be_bytes());
        self.tree.apply_batch(batch)?;
        self.make_durable()
    }

    /// Makes everything written so far durable, across power loss too: sled's own flush
    /// (`sync_file_range` on Linux) writes the data but neither commits the file's metadata
    /// nor flushes the device cache, so the data file is synced after it.
    fn make_durable(&self) -> Result<(), StateError> {
        self.db.flush()?;
        let sync = |path: &std::path::Path| std::fs::File::open(path).and_then(|f| f.sync_all());
        sync(&self.data_file)
            // The folder too, which names the file (new on a first start).
            .and_then(|()| self.data_file.parent().map_or(Ok(()), sync))
            .map_err(|e| StateError::Sled(sled::Error::Io(e)))?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StateError> {
        self.tree
            .get(key)?
            .map(|bytes| decode(key, &bytes))
            .transpose()
    }

    /// An identity.
    pub fn identity(&self, identity: &str) -> Result<Option<IdentityRecord>, StateError> {
        self.get(&identity_key(identity))
    }

    /// A credential.
    pub fn credential(&self, serial: &str) -> Result<Option<CredentialRecord>, StateError> {
        self.get(&credential_key(serial))
    }

    /// An enrollment, by id.
    pub fn enrollment(&self, id: &str) -> Result<Option<EnrollmentRecord>, StateError> {
        self.get(&enrollment_key(id))
    }

    /// A revoked credential's CRL record.
    pub fn revocation(&self, serial: &str) -> Result<Option<RevocationRecord>, StateError> {
        self.get(&revocation_key(serial))
    }

    /// Every revoked credential: (serial, record), in serial order.
    pub fn revocations(&self) -> Result<Vec<(String, RevocationRecord)>, StateError> {
        self.tree
            .scan_prefix(b"r/")
            .map(|item| {
                let (key, value) = item?;
                let serial = String::from_utf8_lossy(&key[2..]).into_owned();
                Ok((serial, decode(&key, &value)?))
            })
            .collect()
    }

    /// Index of the latest revocation entry the state reflects, if any: the revocations (and
    /// so the CRL) changed exactly when it did.
    pub fn last_revocation(&self) -> Result<Option<u64>, StateError> {
        self.get(LAST_REVOCATION_KEY)
    }

    /// The log's root hash at [`State::applied`] entries, as recorded with it (`None` in a store
    /// of an earlier layout, or one that applied nothing).
    pub fn applied_root(&self) -> Result<Option<[u8; 32]>, StateError> {
        Ok(self
            .tree
            .get(APPLIED_ROOT_KEY)?
            .and_then(|v| <[u8; 32]>::try_from(v.as_ref()).ok()))
    }

    /// Whether the store holds any credential or revocation: only log entries make them.
    pub fn has_logged_records(&self) -> Result<bool, StateError> {
        for prefix in [b"c/", b"r/"] {
            if self.tree.scan_prefix(prefix).next().transpose()?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// How many log entries the state reflects.
    pub fn applied(&self) -> Result<u64, StateError> {
        Ok(self
            .tree
            .get(APPLIED_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Records new enrollments durably (across power loss: in the journal) before returning,
    /// creating the identity records that do not exist yet. `enrollments` are (enrollment id, identity,
    /// expires_at). Refuses the whole set, writing nothing, if any identity is revoked
    /// (returns it).
    ///
    /// Two steps. First every identity's record is read: if one is revoked, the set is refused
    /// before anything is written; otherwise each enrollment takes its identity's epoch as read
    /// then. Then the records are written in transactions of [`ENROLLMENT_CHUNK`] (a sled
    /// transaction keeps the garbage of every page it rewrites until it commits: about 12 KB
    /// an identity, 1.2 GB for one of 100,000). Each identity is decided at its read: a
    /// revocation that lands after it voids the new token through the epoch it carries, as if
    /// the enrollment had come first. The journal is written between the two steps; a crash
    /// before the store has them is repaired by [`State::open`]. A crash before the answer
    /// leaves enrollments whose tokens were never answered, so nobody can use them; they expire.
    pub fn add_enrollments(
        &self,
        enrollments: &[(String, String, u64)],
    ) -> Result<Result<(), String>, StateError> {
        let mut epochs: std::collections::HashMap<&str, u64> = Default::default();
        for (_, identity, _) in enrollments {
            if epochs.contains_key(identity.as_str()) {
                continue;
            }
            let epoch = match self.identity(identity)? {
                Some(record) if record.status == IdentityStatus::Revoked => {
                    return Ok(Err(identity.clone()))
                }
                Some(record) => record.epoch,
                None => 0,
            };
            epochs.insert(identity, epoch);
        }
        let _enrolling = self
            .enrolling
            .lock()
            .map_err(|_| StateError::Journal(std::io::Error::other("enrollment lock poisoned")))?;
        let journaled: Vec<JournalRecord> = enrollments
            .iter()
            .map(|(id, identity, expires_at)| JournalRecord {
                id: id.clone(),
                identity: identity.clone(),
                expires_at: *expires_at,
                epoch: epochs.get(identity.as_str()).copied().unwrap_or(0),
            })
            .collect();
        let journal_end = self
            .journal
            .append(&journaled)
            .map_err(StateError::Journal)?;
        for chunk in enrollments.chunks(ENROLLMENT_CHUNK) {
            let written: Result<(), sled::transaction::TransactionError<std::convert::Infallible>> =
                self.tree.transaction(|tx| {
                    for (id, identity, expires_at) in chunk {
                        let key = identity_key(identity);
                        // Only created, never overwritten: the sequencer owns existing ones.
                        if tx.get(&key)?.is_none() {
                            tx.insert(key, encode(&IdentityRecord::new()))?;
                        }
                        let record = EnrollmentRecord {
                            identity: identity.clone(),
                            expires_at: *expires_at,
                            epoch: epochs.get(identity.as_str()).copied().unwrap_or(0),
                            used_by: None,
                        };
                        tx.insert(enrollment_key(id), encode(&record))?;
                    }
                    Ok(())
                });
            match written {
                Ok(()) => {}
                Err(sled::transaction::TransactionError::Storage(e)) => return Err(e.into()),
                Err(sled::transaction::TransactionError::Abort(never)) => match never {},
            }
        }
        self.tree
            .insert(JOURNAL_END_KEY, self.journal_end_value(journal_end))?;
        Ok(Ok(()))
    }

    /// A view for the sequencer: reads through to the store, writes collected in memory.
    pub fn overlay(&self) -> Overlay<'_> {
        Overlay {
            state: self,
            changes: BTreeMap::new(),
            reads: Default::default(),
            undo: Vec::new(),
        }
    }

    /// Re-applies the log entries the state has not seen (`applied .. log_size`), reading each
    /// with `entry_at` and the log's root hash at a size with `root_at`. Returns how many it
    /// applied.
    pub fn catch_up(
        &self,
        log_size: u64,
        mut entry_at: impl FnMut(u64) -> Result<Vec<u8>, String>,
        mut root_at: impl FnMut(u64) -> Result<[u8; 32], String>,
    ) -> Result<u64, StateError> {
        let start = self.applied()?;
        let mut index = start;
        while index < log_size {
            let end = log_size.min(index + 4096);
            let mut overlay = self.overlay();
            for i in index..end {
                let bytes =
                    entry_at(i).map_err(|error| StateError::BadEntry { index: i, error })?;
                let entry = LogEntry::parse(&bytes).map_err(|e| StateError::BadEntry {
                    index: i,
                    error: e.to_string(),
                })?;
                overlay.apply_entry(i, &entry)?;
            }
            let root = root_at(end).map_err(|error| StateError::BadEntry {
                index: end - 1,
                error,
            })?;
            overlay.commit(end, root)?;
            index = end;
        }
        self.make_durable()?;
        Ok(index - start)
    }
}

/// Reads through to the [`State`], collects writes; [`Overlay::commit`] writes them and the
/// new applied count as one atomic batch.
pub struct Overlay<'a> {
    state: &'a State,
    changes: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Records read from the store during this batch (`None`: absent), so that admission and
    /// `apply_entry` read each record from sled once. Only the sequencer changes the records
    /// it reads here, and every job of a batch was queued before the batch began, so a cached
    /// read cannot be older than what a job of the batch relies on.
    reads: std::cell::RefCell<std::collections::HashMap<Vec<u8>, Option<sled::IVec>>>,
    /// While an entry is applied: each changed key's value before it, to undo a failed apply.
    undo: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Overlay<'_> {
    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StateError> {
        if let Some(bytes) = self.changes.get(key) {
            return decode(key, bytes).map(Some);
        }
        let cached = self.reads.borrow().get(key).cloned();
        let stored = match cached {
            Some(stored) => stored,
            None => {
                let stored = self.state.tree.get(key)?;
                self.reads.borrow_mut().insert(key.to_vec(), stored.clone());
                stored
            }
        };
        stored.map(|bytes| decode(key, &bytes)).transpose()
    }

    fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        let previous = self.changes.insert(key.clone(), encode(value));
        self.undo.push((key, previous));
    }

    /// An identity, as changed so far.
    pub fn identity(&self, identity: &str) -> Result<Option<IdentityRecord>, StateError> {
        self.get(&identity_key(identity))
    }

    /// A credential, as changed so far.
    pub fn credential(&self, serial: &str) -> Result<Option<CredentialRecord>, StateError> {
        self.get(&credential_key(serial))
    }

    /// An enrollment, as changed so far.
    pub fn enrollment(&self, id: &str) -> Result<Option<EnrollmentRecord>, StateError> {
        self.get(&enrollment_key(id))
    }

    /// Applies log entry `index`: the one place where entries change the state, used both by
    /// the sequencer and by [`State::catch_up`]. It trusts the entry (the sequencer admitted
    /// it) and is idempotent for the records it writes.
    pub fn apply_entry(&mut self, index: u64, entry: &LogEntry) -> Result<(), StateError> {
        // All or nothing: a read that fails half-way leaves no change of this entry behind.
        self.undo.clear();
        let applied = self.apply_changes(index, entry);
        if applied.is_err() {
            for (key, previous) in std::mem::take(&mut self.undo).into_iter().rev() {
                match previous {
                    Some(value) => self.changes.insert(key, value),
                    None => self.changes.remove(&key),
                };
            }
        }
        self.undo.clear();
        applied
    }

    fn apply_changes(&mut self, index: u64, entry: &LogEntry) -> Result<(), StateError> {
        let identity_name = entry.body.identity().to_owned();
        let mut identity = self.identity(&identity_name)?.unwrap_or_default();
        identity.logged = true;
        match &entry.body {
            EntryBody::Issue {
                binding,
                enrollment,
                ..
            } => {
                self.add_credential(index, &identity_name, binding);
                let serial = binding.serial.to_hex();
                if !identity.current.contains(&serial) {
                    identity.current.push(serial.clone());
                }
                let enrollment = enrollment.to_hex();
                if let Some(mut record) = self.enrollment(&enrollment)? {
                    record.used_by = Some(serial);
                    self.put(enrollment_key(&enrollment), &record);
                }
            }
            EntryBody::Rotate {
                time,
                binding,
                replaces,
                ..
            } => {
                crate::rotation::record(&mut identity.recent_rotations, *time);
                self.add_credential(index, &identity_name, binding);
                let replaces = replaces.to_hex();
                self.set_credential_status(&replaces, CredentialStatus::Superseded)?;
                identity.current.retain(|s| *s != replaces);
                let serial = binding.serial.to_hex();
                if !identity.current.contains(&serial) {
                    identity.current.push(serial);
                }
            }
            EntryBody::Revoke {
                time,
                serials,
                scope,
                reason,
                ..
            } => {
                self.put(LAST_REVOCATION_KEY.to_vec(), &index);
                let serials: Vec<String> = serials.iter().map(|s| s.to_hex()).collect();
                for serial in &serials {
                    self.set_credential_status(serial, CredentialStatus::Revoked)?;
                    self.put(
                        revocation_key(serial),
                        &RevocationRecord {
                            revoked_at: *time,
                            reason: *reason,
                        },
                    );
                }
                identity.current.retain(|s| !serials.contains(s));
                if *scope == RevocationScope::Identity && identity.status == IdentityStatus::Active
                {
                    identity.status = IdentityStatus::Revoked;
                    identity.epoch += 1;
                }
            }
            EntryBody::Enable { .. } => identity.status = IdentityStatus::Active,
        }
        self.put(identity_key(&identity_name), &identity);
        Ok(())
    }

    fn add_credential(&mut self, index: u64, identity: &str, binding: &crate::entry::Binding) {
        let record = CredentialRecord {
            identity: identity.to_owned(),
            public_key: binding.public_key_b64(),
            not_before: binding.not_before,
            not_after: binding.not_after,
            log_index: index,
            status: CredentialStatus::Current,
        };
        self.put(credential_key(&binding.serial.to_hex()), &record);
    }

    fn set_credential_status(
        &mut self,
        serial: &str,
        status: CredentialStatus,
    ) -> Result<(), StateError> {
        if let Some(mut record) = self.credential(serial)? {
            record.status = status;
            self.put(credential_key(serial), &record);
        }
        Ok(())
    }

    /// Writes the collected changes, `applied` and the log's root hash at that size as one
    /// atomic batch (not flushed: see the module doc).
    pub fn commit(self, applied: u64, root: [u8; 32]) -> Result<(), StateError> {
        let mut batch = sled::Batch::default();
        for (key, value) in self.changes {
            batch.insert(key, value);
        }
        batch.insert(APPLIED_KEY, &applied.to_be_bytes());
        batch.insert(APPLIED_ROOT_KEY, &root);
        self.state.tree.apply_batch(batch)?;
        Ok(())
    }
}

/// Serials and enrollment ids named by a word, for tests: `serial("s1")`.
#[cfg(test)]
pub(crate) mod test_ids {
    use crate::entry::{EnrollmentId, Serial};

    fn bytes<const N: usize>(name: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, b) in name.bytes().enumerate().take(N) {
            out[i] = b;
        }
        out
    }

    /// The serial named `name`.
    pub(crate) fn serial(name: &str) -> Serial {
        Serial(bytes(name))
    }

    /// Its hex, as the state keys it.
    pub(crate) fn serial_hex(name: &str) -> String {
        serial(name).to_hex()
    }

    /// The enrollment named `name`.
    pub(crate) fn enrollment(name: &str) -> EnrollmentId {
        EnrollmentId(bytes(name))
    }

    /// Its hex, as the state keys it.
    pub(crate) fn enrollment_hex(name: &str) -> String {
        enrollment(name).to_hex()
    }
}

#[cfg(test)]
mod tests {
    use super::test_ids::{enrollment, enrollment_hex, serial, serial_hex};
    use super::*;
    use crate::entry::Binding;

    fn issue(identity: &str, name: &str, enrollment_name: &str) -> LogEntry {
        LogEntry::new(EntryBody::Issue {
            time: 1,
            identity: identity.into(),
            binding: Binding {
                serial: serial(name),
                public_key: [7; 32],
                not_before: 0,
                not_after: 10,
                certificate: vec![0x30, 0x00],
            },
            enrollment: self::enrollment(enrollment_name),
        })
    }

    #[test]
    fn entries_drive_identities_and_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let state =
            State::open(&dir.path().join("state"), &dir.path().join("enrollments")).unwrap();
        state
            .add_enrollments(&[(enrollment_hex("e1"), "a@b.co".into(), 100)])
            .unwrap()
            .unwrap();
        let mut overlay = state.overlay();
        overlay
            .apply_entry(0, &issue("a@b.co", "s1", "e1"))
            .unwrap();
        assert_eq!(
            overlay
                .enrollment(&enrollment_hex("e1"))
                .unwrap()
                .unwrap()
                .used_by
                .as_deref(),
            Some(serial_hex("s1").as_str())
        );
        overlay
            .apply_entry(
                1,
                &LogEntry::new(EntryBody::Revoke {
                    time: 2,
                    identity: "a@b.co".into(),
                    serials: vec![serial("s1")],
                    scope: RevocationScope::Identity,
                    reason: RevocationReason::KeyCompromise,
                    admin: "admin".into(),
                }),
            )
            .unwrap();
        // Nothing is visible in the store before the commit.
        assert_eq!(state.credential(&serial_hex("s1")).unwrap(), None);
        overlay.commit(2, [2; 32]).unwrap();
        assert_eq!(state.applied().unwrap(), 2);
        let identity = state.identity("a@b.co").unwrap().unwrap();
        assert_eq!(identity.status, IdentityStatus::Revoked);
        assert_eq!(identity.epoch, 1);
        assert!(identity.current.is_empty());
        assert_eq!(
            state.credential(&serial_hex("s1")).unwrap().unwrap().status,
            CredentialStatus::Revoked
        );
        assert_eq!(state.revocations().unwrap().len(), 1);
        // A revoked identity cannot be enrolled, and a set naming one writes nothing, not
        // even the other identities' records.
        assert_eq!(
            state
                .add_enrollments(&[
                    (enrollment_hex("e2"), "new@b.co".into(), 100),
                    (enrollment_hex("e3"), "a@b.co".into(), 100)
                ])
                .unwrap(),
            Err("a@b.co".to_string())
        );
        assert_eq!(state.identity("new@b.co").unwrap(), None);
        assert_eq!(state.enrollment(&enrollment_hex("e2")).unwrap(), None);
        // A set of new and known identities gets records for the new ones, and each
        // enrollment carries its identity's epoch.
        state
            .add_enrollments(&[
                (enrollment_hex("e4"), "new@b.co".into(), 100),
                (enrollment_hex("e5"), "new@b.co".into(), 100),
            ])
            .unwrap()
            .unwrap();
        assert_eq!(
            state.identity("new@b.co").unwrap().unwrap().status,
            IdentityStatus::Active
        );
        assert_eq!(
            state
                .enrollment(&enrollment_hex("e5"))
                .unwrap()
                .unwrap()
                .epoch,
            0
        );
    }

    #[test]
    fn a_failed_apply_leaves_no_change_behind() {
        let dir = tempfile::tempdir().unwrap();
        let state =
            State::open(&dir.path().join("state"), &dir.path().join("enrollments")).unwrap();
        state
            .tree
            .insert(credential_key(&serial_hex("bad")), b"not json".as_slice())
            .unwrap();
        let mut overlay = state.overlay();
        let rotate = LogEntry::new(EntryBody::Rotate {
            time: 1,
            identity: "a@b.co".into(),
            binding: Binding {
                serial: serial("new"),
                public_key: [7; 32],
                not_before: 0,
                not_after: 10,
                certificate: vec![0x30, 0x00],
            },
            replaces: serial("bad"),
        });
        // The new credential is written before the corrupt one is read: the failure undoes it.
        assert!(overlay.apply_entry(0, &rotate).is_err());
        assert_eq!(overlay.credential(&serial_hex("new")).unwrap(), None);
        assert_eq!(overlay.identity("a@b.co").unwrap(), None);
        overlay.apply_entry(0, &issue("a@b.co", "s1", "e")).unwrap();
        assert!(overlay.credential(&serial_hex("s1")).unwrap().is_some());
    }

    #[test]
    fn catch_up_replays_what_the_state_missed() {
        let dir = tempfile::tempdir().unwrap();
        let state =
            State::open(&dir.path().join("state"), &dir.path().join("enrollments")).unwrap();
        let log = [
            issue("a@b.co", "s1", "x").to_bytes(),
            issue("a@b.co", "s2", "y").to_bytes(),
        ];
        let mut overlay = state.overlay();
        overlay
            .apply_entry(0, &LogEntry::parse(&log[0]).unwrap())
            .unwrap();
        overlay.commit(1, [1; 32]).unwrap();
        let applied = state
            .catch_up(2, |i| Ok(log[i as usize].clone()), |_| Ok([2; 32]))
            .unwrap();
        assert_eq!(applied, 1);
        assert_eq!(
            state.identity("a@b.co").unwrap().unwrap().current,
            [serial_hex("s1"), serial_hex("s2")]
        );
        assert_eq!(state.applied_root().unwrap(), Some([2; 32]));
        assert!(state
            .catch_up(3, |_| Ok(b"not json".to_vec()), |_| Ok([3; 32]))
            .is_err());
    }

    #[test]
    fn a_store_from_before_the_journal_hands_its_pending_enrollments_to_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let (store, journal) = (dir.path().join("state"), dir.path().join("enrollments"));
        {
            let state = State::open(&store, &journal).unwrap();
            state
                .add_enrollments(&[
                    (enrollment_hex("e1"), "a@b.co".into(), u64::MAX),
                    (enrollment_hex("e2"), "b@b.co".into(), u64::MAX),
                    (enrollment_hex("old"), "c@b.co".into(), 1),
                ])
                .unwrap()
                .unwrap();
            let mut overlay = state.overlay();
            overlay
                .apply_entry(0, &issue("a@b.co", "s1", "e1"))
                .unwrap();
            overlay.commit(1, [1; 32]).unwrap();
            state.db.flush().unwrap();
        }
        // The earlier layout: enrollments in the store only.
        std::fs::remove_file(&journal).unwrap();
        drop(State::open(&store, &journal).unwrap());
        std::fs::remove_dir_all(&store).unwrap();
        let state = State::open(&store, &journal).unwrap();
        // Only the unused, unexpired one was worth keeping.
        let restored = state.enrollment(&enrollment_hex("e2")).unwrap().unwrap();
        assert_eq!(restored.identity, "b@b.co");
        assert_eq!(state.enrollment(&enrollment_hex("e1")).unwrap(), None);
        assert_eq!(state.enrollment(&enrollment_hex("old")).unwrap(), None);
    }

    #[test]
    fn long_expired_enrollments_leave_the_journal_once_they_are_most_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let (store, journal) = (dir.path().join("state"), dir.path().join("enrollments"));
        let id = |n: usize| format!("{n:064x}");
        let mut enrollments: Vec<(String, String, u64)> = (0..JOURNAL_COMPACTS_FROM)
            .map(|n| (id(n), "old@b.co".to_string(), 1))
            .collect();
        enrollments.push((id(99_999), "new@b.co".into(), u64::MAX));
        drop(State::open(&store, &journal).unwrap());
        State::open(&store, &journal)
            .unwrap()
            .add_enrollments(&enrollments)
            .unwrap()
            .unwrap();
        let journaled = || EnrollmentJournal::open(&journal).unwrap().records;
        assert_eq!(journaled().len(), JOURNAL_COMPACTS_FROM + 1);
        drop(State::open(&store, &journal).unwrap());
        let kept = journaled();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].identity, "new@b.co");
    }

    #[test]
    fn records_of_the_earlier_layout_learn_whether_they_are_logged() {
        let dir = tempfile::tempdir().unwrap();
        {
            let state =
                State::open(&dir.path().join("state"), &dir.path().join("enrollments")).unwrap();
            let old = |status: &str, epoch: u64, current: &str| {
                format!(r#"{{"status":"{status}","epoch":{epoch},"current":[{current}]}}"#)
            };
            for (name, record) in [
                ("pending@b.co", old("active", 0, "")),
                ("holder@b.co", old("active", 0, r#""s1""#)),
                ("revoked@b.co", old("revoked", 1, "")),
                ("enabled@b.co", old("active", 1, "")),
                // Its only credential was revoked on its own: known from the credential.
                ("lost@b.co", old("active", 0, "")),
            ] {
                state
                    .tree
                    .insert(identity_key(name), record.as_bytes())
                    .unwrap();
            }
            let credential = CredentialRecord {
                identity: "lost@b.co".into(),
                public_key: "k".into(),
                not_before: 0,
                not_after: 1,
                log_index: 0,
                status: CredentialStatus::Revoked,
            };
            state
                .tree
                .insert(credential_key("s0"), encode(&credential))
                .unwrap();
            state.tree.remove(FORMAT_KEY).unwrap();
            state.db.flush().unwrap();
        }
        let state =
            State::open(&dir.path().join("state"), &dir.path().join("enrollments")).unwrap();
        let logged = |name: &str| state.identity(name).unwrap().unwrap().logged;
        assert!(!logged("pending@b.co"));
        assert!(logged("holder@b.co"));
        assert!(logged("revoked@b.co"));
        assert!(logged("enabled@b.co"));
        assert!(logged("lost@b.co"));
        assert_eq!(
            state.tree.get(FORMAT_KEY).unwrap().as_deref(),
            Some(&FORMAT.to_be_bytes()[..])
        );
    }
}
