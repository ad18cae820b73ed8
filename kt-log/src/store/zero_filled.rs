//! An append-only data file kept filled with zeros ahead of its data, so that appends overwrite
//! blocks that already exist.
//!
//! **Why.** On ext4 (and most journaling file systems) an `fdatasync` after a write that grows
//! a file or allocates blocks must wait for a journal commit, and a journal commit waits for
//! every other file's freshly allocated data (ordered mode), which under the server's state
//! store's writeback took 50–300 ms. An `fdatasync` over blocks that already exist writes the
//! data and flushes the device cache, nothing more (about 0.2 ms here).
//!
//! **Guarantees.** [`ZeroFilledFile::reserve`] returns only when `0..end` is allocated: written
//! (with data or zeros) and synced, so the file's length never changes under a later append.
//! Growth normally happens ahead of need on a background thread, in steps of half the file's
//! length (64 KiB to 64 MiB) written and synced 1 MiB at a time, so the file holds at most one
//! step of zeros past its data; if an append outruns it, `reserve` grows the file itself, to
//! just what the append needs. The bytes past the data are never
//! read: the commit record says where the data ends.
//!
//! **Limit.** While a step is being written, the file's length changes, so an append's sync
//! of the same file may still wait for a journal commit. At full load that is a fraction of a
//! second every several seconds per file, instead of every append.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Smallest and largest growth step.
const MIN_STEP: u64 = 64 * 1024;
const MAX_STEP: u64 = 64 * 1024 * 1024;
/// Zeros are written and synced in pieces of this size.
const PIECE: usize = 1024 * 1024;

/// The file and what the grower shares with appenders.
struct Shared {
    file: File,
    /// Bytes allocated and synced; only grows, and only under `growing`.
    allocated: AtomicU64,
    /// Held while the file grows, so that appends and the grower never write the same bytes.
    growing: Mutex<()>,
    /// A background growth is requested and not done yet.
    requested: AtomicBool,
}

/// See the module documentation.
pub(super) struct ZeroFilledFile {
    shared: Arc<Shared>,
    /// Requests to the grower thread: grow to at least this many bytes.
    grower: Option<SyncSender<u64>>,
    thread: Option<JoinHandle<()>>,
}

/// How much the grower adds to a file of `allocated` bytes at a time.
fn step(allocated: u64) -> u64 {
    (allocated / 2).clamp(MIN_STEP, MAX_STEP)
}

impl Shared {
    /// Grows the file to at least `to` (no-op if it is there already), one synced piece at a
    /// time: an append's `fdatasync` on the same file, which must also write any zeros not yet
    /// synced, never finds more than one piece of them, and an append that must grow the file
    /// itself waits for one piece at most, not for a whole step.
    fn grow(&self, to: u64) -> std::io::Result<()> {
        let zeros = vec![0u8; PIECE];
        loop {
            let _only_grower = self.growing.lock().unwrap_or_else(|e| e.into_inner());
            let at = self.allocated.load(Ordering::Acquire);
            if at >= to {
                return Ok(());
            }
            let piece = (to - at).min(PIECE as u64) as usize;
            self.file.write_all_at(&zeros[..piece], at)?;
            self.file.sync_data()?;
            self.allocated.store(at + piece as u64, Ordering::Release);
        }
    }
}

impl ZeroFilledFile {
    /// Wraps `file`, whose current length counts as allocated, and starts its grower thread
    /// (named `name`; it ends when this value is dropped).
    pub(super) fn new(file: File, name: &str) -> std::io::Result<ZeroFilledFile> {
        let allocated = file.metadata()?.len();
        let shared = Arc::new(Shared {
            file,
            allocated: AtomicU64::new(allocated),
            growing: Mutex::new(()),
            requested: AtomicBool::new(false),
        });
        let (grower, requests) = mpsc::sync_channel::<u64>(1);
        let background = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("grow {name}"))
            .spawn(move || {
                while let Ok(to) = requests.recv() {
                    // A failure here is not lost: `reserve` grows the file itself when an
                    // append needs the space, and reports the error then.
                    let _retried_by_reserve = background.grow(to);
                    background.requested.store(false, Ordering::Release);
                }
            })?;
        Ok(ZeroFilledFile {
            shared,
            grower: Some(grower),
            thread: Some(thread),
        })
    }

    /// The file, for reads and for writes below [`reserve`](Self::reserve)d ends.
    pub(super) fn file(&self) -> &File {
        &self.shared.file
    }

    /// Makes sure `0..end` is allocated (see the module documentation), growing the file to
    /// `end` now if it must, and asking the grower for the next step once less than half a
    /// step is left.
    pub(super) fn reserve(&self, end: u64) -> std::io::Result<()> {
        if end > self.shared.allocated.load(Ordering::Acquire) {
            self.shared.grow(end)?;
        }
        let allocated = self.shared.allocated.load(Ordering::Acquire);
        let step = step(allocated);
        if allocated.saturating_sub(end) < step / 2
            && !self.shared.requested.swap(true, Ordering::AcqRel)
        {
            let sent = self
                .grower
                .as_ref()
                .map(|grower| grower.try_send(allocated + step));
            if !matches!(sent, Some(Ok(()))) {
                self.shared.requested.store(false, Ordering::Release);
            }
        }
        Ok(())
    }
}

impl Drop for ZeroFilledFile {
    /// Waits for a growth in progress, so that none of its writes outlives it (a store
    /// reopened in the same process must not see zeros land after its own data).
    fn drop(&mut self) {
        self.grower = None;
        if let Some(thread) = self.thread.take() {
            let _finished = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_ahead_of_the_data_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        let grown = ZeroFilledFile::new(file, "test").unwrap();
        let mut end = 0u64;
        for round in 0..200u64 {
            let data = vec![(round % 251) as u8 + 1; 3000];
            grown.reserve(end + data.len() as u64).unwrap();
            let before = std::fs::metadata(&path).unwrap().len();
            assert!(before >= end + data.len() as u64);
            grown.file().write_all_at(&data, end).unwrap();
            end += data.len() as u64;
        }
        drop(grown);
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() as u64 >= end);
        for round in 0..200usize {
            let chunk = &bytes[round * 3000..(round + 1) * 3000];
            assert!(chunk.iter().all(|&b| b == (round % 251) as u8 + 1));
        }
        // Past the data: only zeros, and at most one step of them beyond what was asked.
        assert!(bytes[end as usize..].iter().all(|&b| b == 0));
        assert!((bytes.len() as u64) < end + 2 * (end / 2).clamp(MIN_STEP, MAX_STEP) + MIN_STEP);
    }

    #[test]
    fn steps_scale_with_the_file() {
        assert_eq!(step(0), MIN_STEP);
        assert_eq!(step(1 << 20), MIN_STEP.max(1 << 19));
        assert_eq!(step(1 << 40), MAX_STEP);
    }
}
