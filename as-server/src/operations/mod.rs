//! What the AS does when asked to change something: enroll identities, issue and rotate
//! credentials, revoke, enable.
//!
//! Each operation takes its request as the protocol defines it (`kt_protocol::api`), checks
//! all it can before the sequencer — syntax, tokens, proofs of possession, the state as it
//! stands, budgets — cheapest first, builds what the log will hold, submits it, and returns
//! what was committed with the proof of the identity's new state, or a [`Refusal`]. The
//! sequencer decides for good, in log order ([`crate::admission`]); the checks here only spare
//! it (and the signer) requests that would be refused anyway.
//!
//! Nothing here knows HTTP: the routes read requests and write answers, and turn refusals
//! into problem documents; this is the layer any other frontend or a test calls.

pub mod enrollment;
pub mod issuance;
pub mod revocation;
pub mod rotation;

use ed25519_dalek::VerifyingKey;
use kt_protocol::api::IdentityProof;
use kt_protocol::identity::IdentityError;

use crate::app::AppState;
use crate::directory::ProofError;
use crate::encoding::from_b64;
use crate::entry::Serial;
use crate::pop::{self, PopError};
use crate::refusal::{Refusal, RefusalKind};
use crate::sequencer::Committed;
use crate::storage::{committed_unproven, Fault};

/// Checks an identity from a request against the identity syntax
/// ([`kt_protocol::identity::check_syntax`]): `BadIdentity` if it breaks it.
pub fn check_identity(identity: &str) -> Result<(), Refusal> {
    kt_protocol::identity::check_syntax(identity).map_err(|e| bad_identity(identity, e))
}

/// `BadIdentity` for `identity`, saying which rule it breaks.
pub fn bad_identity(identity: &str, error: IdentityError) -> Refusal {
    Refusal::new(
        RefusalKind::BadIdentity,
        format!("{identity:?} is not a valid identity: {error}"),
    )
}

/// Parses a serial from a request (32 lowercase hex digits): `NotFound` otherwise, as no such
/// serial exists.
pub fn check_serial(serial: &str) -> Result<Serial, Refusal> {
    Serial::parse_hex(serial).ok_or_else(|| {
        Refusal::not_found(format!(
            "{serial:?} is not a serial (32 lowercase hex digits)"
        ))
    })
}

/// The proof of a committed change's identity in the checkpoint that covers it: what every
/// answer of a change carries.
///
/// The change is committed by then: a log the storage cannot read now (the database
/// unreachable) is told as `storage-unavailable`, saying that the change is in the log.
fn proof_of(app: &AppState, committed: &Committed) -> Result<IdentityProof, Refusal> {
    app.directory
        .identity_proof(
            &app.log,
            committed.body.identity(),
            &committed.proof,
            committed.row.as_ref(),
        )
        .map_err(|e| match &e {
            ProofError::Log(log) => match Fault::of_log(log) {
                Some(fault) => committed_unproven(&fault),
                None => Refusal::failed(e),
            },
            ProofError::Record(_) => Refusal::failed(e),
        })
}

/// The bytes of a standard-base64 request `field`.
fn decode_b64(field: &str, text: &str) -> Result<Vec<u8>, Refusal> {
    from_b64(text).ok_or_else(|| Refusal::bad_request(format!("{field} is not standard base64")))
}

/// The Ed25519 key of a standard-base64 request field `public_key`.
fn parse_key(text: &str) -> Result<VerifyingKey, Refusal> {
    pop::parse_public_key(&decode_b64("public_key", text)?).map_err(pop_refusal)
}

fn pop_refusal(e: PopError) -> Refusal {
    let kind = match e {
        PopError::BadKey => RefusalKind::BadKey,
        PopError::BadSignature | PopError::BadCsr(_) => RefusalKind::BadProof,
    };
    Refusal::new(kind, e.to_string())
}
