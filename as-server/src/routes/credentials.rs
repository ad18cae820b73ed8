//! Client endpoints: obtain a credential against an enrollment, rotate a credential
//! ([`crate::operations::issuance`], [`crate::operations::rotation`]).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use kt_protocol::api::{CredentialAnswer, IssueRequest, RotateRequest};

use super::{json, read_json, SMALL_BODY};
use crate::app::AppState;
use crate::ca::cert_pem;
use crate::operations::issuance::{self, Issued};
use crate::operations::rotation;
use crate::problem::Problem;

/// The answer (201) of an issuance or rotation.
fn credential_answer(app: &AppState, issued: Issued) -> HttpResponse {
    json(
        StatusCode::CREATED,
        &CredentialAnswer {
            identity: issued.identity,
            serial: issued.binding.serial.to_hex(),
            certificate: cert_pem(&issued.binding.certificate),
            chain: vec![app.ca.cert_pem().to_owned()],
            not_before: issued.binding.not_before,
            not_after: issued.binding.not_after,
            public_key: issued.binding.public_key_b64(),
            replaces: issued.replaces,
            directory: issued.directory,
        },
    )
}

/// `POST /v1/credentials`.
pub async fn issue(
    app: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let request: IssueRequest = read_json(&app, payload, SMALL_BODY).await?;
    let issued = issuance::issue(&app, request).await?;
    Ok(credential_answer(&app, issued))
}

/// `POST /v1/credentials/rotate`.
pub async fn rotate(
    app: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let request: RotateRequest = read_json(&app, payload, SMALL_BODY).await?;
    let rotated = rotation::rotate(&app, request).await?;
    Ok(credential_answer(&app, rotated))
}
