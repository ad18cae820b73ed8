//! `audit`: the whole log, entry by entry, resumable.
//!
//! Guarantees, when the audit ends with exit 0: every entry up to the latest checkpoint was
//! downloaded, the tree recomputed from those exact bytes has the checkpoint's signed root,
//! the checkpoint is consistent with the saved one (proof from the server, or recomputation
//! through the saved size when auditing a local tile folder), and every entry passed these
//! checks: it parses per the schema (entry.rs); an issue/rotate entry's certificate is signed
//! by the CA and says what the entry says (unless `--skip-cert-signatures`); no serial is
//! issued twice; a rotation replaces a serial issued to the same identity; a revocation
//! names only serials issued to the same identity. Problems found in entries are kept in the
//! state, so a later run still reports them (exit 1).
//!
//! State (`STATE/<origin>/audit.json` + `serials.bin`): two snapshots, `verified` (a size
//! whose root matched a signed checkpoint) and `progress` (how far the last run got). Each
//! snapshot holds the size, the frontier hashes and how many serial records of `serials.bin`
//! (29 bytes each: length-prefixed serial in 21 bytes + 8-byte identity tag) belong to it.
//! `serials.bin` is only appended to and fsynced before `audit.json` is replaced, so the JSON
//! is the commit point. If the entries turn out not to match a signed root, progress falls
//! back to `verified`.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::PathBuf;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_log::note::NoteVerifier;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::download::{progress_bar, scan, Edge, EntryWorker, TileSource};
use crate::entry::{parse_entry, Entry};
use crate::error::Error;
use crate::fork::Evidence;
use crate::output::Outcome;
use crate::state::{write_atomic, StateDir};
use crate::sync::{check_consistent, Advance, ProofSource};
use crate::trust::Ca;
use crate::wire::{decode_hashes, encode_hashes};

/// Problems kept in the state (the count goes on beyond).
const MAX_PROBLEMS: usize = 1000;
/// Bytes of one record of `serials.bin`.
const RECORD: usize = 29;

/// A serial as a fixed-size key: length, then the bytes (leading zeros dropped).
type SerialKey = [u8; 21];

fn serial_key(serial: &[u8]) -> SerialKey {
    let mut key = [0u8; 21];
    let n = serial.len().min(20);
    key[0] = n as u8;
    key[1..1 + n].copy_from_slice(&serial[serial.len() - n..]);
    key
}

fn serial_key_hex(key: &SerialKey) -> String {
    crate::credential::hex(&key[1..1 + usize::from(key[0].min(20))])
}

/// An 8-byte tag of an identity (SHA-256 prefix), to tie serials to identities cheaply.
fn identity_tag(identity: &str) -> u64 {
    let d = Sha256::digest(identity.as_bytes());
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

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
    serial_records: u64,
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
            serial_records: 0,
            problem_count: 0,
        };
        AuditState {
            version: 1,
            origin: origin.to_owned(),
            verified: empty.clone(),
            verified_checkpoint: None,
            progress: empty,
            problems: Vec::new(),
        }
    }
}

/// What the in-order pass needs from one entry.
enum Fact {
    Problem(u64, String),
    Issue(u64, SerialKey, u64),
    Rotate(u64, SerialKey, SerialKey, u64),
    Revoke(u64, Vec<SerialKey>, u64),
}

struct AuditWorker<'a> {
    ca: &'a Ca,
    check_certs: bool,
}

impl EntryWorker for AuditWorker<'_> {
    type Out = Vec<Fact>;
    fn process(&self, first: u64, entries: &[&[u8]]) -> Vec<Fact> {
        let mut facts = Vec::with_capacity(entries.len());
        for (i, bytes) in entries.iter().enumerate() {
            let index = first + i as u64;
            let entry = match parse_entry(bytes) {
                Ok(e) => e,
                Err(e) => {
                    facts.push(Fact::Problem(index, e.to_string()));
                    continue;
                }
            };
            if let Some(b) = entry.binding() {
                if self.check_certs {
                    if let Err(e) = b.check_certificate(self.ca) {
                        facts.push(Fact::Problem(index, e.to_string()));
                        continue;
                    }
                }
            }
            let tag = identity_tag(entry.identity());
            facts.push(match entry {
                Entry::Issue(b) => Fact::Issue(index, serial_key(&b.serial), tag),
                Entry::Rotate(b) => {
                    let replaces = b.replaces.as_ref().map(|r| serial_key(&r.0));
                    match replaces {
                        Some(r) => Fact::Rotate(index, serial_key(&b.serial), r, tag),
                        None => Fact::Problem(index, "rotate without replaces".into()),
                    }
                }
                Entry::Revoke(r) => Fact::Revoke(
                    index,
                    r.serials.iter().map(|s| serial_key(&s.0)).collect(),
                    tag,
                ),
                Entry::Enable(_) => continue,
            });
        }
        facts
    }
}

/// Options of one audit run.
pub(crate) struct AuditOptions {
    /// Download threads.
    pub(crate) threads: usize,
    /// Verify every certificate's CA signature (the slow part).
    pub(crate) check_certs: bool,
    /// Show a progress bar (when stderr is a terminal).
    pub(crate) progress: bool,
}

/// The audit's serial bookkeeping.
struct Serials {
    known: HashMap<SerialKey, u64>,
    unsaved: Vec<(SerialKey, u64)>,
    path: PathBuf,
    saved_records: u64,
}

impl Serials {
    fn load(path: PathBuf, records: u64) -> Result<Serials, Error> {
        let mut known = HashMap::with_capacity(records as usize);
        if records > 0 {
            let mut file =
                std::fs::File::open(&path).map_err(|e| Error::io("cannot open", &path, e))?;
            let mut buf = vec![0u8; records as usize * RECORD];
            file.read_exact(&mut buf)
                .map_err(|e| Error::io("truncated audit serials file", &path, e))?;
            for rec in buf.chunks_exact(RECORD) {
                let mut key = [0u8; 21];
                key.copy_from_slice(&rec[..21]);
                let mut tag = [0u8; 8];
                tag.copy_from_slice(&rec[21..]);
                known.insert(key, u64::from_be_bytes(tag));
            }
        }
        Ok(Serials {
            known,
            unsaved: Vec::new(),
            path,
            saved_records: records,
        })
    }

    /// Appends the unsaved records after the first `saved_records` and fsyncs.
    fn flush(&mut self) -> Result<u64, Error> {
        if self.unsaved.is_empty() {
            return Ok(self.saved_records);
        }
        let path = &self.path;
        let io = |e| Error::io("cannot write", path, e);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io)?;
        let end = self.saved_records * RECORD as u64;
        file.set_len(end).map_err(io)?;
        file.seek(std::io::SeekFrom::Start(end)).map_err(io)?;
        let mut buf = Vec::with_capacity(self.unsaved.len() * RECORD);
        for (key, tag) in &self.unsaved {
            buf.extend_from_slice(key);
            buf.extend_from_slice(&tag.to_be_bytes());
        }
        file.write_all(&buf).map_err(io)?;
        file.sync_all().map_err(io)?;
        self.saved_records += self.unsaved.len() as u64;
        self.unsaved.clear();
        Ok(self.saved_records)
    }

    fn insert(&mut self, key: SerialKey, tag: u64) {
        self.known.insert(key, tag);
        self.unsaved.push((key, tag));
    }
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
            if state.origin != origin || state.version != 1 {
                return Err(Error::verify(format!(
                    "audit state {} is for another log or version",
                    path.display()
                )));
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
    ca: &Ca,
    state_dir: &StateDir,
    options: &AuditOptions,
) -> Result<Outcome, Error> {
    audit_once(source, proofs, verifier, ca, state_dir, options, false)
}

/// One pass of the audit. With a local tile folder, a root mismatch after resuming from a
/// saved frontier is ambiguous (bad new entries, or a new tree that does not extend the saved
/// one), so the pass is redone `from_scratch`: then the root at the saved size is recomputed
/// too, and a mismatch there is a fork.
#[allow(clippy::too_many_arguments)]
fn audit_once(
    source: &dyn TileSource,
    proofs: Option<&dyn ProofSource>,
    verifier: &NoteVerifier,
    ca: &Ca,
    state_dir: &StateDir,
    options: &AuditOptions,
    from_scratch: bool,
) -> Result<Outcome, Error> {
    let started = Instant::now();
    let target = open_checkpoint(&source.checkpoint()?, verifier)
        .map_err(|e| Error::verify(format!("checkpoint: {e}")))?;
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

    let mut edge = snapshot_edge(&state.progress)?;
    let mut serials = Serials::load(dir.join("serials.bin"), state.progress.serial_records)?;
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
            options,
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
            return Err(Evidence::new(cp, &target, &[], reason, None).report(state_dir.root()));
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

    let worker = AuditWorker {
        ca,
        check_certs: options.check_certs,
    };
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
            for fact in facts {
                match fact {
                    Fact::Problem(i, text) => problem(i, text),
                    Fact::Issue(i, serial, tag) => {
                        if serials.known.contains_key(&serial) {
                            problem(
                                i,
                                format!("serial {} issued twice", serial_key_hex(&serial)),
                            );
                        } else {
                            serials.insert(serial, tag);
                        }
                    }
                    Fact::Rotate(i, serial, replaces, tag) => {
                        match serials.known.get(&replaces) {
                            None => problem(
                                i,
                                format!(
                                    "rotation replaces unknown serial {}",
                                    serial_key_hex(&replaces)
                                ),
                            ),
                            Some(t) if *t != tag => problem(
                                i,
                                format!(
                                    "rotation replaces serial {} of another identity",
                                    serial_key_hex(&replaces)
                                ),
                            ),
                            Some(_) => {}
                        }
                        if serials.known.contains_key(&serial) {
                            problem(
                                i,
                                format!("serial {} issued twice", serial_key_hex(&serial)),
                            );
                        } else {
                            serials.insert(serial, tag);
                        }
                    }
                    Fact::Revoke(i, list, tag) => {
                        for s in list {
                            match serials.known.get(&s) {
                                None => problem(
                                    i,
                                    format!("revokes unknown serial {}", serial_key_hex(&s)),
                                ),
                                Some(t) if *t != tag => problem(
                                    i,
                                    format!(
                                        "revokes serial {} of another identity",
                                        serial_key_hex(&s)
                                    ),
                                ),
                                Some(_) => {}
                            }
                        }
                    }
                }
            }
            for h in hashes {
                edge.push(h);
                if let Some(cp) = &check_at {
                    check_root_at(&edge, cp)?;
                }
            }
            if last_save.elapsed().as_secs() >= 10 {
                last_save = Instant::now();
                state.progress = Snapshot {
                    size: edge.size(),
                    frontier: encode_hashes(edge.hashes()),
                    serial_records: serials.flush()?,
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
            return audit_once(source, proofs, verifier, ca, state_dir, options, true);
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
    let snapshot = Snapshot {
        size: edge.size(),
        frontier: encode_hashes(edge.hashes()),
        serial_records: serials.flush()?,
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
        options,
    ))
}

/// The audit's outcome. JSON: `origin`, `size`, `root`, `consistency`, `previous_size`,
/// `resumed_from`, `entries_checked`, `elapsed_ms`, `entries_per_second`,
/// `certificate_checks`, `problem_count`, `problems` [{index, problem}] (first 1000).
#[allow(clippy::too_many_arguments)]
fn report(
    target: &VerifiedCheckpoint,
    consistency: Advance,
    resumed_from: u64,
    checked: u64,
    started: Instant,
    state: &AuditState,
    problem_count: u64,
    options: &AuditOptions,
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
        "certificate_checks": options.check_certs,
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
    if !options.check_certs {
        human.push_str("certificate signatures were NOT checked (--skip-cert-signatures)\n");
    }
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
