//! Verifying an identity lookup (`GET /v1/identities/{identity}`).
//!
//! In two steps, so that a caller can prove the answer's checkpoint consistent with what it
//! saw before ([`crate::consistency`]) before it believes anything else in it:
//! 1. [`answer_checkpoint`]: the answer is about the identity asked for, and its checkpoint
//!    is signed by the log key;
//! 2. [`verify_lookup`]: every credential listed is a logged credential of this identity in
//!    that checkpoint ([`crate::bundle::verify_logged_credential`]: CA signature, entry,
//!    inclusion), and the answer's copy of its fields equals the entry's. One credential that
//!    fails fails the whole answer.
//!
//! What a [`VerifiedLookup`] does not say: that the list is complete, or that the `status`
//! is true. Both are the AS's statement; auditors and monitors replaying the log catch an AS
//! that hides a logged revocation or binding.

use kt_log::checkpoint::{open_checkpoint, CheckpointError, VerifiedCheckpoint};
use kt_log::note::NoteVerifier;
use thiserror::Error;

use crate::bundle::{check_api_fields, verify_logged_credential, BundleError, LoggedCredential};
use crate::credential::Ca;
use crate::wire::IdentityAnswer;

/// Why an identity answer was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The answer is about another identity than the one asked for.
    #[error("the answer is about another identity")]
    OtherIdentity,
    /// The answer's checkpoint is not signed by the log key.
    #[error("identity answer checkpoint: {0}")]
    Checkpoint(CheckpointError),
    /// A listed credential does not verify.
    #[error(transparent)]
    Credential(#[from] BundleError),
    /// A listed credential is logged for another identity.
    #[error("credential at index {index} is for {identity}")]
    CredentialOfOther {
        /// Its log index.
        index: u64,
        /// The identity its entry binds.
        identity: String,
    },
}

/// An identity answer whose every proof verified. Only [`verify_lookup`] makes one.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifiedLookup {
    /// The identity.
    pub identity: String,
    /// `active` or `revoked`, as the AS says.
    pub status: String,
    /// The answer's checkpoint.
    pub checkpoint: VerifiedCheckpoint,
    /// The current credentials, verified, in the answer's order.
    pub credentials: Vec<LoggedCredential>,
}

/// Step 1 (see the module doc): the answer is about `identity` and its checkpoint verifies
/// under the log key.
pub fn answer_checkpoint(
    answer: &IdentityAnswer,
    identity: &str,
    verifier: &NoteVerifier,
) -> Result<VerifiedCheckpoint, LookupError> {
    if answer.identity != identity {
        return Err(LookupError::OtherIdentity);
    }
    open_checkpoint(answer.checkpoint.as_bytes(), verifier).map_err(LookupError::Checkpoint)
}

/// Step 2 (see the module doc): every credential of the answer, against `checkpoint` (the
/// one [`answer_checkpoint`] returned).
pub fn verify_lookup(
    answer: &IdentityAnswer,
    identity: &str,
    checkpoint: VerifiedCheckpoint,
    ca: &Ca,
) -> Result<VerifiedLookup, LookupError> {
    if answer.identity != identity {
        return Err(LookupError::OtherIdentity);
    }
    let mut credentials = Vec::with_capacity(answer.credentials.len());
    for c in &answer.credentials {
        let logged = verify_logged_credential(
            ca,
            &checkpoint,
            &c.certificate,
            &c.entry,
            c.log_index,
            &c.inclusion_proof,
        )?;
        if logged.binding.identity != identity {
            return Err(LookupError::CredentialOfOther {
                index: c.log_index,
                identity: logged.binding.identity,
            });
        }
        check_api_fields(&logged, &c.serial, &c.public_key, c.not_before, c.not_after)?;
        credentials.push(logged);
    }
    Ok(VerifiedLookup {
        identity: identity.to_owned(),
        status: answer.status.clone(),
        checkpoint,
        credentials,
    })
}
