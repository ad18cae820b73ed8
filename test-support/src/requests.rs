//! The bodies of the API requests a test sends as a client or admin (docs/api.md): kt-protocol's
//! request types, signed over its proof-of-possession texts and enrollment ids. The server
//! reads and checks them with the same definitions, so a test never keeps its own copy of a
//! request's fields or of a signed text. As JSON values, so that a test can break them.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use kt_protocol::api::{EnrollmentRequest, IssueRequest, RotateRequest};
use kt_protocol::entry::Serial;
use kt_protocol::pop;
use serde_json::Value;

/// A new random Ed25519 key.
pub fn new_key() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("randomness");
    SigningKey::from_bytes(&seed)
}

/// Base64 of a public key, as the API and `verifier-cli` write it.
pub fn key_b64(key: &VerifyingKey) -> String {
    B64.encode(key.as_bytes())
}

/// A `POST /v1/admin/enrollments` body.
pub fn enrollment_request(identities: &[&str]) -> Value {
    json(&EnrollmentRequest {
        identities: identities.iter().map(|&i| i.to_owned()).collect(),
        ttl_seconds: None,
    })
}

/// The tokens of a `POST /v1/admin/enrollments` answer, in the order of the request.
pub fn enrollment_tokens(answer: &Value) -> Vec<String> {
    answer["enrollments"]
        .as_array()
        .expect("enrollments")
        .iter()
        .map(|e| e["token"].as_str().expect("a token").to_owned())
        .collect()
}

/// A `POST /v1/credentials` body, signature form: `key` signs the issuance text for
/// `identity` and the enrollment of `token`.
pub fn issue_request(identity: &str, token: &str, key: &SigningKey) -> Value {
    let public = key_b64(&key.verifying_key());
    let message = pop::issuance_message(identity, &public, &pop::enrollment_id(token));
    json(&IssueRequest {
        identity: identity.to_owned(),
        token: token.to_owned(),
        signature: Some(B64.encode(key.sign(message.as_bytes()).to_bytes())),
        public_key: Some(public),
        csr: None,
    })
}

/// A `POST /v1/credentials/rotate` body: credential `serial` (hex) of `identity` moves from
/// `current` to `new`, the rotation text signed by both keys.
pub fn rotation_request(
    identity: &str,
    serial: &str,
    current: &SigningKey,
    new: &SigningKey,
) -> Value {
    let public = key_b64(&new.verifying_key());
    let replaced = Serial::parse_hex(serial).expect("a serial of 32 hex digits");
    let message = pop::rotation_message(identity, &replaced, &public);
    json(&RotateRequest {
        identity: identity.to_owned(),
        serial: serial.to_owned(),
        public_key: public,
        signature_current: B64.encode(current.sign(message.as_bytes()).to_bytes()),
        signature_new: B64.encode(new.sign(message.as_bytes()).to_bytes()),
    })
}

/// A request as the JSON value it is sent as.
fn json(request: &impl serde::Serialize) -> Value {
    serde_json::to_value(request).expect("a request serializes")
}
