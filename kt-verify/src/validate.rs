//! `validate`: is this key a current, logged, unexpired, unrevoked key of this identity?
//!
//! Guarantee of [`validate`]: it returns [`Valid`] only if the lookup verified
//! ([`crate::lookup`]), the AS says the identity is `active`, one of its current logged
//! credentials binds exactly `key`, that credential's certificate is within its validity at
//! `now` (`not_before ≤ now ≤ not_after`), and the CRL, fetched only once all of that held and
//! verified under the CA at `now` (signature, issuer, not past `nextUpdate`), does not list
//! its serial. `verifier-cli validate` and mls-demo's validator both decide with it.

use thiserror::Error;

use crate::bundle::LoggedCredential;
use crate::credential::{Ca, CredentialError, Crl};
use crate::lookup::VerifiedLookup;

/// Why a key is not valid for an identity.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Invalid {
    /// The AS has never enrolled the identity.
    #[error("identity is not enrolled")]
    NotEnrolled,
    /// The AS says the identity is not active (`revoked`, or a status it does not document).
    #[error("identity is {status}")]
    NotActive {
        /// The status the AS gave.
        status: String,
    },
    /// No current logged credential of the identity binds this key.
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
    pub credential: &'a LoggedCredential,
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
    if lookup.status != "active" {
        return Err(ValidateError::Invalid(Invalid::NotActive {
            status: lookup.status.clone(),
        }));
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
    if crl.is_revoked(&credential.binding.serial) {
        return Err(ValidateError::Invalid(Invalid::Revoked {
            serial: credential.binding.serial_hex.clone(),
        }));
    }
    Ok(Valid {
        index,
        credential,
        crl,
    })
}
