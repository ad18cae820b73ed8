//! Verifying a credential bundle: the answer of an issuance or rotation
//! ([`CredentialAnswer`]), which a client keeps as proof of its credential.
//!
//! Guarantee of [`verify_bundle`]: it returns only if (1) the answer's identity proof verifies
//! ([`crate::directory`]) and shows the identity present, (2) that state holds a credential
//! of the answer's serial whose certificate is byte for byte the answer's certificate, signed
//! by the trusted CA and saying exactly what the state says (serial, key, validity, identity),
//! (3) the answer's own copies of the serial, key, validity agree with it, and for a rotation
//! the serial replaced is not current (and is the one the state's change names, when that
//! change is this rotation), and (4) the credential is within its validity at `now`. So the
//! credential was, as of the proof's checkpoint, one of the identity's current credentials.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::note::NoteVerifier;
use kt_protocol::api::CredentialAnswer;
use kt_protocol::directory::record::Change;
use kt_protocol::directory::vrf::VrfPublicKey;
use thiserror::Error;

use crate::credential::{self, BindingError, Ca, CertFacts, CredentialError};
use crate::directory::{answer_checkpoint, verify_identity, DirectoryError, VerifiedIdentity};

/// Why a bundle was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The identity proof does not verify.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The answer's certificate is not PEM of a certificate.
    #[error(transparent)]
    Certificate(CredentialError),
    /// The proof shows the identity absent from the directory.
    #[error("the proof shows the identity absent from the directory")]
    Absent,
    /// The identity's state holds no credential of this serial (it was replaced or revoked in
    /// the same batch, or the answer is false).
    #[error("the identity's state holds no credential {0}")]
    NotCurrent(String),
    /// The state's credential has another certificate.
    #[error("the identity's state holds another certificate for {0}")]
    OtherCertificate(String),
    /// The certificate is not the CA's or disagrees with the state.
    #[error(transparent)]
    Binding(#[from] BindingError),
    /// A field of the answer differs from the state's.
    #[error("the answer's {field} differs from the directory's")]
    FieldMismatch {
        /// The field.
        field: &'static str,
    },
    /// The credential is not valid at the time given.
    #[error(transparent)]
    Validity(CredentialError),
}

/// A verified bundle. Only [`verify_bundle`] makes one.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifiedBundle {
    /// The identity's state the credential is in.
    pub identity: VerifiedIdentity,
    /// The credential, as the state holds it.
    pub binding: kt_protocol::entry::Binding,
    /// What its certificate says.
    pub facts: CertFacts,
    /// Whether the answer's `chain` contains the trusted CA certificate.
    pub chain_has_ca: bool,
}

/// Verifies a bundle (see the module guarantee) at `now` (Unix seconds).
pub fn verify_bundle(
    bundle: &CredentialAnswer,
    log_key: &NoteVerifier,
    vrf_key: &VrfPublicKey,
    ca: &Ca,
    now: u64,
) -> Result<VerifiedBundle, BundleError> {
    let checkpoint = answer_checkpoint(&bundle.directory, &bundle.identity, log_key)?;
    let identity = verify_identity(&bundle.directory, &checkpoint, vrf_key)?;
    let state = identity.state.as_ref().ok_or(BundleError::Absent)?;
    let cert = credential::parse_certificate(bundle.certificate.as_bytes())
        .map_err(BundleError::Certificate)?;
    let binding = state
        .record
        .credentials
        .iter()
        .find(|c| c.serial.to_hex() == bundle.serial)
        .cloned()
        .ok_or_else(|| BundleError::NotCurrent(bundle.serial.clone()))?;
    if binding.certificate != cert.der {
        return Err(BundleError::OtherCertificate(bundle.serial.clone()));
    }
    let facts = ca.check_binding(&state.record.identity, &binding)?;
    // The serial a rotation replaced is no longer current, and when the state's latest
    // change is this rotation, it names it (a later change of the identity in the same batch
    // can be the latest).
    let replaces_ok = match &bundle.replaces {
        None => true,
        Some(replaced) => {
            let still_current = state
                .record
                .credentials
                .iter()
                .any(|c| c.serial.to_hex() == *replaced);
            let named = match &state.record.change {
                Change::Rotate { serial, replaces } if *serial == binding.serial => {
                    replaces.to_hex() == *replaced
                }
                _ => true,
            };
            !still_current && named
        }
    };
    let field = if B64.decode(&bundle.public_key).ok().as_deref() != Some(&binding.public_key[..]) {
        Some("public_key")
    } else if bundle.not_before != binding.not_before {
        Some("not_before")
    } else if bundle.not_after != binding.not_after {
        Some("not_after")
    } else if !replaces_ok {
        Some("replaces")
    } else {
        None
    };
    if let Some(field) = field {
        return Err(BundleError::FieldMismatch { field });
    }
    facts.check_time(now).map_err(BundleError::Validity)?;
    let chain_has_ca = bundle
        .chain
        .iter()
        .any(|pem| credential::parse_certificate(pem.as_bytes()).is_ok_and(|c| c.der == ca.der()));
    Ok(VerifiedBundle {
        identity,
        binding,
        facts,
        chain_has_ca,
    })
}
