//! The few AS calls a client and an admin make in the demo: enrollment (admin), issuance and
//! rotation with Ed25519 proofs of possession (docs/api.md, "Proofs of possession"),
//! revocation of an identity or of one credential (admin); and the checks of their answers
//! (`kt_protocol::api` types): an issuance's or rotation's answer with
//! [`kt_verify::bundle::verify_bundle`], a revocation's identity proof with
//! [`kt_verify::directory`].

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use kt_log::note::NoteVerifier;
use kt_protocol::api::{
    CredentialAnswer, EnrollmentRequest, IdentityProof, IssueRequest, RevocationAnswer,
    RevocationRequest, RotateRequest,
};
use kt_protocol::directory::record::Status;
use kt_protocol::directory::vrf::VrfPublicKey;
use kt_protocol::entry::Serial;
use kt_verify::bundle::{verify_bundle, VerifiedBundle};
use kt_verify::credential::Ca;
use kt_verify::directory::{answer_checkpoint, verify_identity, VerifiedIdentity};
use serde_json::Value;

use crate::https::{Answer, HttpsClient};

/// A fresh Ed25519 key from the OS random source.
pub fn new_key() -> Result<SigningKey, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("random: {e}"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The `POST /v1/credentials` body (signature form) proving possession of `key`.
pub fn issue_request(identity: &str, token: &str, key: &SigningKey) -> IssueRequest {
    let public = B64.encode(key.verifying_key().to_bytes());
    let text = kt_protocol::pop::issuance_message(
        identity,
        &public,
        &kt_protocol::pop::enrollment_id(token),
    );
    IssueRequest {
        identity: identity.to_owned(),
        token: token.to_owned(),
        public_key: Some(public),
        signature: Some(B64.encode(key.sign(text.as_bytes()).to_bytes())),
        csr: None,
    }
}

/// The `POST /v1/credentials/rotate` body: both the current key (of credential `current`)
/// and the new key sign the rotation text.
pub fn rotate_request(
    identity: &str,
    current: &Serial,
    current_key: &SigningKey,
    new_key: &SigningKey,
) -> RotateRequest {
    let public = B64.encode(new_key.verifying_key().to_bytes());
    let text = kt_protocol::pop::rotation_message(identity, current, &public);
    RotateRequest {
        identity: identity.to_owned(),
        serial: current.to_hex(),
        public_key: public,
        signature_current: B64.encode(current_key.sign(text.as_bytes()).to_bytes()),
        signature_new: B64.encode(new_key.sign(text.as_bytes()).to_bytes()),
    }
}

/// The body of a revocation for the RFC 5280 reason named `reason` (`keyCompromise`, …).
fn revocation_request(reason: &str) -> Result<RevocationRequest, String> {
    let reason = serde_json::from_value(Value::String(reason.to_owned()))
        .map_err(|_| format!("unknown revocation reason {reason:?}"))?;
    Ok(RevocationRequest {
        reason: Some(reason),
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

fn not_documented(what: &str) -> impl Fn(serde_json::Error) -> String + '_ {
    move |e| format!("{what}: not the documented answer: {e}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Admin: enrolls `identities`, returns one token per identity, in order.
pub fn enroll(
    client: &HttpsClient,
    admin_token: &str,
    identities: &[&str],
) -> Result<Vec<String>, String> {
    let answer = client.post_json(
        "/v1/admin/enrollments",
        &EnrollmentRequest {
            identities: identities.iter().map(|&i| i.to_owned()).collect(),
            ttl_seconds: None,
        },
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

/// Requests a credential for `identity`, proving possession of `key`; returns the answer,
/// unverified (see [`verify_issued`]).
pub fn issue(
    client: &HttpsClient,
    identity: &str,
    token: &str,
    key: &SigningKey,
) -> Result<CredentialAnswer, String> {
    let answer = client.post_json(
        "/v1/credentials",
        &issue_request(identity, token, key),
        None,
    )?;
    serde_json::from_value::<CredentialAnswer>(expect(answer, 201, "credential request")?)
        .map_err(not_documented("credential request"))
}

/// Rotates `identity`'s credential `current` (held with `current_key`) to `new_key`; returns
/// the answer, unverified (see [`verify_issued`]).
pub fn rotate(
    client: &HttpsClient,
    identity: &str,
    current: &Serial,
    current_key: &SigningKey,
    new_key: &SigningKey,
) -> Result<CredentialAnswer, String> {
    let answer = client.post_json(
        "/v1/credentials/rotate",
        &rotate_request(identity, current, current_key, new_key),
        None,
    )?;
    serde_json::from_value::<CredentialAnswer>(expect(answer, 201, "rotation")?)
        .map_err(not_documented("rotation"))
}

/// Verifies the answer of an issuance or rotation before the client uses its credential:
/// [`verify_bundle`] (the identity proof under the log key and the VRF key shows the
/// credential among the identity's current ones, its certificate is the CA's and says what
/// the directory says, it is valid now), and the credential certifies exactly `key`, the key
/// the client holds. The bundle's checkpoint is a good first saved checkpoint for the
/// client's validator ([`crate::validator::AsValidator::with_checkpoint`]).
pub fn verify_issued(
    answer: &CredentialAnswer,
    key: &SigningKey,
    log_key: &NoteVerifier,
    vrf_key: &VrfPublicKey,
    ca: &Ca,
) -> Result<VerifiedBundle, String> {
    let bundle = verify_bundle(answer, log_key, vrf_key, ca, now())
        .map_err(|e| format!("credential answer does not verify: {e}"))?;
    if bundle.binding.public_key != key.verifying_key().to_bytes() {
        return Err("credential answer: the credential certifies another key".into());
    }
    Ok(bundle)
}

/// Admin: revokes `identity` and all its credentials; returns the answer, unverified (see
/// [`verify_revoked`]).
pub fn revoke_identity(
    client: &HttpsClient,
    admin_token: &str,
    identity: &str,
    reason: &str,
) -> Result<RevocationAnswer, String> {
    crate::validator::check_identity(identity).map_err(|e| e.to_string())?;
    let answer = client.post_json(
        &format!(
            "/v1/admin/identities/{}/revoke",
            kt_protocol::identity::path_segment(identity)
        ),
        &revocation_request(reason)?,
        Some(admin_token),
    )?;
    serde_json::from_value::<RevocationAnswer>(expect(answer, 200, "revocation")?)
        .map_err(not_documented("revocation"))
}

/// Admin: revokes the one credential `serial`; returns the answer, unverified (see
/// [`verify_revoked`]).
pub fn revoke_credential(
    client: &HttpsClient,
    admin_token: &str,
    serial: &Serial,
    reason: &str,
) -> Result<RevocationAnswer, String> {
    let answer = client.post_json(
        &format!("/v1/admin/credentials/{}/revoke", serial.to_hex()),
        &revocation_request(reason)?,
        Some(admin_token),
    )?;
    serde_json::from_value::<RevocationAnswer>(expect(answer, 200, "credential revocation")?)
        .map_err(not_documented("credential revocation"))
}

/// Verifies the identity proof of a change's answer about `identity` ([`answer_checkpoint`]
/// then [`verify_identity`]): the identity's state after the change, proven in a checkpoint
/// signed by the log key.
pub fn verify_directory(
    proof: &IdentityProof,
    identity: &str,
    log_key: &NoteVerifier,
    vrf_key: &VrfPublicKey,
) -> Result<VerifiedIdentity, String> {
    let checkpoint = answer_checkpoint(proof, identity, log_key)
        .map_err(|e| format!("identity proof does not verify: {e}"))?;
    verify_identity(proof, &checkpoint, vrf_key)
        .map_err(|e| format!("identity proof does not verify: {e}"))
}

/// Verifies a revocation's answer: its identity proof ([`verify_directory`]) shows the
/// identity's state after the revocation holding none of the serials revoked, and, for a
/// revocation of the identity (`identity_revoked`), the identity revoked.
pub fn verify_revoked(
    answer: &RevocationAnswer,
    identity_revoked: bool,
    log_key: &NoteVerifier,
    vrf_key: &VrfPublicKey,
) -> Result<VerifiedIdentity, String> {
    let verified = verify_directory(&answer.directory, &answer.identity, log_key, vrf_key)?;
    let state = verified
        .state
        .as_ref()
        .ok_or("revocation answer: the identity is absent from the directory")?;
    if identity_revoked && state.record.status != Status::Revoked {
        return Err("revocation answer: the identity's state is not revoked".into());
    }
    if let Some(kept) = state
        .record
        .credentials
        .iter()
        .find(|c| answer.revoked.contains(&c.serial.to_hex()))
    {
        return Err(format!(
            "revocation answer: credential {} is still current",
            kept.serial
        ));
    }
    Ok(verified)
}
