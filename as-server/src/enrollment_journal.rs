//! The enrollment journal: the one durable record of what the log deliberately does not hold.
//!
//! Enrollments are not logged (their tokens are secrets, and a pending enrollment is not
//! public), so without this file a lost state store would void every token not yet used. The
//! journal is append-only and holds one checksummed record per enrollment (hashed token,
//! identity, expiry, the identity's epoch when enrolled). The state store (sled) is a cache
//! rebuilt from the log plus this journal ([`crate::recovery`]).
//!
//! Guarantees:
//! - [`EnrollmentJournal::append`] returns only after the records and the file's new length
//!   are on the device (`fdatasync`); the folder that names the file was synced when it was
//!   created. A caller answers an enrollment only after it returns.
//! - A record torn by a crash (short, or failing its SHA-256 checksum) is detected at open and
//!   never trusted: it and everything after it (all written after the last acknowledged
//!   append, since appends are serialised and each is synced before the next begins) are cut
//!   off, copied first to a `.torn-<time>` file beside the journal for inspection.
//! - A failed write or sync is cut off again before the error is returned, so a later record
//!   never follows a partial one; if even that fails (a read-only disk), the next append cuts
//!   it first and fails if it still cannot, so the journal takes appends again by itself once
//!   the disk does (and a restart cuts it at open).
//! - A file that does not start with the journal's header is refused, never overwritten: that
//!   is not a crash but a wrong or damaged file, and an operator must look.
//!
//! Layout: the 8-byte magic `KTASENR1` and a random 16-byte generation (new at each creation
//! or rewrite, so that a position in one journal is never taken for a position in another),
//! then records `[u32 length][8-byte checksum][payload]`, big-endian, where the payload is the
//! record's JSON and the checksum the first 8 bytes of SHA-256 over a domain label, the length
//! and the payload.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret_file::write_atomic;

const MAGIC: &[u8; 8] = b"KTASENR1";
/// Magic and generation.
const HEADER_LEN: usize = 24;
const CHECKSUM_LABEL: &[u8] = b"kt-as enrollment journal record v1\0";
/// Longest payload a record may have: an identity is at most 254 bytes, so a longer length
/// field can only be a torn one.
const MAX_PAYLOAD: usize = 4096;

/// One enrollment, as journaled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalRecord {
    /// The enrollment id (lowercase hex SHA-256 of the token), as the state keys it.
    pub id: String,
    /// For whom.
    pub identity: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// The identity's epoch when it was made (a revocation since voids it).
    pub epoch: u64,
}

/// What opening the journal found.
pub struct Opened {
    /// The journal, ready for appends.
    pub journal: EnrollmentJournal,
    /// Every intact record, oldest first.
    pub records: Vec<JournalRecord>,
    /// Where each record ends in the file (the journal's length just after it).
    pub ends: Vec<u64>,
    /// Bytes of a torn tail that were cut off (0 after a clean stop).
    pub torn_bytes: u64,
}

/// The append-only enrollment journal.
pub struct EnrollmentJournal {
    path: PathBuf,
    generation: Mutex<[u8; 16]>,
    file: Mutex<Writer>,
}

struct Writer {
    file: File,
    /// Length of the intact records: where the next append goes.
    len: u64,
    /// Set when a failed append could not be cut off: the next append cuts it first.
    cut_pending: bool,
}

fn frame(record: &JournalRecord) -> Vec<u8> {
    // A record of strings and integers always serializes.
    let payload = serde_json::to_vec(record).unwrap_or_default();
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = Vec::with_capacity(12 + payload.len());
    out.extend_from_slice(&len);
    out.extend_from_slice(&checksum(&len, &payload));
    out.extend_from_slice(&payload);
    out
}

fn checksum(len: &[u8; 4], payload: &[u8]) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update(CHECKSUM_LABEL)
        .chain_update(len)
        .chain_update(payload)
        .finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Parses intact records from `bytes` (after the header); returns them, where each ends
/// (counted from the start of `bytes`) and the length of the intact prefix.
fn parse(bytes: &[u8]) -> (Vec<JournalRecord>, Vec<u64>, usize) {
    let mut records = Vec::new();
    let mut ends = Vec::new();
    let mut at = 0;
    while let Some(head) = bytes.get(at..at + 12) {
        let len: [u8; 4] = [head[0], head[1], head[2], head[3]];
        let size = u32::from_be_bytes(len) as usize;
        if size > MAX_PAYLOAD {
            break;
        }
        let Some(payload) = bytes.get(at + 12..at + 12 + size) else {
            break;
        };
        if checksum(&len, payload) != head[4..12] {
            break;
        }
        let Ok(record) = serde_json::from_slice::<JournalRecord>(payload) else {
            break;
        };
        records.push(record);
        at += 12 + size;
        ends.push(at as u64);
    }
    (records, ends, at)
}

/// Creates `path` holding `records` after a new header, atomically and with mode 0600
/// ([`write_atomic`]), so a crash leaves no file or a whole one.
fn create_with(path: &Path, records: &[JournalRecord]) -> io::Result<()> {
    let mut generation = [0u8; 16];
    getrandom::fill(&mut generation).map_err(|e| io::Error::other(e.to_string()))?;
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&generation);
    for record in records {
        bytes.extend_from_slice(&frame(record));
    }
    write_atomic(path, &bytes, true)
}

impl EnrollmentJournal {
    /// Creates the journal at `path` holding `records`, atomically (no file or a whole one).
    pub fn create(path: &Path, records: &[JournalRecord]) -> io::Result<()> {
        create_with(path, records)
    }

    /// Opens the journal at `path`, creating it if absent, and reads every intact record.
    pub fn open(path: &Path) -> io::Result<Opened> {
        if !path.try_exists()? {
            create_with(path, &[])?;
        }
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        if bytes.len() < HEADER_LEN || bytes.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not an enrollment journal (wrong header); it is kept as it is",
                    path.display()
                ),
            ));
        }
        let mut generation = [0u8; 16];
        generation.copy_from_slice(&bytes[MAGIC.len()..HEADER_LEN]);
        let (records, mut ends, intact) = parse(&bytes[HEADER_LEN..]);
        for end in &mut ends {
            *end += HEADER_LEN as u64;
        }
        let len = (HEADER_LEN + intact) as u64;
        let torn_bytes = bytes.len() as u64 - len;
        if torn_bytes > 0 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let kept = path.with_extension(format!("torn-{nanos}"));
            write_atomic(&kept, &bytes[len as usize..], true)?;
            file.set_len(len)?;
            file.sync_all()?;
        }
        Ok(Opened {
            journal: EnrollmentJournal {
                path: path.to_path_buf(),
                generation: Mutex::new(generation),
                file: Mutex::new(Writer {
                    file,
                    len,
                    cut_pending: false,
                }),
            },
            records,
            ends,
            torn_bytes,
        })
    }

    /// The journal's length: where the next record will start.
    pub fn end(&self) -> u64 {
        self.file.lock().map_or(0, |w| w.len)
    }

    /// This journal's generation (see the module doc).
    pub fn generation(&self) -> [u8; 16] {
        self.generation.lock().map_or([0; 16], |g| *g)
    }

    /// Appends `records` and syncs them to the device before returning (see the module doc).
    /// Returns the journal's length after them.
    pub fn append(&self, records: &[JournalRecord]) -> io::Result<u64> {
        let mut bytes = Vec::with_capacity(records.len() * 160);
        for record in records {
            bytes.extend_from_slice(&frame(record));
        }
        let mut writer = self
            .file
            .lock()
            .map_err(|_| io::Error::other("enrollment journal lock poisoned"))?;
        let at = writer.len;
        if writer.cut_pending {
            writer
                .file
                .set_len(at)
                .and_then(|()| writer.file.sync_data())?;
            writer.cut_pending = false;
        }
        let written = writer
            .file
            .write_all_at(&bytes, at)
            .and_then(|()| writer.file.sync_data());
        match written {
            Ok(()) => {
                writer.len = at + bytes.len() as u64;
                Ok(writer.len)
            }
            Err(error) => {
                writer.cut_pending = writer
                    .file
                    .set_len(at)
                    .and_then(|()| writer.file.sync_data())
                    .is_err();
                Err(error)
            }
        }
    }

    /// Replaces the journal by one holding only `keep` (those records still useful), atomically,
    /// with a new generation. For the start, before any append. Returns the new length.
    pub fn rewrite(&self, keep: &[JournalRecord]) -> io::Result<u64> {
        let mut writer = self
            .file
            .lock()
            .map_err(|_| io::Error::other("enrollment journal lock poisoned"))?;
        create_with(&self.path, keep)?;
        let mut file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        let mut header = [0u8; HEADER_LEN];
        file.read_exact(&mut header)?;
        let len = file.metadata()?.len();
        *writer = Writer {
            file,
            len,
            cut_pending: false,
        };
        if let Ok(mut generation) = self.generation.lock() {
            generation.copy_from_slice(&header[MAGIC.len()..]);
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> JournalRecord {
        JournalRecord {
            id: format!("{n:064x}"),
            identity: format!("user{n}@example.com"),
            expires_at: 1_000 + n,
            epoch: n % 3,
        }
    }

    #[test]
    fn records_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrollments");
        let opened = EnrollmentJournal::open(&path).unwrap();
        assert!(opened.records.is_empty());
        let generation = opened.journal.generation();
        opened.journal.append(&[record(1), record(2)]).unwrap();
        let end = opened.journal.append(&[record(3)]).unwrap();
        drop(opened);
        let opened = EnrollmentJournal::open(&path).unwrap();
        assert_eq!(opened.records, [record(1), record(2), record(3)]);
        assert_eq!(opened.ends.last(), Some(&end));
        assert_eq!(end, std::fs::metadata(&path).unwrap().len());
        assert_eq!(opened.journal.generation(), generation);
        assert_eq!(opened.torn_bytes, 0);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_torn_tail_is_cut_off_kept_aside_and_later_appends_follow_the_intact_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrollments");
        let opened = EnrollmentJournal::open(&path).unwrap();
        opened.journal.append(&[record(1), record(2)]).unwrap();
        drop(opened);
        let whole = std::fs::read(&path).unwrap();
        // Every way a crash can cut or damage the last record: each length, and a flipped bit.
        let last = frame(&record(2)).len();
        for cut in 1..last {
            std::fs::write(&path, &whole[..whole.len() - cut]).unwrap();
            let opened = EnrollmentJournal::open(&path).unwrap();
            assert_eq!(opened.records, [record(1)], "cut {cut}");
            assert_eq!(opened.torn_bytes, (last - cut) as u64);
        }
        let mut flipped = whole.clone();
        let at = whole.len() - 3;
        flipped[at] ^= 0x20;
        std::fs::write(&path, &flipped).unwrap();
        let opened = EnrollmentJournal::open(&path).unwrap();
        assert_eq!(opened.records, [record(1)]);
        opened.journal.append(&[record(5)]).unwrap();
        drop(opened);
        let opened = EnrollmentJournal::open(&path).unwrap();
        assert_eq!(opened.records, [record(1), record(5)]);
        assert_eq!(opened.torn_bytes, 0);
        let kept = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("torn-")
            })
            .count();
        assert_eq!(kept, last);
    }

    #[test]
    fn an_append_whose_cut_failed_is_cut_before_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrollments");
        let opened = EnrollmentJournal::open(&path).unwrap();
        opened.journal.append(&[record(1)]).unwrap();
        // A handle that can neither write nor cut: the disk turned read-only.
        let writable = {
            let mut writer = opened.journal.file.lock().unwrap();
            let read_only = OpenOptions::new().read(true).open(&path).unwrap();
            std::mem::replace(&mut writer.file, read_only)
        };
        assert!(opened.journal.append(&[record(2)]).is_err());
        assert!(opened.journal.file.lock().unwrap().cut_pending);
        assert!(opened.journal.append(&[record(3)]).is_err());
        // The disk is back: the journal takes appends again, after the intact records.
        opened.journal.file.lock().unwrap().file = writable;
        // Garbage where the failed append went, as if part of it had reached the file.
        let end = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all_at(b"torn", end)
            .unwrap();
        opened.journal.append(&[record(4)]).unwrap();
        drop(opened);
        let opened = EnrollmentJournal::open(&path).unwrap();
        assert_eq!(opened.records, [record(1), record(4)]);
        assert_eq!(opened.torn_bytes, 0);
    }

    #[test]
    fn a_file_that_is_not_a_journal_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrollments");
        std::fs::write(&path, b"something else entirely").unwrap();
        assert!(EnrollmentJournal::open(&path).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"something else entirely");
    }

    #[test]
    fn a_rewrite_keeps_only_what_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrollments");
        let opened = EnrollmentJournal::open(&path).unwrap();
        opened
            .journal
            .append(&[record(1), record(2), record(3)])
            .unwrap();
        let generation = opened.journal.generation();
        opened.journal.rewrite(&[record(2)]).unwrap();
        assert_ne!(opened.journal.generation(), generation);
        let generation = opened.journal.generation();
        opened.journal.append(&[record(4)]).unwrap();
        drop(opened);
        let opened = EnrollmentJournal::open(&path).unwrap();
        assert_eq!(opened.records, [record(2), record(4)]);
        assert_eq!(opened.journal.generation(), generation);
    }
}
