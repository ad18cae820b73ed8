//! `GET /v1/log/witnesses`: the witness policy's quorum, the newest cosigned checkpoint's
//! size and cosigners, and what the log knows of each witness — for operators and for
//! clients waiting for a cosigned checkpoint that covers their entry.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::json;
use crate::app::AppState;
use crate::problem::Problem;
use crate::witnessing::WitnessStatus;

#[derive(Serialize)]
struct Cosigned {
    size: u64,
    cosigners: Vec<String>,
}

#[derive(Serialize)]
struct Witnesses<'a> {
    quorum: &'a str,
    cosigned: Option<Cosigned>,
    witnesses: Vec<WitnessStatus>,
}

/// `GET /v1/log/witnesses` (404 when the server has no witness policy).
pub async fn witnesses(app: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let Some(witnessing) = &app.witnessing else {
        return Err(Problem::not_found(
            "this log has no witness policy: its checkpoints are signed by the log only",
        ));
    };
    let cosigned = witnessing.cosigned().map(|c| Cosigned {
        size: c.size,
        cosigners: c.cosigners.clone(),
    });
    Ok(json(
        StatusCode::OK,
        &Witnesses {
            quorum: witnessing.quorum(),
            cosigned,
            witnesses: witnessing.status(),
        },
    ))
}
