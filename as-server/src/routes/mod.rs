//! The HTTP API (docs/api.md), one file per area, and the helpers they share.
//!
//! Every handler parses its untrusted input itself (bodies read with a size limit, JSON into
//! structs that refuse unknown fields, queries and path segments checked), so every refusal is
//! a problem document with the right 4xx, and nothing is changed before all checks passed.

pub mod admin;
pub mod credentials;
pub mod decimal;
pub mod identities;
pub mod log_read;
pub mod service;
pub mod witnesses;

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::AppState;
use crate::operations;
use crate::problem::{Problem, ProblemKind};

/// Body limit of ordinary requests.
pub const SMALL_BODY: usize = 64 * 1024;
/// Body limit of bulk enrollment (100,000 identities of up to 254 bytes, quoted).
pub const BULK_BODY: usize = 32 * 1024 * 1024;

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let post = |path: &str| resource(path, Method::POST);
    let get = |path: &str| resource(path, Method::GET);
    cfg.service(post("/v1/admin/enrollments").route(web::post().to(admin::enroll)))
        .service(
            post("/v1/admin/identities/{identity}/revoke")
                .route(web::post().to(admin::revoke_identity)),
        )
        .service(
            post("/v1/admin/identities/{identity}/enable")
                .route(web::post().to(admin::enable_identity)),
        )
        .service(
            post("/v1/admin/credentials/{serial}/revoke")
                .route(web::post().to(admin::revoke_credential)),
        )
        .service(post("/v1/credentials").route(web::post().to(credentials::issue)))
        .service(post("/v1/credentials/rotate").route(web::post().to(credentials::rotate)))
        .service(get("/v1/identities/{identity}").route(web::get().to(identities::lookup)))
        .service(get("/v1/identities/{identity}/history").route(web::get().to(identities::history)))
        .service(get("/v1/ca").route(web::get().to(service::ca)))
        .service(get("/v1/crl").route(web::get().to(service::crl)))
        .service(get("/v1/log/key").route(web::get().to(log_read::key)))
        .service(get("/v1/log/checkpoint").route(web::get().to(log_read::checkpoint)))
        .service(get("/v1/log/proof/inclusion").route(web::get().to(log_read::inclusion)))
        .service(get("/v1/log/proof/consistency").route(web::get().to(log_read::consistency)))
        .service(get("/v1/log/entries/{index}").route(web::get().to(log_read::entry)))
        .service(get("/v1/log/witnesses").route(web::get().to(witnesses::witnesses)))
        .service(get("/log/checkpoint").route(web::get().to(log_read::checkpoint)))
        .service(get("/log/tile/{tile:.*}").route(web::get().to(log_read::tile)))
        .service(get("/healthz").route(web::get().to(service::healthz)))
        .service(get("/metrics").route(web::get().to(service::metrics)))
        .default_service(web::to(not_found));
}

/// A resource served with `method` only: any other method gets a 405 problem document with
/// the `Allow` header RFC 9110 asks for.
fn resource(path: &str, method: Method) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || {
        let allow = method.to_string();
        async move {
            let mut response = actix_web::ResponseError::error_response(&Problem::new(
                ProblemKind::MethodNotAllowed,
                format!("this path answers {allow} only"),
            ));
            if let Ok(value) = header::HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
    }))
}

async fn not_found() -> Problem {
    Problem::not_found("no such path")
}

impl actix_web::Responder for Problem {
    type Body = actix_web::body::BoxBody;
    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        actix_web::ResponseError::error_response(&self)
    }
}

/// Reads the whole body: at most `limit` bytes (413 beyond), within the body deadline (408
/// after it), so that a client that sends a head and then stalls or trickles its body holds
/// its connection for a bounded time. The deadline is the configured `body_timeout`, plus a
/// second for each 256 KiB the route allows (nothing for ordinary 64 KiB bodies; 128 s more
/// for bulk enrollment, so an admin's 32 MiB upload needs 256 KiB/s; its token is checked
/// before the body is read).
async fn read_body(
    app: &AppState,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, Problem> {
    let extra = std::time::Duration::from_secs((limit / (256 << 10)) as u64);
    let deadline = app.body_timeout + extra;
    match tokio::time::timeout(deadline, payload.to_bytes_limited(limit)).await {
        Ok(Ok(Ok(bytes))) => Ok(bytes),
        Ok(Ok(Err(e))) => Err(Problem::bad_request(format!("reading the body: {e}"))),
        Ok(Err(_)) => Err(Problem::new(
            ProblemKind::PayloadTooLarge,
            format!("the body is limited to {limit} bytes"),
        )),
        Err(_) => Err(Problem::new(
            ProblemKind::RequestTimeout,
            format!(
                "the body must arrive within {} s of the request head",
                deadline.as_secs()
            ),
        )),
    }
}

/// Reads the body (see [`read_body`]) and parses it as JSON into `T`.
pub async fn read_json<T: DeserializeOwned>(
    app: &AppState,
    payload: web::Payload,
    limit: usize,
) -> Result<T, Problem> {
    let bytes = read_body(app, payload, limit).await?;
    serde_json::from_slice(&bytes).map_err(|e| Problem::bad_request(format!("JSON body: {e}")))
}

/// Like [`read_json`], but an empty body means `T::default()`.
pub async fn read_optional_json<T: DeserializeOwned + Default>(
    app: &AppState,
    payload: web::Payload,
    limit: usize,
) -> Result<T, Problem> {
    let bytes = read_body(app, payload, limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Problem::bad_request(format!("JSON body: {e}")))?;
    serde_json::from_value(value).map_err(|e| Problem::bad_request(format!("JSON body: {e}")))
}

/// The label of the admin token in `Authorization: Bearer …`: 401 if there is none, 403 if it
/// is not an admin token.
pub fn require_admin(req: &HttpRequest, app: &AppState) -> Result<String, Problem> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(Problem::new(
            ProblemKind::Unauthorized,
            "Authorization: Bearer <admin token> is required",
        ));
    };
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            Problem::new(
                ProblemKind::Unauthorized,
                "Authorization must be Bearer <admin token>",
            )
        })?;
    app.admin_tokens
        .check(token)
        .map(str::to_owned)
        .ok_or_else(|| Problem::new(ProblemKind::Forbidden, "not an admin token"))
}

/// The problem of a failed read of the state store: `storage-unavailable` for a storage fault
/// ([`crate::storage::state_refusal`]), else `internal`.
pub fn state_problem(error: crate::state::StateError) -> Problem {
    crate::storage::state_refusal(error).into()
}

/// A JSON answer with `status`.
pub fn json<T: Serialize>(status: actix_web::http::StatusCode, body: &T) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(serde_json::to_vec(body).unwrap_or_default())
}

/// Checks an identity from a request ([`operations::check_identity`]): 422 `bad-identity`
/// if it breaks the syntax.
pub fn check_identity(identity: &str) -> Result<(), Problem> {
    Ok(operations::check_identity(identity)?)
}

/// Parses a serial from a request ([`operations::check_serial`]): 404 if it cannot be one.
pub fn check_serial(serial: &str) -> Result<crate::entry::Serial, Problem> {
    Ok(operations::check_serial(serial)?)
}
