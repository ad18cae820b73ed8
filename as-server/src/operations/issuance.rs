//! Issuance: a credential for an enrolled identity whose client proved it holds the key.

use ed25519_dalek::VerifyingKey;
use kt_protocol::api::{IdentityProof, IssueRequest};
use kt_protocol::pop::enrollment_id;

use super::{check_identity, decode_b64, parse_key, pop_refusal, proof_of};
use crate::app::AppState;
use crate::encoding::b64;
use crate::entry::{Binding, Serial};
use crate::pop;
use crate::refusal::{Refusal, RefusalKind};
use crate::sequencer::Action;
use crate::shared_enrollments::SharedEnrollments;
use crate::state::directory::LabelRow;
use crate::state::{EnrollmentRecord, State};
use crate::storage::{database_refusal, state_refusal};
use crate::unix_now;

/// Credentials start this long before they are issued, for clients whose clocks lag.
const BACKDATE: u64 = 60;
/// Longest enrollment token accepted (real ones are 43 characters).
const MAX_TOKEN_LEN: usize = 128;

/// A credential issued (or rotated to), logged, with the proof of the identity's new state.
pub struct Issued {
    /// The identity bound.
    pub identity: String,
    /// The credential as logged.
    pub binding: Binding,
    /// Rotation only: the serial replaced, lowercase hex.
    pub replaces: Option<String>,
    /// The proof of the identity's state after the change, which holds the credential.
    pub directory: IdentityProof,
}

/// Issues a credential for `request`: the identity's syntax, the token (unknown, used, or
/// for another identity: refused before any signature work, so a client without a token
/// costs one lookup), the proof of possession, then the certificate, logged by the
/// sequencer, which decides for good (a token raced by two requests is used once).
pub async fn issue(app: &AppState, request: IssueRequest) -> Result<Issued, Refusal> {
    check_identity(&request.identity)?;
    if request.token.is_empty() || request.token.len() > MAX_TOKEN_LEN {
        return Err(Refusal::new(
            RefusalKind::BadToken,
            "malformed enrollment token",
        ));
    }
    let enrollment = enrollment_id(&request.token);
    let state = app.state.get()?;
    let mut record = state
        .enrollment(&enrollment.to_hex())
        .map_err(state_refusal)?;
    if record.is_none() {
        if let Some(shared) = &app.shared_enrollments {
            record = take_in_shared(shared, &state, enrollment.to_hex()).await?;
        }
    }
    let prepared_label = match record {
        Some(record) if record.identity == request.identity => {
            if record.used_by.is_some() {
                return Err(Refusal::new(
                    RefusalKind::TokenUsed,
                    "the token was already used",
                ));
            }
            // The sequencer decides (its clock is the one that counts), but an enrollment
            // expired already is refused here too, before any signature work.
            if record.expires_at <= unix_now() {
                return Err(Refusal::new(RefusalKind::BadToken, "the token has expired"));
            }
            record.prepared_label
        }
        _ => {
            return Err(Refusal::new(
                RefusalKind::BadToken,
                "unknown enrollment token for this identity",
            ))
        }
    };
    let key = match (&request.public_key, &request.signature, &request.csr) {
        (Some(key), Some(signature), None) => {
            let key = parse_key(key)?;
            let message =
                pop::issuance_message(&request.identity, &b64(key.as_bytes()), &enrollment);
            let signature = decode_b64("signature", signature)?;
            pop::verify(&key, &message, &signature).map_err(pop_refusal)?;
            key
        }
        (None, None, Some(csr)) => pop::verify_csr(csr, &request.identity).map_err(pop_refusal)?,
        _ => {
            return Err(Refusal::bad_request(
                "give either public_key and signature, or csr",
            ))
        }
    };
    // An identity's first change needs its VRF label (a few scalar multiplications): the one
    // its enrollment prepared (kept without asking the store whether the identity was logged
    // since: the label is the same either way), or else made here, on this request's worker,
    // once the token and the proof hold, rather than in the sequencer that every change
    // waits for.
    match prepared_label.as_ref().and_then(LabelRow::decode) {
        Some(label) => app.directory.keep_label(&request.identity, label),
        None => {
            if state
                .label_row(&request.identity)
                .map_err(state_refusal)?
                .is_none()
            {
                app.directory.compute_label(&request.identity);
            }
        }
    }
    drop(state);
    let binding = sign_credential(app, &request.identity, &key)?;
    let action = Action::Issue {
        identity: request.identity.clone(),
        enrollment,
        binding: binding.clone(),
    };
    log_credential(app, action, request.identity, binding, None).await
}

/// Logs `action`, the issuance or rotation of `binding` to `identity`, and returns it issued,
/// with the proof of the identity's state that holds it.
pub(super) async fn log_credential(
    app: &AppState,
    action: Action,
    identity: String,
    binding: Binding,
    replaces: Option<String>,
) -> Result<Issued, Refusal> {
    let committed = app.sequencer.submit(action).await?;
    Ok(Issued {
        directory: proof_of(app, &committed)?,
        identity,
        binding,
        replaces,
    })
}

/// Builds and signs a credential for `identity`'s `key`, valid from a little before now for
/// the configured lifetime, with a fresh random serial.
pub(super) fn sign_credential(
    app: &AppState,
    identity: &str,
    key: &VerifyingKey,
) -> Result<Binding, Refusal> {
    let now = unix_now();
    let not_before = now.saturating_sub(BACKDATE);
    let not_after = now + app.credential_lifetime;
    let serial = crate::ca::random_serial().map_err(Refusal::failed)?;
    let der = app
        .ca
        .issue(identity, key, &serial, not_before, not_after)
        .map_err(Refusal::failed)?;
    Ok(Binding {
        serial: Serial(serial),
        public_key: key.to_bytes(),
        not_before,
        not_after,
        certificate: der,
    })
}

/// The enrollment `id` from the database several frontends share, taken into this frontend's
/// state ([`State::import_enrollment`]) if another frontend made it; `None` if none did, or
/// if it has expired: no token can use it any more, and this frontend's own copy of a used
/// one may be gone (the store drops enrollments a day after they expire), so taking it in
/// would only bring back an unused record of it.
async fn take_in_shared(
    shared: &SharedEnrollments,
    state: &State,
    id: String,
) -> Result<Option<EnrollmentRecord>, Refusal> {
    let Some(found) = shared.find(&id).await.map_err(database_refusal)? else {
        return Ok(None);
    };
    if found.record.expires_at <= unix_now() {
        return Ok(None);
    }
    // A few writes to the state's store (no disk sync: see `import_enrollment`).
    state
        .import_enrollment(&found.record, found.label.as_ref())
        .map_err(state_refusal)?;
    state.enrollment(&id).map_err(state_refusal)
}
