//! as_server::pop::verify_csr with an arbitrary identity.
//!
//! Input: a mode byte, an identity length byte, the identity, then the CSR.
//! Mode 0: the CSR is PEM text as a client sends it. Mode 1: it is DER, wrapped in a
//! `CERTIFICATE REQUEST` PEM envelope here (so mutations reach the DER parser, not base64).
//! Mode 2: a real CSR is built here with the x509-cert builder and a fixed Ed25519 key for the
//! subject `CN=<identity>`; when that subject is one CN equal to the identity, verify_csr must
//! accept it and return that key. Property everywhere: never panics.
#![no_main]

use std::sync::LazyLock;

use as_server::pop::verify_csr;
use der::EncodePem as _;
use ed25519_dalek::SigningKey;
use kt_fuzz::{pem_wrap, split_mode};
use libfuzzer_sys::fuzz_target;
use x509_cert::builder::{Builder as _, RequestBuilder};
use x509_cert::name::Name;

static KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::from_bytes(&[5u8; 32]));

/// RFC 4514 escaping of an attribute value, as a client would write it.
fn escape_rdn(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' | '#') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    let Some((&len, rest)) = rest.split_first() else {
        return;
    };
    let len = usize::from(len).min(rest.len());
    let Ok(identity) = std::str::from_utf8(&rest[..len]) else {
        return;
    };
    let csr = &rest[len..];
    match mode % 3 {
        0 => {
            if let Ok(pem) = std::str::from_utf8(csr) {
                let _ = verify_csr(pem, identity);
            }
        }
        1 => {
            let _ = verify_csr(&pem_wrap("CERTIFICATE REQUEST", csr), identity);
        }
        _ => {
            let Ok(subject) = format!("CN={}", escape_rdn(identity)).parse::<Name>() else {
                return;
            };
            let one_cn = subject.iter().count() == 1
                && subject
                    .common_name()
                    .ok()
                    .flatten()
                    .is_some_and(|cn| cn.value() == identity);
            let Ok(builder) = RequestBuilder::new(subject) else {
                return;
            };
            let Ok(req) = builder.build::<_, ed25519_dalek::Signature>(&*KEY) else {
                return;
            };
            let Ok(pem) = req.to_pem(der::pem::LineEnding::LF) else {
                return;
            };
            let verified = verify_csr(&pem, identity);
            if one_cn {
                assert_eq!(
                    verified.as_ref().ok(),
                    Some(&KEY.verifying_key()),
                    "a well-formed CSR for {identity:?} was refused: {verified:?}"
                );
            }
        }
    }
});
