//! X.509 credentials and the CA's CRL: parsing and verification against the trusted CA.
//! No clock is read: every check of time takes the time as a value.
//!
//! A credential is an X.509 v3 certificate with an Ed25519 subject key, signed by the CA's
//! Ed25519 key; its identity is the one `rfc822Name` (mailbox) or `uniformResourceIdentifier`
//! (URI identity) of its subjectAltName. Guarantees:
//! - [`Ca::verify_certificate`] returns [`CertFacts`] only if the certificate parses as strict
//!   DER, names the CA as issuer, uses Ed25519 for its signature, and that signature verifies
//!   (`verify_strict`) under the CA key over the exact `tbsCertificate` bytes given. It does not
//!   look at the time: [`CertFacts::check_time`] does, at the time it is given.
//! - [`Ca::verify_crl`] returns a [`Crl`] only if the CRL is signed the same way by the CA and is
//!   not past its `nextUpdate` at the time given. A [`Crl`] can be made in no other way.
//!
//! Serial numbers are compared as integers: leading zero bytes are dropped on both sides (a DER
//! INTEGER never has them, the API's fixed-width hex may).

use std::collections::BTreeSet;

use der::{Decode, Encode};
use ed25519_dalek::{Signature, VerifyingKey};
use thiserror::Error;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::name::{DirectoryString, GeneralName};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::spki::{AlgorithmIdentifierOwned, ObjectIdentifier};
use x509_cert::Certificate;

/// id-Ed25519, RFC 8410.
pub const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// The X.500 commonName attribute.
const CN_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// Why a certificate or CRL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// Not PEM of a certificate, nor DER.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// Not signed with Ed25519, or by another issuer than the CA.
    #[error("certificate is not issued by the trusted CA: {0}")]
    WrongIssuer(&'static str),
    /// The CA's signature does not verify.
    #[error("certificate signature does not verify under the CA key")]
    BadSignature,
    /// The subject key is not an Ed25519 key.
    #[error("subject key is not a 32-byte Ed25519 key")]
    BadSubjectKey,
    /// The subjectAltName does not carry exactly one identity (rfc822Name or URI), or the CN
    /// disagrees.
    #[error("certificate identity: {0}")]
    BadIdentity(&'static str),
    /// Now is past notAfter.
    #[error("certificate expired at {not_after} (now {now})")]
    Expired {
        /// End of validity, Unix seconds.
        not_after: u64,
        /// The time checked.
        now: u64,
    },
    /// Now is before notBefore.
    #[error("certificate not valid before {not_before} (now {now})")]
    NotYetValid {
        /// Start of validity, Unix seconds.
        not_before: u64,
        /// The time checked.
        now: u64,
    },
    /// The CRL does not parse or is not the CA's.
    #[error("CRL: {0}")]
    BadCrl(String),
    /// The CRL is past its nextUpdate: revocations since then may be missing.
    #[error("CRL is stale: nextUpdate {next_update} is before now {now}")]
    StaleCrl {
        /// The CRL's nextUpdate, Unix seconds.
        next_update: u64,
        /// The time checked.
        now: u64,
    },
}

/// Why a certificate cannot be the CA trust anchor.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CaError {
    /// Not a certificate at all.
    #[error(transparent)]
    Certificate(#[from] CredentialError),
    /// Its key is not an Ed25519 key.
    #[error("the CA key is not Ed25519")]
    NotEd25519,
    /// Its Ed25519 key is not 32 bytes.
    #[error("the CA key is not 32 bytes")]
    KeyLength,
    /// Its key is not a point of the curve.
    #[error("the CA key is not a valid point")]
    NotAPoint,
    /// Its subject name cannot be encoded again.
    #[error("CA subject: {0}")]
    Subject(String),
}

/// A certificate with the exact DER it was parsed from.
#[derive(Clone, Debug)]
pub struct ParsedCert {
    /// The DER bytes (from the PEM, if it was PEM).
    pub der: Vec<u8>,
    /// The parsed certificate.
    pub cert: Certificate,
}

/// Parses one certificate from PEM (`CERTIFICATE` label) or DER.
pub fn parse_certificate(bytes: &[u8]) -> Result<ParsedCert, CredentialError> {
    let der = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let (label, der) = der::pem::decode_vec(bytes.trim_ascii())
            .map_err(|e| CredentialError::Malformed(format!("PEM: {e}")))?;
        if label != "CERTIFICATE" {
            return Err(CredentialError::Malformed(format!(
                "PEM label is {label:?}, expected CERTIFICATE"
            )));
        }
        der
    } else {
        bytes.to_vec()
    };
    let cert =
        Certificate::from_der(&der).map_err(|e| CredentialError::Malformed(e.to_string()))?;
    Ok(ParsedCert { der, cert })
}

/// What a verified credential says, in the log entry's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFacts {
    /// Serial number, big-endian, leading zeros dropped.
    pub serial: Vec<u8>,
    /// The subjectAltName identity (rfc822Name or uniformResourceIdentifier).
    pub identity: String,
    /// The Ed25519 subject key.
    pub public_key: [u8; 32],
    /// notBefore, Unix seconds.
    pub not_before: u64,
    /// notAfter, Unix seconds.
    pub not_after: u64,
}

impl CertFacts {
    /// Fails unless `not_before ≤ now ≤ not_after`.
    pub fn check_time(&self, now: u64) -> Result<(), CredentialError> {
        if now < self.not_before {
            return Err(CredentialError::NotYetValid {
                not_before: self.not_before,
                now,
            });
        }
        if now > self.not_after {
            return Err(CredentialError::Expired {
                not_after: self.not_after,
                now,
            });
        }
        Ok(())
    }
}

/// Which field of a credential its certificate contradicts.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BindingError {
    /// The certificate does not verify under the CA.
    #[error(transparent)]
    Certificate(#[from] CredentialError),
    /// The certificate verifies but says something else than the credential.
    #[error("the credential's {field} does not match its certificate")]
    Mismatch {
        /// The field that differs.
        field: &'static str,
    },
}

/// A CRL verified under the CA: the set of revoked serials (leading zeros dropped).
#[derive(Clone, Debug)]
pub struct Crl {
    revoked: BTreeSet<Vec<u8>>,
    /// thisUpdate, Unix seconds.
    pub this_update: u64,
    /// nextUpdate, Unix seconds, if the CRL has one.
    pub next_update: Option<u64>,
}

impl Crl {
    /// Whether `serial` (any leading zeros) is on the CRL.
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.revoked.contains(normalize_serial(serial))
    }
    /// How many serials the CRL lists.
    pub fn revoked_count(&self) -> usize {
        self.revoked.len()
    }
}

/// Drops leading zero bytes so that equal integers compare equal.
pub fn normalize_serial(serial: &[u8]) -> &[u8] {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    &serial[start..]
}

/// Parses an API serial: lowercase hex, even length, 2 to 42 digits (at most 21 bytes, as
/// RFC 5280 allows 20 octets and a leading zero). Returns the normalized bytes (leading zeros
/// dropped). Decoded by the protocol's hex rule ([`kt_protocol::entry::decode_hex`]) after
/// padding with zeros to 42 digits, which does not change the integer.
pub fn parse_serial_hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || text.len() > 42 || !text.len().is_multiple_of(2) {
        return None;
    }
    let bytes = kt_protocol::entry::decode_hex::<21>(&format!("{text:0>42}"))?;
    Some(normalize_serial(&bytes).to_vec())
}

/// The exact bytes of the first element of a DER SEQUENCE (the signed part of a certificate
/// or CRL), sliced from the input rather than re-encoded.
fn first_element(der: &[u8]) -> Option<&[u8]> {
    fn header(bytes: &[u8]) -> Option<(usize, usize)> {
        // Returns (header length, content length) of a definite-length DER TLV.
        let first = *bytes.get(1)?;
        if first < 0x80 {
            return Some((2, usize::from(first)));
        }
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = bytes
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        Some((2 + n, len))
    }
    if der.first() != Some(&0x30) {
        return None;
    }
    let (outer_header, _) = header(der)?;
    let inner = der.get(outer_header..)?;
    if inner.first() != Some(&0x30) {
        return None;
    }
    let (h, len) = header(inner)?;
    inner.get(..h.checked_add(len)?)
}

/// Checks that an algorithm identifier is Ed25519 without parameters (RFC 8410 §3).
fn is_ed25519(alg: &AlgorithmIdentifierOwned) -> bool {
    alg.oid == ED25519_OID && alg.parameters.is_none()
}

/// Verifies an Ed25519 signature by `key` over `message`, strictly.
fn verify_sig(key: &VerifyingKey, message: &[u8], sig: Option<&[u8]>) -> bool {
    sig.and_then(|s| Signature::from_slice(s).ok())
        .is_some_and(|s| key.verify_strict(message, &s).is_ok())
}

impl Ca {
    /// Verifies a credential certificate given as DER (see the module guarantees).
    pub fn verify_certificate(&self, der: &[u8]) -> Result<CertFacts, CredentialError> {
        let cert =
            Certificate::from_der(der).map_err(|e| CredentialError::Malformed(e.to_string()))?;
        let tbs = cert.tbs_certificate();
        if !is_ed25519(cert.signature_algorithm()) || !is_ed25519(tbs.signature()) {
            return Err(CredentialError::WrongIssuer("not signed with Ed25519"));
        }
        let issuer = tbs
            .issuer()
            .to_der()
            .map_err(|e| CredentialError::Malformed(e.to_string()))?;
        if issuer != self.subject_der {
            return Err(CredentialError::WrongIssuer("issuer is not the CA's name"));
        }
        let signed = first_element(der)
            .ok_or_else(|| CredentialError::Malformed("no tbsCertificate".into()))?;
        if !verify_sig(&self.key, signed, cert.signature().as_bytes()) {
            return Err(CredentialError::BadSignature);
        }
        let spki = tbs.subject_public_key_info();
        if spki.algorithm.oid != ED25519_OID {
            return Err(CredentialError::BadSubjectKey);
        }
        let public_key = spki
            .subject_public_key
            .as_bytes()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or(CredentialError::BadSubjectKey)?;
        let identity = identity_of(&cert)?;
        let validity = tbs.validity();
        Ok(CertFacts {
            serial: normalize_serial(tbs.serial_number().as_bytes()).to_vec(),
            identity,
            public_key,
            not_before: validity.not_before.to_unix_duration().as_secs(),
            not_after: validity.not_after.to_unix_duration().as_secs(),
        })
    }

    /// Verifies the certificate of a credential of `identity` (a version record's, or a
    /// change's) under the CA, and checks that it says exactly what the credential says:
    /// serial, key, validity and identity. Returns the certificate's facts.
    pub fn check_binding(
        &self,
        identity: &str,
        binding: &kt_protocol::entry::Binding,
    ) -> Result<CertFacts, BindingError> {
        let facts = self.verify_certificate(&binding.certificate)?;
        let field = if facts.serial != normalize_serial(&binding.serial.0) {
            "serial"
        } else if facts.public_key != binding.public_key {
            "public_key"
        } else if facts.not_before != binding.not_before {
            "not_before"
        } else if facts.not_after != binding.not_after {
            "not_after"
        } else if facts.identity != identity {
            "identity"
        } else {
            return Ok(facts);
        };
        Err(BindingError::Mismatch { field })
    }

    /// Verifies a DER CRL (see the module guarantees) at time `now`.
    pub fn verify_crl(&self, der: &[u8], now: u64) -> Result<Crl, CredentialError> {
        let crl = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der)
            .map_err(|e| CredentialError::BadCrl(e.to_string()))?;
        let tbs = &crl.tbs_cert_list;
        if !is_ed25519(&crl.signature_algorithm) || !is_ed25519(&tbs.signature) {
            return Err(CredentialError::BadCrl("not signed with Ed25519".into()));
        }
        let issuer = tbs
            .issuer
            .to_der()
            .map_err(|e| CredentialError::BadCrl(e.to_string()))?;
        if issuer != self.subject_der {
            return Err(CredentialError::BadCrl(
                "issuer is not the CA's name".into(),
            ));
        }
        let signed =
            first_element(der).ok_or_else(|| CredentialError::BadCrl("no tbsCertList".into()))?;
        if !verify_sig(&self.key, signed, crl.signature.as_bytes()) {
            return Err(CredentialError::BadCrl(
                "signature does not verify under the CA key".into(),
            ));
        }
        let next_update = tbs.next_update.map(|t| t.to_unix_duration().as_secs());
        if let Some(next_update) = next_update {
            if next_update < now {
                return Err(CredentialError::StaleCrl { next_update, now });
            }
        }
        let revoked = tbs
            .revoked_certificates
            .iter()
            .flatten()
            .map(|r| normalize_serial(r.serial_number.as_bytes()).to_vec())
            .collect();
        Ok(Crl {
            revoked,
            this_update: tbs.this_update.to_unix_duration().as_secs(),
            next_update,
        })
    }
}

/// The one identity of the subjectAltName: an `rfc822Name` holding a mailbox or a
/// `uniformResourceIdentifier` holding a URI identity (never one kind in the other's place,
/// so a name has one encoding); the subject CN, if present, must equal it.
fn identity_of(cert: &Certificate) -> Result<String, CredentialError> {
    let tbs = cert.tbs_certificate();
    let (_, san) = tbs
        .get_extension::<SubjectAltName>()
        .map_err(|_| CredentialError::BadIdentity("malformed or repeated subjectAltName"))?
        .ok_or(CredentialError::BadIdentity("no subjectAltName"))?;
    use kt_protocol::identity::{kind, IdentityKind};
    let mut names = san.0.iter().filter_map(|n| match n {
        GeneralName::Rfc822Name(name) => Some((name.as_str(), IdentityKind::Mailbox)),
        GeneralName::UniformResourceIdentifier(uri) => Some((uri.as_str(), IdentityKind::Uri)),
        _ => None,
    });
    let (Some((identity, encoded_as)), None) = (names.next(), names.next()) else {
        return Err(CredentialError::BadIdentity(
            "subjectAltName must hold exactly one rfc822Name or uniformResourceIdentifier",
        ));
    };
    if kind(identity) != encoded_as {
        return Err(CredentialError::BadIdentity(
            "a mailbox must be an rfc822Name and a URI identity a uniformResourceIdentifier",
        ));
    }
    for atv in tbs.subject().iter().filter(|atv| atv.oid == CN_OID) {
        let cn = DirectoryString::try_from(&atv.value)
            .map(String::from)
            .map_err(|_| CredentialError::BadIdentity("subject CN is not a string"))?;
        if cn != identity {
            return Err(CredentialError::BadIdentity(
                "subject CN differs from the subjectAltName",
            ));
        }
    }
    Ok(identity.to_owned())
}

/// The CA that signs credentials: its certificate (as given) and Ed25519 public key.
#[derive(Clone, Debug)]
pub struct Ca {
    /// The exact DER of the CA certificate.
    der: Vec<u8>,
    /// The CA's Ed25519 key, which must have signed every credential and CRL.
    key: VerifyingKey,
    /// DER of the CA's subject name; credentials and CRLs must name it as issuer.
    subject_der: Vec<u8>,
}

impl Ca {
    /// The exact DER of the CA certificate, as given.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Builds the trust anchor from a certificate in PEM or DER. The certificate is trusted
    /// as given (it is the anchor); it must carry an Ed25519 key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Ca, CaError> {
        let parsed = parse_certificate(bytes)?;
        let tbs = parsed.cert.tbs_certificate();
        let spki = tbs.subject_public_key_info();
        if spki.algorithm.oid != ED25519_OID {
            return Err(CaError::NotEd25519);
        }
        let raw: [u8; 32] = spki
            .subject_public_key
            .as_bytes()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or(CaError::KeyLength)?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| CaError::NotAPoint)?;
        let subject_der =
            der::Encode::to_der(tbs.subject()).map_err(|e| CaError::Subject(e.to_string()))?;
        Ok(Ca {
            der: parsed.der,
            key,
            subject_der,
        })
    }
}
