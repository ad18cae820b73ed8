//! How log entries change the state: the [`Overlay`] the sequencer admits and applies a batch
//! on, the one `apply_entry`, and catching up with the log at start.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::directory::{OpenedChange, RecordedVersion};
use super::*;
use crate::entry::{EntryBody, LogEntry, RevocationScope};

impl State {
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
    /// with `change_at` (the change an update entry seals, opened; `None` for a map entry) and
    /// the log's root hash at a size with `root_at`. Returns how many entries it applied.
    pub fn catch_up(
        &self,
        log_size: u64,
        change_at: impl FnMut(u64) -> Result<Option<OpenedChange>, String>,
        root_at: impl FnMut(u64) -> Result<[u8; 32], String>,
    ) -> Result<u64, StateError> {
        let applied = self.follow(log_size, change_at, root_at)?;
        self.make_durable()?;
        Ok(applied)
    }

    /// [`catch_up`](State::catch_up) without making the store durable afterwards: how a
    /// frontend of a shared log takes in the other frontends' entries before each batch. The
    /// store is a cache of the log, as after the sequencer's own batches, which are not synced
    /// either: a crash loses nothing a start does not re-apply.
    pub fn follow(
        &self,
        log_size: u64,
        mut change_at: impl FnMut(u64) -> Result<Option<OpenedChange>, String>,
        mut root_at: impl FnMut(u64) -> Result<[u8; 32], String>,
    ) -> Result<u64, StateError> {
        let start = self.applied()?;
        let mut index = start;
        while index < log_size {
            let end = log_size.min(index + 4096);
            let mut overlay = self.overlay();
            for i in index..end {
                let change =
                    change_at(i).map_err(|error| StateError::BadEntry { index: i, error })?;
                if let Some(change) = change {
                    overlay.apply_change(i, &change)?;
                }
            }
            let root = root_at(end).map_err(|error| StateError::BadEntry {
                index: end - 1,
                error,
            })?;
            overlay.commit(end, root)?;
            index = end;
        }
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
    pub(super) fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StateError> {
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

    pub(super) fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
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

    /// Applies the change logged at `index`: its effects on identities, credentials and
    /// enrollments ([`Overlay::apply_entry`]) and its version in the directory
    /// ([`Overlay::record_version`]), all or nothing. The one place where the log changes the
    /// state, used both by the sequencer and by [`State::catch_up`].
    pub fn apply_change(
        &mut self,
        index: u64,
        change: &OpenedChange,
    ) -> Result<RecordedVersion, StateError> {
        self.atomically(|overlay| {
            overlay.apply_changes(index, &change.entry)?;
            overlay.record_version(
                &change.label,
                &change.vrf_proof,
                change.version,
                &change.entry,
                &change.opening,
                change.commitment.as_ref(),
            )
        })
    }

    /// Applies log entry `index`'s effects on identities, credentials and enrollments. It
    /// trusts the entry (the sequencer admitted it) and is idempotent for the records it
    /// writes.
    pub fn apply_entry(&mut self, index: u64, entry: &LogEntry) -> Result<(), StateError> {
        self.atomically(|overlay| overlay.apply_changes(index, entry))
    }

    /// Runs `f`; if it fails, none of its writes stay (a read that fails half-way leaves no
    /// change behind).
    fn atomically<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        self.undo.clear();
        let applied = f(self);
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
                // Without its record (made at another frontend and not taken in yet, or
                // dropped from the journal long after it expired), a used one is left, so
                // that taking the enrollment in later cannot make it usable again.
                let record = match self.enrollment(&enrollment)? {
                    Some(record) => EnrollmentRecord {
                        used_by: Some(serial),
                        prepared_label: None,
                        ..record
                    },
                    None => EnrollmentRecord {
                        identity: identity_name.clone(),
                        expires_at: 0,
                        epoch: identity.epoch,
                        used_by: Some(serial),
                        prepared_label: None,
                    },
                };
                self.put(enrollment_key(&enrollment), &record);
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
        let revoked = match self.changes.get(LAST_REVOCATION_KEY) {
            Some(value) => Some(decode::<u64>(LAST_REVOCATION_KEY, value)?),
            None => None,
        };
        let mut batch = sled::Batch::default();
        for (key, value) in self.changes {
            batch.insert(key, value);
        }
        batch.insert(APPLIED_KEY, &applied.to_be_bytes());
        batch.insert(APPLIED_ROOT_KEY, &root);
        self.state.written(self.state.tree.apply_batch(batch))?;
        if revoked.is_some() {
            self.state.last_revocation.set(revoked);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Binding, RevocationReason};
    use crate::state::test_ids::{enrollment_hex, issue, serial, serial_hex};

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
        // Nothing is visible in the store before the commit, the latest revocation included.
        assert_eq!(state.credential(&serial_hex("s1")).unwrap(), None);
        assert_eq!(state.last_revocation(), None);
        let clone = state.clone();
        overlay.commit(2, [2; 32]).unwrap();
        assert_eq!(state.applied().unwrap(), 2);
        assert_eq!(state.last_revocation(), Some(1));
        // Every clone of the store sees it, and a batch without a revocation leaves it.
        assert_eq!(clone.last_revocation(), Some(1));
        drop(clone);
        state.overlay().commit(2, [2; 32]).unwrap();
        assert_eq!(state.last_revocation(), Some(1));
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
        // A reopened store reads it from its record.
        drop(state);
        let state = crate::state::reopen_for_test(
            &dir.path().join("state"),
            &dir.path().join("enrollments"),
        );
        assert_eq!(state.last_revocation(), Some(1));
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
        let log = crate::directory::testing::directory_log(
            &dir.path().join("log"),
            &[issue("a@b.co", "s1", "x"), issue("a@b.co", "s2", "y")],
        );
        let keys = crate::directory::testing::keys();
        let change_at = |i: u64| crate::directory::open_change(&keys, &log.entry(i).unwrap());
        // The empty map's entry and the first update, then the rest.
        let mut overlay = state.overlay();
        overlay
            .apply_change(1, &change_at(1).unwrap().unwrap())
            .unwrap();
        overlay.commit(2, [1; 32]).unwrap();
        let applied = state.catch_up(4, change_at, |_| Ok([2; 32])).unwrap();
        assert_eq!(applied, 2);
        assert_eq!(
            state.identity("a@b.co").unwrap().unwrap().current,
            [serial_hex("s1"), serial_hex("s2")]
        );
        assert_eq!(state.applied_root().unwrap(), Some([2; 32]));
        // Both versions are in the directory's rows, chained.
        let v1 = state.version_row("a@b.co", 1).unwrap().unwrap();
        let v2 = state.version_row("a@b.co", 2).unwrap().unwrap();
        assert_eq!(v2.previous_head(), v1.head());
        assert_eq!(v2.record().unwrap().credentials.len(), 2);
        assert!(state
            .catch_up(5, |_| Err("not an entry".to_owned()), |_| Ok([3; 32]))
            .is_err());
    }
}
