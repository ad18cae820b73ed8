//! The few AS calls a client and an admin make in the demo: enrollment (admin), issuance with
//! an Ed25519 proof of possession (docs/api.md, "Proofs of possession"), identity revocation
//! (admin).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{json, Value};

use crate::https::{Answer, HttpsClient};

/// A fresh Ed25519 key from the OS random source.
pub fn new_key() -> Result<SigningKey, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("random: {e}"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The `POST /v1/credentials` body (signature form) proving possession of `key`.
pub fn issue_request(identity: &str, token: &str, key: &SigningKey) -> Value {
    let public = key.verifying_key().to_bytes();
    let text = kt_protocol::pop::issuance_message(
        identity,
        &B64.encode(public),
        &kt_protocol::pop::enrollment_id(token),
    );
    json!({
        "identity": identity,
        "token": token,
        "public_key": B64.encode(public),
        "signature": B64.encode(key.sign(text.as_bytes()).to_bytes()),
    })
}

fn expect(answer: Answer, status: u16, what: &str) -> Result<Value, String> {
    if answer.status != status {
        return Err(format!("{what}: HTTP {}: {}", answer.status, answer.text()));
    }
    answer
        .json()
        .ok_or_else(|| format!("{what}: answer is not JSON"))
}

/// Admin: enrolls `identities`, returns one token per identity, in order.
pub fn enroll(
    client: &HttpsClient,
    admin_token: &str,
    identities: &[&str],
) -> Result<Vec<String>, String> {
    let answer = client.post_json(
        "/v1/admin/enrollments",
        &json!({ "identities": identities }),
        Some(admin_token),
    )?;
    let json = expect(answer, 201, "enrollment")?;
    let tokens: Vec<String> = json["enrollments"]
        .as_array()
        .ok_or("enrollment: no enrollments")?
        .iter()
        .filter_map(|e| e["token"].as_str().map(str::to_owned))
        .collect();
    if tokens.len() != identities.len() {
        return Err("enrollment: wrong number of tokens".into());
    }
    Ok(tokens)
}

/// Requests a credential for `identity`, proving possession of `key`; returns the
/// `Credential` answer (JSON).
pub fn issue(
    client: &HttpsClient,
    identity: &str,
    token: &str,
    key: &SigningKey,
) -> Result<Value, String> {
    let answer = client.post_json(
        "/v1/credentials",
        &issue_request(identity, token, key),
        None,
    )?;
    expect(answer, 201, "credential request")
}

/// Admin: revokes `identity` and all its credentials; returns the answer (JSON).
pub fn revoke_identity(
    client: &HttpsClient,
    admin_token: &str,
    identity: &str,
    reason: &str,
) -> Result<Value, String> {
    crate::validator::check_identity(identity).map_err(|e| e.to_string())?;
    let answer = client.post_json(
        &format!("/v1/admin/identities/{identity}/revoke"),
        &json!({ "reason": reason }),
        Some(admin_token),
    )?;
    expect(answer, 200, "revocation")
}
