//! Admin endpoints: enroll identities, revoke identities and credentials, enable identities
//! ([`crate::operations::enrollment`], [`crate::operations::revocation`]). Every one needs the
//! admin token; revocations and enabling are logged with its label. The token, then the
//! path, are checked before the body is read.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use kt_protocol::api::{
    EnableAnswer, EnableRequest, EnrollmentRequest, RevocationAnswer, RevocationRequest,
};

use super::{
    check_identity, check_serial, json, read_json, read_optional_json, require_admin, BULK_BODY,
    SMALL_BODY,
};
use crate::app::AppState;
use crate::operations::enrollment;
use crate::operations::revocation::{self, Target};
use crate::problem::Problem;

/// `POST /v1/admin/enrollments`.
pub async fn enroll(
    req: HttpRequest,
    app: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    require_admin(&req, &app)?;
    let request: EnrollmentRequest = read_json(&app, payload, BULK_BODY).await?;
    let answer = enrollment::enroll(&app, request).await?;
    Ok(json(StatusCode::CREATED, &answer))
}

/// Reads the optional revocation body, revokes `target`, and answers with what it revoked.
async fn revoke(
    app: &AppState,
    payload: web::Payload,
    target: Target,
    admin: String,
) -> Result<HttpResponse, Problem> {
    let request: RevocationRequest = read_optional_json(app, payload, SMALL_BODY).await?;
    let revoked = revocation::revoke(app, target, request, admin).await?;
    Ok(json(
        StatusCode::OK,
        &RevocationAnswer {
            identity: revoked.identity,
            revoked: revoked.serials,
            directory: revoked.directory,
        },
    ))
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
    revoke(&app, payload, Target::Identity(identity), admin).await
}

/// `POST /v1/admin/credentials/{serial}/revoke`.
pub async fn revoke_credential(
    req: HttpRequest,
    app: web::Data<AppState>,
    serial: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let admin = require_admin(&req, &app)?;
    let serial = serial.into_inner();
    check_serial(&serial)?;
    revoke(&app, payload, Target::Credential(serial), admin).await
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
    let enabled = revocation::enable(&app, identity, admin).await?;
    Ok(json(
        StatusCode::OK,
        &EnableAnswer {
            identity: enabled.identity,
            directory: enabled.directory,
        },
    ))
}
