//! The witness: checks add-checkpoint requests against the latest checkpoint it cosigned for
//! each log, persists, and cosigns (C2SP tlog-witness, <https://c2sp.org/tlog-witness>).
//!
//! Guarantees of [`Witness::add_checkpoint`], for every log:
//! - It cosigns a checkpoint only if it carries a valid signature by one of the log's
//!   configured keys and is consistent with the latest checkpoint it cosigned before (a
//!   verified RFC 6962 consistency proof from exactly that size and root, or the same size and
//!   root), or nothing was cosigned yet and the old size is 0.
//! - Check and update are one critical section per log (a mutex held from reading the stored
//!   size to the end of the durable write), so concurrent requests are serialised and the
//!   stored size never goes down: the rollback race of the spec cannot happen.
//! - The new latest checkpoint is durable (file fsynced, renamed over the old one, folder
//!   fsynced) before the cosignature is returned; if persisting fails, no cosignature is
//!   returned. After a crash the witness restarts from the last acknowledged checkpoint or a
//!   later one, never an earlier one.
//! - A log-signed checkpoint of the stored size with another root, or with a failing proof
//!   from the stored checkpoint, is kept as an evidence file (see [`crate::evidence`]).
//! - For a log in the auditing mode, it cosigns only after [`crate::auditor::Auditor::check`]
//!   found that the entries the checkpoint adds keep the directory's rules (beyond the spec:
//!   503 when the log's tiles cannot be fetched, 422 when the rules are broken).
//!
//! The spec's answers are the variants of [`AddError`]; [`AddError::status`] gives the code.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use kt_log::checkpoint::{Checkpoint, CheckpointError};
use kt_log::hash::empty_root;
use kt_log::note::{self, NoteError, NoteVerifier};
use kt_log::verify::{verify_consistency, ProofError};
use kt_log::Hash;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::auditor::{AuditFailure, Auditor};
use crate::config::Config;
use crate::cosignature::{hex, CosignatureSigner};
use crate::evidence::{Evidence, EvidenceKind};
use crate::files::{create_dir_durable, write_atomic};
use kt_log::witness_request::{AddCheckpointRequest, RequestError};

/// Why an add-checkpoint request was not cosigned: one variant per answer of the spec.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AddError {
    /// 400: the body is not the add-checkpoint form.
    #[error("malformed request: {0}")]
    Malformed(#[from] RequestError),
    /// 400: the checkpoint note or body is malformed.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(String),
    /// 404: the checkpoint's origin is not a log this witness witnesses.
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// 403: no signature by a trusted key of the log, or one that fails.
    #[error("checkpoint not signed by the log: {0}")]
    Forbidden(NoteError),
    /// 400: the old size is larger than the checkpoint's size.
    #[error("old size {old} is larger than the checkpoint size {new}")]
    OldAfterNew {
        /// The request's old size.
        old: u64,
        /// The checkpoint's size.
        new: u64,
    },
    /// 409: the old size is not the size of the latest checkpoint cosigned for the log.
    #[error("old size does not match the latest cosigned size {latest}")]
    Conflict {
        /// The size of the latest cosigned checkpoint (0 if none).
        latest: u64,
    },
    /// 422: a checkpoint of size 0 whose root is not the empty tree's.
    #[error("a checkpoint of size 0 must have the empty tree's root")]
    EmptyTreeRoot,
    /// 422: a consistency proof was sent with old size 0.
    #[error("the consistency proof must be empty when the old size is 0")]
    ProofFromZero,
    /// 422: the same size as the latest cosigned checkpoint, with another root.
    #[error("the same size as the latest cosigned checkpoint with another root")]
    SameSizeOtherRoot,
    /// 422: the consistency proof does not verify.
    #[error("consistency proof does not verify: {0}")]
    BadProof(ProofError),
    /// 422 (auditing mode, beyond the spec): the entries the checkpoint adds break the
    /// directory's rules, or do not hash to its root.
    #[error("the log breaks the directory's rules: {0}")]
    DirectoryRules(String),
    /// 503 (auditing mode, beyond the spec): the log's tiles could not be fetched to audit
    /// the checkpoint; ask again later.
    #[error("cannot audit the checkpoint now: {0}")]
    AuditUnavailable(String),
    /// 500: the new checkpoint could not be made durable, or the clock or key failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AddError {
    /// The HTTP status code the spec gives this answer.
    pub fn status(&self) -> u16 {
        match self {
            AddError::Malformed(_) | AddError::MalformedCheckpoint(_) => 400,
            AddError::OldAfterNew { .. } => 400,
            AddError::UnknownOrigin(_) => 404,
            AddError::Forbidden(_) => 403,
            AddError::Conflict { .. } => 409,
            AddError::EmptyTreeRoot
            | AddError::ProofFromZero
            | AddError::SameSizeOtherRoot
            | AddError::BadProof(_)
            | AddError::DirectoryRules(_) => 422,
            AddError::Internal(_) => 500,
            AddError::AuditUnavailable(_) => 503,
        }
    }
}

/// The latest checkpoint cosigned for a log.
#[derive(Debug, Clone)]
struct Latest {
    size: u64,
    root: Hash,
}

/// One witnessed log: its keys, its state file and its state.
struct WitnessedLog {
    keys: Vec<NoteVerifier>,
    file: PathBuf,
    /// The check-and-update lock: held from reading the size to the end of the durable write.
    latest: Mutex<Option<Latest>>,
    /// The stored note (log signatures and this witness's cosignature), for monitors.
    published: RwLock<Option<Arc<Vec<u8>>>>,
    /// The auditing mode's auditor, if the log is audited.
    auditor: Option<Auditor>,
}

/// A witness over the logs of its configuration, with its state in a data folder.
pub struct Witness {
    signer: CosignatureSigner,
    logs: HashMap<String, WitnessedLog>,
    by_origin_hash: HashMap<String, String>,
    evidence_dir: PathBuf,
    evidence_count: AtomicU64,
    audit_failures: AtomicU64,
    clock: fn() -> u64,
}

/// The witness's key file in the data folder (mode 0600).
pub const KEY_FILE: &str = "witness-key";
/// Its public key, in the vkey form, beside it.
pub const PUBLIC_KEY_FILE: &str = "witness-key.pub";

/// Seconds since the Unix epoch by the system clock (0 if the clock is before it).
pub fn system_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Lower-case hex SHA-256 of an origin: the monitoring path component and state file name.
pub fn origin_hash(origin: &str) -> String {
    hex(&Sha256::digest(origin.as_bytes()))
}

/// Loads the witness key from `data`, or creates it (0600, atomically, folder synced).
fn load_or_create_key(data: &Path, name: &str) -> Result<CosignatureSigner, String> {
    let path = data.join(KEY_FILE);
    let signer = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let signer =
                CosignatureSigner::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            if signer.name() != name {
                return Err(format!(
                    "{} is the key of witness {:?}, not of {name:?}: one key per witness name \
                     (cosignature/v1 does not sign the name)",
                    path.display(),
                    signer.name()
                ));
            }
            signer
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let signer = CosignatureSigner::generate(name).map_err(|e| e.to_string())?;
            let mut text = signer.to_skey();
            text.push('\n');
            write_atomic(&path, text.as_bytes(), true)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            tracing::info!(file = %path.display(), "created the witness key");
            signer
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let public = data.join(PUBLIC_KEY_FILE);
    let vkey = format!("{}\n", signer.verifier().to_vkey());
    if std::fs::read_to_string(&public).ok().as_deref() != Some(vkey.as_str()) {
        write_atomic(&public, vkey.as_bytes(), false)
            .map_err(|e| format!("{}: {e}", public.display()))?;
    }
    Ok(signer)
}

/// Reads a stored note: its checkpoint's size and root. Refuses anything but a checkpoint of
/// `origin` (a state file that cannot be read stops the start: never a silent reset).
fn read_state(file: &Path, origin: &str) -> Result<Option<(Latest, Vec<u8>)>, String> {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    let bad = |why: &str| format!("state file {} of {origin:?}: {why}", file.display());
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8"))?;
    let split = text.rfind("\n\n").ok_or_else(|| bad("not a signed note"))?;
    let checkpoint = Checkpoint::parse(&text[..split + 1]).map_err(|e| bad(&e.to_string()))?;
    if checkpoint.origin != origin {
        return Err(bad("holds another origin"));
    }
    let latest = Latest {
        size: checkpoint.size,
        root: checkpoint.root,
    };
    Ok(Some((latest, bytes)))
}

impl Witness {
    /// Opens the witness: its key (created at first start) and the state of every configured
    /// log from `data` (created if missing).
    pub fn open(config: &Config, data: &Path) -> Result<Witness, String> {
        Witness::open_with_clock(config, data, system_clock)
    }

    /// [`Witness::open`] with another clock (Unix seconds) for cosignature timestamps.
    pub fn open_with_clock(
        config: &Config,
        data: &Path,
        clock: fn() -> u64,
    ) -> Result<Witness, String> {
        let logs_dir = data.join("logs");
        let evidence_dir = data.join("evidence");
        let audit_dir = data.join("audit");
        for dir in [data, &logs_dir, &evidence_dir, &audit_dir] {
            create_dir_durable(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let signer = load_or_create_key(data, &config.name)?;
        let mut logs = HashMap::new();
        let mut by_origin_hash = HashMap::new();
        for log in &config.logs {
            let hash = origin_hash(&log.origin);
            let file = logs_dir.join(&hash);
            let state = read_state(&file, &log.origin)?;
            let (latest, published) = match state {
                Some((latest, note)) => (Some(latest), Some(Arc::new(note))),
                None => (None, None),
            };
            let auditor = match &log.audit {
                Some(audit) => Some(
                    Auditor::new(audit, audit_dir.join(&hash))
                        .map_err(|e| format!("log {:?}: {e}", log.origin))?,
                ),
                None => None,
            };
            by_origin_hash.insert(hash, log.origin.clone());
            logs.insert(
                log.origin.clone(),
                WitnessedLog {
                    keys: log.keys.clone(),
                    file,
                    latest: Mutex::new(latest),
                    published: RwLock::new(published),
                    auditor,
                },
            );
        }
        let evidence_count = std::fs::read_dir(&evidence_dir)
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        Ok(Witness {
            signer,
            logs,
            by_origin_hash,
            evidence_dir,
            evidence_count: AtomicU64::new(evidence_count),
            audit_failures: AtomicU64::new(0),
            clock,
        })
    }

    /// The witness's cosigner name.
    pub fn name(&self) -> &str {
        self.signer.name()
    }

    /// The witness's public key, `name+hexid+base64(0x04 ‖ key)`.
    pub fn verifier_key(&self) -> String {
        self.signer.verifier().to_vkey()
    }

    /// How many logs it witnesses.
    pub fn log_count(&self) -> usize {
        self.logs.len()
    }

    /// How many evidence files it holds.
    pub fn evidence_count(&self) -> u64 {
        self.evidence_count.load(Ordering::Relaxed)
    }

    /// How many entries the auditing mode audited since the start, over every log.
    pub fn audited_entries(&self) -> u64 {
        self.logs
            .values()
            .filter_map(|log| log.auditor.as_ref())
            .map(Auditor::audited)
            .sum()
    }

    /// How many checkpoints the auditing mode refused for breaking the rules.
    pub fn audit_failures(&self) -> u64 {
        self.audit_failures.load(Ordering::Relaxed)
    }

    /// The latest cosigned checkpoint note (with the log's signatures and this witness's
    /// cosignature) of the log whose lower-case hex SHA-256 origin hash is `hash`.
    pub fn latest_by_origin_hash(&self, hash: &str) -> Option<Arc<Vec<u8>>> {
        let log = self.logs.get(self.by_origin_hash.get(hash)?)?;
        let published = log.published.read().unwrap_or_else(|e| e.into_inner());
        published.clone()
    }

    /// The size of the latest checkpoint cosigned for `origin` (None: unknown or none yet).
    pub fn latest_size(&self, origin: &str) -> Option<u64> {
        let log = self.logs.get(origin)?;
        let latest = log.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest.as_ref().map(|l| l.size)
    }

    /// Handles an add-checkpoint request body; returns the cosignature line (see the module
    /// guarantees). Blocking: it writes and fsyncs files.
    pub fn add_checkpoint(&self, body: &[u8]) -> Result<String, AddError> {
        let request = AddCheckpointRequest::parse(body)?;
        // The note's first line is the origin; it picks the keys to verify with.
        let origin = request
            .note
            .split(|&b| b == b'\n')
            .next()
            .and_then(|line| std::str::from_utf8(line).ok())
            .unwrap_or_default();
        let log = self
            .logs
            .get(origin)
            .ok_or_else(|| AddError::UnknownOrigin(origin.to_owned()))?;
        let opened = note::open(&request.note, &log.keys).map_err(|e| match e {
            NoteError::Malformed(_) | NoteError::TooManySignatures => {
                AddError::MalformedCheckpoint(e.to_string())
            }
            other => AddError::Forbidden(other),
        })?;
        let checkpoint = Checkpoint::parse(opened.text()).map_err(|e| match e {
            CheckpointError::Note(e) => AddError::Forbidden(e),
            other => AddError::MalformedCheckpoint(other.to_string()),
        })?;
        if checkpoint.origin != origin {
            return Err(AddError::MalformedCheckpoint("origin line".into()));
        }
        if request.old_size > checkpoint.size {
            return Err(AddError::OldAfterNew {
                old: request.old_size,
                new: checkpoint.size,
            });
        }

        // The critical section: from reading the stored size to the durable write.
        let mut latest = log.latest.lock().unwrap_or_else(|e| e.into_inner());
        let (stored_size, stored_root) = latest
            .as_ref()
            .map_or((0, empty_root()), |l| (l.size, l.root));
        if request.old_size != stored_size {
            return Err(AddError::Conflict {
                latest: stored_size,
            });
        }
        if checkpoint.size == 0 && checkpoint.root != empty_root() {
            return Err(AddError::EmptyTreeRoot);
        }
        if request.old_size == 0 && !request.proof.is_empty() {
            return Err(AddError::ProofFromZero);
        }
        if request.old_size == checkpoint.size {
            if checkpoint.root != stored_root {
                self.keep_evidence(log, origin, EvidenceKind::SameSizeOtherRoot, body);
                return Err(AddError::SameSizeOtherRoot);
            }
            if !request.proof.is_empty() {
                // The same tree: the only consistency proof is the empty one.
                return Err(AddError::BadProof(ProofError::WrongProofLength {
                    expected: 0,
                    got: request.proof.len(),
                }));
            }
        } else if request.old_size > 0 {
            if let Err(e) = verify_consistency(
                request.old_size,
                checkpoint.size,
                &stored_root,
                &checkpoint.root,
                &request.proof,
            ) {
                self.keep_evidence(log, origin, EvidenceKind::InconsistentProof, body);
                return Err(AddError::BadProof(e));
            }
        }

        let audited = match &log.auditor {
            Some(auditor) if checkpoint.size > stored_size => {
                self.audit(auditor, origin, &checkpoint)?;
                Some(auditor)
            }
            _ => None,
        };
        let timestamp = (self.clock)();
        let line = match self.signer.cosign(opened.text(), timestamp) {
            Ok(line) => line,
            Err(e) => {
                // Not cosigned: the audit's progress must not run ahead of what is.
                audited.inspect(|a| a.discard());
                return Err(AddError::Internal(e.to_string()));
            }
        };
        let stored = self.stored_note(&request.note, opened.text(), &line);
        if let Err(e) = write_atomic(&log.file, &stored, false) {
            audited.inspect(|a| a.discard());
            tracing::error!(origin, error = %e, "cannot persist the checkpoint");
            // The rename may have happened (only the folder sync failed): the file is then
            // at least as new as the memory, never older, and the next write syncs it.
            return Err(AddError::Internal("cannot persist the checkpoint".into()));
        }
        *latest = Some(Latest {
            size: checkpoint.size,
            root: checkpoint.root,
        });
        *log.published.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(stored));
        if let Some(auditor) = audited {
            auditor.commit();
        }
        drop(latest);
        Ok(line)
    }

    /// The auditing mode's check of `checkpoint` (see [`crate::auditor`]).
    fn audit(
        &self,
        auditor: &Auditor,
        origin: &str,
        checkpoint: &Checkpoint,
    ) -> Result<(), AddError> {
        auditor
            .check(checkpoint.size, &checkpoint.root)
            .map_err(|failure| match failure {
                AuditFailure::Unavailable(why) => {
                    tracing::warn!(origin, why, "cannot fetch the log's entries to audit");
                    AddError::AuditUnavailable(why)
                }
                AuditFailure::Broken(why) => {
                    self.audit_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        origin,
                        size = checkpoint.size,
                        why,
                        "the log's checkpoint breaks the directory's rules: not cosigned"
                    );
                    AddError::DirectoryRules(why)
                }
            })
    }

    /// The note to store and serve: the text, the submitted signatures but any line under
    /// this witness's name (a stale or forged one), then this witness's cosignature.
    fn stored_note(&self, note: &[u8], text: &str, line: &str) -> Vec<u8> {
        // `note::open` split the note as text, "\n", signature lines: this slice is in bounds.
        let signatures = note.get(text.len() + 1..).unwrap_or_default();
        let own = format!("\u{2014} {} ", self.signer.name());
        let mut out = Vec::with_capacity(note.len() + line.len());
        out.extend_from_slice(text.as_bytes());
        out.push(b'\n');
        for sig in signatures.split_inclusive(|&b| b == b'\n') {
            if !sig.starts_with(own.as_bytes()) {
                out.extend_from_slice(sig);
            }
        }
        out.extend_from_slice(line.as_bytes());
        out
    }

    /// Writes an evidence file for a refused, log-signed request (best effort: a failure is
    /// logged, the answer is the same). One file per distinct pair of notes and kind, so a
    /// replayed request adds nothing.
    fn keep_evidence(&self, log: &WitnessedLog, origin: &str, kind: EvidenceKind, body: &[u8]) {
        let cosigned = log
            .published
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(cosigned) = cosigned else {
            return;
        };
        let Ok(request) = AddCheckpointRequest::parse(body) else {
            return;
        };
        let mut id = Sha256::new();
        id.update(kind.as_str());
        id.update([0]);
        id.update(cosigned.as_slice());
        id.update([0]);
        id.update(&request.note);
        let name = format!("{}-{}", kind.as_str(), &hex(&id.finalize())[..32]);
        let path = self.evidence_dir.join(name);
        if path.exists() {
            return;
        }
        let evidence = Evidence {
            kind,
            origin: origin.to_owned(),
            time: (self.clock)(),
            cosigned: cosigned.to_vec(),
            request: body.to_vec(),
        };
        match write_atomic(&path, &evidence.to_bytes(), false) {
            Ok(()) => {
                self.evidence_count.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(origin, kind = kind.as_str(), file = %path.display(),
                    "the log showed a checkpoint inconsistent with the one cosigned: evidence kept");
            }
            Err(e) => tracing::error!(origin, error = %e, "cannot write evidence"),
        }
    }
}
