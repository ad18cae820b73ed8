//! The CA certificate, the CRL, health and metrics.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{web, HttpResponse};

use crate::app::{AppState, CachedCrl};
use crate::ca::crl_number;
use crate::encoding::from_hex;
use crate::problem::Problem;
use crate::routes::state_problem;
use crate::unix_now;

/// A CRL is valid for a day and rebuilt after an hour even without new revocations.
const CRL_VALIDITY: u64 = 86_400;
const CRL_REBUILD_AFTER: u64 = 3_600;

/// `GET /v1/ca`.
pub async fn ca(app: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/x-pem-file"))
        .body(app.ca.cert_pem().to_owned())
}

/// `GET /v1/crl`: every revoked credential, signed by the CA.
pub async fn crl(app: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let now = unix_now();
    // The generation first: a CRL built from a store replaced meanwhile is built again.
    let generation = app.state.generation();
    let state = match app.state.get() {
        Ok(state) => state,
        // While the state store is reopened, the CRL built last, if still valid.
        Err(refusal) => {
            let cached = app.crl.lock().unwrap_or_else(|e| e.into_inner());
            return match cached.as_ref() {
                Some(c) if now < c.built_at + CRL_VALIDITY => Ok(crl_answer(c.der.clone())),
                _ => Err(refusal.into()),
            };
        }
    };
    // One record read decides whether the cached CRL is still current; the revocations are
    // scanned only to build a new one.
    let last_revocation = state.last_revocation().map_err(state_problem)?;
    let mut cached = app.crl.lock().unwrap_or_else(|e| e.into_inner());
    let fresh = cached.as_ref().is_some_and(|c| {
        c.last_revocation == last_revocation
            && c.state_generation == generation
            && now < c.built_at + CRL_REBUILD_AFTER
    });
    if !fresh {
        let revocations = state.revocations().map_err(state_problem)?;
        let listed: Vec<_> = revocations
            .iter()
            .filter_map(|(serial, r)| {
                let serial: [u8; 16] = from_hex(serial, 16)?.try_into().ok()?;
                Some((serial, r.revoked_at, r.reason))
            })
            .collect();
        let now_nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let number = crl_number(
            last_revocation,
            now_nanos,
            cached.as_ref().map(|c| c.number),
        );
        let der = app
            .ca
            .crl(&listed, number, now, CRL_VALIDITY)
            .map_err(Problem::internal)?;
        *cached = Some(CachedCrl {
            last_revocation,
            built_at: now,
            number,
            state_generation: generation,
            der,
        });
    }
    let der = cached.as_ref().map(|c| c.der.clone()).unwrap_or_default();
    Ok(crl_answer(der))
}

fn crl_answer(der: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/pkix-crl"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .body(der)
}

/// `GET /healthz`.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/plain"))
        .body("ok\n")
}

/// `GET /metrics`.
pub async fn metrics(app: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ))
        .body(app.metrics.render(app.sequencer.queue_depth()))
}
