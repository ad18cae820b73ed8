//! Proofs of possession: how a client shows it holds the private key it wants certified.
//!
//! The signed texts are domain-separated (a first line naming the protocol and purpose) and
//! name everything the signature authorizes, so a signature made for one purpose, identity,
//! key, enrollment or credential is useless for any other (docs/api.md, "Proofs of
//! possession"). Signatures are checked with `verify_strict`, which rejects malleable
//! signatures and small-order keys. Functions here take untrusted input and never panic.

use der::{DecodePem as _, Encode as _};
use ed25519_dalek::{Signature, VerifyingKey};
use thiserror::Error;
use x509_cert::request::CertReq;

use crate::encoding::b64;

/// Why a proof of possession was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PopError {
    /// The public key is not 32 bytes or not a valid Ed25519 point.
    #[error("public key is not a valid 32-byte Ed25519 key")]
    BadKey,
    /// The signature is malformed or does not verify.
    #[error("proof of possession does not verify")]
    BadSignature,
    /// The CSR cannot be parsed, is not Ed25519, or names another identity.
    #[error("CSR refused: {0}")]
    BadCsr(&'static str),
}

/// OID of Ed25519 (RFC 8410).
const ED25519_OID: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.101.112");

// The signed texts are the protocol's: one definition for the server and every client.
pub use kt_protocol::pop::{issuance_message, rotation_message};

/// Parses a raw 32-byte Ed25519 public key, rejecting invalid and small-order points.
pub fn parse_public_key(bytes: &[u8]) -> Result<VerifyingKey, PopError> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| PopError::BadKey)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| PopError::BadKey)?;
    if key.is_weak() {
        return Err(PopError::BadKey);
    }
    Ok(key)
}

/// Checks that `signature` is `key`'s signature over `message`.
pub fn verify(key: &VerifyingKey, message: &str, signature: &[u8]) -> Result<(), PopError> {
    let signature = Signature::from_slice(signature).map_err(|_| PopError::BadSignature)?;
    key.verify_strict(message.as_bytes(), &signature)
        .map_err(|_| PopError::BadSignature)
}

/// Checks a PKCS#10 CSR (PEM): Ed25519 key, Ed25519 self-signature over the request info, and
/// a subject that is exactly `CN=<identity>`. Returns the key.
pub fn verify_csr(pem: &str, identity: &str) -> Result<VerifyingKey, PopError> {
    let request =
        CertReq::from_pem(pem).map_err(|_| PopError::BadCsr("not a PEM PKCS#10 request"))?;
    let info = &request.info;
    if info.public_key.algorithm.oid != ED25519_OID || request.algorithm.oid != ED25519_OID {
        return Err(PopError::BadCsr("the key and signature must be Ed25519"));
    }
    let key_bytes = info
        .public_key
        .subject_public_key
        .as_bytes()
        .ok_or(PopError::BadCsr("public key bit string"))?;
    let key = parse_public_key(key_bytes)?;
    let signature = request
        .signature
        .as_bytes()
        .ok_or(PopError::BadCsr("signature bit string"))?;
    let signed = info
        .to_der()
        .map_err(|_| PopError::BadCsr("request info does not re-encode"))?;
    let signature = Signature::from_slice(signature).map_err(|_| PopError::BadSignature)?;
    key.verify_strict(&signed, &signature)
        .map_err(|_| PopError::BadSignature)?;
    // The subject is exactly one attribute, CN = the identity: it binds the self-signature to
    // the identity, so someone else's CSR cannot be presented for another identity. Compared
    // as values, not as RFC 4514 text (which escapes characters such as `+`).
    let only_cn = info.subject.iter().count() == 1
        && info
            .subject
            .common_name()
            .ok()
            .flatten()
            .is_some_and(|cn| cn.value() == identity);
    if !only_cn {
        return Err(PopError::BadCsr("subject must be exactly CN=<identity>"));
    }
    Ok(key)
}

/// The wire form of a public key.
pub fn key_b64(key: &VerifyingKey) -> String {
    b64(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    #[test]
    fn signatures_bind_the_message() {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let public = key.verifying_key();
        let message = issuance_message(
            "a@b.co",
            &key_b64(&public),
            &crate::entry::EnrollmentId([0; 32]),
        );
        let signature = key.sign(message.as_bytes()).to_bytes();
        assert_eq!(verify(&public, &message, &signature), Ok(()));
        let other = issuance_message(
            "c@b.co",
            &key_b64(&public),
            &crate::entry::EnrollmentId([0; 32]),
        );
        assert_eq!(
            verify(&public, &other, &signature),
            Err(PopError::BadSignature)
        );
        assert_eq!(
            verify(&public, &message, &signature[..63]),
            Err(PopError::BadSignature)
        );
        let mut flipped = signature;
        flipped[5] ^= 1;
        assert_eq!(
            verify(&public, &message, &flipped),
            Err(PopError::BadSignature)
        );
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(parse_public_key(&[1u8; 31]), Err(PopError::BadKey));
        // The identity point has small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(parse_public_key(&identity), Err(PopError::BadKey));
        let good = SigningKey::from_bytes(&[9u8; 32]).verifying_key();
        assert_eq!(parse_public_key(good.as_bytes()), Ok(good));
    }

    #[test]
    fn garbage_csrs_are_refused() {
        assert!(matches!(
            verify_csr("hello", "a@b.co"),
            Err(PopError::BadCsr(_))
        ));
        assert!(matches!(
            verify_csr(
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                "a@b.co"
            ),
            Err(PopError::BadCsr(_))
        ));
    }
}
