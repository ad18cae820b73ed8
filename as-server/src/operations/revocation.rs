//! Revocation of an identity or one credential, and enabling a revoked identity again: the
//! admin's changes, each logged with the admin token's label.

use kt_protocol::api::{IdentityProof, RevocationRequest};

use super::{check_identity, check_serial, proof_of};
use crate::app::AppState;
use crate::entry::{EntryBody, RevocationReason};
use crate::refusal::Refusal;
use crate::sequencer::Action;

/// What a revocation names.
pub enum Target {
    /// An identity: it and all its current credentials.
    Identity(String),
    /// One credential, by its serial (lowercase hex).
    Credential(String),
}

/// A revocation logged, with the proof of the identity's new state.
pub struct Revoked {
    /// Whose.
    pub identity: String,
    /// The serials revoked, lowercase hex.
    pub serials: Vec<String>,
    /// The proof of the identity's state after the revocation.
    pub directory: IdentityProof,
}

/// An identity enabled again, with the proof of its new state.
pub struct Enabled {
    /// Whom.
    pub identity: String,
    /// The proof of the identity's state after the enabling.
    pub directory: IdentityProof,
}

/// Revokes `target` for `request.reason` (unspecified if none), by the admin labelled
/// `admin`: a syntax the target cannot have is refused (a bad identity, or a serial that
/// cannot exist: not found); the rest (unknown, already revoked) the sequencer decides.
pub async fn revoke(
    app: &AppState,
    target: Target,
    request: RevocationRequest,
    admin: String,
) -> Result<Revoked, Refusal> {
    let reason = request.reason.unwrap_or(RevocationReason::Unspecified);
    let action = match target {
        Target::Identity(identity) => {
            check_identity(&identity)?;
            Action::RevokeIdentity {
                identity,
                reason,
                admin,
            }
        }
        Target::Credential(serial) => Action::RevokeCredential {
            serial: check_serial(&serial)?,
            reason,
            admin,
        },
    };
    let committed = app.sequencer.submit(action).await?;
    let (identity, serials) = match &committed.body {
        EntryBody::Revoke {
            identity, serials, ..
        } => (
            identity.clone(),
            serials.iter().map(|s| s.to_hex()).collect(),
        ),
        _ => return Err(Refusal::failed("a revocation committed as another entry")),
    };
    Ok(Revoked {
        identity,
        serials,
        directory: proof_of(app, &committed)?,
    })
}

/// Enables the revoked `identity` again, by the admin labelled `admin` (the sequencer refuses
/// an identity that is not revoked).
pub async fn enable(app: &AppState, identity: String, admin: String) -> Result<Enabled, Refusal> {
    check_identity(&identity)?;
    let committed = app
        .sequencer
        .submit(Action::Enable { identity, admin })
        .await?;
    Ok(Enabled {
        identity: committed.body.identity().to_owned(),
        directory: proof_of(app, &committed)?,
    })
}
