//! `validate`: is this key a current, logged, unexpired, unrevoked key of this identity?
//!
//! Guarantee of [`validate`]: it returns [`Valid`] only if the lookup verified
//! ([`crate::lookup`]: the identity's complete state as of its checkpoint, every credential
//! the CA's), that state is `active`, one of its current credentials binds exactly `key`, that
//! credential's certificate is within its validity at `now` (`not_before ≤ now ≤ not_after`),
//! and the CRL, fetched only once all of that held and verified under the CA at `now`
//! (signature, issuer, not past `nextUpdate`), does not list its serial. A revocation after
//! the lookup's checkpoint is the caller's to exclude: it must refuse a lookup older than the
//! newest checkpoint it verified. `verifier-cli validate` and mls-demo's validator both decide
//! with it.

use thiserror::Error;

use kt_protocol::directory::record::Status;

use crate::credential::{Ca, CredentialError, Crl};
use crate::lookup::{CheckedCredential, VerifiedLookup};

/// Why a key is not valid for an identity.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Invalid {
    /// The directory proves the identity absent.
    #[error("identity is not enrolled")]
    NotEnrolled,
    /// The identity is revoked.
    #[error("identity is revoked")]
    NotActive,
    /// No current credential of the identity binds this key.
    #[error("no current logged credential of this identity has this key")]
    NoSuchKey,
    /// The credential is expired or not yet valid at the time given.
    #[error(transparent)]
    Validity(CredentialError),
    /// The CA's CRL lists the credential.
    #[error("credential {serial} is revoked (on the CRL)")]
    Revoked {
        /// The serial, as the entry writes it.
        serial: String,
    },
}

/// Why [`validate`] could not decide, or decided against.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ValidateError<E> {
    /// The key is not valid.
    #[error(transparent)]
    Invalid(Invalid),
    /// The CRL could not be had (the caller's error).
    #[error(transparent)]
    CrlUnavailable(E),
    /// The CRL does not verify under the CA, or is stale.
    #[error(transparent)]
    BadCrl(CredentialError),
}

/// A valid key: the credential that binds it, and the CRL checked.
#[derive(Clone, Debug)]
pub struct Valid<'a> {
    /// Position of the credential in the lookup (and in the answer).
    pub index: usize,
    /// The credential.
    pub credential: &'a CheckedCredential,
    /// The verified CRL it is not on.
    pub crl: Crl,
}

/// Decides `validate` (see the module guarantee). `crl_der` gives the CA's CRL (DER); it is
/// called only when everything else held.
pub fn validate<'a, E>(
    lookup: &'a VerifiedLookup,
    key: &[u8; 32],
    ca: &Ca,
    now: u64,
    crl_der: impl FnOnce() -> Result<Vec<u8>, E>,
) -> Result<Valid<'a>, ValidateError<E>> {
    match lookup.status {
        None => return Err(ValidateError::Invalid(Invalid::NotEnrolled)),
        Some(Status::Revoked) => return Err(ValidateError::Invalid(Invalid::NotActive)),
        Some(Status::Active) => {}
    }
    let (index, credential) = lookup
        .credentials
        .iter()
        .enumerate()
        .find(|(_, c)| c.binding.public_key == *key)
        .ok_or(ValidateError::Invalid(Invalid::NoSuchKey))?;
    credential
        .facts
        .check_time(now)
        .map_err(|e| ValidateError::Invalid(Invalid::Validity(e)))?;
    let der = crl_der().map_err(ValidateError::CrlUnavailable)?;
    let crl = ca.verify_crl(&der, now).map_err(ValidateError::BadCrl)?;
    if crl.is_revoked(&credential.binding.serial.0) {
        return Err(ValidateError::Invalid(Invalid::Revoked {
            serial: credential.binding.serial.to_hex(),
        }));
    }
    Ok(Valid {
        index,
        credential,
        crl,
    })
}
