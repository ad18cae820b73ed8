//! `AsValidator` against a real as-server: accepts a key of the identity's complete current
//! set, refuses a key never logged, a key rotated away or revoked on its own (even with its
//! still valid certificate), an identity the directory proves absent, a revoked identity, a
//! log inconsistent with its saved checkpoint, an answer older than its saved checkpoint, and
//! proofs under keys it does not trust.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::HashMap;

use kt_log::checkpoint::{open_checkpoint, Checkpoint};
use kt_log::note::NoteSigner;
use kt_log::Hash;
use kt_protocol::api::IdentityProof;
use kt_protocol::directory::vrf::VrfSecretKey;
use kt_protocol::entry::Serial;
use mls_demo::as_api;
use mls_demo::https::HttpsClient;
use mls_demo::validator::{AsValidator, Consistency, Refusal};

fn serial(text: &str) -> Serial {
    Serial::parse_hex(text).unwrap()
}

#[test]
fn validator_accepts_logged_keys_and_refuses_the_rest() {
    let server = common::Server::start();
    let (alice, bob) = ("alice@example.com", "bob@example.com");
    let tokens = as_api::enroll(&server.client, &server.admin_token, &[alice, bob]).unwrap();
    let alice_key = as_api::new_key().unwrap();
    let bob_key = as_api::new_key().unwrap();
    let issued = as_api::issue(&server.client, alice, &tokens[0], &alice_key).unwrap();
    let issued = as_api::verify_issued(
        &issued,
        &alice_key,
        &server.log_key,
        &server.vrf_key,
        &server.ca(),
    )
    .unwrap();
    let bob_issued = as_api::issue(&server.client, bob, &tokens[1], &bob_key).unwrap();
    let bob_checkpoint = as_api::verify_issued(
        &bob_issued,
        &bob_key,
        &server.log_key,
        &server.vrf_key,
        &server.ca(),
    )
    .unwrap()
    .identity
    .checkpoint;

    let validator = server.validator();
    let proof = validator
        .validate(alice, alice_key.verifying_key().as_bytes())
        .unwrap();
    // The issued credential, the one current credential of version 1 of alice's state, in the
    // newest checkpoint (the one of bob's issuance), trusted on first use.
    assert_eq!(proof.identity, alice);
    assert_eq!(proof.version, 1);
    assert_eq!(proof.current_credentials, 1);
    assert_eq!(proof.serial, issued.binding.serial.to_hex());
    assert_eq!(proof.certificate_der, issued.binding.certificate);
    assert_eq!(proof.consistency, Consistency::First);
    assert_eq!(proof.checkpoint_size, bob_checkpoint.size());
    assert!(proof.checkpoint_size > issued.identity.checkpoint.size());

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
    // An identity with nothing in the directory: proven absent.
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
    let revoked =
        as_api::revoke_identity(&server.client, &server.admin_token, bob, "keyCompromise").unwrap();
    let revoked = as_api::verify_revoked(&revoked, true, &server.log_key, &server.vrf_key).unwrap();
    let revoked_size = revoked.checkpoint.size();
    assert!(revoked_size > bob_checkpoint.size());
    assert_eq!(
        validator.validate(bob, bob_key.verifying_key().as_bytes()),
        Err(Refusal::Revoked)
    );
    let proof = validator
        .validate(alice, alice_key.verifying_key().as_bytes())
        .unwrap();
    assert_eq!(proof.checkpoint_size, revoked_size);
    assert_eq!(proof.consistency, Consistency::Same);
    assert_eq!(validator.latest_checkpoint().unwrap().size(), revoked_size);

    // A validator that saved a checkpoint of the same size with another root (a fork it was
    // shown earlier) refuses the server's view.
    let forger = NoteSigner::generate(server.log_key.name()).unwrap();
    let forked = Checkpoint {
        origin: server.log_key.name().to_owned(),
        size: revoked_size,
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
    // And one that saved a larger checkpoint the server cannot prove itself a prefix of: the
    // answer is older than what it saw, and is refused.
    let ahead = Checkpoint {
        size: revoked_size + 7,
        ..forked.checkpoint().clone()
    }
    .sign(&forger)
    .unwrap();
    let ahead = open_checkpoint(&ahead.note, &forger.verifier()).unwrap();
    let validator = server.validator().with_checkpoint(ahead);
    assert_eq!(
        validator.validate(alice, alice_key.verifying_key().as_bytes()),
        Err(Refusal::Stale {
            saved: revoked_size + 7,
            answered: revoked_size
        })
    );

    // A checkpoint signed by another key is not the log's.
    let other = common::Server::start();
    let validator = AsValidator::new(
        server.client.clone(),
        other.log_key.clone(),
        server.vrf_key.clone(),
        server.ca(),
    );
    assert!(matches!(
        validator.validate(alice, alice_key.verifying_key().as_bytes()),
        Err(Refusal::BadProof(_))
    ));
    // Nor is a label proven under another VRF key the directory's.
    let validator = AsValidator::new(
        server.client.clone(),
        server.log_key.clone(),
        other.vrf_key.clone(),
        server.ca(),
    );
    assert!(matches!(
        validator.validate(alice, alice_key.verifying_key().as_bytes()),
        Err(Refusal::BadProof(_))
    ));
    let stray = VrfSecretKey::from_seed([9; 32]).public_key().clone();
    let validator = AsValidator::new(
        server.client.clone(),
        server.log_key.clone(),
        stray,
        server.ca(),
    );
    assert!(matches!(
        validator.validate(alice, alice_key.verifying_key().as_bytes()),
        Err(Refusal::BadProof(_))
    ));
}

/// The issue's guarantee: a member whose key is not in the identity's complete current set is
/// refused, even when it presents that key's own certificate, still within its validity and
/// not on the CRL (a rotated-away key), and whatever else the identity holds.
#[test]
fn a_key_not_in_the_complete_current_set_is_refused() {
    let server = common::Server::start();
    let alice = "alice@example.com";
    // Two devices: two enrollments, two current credentials.
    let first = as_api::enroll(&server.client, &server.admin_token, &[alice]).unwrap();
    let second = as_api::enroll(&server.client, &server.admin_token, &[alice]).unwrap();
    let phone = as_api::new_key().unwrap();
    let laptop = as_api::new_key().unwrap();
    let phone_answer = as_api::issue(&server.client, alice, &first[0], &phone).unwrap();
    let laptop_answer = as_api::issue(&server.client, alice, &second[0], &laptop).unwrap();
    let ca = server.ca();
    let verify = |answer, key| {
        as_api::verify_issued(answer, key, &server.log_key, &server.vrf_key, &ca).unwrap()
    };
    let phone_issued = verify(&phone_answer, &phone);
    verify(&laptop_answer, &laptop);

    let validator = server.validator();
    for key in [&phone, &laptop] {
        let proof = validator
            .validate(alice, key.verifying_key().as_bytes())
            .unwrap();
        assert_eq!((proof.version, proof.current_credentials), (2, 2));
    }

    // The phone rotates to a new key: the old one leaves the set.
    let phone2 = as_api::new_key().unwrap();
    let rotated = as_api::rotate(
        &server.client,
        alice,
        &serial(&phone_answer.serial),
        &phone,
        &phone2,
    )
    .unwrap();
    assert_eq!(
        rotated.replaces.as_deref(),
        Some(phone_answer.serial.as_str())
    );
    let rotated_issued = verify(&rotated, &phone2);
    assert!(rotated_issued.identity.checkpoint.size() > phone_issued.identity.checkpoint.size());

    assert_eq!(
        validator.validate(alice, phone.verifying_key().as_bytes()),
        Err(Refusal::NotLogged)
    );
    // …although its certificate still verifies under the CA, is within its validity, and is
    // not on the CRL (a superseded credential is not revoked): only the complete current set
    // refuses it.
    let facts = ca
        .verify_certificate(&phone_issued.binding.certificate)
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    facts.check_time(now).unwrap();
    let crl = server.client.get("/v1/crl").unwrap();
    let crl = ca.verify_crl(&crl.body, now).unwrap();
    assert!(!crl.is_revoked(&phone_issued.binding.serial.0));
    // The rest of the set is valid: the phone's new key and the laptop's, both current in
    // version 3 of the state, proven in a checkpoint that extends the one saved before.
    for key in [&phone2, &laptop] {
        let proof = validator
            .validate(alice, key.verifying_key().as_bytes())
            .unwrap();
        assert_eq!((proof.version, proof.current_credentials), (3, 2));
        assert!(matches!(
            proof.consistency,
            Consistency::Extended { .. } | Consistency::Same
        ));
    }

    // The laptop's credential is revoked on its own: out of the set (and on the CRL); the
    // identity stays active and the phone's new key stays valid.
    let revoked = as_api::revoke_credential(
        &server.client,
        &server.admin_token,
        &serial(&laptop_answer.serial),
        "keyCompromise",
    )
    .unwrap();
    assert_eq!(revoked.revoked, std::slice::from_ref(&laptop_answer.serial));
    as_api::verify_revoked(&revoked, false, &server.log_key, &server.vrf_key).unwrap();
    assert_eq!(
        validator.validate(alice, laptop.verifying_key().as_bytes()),
        Err(Refusal::NotLogged)
    );
    let proof = validator
        .validate(alice, phone2.verifying_key().as_bytes())
        .unwrap();
    assert_eq!((proof.version, proof.current_credentials), (4, 1));
    assert_eq!(proof.serial, rotated.serial);
}

/// A replayed older answer — true as of its checkpoint, from before a rotation — is refused by
/// a validator that has seen a newer checkpoint, whether or not the AS proves it a prefix; and
/// an answer that pairs the newest checkpoint with an older state does not verify.
#[test]
fn a_replayed_older_answer_is_refused() {
    let server = common::Server::start();
    let alice = "alice@example.com";
    let token = as_api::enroll(&server.client, &server.admin_token, &[alice]).unwrap();
    let old_key = as_api::new_key().unwrap();
    let issued = as_api::issue(&server.client, alice, &token[0], &old_key).unwrap();
    let path = format!("/v1/identities/{alice}");
    let before = server.client.get(&path).unwrap();
    assert_eq!(before.status, 200);
    let before_proof: IdentityProof = serde_json::from_slice(&before.body).unwrap();

    let new_key = as_api::new_key().unwrap();
    let rotated = as_api::rotate(
        &server.client,
        alice,
        &serial(&issued.serial),
        &old_key,
        &new_key,
    )
    .unwrap();
    // The new key's holder keeps its rotation answer's checkpoint as its first saved one.
    let bundle = as_api::verify_issued(
        &rotated,
        &new_key,
        &server.log_key,
        &server.vrf_key,
        &server.ca(),
    )
    .unwrap();
    let after_checkpoint = bundle.identity.checkpoint.clone();
    let validator = server.validator();
    assert_eq!(
        validator.validate(alice, old_key.verifying_key().as_bytes()),
        Err(Refusal::NotLogged)
    );
    let saved = validator.latest_checkpoint().unwrap();
    assert_eq!(saved, after_checkpoint);
    let (old_size, new_size) = (open_size(&before_proof, &server), after_checkpoint.size());
    assert!(old_size < new_size);

    // A replica that replays the answer from before the rotation (the old key current, its
    // credential not on the CRL) and the CRL of now.
    let crl = server.client.get("/v1/crl").unwrap();
    let consistency = format!("/v1/log/proof/consistency?from={old_size}&to={new_size}");
    let proof = server.client.get(&consistency).unwrap();
    assert_eq!(proof.status, 200);
    let pem = std::fs::read(server.data.join("tls-cert.pem")).unwrap();
    let replay = |extra: Option<(String, Vec<u8>)>| {
        let mut answers = HashMap::from([
            (path.clone(), before.body.clone()),
            ("/v1/crl".to_owned(), crl.body.clone()),
        ]);
        answers.extend(extra);
        let replica = common::StaleReplica::start(&server.data, answers);
        HttpsClient::new(&replica.base, &pem).unwrap()
    };

    // Without a saved checkpoint there is nothing to compare with: the old answer is
    // believed (what persisting the latest checkpoint, or starting from one's own issuance
    // answer, is for).
    let fresh = server.validator_of(replay(None));
    assert!(fresh
        .validate(alice, old_key.verifying_key().as_bytes())
        .is_ok());

    // A validator that saw the rotation's checkpoint refuses the replay: with the replica able
    // to prove the old checkpoint a prefix of the saved one…
    let stale = Err(Refusal::Stale {
        saved: new_size,
        answered: old_size,
    });
    let client = replay(Some((consistency.clone(), proof.body.clone())));
    let validator = server.validator_of(client).with_checkpoint(saved.clone());
    assert_eq!(
        validator.validate(alice, old_key.verifying_key().as_bytes()),
        stale
    );
    // …or not.
    let validator = server
        .validator_of(replay(None))
        .with_checkpoint(saved.clone());
    assert_eq!(
        validator.validate(alice, old_key.verifying_key().as_bytes()),
        stale
    );
    // So does the new key's holder, starting from its rotation answer alone.
    let validator = server
        .validator_of(replay(None))
        .with_checkpoint(after_checkpoint.clone());
    assert_eq!(
        validator.validate(alice, old_key.verifying_key().as_bytes()),
        stale
    );
    // The saved checkpoint is kept: the validator did not step back.
    assert_eq!(validator.latest_checkpoint().unwrap(), after_checkpoint);

    // The old state under the newest checkpoint: its commitment is not the one the map holds.
    let now = server.client.get(&path).unwrap();
    let mut spliced: IdentityProof = serde_json::from_slice(&now.body).unwrap();
    spliced.state = before_proof.state.clone();
    let client = {
        let replica = common::StaleReplica::start(
            &server.data,
            HashMap::from([
                (path.clone(), serde_json::to_vec(&spliced).unwrap()),
                ("/v1/crl".to_owned(), crl.body.clone()),
            ]),
        );
        HttpsClient::new(&replica.base, &pem).unwrap()
    };
    let validator = server.validator_of(client).with_checkpoint(saved);
    assert!(matches!(
        validator.validate(alice, old_key.verifying_key().as_bytes()),
        Err(Refusal::BadProof(_))
    ));
}

/// The size of an identity proof's checkpoint, verified under the server's log key.
fn open_size(proof: &IdentityProof, server: &common::Server) -> u64 {
    open_checkpoint(proof.checkpoint.as_bytes(), &server.log_key)
        .unwrap()
        .size()
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
