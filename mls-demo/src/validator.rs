//! [`AsValidator`]: the check an MLS client runs before it trusts that a signature key belongs
//! to an identity — "is this key the key of a current, logged credential of this identity,
//! according to an AS whose log I verify?"
//!
//! # What [`AsValidator::validate`] guarantees
//!
//! It returns a [`Proof`] only if all of these hold:
//!
//! 1. the AS answered `GET /v1/identities/{identity}` over TLS pinned to the configured
//!    certificate, with `status: active`;
//! 2. the answer's checkpoint is signed by the log key given to the validator (not merely by
//!    the AS's TLS key or CA: the log key is the root of trust), and its origin is that key's;
//! 3. that checkpoint is consistent with the newest checkpoint this validator saw before
//!    (RFC 9162 consistency proof, fetched from the AS and verified here); a checkpoint of the
//!    same size must have the same root. So the log this validator trusts only ever grows:
//!    an AS that rewrites history, or shows this validator a fork, is refused
//!    ([`Refusal::Inconsistent`]), never silently followed;
//! 4. one of the identity's current credentials has exactly this public key, and the exact
//!    bytes of its log entry are proven included (inclusion proof) in that signed checkpoint;
//! 5. that entry is an `issue` or `rotate` entry (`"v": 1`) for exactly this identity and this
//!    public key, with the serial the answer states, and its certificate is the one served;
//! 6. the entry's `not_after` has not passed.
//!
//! # What it does not guarantee
//!
//! - That the binding is *legitimate*: a logged binding that the identity's owner never asked
//!   for is found by the owner's monitor (`verifier-cli monitor`), not here.
//! - Revocation freshness beyond what the AS says: `status` and the list of *current*
//!   credentials are the AS's statement at the time of the query. A key the AS no longer lists
//!   is refused; an AS that hides a logged revocation is caught by monitors and auditors that
//!   replay the log, not by this check. A validator that cannot reach the AS refuses
//!   ([`Refusal::Network`]): it fails closed.
//! - Split views across parties: consistency is checked against this validator's own saved
//!   checkpoint; comparing views between parties is `verifier-cli compare`.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_log::note::NoteVerifier;
use kt_log::Hash;
use serde_json::Value;
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
    /// superseded, revoked on its own, or expired).
    #[error("no current logged credential of this identity has this key")]
    NotLogged,
    /// The logged credential with this key has expired.
    #[error("credential expired at {not_after}")]
    Expired {
        /// The entry's `not_after` (Unix seconds).
        not_after: u64,
    },
    /// A proof does not verify: checkpoint signature, inclusion proof, or the entry does not
    /// say what the answer claims.
    #[error("proof does not verify: {0}")]
    BadProof(String),
    /// The AS's log is not consistent with the checkpoint this validator saved (a fork, a
    /// rewritten history, or a rollback that cannot be proven to be a prefix).
    #[error("log inconsistent with the saved checkpoint: {0}")]
    Inconsistent(String),
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

fn str_field<'a>(value: &'a Value, name: &str) -> Result<&'a str, Refusal> {
    value[name]
        .as_str()
        .ok_or_else(|| Refusal::Malformed(format!("missing string field {name:?}")))
}

fn hashes(value: &Value) -> Result<Vec<Hash>, Refusal> {
    value
        .as_array()
        .ok_or_else(|| malformed("proof is not an array"))?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|h| B64.decode(h).ok())
                .and_then(|h| Hash::from_slice(&h))
                .ok_or_else(|| malformed("proof hash is not base64 of 32 bytes"))
        })
        .collect()
}

/// The DER inside a PEM certificate (one block).
fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    B64.decode(body).ok()
}

impl AsValidator {
    /// A validator of the AS at `client`, trusting checkpoints signed by `log_key`, with no
    /// saved checkpoint yet (the first one is trusted on its signature alone).
    pub fn new(client: HttpsClient, log_key: NoteVerifier) -> AsValidator {
        AsValidator {
            client,
            log_key,
            latest: Mutex::new(None),
        }
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
        let json = answer
            .json()
            .ok_or_else(|| malformed("consistency proof is not JSON"))?;
        if json["from"].as_u64() != Some(from) || json["to"].as_u64() != Some(to) {
            return Err(malformed("consistency proof for other sizes"));
        }
        hashes(&json["proof"])
    }

    /// Proves `new` consistent with the saved checkpoint, and saves it if it is newer.
    fn sync(&self, new: &VerifiedCheckpoint) -> Result<Consistency, Refusal> {
        let saved = self.lock().clone();
        let consistency = match saved {
            None => Consistency::First,
            Some(old) if old.size() == new.size() => {
                if old.root() != new.root() {
                    return Err(Refusal::Inconsistent(format!(
                        "two signed checkpoints of size {} with different roots",
                        new.size()
                    )));
                }
                Consistency::Same
            }
            Some(old) if old.size() < new.size() => {
                if old.size() > 0 {
                    let proof = self.consistency_proof(old.size(), new.size())?;
                    old.verify_extended_by(new, &proof).map_err(|e| {
                        Refusal::Inconsistent(format!(
                            "size {} does not extend saved size {}: {e}",
                            new.size(),
                            old.size()
                        ))
                    })?;
                }
                Consistency::Extended { from: old.size() }
            }
            Some(old) => {
                if new.size() > 0 {
                    let proof = self.consistency_proof(new.size(), old.size())?;
                    new.verify_extended_by(&old, &proof).map_err(|e| {
                        Refusal::Inconsistent(format!(
                            "size {} is not a prefix of saved size {}: {e}",
                            new.size(),
                            old.size()
                        ))
                    })?;
                }
                Consistency::Behind { saved: old.size() }
            }
        };
        let mut latest = self.lock();
        if latest.as_ref().is_none_or(|l| l.size() < new.size()) {
            *latest = Some(new.clone());
        }
        Ok(consistency)
    }

    /// Validates that `signature_public_key` is the key of a current, logged credential of
    /// the active `identity`. See the module documentation for what an `Ok` guarantees.
    pub fn validate(&self, identity: &str, signature_public_key: &[u8]) -> Result<Proof, Refusal> {
        check_identity(identity)?;
        let key: [u8; 32] = signature_public_key.try_into().map_err(|_| {
            Refusal::BadKey(format!("{} bytes, not 32", signature_public_key.len()))
        })?;
        let answer = self
            .client
            .get(&format!("/v1/identities/{identity}"))
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
        let json = answer
            .json()
            .ok_or_else(|| malformed("identity answer is not JSON"))?;
        if str_field(&json, "identity")? != identity {
            return Err(malformed("answer is about another identity"));
        }
        let checkpoint = open_checkpoint(str_field(&json, "checkpoint")?.as_bytes(), &self.log_key)
            .map_err(|e| Refusal::BadProof(format!("checkpoint: {e}")))?;
        let consistency = self.sync(&checkpoint)?;
        match str_field(&json, "status")? {
            "active" => {}
            "revoked" => return Err(Refusal::Revoked),
            other => return Err(Refusal::Malformed(format!("unknown status {other:?}"))),
        }
        let credentials = json["credentials"]
            .as_array()
            .ok_or_else(|| malformed("credentials is not an array"))?;
        let credential = credentials
            .iter()
            .find(|c| {
                c["public_key"]
                    .as_str()
                    .and_then(|k| B64.decode(k).ok())
                    .is_some_and(|k| k == key)
            })
            .ok_or(Refusal::NotLogged)?;

        let log_index = credential["log_index"]
            .as_u64()
            .ok_or_else(|| malformed("log_index"))?;
        let entry = B64
            .decode(str_field(credential, "entry")?)
            .map_err(|_| malformed("entry is not base64"))?;
        let proof = hashes(&credential["inclusion_proof"])?;
        checkpoint
            .verify_inclusion(log_index, &entry, &proof)
            .map_err(|e| {
                Refusal::BadProof(format!(
                    "entry {log_index} not included in checkpoint of size {}: {e}",
                    checkpoint.size()
                ))
            })?;

        // The protocol's one strict parser: exactly the schema's fields, in canonical form.
        let bad = |why: String| Err(Refusal::BadProof(format!("logged entry {log_index} {why}")));
        let logged = match kt_protocol::entry::LogEntry::parse(&entry) {
            Ok(logged) => logged,
            Err(e) => return bad(format!("does not parse: {e}")),
        };
        let entry_type = logged.body.kind().to_owned();
        let Some(binding) = logged.body.binding() else {
            return bad("is not an issue or rotate entry".into());
        };
        if logged.body.identity() != identity {
            return bad("is for another identity".into());
        }
        if binding.public_key != key {
            return bad("binds another key".into());
        }
        let serial = str_field(credential, "serial")?;
        if binding.serial.to_hex() != serial {
            return bad("has another serial".into());
        }
        let certificate_der = binding.certificate.clone();
        if pem_to_der(str_field(credential, "certificate")?).as_deref()
            != Some(&certificate_der[..])
        {
            return bad("logs another certificate than the one served".into());
        }
        let not_after = binding.not_after;
        if not_after <= now() {
            return Err(Refusal::Expired { not_after });
        }
        Ok(Proof {
            identity: identity.to_owned(),
            public_key: key,
            serial: serial.to_owned(),
            entry_type,
            log_index,
            entry,
            certificate_der,
            not_after,
            checkpoint_size: checkpoint.size(),
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

    #[test]
    fn pem() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_to_der(pem), Some(vec![0, 1, 2, 3]));
    }
}
