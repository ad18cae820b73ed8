//! RFC 9457 problem documents: every error the API returns.
//!
//! Each [`ProblemKind`] has a fixed status and a `type` URI `https://kt-as.dev/problems/<code>`
//! (docs/api.md lists them). Client mistakes are 4xx; `internal` (500) is only for failures of
//! the server itself (signing, damaged data), never for anything a request contains; a data
//! disk that does not take writes is `storage-unavailable` (503): it passes, and the same
//! request may then succeed.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Base of every problem `type`.
pub const PROBLEM_BASE: &str = "https://kt-as.dev/problems/";

/// The kinds of problem, each with a code, status and title.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// Malformed JSON, wrong types, bad base64, bad query.
    BadRequest,
    /// No admin token.
    Unauthorized,
    /// Wrong admin token.
    Forbidden,
    /// Unknown identity, serial, index or path.
    NotFound,
    /// The path exists, the method does not.
    MethodNotAllowed,
    /// Body over the limit.
    PayloadTooLarge,
    /// Identity breaks the rules.
    BadIdentity,
    /// Public key not a valid Ed25519 key.
    BadKey,
    /// Proof of possession or CSR signature does not verify.
    BadProof,
    /// Enrollment token unknown, expired or for another identity.
    BadToken,
    /// Enrollment token already used.
    TokenUsed,
    /// Identity is revoked.
    IdentityRevoked,
    /// Serial superseded or revoked.
    CredentialNotCurrent,
    /// Identity holds the configured maximum of credentials.
    TooManyCredentials,
    /// The state does not allow the action.
    Conflict,
    /// A per-identity budget (rotations) is spent for now.
    RateLimited,
    /// The request body did not arrive in time.
    RequestTimeout,
    /// The sequencer queue is full.
    Overloaded,
    /// Something the answer needs is not there yet (no checkpoint cosigned by the witness
    /// quorum so far); `Retry-After` says when to ask again.
    NotYetAvailable,
    /// The data disk does not take writes (full, read-only, failing), or the state is being
    /// brought level with the log after that; nothing was written that an answer could show,
    /// and `Retry-After` says when to try again.
    StorageUnavailable,
    /// The server failed.
    Internal,
}

impl ProblemKind {
    /// The `<code>` in the type URI.
    pub fn code(self) -> &'static str {
        match self {
            ProblemKind::BadRequest => "bad-request",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::NotFound => "not-found",
            ProblemKind::MethodNotAllowed => "method-not-allowed",
            ProblemKind::PayloadTooLarge => "payload-too-large",
            ProblemKind::BadIdentity => "bad-identity",
            ProblemKind::BadKey => "bad-key",
            ProblemKind::BadProof => "bad-proof",
            ProblemKind::BadToken => "bad-token",
            ProblemKind::TokenUsed => "token-used",
            ProblemKind::IdentityRevoked => "identity-revoked",
            ProblemKind::CredentialNotCurrent => "credential-not-current",
            ProblemKind::TooManyCredentials => "too-many-credentials",
            ProblemKind::Conflict => "conflict",
            ProblemKind::RateLimited => "rate-limited",
            ProblemKind::RequestTimeout => "request-timeout",
            ProblemKind::Overloaded => "overloaded",
            ProblemKind::NotYetAvailable => "not-yet-available",
            ProblemKind::StorageUnavailable => "storage-unavailable",
            ProblemKind::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ProblemKind::BadRequest => StatusCode::BAD_REQUEST,
            ProblemKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemKind::Forbidden | ProblemKind::BadToken => StatusCode::FORBIDDEN,
            ProblemKind::NotFound => StatusCode::NOT_FOUND,
            ProblemKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemKind::BadIdentity | ProblemKind::BadKey | ProblemKind::BadProof => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ProblemKind::TokenUsed
            | ProblemKind::IdentityRevoked
            | ProblemKind::CredentialNotCurrent
            | ProblemKind::TooManyCredentials
            | ProblemKind::Conflict => StatusCode::CONFLICT,
            ProblemKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ProblemKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ProblemKind::Overloaded
            | ProblemKind::NotYetAvailable
            | ProblemKind::StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, fixed, human-readable summary.
    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::BadRequest => "malformed request",
            ProblemKind::Unauthorized => "admin token required",
            ProblemKind::Forbidden => "admin token not accepted",
            ProblemKind::NotFound => "not found",
            ProblemKind::MethodNotAllowed => "method not allowed",
            ProblemKind::PayloadTooLarge => "request body too large",
            ProblemKind::BadIdentity => "identity does not follow the identity rules",
            ProblemKind::BadKey => "public key is not a valid Ed25519 key",
            ProblemKind::BadProof => "proof of possession does not verify",
            ProblemKind::BadToken => "enrollment token not valid for this identity",
            ProblemKind::TokenUsed => "enrollment token already used",
            ProblemKind::IdentityRevoked => "identity is revoked",
            ProblemKind::CredentialNotCurrent => "credential is not current",
            ProblemKind::TooManyCredentials => "identity holds the maximum number of credentials",
            ProblemKind::Conflict => "the current state does not allow this",
            ProblemKind::RateLimited => "too many requests of this kind, retry later",
            ProblemKind::RequestTimeout => "the request body did not arrive in time",
            ProblemKind::Overloaded => "server overloaded, retry later",
            ProblemKind::NotYetAvailable => "not available yet, retry later",
            ProblemKind::StorageUnavailable => "storage unavailable, retry later",
            ProblemKind::Internal => "internal server error",
        }
    }
}

/// A problem to answer with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// What exactly, for a human.
    pub detail: String,
    /// For `overloaded`, `rate-limited`, `not-yet-available` and `storage-unavailable`:
    /// seconds to wait, sent as `Retry-After`.
    pub retry_after: Option<u32>,
}

impl Problem {
    /// A problem of `kind` with `detail`.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// A server-side failure. The detail is logged, not sent: it may name files or internals.
    pub fn internal(detail: impl std::fmt::Display) -> Problem {
        tracing::error!(%detail, "internal error");
        Problem::new(ProblemKind::Internal, "the server failed; see its log")
    }

    /// 400 with `detail`.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(ProblemKind::BadRequest, detail)
    }

    /// 404 with `detail`.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(ProblemKind::NotFound, detail)
    }
}

/// The HTTP edge of the domain's refusals ([`crate::refusal`]): each kind has its problem; a
/// failure's detail is logged and not sent.
impl From<crate::refusal::Refusal> for Problem {
    fn from(refusal: crate::refusal::Refusal) -> Problem {
        use crate::refusal::RefusalKind as R;
        let kind = match refusal.kind {
            R::BadRequest => ProblemKind::BadRequest,
            R::BadIdentity => ProblemKind::BadIdentity,
            R::BadKey => ProblemKind::BadKey,
            R::BadProof => ProblemKind::BadProof,
            R::BadToken => ProblemKind::BadToken,
            R::TokenUsed => ProblemKind::TokenUsed,
            R::IdentityRevoked => ProblemKind::IdentityRevoked,
            R::NotFound => ProblemKind::NotFound,
            R::CredentialNotCurrent => ProblemKind::CredentialNotCurrent,
            R::TooManyCredentials => ProblemKind::TooManyCredentials,
            R::Conflict => ProblemKind::Conflict,
            R::RateLimited => ProblemKind::RateLimited,
            R::Overloaded => ProblemKind::Overloaded,
            R::StorageUnavailable => ProblemKind::StorageUnavailable,
            R::Failed => return Problem::internal(refusal.detail),
        };
        let mut problem = Problem::new(kind, refusal.detail);
        problem.retry_after = refusal.retry_after;
        problem
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.detail)
    }
}

#[derive(Serialize)]
struct ProblemDocument<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.kind.status()
    }

    fn error_response(&self) -> HttpResponse {
        let document = ProblemDocument {
            type_uri: format!("{PROBLEM_BASE}{}", self.kind.code()),
            title: self.kind.title(),
            status: self.kind.status().as_u16(),
            detail: &self.detail,
        };
        let mut response = HttpResponse::build(self.kind.status());
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.body(serde_json::to_vec(&document).unwrap_or_default())
    }
}
