//! The certificate authority: X.509 v3 credentials, the self-signed CA certificate, the CRL.
//!
//! Guarantees: every certificate and CRL is signed by the CA's Ed25519 key (pure Ed25519,
//! RFC 8410). A credential carries exactly one identity (subjectAltName `rfc822Name` for a
//! mailbox, `uniformResourceIdentifier` for a URI identity; also the subject CN), the subject's Ed25519 key, `basicConstraints CA:FALSE`, `keyUsage
//! digitalSignature` (critical), and key identifiers, so `openssl verify -CAfile ca.pem`
//! accepts it and an MLS implementation can use it as an `X509Credential`. The CA certificate
//! has `basicConstraints CA:TRUE, pathlen:0` and `keyUsage keyCertSign, cRLSign` (both
//! critical).

use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use der::asn1::{Ia5String, OctetString, Uint};
use der::pem::LineEnding;
use der::{Decode, Encode, EncodePem};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use spki::SubjectPublicKeyInfoRef;
use thiserror::Error;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder, CrlBuilder};
use x509_cert::certificate::{Rfc5280, TbsCertificate};
use x509_cert::crl::RevokedCert;
use x509_cert::ext::pkix::crl::CrlNumber;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, CrlReason, KeyUsage, KeyUsages, SubjectAltName,
    SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, SubjectPublicKeyInfo};

use crate::entry::RevocationReason;

/// Why a CA operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CaError {
    /// Building or signing a certificate or CRL failed.
    #[error("certificate building failed: {0}")]
    Build(String),
    /// The stored CA key or certificate is unusable.
    #[error("CA material: {0}")]
    Material(String),
}

fn build_err(e: impl std::fmt::Display) -> CaError {
    CaError::Build(e.to_string())
}

/// The CA: its signing key and its self-signed certificate.
pub struct Ca {
    key: SigningKey,
    cert: Certificate,
    cert_der: Vec<u8>,
    cert_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ca({})", self.cert.tbs_certificate().subject())
    }
}

/// The extensions of one certificate, made with explicit criticality.
struct FixedExtensions {
    issuer: Name,
    subject: Name,
    extensions: Vec<Extension>,
}

impl BuilderProfile for FixedExtensions {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        Ok(self.extensions.clone())
    }
}

fn extension<T: Encode + der::oid::AssociatedOid>(
    value: &T,
    critical: bool,
) -> Result<Extension, CaError> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(build_err)?).map_err(build_err)?,
    })
}

fn key_id(spki: &SubjectPublicKeyInfo) -> Result<SubjectKeyIdentifier, CaError> {
    use der::referenced::OwnedToRef as _;
    SubjectKeyIdentifier::try_from(spki.owned_to_ref()).map_err(build_err)
}

fn spki_of(key: &VerifyingKey) -> Result<SubjectPublicKeyInfo, CaError> {
    let der = key.to_public_key_der().map_err(build_err)?;
    SubjectPublicKeyInfo::from_der(der.as_bytes()).map_err(build_err)
}

/// An X.509 time from Unix seconds.
pub fn x509_time(unix: u64) -> Result<Time, CaError> {
    Time::try_from(UNIX_EPOCH + Duration::from_secs(unix)).map_err(build_err)
}

fn validity(not_before: u64, not_after: u64) -> Result<Validity, CaError> {
    Ok(Validity::new(x509_time(not_before)?, x509_time(not_after)?))
}

/// PEM of a DER certificate (the bytes as they are: no parsing, no re-encoding).
pub fn cert_pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", LineEnding::LF, der).unwrap_or_default()
}

impl Ca {
    /// A new CA named `common_name`: a fresh Ed25519 key and a self-signed certificate valid
    /// from `now` for `lifetime_secs`.
    pub fn generate(common_name: &str, now: u64, lifetime_secs: u64) -> Result<Ca, CaError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(build_err)?;
        let key = SigningKey::from_bytes(&seed);
        let subject =
            Name::from_str(&format!("CN={}", escape_rdn(common_name))).map_err(build_err)?;
        let spki = spki_of(&key.verifying_key())?;
        let ski = key_id(&spki)?;
        let extensions = vec![
            extension(
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: Some(0),
                },
                true,
            )?,
            extension(&KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign), true)?,
            extension(&ski, false)?,
        ];
        let profile = FixedExtensions {
            issuer: subject.clone(),
            subject,
            extensions,
        };
        let serial = SerialNumber::new(&random_serial()?).map_err(build_err)?;
        let builder = CertificateBuilder::new(
            profile,
            serial,
            validity(now.saturating_sub(60), now + lifetime_secs)?,
            spki,
        )
        .map_err(build_err)?;
        let cert = builder
            .build::<SigningKey, Signature>(&key)
            .map_err(build_err)?;
        Ca::from_parts(key, cert)
    }

    fn from_parts(key: SigningKey, cert: Certificate) -> Result<Ca, CaError> {
        let cert_der = cert.to_der().map_err(build_err)?;
        let cert_pem = cert.to_pem(LineEnding::LF).map_err(build_err)?;
        Ok(Ca {
            key,
            cert,
            cert_der,
            cert_pem,
        })
    }

    /// Loads a CA from its PKCS#8 key PEM and certificate PEM, checking they belong together.
    pub fn load(key_pem: &str, cert_pem: &str) -> Result<Ca, CaError> {
        use der::DecodePem as _;
        let key = SigningKey::from_pkcs8_pem(key_pem)
            .map_err(|e| CaError::Material(format!("CA key: {e}")))?;
        let cert = Certificate::from_pem(cert_pem)
            .map_err(|e| CaError::Material(format!("CA certificate: {e}")))?;
        let spki = spki_of(&key.verifying_key())?;
        if cert.tbs_certificate().subject_public_key_info() != &spki {
            return Err(CaError::Material(
                "CA certificate is not for the CA key".into(),
            ));
        }
        Ca::from_parts(key, cert)
    }

    /// The CA key as PKCS#8 PEM: the secret, store it with mode 0600.
    pub fn key_pem(&self) -> Result<String, CaError> {
        Ok(self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(build_err)?
            .to_string())
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA public key.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Issues a credential: `identity`'s key `subject_key`, serial `serial` (16 bytes, first
    /// byte 0x01..=0x7f), valid `not_before ..= not_after`. Returns the DER.
    pub fn issue(
        &self,
        identity: &str,
        subject_key: &VerifyingKey,
        serial: &[u8; 16],
        not_before: u64,
        not_after: u64,
    ) -> Result<Vec<u8>, CaError> {
        let subject = Name::from_str(&format!("CN={}", escape_rdn(identity))).map_err(build_err)?;
        let spki = spki_of(subject_key)?;
        let ski = key_id(&spki)?;
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(key_id(self.cert.tbs_certificate().subject_public_key_info())?.0),
            ..Default::default()
        };
        let name = Ia5String::new(identity).map_err(build_err)?;
        let san = SubjectAltName(vec![match kt_protocol::identity::kind(identity) {
            kt_protocol::identity::IdentityKind::Mailbox => GeneralName::Rfc822Name(name),
            kt_protocol::identity::IdentityKind::Uri => {
                GeneralName::UniformResourceIdentifier(name)
            }
        }]);
        let extensions = vec![
            extension(
                &BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                },
                true,
            )?,
            extension(&KeyUsage(KeyUsages::DigitalSignature.into()), true)?,
            extension(&san, false)?,
            extension(&ski, false)?,
            extension(&aki, false)?,
        ];
        let profile = FixedExtensions {
            issuer: self.cert.tbs_certificate().subject().clone(),
            subject,
            extensions,
        };
        let builder = CertificateBuilder::new(
            profile,
            SerialNumber::new(serial).map_err(build_err)?,
            validity(not_before, not_after)?,
            spki,
        )
        .map_err(build_err)?;
        let cert = builder
            .build::<SigningKey, Signature>(&self.key)
            .map_err(build_err)?;
        cert.to_der().map_err(build_err)
    }

    /// A CRL listing `revoked` (serial, revocation time, reason), numbered `number`, issued
    /// at `now` and valid for `next_update_secs`. Returns the DER.
    pub fn crl(
        &self,
        revoked: &[([u8; 16], u64, RevocationReason)],
        number: u128,
        now: u64,
        next_update_secs: u64,
    ) -> Result<Vec<u8>, CaError> {
        let entries = revoked
            .iter()
            .map(|(serial, at, reason)| {
                let reason = crl_reason(*reason);
                Ok(RevokedCert {
                    serial_number: SerialNumber::<Rfc5280>::new(serial).map_err(build_err)?,
                    revocation_date: x509_time(*at)?,
                    crl_entry_extensions: Some(vec![extension(&reason, false)?]),
                })
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        let number = CrlNumber(Uint::new(&number.to_be_bytes()).map_err(build_err)?);
        let mut builder = CrlBuilder::new_with_this_update(&self.cert, number, x509_time(now)?)
            .map_err(build_err)?
            .with_next_update(Some(x509_time(now + next_update_secs)?));
        if !entries.is_empty() {
            builder = builder.with_certificates(entries.into_iter());
        }
        let crl = builder
            .build::<SigningKey, Signature>(&self.key)
            .map_err(build_err)?;
        crl.to_der().map_err(build_err)
    }
}

/// The number of a CRL built now, `now_nanos`, from a state whose latest revocation is the
/// log's entry `last_revocation`, after the CRL numbered `previous` if any (RFC 5280 §5.2.3:
/// CRL numbers strictly increase).
///
/// The high 64 bits are one more than the latest revocation's log index (0 before any), the
/// low 64 bits the build time in nanoseconds: a CRL that reflects a later revocation always
/// has the higher number, whichever frontend of a shared log built it and whatever the
/// clocks say, so a relying party that keeps the highest-numbered CRL never trades a CRL for
/// one that lacks a revocation it listed. CRLs of the same revocations are ordered by their
/// build time (a restart takes far longer than a nanosecond; operations.md asks for
/// synchronised clocks), and a frontend never numbers below its own last CRL.
pub fn crl_number(last_revocation: Option<u64>, now_nanos: u64, previous: Option<u128>) -> u128 {
    let revocations = u128::from(last_revocation.map_or(0, |index| index.saturating_add(1)));
    let number = (revocations << 64) | u128::from(now_nanos);
    previous.map_or(number, |previous| number.max(previous.saturating_add(1)))
}

fn crl_reason(reason: RevocationReason) -> CrlReason {
    match reason {
        RevocationReason::Unspecified => CrlReason::Unspecified,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
    }
}

/// Escapes RFC 4514 special characters for a CN value. Identities never contain them (see
/// [`crate::identity`]), but the CA name comes from configuration.
fn escape_rdn(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A random positive 16-byte serial whose first byte is 0x01..=0x7f (so its DER INTEGER is
/// exactly these 16 bytes and its hex is 32 digits).
pub fn random_serial() -> Result<[u8; 16], CaError> {
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(build_err)?;
    serial[0] = (serial[0] & 0x7f).max(1);
    Ok(serial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier as _;

    #[test]
    fn credentials_are_signed_by_the_ca() {
        let ca = Ca::generate("Test CA", 1_800_000_000, 3600).unwrap();
        let reloaded = Ca::load(&ca.key_pem().unwrap(), ca.cert_pem()).unwrap();
        assert_eq!(reloaded.cert_der(), ca.cert_der());

        let subject = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        let serial = random_serial().unwrap();
        let der = ca
            .issue(
                "alice@example.com",
                &subject,
                &serial,
                1_800_000_000,
                1_800_003_600,
            )
            .unwrap();
        let cert = Certificate::from_der(&der).unwrap();
        let tbs = cert.tbs_certificate();
        assert_eq!(tbs.serial_number().as_bytes(), serial);
        assert_eq!(tbs.issuer(), ca.cert.tbs_certificate().subject());
        let signature = Signature::from_slice(cert.signature().raw_bytes()).unwrap();
        ca.public_key()
            .verify(&tbs.to_der().unwrap(), &signature)
            .unwrap();
        let other = Ca::generate("Other", 1_800_000_000, 3600).unwrap();
        assert!(other
            .public_key()
            .verify(&tbs.to_der().unwrap(), &signature)
            .is_err());
        assert!(Ca::load(&other.key_pem().unwrap(), ca.cert_pem()).is_err());
    }

    #[test]
    fn a_crl_reflecting_a_later_revocation_is_numbered_higher_whatever_the_clocks() {
        // Another frontend's CRL of an earlier revocation, built later by its clock, ranks
        // below; before any revocation below both.
        assert!(crl_number(Some(10), 1, None) > crl_number(Some(9), u64::MAX, None));
        assert!(crl_number(Some(0), 0, None) > crl_number(None, u64::MAX, None));
        // The same revocations: by build time, and never below this frontend's last number.
        assert!(crl_number(Some(9), 2, None) > crl_number(Some(9), 1, None));
        let previous = crl_number(Some(9), 5, None);
        assert_eq!(crl_number(Some(9), 5, Some(previous)), previous + 1);
        assert_eq!(crl_number(Some(9), 4, Some(previous)), previous + 1);
        // The number as it goes into the CRL, past 64 bits.
        let ca = Ca::generate("Test CA", 1_800_000_000, 3600).unwrap();
        let number = crl_number(Some(41), 1_800_000_000_123_456_789, None);
        let der = ca.crl(&[], number, 1_800_000_200, 86400).unwrap();
        let found = test_support::fixtures::crl_number(&der);
        assert_eq!(found, (42u128 << 64) | 1_800_000_000_123_456_789);
    }

    #[test]
    fn crl_lists_revoked_serials() {
        let ca = Ca::generate("Test CA", 1_800_000_000, 3600).unwrap();
        let serial = random_serial().unwrap();
        let der = ca
            .crl(
                &[(serial, 1_800_000_100, RevocationReason::KeyCompromise)],
                3,
                1_800_000_200,
                86400,
            )
            .unwrap();
        let crl =
            x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der)
                .unwrap();
        let revoked = crl.tbs_cert_list.revoked_certificates.unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].serial_number.as_bytes(), serial);
    }
}
