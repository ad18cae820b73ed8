//! `GET /v1/identities/{identity}`: an identity's status and current credentials, each with
//! its inclusion proof against the one checkpoint of the answer.
//!
//! This is also the check an MLS client makes on a member whose BasicCredential it meets: the
//! (identity, signature key) pair is valid if and only if the key is among `credentials`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::{check_identity, json};
use crate::app::AppState;
use crate::ca::cert_pem;
use crate::encoding::{b64, proof_b64};
use crate::entry::{EntryBody, LogEntry};
use crate::problem::Problem;
use crate::state::{CredentialStatus, IdentityStatus};
use crate::unix_now;

#[derive(Serialize)]
struct CurrentCredential {
    serial: String,
    public_key: String,
    not_before: u64,
    not_after: u64,
    certificate: String,
    log_index: u64,
    entry: String,
    inclusion_proof: Vec<String>,
}

#[derive(Serialize)]
struct IdentityResponse {
    identity: String,
    status: IdentityStatus,
    checkpoint: String,
    credentials: Vec<CurrentCredential>,
}

/// `GET /v1/identities/{identity}`.
pub async fn lookup(
    app: web::Data<AppState>,
    identity: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let identity = identity.into_inner();
    check_identity(&identity)?;
    let record = app
        .state
        .identity(&identity)
        .map_err(Problem::internal)?
        // Enrolled but never logged answers as never enrolled: enrollments are not public.
        .filter(|record| record.logged)
        .ok_or_else(|| Problem::not_found(format!("{identity} has nothing in the log")))?;
    // Read after the state: the checkpoint only grows and already covers every entry the state
    // has applied, so every proof below is against a tree that contains its entry.
    let checkpoint = app.log.latest_checkpoint();
    let size = checkpoint.checkpoint.size;
    let now = unix_now();
    let mut credentials = Vec::new();
    for serial in &record.current {
        let Some(credential) = app.state.credential(serial).map_err(Problem::internal)? else {
            continue;
        };
        if credential.status != CredentialStatus::Current || credential.not_after <= now {
            continue;
        }
        let entry = app
            .log
            .entry(credential.log_index)
            .map_err(Problem::internal)?;
        let certificate = match LogEntry::parse(&entry).map(|e| e.body) {
            Ok(EntryBody::Issue { binding, .. } | EntryBody::Rotate { binding, .. }) => {
                cert_pem(&binding.certificate)
            }
            _ => {
                return Err(Problem::internal(format!(
                    "entry {} is not a binding",
                    credential.log_index
                )))
            }
        };
        let proof = app
            .log
            .inclusion_proof(credential.log_index, size)
            .map_err(Problem::internal)?;
        credentials.push(CurrentCredential {
            serial: serial.clone(),
            public_key: credential.public_key,
            not_before: credential.not_before,
            not_after: credential.not_after,
            certificate,
            log_index: credential.log_index,
            entry: b64(&entry),
            inclusion_proof: proof_b64(&proof),
        });
    }
    Ok(json(
        StatusCode::OK,
        &IdentityResponse {
            identity,
            status: record.status,
            checkpoint: String::from_utf8_lossy(&checkpoint.note).into_owned(),
            credentials,
        },
    ))
}
