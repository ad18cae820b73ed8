//! X.509 certificate and CRL DER parsing as the verifier does it.
//!
//! verifier-cli is a binary crate (its parsers are `pub(crate)`), so this target repeats its
//! library calls in the same order on fuzzed bytes: `Certificate::from_der` then the accessors
//! `Ca::verify_certificate` reads (algorithms, issuer re-encoding, SPKI, subjectAltName,
//! subject CN as DirectoryString, serial, validity as Unix time); `CertificateList::from_der`
//! then what `Ca::verify_crl` reads; the PEM-or-DER front end of `parse_certificate`; and,
//! through a public API of as-server, `Ca::load` (CA key PEM + certificate PEM) with the
//! certificate fuzzed. Property: never panics.
#![no_main]

use std::sync::LazyLock;

use as_server::ca::Ca;
use der::{Decode as _, Encode as _};
use kt_fuzz::{pem_wrap, split_mode};
use libfuzzer_sys::fuzz_target;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::name::{DirectoryString, GeneralName};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

const CN_OID: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("2.5.4.3");

static CA_KEY_PEM: LazyLock<String> = LazyLock::new(|| {
    Ca::generate("Fuzz CA", 1_700_000_000, 10 * 365 * 86_400)
        .and_then(|ca| ca.key_pem())
        .expect("CA generation works")
});

fn certificate_accessors(cert: &Certificate) {
    let tbs = cert.tbs_certificate();
    let _ = cert.signature_algorithm().parameters.is_none();
    let _ = tbs.signature().oid;
    let _ = tbs.issuer().to_der();
    let _ = cert.signature().as_bytes();
    let spki = tbs.subject_public_key_info();
    let _ = spki.subject_public_key.as_bytes().map(<[u8]>::len);
    if let Ok(Some((_, san))) = tbs.get_extension::<SubjectAltName>() {
        for name in &san.0 {
            if let GeneralName::Rfc822Name(n) = name {
                let _ = n.as_str().len();
            }
        }
    }
    for atv in tbs.subject().iter().filter(|atv| atv.oid == CN_OID) {
        let _ = DirectoryString::try_from(&atv.value).map(String::from);
    }
    let _ = tbs.serial_number().as_bytes().len();
    let validity = tbs.validity();
    let _ = validity.not_before.to_unix_duration().as_secs();
    let _ = validity.not_after.to_unix_duration().as_secs();
    let _ = cert.to_der();
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(cert) = Certificate::from_der(rest) {
                certificate_accessors(&cert);
            }
        }
        1 => {
            if let Ok(crl) = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(rest) {
                let tbs = &crl.tbs_cert_list;
                let _ = crl.signature_algorithm.parameters.is_none();
                let _ = tbs.signature.oid;
                let _ = tbs.issuer.to_der();
                let _ = crl.signature.as_bytes();
                let _ = tbs.next_update.map(|t| t.to_unix_duration().as_secs());
                let _ = tbs.this_update.to_unix_duration().as_secs();
                let n: usize = tbs
                    .revoked_certificates
                    .iter()
                    .flatten()
                    .map(|r| r.serial_number.as_bytes().len())
                    .sum();
                let _ = n;
                let _ = crl.to_der();
            }
        }
        2 => {
            // verifier-cli's parse_certificate: PEM (label CERTIFICATE) or DER.
            let der = if rest.trim_ascii_start().starts_with(b"-----BEGIN") {
                match der::pem::decode_vec(rest.trim_ascii()) {
                    Ok((label, der)) if label == "CERTIFICATE" => der,
                    _ => return,
                }
            } else {
                rest.to_vec()
            };
            if let Ok(cert) = Certificate::from_der(&der) {
                certificate_accessors(&cert);
            }
        }
        _ => {
            let _ = Ca::load(&CA_KEY_PEM, &pem_wrap("CERTIFICATE", rest));
        }
    }
});
