//! A model-based property test of the directory against the real server: random sequences of
//! issuance, rotation, credential revocation, identity revocation and re-enabling across
//! several identities and devices. After every action, every identity's lookup (verified with
//! kt-verify: checkpoint, VRF label, map proof, record) equals the model — absent, or its
//! status and exactly its current keys — an identity never enrolled proves its absence, and a
//! flipped byte of an answer never verifies as another state. The model follows the server's
//! answers (a refused action changes nothing), so it checks that the proven state is exactly
//! the accepted changes, whatever the admission rules decide.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Server;
use ed25519_dalek::SigningKey;
use kt_protocol::api::IdentityProof;
use kt_protocol::directory::record::Status;
use kt_verify::directory;
use proptest::prelude::*;
use serde_json::json;
use test_support::requests::new_key;

const IDENTITIES: usize = 3;

#[derive(Clone, Debug)]
enum Action {
    Issue(usize),
    Rotate(usize, usize),
    RevokeCredential(usize, usize),
    RevokeIdentity(usize),
    Enable(usize),
}

fn action() -> impl Strategy<Value = Action> {
    let who = 0..IDENTITIES;
    prop_oneof![
        3 => who.clone().prop_map(Action::Issue),
        2 => (who.clone(), 0..3usize).prop_map(|(i, d)| Action::Rotate(i, d)),
        1 => (who.clone(), 0..3usize).prop_map(|(i, d)| Action::RevokeCredential(i, d)),
        1 => who.clone().prop_map(Action::RevokeIdentity),
        1 => who.prop_map(Action::Enable),
    ]
}

/// What the server has accepted for one identity: its status and its current credentials
/// (serial → key), in acceptance order.
#[derive(Default, Clone, Debug)]
struct Model {
    revoked: bool,
    devices: Vec<(String, SigningKey)>,
    present: bool,
}

/// A fresh server; rotations unthrottled, so that the sequences may rotate at will.
fn server() -> Server {
    Server::start_with(&[
        "--rotation-min-interval",
        "0",
        "--rotations-per-day",
        "1000",
    ])
}

/// Applies `action` to the server and, if accepted, to the model.
fn apply(server: &Server, names: &[String], models: &mut [Model], action: &Action) {
    match *action {
        Action::Issue(i) => {
            let enrolled =
                server.admin_post("/v1/admin/enrollments", &json!({"identities": [names[i]]}));
            if enrolled.status != 201 {
                return;
            }
            let token = enrolled.json()["enrollments"][0]["token"]
                .as_str()
                .unwrap()
                .to_owned();
            let key = new_key();
            let answer = server.issue(&names[i], &token, &key);
            if answer.status == 201 {
                let serial = answer.json()["serial"].as_str().unwrap().to_owned();
                models[i].devices.push((serial, key));
                models[i].present = true;
            }
        }
        Action::Rotate(i, d) => {
            let Some((serial, current)) = models[i].devices.get(d).cloned() else {
                return;
            };
            let key = new_key();
            let answer = server.rotate(&names[i], &serial, &current, &key);
            if answer.status == 201 || answer.status == 200 {
                let new_serial = answer.json()["serial"].as_str().unwrap().to_owned();
                models[i].devices[d] = (new_serial, key);
            }
        }
        Action::RevokeCredential(i, d) => {
            let Some((serial, _)) = models[i].devices.get(d).cloned() else {
                return;
            };
            let answer = server.admin_post(
                &format!("/v1/admin/credentials/{serial}/revoke"),
                &json!({"reason": "keyCompromise"}),
            );
            if answer.status == 200 {
                models[i].devices.remove(d);
            }
        }
        Action::RevokeIdentity(i) => {
            let answer = server.admin_post(
                &format!("/v1/admin/identities/{}/revoke", names[i]),
                &json!({"reason": "affiliationChanged"}),
            );
            if answer.status == 200 {
                models[i].revoked = true;
                models[i].devices.clear();
            }
        }
        Action::Enable(i) => {
            let answer = server.admin_post(
                &format!("/v1/admin/identities/{}/enable", names[i]),
                &json!({}),
            );
            if answer.status == 200 {
                models[i].revoked = false;
            }
        }
    }
}

/// Looks `identity` up, verifies the answer and checks it against `model`; returns the
/// answer's bytes.
fn check(server: &Server, identity: &str, model: &Model) -> Vec<u8> {
    let answer = server.get(&format!("/v1/identities/{identity}"));
    assert_eq!(answer.status, 200);
    let verified = server.verify_directory(&answer.json());
    match &verified.state {
        None => assert!(!model.present, "{identity} proven absent, the model has it"),
        Some(state) => {
            assert!(
                model.present,
                "{identity} present, the model never issued it"
            );
            let record = &state.record;
            assert_eq!(record.identity, identity);
            let status_revoked = record.status == Status::Revoked;
            assert_eq!(status_revoked, model.revoked, "{identity}: status");
            let proven: BTreeMap<String, [u8; 32]> = record
                .credentials
                .iter()
                .map(|c| (c.serial.to_hex(), c.public_key))
                .collect();
            let expected: BTreeMap<String, [u8; 32]> = model
                .devices
                .iter()
                .map(|(s, k)| (s.clone(), k.verifying_key().to_bytes()))
                .collect();
            assert_eq!(proven, expected, "{identity}: current credentials");
        }
    }
    answer.body
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_lookup_equals_the_model(actions in proptest::collection::vec(action(), 1..14), flip in any::<prop::sample::Index>()) {
        static CASE: AtomicUsize = AtomicUsize::new(0);
        let case = CASE.fetch_add(1, Ordering::Relaxed);
        let server = &server();
        let names: Vec<String> = (0..IDENTITIES)
            .map(|i| format!("user{i}.case{case}@model.example"))
            .collect();
        let never = format!("never.case{case}@model.example");
        let mut models = vec![Model::default(); IDENTITIES];
        let mut last = Vec::new();
        for action in &actions {
            apply(server, &names, &mut models, action);
            for (name, model) in names.iter().zip(&models) {
                last = check(server, name, model);
            }
            check(server, &never, &Model::default());
        }

        // A flipped byte of the last answer: refused, or (a byte nothing reads, such as a
        // JSON escape) the same state.
        let honest: IdentityProof = serde_json::from_slice(&last).unwrap();
        let honest_state = server.verify_directory(&serde_json::to_value(&honest).unwrap()).state;
        let mut bytes = last.clone();
        let at = flip.index(bytes.len());
        bytes[at] ^= 0x01;
        if let Ok(proof) = serde_json::from_slice::<IdentityProof>(&bytes) {
            let verified = directory::answer_checkpoint(&proof, &honest.identity, &server.log_key)
                .and_then(|cp| directory::verify_identity(&proof, &cp, &server.vrf_key));
            if let Ok(v) = verified {
                prop_assert_eq!(v.state, honest_state, "byte {} changed the state and verified", at);
            }
        }
    }
}
