//! What the server acknowledged (a 2xx answer), kept by the driver outside the mount: every
//! credential with its log index and exact entry bytes, every other acknowledged entry, every
//! checkpoint it was shown, and every enrollment token not used yet. Also appended as JSON
//! lines to `ledger.jsonl` in the work folder, for a look after a run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_log::note::NoteVerifier;
use kt_log::Hash;
use serde_json::{json, Value};

/// Where an acknowledged credential stands, as far as the driver knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CredState {
    /// Issued or rotated in, and nothing acknowledged changed it since.
    Current,
    /// Replaced by an acknowledged rotation.
    Superseded,
    /// Revoked by an acknowledged revocation.
    Revoked,
    /// A rotation or revocation of it was sent but not answered: it may have happened.
    Uncertain,
}

/// An acknowledged credential.
pub(crate) struct Cred {
    pub(crate) serial: String,
    pub(crate) identity: String,
    pub(crate) key: SigningKey,
    pub(crate) log_index: u64,
    pub(crate) state: CredState,
    /// The cycle whose server acknowledged it.
    pub(crate) cycle: usize,
    /// A worker is rotating or revoking it right now.
    pub(crate) busy: bool,
}

/// An acknowledged enrollment token that was never sent to the server.
pub(crate) struct Token {
    pub(crate) identity: String,
    pub(crate) cycle: usize,
}

/// Everything counted over a run.
#[derive(Default, Debug)]
pub(crate) struct Counts {
    pub(crate) cycles: u64,
    pub(crate) power_losses: u64,
    pub(crate) damages: u64,
    pub(crate) acknowledged_credentials: u64,
    pub(crate) acknowledged_enrollments: u64,
    pub(crate) acknowledged_entries: u64,
    pub(crate) acknowledged_checkpoints: u64,
    pub(crate) lost_credentials: u64,
    pub(crate) lost_enrollments: u64,
    pub(crate) changed_entries: u64,
    pub(crate) inconsistent_checkpoints: u64,
    pub(crate) failed_restarts: u64,
    /// Answers that contradict themselves (a proof that does not verify, a bad signature).
    pub(crate) bad_answers: u64,
    /// Requests of the restart checks that got no answer or an unexpected one.
    pub(crate) check_errors: u64,
    /// Requests in flight at a power loss (no claim either way).
    pub(crate) unanswered: u64,
    /// Enrollment tokens checked after a restart (each then used).
    pub(crate) tokens_checked: u64,
    pub(crate) rotations: u64,
    pub(crate) revocations: u64,
}

impl Counts {
    /// Failures: any of these non-zero fails the run.
    pub(crate) fn failures(&self) -> u64 {
        self.lost_credentials
            + self.lost_enrollments
            + self.changed_entries
            + self.inconsistent_checkpoints
            + self.failed_restarts
            + self.bad_answers
            + self.check_errors
    }
}

/// See the module documentation.
pub(crate) struct Ledger {
    pub(crate) creds: Vec<Cred>,
    pub(crate) by_serial: HashMap<String, usize>,
    /// Every acknowledged entry: index → exact bytes.
    pub(crate) entries: BTreeMap<u64, Vec<u8>>,
    /// The indices acknowledged since the last restart check.
    pub(crate) fresh_entries: BTreeSet<u64>,
    /// Acknowledged tokens never sent to the server: token → identity.
    pub(crate) unused: HashMap<String, Token>,
    /// The tokens the workers may use in this cycle (all also in `unused`).
    pub(crate) pool: Vec<String>,
    /// Checkpoints acknowledged since the last restart check.
    pub(crate) checkpoints: Vec<VerifiedCheckpoint>,
    /// The latest checkpoint checked consistent at a restart: every earlier acknowledged one is
    /// a prefix of it.
    pub(crate) anchor: Option<VerifiedCheckpoint>,
    pub(crate) counts: Counts,
    pub(crate) cycle: usize,
    next_identity: u64,
    run_id: String,
    journal: Option<BufWriter<File>>,
    /// Messages about failures, printed as they happen (the first ones in full).
    reported: u64,
}

/// The `LoggedEntry` fields of an answer, checked: the checkpoint is signed by the log key and
/// the inclusion proof puts the entry at its index in it.
pub(crate) struct Logged {
    pub(crate) index: u64,
    pub(crate) entry: Vec<u8>,
    pub(crate) checkpoint: VerifiedCheckpoint,
}

/// Checks the `LoggedEntry` fields of `answer` (see [`Logged`]).
pub(crate) fn check_logged(answer: &Value, log_key: &NoteVerifier) -> Result<Logged, String> {
    let index = answer["log_index"]
        .as_u64()
        .ok_or("answer has no log_index")?;
    let entry = B64
        .decode(answer["entry"].as_str().ok_or("answer has no entry")?)
        .map_err(|e| format!("entry is not base64: {e}"))?;
    let note = answer["checkpoint"]
        .as_str()
        .ok_or("answer has no checkpoint")?;
    let checkpoint = open_checkpoint(note.as_bytes(), log_key)
        .map_err(|e| format!("checkpoint does not verify: {e}"))?;
    let proof = hashes(&answer["inclusion_proof"])?;
    checkpoint
        .verify_inclusion(index, &entry, &proof)
        .map_err(|e| format!("inclusion proof of entry {index} does not verify: {e}"))?;
    Ok(Logged {
        index,
        entry,
        checkpoint,
    })
}

/// A JSON array of base64 hashes.
pub(crate) fn hashes(value: &Value) -> Result<Vec<Hash>, String> {
    value
        .as_array()
        .ok_or("proof is not an array")?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|s| B64.decode(s).ok())
                .and_then(|b| Hash::from_slice(&b))
                .ok_or_else(|| "proof hash is not 32 bytes of base64".to_owned())
        })
        .collect()
}

impl Ledger {
    /// An empty ledger, journaling to `journal` (if it can be created).
    pub(crate) fn new(journal: &Path, run_id: &str) -> Ledger {
        Ledger {
            creds: Vec::new(),
            by_serial: HashMap::new(),
            entries: BTreeMap::new(),
            fresh_entries: BTreeSet::new(),
            unused: HashMap::new(),
            pool: Vec::new(),
            checkpoints: Vec::new(),
            anchor: None,
            counts: Counts::default(),
            cycle: 0,
            next_identity: 0,
            run_id: run_id.to_owned(),
            journal: File::create(journal).ok().map(BufWriter::new),
            reported: 0,
        }
    }

    fn journal(&mut self, record: Value) {
        if let Some(journal) = &mut self.journal {
            let _best_effort = writeln!(journal, "{record}");
        }
    }

    /// Flushes the journal file.
    pub(crate) fn flush(&mut self) {
        if let Some(journal) = &mut self.journal {
            let _best_effort = journal.flush();
        }
    }

    /// Prints a failure (the first 30 in full, then one line in 50).
    pub(crate) fn report(&mut self, message: &str) {
        self.reported += 1;
        if self.reported <= 30 || self.reported.is_multiple_of(50) {
            eprintln!("FAILURE (cycle {}): {message}", self.cycle);
        }
        self.journal(json!({"failure": message, "cycle": self.cycle}));
    }

    /// `n` new identities, unique over the run.
    pub(crate) fn new_identities(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                self.next_identity += 1;
                format!("pl{}.{}@power.example", self.run_id, self.next_identity)
            })
            .collect()
    }

    /// An acknowledged entry (every kind).
    pub(crate) fn record_entry(&mut self, index: u64, entry: &[u8]) {
        self.counts.acknowledged_entries += 1;
        if let Some(earlier) = self.entries.get(&index) {
            if earlier.as_slice() != entry {
                self.counts.changed_entries += 1;
                self.report(&format!(
                    "entry {index} was acknowledged twice with different bytes (a fork)"
                ));
            }
        }
        self.entries.insert(index, entry.to_vec());
        self.fresh_entries.insert(index);
        self.journal(json!({"entry": index, "bytes": B64.encode(entry), "cycle": self.cycle}));
    }

    /// An acknowledged checkpoint.
    pub(crate) fn record_checkpoint(&mut self, checkpoint: VerifiedCheckpoint) {
        self.counts.acknowledged_checkpoints += 1;
        // Answers of one batch share a checkpoint: keep one of each.
        if self
            .checkpoints
            .last()
            .is_some_and(|last| last.note() == checkpoint.note())
        {
            return;
        }
        self.journal(json!({
            "checkpoint": String::from_utf8_lossy(checkpoint.note()),
            "cycle": self.cycle,
        }));
        self.checkpoints.push(checkpoint);
    }

    /// An acknowledged credential (from an issuance or a rotation).
    pub(crate) fn record_cred(
        &mut self,
        serial: &str,
        identity: &str,
        key: SigningKey,
        logged: &Logged,
    ) {
        self.counts.acknowledged_credentials += 1;
        self.record_entry(logged.index, &logged.entry);
        self.record_checkpoint(logged.checkpoint.clone());
        self.journal(json!({
            "credential": serial,
            "identity": identity,
            "public_key": B64.encode(key.verifying_key().as_bytes()),
            "log_index": logged.index,
            "cycle": self.cycle,
        }));
        self.by_serial.insert(serial.to_owned(), self.creds.len());
        self.creds.push(Cred {
            serial: serial.to_owned(),
            identity: identity.to_owned(),
            key,
            log_index: logged.index,
            state: CredState::Current,
            cycle: self.cycle,
            busy: false,
        });
    }

    /// Acknowledged enrollment tokens; a share of them go to the workers' pool, the rest are
    /// kept unused for the checks after the next restart.
    pub(crate) fn record_tokens(
        &mut self,
        tokens: Vec<(String, String)>,
        mut to_pool: impl FnMut() -> bool,
    ) {
        for (identity, token) in tokens {
            self.counts.acknowledged_enrollments += 1;
            self.journal(json!({"token": token, "identity": identity, "cycle": self.cycle}));
            if to_pool() {
                self.pool.push(token.clone());
            }
            self.unused.insert(
                token,
                Token {
                    identity,
                    cycle: self.cycle,
                },
            );
        }
    }

    /// Takes a token out of the unused set (it is about to be sent): (token, identity).
    pub(crate) fn take_token(&mut self, token: &str) -> Option<(String, Token)> {
        let entry = self.unused.remove(token)?;
        self.journal(json!({"token_sent": token, "cycle": self.cycle}));
        Some((token.to_owned(), entry))
    }

    /// Sets the state of the credential `serial`.
    pub(crate) fn set_state(&mut self, serial: &str, state: CredState) {
        if let Some(&i) = self.by_serial.get(serial) {
            self.creds[i].state = state;
            self.creds[i].busy = false;
        }
        let name = format!("{state:?}");
        self.journal(json!({"credential": serial, "state": name, "cycle": self.cycle}));
    }
}
