//! The validator makes the CA and CRL checks `verifier-cli validate` makes: a credential that
//! does not chain to the trusted CA is refused, and so is one the CA's CRL lists even when the
//! AS (here a stale replica replaying an answer from before the revocation, to a validator
//! that has seen nothing newer) still shows it as current.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::HashMap;

use mls_demo::as_api;
use mls_demo::https::HttpsClient;
use mls_demo::validator::{AsValidator, Refusal};

#[test]
fn a_credential_of_another_ca_is_refused() {
    let server = common::Server::start();
    let other = common::Server::start();
    let alice = "alice@example.com";
    let token = as_api::enroll(&server.client, &server.admin_token, &[alice]).unwrap();
    let key = as_api::new_key().unwrap();
    as_api::issue(&server.client, alice, &token[0], &key).unwrap();
    assert!(server
        .validator()
        .validate(alice, key.verifying_key().as_bytes())
        .is_ok());
    // The same answer, log key, VRF key and proofs, but another CA trusted.
    let validator = AsValidator::new(
        server.client.clone(),
        server.log_key.clone(),
        server.vrf_key.clone(),
        other.ca(),
    );
    assert!(matches!(
        validator.validate(alice, key.verifying_key().as_bytes()),
        Err(Refusal::BadCertificate(_))
    ));
    // And the issuance answer does not verify under the other CA either.
    let token = as_api::enroll(&server.client, &server.admin_token, &["bob@example.com"]).unwrap();
    let bob_key = as_api::new_key().unwrap();
    let answer = as_api::issue(&server.client, "bob@example.com", &token[0], &bob_key).unwrap();
    assert!(as_api::verify_issued(
        &answer,
        &bob_key,
        &server.log_key,
        &server.vrf_key,
        &server.ca()
    )
    .is_ok());
    assert!(as_api::verify_issued(
        &answer,
        &bob_key,
        &server.log_key,
        &server.vrf_key,
        &other.ca()
    )
    .is_err());
}

#[test]
fn a_credential_on_the_crl_is_refused_even_if_the_as_lists_it() {
    let server = common::Server::start();
    let alice = "alice@example.com";
    let token = as_api::enroll(&server.client, &server.admin_token, &[alice]).unwrap();
    let key = as_api::new_key().unwrap();
    let issued = as_api::issue(&server.client, alice, &token[0], &key).unwrap();
    let path = format!("/v1/identities/{alice}");
    let before = server.client.get(&path).unwrap();
    assert_eq!(before.status, 200);

    as_api::revoke_identity(&server.client, &server.admin_token, alice, "keyCompromise").unwrap();
    let crl = server.client.get("/v1/crl").unwrap();
    assert_eq!(crl.status, 200);

    // A replica that serves the answer from before the revocation, and the current CRL, to a
    // validator that has saved no checkpoint (so it cannot tell the answer is old).
    let replica = common::StaleReplica::start(
        &server.data,
        HashMap::from([(path, before.body), ("/v1/crl".to_owned(), crl.body)]),
    );
    let pem = std::fs::read(server.data.join("tls-cert.pem")).unwrap();
    let client = HttpsClient::new(&replica.base, &pem).unwrap();
    let validator = server.validator_of(client);
    assert_eq!(
        validator.validate(alice, key.verifying_key().as_bytes()),
        Err(Refusal::CredentialRevoked {
            serial: issued.serial.clone()
        })
    );
}
