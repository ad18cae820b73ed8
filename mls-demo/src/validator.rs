//! [`AsValidator`]: the check an MLS client runs before it trusts that a signature key belongs
//! to an identity — "is this key in the complete, current set of keys of this identity,
//! according to an AS whose log and directory I verify?"
//!
//! The AS's log holds no plaintext: it is a private, verifiable directory. A lookup
//! (`GET /v1/identities/{identity}`) answers the identity's **complete** state — its status and
//! every current credential — proven in a checkpoint of the log, or a proof that the identity
//! has nothing in the directory. So a key that is not in that set (never issued, rotated away,
//! revoked) is refused by the proof itself, not by trusting the AS to list it.
//!
//! # What [`AsValidator::validate`] guarantees
//!
//! It makes exactly the checks `verifier-cli validate` makes, with the same functions
//! (`kt_verify::directory`, `kt_verify::consistency`, `kt_verify::lookup`,
//! `kt_verify::validate`). It returns a [`Proof`] only if all of these hold:
//!
//! 1. the AS answered `GET /v1/identities/{identity}` over TLS pinned to the configured
//!    certificate, about this identity;
//! 2. the answer's checkpoint is signed by the log key given to the validator (not merely by
//!    the AS's TLS key or CA: the log key and the VRF key are the roots of trust), and its
//!    origin is that key's;
//! 3. with a witness policy ([`AsValidator::with_witness_policy`]), that checkpoint is also
//!    cosigned by the policy's quorum of witnesses, or (as the AS's answers carry the
//!    checkpoint the log alone signed) proven consistent with a later one they cosigned,
//!    served at the AS's `/log/checkpoint` ([`Refusal::NotWitnessed`] otherwise);
//! 4. that checkpoint is consistent with the newest checkpoint this validator saw before
//!    (RFC 9162 consistency proof, fetched from the AS and verified here) and **not older**
//!    than it: a checkpoint of the same size must have the same root, a larger one must be
//!    proven to extend it, and a smaller one is refused ([`Refusal::Stale`]) even when it is a
//!    prefix — an older answer was true then, and replaying one is exactly how a revocation or
//!    a rotation gets hidden. So the log this validator trusts only ever grows, and it never
//!    believes a state older than one it has seen: an AS that rewrites history, or shows it a
//!    fork, is refused ([`Refusal::Inconsistent`]), never silently followed;
//! 5. the checkpoint's last entry is the map entry (proven included at `size − 1`), the VRF
//!    proof gives the identity's label under the VRF key given to the validator, and the map
//!    proof leads from the label to that map's root — with the record shown (its commitment
//!    opened and chained), so that record is the identity's latest, complete state as of the
//!    checkpoint; or with nothing, so the identity is proven absent
//!    ([`Refusal::UnknownIdentity`]);
//! 6. every credential of that state is signed by the CA given to the validator and says
//!    exactly what the record says (identity, key, serial, validity)
//!    ([`Refusal::BadCertificate`] otherwise);
//! 7. the state is `active` ([`Refusal::Revoked`] otherwise), and one of its current
//!    credentials binds exactly this public key ([`Refusal::NotLogged`] otherwise: a key
//!    rotated away, revoked on its own, or never issued is not in the set, whatever
//!    certificate is presented with it), and its certificate is within its validity now
//!    (`not_before ≤ now ≤ not_after`);
//! 8. the CA's CRL, fetched from the AS and verified under the CA (signature, issuer, not
//!    past its `nextUpdate`), does not list its serial ([`Refusal::CredentialRevoked`]).
//!
//! # What it does not guarantee
//!
//! - That the binding is *legitimate*: a logged binding that the identity's owner never asked
//!   for is found by the owner's monitor (`verifier-cli monitor`), not here.
//! - Freshness beyond the newest checkpoint this validator has seen: the state is complete as
//!   of the answer's checkpoint, which is at least as new as every one it saw before. A
//!   validator that has seen nothing newer (its first answer, with no saved checkpoint) can be
//!   shown an old, true answer; persist [`AsValidator::latest_checkpoint`] and restore it with
//!   [`AsValidator::with_checkpoint`] so that this holds across restarts. A validator that
//!   cannot reach the AS refuses ([`Refusal::Network`]): it fails closed.
//! - Split views across parties, without a witness policy: consistency is checked against
//!   this validator's own saved checkpoint; comparing views between parties is
//!   `verifier-cli compare`. With one (point 3), a split view needs the quorum's witnesses to
//!   collude.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::VerifiedCheckpoint;
use kt_log::note::NoteVerifier;
use kt_log::Hash;
use kt_protocol::api::{IdentityProof, IDENTITY_PROOF_MEDIA_TYPE};
use kt_protocol::directory::vrf::VrfPublicKey;
use kt_verify::consistency::{self, Advance, ConsistencyError};
use kt_verify::credential::{BindingError, Ca, CredentialError};
use kt_verify::directory::{answer_checkpoint, verify_identity, DirectoryError};
use kt_verify::lookup::{verify_lookup, LookupError};
use kt_verify::validate::{validate, Invalid, ValidateError};
use kt_verify::wire::{decode_hashes, ConsistencyAnswer};
use kt_verify::witness_policy::{
    check_covered, check_witnessed, verify_witnessed_checkpoint, WitnessPolicy,
};
use thiserror::Error;

use crate::https::HttpsClient;

/// Why a (identity, key) binding was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The identity is not a valid AS identity (`local@domain`, lowercase ASCII), or the
    /// credential does not carry one.
    #[error("not a valid identity: {0}")]
    BadIdentity(String),
    /// The public key is not 32 bytes (an Ed25519 key).
    #[error("not an Ed25519 public key: {0}")]
    BadKey(String),
    /// The directory proves the identity absent: nothing of it was ever logged (never
    /// enrolled, or enrolled but never issued a credential).
    #[error("unknown identity: the directory proves it absent")]
    UnknownIdentity,
    /// The identity is revoked.
    #[error("identity is revoked")]
    Revoked,
    /// The key is not in the identity's complete current set of credentials (never issued to
    /// it, rotated away, or revoked on its own).
    #[error("no current logged credential of this identity has this key (not in its complete current set)")]
    NotLogged,
    /// The credential with this key has expired.
    #[error("credential expired at {not_after}")]
    Expired {
        /// The certificate's `notAfter` (Unix seconds).
        not_after: u64,
    },
    /// The credential with this key is not valid yet.
    #[error("credential not valid before {not_before}")]
    NotYetValid {
        /// The certificate's `notBefore` (Unix seconds).
        not_before: u64,
    },
    /// The CA's CRL lists the credential with this key.
    #[error("credential {serial} is revoked (on the CRL)")]
    CredentialRevoked {
        /// Its serial, lowercase hex.
        serial: String,
    },
    /// A credential of the identity's state is not signed by the trusted CA (or is not a
    /// credential).
    #[error("certificate does not verify under the CA: {0}")]
    BadCertificate(CredentialError),
    /// The CRL is not the CA's, or is past its `nextUpdate`.
    #[error("CRL does not verify: {0}")]
    BadCrl(CredentialError),
    /// A proof does not verify: checkpoint signature, map entry inclusion, VRF proof, map
    /// proof, or a certificate that says something else than the identity's record.
    #[error("proof does not verify: {0}")]
    BadProof(String),
    /// The AS's log is not consistent with the checkpoint this validator saved (a fork or a
    /// rewritten history).
    #[error("log inconsistent with the saved checkpoint: {0}")]
    Inconsistent(String),
    /// The answer's checkpoint is older than the one this validator saved: a replayed (or
    /// lagging) answer, which can hide a revocation or a rotation. Refused even when it is a
    /// prefix of the saved one.
    #[error("answer's checkpoint (size {answered}) is older than the saved one (size {saved})")]
    Stale {
        /// The saved checkpoint's size.
        saved: u64,
        /// The answer's checkpoint's size.
        answered: u64,
    },
    /// The answer's checkpoint does not satisfy the validator's witness policy: not
    /// cosigned by its quorum (the message names the witnesses missing), a bad cosignature
    /// by one of its witnesses, or a log the policy does not list.
    #[error("checkpoint not witnessed: {0}")]
    NotWitnessed(String),
    /// The AS answered something that is not the documented JSON.
    #[error("malformed answer from the AS: {0}")]
    Malformed(String),
    /// The AS could not be reached or answered with an error status; the validator fails
    /// closed.
    #[error("could not get an answer from the AS: {0}")]
    Network(String),
}

/// How the checkpoint of an accepted answer relates to the one the validator had saved (an
/// older one is never accepted: [`Refusal::Stale`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Nothing was saved before: this checkpoint is trusted on first use (signature only).
    First,
    /// Same size and same root as the saved one.
    Same,
    /// Larger, proven to extend the saved checkpoint of size `from`.
    Extended {
        /// The saved size it extends.
        from: u64,
    },
}

impl std::fmt::Display for Consistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Consistency::First => write!(f, "first checkpoint seen"),
            Consistency::Same => write!(f, "same as saved"),
            Consistency::Extended { from } => write!(f, "proven to extend saved size {from}"),
        }
    }
}

/// What a successful validation proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The identity.
    pub identity: String,
    /// The Ed25519 public key.
    pub public_key: [u8; 32],
    /// The serial of the current credential that binds it (lowercase hex).
    pub serial: String,
    /// Its X.509 credential (DER), as the identity's record holds it.
    pub certificate_der: Vec<u8>,
    /// The credential's `not_after` (Unix seconds).
    pub not_after: u64,
    /// The version of the identity's state (its record) the key was found in: 1 for the first
    /// change, one more per change since.
    pub version: u64,
    /// How many current credentials that complete state holds (this one among them).
    pub current_credentials: usize,
    /// The directory's map root the state is proven under.
    pub map_root: [u8; 32],
    /// Size of the signed checkpoint whose last entry holds that map root.
    pub checkpoint_size: u64,
    /// How that checkpoint relates to the one saved before.
    pub consistency: Consistency,
}

/// Validates (identity, signature key) bindings against an AS and its private directory; see
/// the module documentation for exactly what it guarantees. It keeps the newest verified
/// checkpoint it has seen and requires every later answer's checkpoint to be consistent with
/// it and not older.
pub struct AsValidator {
    client: HttpsClient,
    log_key: NoteVerifier,
    vrf_key: VrfPublicKey,
    ca: Ca,
    policy: Option<WitnessPolicy>,
    latest: Mutex<Option<VerifiedCheckpoint>>,
}

/// Checks the AS identity syntax ([`kt_protocol::identity::check_syntax`], docs/api.md
/// "Identities"), so that nothing else ever goes into a request path.
pub fn check_identity(identity: &str) -> Result<(), Refusal> {
    kt_protocol::identity::check_syntax(identity)
        .map_err(|e| Refusal::BadIdentity(format!("{identity:?}: {e}")))
}

/// Reads the log's note verifier key (`name+id+base64`, as in `<data>/log-key.pub`).
pub fn read_log_key(path: &Path) -> Result<NoteVerifier, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    NoteVerifier::parse(text.trim()).map_err(|e| format!("{}: log key: {e}", path.display()))
}

/// Reads the directory's VRF public key (base64 of 32 bytes and a newline, as in
/// `<data>/vrf-key.pub`). Like the log key, it is a root of trust: it comes from a file the
/// client was given, never from the AS it is about to check.
pub fn read_vrf_key(path: &Path) -> Result<VrfPublicKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes = B64
        .decode(text.trim())
        .map_err(|_| format!("{}: VRF key is not standard base64", path.display()))?;
    VrfPublicKey::from_bytes(&bytes).map_err(|e| format!("{}: VRF key: {e}", path.display()))
}

/// Where the VRF public key is by default: `vrf-key.pub` beside the log key's file (both are
/// in the AS's data folder).
pub fn vrf_key_beside(log_key_path: &Path) -> std::path::PathBuf {
    log_key_path.with_file_name("vrf-key.pub")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn malformed(what: &str) -> Refusal {
    Refusal::Malformed(what.to_owned())
}

/// A refusal for an identity proof that does not verify.
fn unproven(e: DirectoryError) -> Refusal {
    match e {
        DirectoryError::OtherIdentity => malformed("answer is about another identity"),
        DirectoryError::Encoding(e) => Refusal::Malformed(e.to_string()),
        other => Refusal::BadProof(other.to_string()),
    }
}

/// A refusal for a state whose credentials do not verify under the CA.
fn unchecked(e: LookupError) -> Refusal {
    match e {
        LookupError::Credential {
            source: BindingError::Certificate(e),
            ..
        } => Refusal::BadCertificate(e),
        other => Refusal::BadProof(other.to_string()),
    }
}

/// A refusal for a key that is not valid.
fn invalid(e: ValidateError<Refusal>) -> Refusal {
    match e {
        ValidateError::Invalid(Invalid::NotEnrolled) => Refusal::UnknownIdentity,
        ValidateError::Invalid(Invalid::NotActive) => Refusal::Revoked,
        ValidateError::Invalid(Invalid::NoSuchKey) => Refusal::NotLogged,
        ValidateError::Invalid(Invalid::Validity(CredentialError::Expired {
            not_after, ..
        })) => Refusal::Expired { not_after },
        ValidateError::Invalid(Invalid::Validity(CredentialError::NotYetValid {
            not_before,
            ..
        })) => Refusal::NotYetValid { not_before },
        ValidateError::Invalid(Invalid::Revoked { serial }) => {
            Refusal::CredentialRevoked { serial }
        }
        ValidateError::CrlUnavailable(refusal) => refusal,
        ValidateError::BadCrl(e) => Refusal::BadCrl(e),
        other => Refusal::BadProof(other.to_string()),
    }
}

/// Longest wait for a cosigned checkpoint that covers an answer's.
const COVER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl AsValidator {
    /// A validator of the AS at `client`, trusting checkpoints signed by `log_key`, labels
    /// proven under the directory's `vrf_key`, and credentials and CRLs signed by `ca`, with
    /// no saved checkpoint yet (the first one is trusted on its signature alone).
    pub fn new(
        client: HttpsClient,
        log_key: NoteVerifier,
        vrf_key: VrfPublicKey,
        ca: Ca,
    ) -> AsValidator {
        AsValidator {
            client,
            log_key,
            vrf_key,
            ca,
            policy: None,
            latest: Mutex::new(None),
        }
    }

    /// Requires every answer's checkpoint to satisfy `policy` (C2SP tlog-policy): cosigned by
    /// the policy's quorum of witnesses ([`kt_verify::witness_policy::check_witnessed`]), or
    /// covered by a later checkpoint they cosigned, proven consistent with it
    /// ([`check_covered`]); anything else is [`Refusal::NotWitnessed`], before the checkpoint
    /// is compared with or saved as the latest. Without it, the log's signature suffices.
    pub fn with_witness_policy(mut self, policy: WitnessPolicy) -> AsValidator {
        self.policy = Some(policy);
        self
    }

    /// Starts from a checkpoint saved earlier (e.g. by a previous run, or the one of the
    /// client's own verified issuance): every answer must then be consistent with it and not
    /// older.
    pub fn with_checkpoint(self, saved: VerifiedCheckpoint) -> AsValidator {
        *self.lock() = Some(saved);
        self
    }

    /// The newest verified checkpoint seen so far (to persist between runs).
    pub fn latest_checkpoint(&self) -> Option<VerifiedCheckpoint> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<VerifiedCheckpoint>> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, Refusal> {
        let answer = self
            .client
            .get(&format!("/v1/log/proof/consistency?from={from}&to={to}"))
            .map_err(Refusal::Network)?;
        if answer.status != 200 {
            return Err(Refusal::Inconsistent(format!(
                "no consistency proof from {from} to {to}: HTTP {} {}",
                answer.status,
                answer.text()
            )));
        }
        let proof: ConsistencyAnswer = serde_json::from_slice(&answer.body)
            .map_err(|_| malformed("consistency proof is not JSON"))?;
        if proof.from != from || proof.to != to {
            return Err(malformed("consistency proof for other sizes"));
        }
        decode_hashes(&proof.proof, "proof").map_err(|e| Refusal::Malformed(e.to_string()))
    }

    /// The CA's CRL (DER), unverified.
    fn crl_der(&self) -> Result<Vec<u8>, Refusal> {
        let answer = self.client.get("/v1/crl").map_err(Refusal::Network)?;
        if answer.status != 200 {
            return Err(Refusal::Network(format!(
                "CRL: HTTP {}: {}",
                answer.status,
                answer.text()
            )));
        }
        Ok(answer.body)
    }

    /// Proves `new` consistent with the saved checkpoint (`kt_verify::consistency::check`),
    /// refuses it if it is older ([`Refusal::Stale`]), and saves it if it is newer. The saved
    /// checkpoint stays locked from the comparison to the save, so that two validations at
    /// once cannot let an older checkpoint through beside a newer one.
    fn sync(&self, new: &VerifiedCheckpoint) -> Result<Consistency, Refusal> {
        let mut latest = self.lock();
        let saved_size = latest.as_ref().map(VerifiedCheckpoint::size);
        let advance = consistency::check(latest.as_ref(), new, |from, to| {
            self.consistency_proof(from, to)
        });
        let stale = || Refusal::Stale {
            saved: saved_size.unwrap_or_default(),
            answered: new.size(),
        };
        let advance = advance.map_err(|e| match e {
            // An older checkpoint is refused whether or not the AS can prove it a prefix.
            ConsistencyError::NoProof {
                rolled_back: true, ..
            } => stale(),
            ConsistencyError::NoProof { source, .. } => source,
            ConsistencyError::Fork(fork) => Refusal::Inconsistent(format!(
                "sizes {} and {}: {}",
                fork.older.size(),
                fork.newer.size(),
                fork.reason
            )),
            other => Refusal::Inconsistent(other.to_string()),
        })?;
        let consistency = match advance {
            Advance::First => Consistency::First,
            Advance::Unchanged => Consistency::Same,
            Advance::Extended { from } => Consistency::Extended { from },
            Advance::Behind { .. } => return Err(stale()),
        };
        if matches!(
            consistency,
            Consistency::First | Consistency::Extended { .. }
        ) {
            *latest = Some(new.clone());
        }
        Ok(consistency)
    }

    /// Fetches the proof of `identity`'s state (or absence) and checks its checkpoint
    /// ([`AsValidator::observe`]).
    fn lookup(
        &self,
        identity: &str,
    ) -> Result<(IdentityProof, VerifiedCheckpoint, Consistency), Refusal> {
        // The binary form is about a quarter smaller; an AS without it answers JSON.
        let answer = self
            .client
            .get_accepting(
                &format!(
                    "/v1/identities/{}",
                    kt_protocol::identity::path_segment(identity)
                ),
                &format!("{IDENTITY_PROOF_MEDIA_TYPE}, application/json;q=0.5"),
            )
            .map_err(Refusal::Network)?;
        if answer.status != 200 {
            return Err(Refusal::Network(format!(
                "HTTP {}: {}",
                answer.status,
                answer.text()
            )));
        }
        let proof = if answer.media_type == IDENTITY_PROOF_MEDIA_TYPE {
            IdentityProof::from_binary(&answer.body).map_err(|e| e.to_string())
        } else {
            serde_json::from_slice(&answer.body).map_err(|e| e.to_string())
        }
        .map_err(|e| Refusal::Malformed(format!("identity answer: {e}")))?;
        let (checkpoint, consistency) = self.observe(&proof, identity)?;
        Ok((proof, checkpoint, consistency))
    }

    /// Steps 1 to 4 of the module documentation on an identity proof about `identity`: its
    /// checkpoint is the log's, witnessed if a policy asks, consistent with and not older
    /// than the saved one (which it then replaces if newer).
    fn observe(
        &self,
        proof: &IdentityProof,
        identity: &str,
    ) -> Result<(VerifiedCheckpoint, Consistency), Refusal> {
        let checkpoint = answer_checkpoint(proof, identity, &self.log_key).map_err(unproven)?;
        let cover = self.witnessed_cover(&checkpoint)?;
        let consistency = self.sync(&checkpoint)?;
        if let Some(cover) = cover {
            self.sync(&cover)?;
        }
        Ok((checkpoint, consistency))
    }

    /// With a witness policy and `checkpoint` (the log's) not itself cosigned by the quorum:
    /// the AS's newest cosigned checkpoint (`/log/checkpoint`), at least as large and proven
    /// consistent with it ([`check_covered`]), waiting up to [`COVER_WAIT`] for one (the AS
    /// has witnesses cosign about once a second). [`Refusal::NotWitnessed`] otherwise.
    fn witnessed_cover(
        &self,
        checkpoint: &VerifiedCheckpoint,
    ) -> Result<Option<VerifiedCheckpoint>, Refusal> {
        let Some(policy) = &self.policy else {
            return Ok(None);
        };
        if check_witnessed(checkpoint.clone(), &self.log_key, policy).is_ok() {
            return Ok(None);
        }
        let deadline = std::time::Instant::now() + COVER_WAIT;
        loop {
            let answer = self
                .client
                .get("/log/checkpoint")
                .map_err(Refusal::Network)?;
            if answer.status == 200 {
                let cosigned = verify_witnessed_checkpoint(&answer.body, &self.log_key, policy)
                    .map_err(|e| Refusal::NotWitnessed(format!("the AS's checkpoint: {e}")))?;
                let size = cosigned.checkpoint().size();
                if size >= checkpoint.size() {
                    let proof = if size == checkpoint.size() {
                        Vec::new()
                    } else {
                        self.consistency_proof(checkpoint.size(), size)?
                    };
                    return check_covered(checkpoint, &answer.body, &proof, &self.log_key, policy)
                        .map(|w| Some(w.into_checkpoint()))
                        .map_err(|e| Refusal::NotWitnessed(e.to_string()));
                }
            }
            if std::time::Instant::now() >= deadline {
                return Err(Refusal::NotWitnessed(format!(
                    "no checkpoint the witness quorum cosigned covers size {} after {} s \
                     (the AS answered {} for /log/checkpoint)",
                    checkpoint.size(),
                    COVER_WAIT.as_secs(),
                    answer.status
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Validates that `signature_public_key` is in the complete current set of credentials of
    /// the active `identity`, unexpired and not on the CRL. See the module documentation for
    /// what an `Ok` guarantees.
    pub fn validate(&self, identity: &str, signature_public_key: &[u8]) -> Result<Proof, Refusal> {
        check_identity(identity)?;
        let key: [u8; 32] = signature_public_key.try_into().map_err(|_| {
            Refusal::BadKey(format!("{} bytes, not 32", signature_public_key.len()))
        })?;
        let (answer, checkpoint, consistency) = self.lookup(identity)?;
        let verified = verify_identity(&answer, &checkpoint, &self.vrf_key).map_err(unproven)?;
        let version = verified.state.as_ref().map(|s| s.record.version);
        let map_root = verified.map_root;
        let lookup = verify_lookup(verified, &self.ca).map_err(unchecked)?;
        let valid = validate(&lookup, &key, &self.ca, now(), || self.crl_der()).map_err(invalid)?;
        let c = valid.credential;
        Ok(Proof {
            identity: identity.to_owned(),
            public_key: key,
            serial: c.binding.serial.to_hex(),
            certificate_der: c.binding.certificate.clone(),
            not_after: c.binding.not_after,
            version: version.unwrap_or_default(),
            current_credentials: lookup.credentials.len(),
            map_root,
            checkpoint_size: checkpoint.size(),
            consistency,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identities() {
        assert!(check_identity("alice@example.com").is_ok());
        assert!(check_identity("a.b+c_d-e@x-1.example.com").is_ok());
        for bad in [
            "",
            "alice",
            "Alice@example.com",
            "alice@example",
            "alice@-x.com",
            "../admin@x.com",
            "a/b@x.com",
            "alice@example.com/../../v1",
            "alice@exa mple.com",
        ] {
            assert!(check_identity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn vrf_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let log_key = dir.path().join("log-key.pub");
        let path = vrf_key_beside(&log_key);
        assert_eq!(path, dir.path().join("vrf-key.pub"));
        let key = kt_protocol::directory::vrf::VrfSecretKey::from_seed([3; 32])
            .public_key()
            .clone();
        std::fs::write(&path, format!("{}\n", B64.encode(key.to_bytes()))).unwrap();
        assert_eq!(read_vrf_key(&path).unwrap(), key);
        for bad in ["not base64!\n", "AAAA\n", ""] {
            std::fs::write(&path, bad).unwrap();
            assert!(read_vrf_key(&path).is_err(), "{bad:?}");
        }
        assert!(read_vrf_key(&dir.path().join("missing")).is_err());
    }
}
