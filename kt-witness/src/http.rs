//! The HTTP interface of C2SP tlog-witness, over actix-web.
//!
//! - `POST /add-checkpoint`: the submission API. The body is at most [`MAX_BODY`] bytes
//!   (larger: 413). Answers: 200 with the cosignature line; 409 with the latest size and
//!   `Content-Type: text/x.tlog.size`; 400, 403, 404, 422, 500 and (auditing mode, log
//!   unreachable) 503 with `Retry-After` and a one-line `text/plain` reason. The check, cosignature and durable write run on the blocking pool.
//! - `GET /<lower-case hex SHA-256 of the origin>/checkpoint`: the monitoring API, the latest
//!   cosigned checkpoint with the log's signatures and this witness's cosignature (404 if none).
//! - `GET /healthz`, `GET /metrics`.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};

use crate::metrics::Metrics;
use crate::witness::{AddError, Witness};

/// Largest add-checkpoint body accepted: 63 proof lines and a checkpoint with
/// [`kt_log::note::MAX_SIGNATURES`] signatures fit well below it.
pub const MAX_BODY: usize = 64 * 1024;

/// What the handlers share.
pub struct AppState {
    /// The witness.
    pub witness: Witness,
    /// Its metrics.
    pub metrics: Metrics,
}

/// Adds the witness's routes to an actix app.
pub fn configure(state: Arc<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::from(state))
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .service(web::resource("/add-checkpoint").route(web::post().to(add_checkpoint)))
            .service(web::resource("/healthz").route(web::get().to(healthz)))
            .service(web::resource("/metrics").route(web::get().to(metrics)))
            .service(web::resource("/{origin_hash}/checkpoint").route(web::get().to(monitor)));
    }
}

fn text(status: u16, body: String) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .content_type(ContentType::plaintext())
        .body(body)
}

async fn add_checkpoint(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let started = Instant::now();
    let worker = state.clone().into_inner();
    let result = web::block(move || worker.witness.add_checkpoint(&body)).await;
    let response = match result {
        Ok(Ok(line)) => text(200, line),
        Ok(Err(AddError::Conflict { latest })) => HttpResponse::Conflict()
            .content_type("text/x.tlog.size")
            .body(kt_log::witness_request::size_body(latest)),
        Ok(Err(e @ AddError::AuditUnavailable(_))) => {
            let mut response = text(e.status(), format!("{e}\n"));
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static("1"),
            );
            response
        }
        Ok(Err(e)) => {
            if e.status() >= 500 {
                tracing::error!(error = %e, "add-checkpoint failed");
            }
            text(e.status(), format!("{e}\n"))
        }
        Err(_) => text(500, "internal error: the worker stopped\n".into()),
    };
    state
        .metrics
        .answered(response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

async fn monitor(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let hash = path.into_inner();
    match state.witness.latest_by_origin_hash(&hash) {
        Some(note) => HttpResponse::Ok()
            .content_type(ContentType::plaintext())
            .body(note.as_ref().clone()),
        None => text(404, "no checkpoint cosigned for this origin hash\n".into()),
    }
}

async fn healthz() -> HttpResponse {
    text(200, "ok\n".into())
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let body = state.metrics.encode(&state.witness);
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(body)
}
