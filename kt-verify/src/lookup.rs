//! Verifying a lookup: an identity's complete state, and every credential in it checked
//! against the CA.
//!
//! [`verify_lookup`] takes the identity's verified state ([`crate::directory`]: complete as of
//! its checkpoint, or absent) and checks each current credential's certificate under the CA
//! and against what the directory's record says of it ([`Ca::check_binding`]). One credential
//! that fails fails the whole answer: an MLS member and `verifier-cli` accept a key only from a
//! state whose every credential is the CA's.

use kt_protocol::directory::record::Status;
use thiserror::Error;

use crate::credential::{BindingError, Ca, CertFacts};
use crate::directory::VerifiedIdentity;

/// Why a lookup was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LookupError {
    /// A credential of the state does not verify under the CA.
    #[error("credential {serial}: {source}")]
    Credential {
        /// Its serial.
        serial: String,
        /// Why.
        source: BindingError,
    },
}

/// One current credential, its certificate checked.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CheckedCredential {
    /// What the directory's record says.
    pub binding: kt_protocol::entry::Binding,
    /// What its certificate says (the same, and signed by the CA).
    pub facts: CertFacts,
}

/// A lookup whose every part verified. Only [`verify_lookup`] makes one.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifiedLookup {
    /// The identity's verified state (or absence).
    pub identity: VerifiedIdentity,
    /// Its status: `None` when absent from the directory.
    pub status: Option<Status>,
    /// Its current credentials, in the record's order (by serial).
    pub credentials: Vec<CheckedCredential>,
}

/// Checks every credential of a verified state under the CA (see the module doc).
pub fn verify_lookup(identity: VerifiedIdentity, ca: &Ca) -> Result<VerifiedLookup, LookupError> {
    let mut credentials = Vec::new();
    let status = identity.state.as_ref().map(|s| s.record.status);
    if let Some(state) = &identity.state {
        for binding in &state.record.credentials {
            let facts = ca
                .check_binding(&state.record.identity, binding)
                .map_err(|source| LookupError::Credential {
                    serial: binding.serial.to_hex(),
                    source,
                })?;
            credentials.push(CheckedCredential {
                binding: binding.clone(),
                facts,
            });
        }
    }
    Ok(VerifiedLookup {
        identity,
        status,
        credentials,
    })
}
