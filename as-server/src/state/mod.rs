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
//! Files: [`records`] (what the store holds), [`overlay`] (how log entries change it, and
//! catching up with the log), `enrollments` (the journal's side), `upgrade` (earlier layouts),
//! [`shared`] (the store the server runs on, replaced by a reopened one after a storage fault),
//! [`log_rows`] (the directory's rows made from the log, for reads the store refuses).
//!
//! **Write failures.** sled refuses every write after one it could not make durable (a full or
//! read-only disk), until it is reopened. A store whose write failed says so
//! ([`State::failed`]), refuses enrollments from then on, and is replaced in-process by a
//! reopened one brought level with the log ([`crate::resync`]); until then it still answers
//! reads with what it held. Some of them it cannot answer (sled refuses a read that passes a
//! page it would have to split): a store given its log ([`State::keep_log`]) makes the
//! directory's rows such a read asks for from the log instead ([`log_rows`]), so that lookups
//! go on.
//!
//! Keys of the one sled tree (one tree, so that one batch is atomic):
//! `i/<identity>` → [`IdentityRecord`], `c/<serial>` → [`CredentialRecord`],
//! `e/<enrollment id>` → [`EnrollmentRecord`], `r/<serial>` → [`RevocationRecord`] (the CRL),
//! `m/applied` → u64 big-endian, `m/applied-root` → the log's root hash at that size,
//! `m/journal-end` → how much of the enrollment journal the store holds, `m/probe` → a counter
//! the sequencer writes to see that the store takes writes ([`State::check_writable`]), and the
//! directory's rows ([`directory`]: `d/<identity>`, `v/<identity>/<version>`).

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use crate::enrollment_journal::EnrollmentJournal;

pub mod directory;
mod enrollments;
pub mod log_rows;
pub mod overlay;
pub mod records;
pub mod shared;
mod upgrade;

pub use overlay::Overlay;
pub use records::{
    CredentialRecord, CredentialStatus, EnrollmentRecord, IdentityRecord, IdentityStatus,
    RevocationRecord,
};

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
    /// A write failed earlier (or the store was replaced): it takes no write until it is
    /// reopened (see the module doc).
    #[error("state store: a write failed; it takes none until it is reopened")]
    Unavailable,
    /// A log entry does not decode.
    #[error("log entry {index} cannot be read or applied: {error}")]
    BadEntry {
        /// Its index.
        index: u64,
        /// The parse error.
        error: String,
    },
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
/// When the journal was last read whole for its expired records (u64 big-endian Unix
/// seconds; see `enrollments`).
const JOURNAL_CHECKED_KEY: &[u8] = b"m/journal-checked";
/// The most memory sled's cache of the store's pages takes (its default is 1 GiB). The
/// operating system's page cache keeps the files' hot pages anyway, so a small one costs a
/// decode of pages read again, while the default grows a server's memory by up to a gibibyte
/// as lookups touch the pages of a large store.
const STATE_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Version of the records' layout (u64 big-endian); absent before version 1.
const FORMAT_KEY: &[u8] = b"m/format";
/// Version 1: identity records say whether the log has an entry of them (`logged`).
const FORMAT: u64 = 1;
/// Written before each batch's log append ([`State::check_writable`]): a counter that goes on
/// from the stored value, since sled skips (and so does not check) a write of the value a key
/// already has.
const PROBE_KEY: &[u8] = b"m/probe";

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        error: e.to_string(),
    })
}

/// A number the store keeps as 8 big-endian bytes (`m/applied`, `m/probe`, …), if present
/// and of that length.
fn stored_u64(tree: &sled::Tree, key: &[u8]) -> Result<Option<u64>, StateError> {
    Ok(tree
        .get(key)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // The records are plain strings, integers and enums: serializing cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// The index of the latest revocation entry a store reflects, shared by every clone of it.
/// Guarantee: it equals the store's [`LAST_REVOCATION_KEY`] once a batch that changed it is
/// committed ([`Overlay::commit`] sets it after sled took the batch), so that what is derived
/// from it (the CRL) changes with the store, never before it.
#[derive(Default)]
struct LastRevocation(std::sync::atomic::AtomicU64);

impl LastRevocation {
    fn get(&self) -> Option<u64> {
        self.0
            .load(std::sync::atomic::Ordering::Acquire)
            .checked_sub(1)
    }

    fn set(&self, index: Option<u64>) {
        let stored = index.map_or(0, |index| index.saturating_add(1));
        self.0.store(stored, std::sync::atomic::Ordering::Release);
    }
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
    /// Set once a write to the store failed (see the module doc).
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Set when a reopened store replaces this one ([`State::retire`]): from then on no
    /// enrollment is journaled through it. Shared by every clone, so that whoever reopens the
    /// store can wait for the last clone to go ([`State::clones`]).
    retired: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Counts [`State::check_writable`]'s writes.
    probes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// [`LAST_REVOCATION_KEY`]'s value kept in memory (index + 1; 0: none), read at open and
    /// set by every committed batch that holds a revocation, so that
    /// [`State::last_revocation`] needs no read of the store, which a full disk can refuse
    /// (see [`LastRevocation`]).
    last_revocation: std::sync::Arc<LastRevocation>,
    /// Where the directory's rows the store refuses to read are made from the log, if the
    /// store was given its log ([`State::keep_log`]).
    log_rows: Option<std::sync::Arc<log_rows::LogRows>>,
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
        let config = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(500))
            .cache_capacity(STATE_CACHE_BYTES);
        let db = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open()))
            .map_err(|_| StateError::Panicked)??;
        let tree = db.open_tree("as")?;
        if !journal.try_exists().map_err(StateError::Journal)? {
            // A store from before the journal holds the only copy of its pending enrollments:
            // the journal starts with them, created whole or not at all.
            let pending = enrollments::pending_enrollments(&tree)?;
            EnrollmentJournal::create(journal, &pending).map_err(StateError::Journal)?;
            if !pending.is_empty() {
                tracing::info!(
                    copied = pending.len(),
                    "pending enrollments copied into the new enrollment journal"
                );
            }
        }
        // The store says up to where it holds the journal's records: read only what follows,
        // unless the journal is due for a look at its expired records (a full read).
        let now = crate::unix_now();
        let known = tree
            .get(JOURNAL_END_KEY)?
            .and_then(|value| enrollments::stored_position(&value));
        let due = enrollments::compaction_due(&tree, now)?;
        let opened = EnrollmentJournal::open_from(journal, known.filter(|_| !due))
            .map_err(StateError::Journal)?;
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
            failed: Default::default(),
            retired: Default::default(),
            probes: Default::default(),
            last_revocation: Default::default(),
            log_rows: None,
        };
        let last_revocation = state.get(LAST_REVOCATION_KEY)?;
        state.last_revocation.set(last_revocation);
        let probed = stored_u64(&state.tree, PROBE_KEY)?.unwrap_or(0);
        state
            .probes
            .store(probed.wrapping_add(1), std::sync::atomic::Ordering::Relaxed);
        state.upgrade()?;
        state.restore_enrollments(&opened.records, &opened.ends)?;
        if opened.complete {
            state.compact_journal(opened.records, now)?;
        }
        Ok(state)
    }

    /// Makes everything written so far durable, across power loss too: sled's own flush
    /// (`sync_file_range` on Linux) writes the data but neither commits the file's metadata
    /// nor flushes the device cache, so the data file is synced after it.
    pub(crate) fn make_durable(&self) -> Result<(), StateError> {
        self.written(self.db.flush())?;
        let sync = |path: &std::path::Path| std::fs::File::open(path).and_then(|f| f.sync_all());
        let synced = sync(&self.data_file)
            // The folder too, which names the file (new on a first start).
            .and_then(|()| self.data_file.parent().map_or(Ok(()), sync));
        self.written(synced.map_err(sled::Error::Io))?;
        Ok(())
    }

    /// `result` of a write to the store; a failure marks the store failed (see the module doc).
    fn written<T>(&self, result: Result<T, sled::Error>) -> Result<T, StateError> {
        result.map_err(|e| {
            self.failed
                .store(true, std::sync::atomic::Ordering::Release);
            StateError::Sled(e)
        })
    }

    /// Keeps `log`, the log this store is level with, and the directory's `keys`, to make
    /// from the log the directory's rows the store refuses to read ([`log_rows`]).
    pub fn keep_log(
        &mut self,
        log: std::sync::Arc<crate::as_log::AsLog>,
        keys: crate::directory::keys::DirectoryKeys,
    ) {
        self.log_rows = Some(std::sync::Arc::new(log_rows::LogRows::new(log, keys)));
    }

    /// Whether a write to the store failed: it then takes no more until it is reopened.
    pub fn failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Fails, marking the store failed, unless it still takes writes: sled refuses every write
    /// after a background flush failed, so the sequencer asks before it appends a batch to the
    /// log, whose state it must then write (one small write).
    pub fn check_writable(&self) -> Result<(), StateError> {
        if self.failed() {
            return Err(StateError::Unavailable);
        }
        let n = self
            .probes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.written(self.tree.insert(PROBE_KEY, &n.to_be_bytes()))?;
        Ok(())
    }

    /// Marks this store replaced: waits for an enrollment being journaled through it, and
    /// refuses every later one, so that only the store that replaces it appends to the
    /// journal.
    pub fn retire(&self) {
        let _enrolling = self.enrolling.lock().unwrap_or_else(|e| e.into_inner());
        self.retired
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether this store was replaced ([`State::retire`]).
    pub fn retired(&self) -> bool {
        self.retired.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A handle that counts this store's live clones: sled holds its files (and its lock on
    /// them) until the last one is dropped.
    pub fn clones(&self) -> std::sync::Weak<std::sync::atomic::AtomicBool> {
        std::sync::Arc::downgrade(&self.retired)
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
    pub fn last_revocation(&self) -> Option<u64> {
        self.last_revocation.get()
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
        Ok(stored_u64(&self.tree, APPLIED_KEY)?.unwrap_or(0))
    }
}

/// [`State::open`] for a test that reopens a store it just dropped: sled 0.34 releases its
/// file lock from a background thread shortly after the drop, so the reopen is retried while
/// it meets that lock (for at most 10 s); any other error fails the test.
#[cfg(test)]
pub(crate) fn reopen_for_test(store: &std::path::Path, journal: &std::path::Path) -> State {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match State::open(store, journal) {
            Ok(state) => return state,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("reopening the state store: {e}"),
        }
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

    /// An issuance of serial `name` to `identity` with enrollment `enrollment_name`.
    pub(crate) fn issue(
        identity: &str,
        name: &str,
        enrollment_name: &str,
    ) -> crate::entry::LogEntry {
        crate::entry::LogEntry::new(crate::entry::EntryBody::Issue {
            time: 1,
            identity: identity.into(),
            binding: crate::entry::Binding {
                serial: serial(name),
                public_key: [7; 32],
                not_before: 0,
                not_after: 10,
                certificate: vec![0x30, 0x00],
            },
            enrollment: enrollment(enrollment_name),
        })
    }
}
