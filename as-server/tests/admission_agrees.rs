//! Whatever the server admits, the auditor's rules accept: random sequences of actions by
//! clients and admins go through the sequencer's admission on a real state, and every entry it
//! admits must pass `kt_protocol::history` on an independent in-memory view (the rules
//! verifier-cli's audit applies), in the same order. (About a quarter of the random steps are
//! admitted: the rest try used or foreign tokens, superseded or revoked serials, revoked
//! identities, or run into the credential limit and the rotation budget.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use as_server::admission::{admit, Action, Limits};
use as_server::entry::{Binding, EntryBody, LogEntry, RevocationReason, Serial};
use as_server::rotation::RotationBudget;
use as_server::state::State;
use kt_protocol::history::MemoryHistory;
use kt_protocol::pop::enrollment_id;
use proptest::prelude::*;

const IDENTITIES: [&str; 3] = ["a@example.com", "b@example.com", "c@example.com"];
const TOKENS_EACH: usize = 4;

fn token(identity: usize, n: usize) -> String {
    format!("token-{identity}-{n}")
}

/// One step: what, by whom, and which of the serials or tokens so far it names.
#[derive(Clone, Debug)]
struct Step {
    op: u8,
    identity: usize,
    pick: usize,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        (0u8..5, 0..IDENTITIES.len(), 0usize..16).prop_map(|(op, identity, pick)| Step {
            op,
            identity,
            pick,
        }),
        1..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn every_admitted_entry_passes_the_auditors_rules(steps in steps()) {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state"), &dir.path().join("enrollments")).unwrap();
        let mut enrollments = Vec::new();
        for (i, identity) in IDENTITIES.iter().enumerate() {
            for n in 0..TOKENS_EACH {
                enrollments.push((enrollment_id(&token(i, n)).to_hex(), (*identity).to_owned(), u64::MAX));
            }
        }
        state.add_enrollments(&enrollments).unwrap().unwrap();
        let limits = Limits {
            max_credentials: 3,
            rotation_budget: RotationBudget { min_interval: 60, per_day: 5 },
        };
        let mut view = state.overlay();
        let mut auditor = MemoryHistory::default();
        let mut issued: Vec<Serial> = Vec::new();
        let mut next_serial = 1u128;
        let mut admitted = 0u64;
        for (step_no, step) in steps.iter().enumerate() {
            let now = 1_000 + 100 * step_no as u64;
            let identity = IDENTITIES[step.identity].to_owned();
            let mut binding = || {
                let serial = Serial(next_serial.to_be_bytes());
                next_serial += 1;
                Binding {
                    serial,
                    public_key: [7; 32],
                    not_before: now,
                    not_after: now + 10_000,
                    certificate: vec![0x30, 0x00],
                }
            };
            let picked = |list: &[Serial]| list.get(step.pick % list.len().max(1)).copied();
            let action = match step.op {
                0 => Action::Issue {
                    identity: identity.clone(),
                    // Any identity's token: a wrong one must be refused.
                    enrollment: enrollment_id(&token(step.pick % 3, step.pick % TOKENS_EACH)),
                    binding: binding(),
                },
                1 => match picked(&issued) {
                    Some(replaces) => Action::Rotate { identity, replaces, binding: binding() },
                    None => continue,
                },
                2 => match picked(&issued) {
                    Some(serial) => Action::RevokeCredential {
                        serial,
                        reason: RevocationReason::KeyCompromise,
                        admin: "admin".into(),
                    },
                    None => continue,
                },
                3 => Action::RevokeIdentity {
                    identity,
                    reason: RevocationReason::Unspecified,
                    admin: "admin".into(),
                },
                _ => Action::Enable { identity, admin: "admin".into() },
            };
            let Ok(body) = admit(&view, &action, now, &limits) else { continue };
            if let EntryBody::Issue { binding, .. } | EntryBody::Rotate { binding, .. } = &body {
                issued.push(binding.serial);
            }
            let entry = LogEntry::new(body);
            if let Err(violation) = auditor.accept(&entry) {
                panic!("admitted at step {step_no} but the auditor refuses it: {violation}\n{entry:?}");
            }
            view.apply_entry(admitted, &entry).unwrap();
            admitted += 1;
        }
    }
}
