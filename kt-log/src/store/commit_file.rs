//! The file store's commit record: the committed size and the latest checkpoint note, in a
//! small file of two fixed slots written in turn with `pwrite` + `fdatasync`.
//!
//! **Guarantees.** [`CommitFile::write`] returns only after the record is on stable storage
//! (including the device's cache). The file never changes length after it is created, so that
//! `fdatasync` writes one data block and a cache flush, and never waits for a file-system
//! journal commit (which, under a heavy writer elsewhere on the disk, can take hundreds of
//! milliseconds). Each write goes to the slot *not* holding the latest record, so a write torn
//! by a crash or power loss leaves the previous record intact; each slot carries a SHA-256 of
//! its contents, and [`CommitFile::open`] takes the valid slot with the highest sequence number.
//!
//! Slot layout (4,096 bytes, integers little-endian): magic `ktlog-c1` (8 bytes) ‖ sequence
//! number (u64) ‖ committed size (u64) ‖ note length (u32; `u32::MAX` when there is no
//! checkpoint) ‖ note ‖ SHA-256 of everything before it ‖ zero padding.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::StoreError;

/// Bytes of one slot.
const SLOT_LEN: usize = 4096;
const MAGIC: &[u8; 8] = b"ktlog-c1";
const HEADER_LEN: usize = 8 + 8 + 8 + 4;
const NO_NOTE: u32 = u32::MAX;
/// Largest checkpoint note a slot holds (a checkpoint with a dozen cosignatures is ~1.5 KB).
pub(super) const MAX_NOTE_LEN: usize = SLOT_LEN - HEADER_LEN - 32;
/// File name of the commit record in the store's folder.
pub(super) const FILE_NAME: &str = "commit.bin";

/// What the commit record says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct CommitRecord {
    /// Entries durably committed.
    pub(super) size: u64,
    /// The latest checkpoint note, if one was stored.
    pub(super) checkpoint: Option<Vec<u8>>,
}

/// The open commit file and the sequence number of its latest record.
pub(super) struct CommitFile {
    file: File,
    sequence: u64,
}

fn encode(sequence: u64, record: &CommitRecord) -> Result<Vec<u8>, StoreError> {
    let mut slot = Vec::with_capacity(SLOT_LEN);
    slot.extend_from_slice(MAGIC);
    slot.extend_from_slice(&sequence.to_le_bytes());
    slot.extend_from_slice(&record.size.to_le_bytes());
    match &record.checkpoint {
        None => slot.extend_from_slice(&NO_NOTE.to_le_bytes()),
        Some(note) => {
            if note.len() > MAX_NOTE_LEN {
                return Err(StoreError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "checkpoint note of {} bytes is larger than {MAX_NOTE_LEN}",
                        note.len()
                    ),
                )));
            }
            slot.extend_from_slice(&(note.len() as u32).to_le_bytes());
            slot.extend_from_slice(note);
        }
    }
    let digest = Sha256::digest(&slot);
    slot.extend_from_slice(&digest);
    slot.resize(SLOT_LEN, 0);
    Ok(slot)
}

/// The slot's (sequence, record), or `None` if it is empty, torn or not a slot.
fn decode(slot: &[u8]) -> Option<(u64, CommitRecord)> {
    let field = |at: usize| -> Option<[u8; 8]> { slot.get(at..at + 8)?.try_into().ok() };
    if slot.get(..8)? != MAGIC {
        return None;
    }
    let sequence = u64::from_le_bytes(field(8)?);
    let size = u64::from_le_bytes(field(16)?);
    let note_len = u32::from_le_bytes(slot.get(24..28)?.try_into().ok()?);
    let (checkpoint, body_end) = if note_len == NO_NOTE {
        (None, HEADER_LEN)
    } else {
        let end = HEADER_LEN.checked_add(note_len as usize)?;
        if note_len as usize > MAX_NOTE_LEN {
            return None;
        }
        (Some(slot.get(HEADER_LEN..end)?.to_vec()), end)
    };
    let digest = slot.get(body_end..body_end + 32)?;
    if Sha256::digest(&slot[..body_end]).as_slice() != digest {
        return None;
    }
    Some((sequence, CommitRecord { size, checkpoint }))
}

impl CommitFile {
    /// Opens the commit file in `dir`, or creates it holding `initial()` (asked only when the
    /// file does not exist). Returns the file and its latest record. Fails with
    /// [`StoreError::Corrupt`] if neither slot holds a valid record.
    pub(super) fn open(
        dir: &Path,
        initial: impl FnOnce() -> Result<CommitRecord, StoreError>,
    ) -> Result<(CommitFile, CommitRecord), StoreError> {
        let path = dir.join(FILE_NAME);
        if !path.try_exists()? {
            create(dir, &initial()?)?;
        }
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let mut bytes = vec![0u8; 2 * SLOT_LEN];
        file.read_exact_at(&mut bytes, 0).map_err(|_| {
            StoreError::Corrupt(format!("{FILE_NAME} is shorter than its two slots"))
        })?;
        let latest = bytes
            .chunks_exact(SLOT_LEN)
            .filter_map(decode)
            .max_by_key(|(sequence, _)| *sequence)
            .ok_or_else(|| StoreError::Corrupt(format!("{FILE_NAME} holds no valid record")))?;
        let (sequence, record) = latest;
        // The latest record may be in the page cache only (its writer died before its sync).
        // Make it durable before the next write overwrites the other slot, the last record
        // known to be on disk.
        file.sync_data()?;
        Ok((CommitFile { file, sequence }, record))
    }

    /// Durably replaces the record (see the module documentation).
    pub(super) fn write(&mut self, record: &CommitRecord) -> Result<(), StoreError> {
        let sequence = self.sequence + 1;
        let slot = encode(sequence, record)?;
        self.file
            .write_all_at(&slot, (sequence % 2) * SLOT_LEN as u64)?;
        self.file.sync_data()?;
        self.sequence = sequence;
        Ok(())
    }
}

#[cfg(test)]
impl CommitFile {
    /// Puts `file` in place of the commit file's handle and returns the one it held, so that
    /// a test can make writes of the record fail.
    pub(super) fn swap_handle(&mut self, file: File) -> File {
        std::mem::replace(&mut self.file, file)
    }
}

/// Creates the file with `record` in slot 1 and an empty slot 0, through a temporary file
/// renamed into place, so that a crash leaves either no file or a complete one.
fn create(dir: &Path, record: &CommitRecord) -> Result<(), StoreError> {
    let mut bytes = vec![0u8; SLOT_LEN];
    bytes.extend_from_slice(&encode(1, record)?);
    let temporary = dir.join(format!("{FILE_NAME}.new"));
    let mut file = File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, dir.join(FILE_NAME))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(size: u64, note: Option<&[u8]>) -> CommitRecord {
        CommitRecord {
            size,
            checkpoint: note.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn the_latest_record_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (mut file, first) = CommitFile::open(dir.path(), || Ok(record(7, None))).unwrap();
        assert_eq!(first, record(7, None));
        file.write(&record(9, Some(b"note"))).unwrap();
        file.write(&record(12, Some(b"other note"))).unwrap();
        drop(file);
        let (_, latest) = CommitFile::open(dir.path(), || panic!("exists")).unwrap();
        assert_eq!(latest, record(12, Some(b"other note")));
        assert_eq!(
            std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len(),
            2 * SLOT_LEN as u64
        );
    }

    #[test]
    fn a_torn_write_falls_back_to_the_previous_record() {
        let dir = tempfile::tempdir().unwrap();
        let (mut file, _) = CommitFile::open(dir.path(), || Ok(record(1, None))).unwrap();
        file.write(&record(2, Some(b"two"))).unwrap();
        file.write(&record(3, Some(b"three"))).unwrap();
        // Record 3 (sequence 3) sits in slot 1; tear one byte of its note.
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[SLOT_LEN + HEADER_LEN + 1] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (mut file, latest) = CommitFile::open(dir.path(), || panic!("exists")).unwrap();
        assert_eq!(latest, record(2, Some(b"two")));
        // The next write goes to the torn slot, never over the surviving record.
        file.write(&record(3, Some(b"again"))).unwrap();
        let (_, latest) = CommitFile::open(dir.path(), || panic!("exists")).unwrap();
        assert_eq!(latest, record(3, Some(b"again")));
    }

    #[test]
    fn no_valid_slot_is_corrupt_and_big_notes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut file, _) = CommitFile::open(dir.path(), || Ok(record(0, None))).unwrap();
        assert!(matches!(
            file.write(&record(1, Some(&vec![b'x'; MAX_NOTE_LEN + 1]))),
            Err(StoreError::Io(_))
        ));
        file.write(&record(1, Some(&vec![b'x'; MAX_NOTE_LEN])))
            .unwrap();
        drop(file);
        std::fs::write(dir.path().join(FILE_NAME), vec![0xa5; 2 * SLOT_LEN]).unwrap();
        assert!(matches!(
            CommitFile::open(dir.path(), || panic!("exists")),
            Err(StoreError::Corrupt(_))
        ));
        std::fs::write(dir.path().join(FILE_NAME), [0u8; 100]).unwrap();
        assert!(matches!(
            CommitFile::open(dir.path(), || panic!("exists")),
            Err(StoreError::Corrupt(_))
        ));
    }
}
