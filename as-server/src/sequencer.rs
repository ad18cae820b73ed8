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
//! that checkpoint. When idle it blocks on the queue: a lone request is committed at once, with
//! no fixed wait.
//!
//! Guarantees: an answer of success means the change is durable and covered by the checkpoint
//! it carries, whose last entry is the map entry of a map holding the identity's state after
//! the batch (the change, and any later change of the same identity in the same batch). A failed append answers every request of the batch with an error and changes
//! nothing. If the state write fails after the log commit, the entries are still answered (they
//! are durable), and the sequencer stops taking actions: the state is behind the log, and only
//! a restart ([`crate::state::State::catch_up`]) may bring it level.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use kt_log::checkpoint::SignedCheckpoint;
use kt_log::tiles::MAX_ENTRY_LEN;
use kt_protocol::directory::batch::Batch;
use kt_protocol::directory::public_entry::PublicEntry;
use kt_protocol::directory::tree::Staged;
use tokio::sync::oneshot;

pub use crate::admission::Action;
use crate::admission::{admit, Limits};
use crate::as_log::AsLog;
use crate::directory::{Directory, ProofParts};
use crate::entry::{EntryBody, LogEntry};
use crate::metrics::Metrics;
use crate::refusal::{Refusal, RefusalKind};
use crate::state::directory::{OpenedChange, VersionRow};
use crate::state::{Overlay, State};
use crate::unix_now;

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
    /// up).
    pub fn start(
        log: Arc<AsLog>,
        state: State,
        directory: Arc<Directory>,
        config: SequencerConfig,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Sequencer> {
        let (queue, jobs) = mpsc::sync_channel(config.queue_capacity.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            log,
            state,
            directory,
            config,
            metrics,
            depth: Arc::clone(&depth),
            poisoned: AtomicBool::new(false),
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
    state: State,
    directory: Arc<Directory>,
    config: SequencerConfig,
    metrics: Arc<Metrics>,
    depth: Arc<AtomicUsize>,
    poisoned: AtomicBool,
}

impl Worker {
    fn run(self, jobs: Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
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

    fn commit(&self, batch: Vec<Job>) {
        if self.poisoned.load(Ordering::Relaxed) {
            for job in batch {
                let _gone = job.reply.send(Err(Refusal::failed(
                    "the state is behind the log; restart the server",
                )));
            }
            return;
        }
        let base = self.log.size();
        let now = unix_now();
        let mut overlay = self.state.overlay();
        let mut updates = Batch::new();
        let mut admitted: Vec<(Job, EntryBody, Vec<u8>)> = Vec::with_capacity(batch.len());
        let (staged, map_entry) = {
            let published = self.directory.read();
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
            return;
        }
        let mut entries: Vec<&[u8]> = admitted.iter().map(|(_, _, b)| b.as_slice()).collect();
        entries.push(&map_entry);
        let count = entries.len();
        let (range, checkpoint) = match self.log.append_and_sign(&entries) {
            Ok((range, checkpoint)) => {
                self.commit_state(base, range.clone(), checkpoint.checkpoint.root.0, overlay);
                (range, checkpoint)
            }
            Err(e) => match self.recover_after_failure(base, count, overlay, &e) {
                Some(done) => done,
                None => {
                    let detail = e.to_string();
                    for (job, _, _) in admitted {
                        let _gone = job.reply.send(Err(Refusal::failed(&detail)));
                    }
                    return;
                }
            },
        };
        self.publish(staged, admitted.len() as u64, &checkpoint);
        self.metrics.record_batch(admitted.len(), range.end);
        for (offset, (job, body, _)) in admitted.into_iter().enumerate() {
            let answer = self
                .proof_of(body.identity())
                .map(|(proof, row)| Committed {
                    index: range.start + offset as u64,
                    body,
                    proof,
                    row,
                });
            let _gone = job.reply.send(answer);
        }
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
        let body = admit(overlay, action, now, &self.config.limits)?;
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
        let identity = entry.body.identity();
        let known = overlay
            .label_row(identity)
            .map_err(Refusal::failed)?
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
            .map_err(Refusal::failed)?;
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

    /// Publishes the batch's map with `checkpoint` once its state is written; if the state is
    /// behind (poisoned), the map is not published either, so that no answer shows a version
    /// the state cannot answer for.
    fn publish(&self, staged: Staged, changed: u64, checkpoint: &Arc<SignedCheckpoint>) {
        if !self.poisoned.load(Ordering::Relaxed) {
            self.directory
                .publish(staged, changed, Arc::clone(checkpoint));
        }
    }

    /// The proof of `identity` in the published map, and its version row.
    fn proof_of(&self, identity: &str) -> Result<(ProofParts, Option<VersionRow>), Refusal> {
        if self.poisoned.load(Ordering::Relaxed) {
            return Err(Refusal::failed(
                "the state is behind the log; restart the server",
            ));
        }
        let label = self
            .state
            .label_row(identity)
            .map_err(Refusal::failed)?
            .and_then(|row| row.decode());
        let parts = self.directory.prove(identity, label);
        let row = match parts.value {
            Some(value) => self
                .state
                .version_row(identity, value.version)
                .map_err(Refusal::failed)?,
            None => None,
        };
        Ok((parts, row))
    }

    /// Writes the batch's state changes once its entries are durable at `range`. If that is not
    /// possible the state is behind the log, and the sequencer stops taking actions until a
    /// restart re-applies the log (`State::catch_up`).
    /// `root` is the log's root hash at `range.end`, recorded with the state.
    fn commit_state(&self, base: u64, range: Range<u64>, root: [u8; 32], overlay: Overlay<'_>) {
        if range.start != base {
            // Only this thread appends; a different start means the log changed under it.
            tracing::error!(base, start = range.start, "log grew outside the sequencer");
            self.poisoned.store(true, Ordering::Relaxed);
        } else if let Err(e) = overlay.commit(range.end, root) {
            tracing::error!(error = %e, "state write failed after a log commit; stopping");
            self.poisoned.store(true, Ordering::Relaxed);
        }
    }

    /// After `append_and_sign` failed: if the entries are durable anyway (the append succeeded,
    /// the checkpoint did not), the state must follow the log, and the entries are answered
    /// if a checkpoint covering them can still be signed. Otherwise nothing was appended and
    /// the batch fails as a whole. Returns the range and checkpoint to answer with, if any.
    fn recover_after_failure(
        &self,
        base: u64,
        count: usize,
        overlay: Overlay<'_>,
        error: &kt_log::log::LogError,
    ) -> Option<(Range<u64>, Arc<SignedCheckpoint>)> {
        let size = self.log.size();
        if size == base {
            return None;
        }
        tracing::error!(%error, base, size, "entries appended but not signed");
        let range = base..size;
        if size != base + count as u64 {
            self.poisoned.store(true, Ordering::Relaxed);
            return None;
        }
        let Ok(root) = self.log.root_at(size) else {
            self.poisoned.store(true, Ordering::Relaxed);
            return None;
        };
        self.commit_state(base, range.clone(), root.0, overlay);
        match self.log.sign_checkpoint() {
            Ok(checkpoint) if checkpoint.checkpoint.size >= size => Some((range, checkpoint)),
            _ => {
                // Durable but unsigned: answered as failures; the next start signs them.
                self.poisoned.store(true, Ordering::Relaxed);
                None
            }
        }
    }
}

/// An upper bound of the length of the update entry that seals a change of `entry_len` bytes
/// (base64 of the sealed bytes, padded to 64, plus nonce, tag, VRF proof and the JSON around
/// them), checked before the change is applied so that an oversized one is refused whole.
fn update_len_bound(entry_len: usize) -> usize {
    let sealed = 24 + 16 + (4 + 80 + entry_len).div_ceil(64) * 64;
    sealed.div_ceil(3) * 4 + 256
}
