//! The directory's rows made from the log, for the reads a failed state store refuses.
//!
//! Once sled could not write (a full disk), it refuses every operation that must write until
//! it is reopened, and reopening writes too. A read is such an operation when it passes a page
//! that an insert left too large: sled splits pages lazily, on the next traversal, so the
//! pages of the last inserts before the fault stay unreadable, each with the keys of its
//! neighbours. Lookups and histories must still be answered ([`crate::resync`]), so a store
//! given its log ([`super::State::keep_log`], at start and at every reopening) keeps a
//! [`LogRows`], and an identity's label row or version row that the store refuses is made
//! here instead.
//!
//! Guarantees: a row made here is the row the store holds for that key, or will hold once it
//! has applied that far: it is made by [`make_version`] (as every row is) from the identity's
//! update entries in log order, each record checked against the commitment the log holds, and
//! the label row is the one its first entry seals. Only entries that a signed checkpoint
//! covers are read, so nothing that is not committed is shown; nothing is written. A log that
//! cannot be read answers the store's own refusal (`storage-unavailable`); an entry that does
//! not open or does not follow is an error of the server, never a row.
//!
//! Cost: one scan of the log's entries for every identity asked while no scan ran (askers
//! meanwhile wait and are served by the next one), remembered for [`MAX_REMEMBERED`]
//! identities. A version row never changes once made, so a remembered identity is read again
//! only if a newer version is asked for and the log has grown since.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use kt_protocol::directory::public_entry::PublicEntry;
use kt_protocol::directory::vrf::Label;

use super::directory::{make_version, LabelRow, VersionRow};
use super::StateError;
use crate::as_log::AsLog;
use crate::directory::keys::DirectoryKeys;
use crate::directory::open_change;

/// Identities whose rows are remembered; all are forgotten when more are read.
pub const MAX_REMEMBERED: usize = 4096;
/// Entries read from the log at once.
const READ_AHEAD: u64 = 4096;

/// What the log holds of one identity, up to a signed checkpoint.
#[derive(Debug)]
pub struct LoggedRows {
    /// The size of the checkpoint read up to.
    pub size: u64,
    /// Its label row, if the log has an entry of it.
    pub label: Option<LabelRow>,
    /// Its version rows, version 1 first.
    pub rows: Vec<VersionRow>,
}

impl LoggedRows {
    /// Version `version`'s row, if the log held it.
    pub fn version(&self, version: u64) -> Option<VersionRow> {
        let index = usize::try_from(version.checked_sub(1)?).ok()?;
        self.rows.get(index).cloned()
    }
}

/// Rows made from the log; see the module documentation.
pub struct LogRows {
    log: Arc<AsLog>,
    keys: DirectoryKeys,
    known: Mutex<Known>,
    /// Held while the log is scanned: one scan at a time.
    scanning: Mutex<()>,
}

#[derive(Default)]
struct Known {
    /// Identities asked for and not scanned for yet.
    wanted: BTreeSet<String>,
    found: HashMap<String, Arc<LoggedRows>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogRows {
    /// Rows of `log`'s entries, opened with `keys`.
    pub fn new(log: Arc<AsLog>, keys: DirectoryKeys) -> LogRows {
        LogRows {
            log,
            keys,
            known: Mutex::default(),
            scanning: Mutex::default(),
        }
    }

    /// What the log holds of `identity`, with at least `versions` versions if it holds them;
    /// `refused` is the store's error, answered if the log cannot be read.
    pub fn rows(
        &self,
        identity: &str,
        versions: u64,
        refused: sled::Error,
    ) -> Result<Arc<LoggedRows>, StateError> {
        let current = |rows: &LoggedRows| {
            rows.rows.len() as u64 >= versions
                || rows.size >= self.log.latest_checkpoint().checkpoint.size
        };
        {
            let mut known = lock(&self.known);
            if let Some(rows) = known.found.get(identity).filter(|r| current(r)) {
                return Ok(Arc::clone(rows));
            }
            known.wanted.insert(identity.to_owned());
        }
        let _scanning = lock(&self.scanning);
        let wanted = {
            let mut known = lock(&self.known);
            // Served by the scan this call waited for.
            if let Some(rows) = known.found.get(identity).filter(|r| current(r)) {
                return Ok(Arc::clone(rows));
            }
            let mut wanted = std::mem::take(&mut known.wanted);
            wanted.insert(identity.to_owned());
            wanted
        };
        tracing::warn!(
            error = %refused,
            identities = wanted.len(),
            "the state store refused a read: reading the rows from the log"
        );
        let scanned = self.scan(&wanted).map_err(|failure| match failure {
            Scan::Log(error) => {
                tracing::warn!(%error, "reading the log for rows the state store refused");
                StateError::Sled(refused)
            }
            Scan::Entry(error) => error,
        })?;
        let mut known = lock(&self.known);
        if known.found.len() + scanned.len() > MAX_REMEMBERED {
            known.found.clear();
        }
        known.found.extend(scanned);
        known
            .found
            .get(identity)
            .cloned()
            .ok_or_else(|| StateError::Disagrees(format!("the log's rows of {identity} were lost")))
    }

    /// Reads the log up to its latest signed checkpoint for the rows of `wanted`.
    fn scan(&self, wanted: &BTreeSet<String>) -> Result<HashMap<String, Arc<LoggedRows>>, Scan> {
        let size = self.log.latest_checkpoint().checkpoint.size;
        let mut by_label: HashMap<Label, (&str, Option<LabelRow>, Vec<VersionRow>)> = wanted
            .iter()
            .map(|identity| {
                let (label, _) = self.keys.vrf().prove(identity);
                (label, (identity.as_str(), None, Vec::new()))
            })
            .collect();
        let mut start = 0;
        while start < size {
            let end = size.min(start + READ_AHEAD);
            let entries = self
                .log
                .entries(start, end)
                .map_err(|e| Scan::Log(e.to_string()))?;
            for (index, bytes) in (start..end).zip(entries) {
                let bad = |error: String| Scan::Entry(StateError::BadEntry { index, error });
                let label = match PublicEntry::parse(&bytes).map_err(|e| bad(e.to_string()))? {
                    PublicEntry::Update(update) => update.label,
                    PublicEntry::Map(_) => continue,
                };
                let Some((identity, label_row, rows)) = by_label.get_mut(&label) else {
                    continue;
                };
                let change = open_change(&self.keys, &bytes)
                    .map_err(bad)?
                    .ok_or_else(|| bad("an update that opens as no change".into()))?;
                if change.entry.body.identity() != *identity {
                    return Err(bad(format!("its change is not of {identity}")));
                }
                let (_, row) = make_version(
                    &change.label,
                    change.version,
                    rows.last(),
                    &change.entry,
                    &change.opening,
                    change.commitment.as_ref(),
                )
                .map_err(bad)?;
                label_row.get_or_insert_with(|| LabelRow::new(&change.label, &change.vrf_proof));
                rows.push(row);
            }
            start = end;
        }
        Ok(by_label
            .into_values()
            .map(|(identity, label, rows)| {
                let found = LoggedRows { size, label, rows };
                (identity.to_owned(), Arc::new(found))
            })
            .collect())
    }
}

/// Why a scan gave no rows.
enum Scan {
    /// The log could not be read.
    Log(String),
    /// An entry does not open or does not follow: the log is damaged or not this AS's.
    Entry(StateError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::testing::{directory_log, keys};
    use crate::state::test_ids::issue;
    use crate::state::State;

    fn refused() -> sled::Error {
        sled::Error::Io(std::io::Error::from(std::io::ErrorKind::StorageFull))
    }

    #[test]
    fn rows_made_from_the_log_are_the_stores_rows() {
        let dir = tempfile::tempdir().unwrap();
        let revocation = crate::entry::LogEntry::new(crate::entry::EntryBody::Revoke {
            time: 3,
            identity: "a@b.co".into(),
            serials: vec![crate::state::test_ids::serial("s1")],
            scope: crate::entry::RevocationScope::Credential,
            reason: crate::entry::RevocationReason::KeyCompromise,
            admin: "admin".into(),
        });
        let log = Arc::new(directory_log(
            &dir.path().join("log"),
            &[
                issue("a@b.co", "s1", "e1"),
                issue("c@b.co", "s2", "e2"),
                issue("a@b.co", "s3", "e3"),
                revocation,
            ],
        ));
        let (state, _) = crate::recovery::open_state(
            &dir.path().join("state"),
            &dir.path().join("enrollments"),
            &log,
            &keys(),
        )
        .unwrap();
        let rows = LogRows::new(Arc::clone(&log), keys());
        for (identity, versions) in [("a@b.co", 3), ("c@b.co", 1)] {
            let logged = rows.rows(identity, versions, refused()).unwrap();
            assert_eq!(logged.label, state.label_row(identity).unwrap());
            assert_eq!(logged.rows.len() as u64, versions);
            for version in 1..=versions {
                assert_eq!(
                    logged.version(version),
                    state.version_row(identity, version).unwrap()
                );
            }
            assert_eq!(logged.version(versions + 1), None);
            assert_eq!(logged.version(0), None);
        }
        let absent = rows.rows("x@b.co", 1, refused()).unwrap();
        assert_eq!((absent.label.as_ref(), absent.rows.len()), (None, 0));
        assert_eq!(absent.size, log.latest_checkpoint().checkpoint.size);
        drop(state);
    }

    #[test]
    fn a_state_given_its_log_answers_what_its_store_refuses_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(directory_log(
            &dir.path().join("log"),
            &[issue("a@b.co", "s1", "e1")],
        ));
        let (mut state, _) = crate::recovery::open_state(
            &dir.path().join("state"),
            &dir.path().join("enrollments"),
            &log,
            &keys(),
        )
        .unwrap();
        state.keep_log(Arc::clone(&log), keys());
        let stored = (
            state.label_row("a@b.co").unwrap(),
            state.version_row("a@b.co", 1).unwrap(),
        );
        assert!(stored.0.is_some() && stored.1.is_some());
        let from_log = |state: &State| {
            (
                state.refused_label_row("a@b.co", refused()).unwrap(),
                state.refused_version_row("a@b.co", 1, refused()).unwrap(),
            )
        };
        assert_eq!(from_log(&state), stored);
        assert_eq!(
            state.refused_version_row("a@b.co", 2, refused()).unwrap(),
            None
        );
        drop(state);
        // Without the log's handle, the store's refusal is the answer.
        let state = crate::state::reopen_for_test(
            &dir.path().join("state"),
            &dir.path().join("enrollments"),
        );
        assert!(matches!(
            state.refused_version_row("a@b.co", 1, refused()),
            Err(StateError::Sled(_))
        ));
    }
}
