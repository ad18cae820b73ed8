//! `GET /v1/identities/{identity}` and `…/history`: an identity's complete state with the
//! proof of it (or the proof that it has none) in the latest published checkpoint, and for
//! its owner's monitor the versions since the one it holds.
//!
//! This is also the check an MLS client makes on a member it meets: the (identity, signature
//! key) pair is valid if and only if the key is among the verified state's credentials.

use actix_web::http::header::{self, Accept, Header as _, Quality};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use kt_protocol::api::{HistoryAnswer, HistoryItem, IdentityProof, IDENTITY_PROOF_MEDIA_TYPE};
use serde::Deserialize;

use super::{check_identity, json, state_problem};
use crate::app::AppState;
use crate::directory::ProofError;
use crate::directory::ProofParts;
use crate::encoding::b64;
use crate::problem::Problem;
use crate::state::directory::VersionRow;
use crate::state::State;
use crate::storage::log_read_refusal;

/// Most earlier versions one history answer gives.
pub const MAX_HISTORY: u64 = 4096;

/// The published proof of `identity` and its latest version row.
fn prove(
    app: &AppState,
    state: &State,
    identity: &str,
) -> Result<(ProofParts, Option<VersionRow>), Problem> {
    let label = state
        .label_row(identity)
        .map_err(state_problem)?
        .and_then(|row| row.decode());
    let parts = app.directory.prove(identity, label);
    // The state is written before the map that shows a version is published: the row is there.
    let row = match parts.value {
        Some(value) => state
            .version_row(identity, value.version)
            .map_err(state_problem)?,
        None => None,
    };
    Ok((parts, row))
}

fn identity_proof(
    app: &AppState,
    state: &State,
    identity: &str,
) -> Result<(IdentityProof, u64), Problem> {
    let (parts, row) = prove(app, state, identity)?;
    let version = parts.value.map_or(0, |v| v.version);
    let proof = app
        .directory
        .identity_proof(&app.log, identity, &parts, row.as_ref())
        .map_err(|e| match &e {
            // On PostgreSQL: the database cannot be read now; the same lookup works later.
            ProofError::Log(log) => {
                log_read_refusal(log).map_or_else(|| Problem::internal(&e), Problem::from)
            }
            ProofError::Record(_) => Problem::internal(e),
        })?;
    Ok((proof, version))
}

/// `GET /v1/identities/{identity}`: JSON, or the binary form
/// ([`kt_protocol::api::IDENTITY_PROOF_MEDIA_TYPE`]) when the client prefers it.
pub async fn lookup(
    req: HttpRequest,
    app: web::Data<AppState>,
    identity: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let identity = identity.into_inner();
    check_identity(&identity)?;
    let (proof, _) = identity_proof(&app, &app.state.get()?, &identity)?;
    let mut answer = if wants_binary(&req) {
        let body = proof.to_binary().map_err(Problem::internal)?;
        HttpResponse::Ok()
            .content_type(IDENTITY_PROOF_MEDIA_TYPE)
            .body(body)
    } else {
        json(StatusCode::OK, &proof)
    };
    // Caches must keep the two forms apart.
    answer
        .headers_mut()
        .insert(header::VARY, header::HeaderValue::from_static("accept"));
    Ok(answer)
}

/// Whether `Accept` names the binary form, with a quality above zero and not below that of
/// `application/json` (wildcards are less specific than either, so they never decide).
fn wants_binary(req: &HttpRequest) -> bool {
    let Ok(accept) = Accept::parse(req) else {
        return false;
    };
    let quality = |wanted: &str| {
        accept
            .iter()
            .filter(|item| item.item.essence_str() == wanted)
            .map(|item| item.quality)
            .max()
    };
    match quality(IDENTITY_PROOF_MEDIA_TYPE) {
        Some(binary) if binary > Quality::ZERO => {
            quality("application/json").is_none_or(|json| binary >= json)
        }
        _ => false,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    after: u64,
}

/// `GET /v1/identities/{identity}/history?after=N`.
pub async fn history(
    req: HttpRequest,
    app: web::Data<AppState>,
    identity: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let identity = identity.into_inner();
    check_identity(&identity)?;
    let query: HistoryQuery = super::log_read::query(&req)?;
    let state = app.state.get()?;
    let (proof, version) = identity_proof(&app, &state, &identity)?;
    let first = query.after.saturating_add(1);
    if version > first && version - first > MAX_HISTORY {
        return Err(Problem::bad_request(format!(
            "{} versions lie between {} and the latest; ask for at most {MAX_HISTORY} at a \
             time (a larger `after`)",
            version - first,
            query.after
        )));
    }
    let label = state
        .label_row(&identity)
        .map_err(state_problem)?
        .and_then(|row| row.decode());
    let mut history = Vec::new();
    if let Some((label, _)) = label {
        for v in first..version {
            let row = state
                .version_row(&identity, v)
                .map_err(state_problem)?
                .ok_or_else(|| {
                    Problem::internal(format!("version {v} of {identity} is missing"))
                })?;
            let change = row
                .record()
                .map_err(Problem::internal)?
                .entry()
                .map_err(Problem::internal)?;
            history.push(HistoryItem {
                change: change.to_json(),
                opening: b64(&app.directory.keys().opening(&label, v)),
            });
        }
    }
    Ok(json(StatusCode::OK, &HistoryAnswer { proof, history }))
}
