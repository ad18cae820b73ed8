//! The log's read API: key, checkpoint, proofs, entries (JSON under `/v1/log/`) and the C2SP
//! tlog-tiles static API under `/log/`.
//!
//! Proofs and entries are served only within the latest signed checkpoint, so everything a
//! client can fetch is covered by a signature. Full tiles never change and are cached for a
//! year; the checkpoint is never cached.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use kt_log::tiles::{tile_width, TileId, TileKind, TILE_WIDTH};
use serde::{Deserialize, Serialize};

use super::decimal::{parse_canonical, DecimalError};
use super::json;
use crate::app::AppState;
use crate::encoding::{b64, proof_b64};
use crate::problem::{Problem, ProblemKind};
use crate::storage::log_read_refusal;
use kt_log::log::LogError;

/// The problem of a read of the log that failed within the signed tree: `503
/// storage-unavailable` with `Retry-After` if the storage failed (the database unreachable),
/// since the same read succeeds once it is back; else a failure of the server.
fn read_failed(error: LogError) -> Problem {
    log_read_refusal(&error).map_or_else(|| Problem::internal(error), Problem::from)
}

#[derive(Serialize)]
struct LogKey<'a> {
    origin: &'a str,
    verifier_key: &'a str,
    /// The directory's VRF public key, base64: what checks identities' labels.
    vrf_key: String,
}

/// `GET /v1/log/key`.
pub async fn key(app: web::Data<AppState>) -> HttpResponse {
    json(
        StatusCode::OK,
        &LogKey {
            origin: app.log.origin(),
            verifier_key: &app.verifier_key,
            vrf_key: app.directory.keys().vrf_public_b64(),
        },
    )
}

/// `GET /log/checkpoint` and `GET /v1/log/checkpoint`. With a witness policy: the newest
/// checkpoint its quorum cosigned (503 `not-yet-available` before the first). Without: the
/// checkpoint the directory's map is published with (a log-signed checkpoint can run a
/// moment ahead of it), so that a client that saves it never sees a later lookup as older.
pub async fn checkpoint(app: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let note = match &app.witnessing {
        None => app.directory.read().checkpoint.note.clone(),
        Some(witnessing) => match witnessing.cosigned() {
            Some(cosigned) => cosigned.note.clone(),
            None => {
                let mut problem = Problem::new(
                    ProblemKind::NotYetAvailable,
                    "no checkpoint is cosigned by the witness quorum yet",
                );
                problem.retry_after = Some(1);
                return Err(problem);
            }
        },
    };
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/plain; charset=utf-8"))
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(note))
}

/// The query of a proof request, whose values are all numbers: a `%` or `+` (which would
/// decode to another spelling) is refused before decoding, so every number has one spelling.
pub(super) fn query<T: for<'de> Deserialize<'de>>(req: &HttpRequest) -> Result<T, Problem> {
    if req.query_string().contains(['%', '+']) {
        return Err(Problem::bad_request(
            "query numbers are canonical decimal, never percent-encoded",
        ));
    }
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| Problem::bad_request(format!("query: {e}")))
}

/// A query number, in canonical decimal ([`parse_canonical`]). Digits too many for a u64
/// name an index or size no log has (404); anything else is malformed (400).
fn number(name: &str, text: &str) -> Result<u64, Problem> {
    parse_canonical(text).map_err(|e| match e {
        DecimalError::NotCanonical => Problem::bad_request(format!(
            "{name} must be a non-negative integer in canonical decimal (no sign, no leading zero)"
        )),
        DecimalError::TooLarge => Problem::not_found(format!("{name} {text} is beyond any log")),
    })
}

fn signed_size(app: &AppState) -> u64 {
    app.log.latest_checkpoint().checkpoint.size
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    index: String,
    size: String,
}

#[derive(Serialize)]
struct InclusionAnswer {
    index: u64,
    size: u64,
    proof: Vec<String>,
}

/// `GET /v1/log/proof/inclusion?index=&size=`.
pub async fn inclusion(
    app: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let q: InclusionQuery = query(&req)?;
    let (index, size) = (number("index", &q.index)?, number("size", &q.size)?);
    let signed = signed_size(&app);
    if size > signed || index >= size {
        return Err(Problem::not_found(format!(
            "need index < size <= {signed}, got index {} size {}",
            index, size
        )));
    }
    let proof = app.log.inclusion_proof(index, size).map_err(read_failed)?;
    Ok(json(
        StatusCode::OK,
        &InclusionAnswer {
            index,
            size,
            proof: proof_b64(&proof),
        },
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    from: String,
    to: String,
}

#[derive(Serialize)]
struct ConsistencyAnswer {
    from: u64,
    to: u64,
    proof: Vec<String>,
}

/// `GET /v1/log/proof/consistency?from=&to=`.
pub async fn consistency(
    app: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let q: ConsistencyQuery = query(&req)?;
    let (from, to) = (number("from", &q.from)?, number("to", &q.to)?);
    let signed = signed_size(&app);
    if from == 0 || from > to || to > signed {
        return Err(Problem::not_found(format!(
            "need 1 <= from <= to <= {signed}, got from {} to {}",
            from, to
        )));
    }
    let proof = app.log.consistency_proof(from, to).map_err(read_failed)?;
    Ok(json(
        StatusCode::OK,
        &ConsistencyAnswer {
            from,
            to,
            proof: proof_b64(&proof),
        },
    ))
}

#[derive(Serialize)]
struct EntryAnswer {
    index: u64,
    entry: String,
}

/// `GET /v1/log/entries/{index}`.
pub async fn entry(app: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    let signed = signed_size(&app);
    // A path names a resource: any other spelling of a number (`+0`, `007`, `%30`) names
    // none. The segment is read as sent, before actix percent-decodes it.
    let raw = req.uri().path().rsplit('/').next().unwrap_or_default();
    let index = parse_canonical(raw)
        .ok()
        .filter(|i| *i < signed)
        .ok_or_else(|| {
            Problem::not_found(format!(
                "entries are 0 to {}, in canonical decimal",
                signed.saturating_sub(1)
            ))
        })?;
    let bytes = app.log.entry(index).map_err(read_failed)?;
    Ok(json(
        StatusCode::OK,
        &EntryAnswer {
            index,
            entry: b64(&bytes),
        },
    ))
}

/// `GET /log/tile/<L>/<N>[.p/<W>]` and `GET /log/tile/entries/<N>[.p/<W>]`.
pub async fn tile(app: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    // The path as sent, before percent-decoding: a tile has one name.
    let path = req
        .uri()
        .path()
        .strip_prefix("/log/")
        .unwrap_or_default()
        .to_owned();
    let id = TileId::parse(&path).map_err(|_| Problem::not_found("not a tile path"))?;
    let missing = |e: LogError| match e {
        LogError::OutOfRange(_) => Problem::not_found(format!("{path} is not in the log")),
        e => read_failed(e),
    };
    let level = match id.kind {
        TileKind::Hashes { level } => Some(level),
        TileKind::Entries => None,
    };
    // Only tiles of the signed tree: a tile wider than the latest checkpoint has is not served.
    if id.width > tile_width(signed_size(&app), level, id.index) {
        return Err(Problem::not_found(format!(
            "{path} is not in the signed tree yet"
        )));
    }
    let bytes = match id.kind {
        TileKind::Hashes { level } => app
            .log
            .hash_tile(level, id.index, id.width)
            .map_err(missing)?,
        TileKind::Entries => app.log.entry_bundle(id.index, id.width).map_err(missing)?,
    };
    let cache = if u64::from(id.width) == TILE_WIDTH {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=60"
    };
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/octet-stream"))
        .insert_header((CACHE_CONTROL, cache))
        .body(bytes))
}
