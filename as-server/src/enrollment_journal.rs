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
    /// The intact records, oldest first: every one, or (see `complete`) those from the
    /// position the opener knew.
    pub records: Vec<JournalRecord>,
    /// Where each record ends in the file (the journal's length just after it).
    pub ends: Vec<u64>,
    /// Whether `records` are all the journal's records, rather than those from a known
    /// position ([`EnrollmentJournal::open_from`]).
    pub complete: bool,
    /// Bytes of a torn tail that were cut off (0 after a clean stop).
    pub torn_bytes: u64,
}

/// A place in one journal: its generation, its length then, and where its last record then
/// started (`end` itself if it had none). What the state store records of the journal, so
/// that a start reads only what follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The journal's generation.
    pub generation: [u8; 16],
    /// Its length.
    pub end: u64,
    /// Where its last record starts.
    pub last_start: u64,
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
    /// Where the last record starts (`len` if there is none).
    last_start: u64,
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

/// The intact records of a journal file from `from` (a record boundary) to `file_len`.
struct Suffix {
    from: u64,
    records: Vec<JournalRecord>,
    /// Absolute ends.
    ends: Vec<u64>,
    /// The bytes after the intact records (a torn tail).
    torn: Vec<u8>,
}

fn read_from(file: &File, from: u64, file_len: u64) -> io::Result<Suffix> {
    let mut bytes = vec![0u8; (file_len - from) as usize];
    file.read_exact_at(&mut bytes, from)?;
    let (records, ends, intact) = parse(&bytes);
    Ok(Suffix {
        from,
        records,
        ends: ends.into_iter().map(|end| end + from).collect(),
        torn: bytes.split_off(intact),
    })
}

/// The opened journal from what `read` found: a torn tail is kept aside and cut off.
fn finish(
    path: &Path,
    file: File,
    generation: [u8; 16],
    read: Suffix,
    complete: bool,
) -> io::Result<Opened> {
    let len = read.ends.last().copied().unwrap_or(read.from);
    let last_start = match read.ends.len() {
        0 => len,
        1 => read.from,
        n => read.ends[n - 2],
    };
    let torn_bytes = read.torn.len() as u64;
    if torn_bytes > 0 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let kept = path.with_extension(format!("torn-{nanos}"));
        write_atomic(&kept, &read.torn, true)?;
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
                last_start,
                cut_pending: false,
            }),
        },
        records: read.records,
        ends: read.ends,
        complete,
        torn_bytes,
    })
}

impl EnrollmentJournal {
    /// Creates the journal at `path` holding `records`, atomically (no file or a whole one).
    pub fn create(path: &Path, records: &[JournalRecord]) -> io::Result<()> {
        create_with(path, records)
    }

    /// Opens the journal at `path`, creating it if absent, and reads every intact record.
    pub fn open(path: &Path) -> io::Result<Opened> {
        EnrollmentJournal::open_from(path, None)
    }

    /// Opens the journal at `path`, creating it if absent, and reads its intact records from
    /// `known` on: the last record there and every later one, so that a start does not read
    /// records its store holds already. Every record is read instead when `known` is `None`,
    /// of another generation, or not a record boundary of this journal whose last record ends
    /// at its `end`: a wrong position costs a full read, and never cuts off a record.
    pub fn open_from(path: &Path, known: Option<Position>) -> io::Result<Opened> {
        if !path.try_exists()? {
            create_with(path, &[])?;
        }
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let file_len = file.metadata()?.len();
        let mut header = [0u8; HEADER_LEN];
        if file_len < HEADER_LEN as u64
            || file.read_exact_at(&mut header, 0).is_err()
            || header[..MAGIC.len()] != MAGIC[..]
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not an enrollment journal (wrong header); it is kept as it is",
                    path.display()
                ),
            ));
        }
        let mut generation = [0u8; 16];
        generation.copy_from_slice(&header[MAGIC.len()..]);
        let resumed = known.filter(|k| {
            k.generation == generation
                && HEADER_LEN as u64 <= k.last_start
                && k.last_start <= k.end
                && k.end <= file_len
        });
        if let Some(known) = resumed {
            let read = read_from(&file, known.last_start, file_len)?;
            let stored_last_whole = match read.ends.first() {
                Some(&first_end) => known.last_start < known.end && first_end == known.end,
                None => known.last_start == known.end,
            };
            if stored_last_whole {
                return finish(path, file, generation, read, false);
            }
        }
        let read = read_from(&file, HEADER_LEN as u64, file_len)?;
        finish(path, file, generation, read, true)
    }

    /// Where the journal stands: its generation, length and last record's start.
    pub fn position(&self) -> Position {
        let (end, last_start) = self.file.lock().map_or((0, 0), |w| (w.len, w.last_start));
        Position {
            generation: self.generation(),
            end,
            last_start,
        }
    }

    /// This journal's generation (see the module doc).
    pub fn generation(&self) -> [u8; 16] {
        self.generation.lock().map_or([0; 16], |g| *g)
    }

    /// Appends `records` and syncs them to the device before returning (see the module doc).
    /// Returns the journal's position after them.
    pub fn append(&self, records: &[JournalRecord]) -> io::Result<Position> {
        let mut bytes = Vec::with_capacity(records.len() * 160);
        let mut last_len = 0;
        for record in records {
            let framed = frame(record);
            last_len = framed.len();
            bytes.extend_from_slice(&framed);
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
                if !records.is_empty() {
                    writer.last_start = writer.len - last_len as u64;
                }
                let (end, last_start) = (writer.len, writer.last_start);
                drop(writer);
                Ok(Position {
                    generation: self.generation(),
                    end,
                    last_start,
                })
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
    /// with a new generation. For the start, before any append. Returns the new position.
    pub fn rewrite(&self, keep: &[JournalRecord]) -> io::Result<Position> {
        let mut writer = self
            .file
            .lock()
            .map_err(|_| io::Error::other("enrollment journal lock poisoned"))?;
        create_with(&self.path, keep)?;
        let mut file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        let mut header = [0u8; HEADER_LEN];
        file.read_exact(&mut header)?;
        let len = file.metadata()?.len();
        let last_start = keep
            .last()
            .map_or(len, |last| len - frame(last).len() as u64);
        *writer = Writer {
            file,
            len,
            last_start,
            cut_pending: false,
        };
        if let Ok(mut generation) = self.generation.lock() {
            generation.copy_from_slice(&header[MAGIC.len()..]);
        }
        drop(writer);
        Ok(self.position())
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
    fn a_start_from_a_known_position_reads_its_last_record_and_the_later_ones_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrollments");
        let opened = EnrollmentJournal::open(&path).unwrap();
        let empty = opened.journal.position();
        assert_eq!(empty.last_start, empty.end);
        opened.journal.append(&[record(1), record(2)]).unwrap();
        let known = opened.journal.append(&[record(3), record(4)]).unwrap();
        opened.journal.append(&[record(5)]).unwrap();
        drop(opened);

        let opened = EnrollmentJournal::open_from(&path, Some(known)).unwrap();
        assert!(!opened.complete);
        assert_eq!(opened.records, [record(4), record(5)]);
        assert_eq!(opened.ends[0], known.end);
        assert_eq!(opened.ends.len(), 2);
        // Appends go on after them, and a full read finds every record.
        opened.journal.append(&[record(6)]).unwrap();
        drop(opened);
        let all = EnrollmentJournal::open(&path).unwrap().records;
        assert_eq!(all, (1..=6).map(record).collect::<Vec<_>>());

        // The journal's own position reads its last record only.
        let opened = EnrollmentJournal::open_from(&path, Some(all_position(&path))).unwrap();
        assert!(!opened.complete);
        assert_eq!(opened.records, [record(6)]);

        // A position that is no record boundary, past the end, or of another generation
        // costs a full read and cuts nothing off.
        for wrong in [
            Position {
                last_start: known.last_start + 1,
                ..known
            },
            Position {
                end: known.end - 1,
                ..known
            },
            Position {
                end: 1 << 40,
                ..known
            },
            Position {
                generation: [9; 16],
                ..known
            },
            Position {
                last_start: known.end,
                ..known
            },
        ] {
            let opened = EnrollmentJournal::open_from(&path, Some(wrong)).unwrap();
            assert!(opened.complete, "{wrong:?}");
            assert_eq!(opened.records.len(), 6, "{wrong:?}");
            assert_eq!(opened.torn_bytes, 0, "{wrong:?}");
        }
    }

    /// The position of the journal at `path` as it is.
    fn all_position(path: &Path) -> Position {
        EnrollmentJournal::open(path).unwrap().journal.position()
    }

    #[test]
    fn records_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrollments");
        let opened = EnrollmentJournal::open(&path).unwrap();
        assert!(opened.records.is_empty());
        let generation = opened.journal.generation();
        opened.journal.append(&[record(1), record(2)]).unwrap();
        let position = opened.journal.append(&[record(3)]).unwrap();
        drop(opened);
        let opened = EnrollmentJournal::open(&path).unwrap();
        assert_eq!(opened.records, [record(1), record(2), record(3)]);
        assert!(opened.complete);
        assert_eq!(opened.ends.last(), Some(&position.end));
        assert_eq!(position.end, std::fs::metadata(&path).unwrap().len());
        assert_eq!(position.last_start, opened.ends[1]);
        assert_eq!(opened.journal.position(), position);
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
