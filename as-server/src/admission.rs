//! The rules an action must pass, against the state as the sequencer sees it, to become a log
//! entry.
//!
//! These checks run in the sequencer, one action at a time, on a view that already contains
//! the effects of the actions admitted before it in the same batch. So two requests racing for
//! one enrollment token, one credential, or the last free credential slot are decided in log
//! order: exactly one wins. The expensive checks that need no state (proofs of possession,
//! certificate signing) run before, in the request handlers, in parallel.

use kt_protocol::history::{self, CredentialFacts, HistoryView, Refused, Violation};

use crate::entry::{
    Binding, EnrollmentId, EntryBody, LogEntry, RevocationReason, RevocationScope, Serial,
};
use crate::refusal::{Refusal, RefusalKind};
use crate::rotation::RotationBudget;
use crate::state::{CredentialStatus, IdentityStatus, Overlay};

/// Something that changes the state and goes into the log.
#[derive(Clone, Debug)]
pub enum Action {
    /// Issue a credential against an enrollment.
    Issue {
        /// For whom.
        identity: String,
        /// The enrollment the token presented stands for.
        enrollment: EnrollmentId,
        /// The credential, already built and signed.
        binding: Binding,
    },
    /// Replace a current credential with a new one.
    Rotate {
        /// Whose.
        identity: String,
        /// The current serial.
        replaces: Serial,
        /// The new credential.
        binding: Binding,
    },
    /// Revoke an identity and all its current credentials.
    RevokeIdentity {
        /// Whom.
        identity: String,
        /// Why.
        reason: RevocationReason,
        /// Admin label.
        admin: String,
    },
    /// Revoke one credential.
    RevokeCredential {
        /// Which.
        serial: Serial,
        /// Why.
        reason: RevocationReason,
        /// Admin label.
        admin: String,
    },
    /// Enable a revoked identity again.
    Enable {
        /// Whom.
        identity: String,
        /// Admin label.
        admin: String,
    },
}

/// The operator's limits that admission enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most live credentials (devices) per identity.
    pub max_credentials: usize,
    /// How often one identity may rotate.
    pub rotation_budget: RotationBudget,
}

fn internal(e: crate::state::StateError) -> Refusal {
    crate::storage::state_refusal(e)
}

/// The identity spent its rotation budget: retry in `wait` seconds (429 with `Retry-After`).
pub fn rotation_refused(identity: &str, wait: u64) -> Refusal {
    Refusal::new(
        RefusalKind::RateLimited,
        format!("{identity} rotated too often; retry in {wait} s"),
    )
    .retry_after(wait)
}

/// Decides whether `action` may be logged now, and if so returns the entry body.
///
/// Two layers. The server's own rules come first and give each refusal its precise kind
/// (tokens, their expiry and epoch, the credential limit, the rotation budget, and the log
/// rules in the server's wording). Then the entry must pass [`history::check`], the log rules
/// the auditor checks too, on the same view: so the server never logs an entry that an
/// auditor would refuse, whatever its own checks miss.
pub fn admit(
    view: &Overlay<'_>,
    action: &Action,
    now: u64,
    limits: &Limits,
) -> Result<EntryBody, Refusal> {
    let entry = LogEntry::new(decide(view, action, now, limits)?);
    history::check(&LoggedHistory(view), &entry).map_err(|refused| match refused {
        Refused::View(e) => internal(e),
        Refused::Violation(violation) => violation_refusal(&violation),
    })?;
    Ok(entry.body)
}

/// The history rules' verdict on `entry` as the next entry after what `view` shows: the check
/// [`admit`] makes after the server's own rules, on the server's view of the log. Public so
/// that a test can hold this view against an auditor's, entry by entry.
pub fn history_verdict(
    view: &Overlay<'_>,
    entry: &LogEntry,
) -> Result<Result<(), Violation>, crate::state::StateError> {
    match history::check(&LoggedHistory(view), entry) {
        Ok(()) => Ok(Ok(())),
        Err(Refused::Violation(violation)) => Ok(Err(violation)),
        Err(Refused::View(e)) => Err(e),
    }
}

/// The refusal a broken log rule is answered with (the server's own checks, which run first,
/// give the same answers with more detail).
fn violation_refusal(violation: &Violation) -> Refusal {
    let kind = match violation {
        Violation::EnrollmentUsed(_) => RefusalKind::TokenUsed,
        Violation::IdentityRevoked(_) => RefusalKind::IdentityRevoked,
        Violation::UnknownSerial(_) | Violation::OtherIdentity(_) => RefusalKind::NotFound,
        Violation::NotCurrent(_) | Violation::Expired(_) => RefusalKind::CredentialNotCurrent,
        Violation::NotRevoked(_) => RefusalKind::Conflict,
        // A random 128-bit serial drawn twice, or a rule added later.
        _ => return Refusal::failed(format!("log rule: {violation}")),
    };
    Refusal::new(kind, violation.to_string())
}

/// The sequencer's view of the state as the history rules read it.
struct LoggedHistory<'a, 'b>(&'a Overlay<'b>);

impl HistoryView for LoggedHistory<'_, '_> {
    type Error = crate::state::StateError;

    fn identity_revoked(&self, identity: &str) -> Result<bool, Self::Error> {
        Ok(self
            .0
            .identity(identity)?
            .is_some_and(|record| record.status == IdentityStatus::Revoked))
    }

    fn credential(
        &self,
        serial: &Serial,
        identity: &str,
    ) -> Result<Option<CredentialFacts>, Self::Error> {
        Ok(self
            .0
            .credential(&serial.to_hex())?
            .map(|record| CredentialFacts {
                held_by_identity: record.identity == identity,
                status: match record.status {
                    CredentialStatus::Current => history::CredentialStatus::Current,
                    CredentialStatus::Superseded => history::CredentialStatus::Superseded,
                    CredentialStatus::Revoked => history::CredentialStatus::Revoked,
                },
                not_after: record.not_after,
            }))
    }

    fn enrollment_used(&self, enrollment: &EnrollmentId) -> Result<bool, Self::Error> {
        Ok(self
            .0
            .enrollment(&enrollment.to_hex())?
            .is_some_and(|record| record.used_by.is_some()))
    }
}

/// The server's own rules, and the entry body they allow.
fn decide(
    view: &Overlay<'_>,
    action: &Action,
    now: u64,
    limits: &Limits,
) -> Result<EntryBody, Refusal> {
    let max_credentials = limits.max_credentials;
    match action {
        Action::Issue {
            identity,
            enrollment,
            binding,
        } => {
            let record = view
                .enrollment(&enrollment.to_hex())
                .map_err(internal)?
                .filter(|e| &e.identity == identity)
                .ok_or_else(|| {
                    Refusal::new(
                        RefusalKind::BadToken,
                        "unknown enrollment token for this identity",
                    )
                })?;
            if record.used_by.is_some() {
                return Err(Refusal::new(
                    RefusalKind::TokenUsed,
                    "the token was already used",
                ));
            }
            if record.expires_at <= now {
                return Err(Refusal::new(RefusalKind::BadToken, "the token has expired"));
            }
            let holder = view
                .identity(identity)
                .map_err(internal)?
                .ok_or_else(|| Refusal::new(RefusalKind::BadToken, "identity not enrolled"))?;
            if holder.status == IdentityStatus::Revoked {
                return Err(Refusal::new(RefusalKind::IdentityRevoked, identity.clone()));
            }
            if holder.epoch != record.epoch {
                return Err(Refusal::new(
                    RefusalKind::BadToken,
                    "the token was made before the identity was revoked",
                ));
            }
            let mut live = 0;
            for serial in &holder.current {
                if let Some(c) = view.credential(serial).map_err(internal)? {
                    if c.not_after > now {
                        live += 1;
                    }
                }
            }
            if live >= max_credentials {
                return Err(Refusal::new(
                    RefusalKind::TooManyCredentials,
                    format!(
                        "{identity} holds {live} credentials, the maximum is {max_credentials}"
                    ),
                ));
            }
            Ok(EntryBody::Issue {
                time: now,
                identity: identity.clone(),
                binding: binding.clone(),
                enrollment: *enrollment,
            })
        }
        Action::Rotate {
            identity,
            replaces,
            binding,
        } => {
            let holder = view
                .identity(identity)
                .map_err(internal)?
                .ok_or_else(|| Refusal::not_found(format!("no identity {identity}")))?;
            if holder.status == IdentityStatus::Revoked {
                return Err(Refusal::new(RefusalKind::IdentityRevoked, identity.clone()));
            }
            let current = view
                .credential(&replaces.to_hex())
                .map_err(internal)?
                .filter(|c| &c.identity == identity)
                .ok_or_else(|| {
                    Refusal::not_found(format!("{identity} has no credential {replaces}"))
                })?;
            if current.status != CredentialStatus::Current || current.not_after <= now {
                return Err(Refusal::new(
                    RefusalKind::CredentialNotCurrent,
                    format!("credential {replaces} is superseded, revoked or expired"),
                ));
            }
            if let Some(wait) = limits.rotation_budget.wait(&holder.recent_rotations, now) {
                return Err(rotation_refused(identity, wait));
            }
            Ok(EntryBody::Rotate {
                time: now,
                identity: identity.clone(),
                binding: binding.clone(),
                replaces: *replaces,
            })
        }
        Action::RevokeIdentity {
            identity,
            reason,
            admin,
        } => {
            let holder = view
                .identity(identity)
                .map_err(internal)?
                .ok_or_else(|| Refusal::not_found(format!("no identity {identity}")))?;
            if holder.status == IdentityStatus::Revoked {
                return Err(Refusal::new(
                    RefusalKind::Conflict,
                    format!("{identity} is already revoked"),
                ));
            }
            // The state keeps serials as the hex it read them from entries in.
            let serials = holder
                .current
                .iter()
                .map(|hex| {
                    Serial::parse_hex(hex)
                        .ok_or_else(|| Refusal::failed(format!("stored serial {hex:?}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(EntryBody::Revoke {
                time: now,
                identity: identity.clone(),
                serials,
                scope: RevocationScope::Identity,
                reason: *reason,
                admin: admin.clone(),
            })
        }
        Action::RevokeCredential {
            serial,
            reason,
            admin,
        } => {
            let credential = view
                .credential(&serial.to_hex())
                .map_err(internal)?
                .ok_or_else(|| Refusal::not_found(format!("no credential {serial}")))?;
            if credential.status != CredentialStatus::Current {
                return Err(Refusal::new(
                    RefusalKind::CredentialNotCurrent,
                    format!("credential {serial} is already superseded or revoked"),
                ));
            }
            Ok(EntryBody::Revoke {
                time: now,
                identity: credential.identity,
                serials: vec![*serial],
                scope: RevocationScope::Credential,
                reason: *reason,
                admin: admin.clone(),
            })
        }
        Action::Enable { identity, admin } => {
            let holder = view
                .identity(identity)
                .map_err(internal)?
                .ok_or_else(|| Refusal::not_found(format!("no identity {identity}")))?;
            if holder.status == IdentityStatus::Active {
                return Err(Refusal::new(
                    RefusalKind::Conflict,
                    format!("{identity} is not revoked"),
                ));
            }
            Ok(EntryBody::Enable {
                time: now,
                identity: identity.clone(),
                admin: admin.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_ids::{enrollment, enrollment_hex, serial};
    use crate::state::State;

    fn binding(name: &str) -> Binding {
        Binding {
            serial: serial(name),
            public_key: [7; 32],
            not_before: 0,
            not_after: 1_000,
            certificate: vec![0x30, 0x00],
        }
    }

    fn issue(enrollment_name: &str, serial_name: &str) -> Action {
        Action::Issue {
            identity: "a@b.co".into(),
            enrollment: enrollment(enrollment_name),
            binding: binding(serial_name),
        }
    }

    fn limits(max_credentials: usize) -> Limits {
        Limits {
            max_credentials,
            rotation_budget: RotationBudget {
                min_interval: 60,
                per_day: 2,
            },
        }
    }

    fn kind(result: Result<EntryBody, Refusal>) -> RefusalKind {
        match result {
            Err(refusal) => refusal.kind,
            Ok(body) => panic!("admitted {body:?}"),
        }
    }

    #[test]
    fn tokens_expire_and_are_used_once_within_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let state =
            State::open(&dir.path().join("state"), &dir.path().join("enrollments")).unwrap();
        state
            .add_enrollments(&[
                (enrollment_hex("e1"), "a@b.co".into(), 100),
                (enrollment_hex("e2"), "a@b.co".into(), 100),
            ])
            .unwrap()
            .unwrap();
        let mut view = state.overlay();
        assert_eq!(
            kind(admit(&view, &issue("e1", "s1"), 100, &limits(10))),
            RefusalKind::BadToken,
            "expired at 100"
        );
        assert_eq!(
            kind(admit(&view, &issue("zz", "s1"), 50, &limits(10))),
            RefusalKind::BadToken,
            "unknown"
        );
        let body = admit(&view, &issue("e1", "s1"), 50, &limits(10)).unwrap();
        view.apply_entry(0, &crate::entry::LogEntry::new(body))
            .unwrap();
        // The same token again in the same batch: the overlay already has it used.
        assert_eq!(
            kind(admit(&view, &issue("e1", "s2"), 50, &limits(10))),
            RefusalKind::TokenUsed
        );
        // The credential limit counts what the batch already issued.
        assert_eq!(
            kind(admit(&view, &issue("e2", "s2"), 50, &limits(1))),
            RefusalKind::TooManyCredentials
        );
        // With room under the limit, the second token is admitted.
        assert!(admit(&view, &issue("e2", "s2"), 50, &limits(2)).is_ok());
    }

    #[test]
    fn revocation_and_enabling_follow_the_identity_status() {
        let dir = tempfile::tempdir().unwrap();
        let state =
            State::open(&dir.path().join("state"), &dir.path().join("enrollments")).unwrap();
        state
            .add_enrollments(&[(enrollment_hex("e1"), "a@b.co".into(), 100)])
            .unwrap()
            .unwrap();
        let mut view = state.overlay();
        let enable = Action::Enable {
            identity: "a@b.co".into(),
            admin: "admin".into(),
        };
        assert_eq!(
            kind(admit(&view, &enable, 1, &limits(10))),
            RefusalKind::Conflict,
            "not revoked"
        );
        let revoke = Action::RevokeIdentity {
            identity: "a@b.co".into(),
            reason: RevocationReason::KeyCompromise,
            admin: "admin".into(),
        };
        let body = admit(&view, &revoke, 1, &limits(10)).unwrap();
        view.apply_entry(0, &crate::entry::LogEntry::new(body))
            .unwrap();
        assert_eq!(
            kind(admit(&view, &revoke, 1, &limits(10))),
            RefusalKind::Conflict,
            "already revoked"
        );
        assert_eq!(
            kind(admit(&view, &issue("e1", "s1"), 1, &limits(10))),
            RefusalKind::IdentityRevoked
        );
        let body = admit(&view, &enable, 1, &limits(10)).unwrap();
        view.apply_entry(1, &crate::entry::LogEntry::new(body))
            .unwrap();
        // Enabled again, but the token predates the revocation.
        assert_eq!(
            kind(admit(&view, &issue("e1", "s1"), 1, &limits(10))),
            RefusalKind::BadToken
        );
        let unknown = Action::RevokeCredential {
            serial: serial("nope"),
            reason: RevocationReason::Unspecified,
            admin: "admin".into(),
        };
        assert_eq!(
            kind(admit(&view, &unknown, 1, &limits(10))),
            RefusalKind::NotFound
        );
    }

    #[test]
    fn rotations_spend_the_identity_budget_in_log_order() {
        let dir = tempfile::tempdir().unwrap();
        let state =
            State::open(&dir.path().join("state"), &dir.path().join("enrollments")).unwrap();
        state
            .add_enrollments(&[(enrollment_hex("e1"), "a@b.co".into(), 1_000)])
            .unwrap()
            .unwrap();
        let mut view = state.overlay();
        let body = admit(&view, &issue("e1", "s1"), 10, &limits(10)).unwrap();
        view.apply_entry(0, &crate::entry::LogEntry::new(body))
            .unwrap();
        let rotate = |from: &str, to: &str| Action::Rotate {
            identity: "a@b.co".into(),
            replaces: serial(from),
            binding: binding(to),
        };
        let mut index = 1;
        let mut rotate_at = |view: &mut Overlay<'_>, from: &str, to: &str, now: u64| {
            let admitted = admit(view, &rotate(from, to), now, &limits(10));
            if let Ok(body) = &admitted {
                view.apply_entry(index, &crate::entry::LogEntry::new(body.clone()))
                    .unwrap();
                index += 1;
            }
            admitted.map_err(|p| (p.kind, p.retry_after))
        };
        assert!(rotate_at(&mut view, "s1", "s2", 100).is_ok());
        // Within the least interval (60 s), even in the same batch: 429, retry in 50 s.
        assert_eq!(
            rotate_at(&mut view, "s2", "s3", 110),
            Err((RefusalKind::RateLimited, Some(50)))
        );
        assert!(rotate_at(&mut view, "s2", "s3", 160).is_ok());
        // Two a day: the third waits until the first leaves the window.
        assert_eq!(
            rotate_at(&mut view, "s3", "s4", 300),
            Err((
                RefusalKind::RateLimited,
                Some((100 + crate::rotation::WINDOW - 300) as u32)
            ))
        );
        // The refusals logged nothing and used up nothing: the record has two rotations.
        assert_eq!(
            view.identity("a@b.co").unwrap().unwrap().recent_rotations,
            [100, 160]
        );
    }

    #[test]
    fn the_shared_log_rules_have_the_last_word() {
        let dir = tempfile::tempdir().unwrap();
        let state =
            State::open(&dir.path().join("state"), &dir.path().join("enrollments")).unwrap();
        state
            .add_enrollments(&[
                (enrollment_hex("e1"), "a@b.co".into(), 100),
                (enrollment_hex("e2"), "a@b.co".into(), 100),
            ])
            .unwrap()
            .unwrap();
        let mut view = state.overlay();
        let body = admit(&view, &issue("e1", "s1"), 50, &limits(10)).unwrap();
        view.apply_entry(0, &crate::entry::LogEntry::new(body))
            .unwrap();
        // The server's own checks have nothing against a second issuance with a fresh token,
        // but it reuses a serial: the history rules refuse it, so it is never logged.
        assert_eq!(
            kind(admit(&view, &issue("e2", "s1"), 50, &limits(10))),
            RefusalKind::Failed
        );
        assert!(admit(&view, &issue("e2", "s2"), 50, &limits(10)).is_ok());
    }
}
