//! Why the AS refuses an action: the domain's answer, decided by admission and the sequencer.
//!
//! The domain says what is wrong ([`RefusalKind`], a detail for a human, how long to wait);
//! only the HTTP edge turns a refusal into an RFC 9457 problem (`From<Refusal> for Problem` in
//! [`crate::problem`]), so that the rules and the writer know nothing of status codes, and a
//! failure's detail (which may name files or internals) is logged there, never sent.

/// The kinds of refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalKind {
    /// The request breaks the API's form: bad base64, a missing or extra proof, a limit.
    BadRequest,
    /// The identity breaks the identity rules.
    BadIdentity,
    /// The public key is not a valid Ed25519 key, or not one the action may use.
    BadKey,
    /// The proof of possession (signature or CSR) does not verify.
    BadProof,
    /// The enrollment token is unknown, expired, void or for another identity.
    BadToken,
    /// The enrollment token was used.
    TokenUsed,
    /// The identity is revoked.
    IdentityRevoked,
    /// No such identity or credential.
    NotFound,
    /// The credential is superseded, revoked or expired.
    CredentialNotCurrent,
    /// The identity holds the configured maximum of credentials.
    TooManyCredentials,
    /// The state does not allow the action (revoking what is revoked, enabling what is active).
    Conflict,
    /// A per-identity budget (rotations) is spent for now.
    RateLimited,
    /// The writer's queue is full: back-pressure.
    Overloaded,
    /// The data disk does not take writes (full, read-only, failing), or the state is being
    /// brought level with the log after such a fault: nothing of the action was done that an
    /// answer could show; the same request may succeed later ([`crate::sequencer`]).
    StorageUnavailable,
    /// The server failed (storage, signing): nothing about the request.
    Failed,
}

/// A refusal: what kind, what exactly, and for back-pressure and budgets how long to wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What kind.
    pub kind: RefusalKind,
    /// What exactly, for a human (for [`RefusalKind::Failed`], for the operator's log only).
    pub detail: String,
    /// Seconds to wait before trying again, if that helps.
    pub retry_after: Option<u32>,
}

impl Refusal {
    /// A refusal of `kind` with `detail`.
    pub fn new(kind: RefusalKind, detail: impl Into<String>) -> Refusal {
        Refusal {
            kind,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// The request breaks the API's form.
    pub fn bad_request(detail: impl Into<String>) -> Refusal {
        Refusal::new(RefusalKind::BadRequest, detail)
    }

    /// No such identity or credential.
    pub fn not_found(detail: impl Into<String>) -> Refusal {
        Refusal::new(RefusalKind::NotFound, detail)
    }

    /// A failure of the server itself.
    pub fn failed(detail: impl std::fmt::Display) -> Refusal {
        Refusal::new(RefusalKind::Failed, detail.to_string())
    }

    /// The data disk does not take writes now; retry in `seconds`.
    pub fn storage_unavailable(detail: impl std::fmt::Display, seconds: u64) -> Refusal {
        Refusal::new(RefusalKind::StorageUnavailable, detail.to_string()).retry_after(seconds)
    }

    /// This refusal, telling the client to wait `seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Refusal {
        self.retry_after = Some(u32::try_from(seconds).unwrap_or(u32::MAX));
        self
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)
    }
}
