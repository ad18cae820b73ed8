//! The converse of `admission_agrees.rs`: for any sequence of entries, forged or not, the
//! server's view of the history (its sled state, moved by `apply_entry`) and an auditor's
//! (`kt_protocol::history::MemoryHistory`, moved by `history::effects`) give the same verdict
//! on every entry, the same violation included. Entries are drawn from small pools of
//! identities, serials and enrollments with times around the credentials' expiry, so that
//! every rule is broken often: a reused enrollment or serial, a rotation or revocation of an
//! unknown, foreign, superseded, revoked or expired credential, anything for a revoked
//! identity, enabling an active one. Every enrollment of the pool is enrolled first, as the
//! server's own rules require before any issuance (an enrollment the server never made is
//! refused before the history rules are asked).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use as_server::admission::history_verdict;
use as_server::entry::{
    Binding, EnrollmentId, EntryBody, LogEntry, RevocationReason, RevocationScope, Serial,
};
use as_server::state::State;
use kt_protocol::history::{check, MemoryHistory, Refused, Violation};
use proptest::prelude::*;

const IDENTITIES: [&str; 3] = ["a@example.com", "b@example.com", "c@example.com"];
const SERIALS: u8 = 6;
const ENROLLMENTS: u8 = 5;

fn serial(n: u8) -> Serial {
    Serial([n + 1; 16])
}

fn enrollment(n: u8) -> EnrollmentId {
    EnrollmentId([n + 1; 32])
}

/// One entry: its kind, identity, serials, enrollment, time, scope.
fn entry() -> impl Strategy<Value = LogEntry> {
    (
        0u8..4,
        0..IDENTITIES.len(),
        0..SERIALS,
        0..SERIALS,
        0..ENROLLMENTS,
        0u64..40,
        any::<bool>(),
    )
        .prop_map(|(kind, who, s1, s2, e, time, whole)| {
            let identity = IDENTITIES[who].to_owned();
            let binding = |s: u8| Binding {
                serial: serial(s),
                public_key: [7; 32],
                not_before: 0,
                // Some credentials expire within the times drawn.
                not_after: 10 + 5 * u64::from(s),
                certificate: vec![0x30, 0x00],
            };
            let body = match kind {
                0 => EntryBody::Issue {
                    time,
                    identity,
                    binding: binding(s1),
                    enrollment: enrollment(e),
                },
                1 => EntryBody::Rotate {
                    time,
                    identity,
                    binding: binding(s1),
                    replaces: serial(s2),
                },
                2 => EntryBody::Revoke {
                    time,
                    identity,
                    serials: if whole && s1 != s2 {
                        vec![serial(s1), serial(s2)]
                    } else {
                        vec![serial(s1)]
                    },
                    scope: if whole {
                        RevocationScope::Identity
                    } else {
                        RevocationScope::Credential
                    },
                    reason: RevocationReason::Unspecified,
                    admin: "admin".into(),
                },
                _ => EntryBody::Enable {
                    time,
                    identity,
                    admin: "admin".into(),
                },
            };
            LogEntry::new(body)
        })
}

/// Runs `entries` through both views; asserts they agree on each; returns the verdicts.
fn verdicts(entries: &[LogEntry]) -> Vec<Result<(), Violation>> {
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(&dir.path().join("state"), &dir.path().join("enrollments")).unwrap();
    let enrolled: Vec<(String, String, u64)> = (0..ENROLLMENTS)
        .map(|e| {
            let identity = IDENTITIES[usize::from(e) % IDENTITIES.len()];
            (enrollment(e).to_hex(), identity.to_owned(), u64::MAX)
        })
        .collect();
    state.add_enrollments(&enrolled).unwrap().unwrap();
    let mut server = state.overlay();
    let mut auditor = MemoryHistory::default();
    let mut out = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let by_server = history_verdict(&server, entry).unwrap();
        let by_auditor: Result<(), Violation> = check(&auditor, entry).map_err(|r| match r {
            Refused::Violation(violation) => violation,
            Refused::View(never) => match never {},
        });
        assert_eq!(by_server, by_auditor, "entry {index}: {entry:?}");
        if by_server.is_ok() {
            server.apply_entry(index as u64, entry).unwrap();
            auditor.apply(entry);
        }
        out.push(by_server);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn the_server_and_the_auditor_refuse_the_same_entries_for_the_same_reason(
        entries in proptest::collection::vec(entry(), 1..40)
    ) {
        verdicts(&entries);
    }
}

/// The sequences drawn break every rule: the agreement above is not vacuous.
#[test]
fn the_drawn_sequences_break_every_rule() {
    use proptest::strategy::ValueTree as _;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = proptest::collection::vec(entry(), 20..40);
    let mut seen = std::collections::BTreeSet::new();
    let mut accepted = 0;
    for _ in 0..100 {
        let entries = strategy.new_tree(&mut runner).unwrap().current();
        for verdict in verdicts(&entries) {
            match verdict {
                Ok(()) => accepted += 1,
                Err(violation) => {
                    let name = format!("{violation:?}");
                    seen.insert(name[..name.find('(').unwrap_or(name.len())].to_owned());
                }
            }
        }
    }
    assert!(accepted > 100, "{accepted} entries accepted");
    for rule in [
        "EnrollmentUsed",
        "IdentityRevoked",
        "SerialReused",
        "UnknownSerial",
        "OtherIdentity",
        "NotCurrent",
        "Expired",
        "NotRevoked",
    ] {
        assert!(seen.contains(rule), "{rule} never broken; seen {seen:?}");
    }
}
