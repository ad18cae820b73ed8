//! Witness cosigning, the log's side of C2SP tlog-witness (<https://c2sp.org/tlog-witness>).
//!
//! With a witness policy (C2SP tlog-policy, parsed by `kt_verify::witness_policy`), a
//! background thread ([`cosigner`]) sends every new published checkpoint to the policy's
//! witnesses in parallel, each with the consistency proof from the size that witness last
//! cosigned (adopting the size a 409 answer names, so a witness that lost its state, 409 with
//! size 0, is brought back). The cosignatures that verify under the policy's keys are added
//! to the log's note; once they satisfy the quorum the note is saved and becomes the
//! checkpoint served at `/log/checkpoint`. Issuance never waits for witnesses: its answers
//! carry the log-signed checkpoint, and a client proves that checkpoint consistent with the
//! next cosigned one (about a second later).
//!
//! Guarantees:
//! - the served cosigned checkpoint satisfies the policy (checked with the same function the
//!   verifiers use, [`verify_witnessed_checkpoint`]) and is a checkpoint of this log: at
//!   start, one read from disk must verify and match the log's root at its size, or the server
//!   refuses to start (a log that lost cosigned entries must not go on quietly);
//! - it only moves forward (a round for an older size never replaces a newer one), and is
//!   written to disk (atomically, fsynced) before it is served, so a restart serves it again;
//! - witnesses down or refusing never stop issuance: the last cosigned checkpoint is served
//!   and each witness's failure is shown at `/v1/log/witnesses` and in the metrics.

pub mod client;
pub mod cosigner;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use kt_log::checkpoint::SignedCheckpoint;
use kt_log::note::NoteVerifier;
use kt_log::witness_request::AddCheckpointRequest;
use kt_verify::witness_policy::{verify_witnessed_checkpoint, WitnessPolicy};
use serde::Serialize;

use crate::as_log::AsLog;
use crate::config::WitnessingConfig;
use client::{Answer, WitnessClient};

/// The file, in the data folder, of the newest cosigned checkpoint.
pub const COSIGNED_FILE: &str = "cosigned-checkpoint";

/// A checkpoint of the log cosigned by the policy's quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignedCheckpoint {
    /// The note: the log's signature and the witnesses' cosignature lines.
    pub note: Vec<u8>,
    /// Its tree size.
    pub size: u64,
    /// The policy names of the witnesses that cosigned it.
    pub cosigners: Vec<String>,
}

/// What the log knows of one witness of the policy (shown at `/v1/log/witnesses`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WitnessStatus {
    /// Its name in the policy.
    pub name: String,
    /// Its submission prefix; `None`: the policy gives none, so it is never asked.
    pub url: Option<String>,
    /// The size of the checkpoint it holds for this log, as last learnt (200 or 409).
    pub size: Option<u64>,
    /// When it last cosigned (POSIX seconds).
    pub last_cosigned: Option<u64>,
    /// Why the last request to it failed, if it did.
    pub last_error: Option<String>,
}

/// The witness policy, the witnesses' status and the newest cosigned checkpoint.
pub struct Witnessing {
    policy: WitnessPolicy,
    log_key: NoteVerifier,
    file: PathBuf,
    client: WitnessClient,
    config: WitnessingConfig,
    cosigned: RwLock<Option<Arc<CosignedCheckpoint>>>,
    witnesses: Mutex<Vec<WitnessStatus>>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The policy names of the witnesses whose valid cosignatures `note` carries.
fn cosigners_of(note: &[u8], log_key: &NoteVerifier, policy: &WitnessPolicy) -> Vec<String> {
    verify_witnessed_checkpoint(note, log_key, policy)
        .map(|w| w.cosignatures().iter().map(|c| c.witness.clone()).collect())
        .unwrap_or_default()
}

impl Witnessing {
    /// Reads the policy and the saved cosigned checkpoint (in `data`) for `log`.
    ///
    /// Refused: a policy that does not parse or does not list this log's key; a saved
    /// cosigned checkpoint that is not of this log (not signed by it, larger than it, or
    /// another root at its size). A saved checkpoint that no longer satisfies a changed
    /// policy is set aside (with a warning), not served.
    pub fn open(
        config: &WitnessingConfig,
        data: &Path,
        log: &AsLog,
        log_key: NoteVerifier,
    ) -> Result<Witnessing, String> {
        let policy_path = config.policy.display();
        let text = std::fs::read(&config.policy)
            .map_err(|e| format!("witness policy {policy_path}: {e}"))?;
        let policy = WitnessPolicy::parse(&text)
            .map_err(|e| format!("witness policy {policy_path}: {e}"))?;
        if !policy.accepts_log(&log_key) {
            return Err(format!(
                "witness policy {policy_path} does not list this log; add the line: log {}",
                log_key.to_vkey()
            ));
        }
        let witnesses = policy
            .witnesses()
            .iter()
            .map(|w| {
                if w.url.is_none() {
                    tracing::warn!(witness = %w.name, "the witness policy gives no URL: it is never asked");
                }
                WitnessStatus {
                    name: w.name.clone(),
                    url: w.url.clone(),
                    size: None,
                    last_cosigned: None,
                    last_error: None,
                }
            })
            .collect();
        let file = data.join(COSIGNED_FILE);
        let cosigned = match std::fs::read(&file) {
            Ok(note) => load_cosigned(note, log, &log_key, &policy, &file)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("{}: {e}", file.display())),
        };
        Ok(Witnessing {
            client: WitnessClient::new(config.timeout, config.tls_ca.as_deref())?,
            policy,
            log_key,
            file,
            config: config.clone(),
            cosigned: RwLock::new(cosigned.map(Arc::new)),
            witnesses: Mutex::new(witnesses),
        })
    }

    /// The newest cosigned checkpoint, if any.
    pub fn cosigned(&self) -> Option<Arc<CosignedCheckpoint>> {
        self.cosigned
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The policy's quorum name.
    pub fn quorum(&self) -> &str {
        self.policy.quorum_name()
    }

    /// Every policy witness's status, in policy order.
    pub fn status(&self) -> Vec<WitnessStatus> {
        self.lock_witnesses().clone()
    }

    fn lock_witnesses(&self) -> std::sync::MutexGuard<'_, Vec<WitnessStatus>> {
        self.witnesses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One round: asks every witness with a URL, in parallel, to cosign `checkpoint` (a
    /// checkpoint `log` signed), and serves the result if it satisfies the quorum and is
    /// newer than what is served. Returns whether it did.
    pub fn cosign(&self, checkpoint: &SignedCheckpoint, log: &AsLog) -> bool {
        let size = checkpoint.checkpoint.size;
        let asked: Vec<(usize, String, Option<u64>)> = self
            .lock_witnesses()
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.url.clone().map(|url| (i, url, w.size)))
            .collect();
        let answers: Vec<(usize, Result<String, String>, Option<u64>)> =
            std::thread::scope(|scope| {
                let running: Vec<_> = asked
                    .into_iter()
                    .map(|(i, url, known)| {
                        scope.spawn(move || {
                            let (result, learnt) =
                                self.ask(i, &url, known.unwrap_or(0), checkpoint, log);
                            (i, result, learnt)
                        })
                    })
                    .collect();
                running
                    .into_iter()
                    .filter_map(|handle| handle.join().ok())
                    .collect()
            });
        let mut note = checkpoint.note.clone();
        {
            let mut witnesses = self.lock_witnesses();
            for (i, result, learnt) in answers {
                let w = &mut witnesses[i];
                if learnt.is_some() {
                    w.size = learnt;
                }
                // Logged when a witness starts failing, fails otherwise, or recovers: not once
                // a round while it is down.
                match result {
                    Ok(lines) => {
                        note.extend_from_slice(lines.as_bytes());
                        w.last_cosigned = Some(now());
                        if w.last_error.take().is_some() {
                            tracing::info!(witness = %w.name, size, "witness cosigns again");
                        }
                    }
                    Err(error) => {
                        if w.last_error.as_ref() != Some(&error) {
                            tracing::warn!(witness = %w.name, size, %error, "witness did not cosign");
                        }
                        w.last_error = Some(error);
                    }
                }
            }
        }
        match verify_witnessed_checkpoint(&note, &self.log_key, &self.policy) {
            Ok(witnessed) => {
                let cosigned = CosignedCheckpoint {
                    size,
                    cosigners: witnessed
                        .cosignatures()
                        .iter()
                        .map(|c| c.witness.clone())
                        .collect(),
                    note,
                };
                self.serve(cosigned)
            }
            Err(e) => {
                tracing::debug!(size, error = %e, "checkpoint not cosigned by the quorum");
                false
            }
        }
    }

    /// Asks witness `i` (at `url`, believed to hold `old`) to cosign `checkpoint`; adopts the
    /// size of a 409 once. Returns its valid cosignature lines, or why not, and the size it
    /// is now known to hold.
    fn ask(
        &self,
        i: usize,
        url: &str,
        mut old: u64,
        checkpoint: &SignedCheckpoint,
        log: &AsLog,
    ) -> (Result<String, String>, Option<u64>) {
        let size = checkpoint.checkpoint.size;
        let mut learnt = None;
        for _ in 0..2 {
            if old > size {
                return (
                    Err(format!(
                        "it holds a checkpoint of size {old}, larger than this log's {size}"
                    )),
                    learnt,
                );
            }
            let proof = if old == 0 {
                Vec::new()
            } else {
                match log.consistency_proof(old, size) {
                    Ok(proof) => proof,
                    Err(e) => return (Err(format!("consistency proof: {e}")), learnt),
                }
            };
            let request = AddCheckpointRequest {
                old_size: old,
                proof,
                note: checkpoint.note.clone(),
            };
            match self.client.add_checkpoint(url, &request) {
                Ok(Answer::Cosigned(lines)) => {
                    return (self.valid_lines(i, checkpoint, &lines), Some(size));
                }
                Ok(Answer::Conflict(held)) => {
                    learnt = Some(held);
                    old = held;
                }
                Ok(Answer::Refused(status, detail)) => {
                    return (Err(format!("answered {status}: {detail}")), learnt)
                }
                Err(e) => return (Err(e), learnt),
            }
        }
        (
            Err(format!("answered 409 twice (it holds size {old})")),
            learnt,
        )
    }

    /// The line of a 200 answer of witness `i` that is its valid cosignature of `checkpoint`;
    /// an error if there is none.
    fn valid_lines(
        &self,
        i: usize,
        checkpoint: &SignedCheckpoint,
        lines: &str,
    ) -> Result<String, String> {
        let body = checkpoint.checkpoint.to_body();
        let verifier = &self.policy.witnesses()[i].verifier;
        // Its first valid line only: a line twice would make the note's cosignature by it
        // ambiguous, which the verifiers refuse.
        lines
            .lines()
            .map(|line| format!("{line}\n"))
            .find(|line| matches!(verifier.find(&body, line), Ok(Some(_))))
            .ok_or_else(|| "answered 200 without a valid cosignature by its policy key".into())
    }

    /// Saves and serves `cosigned` if it is newer than the one served.
    fn serve(&self, cosigned: CosignedCheckpoint) -> bool {
        let mut served = self
            .cosigned
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if served.as_ref().is_some_and(|s| s.size >= cosigned.size) {
            return false;
        }
        if let Err(e) = crate::secret_file::write_atomic(&self.file, &cosigned.note, false) {
            tracing::error!(error = %e, file = %self.file.display(), "saving the cosigned checkpoint");
            return false;
        }
        tracing::info!(size = cosigned.size, cosigners = ?cosigned.cosigners, "checkpoint cosigned");
        *served = Some(Arc::new(cosigned));
        true
    }

    /// Time between two rounds.
    pub fn cadence(&self) -> std::time::Duration {
        self.config.cadence
    }
}

/// Checks a saved cosigned note at start (see [`Witnessing::open`]).
fn load_cosigned(
    note: Vec<u8>,
    log: &AsLog,
    log_key: &NoteVerifier,
    policy: &WitnessPolicy,
    file: &Path,
) -> Result<Option<CosignedCheckpoint>, String> {
    let checkpoint = kt_log::checkpoint::open_checkpoint(&note, log_key).map_err(|e| {
        format!(
            "{}: not a checkpoint signed by this log ({e}); move it aside only if the log's key was changed on purpose",
            file.display()
        )
    })?;
    let size = checkpoint.size();
    let ours = (size <= log.size())
        .then(|| log.root_at(size).ok())
        .flatten();
    if ours != Some(checkpoint.root()) {
        return Err(format!(
            "{}: the cosigned checkpoint of size {size} is not a checkpoint of this log (it has {} entries{}): \
             entries that witnesses cosigned are missing or different; restore the log from a backup (docs/witness.md)",
            file.display(),
            log.size(),
            if size <= log.size() { ", another root at that size" } else { "" }
        ));
    }
    let cosigners = cosigners_of(&note, log_key, policy);
    if let Err(e) = verify_witnessed_checkpoint(&note, log_key, policy) {
        tracing::warn!(file = %file.display(), error = %e, "the saved cosigned checkpoint does not satisfy the policy now; not served");
        return Ok(None);
    }
    Ok(Some(CosignedCheckpoint {
        note,
        size,
        cosigners,
    }))
}
