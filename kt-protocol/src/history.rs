//! The history rules: which entry may follow which, as one pure function that the server's
//! admission and the auditor's checks both call, so that they cannot disagree.
//!
//! [`check`] decides whether `entry` may come next after the entries a [`HistoryView`]
//! reflects, from what the log alone shows (enrollments themselves are not logged; the server
//! checks their tokens, expiry and epochs on top):
//! - `issue`: its enrollment was not used by an earlier issuance; the identity is not revoked;
//!   the serial is new.
//! - `rotate`: the identity is not revoked; the serial is new; `replaces` is a current
//!   credential of the same identity (not superseded, not revoked) that had not expired at
//!   the entry's time.
//! - `revoke`: the identity is not revoked; each serial is a current credential of the same
//!   identity. Scope `identity` then revokes the identity too.
//! - `enable`: the identity is revoked.
//!
//! [`effects`] says what an accepted entry changes, in the terms of the view, so that every
//! view (the server's state, the auditor's index, [`MemoryHistory`]) moves the same way.

use std::collections::{HashMap, HashSet};

use thiserror::Error;

use crate::entry::{EnrollmentId, EntryBody, LogEntry, RevocationScope, Serial};

/// Where a credential stands, as far as the history rules care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialStatus {
    /// Issued or rotated in, and neither superseded nor revoked since.
    Current,
    /// Replaced by a rotation.
    Superseded,
    /// Revoked by an admin.
    Revoked,
}

/// What the rules need to know of a credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CredentialFacts {
    /// Whether it was issued to the identity asked about.
    pub held_by_identity: bool,
    /// Where it stands.
    pub status: CredentialStatus,
    /// Its validity end, Unix seconds.
    pub not_after: u64,
}

/// The state the rules read: what the entries before the one checked established.
///
/// Contract: answers reflect exactly the [`effects`] of every entry accepted before, in log
/// order, and nothing else. An `Err` is a failure of the view itself (storage), never a
/// verdict on the entry.
pub trait HistoryView {
    /// Why the view could not answer.
    type Error;
    /// Whether `identity` is revoked (and not enabled since). Never logged: not revoked.
    fn identity_revoked(&self, identity: &str) -> Result<bool, Self::Error>;
    /// The credential `serial`, if it was ever issued, seen from `identity`.
    fn credential(
        &self,
        serial: &Serial,
        identity: &str,
    ) -> Result<Option<CredentialFacts>, Self::Error>;
    /// Whether an issuance already used `enrollment`.
    fn enrollment_used(&self, enrollment: &EnrollmentId) -> Result<bool, Self::Error>;
}

/// Why an entry may not come next.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Violation {
    /// An issuance's enrollment was used before.
    #[error("enrollment {0} was already used")]
    EnrollmentUsed(EnrollmentId),
    /// The identity is revoked: it may get no credential and no revocation until enabled.
    #[error("identity {0} is revoked")]
    IdentityRevoked(String),
    /// A serial that was issued before.
    #[error("serial {0} was issued before")]
    SerialReused(Serial),
    /// A serial replaced or revoked that was never issued.
    #[error("serial {0} was never issued")]
    UnknownSerial(Serial),
    /// A serial replaced or revoked that belongs to another identity.
    #[error("serial {0} belongs to another identity")]
    OtherIdentity(Serial),
    /// A serial replaced or revoked that is superseded or revoked already.
    #[error("serial {0} is not current")]
    NotCurrent(Serial),
    /// A serial replaced after it expired.
    #[error("serial {0} had expired")]
    Expired(Serial),
    /// An enabling of an identity that is not revoked.
    #[error("identity {0} is not revoked")]
    NotRevoked(String),
}

/// What an accepted entry changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A credential is issued to the entry's identity, current.
    NewCredential {
        /// Its serial.
        serial: Serial,
        /// Its validity end.
        not_after: u64,
    },
    /// A credential's status changes.
    CredentialStatus {
        /// Which.
        serial: Serial,
        /// To what.
        status: CredentialStatus,
    },
    /// An enrollment is used.
    EnrollmentUsed(EnrollmentId),
    /// The entry's identity is revoked (`true`) or enabled (`false`).
    IdentityRevoked(bool),
}

/// A refusal or a failure of the view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused<E> {
    /// The entry breaks a rule.
    Violation(Violation),
    /// The view failed.
    View(E),
}

impl<E> From<Violation> for Refused<E> {
    fn from(violation: Violation) -> Self {
        Refused::Violation(violation)
    }
}

/// Decides whether `entry` may follow what `view` reflects (see the module doc).
pub fn check<V: HistoryView>(view: &V, entry: &LogEntry) -> Result<(), Refused<V::Error>> {
    let identity = entry.body.identity();
    let not_revoked = || -> Result<(), Refused<V::Error>> {
        if view.identity_revoked(identity).map_err(Refused::View)? {
            return Err(Violation::IdentityRevoked(identity.to_owned()).into());
        }
        Ok(())
    };
    let new_serial = |serial: &Serial| -> Result<(), Refused<V::Error>> {
        if view
            .credential(serial, identity)
            .map_err(Refused::View)?
            .is_some()
        {
            return Err(Violation::SerialReused(*serial).into());
        }
        Ok(())
    };
    let current = |serial: &Serial| -> Result<CredentialFacts, Refused<V::Error>> {
        let facts = view
            .credential(serial, identity)
            .map_err(Refused::View)?
            .ok_or(Violation::UnknownSerial(*serial))?;
        if !facts.held_by_identity {
            return Err(Violation::OtherIdentity(*serial).into());
        }
        if facts.status != CredentialStatus::Current {
            return Err(Violation::NotCurrent(*serial).into());
        }
        Ok(facts)
    };
    match &entry.body {
        EntryBody::Issue {
            binding,
            enrollment,
            ..
        } => {
            if view.enrollment_used(enrollment).map_err(Refused::View)? {
                return Err(Violation::EnrollmentUsed(*enrollment).into());
            }
            not_revoked()?;
            new_serial(&binding.serial)
        }
        EntryBody::Rotate {
            time,
            binding,
            replaces,
            ..
        } => {
            not_revoked()?;
            new_serial(&binding.serial)?;
            let replaced = current(replaces)?;
            if replaced.not_after <= *time {
                return Err(Violation::Expired(*replaces).into());
            }
            Ok(())
        }
        EntryBody::Revoke { serials, .. } => {
            not_revoked()?;
            for serial in serials {
                current(serial)?;
            }
            Ok(())
        }
        EntryBody::Enable { .. } => {
            if !view.identity_revoked(identity).map_err(Refused::View)? {
                return Err(Violation::NotRevoked(identity.to_owned()).into());
            }
            Ok(())
        }
    }
}

/// What `entry` changes once accepted, in order.
pub fn effects(entry: &LogEntry) -> Vec<Effect> {
    match &entry.body {
        EntryBody::Issue {
            binding,
            enrollment,
            ..
        } => vec![
            Effect::EnrollmentUsed(*enrollment),
            Effect::NewCredential {
                serial: binding.serial,
                not_after: binding.not_after,
            },
        ],
        EntryBody::Rotate {
            binding, replaces, ..
        } => vec![
            Effect::CredentialStatus {
                serial: *replaces,
                status: CredentialStatus::Superseded,
            },
            Effect::NewCredential {
                serial: binding.serial,
                not_after: binding.not_after,
            },
        ],
        EntryBody::Revoke { serials, scope, .. } => {
            let mut out: Vec<Effect> = serials
                .iter()
                .map(|serial| Effect::CredentialStatus {
                    serial: *serial,
                    status: CredentialStatus::Revoked,
                })
                .collect();
            if *scope == RevocationScope::Identity {
                out.push(Effect::IdentityRevoked(true));
            }
            out
        }
        EntryBody::Enable { .. } => vec![Effect::IdentityRevoked(false)],
    }
}

/// A history view in memory: for tests, and for auditors of logs that fit in memory.
#[derive(Clone, Debug, Default)]
pub struct MemoryHistory {
    revoked: HashSet<String>,
    credentials: HashMap<Serial, (String, CredentialStatus, u64)>,
    enrollments: HashSet<EnrollmentId>,
}

impl MemoryHistory {
    /// Checks `entry` and, if it may come next, applies its effects.
    pub fn accept(&mut self, entry: &LogEntry) -> Result<(), Violation> {
        check(self, entry).map_err(|refused| match refused {
            Refused::Violation(violation) => violation,
            Refused::View(never) => match never {},
        })?;
        self.apply(entry);
        Ok(())
    }

    /// Applies `entry`'s effects without checking it.
    pub fn apply(&mut self, entry: &LogEntry) {
        let identity = entry.body.identity();
        for effect in effects(entry) {
            match effect {
                Effect::NewCredential { serial, not_after } => {
                    self.credentials.insert(
                        serial,
                        (identity.to_owned(), CredentialStatus::Current, not_after),
                    );
                }
                Effect::CredentialStatus { serial, status } => {
                    if let Some(credential) = self.credentials.get_mut(&serial) {
                        credential.1 = status;
                    }
                }
                Effect::EnrollmentUsed(id) => {
                    self.enrollments.insert(id);
                }
                Effect::IdentityRevoked(true) => {
                    self.revoked.insert(identity.to_owned());
                }
                Effect::IdentityRevoked(false) => {
                    self.revoked.remove(identity);
                }
            }
        }
    }
}

impl HistoryView for MemoryHistory {
    type Error = std::convert::Infallible;

    fn identity_revoked(&self, identity: &str) -> Result<bool, Self::Error> {
        Ok(self.revoked.contains(identity))
    }

    fn credential(
        &self,
        serial: &Serial,
        identity: &str,
    ) -> Result<Option<CredentialFacts>, Self::Error> {
        Ok(self
            .credentials
            .get(serial)
            .map(|(holder, status, not_after)| CredentialFacts {
                held_by_identity: holder == identity,
                status: *status,
                not_after: *not_after,
            }))
    }

    fn enrollment_used(&self, enrollment: &EnrollmentId) -> Result<bool, Self::Error> {
        Ok(self.enrollments.contains(enrollment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Binding, RevocationReason};

    const ALICE: &str = "alice@example.com";
    const BOB: &str = "bob@example.com";

    fn binding(serial: u8) -> Binding {
        Binding {
            serial: Serial([serial; 16]),
            public_key: [serial; 32],
            not_before: 0,
            not_after: 1_000,
            certificate: vec![0x30, 0x00],
        }
    }

    fn issue(identity: &str, serial: u8, enrollment: u8) -> LogEntry {
        LogEntry::new(EntryBody::Issue {
            time: 10,
            identity: identity.into(),
            binding: binding(serial),
            enrollment: EnrollmentId([enrollment; 32]),
        })
    }

    fn rotate(identity: &str, serial: u8, replaces: u8, time: u64) -> LogEntry {
        LogEntry::new(EntryBody::Rotate {
            time,
            identity: identity.into(),
            binding: binding(serial),
            replaces: Serial([replaces; 16]),
        })
    }

    fn revoke(identity: &str, serials: &[u8], scope: RevocationScope) -> LogEntry {
        LogEntry::new(EntryBody::Revoke {
            time: 20,
            identity: identity.into(),
            serials: serials.iter().map(|s| Serial([*s; 16])).collect(),
            scope,
            reason: RevocationReason::KeyCompromise,
            admin: "admin".into(),
        })
    }

    fn enable(identity: &str) -> LogEntry {
        LogEntry::new(EntryBody::Enable {
            time: 30,
            identity: identity.into(),
            admin: "admin".into(),
        })
    }

    /// Accepts `good` in order, then expects `bad` refused with `violation`.
    fn refused_after(good: &[LogEntry], bad: &LogEntry) -> Violation {
        let mut history = MemoryHistory::default();
        for (i, entry) in good.iter().enumerate() {
            history
                .accept(entry)
                .unwrap_or_else(|v| panic!("entry {i} refused: {v}"));
        }
        history.accept(bad).unwrap_err()
    }

    #[test]
    fn an_honest_history_is_accepted() {
        let mut history = MemoryHistory::default();
        for entry in [
            issue(ALICE, 1, 1),
            issue(ALICE, 2, 2),
            rotate(ALICE, 3, 2, 50),
            revoke(ALICE, &[1], RevocationScope::Credential),
            revoke(ALICE, &[3], RevocationScope::Identity),
            enable(ALICE),
            issue(ALICE, 4, 3),
            revoke(BOB, &[], RevocationScope::Identity),
            enable(BOB),
        ] {
            history.accept(&entry).unwrap();
        }
    }

    /// The five logs an outside review built that the old audit accepted with no problem.
    #[test]
    fn the_reviews_five_forged_histories_are_refused() {
        let id = EnrollmentId([1; 32]);
        assert_eq!(
            refused_after(&[issue(ALICE, 1, 1)], &issue(ALICE, 2, 1)),
            Violation::EnrollmentUsed(id),
            "one enrollment used by two issuances"
        );
        assert_eq!(
            refused_after(
                &[revoke(ALICE, &[], RevocationScope::Identity)],
                &issue(ALICE, 1, 1)
            ),
            Violation::IdentityRevoked(ALICE.into()),
            "an issuance to a revoked identity"
        );
        assert_eq!(
            refused_after(
                &[
                    issue(ALICE, 1, 1),
                    revoke(ALICE, &[1], RevocationScope::Credential)
                ],
                &rotate(ALICE, 2, 1, 50)
            ),
            Violation::NotCurrent(Serial([1; 16])),
            "a rotation that replaces a revoked credential"
        );
        assert_eq!(
            refused_after(
                &[issue(ALICE, 1, 1), rotate(ALICE, 2, 1, 50)],
                &rotate(ALICE, 3, 1, 60)
            ),
            Violation::NotCurrent(Serial([1; 16])),
            "one serial rotated twice"
        );
        assert_eq!(
            refused_after(
                &[
                    issue(ALICE, 1, 1),
                    revoke(ALICE, &[1], RevocationScope::Credential)
                ],
                &revoke(ALICE, &[1], RevocationScope::Credential)
            ),
            Violation::NotCurrent(Serial([1; 16])),
            "a double revocation"
        );
        assert_eq!(
            refused_after(
                &[revoke(ALICE, &[], RevocationScope::Identity)],
                &revoke(ALICE, &[], RevocationScope::Identity)
            ),
            Violation::IdentityRevoked(ALICE.into()),
            "an identity revoked twice"
        );
    }

    #[test]
    fn other_breaks_are_refused() {
        assert_eq!(
            refused_after(&[issue(ALICE, 1, 1)], &issue(BOB, 1, 2)),
            Violation::SerialReused(Serial([1; 16]))
        );
        assert_eq!(
            refused_after(&[issue(ALICE, 1, 1)], &rotate(BOB, 2, 1, 50)),
            Violation::OtherIdentity(Serial([1; 16]))
        );
        assert_eq!(
            refused_after(
                &[issue(ALICE, 1, 1)],
                &revoke(BOB, &[1], RevocationScope::Credential)
            ),
            Violation::OtherIdentity(Serial([1; 16]))
        );
        assert_eq!(
            refused_after(&[], &rotate(ALICE, 2, 1, 50)),
            Violation::UnknownSerial(Serial([1; 16]))
        );
        assert_eq!(
            refused_after(&[issue(ALICE, 1, 1)], &rotate(ALICE, 2, 1, 1_000)),
            Violation::Expired(Serial([1; 16]))
        );
        assert_eq!(
            refused_after(&[], &enable(ALICE)),
            Violation::NotRevoked(ALICE.into())
        );
    }
}
