//! What the server acknowledged (a 2xx answer), kept by the driver outside the mount: every
//! acknowledged change of an identity (issuance, rotation, revocation) with the version of the
//! identity's state its answer proved and that version's exact record, every credential with
//! its identity and key, every checkpoint it was shown with the exact bytes of the checkpoint's
//! last entry (its map entry), and every enrollment token not used yet. Also appended as JSON
//! lines to `ledger.jsonl` in the work folder, for a look after a run.
//!
//! Every answer is verified before it is recorded, as a client would (kt-verify): the
//! checkpoint under the log key, the map entry's inclusion at `size − 1`, the VRF proof of the
//! identity's label under the directory's VRF key, the map proof of the record's commitment,
//! and for a credential its certificate under the CA ([`verify_change`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use kt_log::checkpoint::VerifiedCheckpoint;
use kt_log::note::NoteVerifier;
use kt_log::Hash;
use kt_protocol::api::IdentityProof;
use kt_protocol::directory::record::VersionRecord;
use kt_protocol::directory::vrf::VrfPublicKey;
use kt_verify::credential::Ca;
use kt_verify::directory::{answer_checkpoint, verify_identity, VerifiedIdentity};
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
    /// The version of its identity's state that its issuance or rotation made.
    pub(crate) version: u64,
    pub(crate) state: CredState,
    /// A worker is rotating or revoking it right now.
    pub(crate) busy: bool,
}

/// Which change an acknowledged version is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Issue,
    Rotate,
    Revoke,
}

impl Kind {
    /// Whether the change added a credential.
    pub(crate) fn adds_credential(self) -> bool {
        matches!(self, Kind::Issue | Kind::Rotate)
    }
}

/// One acknowledged change of an identity: the version and exact record its answer proved.
pub(crate) struct Ack {
    pub(crate) kind: Kind,
    /// The serial issued or rotated in, or revoked.
    pub(crate) serial: String,
    pub(crate) record: VersionRecord,
    /// The size of the checkpoint the answer proved it in.
    pub(crate) size: u64,
    pub(crate) cycle: usize,
}

/// Everything acknowledged about one identity.
#[derive(Default)]
pub(crate) struct IdentityLedger {
    /// Acknowledged versions: version → change.
    pub(crate) versions: BTreeMap<u64, Ack>,
    /// Indices into [`Ledger::creds`] of its credentials.
    pub(crate) creds: Vec<usize>,
    /// A change of it was sent and not answered (it may have happened): later answers cannot
    /// be expected to follow from the last acknowledged version.
    pub(crate) uncertain: bool,
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
    /// Acknowledged changes (versions) of identities: issuances, rotations, revocations.
    pub(crate) acknowledged_changes: u64,
    /// Map entries acknowledged (one per distinct checkpoint index seen).
    pub(crate) acknowledged_map_entries: u64,
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
    /// Identities checked after a restart (state and history).
    pub(crate) identities_checked: u64,
    /// Verified lookups of the workload's monitors.
    pub(crate) lookups: u64,
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
    /// Every identity with an acknowledged change.
    pub(crate) identities: HashMap<String, IdentityLedger>,
    /// The identities changed since the last restart check.
    pub(crate) fresh_identities: BTreeSet<String>,
    /// Every acknowledged map entry (the last entry of an acknowledged checkpoint): index →
    /// exact bytes.
    pub(crate) map_entries: BTreeMap<u64, Vec<u8>>,
    /// The indices acknowledged since the last restart check.
    pub(crate) fresh_map_entries: BTreeSet<u64>,
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

/// The trust anchors every answer is verified under: the log key, the directory's VRF key
/// (`vrf-key.pub`) and the CA certificate, all from the first start's data folder.
#[derive(Clone)]
pub(crate) struct Anchors {
    pub(crate) log_key: NoteVerifier,
    pub(crate) vrf_key: VrfPublicKey,
    pub(crate) ca: Ca,
}

/// What a verified identity proof showed: the checkpoint, its last entry (the map entry),
/// and the identity's state in it.
pub(crate) struct Shown {
    pub(crate) checkpoint: VerifiedCheckpoint,
    /// The exact bytes of the map entry at index `size − 1`.
    pub(crate) map_entry: Vec<u8>,
    pub(crate) identity: VerifiedIdentity,
}

impl Shown {
    /// The record shown (`None`: the identity is proven absent).
    pub(crate) fn record(&self) -> Option<&VersionRecord> {
        self.identity.state.as_ref().map(|s| &s.record)
    }

    /// The version shown (0: absent).
    pub(crate) fn version(&self) -> u64 {
        self.record().map_or(0, |r| r.version)
    }
}

/// Verifies an identity proof of `identity` under the anchors (kt-verify's two steps).
pub(crate) fn verify_proof(
    proof: &IdentityProof,
    identity: &str,
    anchors: &Anchors,
) -> Result<Shown, String> {
    let checkpoint = answer_checkpoint(proof, identity, &anchors.log_key)
        .map_err(|e| format!("identity proof: {e}"))?;
    let verified = verify_identity(proof, &checkpoint, &anchors.vrf_key)
        .map_err(|e| format!("identity proof: {e}"))?;
    // verify_identity proved these bytes included at `size − 1`.
    let map_entry = B64
        .decode(&proof.map_entry)
        .map_err(|e| format!("map_entry is not base64: {e}"))?;
    Ok(Shown {
        checkpoint,
        map_entry,
        identity: verified,
    })
}

/// Checks that `record` is exactly what its own change makes from `previous` (the directory's
/// transition rule, [`VersionRecord::next`]): the state an answer shows after a change is the
/// state before it with that change applied, nothing else added, dropped or kept.
pub(crate) fn check_follows(
    previous: Option<&VersionRecord>,
    record: &VersionRecord,
) -> Result<(), String> {
    let entry = record
        .entry()
        .map_err(|e| format!("version {}: {e}", record.version))?;
    let expected = VersionRecord::next(previous, &entry).map_err(|e| {
        format!(
            "version {} does not follow from the acknowledged version {}: {e}",
            record.version,
            previous.map_or(0, |p| p.version)
        )
    })?;
    if expected != *record {
        return Err(format!(
            "version {} is not what its change makes from the acknowledged version {}: {} instead of {}",
            record.version,
            previous.map_or(0, |p| p.version),
            record.to_json(),
            expected.to_json()
        ));
    }
    Ok(())
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
            identities: HashMap::new(),
            fresh_identities: BTreeSet::new(),
            map_entries: BTreeMap::new(),
            fresh_map_entries: BTreeSet::new(),
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

    /// An acknowledged map entry: the last entry of an acknowledged checkpoint.
    fn record_map_entry(&mut self, index: u64, entry: &[u8]) {
        match self.map_entries.get(&index) {
            Some(earlier) if earlier.as_slice() == entry => return,
            Some(_) => {
                self.counts.changed_entries += 1;
                self.report(&format!(
                    "map entry {index} was acknowledged twice with different bytes (a fork)"
                ));
            }
            None => {}
        }
        self.counts.acknowledged_map_entries += 1;
        self.map_entries.insert(index, entry.to_vec());
        self.fresh_map_entries.insert(index);
        self.journal(json!({"map_entry": index, "bytes": B64.encode(entry), "cycle": self.cycle}));
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

    /// An acknowledged checkpoint with its map entry, from a verified proof.
    pub(crate) fn record_shown(&mut self, shown: &Shown) {
        let index = shown.checkpoint.size() - 1;
        self.record_map_entry(index, &shown.map_entry);
        self.record_checkpoint(shown.checkpoint.clone());
    }

    /// An acknowledged change of `identity`, whose verified answer showed `shown` (the state
    /// after it). Checks, against what was acknowledged before, that the version is the next
    /// one and the record exactly what the change makes from the acknowledged one before.
    /// Returns false (a bad answer, reported) if not.
    pub(crate) fn record_change(
        &mut self,
        identity: &str,
        kind: Kind,
        serial: &str,
        shown: &Shown,
    ) -> bool {
        let Some(record) = shown.record().cloned() else {
            self.counts.bad_answers += 1;
            self.report(&format!(
                "{kind:?} answer of {identity}: the identity shown absent"
            ));
            return false;
        };
        self.record_shown(shown);
        let entry = self.identities.entry(identity.to_owned()).or_default();
        let follows = if entry.uncertain {
            Ok(())
        } else {
            let previous = entry.versions.values().next_back().map(|a| &a.record);
            check_follows(previous, &record)
        };
        let version = record.version;
        if let Err(e) = follows {
            entry.uncertain = true;
            self.counts.bad_answers += 1;
            self.report(&format!("{kind:?} answer of {identity} ({serial}): {e}"));
            return false;
        }
        if let Some(earlier) = entry.versions.get(&version) {
            let message = format!(
                "version {version} of {identity} was acknowledged twice ({:?} of {} in cycle {}, now {kind:?} of {serial})",
                earlier.kind, earlier.serial, earlier.cycle
            );
            entry.uncertain = true;
            self.counts.changed_entries += 1;
            self.report(&message);
            return false;
        }
        entry.versions.insert(
            version,
            Ack {
                kind,
                serial: serial.to_owned(),
                record,
                size: shown.checkpoint.size(),
                cycle: self.cycle,
            },
        );
        self.counts.acknowledged_changes += 1;
        self.fresh_identities.insert(identity.to_owned());
        self.journal(json!({
            "change": format!("{kind:?}"),
            "identity": identity,
            "serial": serial,
            "version": version,
            "checkpoint_size": shown.checkpoint.size(),
            "cycle": self.cycle,
        }));
        true
    }

    /// An identity's change was sent and not answered, or refused unexpectedly.
    pub(crate) fn set_uncertain(&mut self, identity: &str) {
        self.identities
            .entry(identity.to_owned())
            .or_default()
            .uncertain = true;
    }

    /// An acknowledged credential (from an issuance or a rotation), whose change is recorded.
    pub(crate) fn record_cred(
        &mut self,
        serial: &str,
        identity: &str,
        key: SigningKey,
        version: u64,
    ) {
        self.counts.acknowledged_credentials += 1;
        self.journal(json!({
            "credential": serial,
            "identity": identity,
            "public_key": B64.encode(key.verifying_key().as_bytes()),
            "version": version,
            "cycle": self.cycle,
        }));
        let i = self.creds.len();
        self.by_serial.insert(serial.to_owned(), i);
        self.identities
            .entry(identity.to_owned())
            .or_default()
            .creds
            .push(i);
        self.creds.push(Cred {
            serial: serial.to_owned(),
            identity: identity.to_owned(),
            key,
            version,
            state: CredState::Current,
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

    /// Sets the state of the credential `serial`; an uncertain one makes its identity
    /// uncertain.
    pub(crate) fn set_state(&mut self, serial: &str, state: CredState) {
        if let Some(&i) = self.by_serial.get(serial) {
            self.creds[i].state = state;
            self.creds[i].busy = false;
            if state == CredState::Uncertain {
                let identity = self.creds[i].identity.clone();
                self.set_uncertain(&identity);
            }
        }
        let name = format!("{state:?}");
        self.journal(json!({"credential": serial, "state": name, "cycle": self.cycle}));
    }
}
