//! Client endpoints: obtain a credential against an enrollment, rotate a credential.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use ed25519_dalek::VerifyingKey;
use kt_protocol::api::CredentialAnswer;
use serde::Deserialize;

use super::{
    check_identity, check_serial, directory_proof, json, present, read_json, state_problem,
    SMALL_BODY,
};
use crate::admission::rotation_refused;
use crate::app::AppState;
use crate::ca::cert_pem;
use crate::encoding::{b64, from_b64};
use crate::entry::{Binding, Serial};
use crate::pop::{self, PopError};
use crate::problem::{Problem, ProblemKind};
use crate::sequencer::{Action, Committed};
use crate::state::CredentialStatus;
use crate::unix_now;
use kt_protocol::pop::enrollment_id;

/// Credentials start this long before they are issued, for clients whose clocks lag.
const BACKDATE: u64 = 60;
/// Longest enrollment token accepted (real ones are 43 characters).
const MAX_TOKEN_LEN: usize = 128;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueRequest {
    identity: String,
    token: String,
    #[serde(default, deserialize_with = "present")]
    public_key: Option<String>,
    #[serde(default, deserialize_with = "present")]
    signature: Option<String>,
    #[serde(default, deserialize_with = "present")]
    csr: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    identity: String,
    serial: String,
    public_key: String,
    signature_current: String,
    signature_new: String,
}

fn pop_problem(e: PopError) -> Problem {
    let kind = match e {
        PopError::BadKey => ProblemKind::BadKey,
        PopError::BadSignature => ProblemKind::BadProof,
        PopError::BadCsr(_) => ProblemKind::BadProof,
    };
    Problem::new(kind, e.to_string())
}

fn decode_b64(field: &str, text: &str) -> Result<Vec<u8>, Problem> {
    from_b64(text).ok_or_else(|| Problem::bad_request(format!("{field} is not standard base64")))
}

fn parse_key(text: &str) -> Result<VerifyingKey, Problem> {
    pop::parse_public_key(&decode_b64("public_key", text)?).map_err(pop_problem)
}

/// Builds and signs a credential for `identity`'s `key`.
fn build_binding(app: &AppState, identity: &str, key: &VerifyingKey) -> Result<Binding, Problem> {
    let now = unix_now();
    let not_before = now.saturating_sub(BACKDATE);
    let not_after = now + app.credential_lifetime;
    let serial = crate::ca::random_serial().map_err(Problem::internal)?;
    let der = app
        .ca
        .issue(identity, key, &serial, not_before, not_after)
        .map_err(Problem::internal)?;
    Ok(Binding {
        serial: Serial(serial),
        public_key: key.to_bytes(),
        not_before,
        not_after,
        certificate: der,
    })
}

fn credential_answer(
    app: &AppState,
    identity: String,
    binding: Binding,
    replaces: Option<String>,
    committed: &Committed,
) -> Result<HttpResponse, Problem> {
    Ok(json(
        StatusCode::CREATED,
        &CredentialAnswer {
            identity,
            serial: binding.serial.to_hex(),
            certificate: cert_pem(&binding.certificate),
            chain: vec![app.ca.cert_pem().to_owned()],
            not_before: binding.not_before,
            not_after: binding.not_after,
            public_key: binding.public_key_b64(),
            replaces,
            directory: directory_proof(app, committed)?,
        },
    ))
}

/// `POST /v1/credentials`.
pub async fn issue(
    app: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let request: IssueRequest = read_json(&app, payload, SMALL_BODY).await?;
    check_identity(&request.identity)?;
    if request.token.is_empty() || request.token.len() > MAX_TOKEN_LEN {
        return Err(Problem::new(
            ProblemKind::BadToken,
            "malformed enrollment token",
        ));
    }
    let enrollment = enrollment_id(&request.token);
    // The cheap check first: unknown or used tokens are refused before any signature work,
    // so a client without a token costs one lookup. The sequencer decides for good.
    let state = app.state.get()?;
    match state
        .enrollment(&enrollment.to_hex())
        .map_err(state_problem)?
    {
        Some(record) if record.identity == request.identity => {
            if record.used_by.is_some() {
                return Err(Problem::new(
                    ProblemKind::TokenUsed,
                    "the token was already used",
                ));
            }
        }
        _ => {
            return Err(Problem::new(
                ProblemKind::BadToken,
                "unknown enrollment token for this identity",
            ))
        }
    }
    let key = match (&request.public_key, &request.signature, &request.csr) {
        (Some(key), Some(signature), None) => {
            let key = parse_key(key)?;
            let message =
                pop::issuance_message(&request.identity, &b64(key.as_bytes()), &enrollment);
            let signature = decode_b64("signature", signature)?;
            pop::verify(&key, &message, &signature).map_err(pop_problem)?;
            key
        }
        (None, None, Some(csr)) => pop::verify_csr(csr, &request.identity).map_err(pop_problem)?,
        _ => {
            return Err(Problem::bad_request(
                "give either public_key and signature, or csr",
            ))
        }
    };
    // An identity's first change needs its VRF label (a few scalar multiplications): made
    // here, on this request's worker, once the token and the proof hold, rather than in the
    // sequencer that every change waits for.
    if state
        .label_row(&request.identity)
        .map_err(state_problem)?
        .is_none()
    {
        app.directory.compute_label(&request.identity);
    }
    let binding = build_binding(&app, &request.identity, &key)?;
    let committed = app
        .sequencer
        .submit(Action::Issue {
            identity: request.identity.clone(),
            enrollment,
            binding: binding.clone(),
        })
        .await?;
    credential_answer(&app, request.identity, binding, None, &committed)
}

/// `POST /v1/credentials/rotate`.
pub async fn rotate(
    app: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let request: RotateRequest = read_json(&app, payload, SMALL_BODY).await?;
    check_identity(&request.identity)?;
    let replaces = check_serial(&request.serial)?;
    let state = app.state.get()?;
    let current = state
        .credential(&request.serial)
        .map_err(state_problem)?
        .filter(|c| c.identity == request.identity)
        .ok_or_else(|| {
            Problem::not_found(format!(
                "{} has no credential {}",
                request.identity, request.serial
            ))
        })?;
    if current.status != CredentialStatus::Current || current.not_after <= unix_now() {
        return Err(Problem::new(
            ProblemKind::CredentialNotCurrent,
            format!(
                "credential {} is superseded, revoked or expired",
                request.serial
            ),
        ));
    }
    let current_key =
        parse_key(&current.public_key).map_err(|_| Problem::internal("stored key"))?;
    let new_key = parse_key(&request.public_key)?;
    if new_key == current_key {
        return Err(Problem::new(
            ProblemKind::BadKey,
            "the new key must differ from the current one",
        ));
    }
    let message = pop::rotation_message(&request.identity, &replaces, &b64(new_key.as_bytes()));
    let signature_current = decode_b64("signature_current", &request.signature_current)?;
    let signature_new = decode_b64("signature_new", &request.signature_new)?;
    pop::verify(&current_key, &message, &signature_current).map_err(pop_problem)?;
    pop::verify(&new_key, &message, &signature_new).map_err(pop_problem)?;
    // The budget after the proofs (a forged request learns that its proof is bad, and cannot
    // spend the budget anyway) and before a certificate is signed; the sequencer decides for
    // good, in log order.
    let recent = state
        .identity(&request.identity)
        .map_err(state_problem)?
        .map(|record| record.recent_rotations)
        .unwrap_or_default();
    if let Some(wait) = app.rotation_budget.wait(&recent, unix_now()) {
        return Err(rotation_refused(&request.identity, wait).into());
    }
    let binding = build_binding(&app, &request.identity, &new_key)?;
    let committed = app
        .sequencer
        .submit(Action::Rotate {
            identity: request.identity.clone(),
            replaces,
            binding: binding.clone(),
        })
        .await?;
    credential_answer(
        &app,
        request.identity,
        binding,
        Some(request.serial),
        &committed,
    )
}
