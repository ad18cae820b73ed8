//! The state's side of the enrollment journal: new enrollments go to the journal (synced)
//! before the store; journaled ones the store lacks are put back at open; long-expired ones
//! leave the journal, then the store.

use super::*;
use crate::enrollment_journal::{JournalRecord, Position};

/// Journaled enrollments that expired this long ago are dropped from the journal at start
/// (no token can use them any more), once they are at least half of it.
const JOURNAL_KEEPS_EXPIRED_FOR: u64 = 24 * 3600;
/// A start reads the whole journal to look for such enrollments only if it was last read
/// whole this long ago: other starts read only the records the store does not hold yet (a
/// million journaled enrollments take most of a second to read). Records only ever become
/// droppable as time passes, so this delays a compaction by at most this long.
const JOURNAL_CHECKED_EVERY: u64 = 12 * 3600;
/// ... and at least this many: small journals are not worth rewriting.
const JOURNAL_COMPACTS_FROM: usize = 1_024;

/// The generation and end a [`JOURNAL_END_KEY`] value holds, in either layout (the earlier
/// one ends there).
fn stored_end(value: &[u8]) -> Option<([u8; 16], u64)> {
    if value.len() != 24 && value.len() != 32 {
        return None;
    }
    let generation = value[..16].try_into().ok()?;
    Some((
        generation,
        u64::from_be_bytes(value[16..24].try_into().ok()?),
    ))
}

/// The journal position a [`JOURNAL_END_KEY`] value holds: generation, end and last
/// record's start. A value of the earlier layout, without the last record's start, gives
/// none, and so a start that reads the whole journal (and then writes the value anew).
pub(super) fn stored_position(value: &[u8]) -> Option<Position> {
    let (generation, end) = stored_end(value)?;
    let last_start = u64::from_be_bytes(value.get(24..32)?.try_into().ok()?);
    Some(Position {
        generation,
        end,
        last_start,
    })
}

/// Whether a start at `now` should read the whole journal for its expired records
/// ([`JOURNAL_CHECKED_EVERY`]).
pub(super) fn compaction_due(tree: &sled::Tree, now: u64) -> Result<bool, StateError> {
    let checked = stored_u64(tree, JOURNAL_CHECKED_KEY)?;
    Ok(checked.is_none_or(|checked| now.saturating_sub(checked) >= JOURNAL_CHECKED_EVERY))
}

/// The enrollments of `tree` still usable (unused, unexpired), as journal records.
pub(super) fn pending_enrollments(tree: &sled::Tree) -> Result<Vec<JournalRecord>, StateError> {
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

impl State {
    /// Where the store says the journal's records are all in it, if it is this journal.
    fn journal_end(&self) -> Result<Option<u64>, StateError> {
        let generation = self.journal.generation();
        Ok(self
            .tree
            .get(JOURNAL_END_KEY)?
            .and_then(|value| stored_end(&value))
            .filter(|(stored, _)| *stored == generation)
            .map(|(_, end)| end))
    }

    fn journal_end_value(position: &Position) -> Vec<u8> {
        [
            &position.generation[..],
            &position.end.to_be_bytes(),
            &position.last_start.to_be_bytes(),
        ]
        .concat()
    }

    /// Writes each journaled enrollment the store does not hold (with its identity's record,
    /// if that is missing too), in atomic batches; records present are left alone, since the
    /// store's own copy may already say which issuance used it. `ends` are where the records
    /// end in the journal: those up to [`JOURNAL_END_KEY`] are in the store already (the last
    /// of them is checked), so a start reads only the store for the newer ones.
    pub(super) fn restore_enrollments(
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
                    prepared_label: None,
                };
                batch.insert(key, encode(&enrollment));
                restored += 1;
            }
            self.tree.apply_batch(batch)?;
        }
        self.tree.insert(
            JOURNAL_END_KEY,
            State::journal_end_value(&self.journal.position()),
        )?;
        if restored > 0 {
            tracing::info!(restored, "enrollments restored from the enrollment journal");
        }
        Ok(())
    }

    /// Rewrites the journal (whose every record is `records`) without the enrollments that
    /// expired more than a day ago, when they are most of it, so that it does not grow
    /// without bound, and then removes those enrollments' rows from the store, so that it
    /// does not either; records that it looked at `now`. No token can use such an enrollment
    /// any more: one presented again is refused as unknown instead of expired or used.
    pub(super) fn compact_journal(
        &self,
        records: Vec<JournalRecord>,
        now: u64,
    ) -> Result<(), StateError> {
        let total = records.len();
        let (keep, dropped): (Vec<JournalRecord>, Vec<JournalRecord>) = records
            .into_iter()
            .partition(|r| r.expires_at.saturating_add(JOURNAL_KEEPS_EXPIRED_FOR) > now);
        self.tree.insert(JOURNAL_CHECKED_KEY, &now.to_be_bytes())?;
        if dropped.len() >= JOURNAL_COMPACTS_FROM && dropped.len() * 2 >= total {
            let position = self.journal.rewrite(&keep).map_err(StateError::Journal)?;
            // Every kept record is in the store: restored above.
            self.tree
                .insert(JOURNAL_END_KEY, State::journal_end_value(&position))?;
            // Only once the journal no longer holds them: a start checks that the store holds
            // the journal's last record it says it holds. A crash before these batches leaves
            // rows that no token can use, as before this step existed.
            for chunk in dropped.chunks(ENROLLMENT_CHUNK) {
                let mut batch = sled::Batch::default();
                for record in chunk {
                    batch.remove(enrollment_key(&record.id));
                }
                self.tree.apply_batch(batch)?;
            }
            tracing::info!(
                dropped = dropped.len(),
                kept = keep.len(),
                "long-expired enrollments removed from the enrollment journal and the store"
            );
        }
        Ok(())
    }

    /// The lock under which enrollments are journaled, once this store is known to be the
    /// one that may append to the journal: checked under the lock, since a reopened store may
    /// have replaced this one.
    fn lock_journal(&self) -> Result<std::sync::MutexGuard<'_, ()>, StateError> {
        let locked = self
            .enrolling
            .lock()
            .map_err(|_| StateError::Journal(std::io::Error::other("enrollment lock poisoned")))?;
        if self.failed() || self.retired() {
            return Err(StateError::Unavailable);
        }
        Ok(locked)
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
    ///
    /// A store whose write failed ([`State::failed`]) or that was replaced refuses with
    /// [`StateError::Unavailable`] before writing anything; a failure of the journal's append
    /// leaves the journal as it was.
    pub fn add_enrollments(
        &self,
        enrollments: &[(String, String, u64)],
    ) -> Result<Result<Vec<JournalRecord>, String>, StateError> {
        self.add_prepared_enrollments(enrollments, &Default::default())
    }

    /// [`State::add_enrollments`], each enrollment's record holding its identity's label from
    /// `labels` (by identity) if it has one there ([`EnrollmentRecord::prepared_label`]). The
    /// journal does not hold them: an enrollment restored from it has none.
    pub fn add_prepared_enrollments(
        &self,
        enrollments: &[(String, String, u64)],
        labels: &std::collections::HashMap<String, super::directory::LabelRow>,
    ) -> Result<Result<Vec<JournalRecord>, String>, StateError> {
        if self.failed() || self.retired() {
            return Err(StateError::Unavailable);
        }
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
        let _enrolling = self.lock_journal()?;
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
                            prepared_label: labels.get(identity).cloned(),
                        };
                        tx.insert(enrollment_key(id), encode(&record))?;
                    }
                    Ok(())
                });
            match written {
                Ok(()) => {}
                Err(sled::transaction::TransactionError::Storage(e)) => {
                    return self.written(Err(e));
                }
                Err(sled::transaction::TransactionError::Abort(never)) => match never {},
            }
        }
        self.written(
            self.tree
                .insert(JOURNAL_END_KEY, State::journal_end_value(&journal_end)),
        )?;
        Ok(Ok(journaled))
    }

    /// Takes in an enrollment another frontend made ([`crate::shared_enrollments`]): written
    /// to the store unless the store holds a record of it already — an unused copy, or the
    /// used record its issuance left — which is never overwritten (one atomic
    /// compare-and-swap, so an issuance applied meanwhile is not undone).
    ///
    /// Not journaled: the database's row is the durable copy. A record a crash loses is
    /// taken in again at the next redemption of its token, and an issuance that used it is
    /// in the log, whose replay leaves the used record (so a lost import never makes a used
    /// token usable). This keeps a disk sync off every redemption of another frontend's
    /// token.
    pub fn import_enrollment(
        &self,
        record: &JournalRecord,
        prepared_label: Option<&super::directory::LabelRow>,
    ) -> Result<(), StateError> {
        if self.failed() || self.retired() {
            return Err(StateError::Unavailable);
        }
        let key = enrollment_key(&record.id);
        if self.tree.get(&key)?.is_some() {
            return Ok(());
        }
        let enrollment = EnrollmentRecord {
            identity: record.identity.clone(),
            expires_at: record.expires_at,
            epoch: record.epoch,
            used_by: None,
            prepared_label: prepared_label.cloned(),
        };
        // Each written only if absent (a compare-and-swap from nothing; one that finds a
        // value leaves it): the sequencer owns existing identity records, and an existing
        // enrollment record may say which issuance used it.
        for (key, value) in [
            (
                identity_key(&record.identity),
                encode(&IdentityRecord::new()),
            ),
            (key, encode(&enrollment)),
        ] {
            let _kept_if_present =
                self.written(self.tree.compare_and_swap(key, None::<&[u8]>, Some(value)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_ids::{enrollment_hex, issue};

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
        drop(super::reopen_for_test(&store, &journal));
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
        super::reopen_for_test(&store, &journal)
            .add_enrollments(&enrollments)
            .unwrap()
            .unwrap();
        let journaled = || EnrollmentJournal::open(&journal).unwrap().records;
        assert_eq!(journaled().len(), JOURNAL_COMPACTS_FROM + 1);
        // The journal was read whole at the first open, just now: a start within
        // JOURNAL_CHECKED_EVERY reads only what the store lacks, and leaves it.
        drop(super::reopen_for_test(&store, &journal));
        assert_eq!(journaled().len(), JOURNAL_COMPACTS_FROM + 1);
        // One later than that reads it whole, and drops the long-expired records.
        let state = super::reopen_for_test(&store, &journal);
        assert!(state.enrollment(&id(0)).unwrap().is_some());
        let long_ago = crate::unix_now() - JOURNAL_CHECKED_EVERY;
        state
            .tree
            .insert(JOURNAL_CHECKED_KEY, &long_ago.to_be_bytes())
            .unwrap();
        state.db.flush().unwrap();
        drop(state);
        drop(super::reopen_for_test(&store, &journal));
        let kept = journaled();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].identity, "new@b.co");
        // Their rows left the store too.
        let state = super::reopen_for_test(&store, &journal);
        for n in [0, 1, JOURNAL_COMPACTS_FROM - 1] {
            assert_eq!(state.enrollment(&id(n)).unwrap(), None, "{n}");
        }
        assert!(state.enrollment(&id(99_999)).unwrap().is_some());
        drop(state);
        // The new journal's records are all in the store, which says so: a start reads
        // from its last record, and the store still holds the kept enrollment.
        let state = super::reopen_for_test(&store, &journal);
        let position = state.journal.position();
        let stored = stored_position(&state.tree.get(JOURNAL_END_KEY).unwrap().unwrap());
        assert_eq!(stored, Some(position));
        assert!(state.enrollment(&id(99_999)).unwrap().is_some());
    }

    #[test]
    fn an_enrollment_keeps_its_prepared_label_until_it_is_used() {
        use crate::state::directory::LabelRow;
        use kt_protocol::directory::vrf::Label;

        let dir = tempfile::tempdir().unwrap();
        let state =
            State::open(&dir.path().join("state"), &dir.path().join("enrollments")).unwrap();
        let row = LabelRow::new(
            &Label([3; 32]),
            &[4; kt_protocol::directory::vrf::PROOF_LEN],
        );
        let labels = [("a@b.co".to_string(), row.clone())].into();
        state
            .add_prepared_enrollments(
                &[
                    (enrollment_hex("e1"), "a@b.co".into(), u64::MAX),
                    (enrollment_hex("e2"), "b@b.co".into(), u64::MAX),
                ],
                &labels,
            )
            .unwrap()
            .unwrap();
        let prepared = |name| {
            let record = state.enrollment(&enrollment_hex(name)).unwrap().unwrap();
            record.prepared_label
        };
        assert_eq!(prepared("e1"), Some(row));
        assert_eq!(prepared("e2"), None);

        // Used, its record drops the label (the identity's label row holds it from then on).
        let mut overlay = state.overlay();
        overlay
            .apply_entry(0, &issue("a@b.co", "s1", "e1"))
            .unwrap();
        overlay.commit(1, [1; 32]).unwrap();
        assert_eq!(prepared("e1"), None);
        let used = state.enrollment(&enrollment_hex("e1")).unwrap().unwrap();
        assert!(used.used_by.is_some());
    }

    #[test]
    fn a_start_restores_the_enrollments_journaled_after_what_the_store_holds() {
        let dir = tempfile::tempdir().unwrap();
        let (store, journal) = (dir.path().join("state"), dir.path().join("enrollments"));
        let state = State::open(&store, &journal).unwrap();
        state
            .add_enrollments(&[(enrollment_hex("e1"), "a@b.co".into(), u64::MAX)])
            .unwrap()
            .unwrap();
        // A crash after the journal's append and before the store's write.
        state
            .journal
            .append(&[JournalRecord {
                id: enrollment_hex("e2"),
                identity: "b@b.co".into(),
                expires_at: u64::MAX,
                epoch: 0,
            }])
            .unwrap();
        state.db.flush().unwrap();
        drop(state);
        let state = super::reopen_for_test(&store, &journal);
        for (name, identity) in [("e1", "a@b.co"), ("e2", "b@b.co")] {
            let record = state.enrollment(&enrollment_hex(name)).unwrap().unwrap();
            assert_eq!(record.identity, identity);
        }
        let stored = stored_position(&state.tree.get(JOURNAL_END_KEY).unwrap().unwrap());
        assert_eq!(stored, Some(state.journal.position()));
    }
}
