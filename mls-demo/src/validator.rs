//! [`AsValidator`]: the check an MLS client runs before it trusts that a signature key belongs
//! to an identity — "is this key the key of a current, logged credential of this identity,
//! according to an AS whose log I verify?"
//!
//! # What [`AsValidator::validate`] guarantees
//!
//! It makes exactly the checks `verifier-cli validate` makes, with the same functions
//! (`kt_verify::lookup`, `kt_verify::consistency`, `kt_verify::validate`). It returns a
//! [`Proof`] only if all of these hold:
//!
//! 1. the AS answered `GET /v1/identities/{identity}` over TLS pinned to the configured
//!    certificate, about this identity, with `status: active`;
//! 2. the answer's checkpoint is signed by the log key given to the validator (not merely by
//!    the AS's TLS key or CA: the log key is the root of trust), and its origin is that key's;
//! 3. that checkpoint is consistent with the newest checkpoint this validator saw before
//!    (RFC 9162 consistency proof, fetched from the AS and verified here); a checkpoint of the
//!    same size must have the same root. So the log this validator trusts only ever grows:
//!    an AS that rewrites history, or shows this validator a fork, is refused
//!    ([`Refusal::Inconsistent`]), never silently followed;
//! 4. every credential the answer lists is signed by the CA given to the validator
//!    ([`Refusal::BadCertificate`] otherwise), is logged in an `issue` or `rotate` entry that
//!    holds exactly that certificate and says what it says (identity, key, serial, validity),
//!    and the exact bytes of that entry are proven included in the signed checkpoint;
//! 5. one of them binds exactly this public key, and its certificate is within its validity
//!    now (`not_before ≤ now ≤ not_after`);
//! 6. the CA's CRL, fetched from the AS and verified under the CA (signature, issuer, not
//!    past its `nextUpdate`), does not list its serial ([`Refusal::CredentialRevoked`]).
//! 7. with a witness policy ([`AsValidator::with_witness_policy`]), that checkpoint is also
//!    cosigned by the policy's quorum of witnesses, checked before step 3
//!    ([`Refusal::NotWitnessed`] otherwise).
//!
//! # What it does not guarantee
//!
//! - That the binding is *legitimate*: a logged binding that the identity's owner never asked
//!   for is found by the owner's monitor (`verifier-cli monitor`), not here.
//! - Revocation freshness beyond what the AS says: `status`, the list of *current*
//!   credentials and the CRL are the AS's statements (the CRL signed by the CA) at the time of
//!   the query. A key the AS no longer lists is refused; an AS that hides a logged revocation
//!   is caught by monitors and auditors that replay the log, not by this check. A validator that cannot reach the AS refuses
//!   ([`Refusal::Network`]): it fails closed.
//! - Split views across parties, without a witness policy: consistency is checked against
//!   this validator's own saved checkpoint; comparing views between parties is
//!   `verifier-cli compare`. With one (point 7), a split view needs the quorum's witnesses to
//!   collude.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use kt_log::checkpoint::VerifiedCheckpoint;
use kt_log::note::NoteVerifier;
use kt_log::Hash;
use kt_verify::bundle::BundleError;
use kt_verify::consistency::{self, Advance, ConsistencyError};
use kt_verify::credential::{Ca, CredentialError};
use kt_verify::lookup::{answer_checkpoint, verify_lookup, LookupError};
use kt_verify::validate::{validate, Invalid, ValidateError};
use kt_verify::wire::{decode_hashes, ConsistencyAnswer, IdentityAnswer};
use kt_verify::witness_policy::{check_witnessed, WitnessPolicy};
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
    /// The AS has never enrolled this identity (404).
    #[error("unknown identity: the AS never enrolled it")]
    UnknownIdentity,
    /// The identity is revoked.
    #[error("identity is revoked")]
    Revoked,
    /// No current logged credential of the identity has this key (never issued to it,
    /// superseded, or revoked on its own).
    #[error("no current logged credential of this identity has this key")]
    NotLogged,
    /// The logged credential with this key has expired.
    #[error("credential expired at {not_after}")]
    Expired {
        /// The certificate's `notAfter` (Unix seconds).
        not_after: u64,
    },
    /// The logged credential with this key is not valid yet.
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
    /// A credential the AS lists is not signed by the trusted CA (or is not a credential).
    #[error("certificate does not verify under the CA: {0}")]
    BadCertificate(CredentialError),
    /// The CRL is not the CA's, or is past its `nextUpdate`.
    #[error("CRL does not verify: {0}")]
    BadCrl(CredentialError),
    /// A proof does not verify: checkpoint signature, inclusion proof, or the entry does not
    /// say what the answer claims.
    #[error("proof does not verify: {0}")]
    BadProof(String),
    /// The AS's log is not consistent with the checkpoint this validator saved (a fork, a
    /// rewritten history, or a rollback that cannot be proven to be a prefix).
    #[error("log inconsistent with the saved checkpoint: {0}")]
    Inconsistent(String),
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

/// How the checkpoint of an answer relates to the one the validator had saved.
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
    /// Smaller than the saved one (a lagging replica, say) but proven to be its prefix; the
    /// saved one is kept.
    Behind {
        /// The saved size.
        saved: u64,
    },
}

impl std::fmt::Display for Consistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Consistency::First => write!(f, "first checkpoint seen"),
            Consistency::Same => write!(f, "same as saved"),
            Consistency::Extended { from } => write!(f, "proven to extend saved size {from}"),
            Consistency::Behind { saved } => write!(f, "proven prefix of saved size {saved}"),
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
    /// The credential's serial (lowercase hex).
    pub serial: String,
    /// `issue` or `rotate`.
    pub entry_type: String,
    /// Index of the entry in the log.
    pub log_index: u64,
    /// The exact entry bytes proven included.
    pub entry: Vec<u8>,
    /// The X.509 credential (DER) the entry logs.
    pub certificate_der: Vec<u8>,
    /// The credential's `not_after` (Unix seconds).
    pub not_after: u64,
    /// Size of the signed checkpoint the inclusion was proven in.
    pub checkpoint_size: u64,
    /// How that checkpoint relates to the one saved before.
    pub consistency: Consistency,
}

/// Validates (identity, signature key) bindings against an AS and its transparency log; see
/// the module documentation for exactly what it guarantees. It keeps the newest verified
/// checkpoint it has seen and requires every later one to be consistent with it.
pub struct AsValidator {
    client: HttpsClient,
    log_key: NoteVerifier,
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

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn malformed(what: &str) -> Refusal {
    Refusal::Malformed(what.to_owned())
}

/// A refusal for an answer whose proofs do not verify.
fn unverified(e: LookupError) -> Refusal {
    match e {
        LookupError::OtherIdentity => malformed("answer is about another identity"),
        LookupError::Credential(BundleError::Certificate(e)) => Refusal::BadCertificate(e),
        other => Refusal::BadProof(other.to_string()),
    }
}

/// A refusal for a key that is not valid.
fn invalid(e: ValidateError<Refusal>) -> Refusal {
    match e {
        ValidateError::Invalid(Invalid::NotActive { status }) if status == "revoked" => {
            Refusal::Revoked
        }
        ValidateError::Invalid(Invalid::NotActive { status }) => {
            Refusal::Malformed(format!("unknown status {status:?}"))
        }
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

impl AsValidator {
    /// A validator of the AS at `client`, trusting checkpoints signed by `log_key` and
    /// credentials and CRLs signed by `ca`, with no saved checkpoint yet (the first one is
    /// trusted on its signature alone).
    pub fn new(client: HttpsClient, log_key: NoteVerifier, ca: Ca) -> AsValidator {
        AsValidator {
            client,
            log_key,
            ca,
            policy: None,
            latest: Mutex::new(None),
        }
    }

    /// Requires every answer's checkpoint to satisfy `policy` (C2SP tlog-policy): signed by
    /// the log and cosigned by the policy's quorum of witnesses
    /// ([`kt_verify::witness_policy::check_witnessed`]); anything else is
    /// [`Refusal::NotWitnessed`], before the checkpoint is compared with or saved as the
    /// latest. Without it, the log's signature suffices.
    pub fn with_witness_policy(mut self, policy: WitnessPolicy) -> AsValidator {
        self.policy = Some(policy);
        self
    }

    /// Starts from a checkpoint saved earlier (e.g. by a previous run): every answer must
    /// then be consistent with it.
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
    /// and saves it if it is newer.
    fn sync(&self, new: &VerifiedCheckpoint) -> Result<Consistency, Refusal> {
        let saved = self.lock().clone();
        let advance = consistency::check(saved.as_ref(), new, |from, to| {
            self.consistency_proof(from, to)
        })
        .map_err(|e| match e {
            ConsistencyError::NoProof { source, .. } => source,
            ConsistencyError::Fork(fork) => Refusal::Inconsistent(format!(
                "sizes {} and {}: {}",
                fork.older.size(),
                fork.newer.size(),
                fork.reason
            )),
            other => Refusal::Inconsistent(other.to_string()),
        })?;
        let mut latest = self.lock();
        if latest.as_ref().is_none_or(|l| l.size() < new.size()) {
            *latest = Some(new.clone());
        }
        Ok(match advance {
            Advance::First => Consistency::First,
            Advance::Unchanged => Consistency::Same,
            Advance::Extended { from } => Consistency::Extended { from },
            Advance::Behind { saved } => Consistency::Behind { saved },
        })
    }

    /// Validates that `signature_public_key` is the key of a current, logged, unexpired,
    /// unrevoked credential of the active `identity`. See the module documentation for what
    /// an `Ok` guarantees.
    pub fn validate(&self, identity: &str, signature_public_key: &[u8]) -> Result<Proof, Refusal> {
        check_identity(identity)?;
        let key: [u8; 32] = signature_public_key.try_into().map_err(|_| {
            Refusal::BadKey(format!("{} bytes, not 32", signature_public_key.len()))
        })?;
        let answer = self
            .client
            .get(&format!(
                "/v1/identities/{}",
                kt_protocol::identity::path_segment(identity)
            ))
            .map_err(Refusal::Network)?;
        match answer.status {
            200 => {}
            404 => return Err(Refusal::UnknownIdentity),
            status => {
                return Err(Refusal::Network(format!(
                    "HTTP {status}: {}",
                    answer.text()
                )))
            }
        }
        let answer: IdentityAnswer = serde_json::from_slice(&answer.body)
            .map_err(|e| Refusal::Malformed(format!("identity answer: {e}")))?;
        let checkpoint = answer_checkpoint(&answer, identity, &self.log_key).map_err(unverified)?;
        if let Some(policy) = &self.policy {
            check_witnessed(checkpoint.clone(), &self.log_key, policy)
                .map_err(|e| Refusal::NotWitnessed(e.to_string()))?;
        }
        let consistency = self.sync(&checkpoint)?;
        let checkpoint_size = checkpoint.size();
        let lookup = verify_lookup(&answer, identity, checkpoint, &self.ca).map_err(unverified)?;
        let valid = validate(&lookup, &key, &self.ca, now(), || self.crl_der()).map_err(invalid)?;
        let c = valid.credential;
        Ok(Proof {
            identity: identity.to_owned(),
            public_key: key,
            serial: c.binding.serial_hex.clone(),
            entry_type: c.kind.to_owned(),
            log_index: c.log_index,
            entry: c.entry.clone(),
            certificate_der: c.binding.certificate.clone(),
            not_after: c.binding.not_after,
            checkpoint_size,
            consistency,
        })
    }
}

#[cfg(test)]
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
}
