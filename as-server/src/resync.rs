//! Coming back from a storage fault without a restart.
//!
//! When the data disk does not take a write (full, over quota, read-only, failing), the
//! sequencer records the [`Fault`] here and refuses every write with `503
//! storage-unavailable` and `Retry-After` until an attempt to resynchronise succeeds. Attempts
//! run on the sequencer's thread (so nothing writes meanwhile), first 250 ms after the fault,
//! then with the wait doubled up to 5 s, whether requests come or not. An attempt:
//!
//! 1. probes the data folder ([`storage::probe`]): nothing else is tried while it refuses;
//! 2. signs a checkpoint over the whole log (entries a failed batch appended before its
//!    checkpoint failed), writing the log's commit record again first if a write of it failed;
//! 3. brings the state store level with the log, as a start does: a store whose write failed
//!    (sled takes none after one until it is reopened) is closed, once every clone of it is
//!    dropped, and reopened with [`recovery::reopen_state`] (state reads answer 503 meanwhile);
//!    another is caught up;
//! 4. brings the directory's map level with the log ([`Directory::catch_up`]) and publishes it
//!    with that checkpoint.
//!
//! Guarantees: writes are taken again only after all four succeeded, so the state, the map
//! and the checkpoint answers show agree with the log, as after a start. A step that fails
//! leaves what it had not reached as it was, and the next attempt starts again from step 1;
//! a state that cannot be brought level (a damaged log, a store that cannot be rebuilt) keeps
//! every write refused, never answered from a state behind the log. Reads are answered
//! throughout from what the old store and the published map hold (the map and checkpoint
//! shown never run ahead of the state); where the failed store cannot answer (sled writes to
//! split the pages it reads, and refuses that), the directory's rows a lookup needs are made
//! from the log ([`crate::state::log_rows`]: a reopened store is given the log, as at start);
//! reads of the state store answer 503 while a reopened store is being opened, and
//! where neither the failed store nor the log can answer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::as_log::AsLog;
use crate::directory::Directory;
use crate::metrics::Metrics;
use crate::recovery::{self, ReopenError};
use crate::refusal::Refusal;
use crate::setup::DataPaths;
use crate::state::shared::SharedState;
use crate::storage::{self, Fault};

/// Wait before the first attempt after a fault.
pub const FIRST_RETRY: Duration = Duration::from_millis(250);
/// Longest wait between attempts.
pub const LAST_RETRY: Duration = Duration::from_secs(5);
/// Longest wait for the clones of a failed store to be dropped before it is reopened.
const CLONES_WAIT: Duration = Duration::from_secs(10);
/// Tries of a reopen that fails with an I/O error, 100 ms apart: sled may hold its lock on its
/// files for a moment after its last clone is dropped.
const REOPEN_TRIES: u32 = 10;

/// The sequencer's record of a storage fault and its resynchronisation; see the module doc.
pub struct Resync {
    data: PathBuf,
    metrics: Arc<Metrics>,
    outage: Option<Outage>,
}

struct Outage {
    fault: Fault,
    since: Instant,
    wait: Duration,
    next: Instant,
}

impl Resync {
    /// For the data folder `data`; nothing is at fault yet.
    pub fn new(data: &Path, metrics: Arc<Metrics>) -> Resync {
        metrics.set_storage_unavailable(false);
        Resync {
            data: data.to_path_buf(),
            metrics,
            outage: None,
        }
    }

    /// Records `fault`: writes are refused until an attempt succeeds.
    pub fn fault(&mut self, fault: Fault) {
        match &mut self.outage {
            Some(outage) => {
                tracing::debug!(error = %fault.error, "storage fault while unavailable");
                outage.fault = fault;
            }
            None => {
                tracing::error!(
                    error = %fault.error,
                    "storage fault: writes are refused (503 storage-unavailable) until the \
                     data disk takes writes again and the state is level with the log"
                );
                let now = Instant::now();
                self.outage = Some(Outage {
                    fault,
                    since: now,
                    wait: FIRST_RETRY,
                    next: now + FIRST_RETRY,
                });
                self.metrics.set_storage_unavailable(true);
            }
        }
    }

    /// Whether writes are refused.
    pub fn is_down(&self) -> bool {
        self.outage.is_some()
    }

    /// How long the sequencer may wait for work before an attempt is due (`idle` if none is).
    pub fn wait(&self, idle: Duration) -> Duration {
        self.outage.as_ref().map_or(idle, |outage| {
            outage.next.saturating_duration_since(Instant::now())
        })
    }

    /// Whole seconds until the next attempt, at least 1: what `Retry-After` says.
    pub fn retry_after(&self) -> u64 {
        let wait = self.wait(Duration::ZERO);
        (wait.as_millis().div_ceil(1000) as u64).clamp(1, LAST_RETRY.as_secs())
    }

    /// The refusal of a write while down.
    pub fn refusal(&self) -> Refusal {
        match &self.outage {
            Some(outage) => outage.fault.refusal(self.retry_after()),
            None => Refusal::storage_unavailable("storage is unavailable", 1),
        }
    }

    /// If writes are refused and an attempt is due, makes it (see the module doc). Returns
    /// whether writes are taken.
    pub fn attempt_if_due(
        &mut self,
        log: &Arc<AsLog>,
        state: &SharedState,
        directory: &Directory,
    ) -> bool {
        let Some(outage) = &self.outage else {
            return true;
        };
        if Instant::now() < outage.next {
            return false;
        }
        match self.resynchronise(log, state, directory) {
            Ok(()) => {
                if let Some(outage) = self.outage.take() {
                    tracing::warn!(
                        unavailable_for = ?outage.since.elapsed(),
                        "storage is back: the state is level with the log, writes are taken again"
                    );
                }
                self.metrics.set_storage_unavailable(false);
                true
            }
            Err(fault) => {
                if let Some(outage) = &mut self.outage {
                    tracing::debug!(error = %fault.error, "storage still unavailable");
                    outage.fault = fault;
                    outage.wait = (outage.wait * 2).min(LAST_RETRY);
                    outage.next = Instant::now() + outage.wait;
                }
                false
            }
        }
    }

    fn resynchronise(
        &self,
        log: &Arc<AsLog>,
        state: &SharedState,
        directory: &Directory,
    ) -> Result<(), Fault> {
        storage::probe(&self.data)
            .map_err(|e| Fault::io(&e, format!("probing {}: {e}", self.data.display())))?;
        let checkpoint = log.sign_checkpoint().map_err(|e| {
            Fault::of_log(&e).unwrap_or_else(|| failure(format!("signing a checkpoint: {e}")))
        })?;
        let keys = directory.keys();
        // A store whose write failed is reopened (no clone of it may be held meanwhile).
        match state.get().ok().filter(|current| !current.failed()) {
            Some(current) => {
                recovery::catch_up(&current, log, keys)
                    .map_err(|e| Fault::of_state(&e).unwrap_or_else(|| failure(e)))?;
            }
            None => self.reopen(log, state, keys)?,
        }
        directory.catch_up(log, checkpoint, true).map_err(|e| {
            tracing::error!(error = %e, "the directory cannot be brought level with the log");
            failure(e)
        })?;
        Ok(())
    }

    /// Closes the failed store (if it is still in place) and opens it again level with the
    /// log.
    fn reopen(
        &self,
        log: &Arc<AsLog>,
        state: &SharedState,
        keys: &crate::directory::keys::DirectoryKeys,
    ) -> Result<(), Fault> {
        if let Some(old) = state.take() {
            old.retire();
            let clones = old.clones();
            // sled may panic in its drop if it cannot sync; the store is replaced either way.
            let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(old)));
            if dropped.is_err() {
                tracing::warn!("closing the failed state store panicked");
            }
            let deadline = Instant::now() + CLONES_WAIT;
            while clones.strong_count() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let paths = DataPaths::new(&self.data);
        let (state_dir, journal) = (paths.file("state"), paths.file("enrollments"));
        let mut tries = 0;
        let (mut reopened, replayed) = loop {
            tries += 1;
            match recovery::reopen_state(&state_dir, &journal, log, keys) {
                Ok(opened) => break opened,
                Err(ReopenError::Unavailable(e)) if tries < REOPEN_TRIES => {
                    tracing::debug!(error = %e, "reopening the state store");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(ReopenError::Unavailable(e)) => {
                    return Err(Fault {
                        reason: "the state store cannot be reopened yet",
                        error: e,
                    })
                }
                Err(ReopenError::Failed(e)) => {
                    tracing::error!(
                        error = %e,
                        "the state store cannot be brought level with the log; writes stay \
                         refused"
                    );
                    return Err(failure(e));
                }
            }
        };
        tracing::info!(replayed, "state store reopened after a storage fault");
        reopened.keep_log(Arc::clone(log), keys.clone());
        state.put(reopened);
        Ok(())
    }
}

/// A failure that is not the disk's but keeps the state from being level.
fn failure(error: impl std::fmt::Display) -> Fault {
    Fault {
        reason: "the state cannot be brought level with the log",
        error: error.to_string(),
    }
}
