//! Admin endpoints: enroll identities, revoke identities and credentials, enable identities.
//! Every one needs the admin token; revocations and enabling are logged with its label.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{
    bad_identity, check_identity, check_serial, directory_proof, json, present, read_json,
    read_optional_json, require_admin, state_problem, BULK_BODY, SMALL_BODY,
};
use crate::app::AppState;
use crate::entry::{EntryBody, RevocationReason};
use crate::problem::{Problem, ProblemKind};
use crate::sequencer::{Action, Committed};
use crate::tokens::generate_token;
use crate::unix_now;
use kt_protocol::api::{EnableAnswer, RevocationAnswer};
use kt_protocol::pop::enrollment_id;

/// Most identities in one enrollment request.
pub const MAX_ENROLLMENTS: usize = 100_000;
/// Default enrollment token lifetime: one day.
pub const DEFAULT_TOKEN_TTL: u64 = 86_400;
/// Enrollment token lifetimes allowed: one minute to 30 days.
pub const TOKEN_TTL_RANGE: std::ops::RangeInclusive<u64> = 60..=2_592_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollmentRequest {
    identities: Vec<String>,
    /// A JSON number: `86400` or, as JSON Schema's `integer` allows, `86400.0`.
    #[serde(default, deserialize_with = "present")]
    ttl_seconds: Option<serde_json::Number>,
}

/// A whole number of seconds from a JSON number (`60` or `60.0`), if it is one.
fn whole_seconds(number: &serde_json::Number) -> Option<u64> {
    number.as_u64().or_else(|| {
        let value = number.as_f64()?;
        (value.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&value)).then_some(value as u64)
    })
}

#[derive(Serialize)]
struct Enrollment {
    identity: String,
    token: String,
    expires_at: u64,
}

#[derive(Serialize)]
struct EnrollmentResponse {
    enrollments: Vec<Enrollment>,
}

/// `POST /v1/admin/enrollments`.
pub async fn enroll(
    req: HttpRequest,
    app: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    require_admin(&req, &app)?;
    let request: EnrollmentRequest = read_json(&app, payload, BULK_BODY).await?;
    if request.identities.is_empty() || request.identities.len() > MAX_ENROLLMENTS {
        return Err(Problem::bad_request(format!(
            "identities must list 1 to {MAX_ENROLLMENTS} identities"
        )));
    }
    let ttl = match &request.ttl_seconds {
        None => DEFAULT_TOKEN_TTL,
        Some(number) => whole_seconds(number).unwrap_or(0),
    };
    if !TOKEN_TTL_RANGE.contains(&ttl) {
        return Err(Problem::bad_request(
            "ttl_seconds must be between 60 and 2592000",
        ));
    }
    for identity in &request.identities {
        app.identity_policy
            .check_new(identity)
            .map_err(|e| bad_identity(identity, e))?;
    }
    let expires_at = unix_now() + ttl;
    let mut enrollments = Vec::with_capacity(request.identities.len());
    let mut records = Vec::with_capacity(request.identities.len());
    for identity in request.identities {
        let token = generate_token().map_err(Problem::internal)?;
        records.push((enrollment_id(&token).to_hex(), identity.clone(), expires_at));
        enrollments.push(Enrollment {
            identity,
            token,
            expires_at,
        });
    }
    let state = app.state.get()?;
    let stored = web::block(move || state.add_enrollments(&records))
        .await
        .map_err(Problem::internal)?
        // A storage fault is 503: nothing answered shows the enrollment (a journaled record
        // without its store record has tokens nobody was given), and a store that failed is
        // reopened by the sequencer.
        .map_err(state_problem)?;
    if let Err(identity) = stored {
        return Err(Problem::new(
            ProblemKind::IdentityRevoked,
            format!("{identity} is revoked; an admin must enable it first"),
        ));
    }
    Ok(json(
        StatusCode::CREATED,
        &EnrollmentResponse { enrollments },
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    #[serde(default, deserialize_with = "present")]
    reason: Option<RevocationReason>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EnableRequest {}

fn revocation_answer(app: &AppState, committed: &Committed) -> Result<HttpResponse, Problem> {
    let (identity, revoked) = match &committed.body {
        EntryBody::Revoke {
            identity, serials, ..
        } => (
            identity.clone(),
            serials.iter().map(|s| s.to_hex()).collect(),
        ),
        _ => return Err(Problem::internal("a revocation committed as another entry")),
    };
    Ok(json(
        StatusCode::OK,
        &RevocationAnswer {
            identity,
            revoked,
            directory: directory_proof(app, committed)?,
        },
    ))
}

/// Reads the optional revocation reason, logs the revocation `make` builds, and answers with
/// what it revoked.
async fn revoke(
    app: &AppState,
    payload: web::Payload,
    make: impl FnOnce(RevocationReason) -> Action,
) -> Result<HttpResponse, Problem> {
    let request: RevokeRequest = read_optional_json(app, payload, SMALL_BODY).await?;
    let reason = request.reason.unwrap_or(RevocationReason::Unspecified);
    let committed = app.sequencer.submit(make(reason)).await?;
    revocation_answer(app, &committed)
}

/// `POST /v1/admin/identities/{identity}/revoke`.
pub async fn revoke_identity(
    req: HttpRequest,
    app: web::Data<AppState>,
    identity: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let admin = require_admin(&req, &app)?;
    let identity = identity.into_inner();
    check_identity(&identity)?;
    revoke(&app, payload, |reason| Action::RevokeIdentity {
        identity,
        reason,
        admin,
    })
    .await
}

/// `POST /v1/admin/credentials/{serial}/revoke`.
pub async fn revoke_credential(
    req: HttpRequest,
    app: web::Data<AppState>,
    serial: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let admin = require_admin(&req, &app)?;
    let serial = check_serial(&serial.into_inner())?;
    revoke(&app, payload, |reason| Action::RevokeCredential {
        serial,
        reason,
        admin,
    })
    .await
}

/// `POST /v1/admin/identities/{identity}/enable`.
pub async fn enable_identity(
    req: HttpRequest,
    app: web::Data<AppState>,
    identity: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let admin = require_admin(&req, &app)?;
    let identity = identity.into_inner();
    check_identity(&identity)?;
    let _empty: EnableRequest = read_optional_json(&app, payload, SMALL_BODY).await?;
    let committed = app
        .sequencer
        .submit(Action::Enable { identity, admin })
        .await?;
    Ok(json(
        StatusCode::OK,
        &EnableAnswer {
            identity: committed.body.identity().to_owned(),
            directory: directory_proof(&app, &committed)?,
        },
    ))
}
