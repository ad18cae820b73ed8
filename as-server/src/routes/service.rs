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
                Some(c) if now < c.built_at.saturating_add(CRL_VALIDITY) => {
                    Ok(crl_answer(c.der.clone()))
                }
                _ => Err(refusal.into()),
            };
        }
    };
    // The store's latest revocation (kept in memory) decides whether the cached CRL is still
    // current; the revocations are scanned only to build a new one.
    let last_revocation = state.last_revocation();
    let mut cached = app.crl.lock().unwrap_or_else(|e| e.into_inner());
    let usable = |lasting| usable_crl(cached.as_ref(), last_revocation, generation, now, lasting);
    if usable(CRL_REBUILD_AFTER).is_none() {
        let revocations = match state.revocations() {
            Ok(revocations) => revocations,
            // A full disk can make sled refuse reads (see `state`): a cached CRL that lists
            // every revocation the store holds is served until it expires.
            Err(error) => {
                return match usable(CRL_VALIDITY) {
                    Some(crl) => Ok(crl_answer(crl.der.clone())),
                    None => Err(state_problem(error)),
                };
            }
        };
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

/// `cached`, if it can be served for a CRL built now: built from the current store
/// (`generation`) at its latest revocation, so that it lists every revocation the store
/// holds, and less than `lasting` seconds ago.
fn usable_crl(
    cached: Option<&CachedCrl>,
    last_revocation: Option<u64>,
    generation: u64,
    now: u64,
    lasting: u64,
) -> Option<&CachedCrl> {
    cached.filter(|c| {
        c.last_revocation == last_revocation
            && c.state_generation == generation
            && now < c.built_at.saturating_add(lasting)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn built(last_revocation: Option<u64>, built_at: u64) -> CachedCrl {
        CachedCrl {
            last_revocation,
            built_at,
            number: 1,
            state_generation: 2,
            der: vec![1],
        }
    }

    #[test]
    fn a_cached_crl_stands_in_only_while_it_lists_every_revocation_and_is_valid() {
        let crl = built(Some(7), 1_000);
        let usable = |last, generation, now, lasting| {
            usable_crl(Some(&crl), last, generation, now, lasting).is_some()
        };
        assert!(usable(Some(7), 2, 1_000, CRL_REBUILD_AFTER));
        assert!(usable(Some(7), 2, 1_000 + CRL_VALIDITY - 1, CRL_VALIDITY));
        // A revocation after it was built: it misses one.
        assert!(!usable(Some(8), 2, 1_001, CRL_VALIDITY));
        // Built from a store since replaced, which may have held part of a failed batch.
        assert!(!usable(Some(7), 3, 1_001, CRL_VALIDITY));
        // Expired, or due to be built again.
        assert!(!usable(Some(7), 2, 1_000 + CRL_VALIDITY, CRL_VALIDITY));
        assert!(!usable(
            Some(7),
            2,
            1_000 + CRL_REBUILD_AFTER,
            CRL_REBUILD_AFTER
        ));
        assert!(usable_crl(None, Some(7), 2, 1_000, CRL_VALIDITY).is_none());
        let before_any = built(None, 1_000);
        assert!(usable_crl(Some(&before_any), None, 2, 1_001, CRL_VALIDITY).is_some());
        assert!(usable_crl(Some(&before_any), Some(0), 2, 1_001, CRL_VALIDITY).is_none());
    }
}
