//! Verifying a logged credential: certificate, entry and inclusion proof together.
//!
//! Guarantee of [`verify_logged_credential`]: it returns only if (1) the certificate is signed
//! by the trusted CA (see credential.rs), (2) the entry is an `issue` or `rotate` entry whose
//! `certificate` is byte for byte this certificate's DER and whose serial, key, validity and
//! identity equal the certificate's, and (3) those exact entry bytes are at `log_index` in the
//! tree of the already-verified checkpoint. [`verify_bundle`] adds that the `Credential`
//! object's own fields say the same and that the credential is within its validity period.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_log::note::NoteVerifier;
use serde_json::{json, Value};

use crate::credential::{self, hex, CertFacts};
use crate::entry::{parse_entry, Binding, Entry};
use crate::error::Error;
use crate::trust::Ca;
use crate::wire::{b64, decode_hashes, Credential};

/// A credential proven to be logged.
#[derive(Clone, Debug)]
pub(crate) struct LoggedCredential {
    /// The entry's binding.
    pub(crate) binding: Binding,
    /// `issue` or `rotate`.
    pub(crate) kind: &'static str,
    /// What the certificate says.
    pub(crate) facts: CertFacts,
    /// The entry's index.
    pub(crate) log_index: u64,
}

impl LoggedCredential {
    /// JSON fields: `identity`, `serial`, `public_key`, `not_before`, `not_after`,
    /// `log_index`, `type`, `replaces`.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "identity": self.binding.identity,
            "serial": self.binding.serial_hex,
            "public_key": B64.encode(self.binding.public_key),
            "not_before": self.binding.not_before,
            "not_after": self.binding.not_after,
            "log_index": self.log_index,
            "type": self.kind,
            "replaces": self.binding.replaces.as_ref().map(|r| r.1.clone()),
        })
    }
}

/// Verifies certificate + entry + inclusion (see the module guarantee).
pub(crate) fn verify_logged_credential(
    ca: &Ca,
    checkpoint: &VerifiedCheckpoint,
    certificate_pem: &str,
    entry_b64: &str,
    log_index: u64,
    proof: &[String],
) -> Result<LoggedCredential, Error> {
    let cert = credential::parse_certificate(certificate_pem.as_bytes()).map_err(Error::verify)?;
    let facts = ca.verify_certificate(&cert.der).map_err(Error::verify)?;
    let entry_bytes = b64(entry_b64, "entry")?;
    let entry = parse_entry(&entry_bytes).map_err(Error::verify)?;
    let kind = entry.kind();
    let binding = match entry {
        Entry::Issue(b) | Entry::Rotate(b) => b,
        other => {
            return Err(Error::verify(format!(
                "log entry {log_index} is a {} entry, not an issue or rotate entry",
                other.kind()
            )))
        }
    };
    if binding.certificate != cert.der {
        return Err(Error::verify(format!(
            "log entry {log_index} holds another certificate than the one given"
        )));
    }
    binding.check_facts(&facts).map_err(Error::verify)?;
    let proof = decode_hashes(proof, "inclusion_proof")?;
    checkpoint
        .verify_inclusion(log_index, &entry_bytes, &proof)
        .map_err(|e| Error::verify(format!("inclusion proof of entry {log_index}: {e}")))?;
    Ok(LoggedCredential {
        binding,
        kind,
        facts,
        log_index,
    })
}

/// Checks that the API's copy of a field says what the verified entry says.
pub(crate) fn check_api_fields(
    logged: &LoggedCredential,
    serial: &str,
    public_key: &str,
    not_before: u64,
    not_after: u64,
) -> Result<(), Error> {
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
    Err(Error::verify(format!(
        "the answer's {field} differs from the logged entry's"
    )))
}

/// A `Credential` bundle, verified.
#[derive(Clone, Debug)]
pub(crate) struct VerifiedBundle {
    /// The logged credential.
    pub(crate) logged: LoggedCredential,
    /// The checkpoint it is proven in.
    pub(crate) checkpoint: VerifiedCheckpoint,
    /// Whether `chain` contains the trusted CA certificate.
    pub(crate) chain_has_ca: bool,
}

impl VerifiedBundle {
    /// JSON fields: those of [`LoggedCredential::to_json`] plus `checkpoint_size`,
    /// `checkpoint_root` (base64), `origin`, `chain_has_ca`.
    pub(crate) fn to_json(&self) -> Value {
        let mut v = self.logged.to_json();
        if let Value::Object(map) = &mut v {
            map.insert("checkpoint_size".into(), json!(self.checkpoint.size()));
            map.insert(
                "checkpoint_root".into(),
                json!(B64.encode(self.checkpoint.root().0)),
            );
            map.insert(
                "origin".into(),
                json!(self.checkpoint.checkpoint().origin.clone()),
            );
            map.insert("chain_has_ca".into(), json!(self.chain_has_ca));
        }
        v
    }
}

/// Verifies a `Credential` as `POST /v1/credentials` returns it (see the module guarantee),
/// at time `now`.
pub(crate) fn verify_bundle(
    bundle: &Credential,
    verifier: &NoteVerifier,
    ca: &Ca,
    now: u64,
) -> Result<VerifiedBundle, Error> {
    let checkpoint = open_checkpoint(bundle.checkpoint.as_bytes(), verifier)
        .map_err(|e| Error::verify(format!("checkpoint: {e}")))?;
    let logged = verify_logged_credential(
        ca,
        &checkpoint,
        &bundle.certificate,
        &bundle.entry,
        bundle.log_index,
        &bundle.inclusion_proof,
    )?;
    if logged.binding.identity != bundle.identity {
        return Err(Error::verify(
            "the bundle's identity differs from the entry's",
        ));
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
        Some(s) => Some(
            credential::parse_serial_hex(s)
                .ok_or_else(|| Error::verify("the bundle's replaces is not a serial"))?,
        ),
        None => None,
    };
    if replaces_given.is_some() && replaces_given.as_ref() != replaces_logged {
        return Err(Error::verify(
            "the bundle's replaces differs from the entry's",
        ));
    }
    logged.facts.check_time(now).map_err(Error::verify)?;
    let chain_has_ca = bundle
        .chain
        .iter()
        .any(|pem| credential::parse_certificate(pem.as_bytes()).is_ok_and(|c| c.der == ca.der));
    Ok(VerifiedBundle {
        logged,
        checkpoint,
        chain_has_ca,
    })
}

/// Human summary of a verified credential.
pub(crate) fn describe(logged: &LoggedCredential) -> String {
    format!(
        "{} serial {} key {} valid {}..{} logged at index {} ({})",
        logged.binding.identity,
        logged.binding.serial_hex,
        B64.encode(logged.binding.public_key),
        logged.binding.not_before,
        logged.binding.not_after,
        logged.log_index,
        logged.kind
    )
}

/// Lowercase hex of a serial's bytes (for serials known only from a certificate).
pub(crate) fn serial_hex(serial: &[u8]) -> String {
    hex(serial)
}
