//! Rotation: a current credential replaced by one for a new key, proven by both keys.

use kt_protocol::api::RotateRequest;

use super::issuance::{log_credential, sign_credential, Issued};
use super::{check_identity, check_serial, decode_b64, parse_key, pop_refusal};
use crate::admission::rotation_refused;
use crate::app::AppState;
use crate::encoding::b64;
use crate::pop;
use crate::refusal::{Refusal, RefusalKind};
use crate::sequencer::Action;
use crate::state::CredentialStatus;
use crate::storage::state_refusal;
use crate::unix_now;

/// Rotates the credential `request.serial` of `request.identity` to `request.public_key`:
/// the credential must be the identity's, current and unexpired; the new key must differ and
/// both keys must sign the rotation text; the identity's rotation budget is checked after the
/// proofs (a forged request learns only that its proof is bad, and spends nothing) and before
/// a certificate is signed. The sequencer decides for good, in log order.
pub async fn rotate(app: &AppState, request: RotateRequest) -> Result<Issued, Refusal> {
    check_identity(&request.identity)?;
    let replaces = check_serial(&request.serial)?;
    let state = app.state.get()?;
    let current = state
        .credential(&request.serial)
        .map_err(state_refusal)?
        .filter(|c| c.identity == request.identity)
        .ok_or_else(|| {
            Refusal::not_found(format!(
                "{} has no credential {}",
                request.identity, request.serial
            ))
        })?;
    if current.status != CredentialStatus::Current || current.not_after <= unix_now() {
        return Err(Refusal::new(
            RefusalKind::CredentialNotCurrent,
            format!(
                "credential {} is superseded, revoked or expired",
                request.serial
            ),
        ));
    }
    let current_key = parse_key(&current.public_key).map_err(|_| Refusal::failed("stored key"))?;
    let new_key = parse_key(&request.public_key)?;
    if new_key == current_key {
        return Err(Refusal::new(
            RefusalKind::BadKey,
            "the new key must differ from the current one",
        ));
    }
    let message = pop::rotation_message(&request.identity, &replaces, &b64(new_key.as_bytes()));
    let signature_current = decode_b64("signature_current", &request.signature_current)?;
    let signature_new = decode_b64("signature_new", &request.signature_new)?;
    pop::verify(&current_key, &message, &signature_current).map_err(pop_refusal)?;
    pop::verify(&new_key, &message, &signature_new).map_err(pop_refusal)?;
    let recent = state
        .identity(&request.identity)
        .map_err(state_refusal)?
        .map(|record| record.recent_rotations)
        .unwrap_or_default();
    drop(state);
    if let Some(wait) = app.rotation_budget.wait(&recent, unix_now()) {
        return Err(rotation_refused(&request.identity, wait));
    }
    let binding = sign_credential(app, &request.identity, &new_key)?;
    let action = Action::Rotate {
        identity: request.identity.clone(),
        replaces,
        binding: binding.clone(),
    };
    log_credential(app, action, request.identity, binding, Some(request.serial)).await
}
