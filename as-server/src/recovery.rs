//! Opening the AS state so that the server starts by itself after any crash.
//!
//! Guarantee: the state store is only a cache of the log and the enrollment journal (see
//! [`crate::state`]), so a store that cannot be opened, fails while catching up, or disagrees
//! with the log is never trusted and never a reason to stay down: it is moved aside (kept
//! for inspection as `state.broken-<time>`, logged as an error) and rebuilt from the log and
//! the journal, and every enrollment token not yet used keeps working. Only a fault of the
//! durable record itself (the log's entries, the journal's header) stops the start, because
//! rebuilding cannot repair it and an operator must look.
//!
//! [`reopen_state`] does the same while the server runs, after a storage fault
//! ([`crate::resync`]), with one difference: an I/O error (the disk still full or read-only)
//! leaves the store where it is and is reported, since the store is not at fault and will be
//! needed once the disk takes writes again.

use std::path::{Path, PathBuf};

use crate::as_log::AsLog;
use crate::directory::keys::DirectoryKeys;
use crate::directory::open_change;
use crate::entry::EntryBody;
use crate::state::{CredentialStatus, IdentityStatus, State, StateError};

/// How many moved-aside stores are kept.
pub const KEPT_BROKEN: usize = 3;

/// Why one attempt to open the state failed.
enum Failure {
    /// The store is damaged or disagrees with the log: rebuild it.
    Store(String),
    /// sled (`journal` false) or the journal could not read or write its file: at start,
    /// treated as a damaged store (sled) or a fault of the journal; while running, the disk
    /// is not back yet.
    Io { error: String, journal: bool },
    /// The log or the journal is at fault: rebuilding cannot help.
    Fatal(String),
}

impl From<StateError> for Failure {
    fn from(error: StateError) -> Failure {
        let io = |journal| Failure::Io {
            error: error.to_string(),
            journal,
        };
        match &error {
            StateError::Journal(e) if e.kind() != std::io::ErrorKind::InvalidData => io(true),
            StateError::Sled(sled::Error::Io(_)) | StateError::Unavailable => io(false),
            StateError::Journal(_) | StateError::BadEntry { .. } => {
                Failure::Fatal(error.to_string())
            }
            _ => Failure::Store(error.to_string()),
        }
    }
}

/// Why [`reopen_state`] gave no state.
#[derive(Debug)]
pub enum ReopenError {
    /// An I/O error of sled or of the journal: the store is left as it is; try again later.
    Unavailable(String),
    /// The log or the journal is damaged, or rebuilding the store failed: an operator must
    /// look, and the state stays unavailable until the store can be made level.
    Failed(String),
}

impl std::fmt::Display for ReopenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReopenError::Unavailable(e) | ReopenError::Failed(e) => f.write_str(e),
        }
    }
}

/// Opens the state in `state_dir` again while the server runs (the store it replaces must be
/// closed), level with `log`: like [`open_state`], except that an I/O error leaves the store
/// where it is ([`ReopenError::Unavailable`]) instead of moving it aside.
pub fn reopen_state(
    state_dir: &Path,
    journal: &Path,
    log: &AsLog,
    keys: &DirectoryKeys,
) -> Result<(State, u64), ReopenError> {
    match attempt(state_dir, journal, log, keys) {
        Ok(opened) => Ok(opened),
        Err(Failure::Io { error, .. }) => Err(ReopenError::Unavailable(error)),
        Err(Failure::Fatal(e)) => Err(ReopenError::Failed(e)),
        Err(Failure::Store(problem)) => {
            rebuild(state_dir, journal, log, keys, problem).map_err(ReopenError::Failed)
        }
    }
}

/// Opens the state in `state_dir` (journal at `journal`) level with `log`, rebuilding it if it
/// must (see the module doc). Returns the state and how many log entries were replayed.
pub fn open_state(
    state_dir: &Path,
    journal: &Path,
    log: &AsLog,
    keys: &DirectoryKeys,
) -> Result<(State, u64), String> {
    match attempt(state_dir, journal, log, keys) {
        Ok(opened) => Ok(opened),
        Err(
            Failure::Fatal(error)
            | Failure::Io {
                error,
                journal: true,
            },
        ) => Err(error),
        Err(Failure::Store(problem) | Failure::Io { error: problem, .. }) => {
            rebuild(state_dir, journal, log, keys, problem)
        }
    }
}

/// Moves the store aside (it is unusable because of `problem`) and builds it again from the
/// log and the journal.
fn rebuild(
    state_dir: &Path,
    journal: &Path,
    log: &AsLog,
    keys: &DirectoryKeys,
    problem: String,
) -> Result<(State, u64), String> {
    let kept = move_aside(state_dir).map_err(|e| {
        format!("the state store is unusable ({problem}), and moving it aside failed: {e}")
    })?;
    tracing::error!(
        problem = %problem,
        kept = %kept.display(),
        "the state store was unusable: moved aside, rebuilding it from the log and the \
         enrollment journal"
    );
    attempt(state_dir, journal, log, keys).map_err(|failure| match failure {
        Failure::Store(e) | Failure::Io { error: e, .. } | Failure::Fatal(e) => {
            format!("rebuilding the state from the log failed: {e}")
        }
    })
}

fn attempt(
    state_dir: &Path,
    journal: &Path,
    log: &AsLog,
    keys: &DirectoryKeys,
) -> Result<(State, u64), Failure> {
    let state = State::open(state_dir, journal)?;
    agrees_with_log(&state, log, keys)?;
    let replayed = catch_up(&state, log, keys)?;
    Ok((state, replayed))
}

/// Re-applies the log's entries `state` has not applied ([`State::catch_up`]), durably;
/// returns how many.
pub fn catch_up(state: &State, log: &AsLog, keys: &DirectoryKeys) -> Result<u64, StateError> {
    let mut entries = EntryReader::new(log);
    state.catch_up(
        log.size(),
        |i| open_change(keys, &entries.entry(i)?),
        |size| log.root_at(size).map(|h| h.0).map_err(|e| e.to_string()),
    )
}

/// Applies what other frontends appended to a shared log ([`State::follow`]: not synced);
/// returns how many entries.
pub fn follow(state: &State, log: &AsLog, keys: &DirectoryKeys) -> Result<u64, StateError> {
    let mut entries = EntryReader::new(log);
    // The root at the latest checkpoint's size is its root: no read of the store for it.
    let latest = log.latest_checkpoint();
    state.follow(
        log.size(),
        |i| open_change(keys, &entries.entry(i)?),
        |size| match size == latest.checkpoint.size {
            true => Ok(latest.checkpoint.root.0),
            false => log.root_at(size).map(|h| h.0).map_err(|e| e.to_string()),
        },
    )
}

/// Reads a log's entries in ascending order, [`READ_AHEAD`] at a time: one read of the store
/// (one query on PostgreSQL) for many entries.
struct EntryReader<'a> {
    log: &'a AsLog,
    first: u64,
    read: std::collections::VecDeque<Vec<u8>>,
}

/// Entries read at once by [`EntryReader`].
const READ_AHEAD: u64 = 4096;

impl<'a> EntryReader<'a> {
    fn new(log: &'a AsLog) -> EntryReader<'a> {
        EntryReader {
            log,
            first: 0,
            read: Default::default(),
        }
    }

    /// Entry `index`, which must follow the one asked for last (or be the first asked).
    fn entry(&mut self, index: u64) -> Result<Vec<u8>, String> {
        if index != self.first || self.read.is_empty() {
            let end = self.log.size().min(index.saturating_add(READ_AHEAD));
            let read = self
                .log
                .entries(index, end.max(index + 1))
                .map_err(|e| e.to_string())?;
            self.first = index;
            self.read = read.into();
        }
        let entry = self.read.pop_front().ok_or("the log gave no entry")?;
        self.first += 1;
        Ok(entry)
    }
}

/// Whether the store can be what the log's first `applied` entries made: never ahead of the
/// log, of this log (the root hash recorded with its counter is the log's at that size), and
/// the last entry it says it applied visible in it. This catches a store that lost writes
/// while keeping its counter, or a store of another log, which a plain catch-up would build on.
fn agrees_with_log(state: &State, log: &AsLog, keys: &DirectoryKeys) -> Result<(), Failure> {
    let applied = state.applied()?;
    if applied > log.size() {
        return Err(Failure::Store(format!(
            "it has applied {applied} entries, and the log holds {}",
            log.size()
        )));
    }
    let Some(last) = applied.checked_sub(1) else {
        if state.has_logged_records()? {
            return Err(Failure::Store(
                "it applied no entry but holds credentials or revocations".into(),
            ));
        }
        return Ok(());
    };
    if let Some(root) = state.applied_root()? {
        let expected = log
            .root_at(applied)
            .map_err(|e| Failure::Fatal(e.to_string()))?;
        if root != expected.0 {
            return Err(Failure::Store(format!(
                "the root hash it recorded at {applied} entries is not the log's"
            )));
        }
    }
    // The last change it says it applied (map entries change nothing in the state).
    let mut last = last;
    let change = loop {
        let bytes = log.entry(last).map_err(|e| Failure::Fatal(e.to_string()))?;
        let opened = open_change(keys, &bytes)
            .map_err(|e| Failure::Fatal(format!("log entry {last}: {e}")))?;
        match (opened, last.checked_sub(1)) {
            (Some(change), _) => break change,
            (None, Some(before)) => last = before,
            (None, None) => return Ok(()),
        }
    };
    let (version, entry) = (change.version, change.entry);
    let missing = |what: String| {
        Failure::Store(format!(
            "it does not show {what} of entry {last}, the last change it says it applied"
        ))
    };
    if state.version_row(entry.body.identity(), version)?.is_none() {
        return Err(missing(format!("version {version} of the identity")));
    }
    let identity = state.identity(entry.body.identity())?;
    let logged = identity.as_ref().is_some_and(|record| record.logged);
    if !logged {
        return Err(missing("the identity".into()));
    }
    match &entry.body {
        EntryBody::Issue { binding, .. } | EntryBody::Rotate { binding, .. } => {
            let serial = binding.serial.to_hex();
            let shown = state
                .credential(&serial)?
                .is_some_and(|c| c.log_index == last && c.status == CredentialStatus::Current)
                && identity.is_some_and(|record| record.current.contains(&serial));
            if !shown {
                return Err(missing(format!("credential {serial}")));
            }
        }
        EntryBody::Revoke { serials, .. } => {
            if state.last_revocation() != Some(last) {
                return Err(missing("the revocation".into()));
            }
            for serial in serials {
                let serial = serial.to_hex();
                if state.revocation(&serial)?.is_none() {
                    return Err(missing(format!("the revocation of {serial}")));
                }
            }
        }
        EntryBody::Enable { .. } => {
            if identity.is_none_or(|record| record.status != IdentityStatus::Active) {
                return Err(missing("the re-enabling".into()));
            }
        }
    }
    Ok(())
}

/// Renames `state_dir` to a free `state.broken-<unix seconds>[-n]` beside it, and syncs the
/// folder so that the rename survives a crash.
fn move_aside(state_dir: &Path) -> std::io::Result<PathBuf> {
    let parent = state_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = state_dir
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    if !state_dir.exists() {
        return Ok(state_dir.to_path_buf());
    }
    let now = crate::unix_now();
    let mut kept = parent.join(format!("{name}.broken-{now}"));
    let mut n = 1;
    while kept.exists() {
        kept = parent.join(format!("{name}.broken-{now}-{n}"));
        n += 1;
    }
    std::fs::rename(state_dir, &kept)?;
    std::fs::File::open(parent)?.sync_all()?;
    forget_old_copies(parent, &format!("{name}.broken-"));
    Ok(kept)
}

/// Deletes all but the [`KEPT_BROKEN`] newest folders in `parent` whose names start with
/// `prefix`. Best effort: a copy that cannot be deleted is only logged.
fn forget_old_copies(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let mut copies: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    copies.sort();
    let old = copies.len().saturating_sub(KEPT_BROKEN);
    for (_, path) in copies.into_iter().take(old) {
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {
                tracing::warn!(path = %path.display(), "deleted an old moved-aside state store")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not delete an old moved-aside state store")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::testing::{directory_log, keys};
    use crate::entry::LogEntry;
    use crate::state::test_ids::{enrollment_hex, serial};

    fn issue(identity: &str, name: &str) -> LogEntry {
        crate::state::test_ids::issue(identity, name, name)
    }

    /// The empty map's entry, then `changes` (updates and a map entry).
    fn log_of(dir: &Path, changes: &[LogEntry]) -> AsLog {
        directory_log(dir, changes)
    }

    fn open_state(state_dir: &Path, journal: &Path, log: &AsLog) -> Result<(State, u64), String> {
        super::open_state(state_dir, journal, log, &keys())
    }

    fn broken_copies(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("state.broken-")
            })
            .count()
    }

    #[test]
    fn a_reopen_that_meets_an_io_error_leaves_the_store_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_of(&dir.path().join("log"), &[issue("a@b.co", "s1")]);
        let (state_dir, journal) = (dir.path().join("state"), dir.path().join("enrollments"));
        let (open, _) = open_state(&state_dir, &journal, &log).unwrap();
        // sled's lock on its files, held by the open store: an I/O error of the reopen.
        let reopened = reopen_state(&state_dir, &journal, &log, &keys());
        assert!(matches!(reopened, Err(ReopenError::Unavailable(_))));
        assert_eq!(broken_copies(dir.path()), 0);
        drop(open);
        // sled may hold its lock a moment after its store is dropped (its I/O threads).
        let mut tries = 0;
        let (state, replayed) = loop {
            match reopen_state(&state_dir, &journal, &log, &keys()) {
                Err(ReopenError::Unavailable(_)) if tries < 50 => tries += 1,
                reopened => break reopened.unwrap(),
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!((replayed, broken_copies(dir.path())), (0, 0));
        assert!(state.identity("a@b.co").unwrap().unwrap().logged);
    }

    #[test]
    fn only_the_newest_moved_aside_stores_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_of(&dir.path().join("log"), &[issue("a@b.co", "s1")]);
        let (state_dir, journal) = (dir.path().join("state"), dir.path().join("enrollments"));
        for _ in 0..KEPT_BROKEN + 2 {
            drop(open_state(&state_dir, &journal, &log).unwrap());
            // Garbage where sled keeps its configuration: the next open must move it aside.
            std::fs::write(state_dir.join("conf"), [0xffu8; 64]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        drop(open_state(&state_dir, &journal, &log).unwrap());
        assert_eq!(broken_copies(dir.path()), KEPT_BROKEN);
    }

    #[test]
    fn a_store_of_another_log_of_the_same_size_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let ours = log_of(&dir.path().join("log"), &[issue("a@b.co", "s1")]);
        let theirs = log_of(&dir.path().join("other"), &[issue("x@b.co", "s9")]);
        let (state_dir, journal) = (dir.path().join("state"), dir.path().join("enrollments"));
        drop(open_state(&state_dir, &journal, &theirs).unwrap());
        let (state, replayed) = open_state(&state_dir, &journal, &ours).unwrap();
        // The empty map's entry, the update and its map entry.
        assert_eq!(replayed, 3);
        assert_eq!(broken_copies(dir.path()), 1);
        assert!(state.identity("x@b.co").unwrap().is_none());
        assert!(state.identity("a@b.co").unwrap().unwrap().logged);
    }

    #[test]
    fn a_store_that_lost_its_counter_but_not_its_records_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_of(&dir.path().join("log"), &[issue("x@b.co", "s9")]);
        let (state_dir, journal) = (dir.path().join("state"), dir.path().join("enrollments"));
        drop(open_state(&state_dir, &journal, &log).unwrap());
        {
            let db = sled::open(&state_dir).unwrap();
            let tree = db.open_tree("as").unwrap();
            tree.remove(b"m/applied").unwrap();
            tree.remove(b"m/applied-root").unwrap();
            db.flush().unwrap();
        }
        // Counter at 0 and a credential record left: only a damaged store looks like that.
        let (state, replayed) = open_state(&state_dir, &journal, &log).unwrap();
        assert_eq!((replayed, broken_copies(dir.path())), (3, 1));
        assert_eq!(state.applied().unwrap(), 3);
    }

    #[test]
    fn a_store_that_lost_an_enrollment_it_claims_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_of(&dir.path().join("log"), &[]);
        let (state_dir, journal) = (dir.path().join("state"), dir.path().join("enrollments"));
        let (state, _) = open_state(&state_dir, &journal, &log).unwrap();
        state
            .add_enrollments(&[(enrollment_hex("e1"), "a@b.co".into(), u64::MAX)])
            .unwrap()
            .unwrap();
        drop(state);
        {
            let db = sled::open(&state_dir).unwrap();
            let tree = db.open_tree("as").unwrap();
            let key = [b"e/".as_slice(), enrollment_hex("e1").as_bytes()].concat();
            assert!(tree.remove(key).unwrap().is_some());
            db.flush().unwrap();
        }
        let (state, _) = open_state(&state_dir, &journal, &log).unwrap();
        assert_eq!(broken_copies(dir.path()), 1);
        assert!(state.enrollment(&enrollment_hex("e1")).unwrap().is_some());
    }

    #[test]
    fn an_intact_store_is_kept_and_journaled_enrollments_come_back_after_a_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_of(&dir.path().join("log"), &[issue("a@b.co", "s1")]);
        let (state_dir, journal) = (dir.path().join("state"), dir.path().join("enrollments"));
        let (state, _) = open_state(&state_dir, &journal, &log).unwrap();
        state
            .add_enrollments(&[
                (enrollment_hex("s1"), "a@b.co".into(), u64::MAX),
                (enrollment_hex("e2"), "c@b.co".into(), u64::MAX),
            ])
            .unwrap()
            .unwrap();
        drop(state);
        let (state, replayed) = open_state(&state_dir, &journal, &log).unwrap();
        assert_eq!((replayed, broken_copies(dir.path())), (0, 0));
        drop(state);
        std::fs::remove_dir_all(&state_dir).unwrap();
        let (state, replayed) = open_state(&state_dir, &journal, &log).unwrap();
        assert_eq!(replayed, 3);
        // The journaled enrollment the log used is used again; the other is pending.
        let used = state.enrollment(&enrollment_hex("s1")).unwrap().unwrap();
        assert_eq!(used.used_by, Some(serial("s1").to_hex()));
        let pending = state.enrollment(&enrollment_hex("e2")).unwrap().unwrap();
        assert_eq!(
            (pending.identity.as_str(), pending.used_by),
            ("c@b.co", None)
        );
        assert!(!state.identity("c@b.co").unwrap().unwrap().logged);
    }
}
