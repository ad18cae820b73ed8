//! The sequencer: the single writer of the log and the state, with group commit.
//!
//! Handlers submit [`Action`]s to a bounded queue; a full queue is refused at once with
//! `503 overloaded` and `Retry-After` (back-pressure, never an unbounded wait). One thread takes
//! whatever is queued (up to `max_batch`), admits each action in order ([`admit`]), appends the
//! admitted entries durably and signs one checkpoint over them ([`Log::append_and_sign`]),
//! writes their state changes, and only then answers each request. When idle it blocks on the
//! queue: a lone request is committed at once, with no fixed wait.
//!
//! Guarantees: an answer of success means the entry is durable and covered by the checkpoint
//! it carries. A failed append answers every request of the batch with an error and changes
//! nothing. If the state write fails after the log commit, the entries are still answered (they
//! are durable), and the sequencer stops taking actions: the state is behind the log, and only
//! a restart ([`crate::state::State::catch_up`]) may bring it level.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use kt_log::checkpoint::SignedCheckpoint;
use kt_log::log::Log;
use kt_log::store::FileStore;
use kt_log::tiles::MAX_ENTRY_LEN;
use tokio::sync::oneshot;

pub use crate::admission::Action;
use crate::admission::{admit, Limits};
use crate::entry::{EntryBody, LogEntry};
use crate::metrics::Metrics;
use crate::refusal::{Refusal, RefusalKind};
use crate::state::{Overlay, State};
use crate::unix_now;

/// The log type the AS runs on.
pub type AsLog = Log<FileStore>;

/// A committed action: where its entry is and the checkpoint that covers it.
#[derive(Clone, Debug)]
pub struct Committed {
    /// Log index of the entry.
    pub index: u64,
    /// The entry's exact bytes.
    pub entry: Vec<u8>,
    /// What the entry says.
    pub body: EntryBody,
    /// A checkpoint whose tree contains the entry.
    pub checkpoint: Arc<SignedCheckpoint>,
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
    /// Starts the sequencer thread over `log` and `state` (which must be caught up).
    pub fn start(
        log: Arc<AsLog>,
        state: State,
        config: SequencerConfig,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Sequencer> {
        let (queue, jobs) = mpsc::sync_channel(config.queue_capacity.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            log,
            state,
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
        let mut admitted: Vec<(Job, LogEntry, Vec<u8>)> = Vec::with_capacity(batch.len());
        for job in batch {
            match admit(&overlay, &job.action, now, &self.config.limits) {
                Ok(body) => {
                    let entry = LogEntry::new(body);
                    let bytes = entry.to_bytes();
                    if bytes.len() > MAX_ENTRY_LEN {
                        // Refuse this action alone; the rest of the batch goes on.
                        let _gone = job.reply.send(Err(Refusal::new(
                            RefusalKind::Conflict,
                            format!(
                                "the log entry would be {} bytes; entries are limited to {MAX_ENTRY_LEN}",
                                bytes.len()
                            ),
                        )));
                        continue;
                    }
                    let index = base + admitted.len() as u64;
                    if let Err(e) = overlay.apply_entry(index, &entry) {
                        let _gone = job.reply.send(Err(Refusal::failed(e)));
                        continue;
                    }
                    admitted.push((job, entry, bytes));
                }
                Err(refusal) => {
                    let _gone = job.reply.send(Err(refusal));
                }
            }
        }
        if admitted.is_empty() {
            return;
        }
        let entries: Vec<&[u8]> = admitted.iter().map(|(_, _, b)| b.as_slice()).collect();
        let (range, checkpoint) = match self.log.append_and_sign(&entries) {
            Ok((range, checkpoint)) => {
                self.commit_state(base, range.clone(), checkpoint.checkpoint.root.0, overlay);
                (range, checkpoint)
            }
            Err(e) => match self.recover_after_failure(base, admitted.len(), overlay, &e) {
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
        self.metrics.record_batch(admitted.len(), range.end);
        for (offset, (job, entry, bytes)) in admitted.into_iter().enumerate() {
            let _gone = job.reply.send(Ok(Committed {
                index: range.start + offset as u64,
                entry: bytes,
                body: entry.body,
                checkpoint: Arc::clone(&checkpoint),
            }));
        }
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
