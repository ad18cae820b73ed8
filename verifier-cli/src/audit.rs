//! `audit`: the whole log, entry by entry, resumable, from the log alone (no secret).
//!
//! Guarantees, when the audit ends with exit 0: every entry up to the latest checkpoint was
//! downloaded, the tree recomputed from those exact bytes has the checkpoint's signed root,
//! the checkpoint is consistent with the saved one (proof from the server, or recomputation
//! through the saved size when auditing a local tile folder), and every entry passed the
//! directory's public rules in log order (`kt_verify::audit`): each is a directory entry in
//! its canonical form, each update extends its label by exactly one version, every map entry's
//! root and label count are the map its updates make (a wrong one is named by index, expected
//! and found), and the log ends with a map entry. Problems are kept in the state, so a later
//! run still reports them (exit 1). What the public log hides (whose labels, what the records
//! say, the history rules of each identity) is each owner's to check (`monitor`).
//!
//! State (`STATE/<origin>/audit.json`, `map-progress.bin`, `map-verified.bin`): two snapshots,
//! `verified` (a size whose root matched a signed checkpoint) and `progress` (how far the last
//! run got), each with the size, the frontier hashes, and the map the entries before it made
//! (its file, written before `audit.json` is replaced, so the JSON is the commit point; a
//! snapshot is taken only where a batch ends). If the entries turn out not to match a signed
//! root, progress falls back to `verified`. A state of an earlier version is audited again
//! from the start.

use std::time::Instant;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_log::note::NoteVerifier;
use serde::{Deserialize, Serialize};
use serde_json::json;

use kt_protocol::directory::public_entry::{PublicEntry, PublicEntryError};
use kt_protocol::directory::tree::Map;
use kt_verify::audit::Audit;

use crate::download::{progress_bar, scan, Edge, EntryWorker, TileSource};
use crate::error::Error;
use crate::output::Outcome;
use crate::state::{write_atomic, StateDir};
use crate::sync::{check_consistent, Advance, ProofSource};
use crate::wire::{decode_hashes, encode_hashes};

/// Problems kept in the state (the count goes on beyond).
const MAX_PROBLEMS: usize = 1000;
/// The version of `audit.json` this code writes (3: the directory's public rules).
const STATE_VERSION: u32 = 3;
/// How often the progress is saved (a save writes the whole map).
const SAVE_EVERY_SECONDS: u64 = 30;

/// A problem found in one entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Problem {
    /// Log index of the entry.
    pub(crate) index: u64,
    /// What is wrong.
    pub(crate) problem: String,
}

/// One resumable point of the audit.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Snapshot {
    size: u64,
    frontier: Vec<String>,
    /// Labels in the map saved with it (a check on its file).
    map_labels: u64,
    problem_count: u64,
}

/// `audit.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AuditState {
    version: u32,
    origin: String,
    verified: Snapshot,
    verified_checkpoint: Option<String>,
    progress: Snapshot,
    problems: Vec<Problem>,
}

impl AuditState {
    fn new(origin: &str) -> AuditState {
        let empty = Snapshot {
            size: 0,
            frontier: Vec::new(),
            map_labels: 0,
            problem_count: 0,
        };
        AuditState {
            version: STATE_VERSION,
            origin: origin.to_owned(),
            verified: empty.clone(),
            verified_checkpoint: None,
            progress: empty,
            problems: Vec::new(),
        }
    }
}

/// Parses entries in parallel; the in-order pass applies the rules.
struct AuditWorker;

impl EntryWorker for AuditWorker {
    type Out = Vec<Result<PublicEntry, PublicEntryError>>;
    fn process(&self, _first: u64, entries: &[&[u8]]) -> Self::Out {
        entries
            .iter()
            .map(|bytes| PublicEntry::parse(bytes))
            .collect()
    }
}

/// Options of one audit run.
pub(crate) struct AuditOptions {
    /// Download threads.
    pub(crate) threads: usize,
    /// Show a progress bar (when stderr is a terminal).
    pub(crate) progress: bool,
    /// The witness policy the log's checkpoint must satisfy (if any).
    pub(crate) witnesses: crate::trust::Witnesses,
}

/// The map saved with snapshot `s` in `file` (empty for size 0).
fn snapshot_map(s: &Snapshot, file: &std::path::Path) -> Result<Option<Map>, Error> {
    if s.size == 0 {
        return Ok(Some(Map::new()));
    }
    Ok(crate::audit_map::load(file)?.filter(|m| m.len() == s.map_labels))
}

fn snapshot_edge(s: &Snapshot) -> Result<Edge, Error> {
    let hashes = decode_hashes(&s.frontier, "audit state frontier")?;
    Edge::from_parts(s.size, hashes)
        .ok_or_else(|| Error::verify("audit state is corrupt: frontier does not fit its size"))
}

fn load_state(path: &std::path::Path, origin: &str) -> Result<AuditState, Error> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let state: AuditState = serde_json::from_slice(&bytes).map_err(|e| {
                Error::verify(format!("audit state {} is corrupt: {e}", path.display()))
            })?;
            if state.origin != origin || state.version > STATE_VERSION {
                return Err(Error::verify(format!(
                    "audit state {} is for another log or a newer version",
                    path.display()
                )));
            }
            if state.version < STATE_VERSION {
                // Checked by older rules: audit again from the start.
                return Ok(AuditState::new(origin));
            }
            Ok(state)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuditState::new(origin)),
        Err(e) => Err(Error::io("cannot read", path, e)),
    }
}

fn save_state(path: &std::path::Path, state: &AuditState) -> Result<(), Error> {
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| Error::Network(format!("cannot encode audit state: {e}")))?;
    write_atomic(path, &json)
}

/// Runs the audit (see the module doc). `proofs` is the server when online; `None` when the
/// tiles are a local folder (consistency is then shown by recomputation).
pub(crate) fn audit(
    source: &dyn TileSource,
    proofs: Option<&dyn ProofSource>,
    verifier: &NoteVerifier,
    state_dir: &StateDir,
    options: &AuditOptions,
) -> Result<Outcome, Error> {
    audit_once(source, proofs, verifier, state_dir, options, false)
}

/// One pass of the audit. With a local tile folder, a root mismatch after resuming from a
/// saved frontier is ambiguous (bad new entries, or a new tree that does not extend the saved
/// one), so the pass is redone `from_scratch`: then the root at the saved size is recomputed
/// too, and a mismatch there is a fork.
fn audit_once(
    source: &dyn TileSource,
    proofs: Option<&dyn ProofSource>,
    verifier: &NoteVerifier,
    state_dir: &StateDir,
    options: &AuditOptions,
    from_scratch: bool,
) -> Result<Outcome, Error> {
    let started = Instant::now();
    let target = open_checkpoint(&source.checkpoint()?, verifier)
        .map_err(|e| Error::verify(format!("checkpoint: {e}")))?;
    options.witnesses.check(&target, verifier, "checkpoint")?;
    let origin = target.checkpoint().origin.clone();
    let saved = state_dir.load_checkpoint(verifier)?;
    let dir = state_dir.log_dir(&origin)?;
    let state_path = dir.join("audit.json");
    let mut state = if from_scratch {
        AuditState::new(&origin)
    } else {
        load_state(&state_path, &origin)?
    };

    // Consistency with the saved checkpoint.
    let mut check_at: Option<VerifiedCheckpoint> = None;
    let consistency = match proofs {
        Some(p) => check_consistent(state_dir, saved.as_ref(), &target, p)?,
        None => match &saved {
            None => Advance::First,
            Some(s) if s.size() > target.size() => {
                return Err(Error::Usage(format!(
                    "the tiles' checkpoint (size {}) is older than the saved one (size {}): \
                     audit a newer copy, or use --server",
                    target.size(),
                    s.size()
                )))
            }
            Some(s) => {
                if s.size() < state.progress.size && s.size() > state.verified.size {
                    // The saved size lies in unverified progress: redo it from `verified`.
                    state.progress = state.verified.clone();
                }
                if s.size() < state.progress.size && s.size() != state.verified.size {
                    // Only reachable if the state files were edited: start over.
                    state = AuditState::new(&origin);
                }
                check_at = Some(s.clone());
                if s.size() == target.size() {
                    Advance::Unchanged
                } else {
                    Advance::Extended { from: s.size() }
                }
            }
        },
    };

    let (progress_file, verified_file) =
        (dir.join("map-progress.bin"), dir.join("map-verified.bin"));
    let map = match snapshot_map(&state.progress, &progress_file)? {
        Some(map) => map,
        None => match snapshot_map(&state.verified, &verified_file)? {
            Some(map) => {
                state.progress = state.verified.clone();
                map
            }
            None => {
                // The saved maps are gone or damaged: start over.
                state = AuditState::new(&origin);
                Map::new()
            }
        },
    };
    let mut edge = snapshot_edge(&state.progress)?;
    let mut audit = Audit::resume(map, edge.size());
    state
        .problems
        .truncate(state.progress.problem_count.min(MAX_PROBLEMS as u64) as usize);
    let mut problem_count = state.progress.problem_count;
    let start_size = edge.size();

    if target.size() < start_size {
        // The server's checkpoint is behind this audit's progress: nothing new to download.
        return Ok(report(
            &target,
            consistency,
            start_size,
            0,
            started,
            &state,
            problem_count,
            audit.map().len(),
        ));
    }

    let check_root_at = |edge: &Edge, cp: &VerifiedCheckpoint| -> Result<(), Error> {
        if edge.size() == cp.size() && edge.root() != cp.root() {
            let reason = format!(
                "the entries that hash to the size-{} signed root give root {} at size {}, \
                 not the saved checkpoint's {}",
                target.size(),
                edge.root(),
                cp.size(),
                cp.root()
            );
            return Err(crate::fork::report(
                crate::fork::evidence(cp, &target, &[], reason, None),
                state_dir.root(),
            ));
        }
        Ok(())
    };
    if let Some(cp) = &check_at {
        if edge.size() == cp.size()
            && edge.root() != cp.root()
            && edge.size() == state.verified.size
        {
            check_root_at(&edge, cp)?;
        }
    }

    let worker = AuditWorker;
    let bar = progress_bar(target.size() - start_size, options.progress);
    let mut last_save = Instant::now();
    let result = scan(
        source,
        start_size,
        target.size(),
        options.threads,
        &worker,
        &bar,
        |(_, hashes, facts)| {
            let mut problem = |index: u64, text: String| {
                problem_count += 1;
                if state.problems.len() < MAX_PROBLEMS {
                    state.problems.push(Problem {
                        index,
                        problem: text,
                    });
                }
            };
            for parsed in facts {
                let index = audit.next_index();
                if let Err(e) = audit.apply_parsed(parsed) {
                    problem(index, e.to_string());
                }
            }
            for h in hashes {
                edge.push(h);
                if let Some(cp) = &check_at {
                    check_root_at(&edge, cp)?;
                }
            }
            if last_save.elapsed().as_secs() >= SAVE_EVERY_SECONDS && audit.at_batch_end() {
                last_save = Instant::now();
                crate::audit_map::save(&progress_file, audit.map())?;
                state.progress = Snapshot {
                    size: edge.size(),
                    frontier: encode_hashes(edge.hashes()),
                    map_labels: audit.map().len(),
                    problem_count,
                };
                save_state(&state_path, &state)?;
            }
            Ok(())
        },
    );
    bar.finish_and_clear();
    result?;

    if edge.root() != target.root() {
        if proofs.is_none() && start_size > 0 && !from_scratch {
            return audit_once(source, proofs, verifier, state_dir, options, true);
        }
        state.progress = state.verified.clone();
        save_state(&state_path, &state)?;
        return Err(Error::verify(format!(
            "the downloaded entries give root {} at size {}, the signed checkpoint says {}",
            edge.root(),
            target.size(),
            target.root()
        )));
    }
    if let Err(e) = audit.finish() {
        problem_count += 1;
        if state.problems.len() < MAX_PROBLEMS {
            state.problems.push(Problem {
                index: target.size().saturating_sub(1),
                problem: e.to_string(),
            });
        }
    }
    crate::audit_map::save(&progress_file, audit.map())?;
    crate::audit_map::save(&verified_file, audit.map())?;
    let snapshot = Snapshot {
        size: edge.size(),
        frontier: encode_hashes(edge.hashes()),
        map_labels: audit.map().len(),
        problem_count,
    };
    state.progress = snapshot.clone();
    state.verified = snapshot;
    state.verified_checkpoint = Some(String::from_utf8_lossy(target.note()).into_owned());
    save_state(&state_path, &state)?;
    if matches!(consistency, Advance::First | Advance::Extended { .. }) {
        state_dir.save_checkpoint(&target)?;
    }
    let checked = edge.size() - start_size;
    Ok(report(
        &target,
        consistency,
        start_size,
        checked,
        started,
        &state,
        problem_count,
        audit.map().len(),
    ))
}

/// The audit's outcome. JSON: `origin`, `size`, `root`, `consistency`, `previous_size`,
/// `resumed_from`, `entries_checked`, `elapsed_ms`, `entries_per_second`, `labels` (in the
/// map), `problem_count`, `problems` [{index, problem}] (first 1000).
#[allow(clippy::too_many_arguments)]
fn report(
    target: &VerifiedCheckpoint,
    consistency: Advance,
    resumed_from: u64,
    checked: u64,
    started: Instant,
    state: &AuditState,
    problem_count: u64,
    labels: u64,
) -> Outcome {
    let elapsed = started.elapsed();
    let rate = if elapsed.as_secs_f64() > 0.0 {
        (checked as f64 / elapsed.as_secs_f64()) as u64
    } else {
        0
    };
    let json = json!({
        "origin": target.checkpoint().origin,
        "size": target.size(),
        "root": B64.encode(target.root().0),
        "consistency": consistency.word(),
        "previous_size": consistency.previous_size(),
        "resumed_from": resumed_from,
        "entries_checked": checked,
        "elapsed_ms": elapsed.as_millis() as u64,
        "entries_per_second": rate,
        "labels": labels,
        "problem_count": problem_count,
        "problems": state.problems,
    });
    let mut human = format!(
        "audited log {} up to size {} (root {}): {} new entries in {:.1} s ({} entries/s), \
         consistency with saved state: {}\n",
        target.checkpoint().origin,
        target.size(),
        B64.encode(target.root().0),
        checked,
        elapsed.as_secs_f64(),
        rate,
        consistency.word()
    );
    human.push_str(&format!("the directory's map holds {labels} labels\n"));
    if problem_count == 0 {
        human.push_str("no problems found");
        Outcome::ok(json, human)
    } else {
        human.push_str(&format!("{problem_count} PROBLEM(S) in the log:\n"));
        for p in state.problems.iter().take(50) {
            human.push_str(&format!("  entry {}: {}\n", p.index, p.problem));
        }
        Outcome::failed(json, human)
    }
}
