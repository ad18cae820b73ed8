//! The sequencer: the single writer of the log and the state, with group commit.
//!
//! Handlers submit [`Action`]s to a bounded queue; a full queue is refused at once with
//! `503 overloaded` and `Retry-After` (back-pressure, never an unbounded wait). One thread takes
//! whatever is queued (up to `max_batch`), admits each action in order ([`admit`]), makes each
//! admitted change the identity's next version in the directory (its record, its commitment,
//! the change sealed to the AS: one update entry), stages the batch's map, appends the updates
//! and the batch's map entry durably and signs one checkpoint over them
//! ([`Log::append_and_sign`]), writes their state changes, publishes the map with that
//! checkpoint, and only then answers each request with the proof of its identity's state in
//! that checkpoint. When idle it blocks on the queue (waking each second to see whether an
//! enrollment found the state store failed): a lone request is committed at once, with no
//! fixed wait.
//!
//! Guarantees: an answer of success means the change is durable and covered by the checkpoint
//! it carries, whose last entry is the map entry of a map holding the identity's state after
//! the batch (the change, and any later change of the same identity in the same batch). A
//! failed append answers every request of the batch with an error and changes nothing.
//!
//! Storage faults (a full, read-only or failing data disk) are answered `503
//! storage-unavailable` with `Retry-After`, and the server recovers from them by itself:
//! - Before a batch is appended, the state store is asked whether it still takes writes
//!   ([`State::check_writable`]: sled refuses every write after a background flush failed). If
//!   it does not, or the append fails, the batch is refused whole and nothing of it is written:
//!   no answer can show it, now or later.
//! - If the state store fails in the moment between that check and its write (the batch is
//!   then durable in the log), or the checkpoint over an appended batch cannot be signed, the
//!   batch's map is not published and its requests are refused too: no answer shows the batch
//!   until the state is level again, and then it shows it whole (it is in the log; a retry of
//!   such a request is refused as already done). This is the one case in which a refused
//!   request takes effect.
//! - From the first fault on, every write is refused at once, and [`Resync`] brings the log's
//!   checkpoint, the state and the map level with the log again, as a start does, with
//!   backoff (250 ms to 5 s), with or without traffic. Writes are taken again only once all
//!   three are level; a state that cannot be brought level keeps them refused. Reads are
//!   answered throughout from the published map and the state it was published with (or a
//!   `storage-unavailable` refusal where the failed store cannot answer, never a wrong answer).
//! - Acknowledged changes are never lost: they were durable before they were answered, and
//!   the log's failed writes change nothing committed (kt-log's `FileStore`).

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use kt_log::checkpoint::SignedCheckpoint;
use kt_log::log::LogError;
use kt_log::store::StoreError;
use kt_log::tiles::MAX_ENTRY_LEN;
use kt_protocol::directory::batch::{check_map_entry, Batch};
use kt_protocol::directory::public_entry::PublicEntry;
use tokio::sync::oneshot;

pub use crate::admission::Action;
use crate::admission::{admit, Limits};
use crate::as_log::AsLog;
use crate::directory::{open_entry, Directory, OpenError, OpenedEntry, ProofParts};
use crate::entry::{EntryBody, LogEntry};
use crate::metrics::Metrics;
use crate::refusal::{Refusal, RefusalKind};
use crate::resync::Resync;
use crate::state::directory::{OpenedChange, VersionRow};
use crate::state::shared::SharedState;
use crate::state::{Overlay, State, StateError};
use crate::storage::{committed_unproven, log_read_refusal, state_refusal, Fault};
use crate::unix_now;

/// How often an idle sequencer looks whether an enrollment found the state store failed.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// How often an idle sequencer of a shared log takes in other frontends' appends, so that
/// its lookups show them.
const FOLLOW_EVERY: Duration = Duration::from_millis(50);
/// Tries of one batch whose append other frontends' appends fenced.
const FENCED_TRIES: usize = 8;
/// Most entries of other frontends that a batch takes in itself ([`Foreign`]); a longer run
/// is taken in first, as an idle follower does.
const FOREIGN_IN_BATCH: u64 = 1024;

/// A committed action: where its update is, what it changed, and the proof of its identity's
/// state in the checkpoint that covers it.
pub struct Committed {
    /// Log index of the update entry.
    pub index: u64,
    /// The change.
    pub body: EntryBody,
    /// The proof's parts, read from the batch's map (see [`Directory::identity_proof`]).
    pub proof: ProofParts,
    /// The identity's latest version row in that map.
    pub row: Option<VersionRow>,
}

impl Committed {
    /// The checkpoint that covers the change.
    pub fn checkpoint(&self) -> &Arc<SignedCheckpoint> {
        &self.proof.checkpoint
    }
}

struct Job {
    action: Action,
    reply: oneshot::Sender<Result<Committed, Refusal>>,
}

/// Tuning of the sequencer.
#[derive(Clone, Copy, Debug)]
pub struct SequencerConfig {
    /// Most actions waiting in the queue.
    pub queue_capacity: usize,
    /// Most actions in one group commit.
    pub max_batch: usize,
    /// The limits admission enforces.
    pub limits: Limits,
}

/// The handle handlers submit to.
#[derive(Clone)]
pub struct Sequencer {
    queue: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
}

impl Sequencer {
    /// Starts the sequencer thread over `log`, `state` and `directory` (which must be caught
    /// up); `data` is the data folder, whose disk [`Resync`] probes after a storage fault;
    /// `shared` if other frontends append to the log too.
    pub fn start(
        log: Arc<AsLog>,
        state: Arc<SharedState>,
        directory: Arc<Directory>,
        config: SequencerConfig,
        metrics: Arc<Metrics>,
        data: &std::path::Path,
        shared: bool,
    ) -> std::io::Result<Sequencer> {
        let (queue, jobs) = mpsc::sync_channel(config.queue_capacity.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            log,
            shared,
            state,
            directory,
            config,
            resync: Resync::new(data, Arc::clone(&metrics)),
            metrics,
            depth: Arc::clone(&depth),
        };
        std::thread::Builder::new()
            .name("sequencer".into())
            .spawn(move || worker.run(jobs))?;
        Ok(Sequencer { queue, depth })
    }

    /// Queues `action` and waits for its commit (or refusal).
    pub async fn submit(&self, action: Action) -> Result<Committed, Refusal> {
        let (reply, answer) = oneshot::channel();
        // Counted before the send, so the worker never takes a job it was not counted for.
        self.depth.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(Job { action, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                return Err(
                    Refusal::new(RefusalKind::Overloaded, "the sequencer queue is full")
                        .retry_after(1),
                );
            }
            Err(TrySendError::Disconnected(_)) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                return Err(Refusal::failed("the sequencer has stopped"));
            }
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Refusal::failed("the sequencer dropped a request")))
    }

    /// Actions waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
}

struct Worker {
    log: Arc<AsLog>,
    /// Whether other frontends append to the log too (a shared database).
    shared: bool,
    state: Arc<SharedState>,
    directory: Arc<Directory>,
    config: SequencerConfig,
    metrics: Arc<Metrics>,
    depth: Arc<AtomicUsize>,
    resync: Resync,
}

/// An admitted action: its job, its change, and its update entry's bytes.
type Admitted = (Job, EntryBody, Vec<u8>);

/// Other frontends' entries that a batch of a shared log takes in itself, under the log's
/// write lock: applied to the batch's state overlay and pushed to its map batch before its
/// own changes, they reach the state store and the published map together with them, after
/// the append, outside the lock. Until then lookups show the map and state of before them,
/// level with each other; a batch that ends without an append drops them, and the next
/// follow takes them in again from the log.
struct Foreign {
    /// Log index of the first.
    from: u64,
    /// Whole batches: the last is a map entry.
    entries: Vec<OpenedEntry>,
}

impl Worker {
    fn run(mut self, jobs: Receiver<Job>) {
        loop {
            self.notice_failed_state();
            let idle = if self.shared {
                FOLLOW_EVERY
            } else {
                IDLE_CHECK
            };
            let first = match jobs.recv_timeout(self.resync.wait(idle)) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    if self
                        .resync
                        .attempt_if_due(&self.log, &self.state, &self.directory)
                    {
                        // Failures are logged there, and tried again next time.
                        let _ = self.follow(false);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            while batch.len() < self.config.max_batch {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.depth.fetch_sub(batch.len(), Ordering::Relaxed);
            self.commit(batch);
        }
    }

    /// A store whose write failed outside the sequencer (an enrollment) must be reopened too.
    fn notice_failed_state(&mut self) {
        if !self.resync.is_down() && self.state.get().is_ok_and(|state| state.failed()) {
            self.resync.fault(state_fault(&StateError::Unavailable));
        }
    }

    /// Commits `batch`. On a shared log it first takes the log's write lock and what other
    /// frontends appended ([`Worker::follow`]), so that the batch is admitted against the
    /// log's latest state and appended before any other frontend's; the lock ends with the
    /// append. An append fenced all the same (the lock is only a means to waste no work) is
    /// admitted again against the grown log, at most [`FENCED_TRIES`] times.
    fn commit(&mut self, mut batch: Vec<Job>) {
        for _ in 0..FENCED_TRIES {
            if self.resync.is_down()
                && !self
                    .resync
                    .attempt_if_due(&self.log, &self.state, &self.directory)
            {
                refuse_all(batch, &self.resync.refusal());
                return;
            }
            let fenced = match self.follow(true) {
                Ok(foreign) => self.commit_once(batch, foreign),
                Err(refusal) => {
                    refuse_all(batch, &refusal);
                    None
                }
            };
            if self.shared {
                if let Err(e) = self.log.release_writes() {
                    tracing::warn!(error = %e, "giving back the shared log's write lock");
                }
            }
            match fenced {
                Some(fenced) => batch = fenced,
                None => return,
            }
        }
        let refusal = Refusal::storage_unavailable(
            "other frontends of the shared log appended before every try of this change; \
             nothing was changed, retry",
            1,
        );
        refuse_all(batch, &refusal);
    }

    /// Takes in what other frontends appended to a shared log ([`AsLog::refresh`], or
    /// [`AsLog::hold_writes`] if `lock`, which takes the log's write lock too): the state
    /// first, then the map published with the log's latest checkpoint, so that the map never
    /// shows a version the state lacks. Nothing to do on a log only this process writes. A
    /// failure is refused at once, and the next batch tries again.
    ///
    /// Under the lock, a short run of whole batches level with the state and the map is
    /// returned instead, for the batch to take in itself ([`Foreign`]): the state's and the
    /// map's writes then leave the lock's critical section.
    fn follow(&mut self, lock: bool) -> Result<Option<Foreign>, Refusal> {
        if !self.shared {
            return Ok(None);
        }
        let size = if lock {
            self.log.hold_writes()
        } else {
            self.log.refresh()
        };
        let size = size.map_err(|e| {
            // An idle follower tries again in a moment: only a batch's failure is worth a
            // warning.
            if lock {
                tracing::warn!(error = %e, "reading the shared log failed");
            } else {
                tracing::debug!(error = %e, "reading the shared log failed");
            }
            Fault::of_log(&e)
                .unwrap_or_else(|| not_level(&e))
                .refusal(1)
        })?;
        let published = self.directory.read().checkpoint.checkpoint.size;
        if published == size {
            return Ok(None);
        }
        let state = self.state.get()?;
        if lock {
            if let Some(foreign) = self.foreign(&state, published, size) {
                return Ok(Some(foreign));
            }
        }
        crate::recovery::follow(&state, &self.log, self.directory.keys()).map_err(|e| {
            let fault = state_fault(&e);
            let refusal = fault.refusal(1);
            self.resync.fault(fault);
            refusal
        })?;
        let checkpoint = self.log.latest_checkpoint();
        // Before a batch (`lock`), its own publication reads the map entry for lookups.
        self.directory
            .catch_up(&self.log, checkpoint, !lock)
            .map_err(|e| {
                if let Some(refusal) = match &e {
                    OpenError::Log(log) => log_read_refusal(log),
                    _ => None,
                } {
                    return refusal;
                }
                tracing::error!(error = %e, "the map cannot follow the shared log");
                Refusal::failed(e)
            })?;
        self.metrics.set_log_size(size);
        Ok(None)
    }

    /// The log's entries `from .. size`, opened, for a batch to take in ([`Foreign`]) if
    /// they are few and whole batches and the state and the map stand at `from`; `None` if
    /// not, or if any fails to read or open (the usual follow then takes them in, or reports
    /// the failure).
    fn foreign(&self, state: &State, from: u64, size: u64) -> Option<Foreign> {
        if size - from > FOREIGN_IN_BATCH || state.applied().ok()? != from {
            return None;
        }
        // Read once already, by the log's take-in.
        let entries = self.log.entries(from, size).ok()?;
        let keys = self.directory.keys();
        let entries = entries
            .iter()
            .map(|bytes| open_entry(keys, bytes))
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        matches!(entries.last(), Some(OpenedEntry::Map(_))).then_some(Foreign { from, entries })
    }

    /// Applies `foreign` to `overlay` and pushes its updates to `updates` on `map`, checking
    /// each of its map entries against the updates so far, as the usual follow would have
    /// (kt-protocol's public rules, [`check_map_entry`]).
    fn take_in(
        &mut self,
        overlay: &mut Overlay<'_>,
        updates: &mut Batch,
        map: &kt_protocol::directory::tree::Map,
        foreign: &Foreign,
    ) -> Result<(), Refusal> {
        for (index, entry) in (foreign.from..).zip(&foreign.entries) {
            let broken = |error: String| {
                tracing::error!(index, %error, "another frontend's entry breaks the rules");
                Refusal::failed(format!("log entry {index}: {error}"))
            };
            match entry {
                OpenedEntry::Change(change) => {
                    overlay.apply_change(index, change).map_err(|e| {
                        let fault = state_fault(&e);
                        let refusal = fault.refusal(1);
                        self.resync.fault(fault);
                        refusal
                    })?;
                    let commitment = change
                        .commitment
                        .ok_or_else(|| broken("an update without its commitment".into()))?;
                    updates
                        .push(map, &change.label, change.version, &commitment)
                        .map_err(|e| broken(e.to_string()))?;
                }
                OpenedEntry::Map(found) => {
                    let (_, expected) = updates.stage(map);
                    check_map_entry(found, &expected).map_err(|e| broken(e.to_string()))?;
                }
            }
        }
        Ok(())
    }

    /// One try of [`commit`](Worker::commit), after other frontends' entries `foreign` if
    /// any; returns the jobs again if the append was fenced by another frontend's (nothing of
    /// them was written).
    fn commit_once(&mut self, batch: Vec<Job>, foreign: Option<Foreign>) -> Option<Vec<Job>> {
        let state = match self.state.get() {
            Ok(state) => state,
            Err(refusal) => {
                refuse_all(batch, &refusal);
                return None;
            }
        };
        let base = self.log.size();
        let now = unix_now();
        let mut overlay = state.overlay();
        let mut updates = Batch::new();
        let mut admitted: Vec<Admitted> = Vec::with_capacity(batch.len());
        let directory = Arc::clone(&self.directory);
        let (staged, map_entry) = {
            let published = directory.read();
            if let Some(foreign) = &foreign {
                if let Err(refusal) =
                    self.take_in(&mut overlay, &mut updates, &published.map, foreign)
                {
                    refuse_all(batch, &refusal);
                    return None;
                }
            }
            for job in batch {
                let index = base + admitted.len() as u64;
                match self.change(
                    &mut overlay,
                    &mut updates,
                    &published.map,
                    &job.action,
                    index,
                    now,
                ) {
                    Ok((body, bytes)) => admitted.push((job, body, bytes)),
                    Err(refusal) => {
                        let _gone = job.reply.send(Err(refusal));
                    }
                }
            }
            let (staged, map_entry) = updates.stage(&published.map);
            (staged, PublicEntry::Map(map_entry).to_bytes())
        };
        if admitted.is_empty() {
            return None;
        }
        // The state must take this batch's writes once the log has it: asked first, so that a
        // store that failed in the background refuses the batch before anything is written.
        if let Err(e) = state.check_writable() {
            self.refuse_for(admitted, state_fault(&e), Written::No);
            return None;
        }
        let mut entries: Vec<&[u8]> = admitted.iter().map(|(_, _, b)| b.as_slice()).collect();
        entries.push(&map_entry);
        let count = entries.len();
        let (range, checkpoint) = match self.log.append_and_sign(&entries) {
            Ok((range, checkpoint)) => {
                let root = checkpoint.checkpoint.root.0;
                if let Err(fault) = self.commit_state(base, range.clone(), root, overlay) {
                    self.refuse_for(admitted, fault, Written::Yes);
                    return None;
                }
                (range, checkpoint)
            }
            Err(LogError::Store(StoreError::Fenced { expected, found })) => {
                // Another frontend appended first: nothing of this batch was written.
                tracing::debug!(expected, found, "append fenced by another frontend");
                return Some(admitted.into_iter().map(|(job, _, _)| job).collect());
            }
            Err(e) if self.log.size() == base && Fault::of_log(&e).is_none() => {
                // Nothing appended, and not the storage's fault: the server failed; the state
                // is still level with the log.
                let refusal = Refusal::failed(e);
                refuse_all(admitted.into_iter().map(|(job, _, _)| job), &refusal);
                return None;
            }
            Err(e) => match self.after_failed_append(base, count, overlay, &e) {
                Ok(done) => done,
                Err((fault, written)) => {
                    self.refuse_for(admitted, fault, written);
                    return None;
                }
            },
        };
        let taken_in = foreign.map_or(0, |foreign| foreign.entries.len());
        self.directory.publish(
            &self.log,
            staged,
            (admitted.len() + taken_in) as u64,
            Arc::clone(&checkpoint),
        );
        self.metrics.record_batch(admitted.len(), range.end);
        for (offset, (job, body, _)) in admitted.into_iter().enumerate() {
            let answer =
                proof_of(&state, &self.directory, body.identity()).map(|(proof, row)| Committed {
                    index: range.start + offset as u64,
                    body,
                    proof,
                    row,
                });
            let _gone = job.reply.send(answer);
        }
        None
    }

    /// Records `fault` and refuses the batch, saying whether its entries were `written` to
    /// the log anyway (their map unpublished until [`Resync`] brings everything level).
    fn refuse_for(&mut self, admitted: Vec<Admitted>, fault: Fault, written: Written) {
        let refusal = match written {
            Written::No => fault.refusal(1),
            Written::Yes => Refusal::storage_unavailable(
                format!(
                    "the server's storage failed while this change was recorded ({}): the \
                     change is in the log and is shown once the storage takes writes again; \
                     look it up before retrying",
                    fault.reason
                ),
                1,
            ),
            Written::Unknown => Refusal::storage_unavailable(
                format!(
                    "the server's storage failed while this change was being recorded ({}): \
                     it may or may not be in the log; look it up before retrying",
                    fault.reason
                ),
                1,
            ),
        };
        self.resync.fault(fault);
        let refusal = refusal.retry_after(self.resync.retry_after());
        refuse_all(admitted.into_iter().map(|(job, _, _)| job), &refusal);
    }

    /// Admits `action` as the change at `index` and makes it its identity's next version:
    /// applied to `overlay`, pushed to `updates` on `map`. Returns the change and its update
    /// entry's bytes, or the refusal (with nothing applied).
    fn change(
        &self,
        overlay: &mut Overlay<'_>,
        updates: &mut Batch,
        map: &kt_protocol::directory::tree::Map,
        action: &Action,
        index: u64,
        now: u64,
    ) -> Result<(EntryBody, Vec<u8>), Refusal> {
        let admitted = admit(overlay, action, now, &self.config.limits).and_then(|body| {
            let entry = LogEntry::new(body);
            let entry_bytes = entry.to_bytes();
            if update_len_bound(entry_bytes.len()) > MAX_ENTRY_LEN {
                // Refuse this action alone; the rest of the batch goes on.
                return Err(Refusal::new(
                    RefusalKind::Conflict,
                    format!(
                        "the change would need a log entry of over {MAX_ENTRY_LEN} bytes (the \
                         identity holds too many credentials)"
                    ),
                ));
            }
            Ok((entry, entry_bytes))
        });
        let (entry, entry_bytes) = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => {
                if let Action::Issue { identity, .. } = action {
                    self.directory.forget_label(identity);
                }
                return Err(refusal);
            }
        };
        let identity = entry.body.identity();
        let known = overlay
            .label_row(identity)
            .map_err(state_refusal)?
            .and_then(|row| row.decode());
        let (label, vrf_proof) = self.directory.label_for(identity, known);
        let version = updates.next_version(map, &label);
        let keys = self.directory.keys();
        let recorded = overlay
            .apply_change(
                index,
                &OpenedChange {
                    label,
                    vrf_proof,
                    version,
                    opening: keys.opening(&label, version),
                    commitment: None,
                    entry: entry.clone(),
                },
            )
            .map_err(state_refusal)?;
        // The version was taken from `updates` just above: the push follows the rules.
        updates
            .push(map, &label, version, &recorded.commitment)
            .map_err(Refusal::failed)?;
        let update = keys
            .update_entry(
                &label,
                version,
                &recorded.commitment,
                &vrf_proof,
                &entry_bytes,
            )
            .map_err(Refusal::failed)?;
        Ok((entry.body, update))
    }

    /// Writes the batch's state changes once its entries are durable at `range`; `root` is
    /// the log's root hash at `range.end`, recorded with the state. A failure leaves the state
    /// behind the log: the caller refuses the batch and [`Resync`] brings the state level.
    fn commit_state(
        &self,
        base: u64,
        range: Range<u64>,
        root: [u8; 32],
        overlay: Overlay<'_>,
    ) -> Result<(), Fault> {
        if range.start != base {
            // Only this thread appends; a different start means the log changed under it.
            tracing::error!(base, start = range.start, "log grew outside the sequencer");
            return Err(not_level("the log grew outside the sequencer"));
        }
        overlay.commit(range.end, root).map_err(|e| state_fault(&e))
    }

    /// After `append_and_sign` failed: if nothing was appended, the batch fails whole (the
    /// log's store changed nothing). If the entries are durable anyway (the append succeeded,
    /// the checkpoint did not), the state follows the log, and the entries are answered if a
    /// checkpoint covering them can still be signed. Returns the range and checkpoint to answer
    /// with, or the fault and whether the batch's entries are in the log.
    fn after_failed_append(
        &self,
        base: u64,
        count: usize,
        overlay: Overlay<'_>,
        error: &kt_log::log::LogError,
    ) -> Result<(Range<u64>, Arc<SignedCheckpoint>), (Fault, Written)> {
        let size = self.log.size();
        let fault = || Fault::of_log(error).unwrap_or_else(|| not_level(error));
        if size == base {
            // A database whose connection broke during the commit may have committed it.
            let written = match error {
                LogError::Store(StoreError::Postgres(_)) => Written::Unknown,
                _ => Written::No,
            };
            return Err((fault(), written));
        }
        tracing::error!(%error, base, size, "entries appended but not signed");
        let range = base..size;
        if size != base + count as u64 {
            return Err((
                not_level("the log grew outside the sequencer"),
                Written::Yes,
            ));
        }
        let root = self
            .log
            .root_at(size)
            .map_err(|e| (not_level(e), Written::Yes))?;
        self.commit_state(base, range.clone(), root.0, overlay)
            .map_err(|f| (f, Written::Yes))?;
        match self.log.sign_checkpoint() {
            Ok(checkpoint) if checkpoint.checkpoint.size >= size => Ok((range, checkpoint)),
            // Durable but unsigned: refused; the resync signs them.
            Ok(_) => Err((
                not_level("the checkpoint does not cover the batch"),
                Written::Yes,
            )),
            Err(e) => Err((
                Fault::of_log(&e).unwrap_or_else(|| not_level(&e)),
                Written::Yes,
            )),
        }
    }
}

/// Whether a refused batch's entries are in the log.
#[derive(Clone, Copy)]
enum Written {
    /// Not: nothing of the batch was written.
    No,
    /// Durably, though their map is not published yet.
    Yes,
    /// Unknown: the database's connection broke during the commit.
    Unknown,
}

/// Answers every job with `refusal`.
fn refuse_all(jobs: impl IntoIterator<Item = Job>, refusal: &Refusal) {
    for job in jobs {
        let _gone = job.reply.send(Err(refusal.clone()));
    }
}

/// The fault behind a failed state write (every failure of a write counts: the state is then
/// behind the log).
fn state_fault(error: &StateError) -> Fault {
    Fault::of_state(error).unwrap_or_else(|| not_level(error))
}

/// A failure that leaves the state or the map behind the log without being the disk's.
fn not_level(error: impl std::fmt::Display) -> Fault {
    Fault {
        reason: "the state is not level with the log",
        error: error.to_string(),
    }
}

/// The proof of `identity` in the published map, and its version row from `state`, for the
/// answer to a committed change: a failed read of the state is refused as a change that is in
/// the log ([`committed_unproven`]), never as one that changed nothing.
fn proof_of(
    state: &State,
    directory: &Directory,
    identity: &str,
) -> Result<(ProofParts, Option<VersionRow>), Refusal> {
    let unreadable = |error: StateError| match Fault::of_state(&error) {
        Some(fault) => committed_unproven(&fault),
        None => Refusal::failed(error),
    };
    let label = state
        .label_row(identity)
        .map_err(unreadable)?
        .and_then(|row| row.decode());
    let parts = directory.prove(identity, label);
    let row = match parts.value {
        Some(value) => state
            .version_row(identity, value.version)
            .map_err(unreadable)?,
        None => None,
    };
    Ok((parts, row))
}

/// An upper bound of the length of the update entry that seals a change of `entry_len` bytes
/// (base64 of the sealed bytes, padded to 64, plus nonce, tag, VRF proof and the JSON around
/// them), checked before the change is applied so that an oversized one is refused whole.
fn update_len_bound(entry_len: usize) -> usize {
    let sealed = 24 + 16 + (4 + 80 + entry_len).div_ceil(64) * 64;
    sealed.div_ceil(3) * 4 + 256
}
