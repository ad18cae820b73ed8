//! The texts a client signs to prove possession of a key (docs/api.md "Proofs of possession"),
//! and the enrollment id a token is known by.
//!
//! The texts are domain-separated (a first line naming the protocol and purpose) and name
//! everything the signature authorizes, so a signature made for one purpose, identity, key,
//! enrollment or credential is useless for any other. The server verifies them; clients
//! (verifier-cli, mls-demo, the tests) make them with these same functions.

use sha2::{Digest, Sha256};

use crate::entry::{EnrollmentId, Serial};

/// The text a new key signs to request a credential for `identity` against `enrollment`.
/// `public_key_b64` is the key in standard base64, as sent.
pub fn issuance_message(identity: &str, public_key_b64: &str, enrollment: &EnrollmentId) -> String {
    format!(
        "kt-as/v1 credential-request\nidentity: {identity}\npublic-key: {public_key_b64}\nenrollment: {enrollment}\n"
    )
}

/// The text both the current and the new key sign to rotate `identity`'s credential
/// `current` to the key `new_key_b64` (standard base64).
pub fn rotation_message(identity: &str, current: &Serial, new_key_b64: &str) -> String {
    format!(
        "kt-as/v1 credential-rotation\nidentity: {identity}\nserial: {current}\npublic-key: {new_key_b64}\n"
    )
}

/// The id of the enrollment a token stands for: SHA-256 of the token's ASCII. The server
/// stores and logs only this, never the token.
pub fn enrollment_id(token: &str) -> EnrollmentId {
    EnrollmentId(Sha256::digest(token.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_as_documented() {
        let enrollment = enrollment_id("abc");
        assert_eq!(
            enrollment.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            issuance_message("a@b.co", "KEY=", &enrollment),
            format!("kt-as/v1 credential-request\nidentity: a@b.co\npublic-key: KEY=\nenrollment: {enrollment}\n")
        );
        let serial = Serial([0xab; 16]);
        assert_eq!(
            rotation_message("a@b.co", &serial, "NEW="),
            format!(
                "kt-as/v1 credential-rotation\nidentity: a@b.co\nserial: {}\npublic-key: NEW=\n",
                "ab".repeat(16)
            )
        );
    }
}
