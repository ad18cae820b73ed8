//! `AsValidator` against a real as-server: accepts a logged key, refuses a key never logged,
//! an unknown identity, a revoked identity, and a log inconsistent with its saved checkpoint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use kt_log::checkpoint::{open_checkpoint, Checkpoint};
use kt_log::note::NoteSigner;
use kt_log::Hash;
use mls_demo::as_api;
use mls_demo::validator::{Consistency, Refusal};

#[test]
fn validator_accepts_logged_keys_and_refuses_the_rest() {
    let server = common::Server::start();
    let (alice, bob) = ("alice@example.com", "bob@example.com");
    let tokens = as_api::enroll(&server.client, &server.admin_token, &[alice, bob]).unwrap();
    let alice_key = as_api::new_key().unwrap();
    let bob_key = as_api::new_key().unwrap();
    let issued = as_api::issue(&server.client, alice, &tokens[0], &alice_key).unwrap();
    as_api::issue(&server.client, bob, &tokens[1], &bob_key).unwrap();

    let validator = server.validator();
    let proof = validator
        .validate(alice, alice_key.verifying_key().as_bytes())
        .unwrap();
    assert_eq!(proof.identity, alice);
    assert_eq!(proof.entry_type, "issue");
    assert_eq!(proof.log_index, 0);
    assert_eq!(proof.serial, issued["serial"].as_str().unwrap());
    assert_eq!(proof.consistency, Consistency::First);
    assert_eq!(proof.checkpoint_size, 2);

    // A key the AS never logged for alice: not even Bob's real key.
    let stranger = as_api::new_key().unwrap();
    assert_eq!(
        validator.validate(alice, stranger.verifying_key().as_bytes()),
        Err(Refusal::NotLogged)
    );
    assert_eq!(
        validator.validate(alice, bob_key.verifying_key().as_bytes()),
        Err(Refusal::NotLogged)
    );
    assert_eq!(
        validator.validate("carol@example.com", stranger.verifying_key().as_bytes()),
        Err(Refusal::UnknownIdentity)
    );
    assert!(matches!(
        validator.validate("../v1/log@example.com", stranger.verifying_key().as_bytes()),
        Err(Refusal::BadIdentity(_))
    ));
    assert!(matches!(
        validator.validate(alice, &[1, 2, 3]),
        Err(Refusal::BadKey(_))
    ));

    // Revoked: Bob's own, logged key is refused from now on; the checkpoint grew and the
    // validator proved it consistent with the one it saved.
    as_api::revoke_identity(&server.client, &server.admin_token, bob, "keyCompromise").unwrap();
    assert_eq!(
        validator.validate(bob, bob_key.verifying_key().as_bytes()),
        Err(Refusal::Revoked)
    );
    let proof = validator
        .validate(alice, alice_key.verifying_key().as_bytes())
        .unwrap();
    assert_eq!(proof.checkpoint_size, 3);
    assert_eq!(proof.consistency, Consistency::Same);
    assert_eq!(validator.latest_checkpoint().unwrap().size(), 3);

    // A validator that saved a checkpoint of the same size with another root (a fork it was
    // shown earlier) refuses the server's view.
    let forger = NoteSigner::generate(server.log_key.name()).unwrap();
    let forked = Checkpoint {
        origin: server.log_key.name().to_owned(),
        size: 3,
        root: Hash([7; 32]),
        extensions: vec![],
    }
    .sign(&forger)
    .unwrap();
    let forked = open_checkpoint(&forked.note, &forger.verifier()).unwrap();
    let validator = server.validator().with_checkpoint(forked.clone());
    assert!(matches!(
        validator.validate(alice, alice_key.verifying_key().as_bytes()),
        Err(Refusal::Inconsistent(_))
    ));
    // And one that saved a larger checkpoint the server cannot prove itself a prefix of.
    let ahead = Checkpoint {
        size: 10,
        ..forked.checkpoint().clone()
    }
    .sign(&forger)
    .unwrap();
    let ahead = open_checkpoint(&ahead.note, &forger.verifier()).unwrap();
    let validator = server.validator().with_checkpoint(ahead);
    assert!(matches!(
        validator.validate(alice, alice_key.verifying_key().as_bytes()),
        Err(Refusal::Inconsistent(_))
    ));

    // A checkpoint signed by another key is not the log's.
    let other = common::Server::start();
    let validator = mls_demo::validator::AsValidator::new(
        server.client.clone(),
        other.log_key.clone(),
        server.ca(),
    );
    assert!(matches!(
        validator.validate(alice, alice_key.verifying_key().as_bytes()),
        Err(Refusal::BadProof(_))
    ));
}

#[test]
fn validator_with_a_witness_policy_refuses_checkpoints_not_cosigned() {
    use kt_log::cosignature::CosignatureSigner;
    use kt_verify::witness_policy::WitnessPolicy;

    let server = common::Server::start();
    let alice = "alice@example.com";
    let tokens = as_api::enroll(&server.client, &server.admin_token, &[alice]).unwrap();
    let key = as_api::new_key().unwrap();
    as_api::issue(&server.client, alice, &tokens[0], &key).unwrap();

    // `quorum none`: the log's signature suffices, as without a policy.
    let none = WitnessPolicy::parse(b"quorum none\n").unwrap();
    let validator = server.validator().with_witness_policy(none);
    assert!(validator
        .validate(alice, key.verifying_key().as_bytes())
        .is_ok());

    // A witness this AS never had cosign: refused, naming it; nothing saved.
    let w = CosignatureSigner::from_seed("witness.example/w", &[5; 32]).unwrap();
    let text = format!("witness W {}\nquorum W\n", w.verifier().to_vkey());
    let policy = WitnessPolicy::parse(text.as_bytes()).unwrap();
    let validator = server.validator().with_witness_policy(policy);
    match validator.validate(alice, key.verifying_key().as_bytes()) {
        Err(Refusal::NotWitnessed(msg)) => {
            assert!(msg.contains("missing cosignatures by W"), "{msg}")
        }
        other => panic!("expected NotWitnessed, got {other:?}"),
    }
    assert_eq!(validator.latest_checkpoint(), None);
}
