//! Writes a CA certificate and one credential of each identity kind — a mailbox (rfc822Name)
//! and URIs of the `https`, `im`, `xmpp` and `tel` schemes (uniformResourceIdentifier) — made
//! by as-server's own CA code, as `<kind>.pem` beside `ca.pem` in the folder given, and a CRL
//! that revokes the mailbox credential (`crl.der`, numbered as after a revocation at log index
//! 41: a number past 64 bits), for `.ci/pkix-lint`, which checks them with `openssl` and the
//! PKIX linter pkilint.
//!
//! `cargo run -p as-server --example sample_credentials -- DIR`
#![allow(clippy::expect_used)]

use std::path::PathBuf;

use as_server::ca::{cert_pem, crl_number, random_serial, Ca};
use as_server::entry::RevocationReason;
use as_server::unix_now;
use ed25519_dalek::SigningKey;

/// One identity of each kind the identity rules allow, in canonical form.
const IDENTITIES: [(&str, &str); 6] = [
    ("mailbox", "alice@example.com"),
    ("https", "https://example.com/alice"),
    ("im", "im:alice@example.com"),
    ("im-wire", "im:wireapp=ZjI0ZDQ1/a1b2@wire.example.com"),
    ("xmpp", "xmpp:juliet@example.com"),
    ("tel", "tel:+15551234567"),
];

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: sample_credentials DIR"),
    );
    std::fs::create_dir_all(&dir).expect("the folder");
    let now = unix_now();
    // Named and valid like the CA a server makes at its first start.
    let ca = Ca::generate("KT-AS Credential CA", now, 10 * 365 * 86_400).expect("a CA");
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).expect("ca.pem");
    let mut revoked = Vec::new();
    for (n, (kind, identity)) in IDENTITIES.iter().enumerate() {
        kt_protocol::identity::check_syntax(identity).expect("a canonical identity");
        let key = SigningKey::from_bytes(&[n as u8 + 1; 32]);
        let serial = random_serial().expect("a serial");
        let der = ca
            .issue(
                identity,
                &key.verifying_key(),
                &serial,
                now - 60,
                now + 86_400,
            )
            .expect("a credential");
        std::fs::write(dir.join(format!("{kind}.pem")), cert_pem(&der)).expect("a PEM file");
        println!("{kind}: {identity}");
        if n == 0 {
            revoked.push((serial, now, RevocationReason::KeyCompromise));
        }
    }
    let now_nanos = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_nanos(),
    )
    .expect("nanoseconds in 64 bits");
    let number = crl_number(Some(41), now_nanos, None);
    let crl = ca.crl(&revoked, number, now, 86_400).expect("a CRL");
    std::fs::write(dir.join("crl.der"), crl).expect("crl.der");
    println!("crl: number {number}");
}
