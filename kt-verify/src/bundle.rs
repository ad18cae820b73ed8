//! Verifying a logged credential: certificate, entry and inclusion proof together.
//!
//! Guarantee of [`verify_logged_credential`]: it returns only if (1) the certificate is signed
//! by the trusted CA (see [`crate::credential`]), (2) the entry is an `issue` or `rotate`
//! entry whose `certificate` is byte for byte this certificate's DER and whose serial, key,
//! validity and identity equal the certificate's, and (3) those exact entry bytes are at
//! `log_index` in the tree of the already-verified checkpoint. [`verify_bundle`] adds that the
//! `Credential` object's own fields say the same and that the credential is within its
//! validity period at the time it is given.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::{open_checkpoint, CheckpointError, VerifiedCheckpoint};
use kt_log::note::NoteVerifier;
use kt_log::verify::ProofError;
use thiserror::Error;

use crate::credential::{self, Ca, CertFacts, CredentialError};
use crate::entry::{parse_entry, Binding, Entry, EntryError};
use crate::wire::{decode_b64, decode_hashes, Credential, EncodingError};

/// Why a logged credential or a `Credential` bundle was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bundle's checkpoint is not signed by the log key.
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointError),
    /// The certificate does not parse or is not the CA's.
    #[error(transparent)]
    Certificate(CredentialError),
    /// The entry or a proof hash is not valid base64.
    #[error(transparent)]
    Encoding(#[from] EncodingError),
    /// The entry is not an entry of the protocol.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// The entry is a revoke or enable entry.
    #[error("log entry {index} is a {kind} entry, not an issue or rotate entry")]
    NotABinding {
        /// Its index.
        index: u64,
        /// Its `type`.
        kind: &'static str,
    },
    /// The entry logs another certificate.
    #[error("log entry {index} holds another certificate than the one given")]
    OtherCertificate {
        /// Its index.
        index: u64,
    },
    /// The inclusion proof does not verify.
    #[error("inclusion proof of entry {index}: {source}")]
    Inclusion {
        /// The entry's index.
        index: u64,
        /// Why.
        source: ProofError,
    },
    /// The bundle names another identity than the entry.
    #[error("the bundle's identity differs from the entry's")]
    OtherIdentity,
    /// A field of the answer differs from the entry's.
    #[error("the answer's {field} differs from the logged entry's")]
    FieldMismatch {
        /// The field.
        field: &'static str,
    },
    /// The bundle's `replaces` is not a serial.
    #[error("the bundle's replaces is not a serial")]
    BadReplaces,
    /// The bundle's `replaces` differs from the entry's.
    #[error("the bundle's replaces differs from the entry's")]
    OtherReplaces,
    /// The credential is not valid at the time given.
    #[error(transparent)]
    Validity(CredentialError),
}

/// A credential proven to be logged. Only [`verify_logged_credential`] makes one.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LoggedCredential {
    /// The entry's binding.
    pub binding: Binding,
    /// `issue` or `rotate`.
    pub kind: &'static str,
    /// What the certificate says.
    pub facts: CertFacts,
    /// The entry's index.
    pub log_index: u64,
    /// The exact entry bytes proven included.
    pub entry: Vec<u8>,
}

/// Verifies certificate + entry + inclusion (see the module guarantee).
pub fn verify_logged_credential(
    ca: &Ca,
    checkpoint: &VerifiedCheckpoint,
    certificate_pem: &str,
    entry_b64: &str,
    log_index: u64,
    proof: &[String],
) -> Result<LoggedCredential, BundleError> {
    let cert = credential::parse_certificate(certificate_pem.as_bytes())
        .map_err(BundleError::Certificate)?;
    let facts = ca
        .verify_certificate(&cert.der)
        .map_err(BundleError::Certificate)?;
    let entry_bytes = decode_b64(entry_b64, "entry")?;
    let entry = parse_entry(&entry_bytes)?;
    let kind = entry.kind();
    let binding = match entry {
        Entry::Issue(b) | Entry::Rotate(b) => b,
        other => {
            return Err(BundleError::NotABinding {
                index: log_index,
                kind: other.kind(),
            })
        }
    };
    if binding.certificate != cert.der {
        return Err(BundleError::OtherCertificate { index: log_index });
    }
    binding.check_facts(&facts)?;
    let proof = decode_hashes(proof, "inclusion_proof")?;
    checkpoint
        .verify_inclusion(log_index, &entry_bytes, &proof)
        .map_err(|source| BundleError::Inclusion {
            index: log_index,
            source,
        })?;
    Ok(LoggedCredential {
        binding,
        kind,
        facts,
        log_index,
        entry: entry_bytes,
    })
}

/// Checks that the API's copy of the fields says what the verified entry says.
pub fn check_api_fields(
    logged: &LoggedCredential,
    serial: &str,
    public_key: &str,
    not_before: u64,
    not_after: u64,
) -> Result<(), BundleError> {
    let b = &logged.binding;
    let serial_ok = credential::parse_serial_hex(serial).is_some_and(|s| s == b.serial);
    let key_ok = B64.decode(public_key).is_ok_and(|k| k == b.public_key);
    let field = if !serial_ok {
        "serial"
    } else if !key_ok {
        "public_key"
    } else if not_before != b.not_before {
        "not_before"
    } else if not_after != b.not_after {
        "not_after"
    } else {
        return Ok(());
    };
    Err(BundleError::FieldMismatch { field })
}

/// A `Credential` bundle, verified. Only [`verify_bundle`] makes one.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifiedBundle {
    /// The logged credential.
    pub logged: LoggedCredential,
    /// The checkpoint it is proven in.
    pub checkpoint: VerifiedCheckpoint,
    /// Whether `chain` contains the trusted CA certificate.
    pub chain_has_ca: bool,
}

/// Verifies a `Credential` as `POST /v1/credentials` returns it (see the module guarantee),
/// at time `now` (Unix seconds).
pub fn verify_bundle(
    bundle: &Credential,
    verifier: &NoteVerifier,
    ca: &Ca,
    now: u64,
) -> Result<VerifiedBundle, BundleError> {
    let checkpoint =
        open_checkpoint(bundle.checkpoint.as_bytes(), verifier).map_err(BundleError::Checkpoint)?;
    let logged = verify_logged_credential(
        ca,
        &checkpoint,
        &bundle.certificate,
        &bundle.entry,
        bundle.log_index,
        &bundle.inclusion_proof,
    )?;
    if logged.binding.identity != bundle.identity {
        return Err(BundleError::OtherIdentity);
    }
    check_api_fields(
        &logged,
        &bundle.serial,
        &bundle.public_key,
        bundle.not_before,
        bundle.not_after,
    )?;
    let replaces_logged = logged.binding.replaces.as_ref().map(|r| &r.0);
    let replaces_given = match &bundle.replaces {
        Some(s) => Some(credential::parse_serial_hex(s).ok_or(BundleError::BadReplaces)?),
        None => None,
    };
    if replaces_given.is_some() && replaces_given.as_ref() != replaces_logged {
        return Err(BundleError::OtherReplaces);
    }
    logged
        .facts
        .check_time(now)
        .map_err(BundleError::Validity)?;
    let chain_has_ca = bundle
        .chain
        .iter()
        .any(|pem| credential::parse_certificate(pem.as_bytes()).is_ok_and(|c| c.der == ca.der()));
    Ok(VerifiedBundle {
        logged,
        checkpoint,
        chain_has_ca,
    })
}
